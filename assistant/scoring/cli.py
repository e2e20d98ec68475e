"""`assistant scoring ...`: train, evaluate, monitor, batch, serve, score, bench.
Results go to stdout (one JSON object with --json), logs and progress to stderr."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from assistant.cli.common import emit_json, fail, load_settings

app = typer.Typer(help="The eligibility scoring tool (scorecard).", no_args_is_help=True)

JSON_OPT = typer.Option(False, "--json", help="print one JSON object on stdout")


def _emit(result: Any, as_json: bool, render) -> None:
    if as_json:
        emit_json(result)
    else:
        render(result)


def _console():
    from rich.console import Console

    return Console()


def _table(title: str, columns: list[str], rows: list[list[Any]]):
    from rich.table import Table

    table = Table(title=title)
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*[str(x) for x in r])
    return table


@app.command()
def train(
    spec: str = typer.Option("german", help="shipped spec (german, heloc, taiwan) or a YAML path"),
    data: Optional[Path] = typer.Option(None, help="CSV in the spec's format (default: the spec's file "
                                                   "under ASSISTANT_SCORING_DATA_DIR)"),
    out: Optional[Path] = typer.Option(None, help="output folder (default: the committed scorecard folder)"),
    as_json: bool = JSON_OPT,
) -> None:
    """Train a scorecard (fixed seed): points table CSV/JSON, model card and two small plots."""
    from assistant.scoring.card import write_card
    from assistant.scoring.spec import load_spec
    from assistant.scoring.train import train as fit

    settings = load_settings()
    try:
        dataset = load_spec(spec)
        path = data or dataset.data_path(_data_dir(settings))
        if not Path(path).exists():
            fail(f"no data file {path}")
        result = fit(dataset, Path(path))
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    target = out or settings.scorecard_dir
    report = write_card(result, target)
    summary = {"model_version": result.model.version, "out": str(target), "held_out": report["held_out"],
               "decision_mix_held_out": report["decision_mix_held_out"],
               "cutoffs": {"approve_min_score": round(result.model.approve_score, 2),
                           "decline_below_score": round(result.model.decline_score, 2)}}

    def render(s: dict[str, Any]) -> None:
        rows = [[name, m["auc"], m["gini"], m["ks"]] for name, m in s["held_out"].items()]
        _console().print(_table(f"{s['model_version']} -> {s['out']} (held-out)", ["model", "AUC", "Gini", "KS"], rows))

    _emit(summary, as_json, render)


@app.command()
def evaluate(
    spec: str = typer.Option("all", help="german, heloc, taiwan, a YAML path, or all"),
    data: Optional[Path] = typer.Option(None, help="also score this CSV (same format as the training data)"),
    model: Optional[Path] = typer.Option(None, help="score --data with this committed scorecard folder, "
                                                    "without training anything"),
    as_json: bool = JSON_OPT,
) -> None:
    """AUC, KS and Gini on held-out data: scorecard vs logistic regression vs gradient boosting."""
    from assistant.scoring.evaluate import SPECS, TOLERANCE, compare, score_file
    from assistant.scoring.model import ScorecardModel
    from assistant.scoring.spec import load_spec

    settings = load_settings()
    try:
        if model is not None:
            if data is None:
                fail("--model needs --data (the file to score)")
            results = [score_file(ScorecardModel.load(model), data)]
        else:
            if data is not None and spec == "all":
                fail("--data needs --spec (which data set the file is in)")
            names = SPECS if spec == "all" else (spec,)
            results = []
            for name in names:
                dataset = load_spec(name)
                typer.echo(f"evaluating {dataset.name} ...", err=True)
                results.append(compare(dataset, dataset.data_path(_data_dir(settings)), extra=data))
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    output = {"tolerance_auc": TOLERANCE, "results": results}

    def render(o: dict[str, Any]) -> None:
        rows = [[r["dataset"], r["split"], r["model"], r["n"], f"{r['auc']:.4f}", f"{r['ks']:.4f}",
                 f"{r['gini']:.4f}", f"{r['gap_to_best']:+.4f}" if "gap_to_best" in r else ""]
                for res in o["results"] for r in res["rows"]]
        _console().print(_table("Held-out discrimination", ["data", "split", "model", "n", "AUC", "KS", "Gini",
                                                            "vs best"], rows))
        for res in o["results"]:
            if "within_tolerance" in res:
                verdict = "within" if res["within_tolerance"] else "NOT within"
                typer.echo(f"{res['dataset']}: scorecard {verdict} {o['tolerance_auc']} AUC of the better baseline")

    _emit(output, as_json, render)


@app.command()
def monitor(
    new: Path = typer.Argument(..., help="CSV of new applicants (training format or applicant fields)"),
    model: Optional[Path] = typer.Option(None, help="scorecard folder (default: the committed one)"),
    as_json: bool = JSON_OPT,
) -> None:
    """Population stability (PSI) per feature and for the score, against the training data."""
    from assistant.scoring.model import ScorecardModel
    from assistant.scoring.monitor import monitor_file

    try:
        report = monitor_file(ScorecardModel.load(model or load_settings(code=2).scorecard_dir), new)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        fail(str(exc))

    def render(r: dict[str, Any]) -> None:
        rows = [["(score)", r["score"]["psi"], r["score"]["status"], ""]]
        rows += [[f["feature"], f["psi"], f["status"], f"{f['missing_share']:.1%}"] for f in r["features"]]
        _console().print(_table(f"PSI of {r['rows']} rows vs training ({r['model_version']})",
                                ["feature", "PSI", "status", "missing"], rows))

    _emit(report, as_json, render)


@app.command()
def batch(
    source: Path = typer.Argument(..., help="CSV with one column per applicant field"),
    target: Path = typer.Argument(..., help="output CSV: the input columns + decision, score, reasons"),
    progress: bool = typer.Option(True, help="show a progress bar on stderr"),
    as_json: bool = JSON_OPT,
) -> None:
    """Score a CSV of applicants (invalid rows get an `error`, never a score)."""
    from assistant.scoring.batch import batch_file
    from assistant.scoring.client import build_scorer

    try:
        summary = batch_file(build_scorer(load_settings(code=2)), source, target, progress=progress)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    _emit(summary, as_json, lambda s: typer.echo(
        f"{s['rows']} applicants -> {s['output']} in {s['seconds']} s ({s['applicants_per_s']:,}/s): {s['decisions']}"))


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8100),
) -> None:
    """Run the scoring tool as its own service (POST /score, GET /healthz, docs at /docs)."""
    import uvicorn

    from assistant.scoring.client import build_scorer
    from assistant.scoring.service import create_app

    uvicorn.run(create_app(build_scorer(load_settings())), host=host, port=port, log_level="info")


@app.command()
def score(
    applicant: str = typer.Argument(..., help="applicant as JSON text, @file.json, or - for stdin"),
    trace_id: Optional[str] = typer.Option(None),
    as_json: bool = JSON_OPT,
) -> None:
    """Score one applicant (in-process, or over HTTP when ASSISTANT_SCORING_URL is set)."""
    from assistant.scoring.applicant import ApplicantError
    from assistant.scoring.client import ScoringUnavailable, make_scoring_client

    text = sys.stdin.read() if applicant == "-" else \
        Path(applicant[1:]).read_text(encoding="utf-8") if applicant.startswith("@") else applicant
    try:
        raw = json.loads(text)
    except ValueError as exc:
        fail(f"the applicant is not valid JSON: {exc}")
    if not isinstance(raw, dict):
        fail("the applicant must be a JSON object")
    settings = load_settings()
    try:
        decision = make_scoring_client(settings).score(raw, trace_id=trace_id)
    except ApplicantError as exc:
        if as_json:
            emit_json(exc.to_dict())
        else:
            typer.echo("invalid applicant:", err=True)
            for e in exc.errors:
                typer.echo(f"  {e.field}: {e.message}", err=True)
        raise typer.Exit(2)
    except ScoringUnavailable as exc:
        fail(str(exc), code=3)

    def render(d: dict[str, Any]) -> None:
        typer.echo(f"{d['decision'].upper()}  score {d['score']}  band {d['band']}  ({d['model_version']})")
        if d["indicative_limit"]:
            typer.echo(f"indicative limit {d['currency']} {d['indicative_limit']:,.0f}, "
                       f"APR {d['apr_min_pct']}%-{d['apr_max_pct']}%")
        for r in d["reasons"]:
            typer.echo(f"  - {r['text']}")
        if d["counterfactual"]:
            typer.echo(f"would be {d['counterfactual']['decision']} with {d['counterfactual']['text']}")

    _emit(decision.model_dump(), as_json, render)


@app.command()
def bench(
    rows: int = typer.Option(20000),
    calls: int = typer.Option(2000),
    out: Path = typer.Option(Path("bench/scoring.json")),
    as_json: bool = JSON_OPT,
) -> None:
    """Batch throughput and single-call latency in-process; writes bench/scoring.json."""
    from assistant.scoring.bench import run, table
    from assistant.scoring.client import build_scorer

    result = run(build_scorer(load_settings()), rows, calls)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    _emit(result, as_json, lambda r: typer.echo(table(r)))


if __name__ == "__main__":
    app()


def _data_dir(settings):
    from assistant.public_data import resolve_datasets_dir

    return settings.scoring_data_dir or resolve_datasets_dir(settings)
