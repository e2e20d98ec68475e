"""`assistant complaints classify | evaluate | train`: the complaint classifier.

    assistant complaints classify "Your collector called my mother about my debt"
    assistant complaints evaluate --data complaints_test.csv        # any file in the CFPB format
    assistant complaints evaluate --shared-split                    # the test split of the shared data
    assistant complaints train --out-dir data/models                # retrain on the shared data"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from assistant.cli.common import emit_json, fail, load_settings

app = typer.Typer(help="Complaint classification: product x issue -> team; evaluate beside a TF-IDF baseline.",
                  no_args_is_help=True)


@app.command()
def classify(
    text: str = typer.Argument(..., help="the complaint"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout"),
) -> None:
    """Product, issue and team of one complaint, with its severity and escalation triggers."""
    from assistant.complaints.rules import complaint_rules_file, load_complaint_rules
    from assistant.complaints.classifier import ComplaintClassifier
    from assistant.routing.textclf import DataError

    if not text.strip():
        fail("the complaint is empty", as_json=as_json)
    settings = load_settings(as_json=as_json, quiet_embeddings=True)
    try:
        c = ComplaintClassifier(settings).classify(text)
    except (DataError, ValueError) as exc:
        fail(str(exc), as_json=as_json)
    severity, escalations = load_complaint_rules(complaint_rules_file(settings)).assess(text, c.issue, [])
    result = {**c.model_dump(), "severity": severity, "escalations": escalations}
    if as_json:
        emit_json(result)
        return
    Console().print(f"{c.product_name} / {c.issue_name} -> {c.team_name} "
                    f"(product {c.product_confidence:.2f}, issue {c.issue_confidence:.2f}); severity {severity}"
                    + (f", escalations: {', '.join(escalations)}" if escalations else ""))


@app.command()
def evaluate(
    data: Optional[Path] = typer.Option(None, help="a CSV in the CFPB column format (Product, Issue, "
                                        "Consumer complaint narrative)"),
    train: list[Path] = typer.Option([], help="CFPB-format training files (repeatable); default: the shared data"),
    shared_split: bool = typer.Option(False, "--shared-split", help="evaluate on the test split made from the "
                                      "shared data, training on the rest"),
    shared_dir: Optional[Path] = typer.Option(None, help="the shared data folder"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout"),
) -> None:
    """Product and issue accuracy and macro-F1, beside a TF-IDF + logistic regression baseline
    trained on the same rows in the same run. Exit 1 if the classifier does not beat it."""
    from assistant.complaints import classifier as cm
    from assistant.routing.textclf import DataError

    if (data is None) == (not shared_split):
        fail("give either --data FILE or --shared-split", as_json=as_json)
    settings = load_settings(as_json=as_json, quiet_embeddings=True)
    try:
        report = cm.evaluation_report(settings, None if shared_split else data, train, shared_dir or cm.SHARED_DATA)
    except (DataError, OSError) as exc:
        fail(str(exc), as_json=as_json)
    beats = report["beats_baseline"]
    if as_json:
        emit_json(report)
    else:
        _print(report)
    raise typer.Exit(0 if beats else 1)


def _print(report: dict[str, Any]) -> None:
    table = Table(title=f"{report['data']}: {report['n_test']} complaints, trained on {report['n_train']}")
    for column in ("task", "model", "accuracy", "macro-F1", "n"):
        table.add_column(column)
    for task in ("product", "issue"):
        if task not in report:
            continue
        for name in ("model", "baseline"):
            m = report[task][name]
            label = "ours: embeddings + selected TF-IDF, LR" if name == "model" else "baseline: TF-IDF + LR"
            table.add_row(task, label, f"{m['accuracy']:.4f}", f"{m['macro_f1']:.4f}", str(m["n"]))
    Console().print(table)
    Console().print("beats the baseline" if report["beats_baseline"] else "[red]does not beat the baseline[/red]")


@app.command("train")
def train_command(
    out_dir: Optional[Path] = typer.Option(None, help="folder for complaint_product.npz and complaint_issue.npz; "
                                           "default data_dir/models (set ASSISTANT_COMPLAINT_MODEL_DIR to use it)"),
    data: list[Path] = typer.Option([], help="CFPB-format training files (repeatable); default: the shared data"),
    shared_dir: Optional[Path] = typer.Option(None, help="the shared data folder"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout"),
) -> None:
    """Train the product and issue classifiers on CFPB-format complaints."""
    from assistant.complaints import classifier as cm
    from assistant.routing.textclf import DataError

    settings = load_settings(as_json=as_json, quiet_embeddings=True)
    out_dir = out_dir or settings.model_cache_dir
    try:
        taxonomy = cm.load_taxonomy(cm.taxonomy_file(settings))
        rows = ([r for path in data for r in cm.read_cfpb(path, taxonomy)] if data
                else cm.shared_rows(taxonomy, shared_dir or cm.SHARED_DATA))
        report = cm.train(settings, out_dir, rows)
    except (DataError, OSError) as exc:
        fail(str(exc), as_json=as_json)
    if as_json:
        emit_json(report)
        return
    Console().print(f"wrote {out_dir} from {report['n']} complaints in {report['seconds']} s")
