"""`assistant router train | evaluate | route`: the intent router's classifier.

    assistant router train                                   # the six-intent model -> data/models/
    assistant router train --data banking77_train.csv --label-col category --out b77.npz
    assistant router evaluate --model b77.npz --data test.csv --label-col category
    assistant router evaluate --data evals/datasets/intents.jsonl --label-col intent --split test --routes
    assistant router route "I want to complain about how fast you approved me" """

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

from assistant.cli.common import emit_json, fail, load_settings
from assistant.config import Settings

app = typer.Typer(help="The intent router: train its classifier, evaluate it on any labelled file, route a message.",
                  no_args_is_help=True)


@app.command()
def train(
    data: Optional[Path] = typer.Option(None, help="a labelled CSV or JSON-lines file; default: the six intents "
                                        "from evals/datasets/intents.jsonl plus the shared customer data"),
    text_col: str = typer.Option("text", help="the text column of --data"),
    label_col: str = typer.Option("label", help="the label column of --data"),
    out: Optional[Path] = typer.Option(None, help="model file to write (.npz); default data_dir/models/router_intents.npz "
                                       "(or router_<data name>.npz with --data)"),
    val_percent: int = typer.Option(10, min=0, max=50, help="validation split that picks the regularisation"),
    intents: Optional[Path] = typer.Option(None, help="hand-written intent examples (six-intent model only)"),
    shared_dir: Optional[Path] = typer.Option(None, help="the shared data folder (six-intent model only)"),
    include_holdout: bool = typer.Option(False, help="also train on the held-out quarter of the hand-written examples"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout"),
) -> None:
    """Train a classifier on sentence embeddings and write it to a model file."""
    from assistant.routing import train as rt
    from assistant.routing.textclf import DataError

    settings = load_settings(as_json=as_json, quiet_embeddings=True)
    try:
        if data is not None:
            out = out or settings.model_cache_dir / f"router_{data.stem}.npz"
            report = rt.train_csv(settings, data, out, text_col, label_col, val_percent)
        else:
            out = out or settings.model_cache_dir / "router_intents.npz"
            report = rt.train_intents(settings, out, intents_file=intents or rt.INTENTS_FILE,
                                      shared_dir=shared_dir or rt.SHARED_DATA, include_holdout=include_holdout)
    except (DataError, OSError) as exc:
        fail(str(exc), as_json=as_json)
    if as_json:
        emit_json(report)
        return
    val = report.get("val") or {}
    Console().print(f"wrote {report['model']} in {report['seconds']} s: C={report['C']}, "
                    f"validation accuracy {val.get('accuracy', '-')}, macro-F1 {val.get('macro_f1', '-')} "
                    f"(n={val.get('n', 0)})")
    if data is None:
        Console().print(f"use it with ASSISTANT_ROUTER_MODEL={report['model']}")


@app.command()
def evaluate(
    data: Path = typer.Option(..., help="a labelled CSV or JSON-lines file"),
    model: Optional[Path] = typer.Option(None, help="model file; default: the router's (settings.router_model "
                                         "or the shipped one)"),
    text_col: str = typer.Option("text"),
    label_col: str = typer.Option("label"),
    split: str = typer.Option("all", help="train | test (the quarter of the hand-written examples that "
                              "`router train` holds out) | all"),
    routes: bool = typer.Option(False, help="score the router's final decisions (rules, urgency, classifier) "
                                "instead of the classifier alone; labels must be intents"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout"),
) -> None:
    """Accuracy and macro-F1 of a model on a labelled file."""
    from assistant.routing import train as rt
    from assistant.routing.router import Router, router_model_file
    from assistant.routing.textclf import DataError, read_labelled

    settings = load_settings(as_json=as_json, quiet_embeddings=True)
    if split not in ("all", "train", "test"):
        fail("--split must be all, train or test", as_json=as_json)
    model = model or router_model_file(settings)
    try:
        if routes or split != "all":
            texts, labels = read_labelled(data, text_col, label_col)
            rows = [{"text": t, "intent": lab} for t, lab in zip(texts, labels)]
            if split != "all":  # the same stable split `router train` holds out
                rows = [r for r in rows if rt.is_held_out(r["text"]) == (split == "test")]
            if routes:
                router = Router(settings.model_copy(update={"router_model": model}))
                report = rt.evaluate_routes(router, rows)
            else:
                report = _classifier_report(settings, model, rows)
        else:
            report = rt.evaluate_csv(settings, model, data, text_col, label_col)
    except (DataError, OSError, ValueError) as exc:
        fail(str(exc), as_json=as_json)
    report = {"model": str(model), "data": str(data), **report}
    if as_json:
        emit_json(report)
        return
    Console().print(f"{data}: n={report['n']}, accuracy {report['accuracy']:.4f}, macro-F1 {report['macro_f1']:.4f}")
    for e in report.get("errors", [])[:20]:
        Console().print(f"  expected {e['expected']}, got {e['got']} ({e['reason']}): {e['text']}")


def _classifier_report(settings: Settings, model_path: Path, rows: list[dict[str, str]]) -> dict[str, Any]:
    from assistant.routing.train import cached_embedder
    from assistant.routing.textclf import EmbeddingClassifier, metrics

    model = EmbeddingClassifier.load(model_path)
    predicted = model.predict(cached_embedder(settings)([r["text"] for r in rows])) if rows else []
    return metrics([r["intent"] for r in rows], predicted)


@app.command()
def route(
    message: str = typer.Argument(..., help="a customer message"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout"),
) -> None:
    """Route one message (an empty conversation) and show the decision."""
    from assistant.routing.router import Router
    from assistant.routing.textclf import DataError
    from assistant.types import Conversation

    if not message.strip():
        fail("the message is empty", as_json=as_json)
    settings = load_settings(as_json=as_json, code=2, quiet_embeddings=True)  # 2, like this command's other errors
    try:
        decision = Router(settings).route(Conversation(), message)
    except (DataError, ValueError) as exc:
        fail(str(exc), as_json=as_json)
    if as_json:
        emit_json(decision.model_dump(mode="json"))
        return
    urgency = f", urgency {', '.join(decision.urgency)}" if decision.urgency else ""
    Console().print(f"{decision.intent} ({decision.confidence:.2f}, {decision.reason}{urgency})")
