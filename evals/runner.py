"""`python -m evals`: run the suites, write results.json + report.html, print a summary, gate.

Exit codes: 0 every threshold met, 1 a threshold missed (or a suite crashed), 2 bad usage."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import subprocess
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from assistant.config import PROJECT_ROOT, apply_offline_env
from evals import gate
from evals.results import SuiteResult
from evals.suites.base import SuiteOptions, SuiteUnavailable

log = logging.getLogger("evals")

SUITES = ["qa", "safety", "routing", "complaints", "scoring", "marketing", "scenarios"]
# complaints is not in the fast slice: its evaluation trains on embeddings of every CFPB
# narrative (about 10 minutes on two cores without the embedding cache).
CI_SUITES = ["qa", "safety", "routing", "scoring", "marketing", "scenarios"]
DEFAULT_THRESHOLDS = PROJECT_ROOT / "evals" / "thresholds.yaml"


class UsageError(ValueError):
    pass


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m evals", description=(
        "Run the Meadow assistant's eval suites; write data/reports/<timestamp>/results.json and report.html; "
        "exit non-zero when a metric misses its threshold."))
    p.add_argument("--suite", default=",".join(SUITES),
                   help=f"comma-separated: {','.join(SUITES)}; 'ci' alone is the fast slice of every suite, "
                        "'ci,NAME,...' the fast slice of the named ones (default: all, full)")
    p.add_argument("--backend", choices=["embedded", "openai"], default=None,
                   help="the assistant's LLM backend (default: ASSISTANT_LLM_BACKEND or embedded); "
                        "openai needs ASSISTANT_LLM_BASE_URL")
    p.add_argument("--endpoint", default=None, metavar="URL",
                   help="run qa/safety/scenarios against an OpenAI-compatible chat endpoint instead "
                        "(e.g. http://127.0.0.1:7860/v1)")
    p.add_argument("--endpoint-model", default="meadow", help="model name sent to --endpoint")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="at most N rows per suite (stratified)")
    p.add_argument("--data", action="append", default=[], metavar="SUITE=PATH",
                   help="use another data file (same format) for a suite; repeatable")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="use this data dir (its index and database) instead of a fresh temporary one")
    p.add_argument("--out", type=Path, default=None, help="reports folder (default: data_dir/reports, ASSISTANT_REPORTS_DIR)")
    p.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"),
                   help="compare two earlier runs (report folders or results.json files) and exit")
    p.add_argument("--thresholds", type=Path, default=DEFAULT_THRESHOLDS, help="thresholds file")
    p.add_argument("--no-gate", action="store_true", help="report only; never exit non-zero for a threshold")
    p.add_argument("--no-baseline", action="store_true", help="skip the baseline chain in the QA suite")
    p.add_argument("--no-judge", action="store_true", help="skip the LLM-as-judge even when configured")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout (logs on stderr)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def parse_suites(value: str) -> tuple[list[str], bool]:
    names = [s.strip() for s in value.split(",") if s.strip()]
    ci = "ci" in names
    if ci:
        names = [n for n in names if n != "ci"] or CI_SUITES
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        raise UsageError(f"unknown suite(s): {', '.join(unknown)} (known: {', '.join(SUITES)}, ci)")
    return list(dict.fromkeys(names)), ci


def parse_data(pairs: list[str]) -> dict[str, Path]:
    out = {}
    for pair in pairs:
        suite, sep, path = pair.partition("=")
        if not sep or suite not in SUITES or not path:
            raise UsageError(f"--data expects SUITE=PATH with SUITE in {', '.join(SUITES)}, got {pair!r}")
        if not Path(path).exists():
            raise UsageError(f"--data {suite}: {path} not found")
        out[suite] = Path(path)
    return out


def run_suite(name: str, system: Any, options: SuiteOptions) -> SuiteResult:
    started = time.perf_counter()
    try:
        module = importlib.import_module(f"evals.suites.{name}")
        result = module.run(system, options)
    except SuiteUnavailable as exc:
        result = SuiteResult.unavailable(name, str(exc))
    except Exception as exc:  # reported as a failed suite; the other suites still run
        log.error("suite %s failed:\n%s", name, traceback.format_exc())
        result = SuiteResult.failed(name, f"{type(exc).__name__}: {exc}")
    result.seconds = round(time.perf_counter() - started, 1)
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    from evals.system import System

    names, ci = parse_suites(args.suite)
    data = parse_data(args.data)
    thresholds = gate.load_thresholds(args.thresholds, ci=ci) if args.thresholds else {}
    system = System.build(backend=args.backend or os.environ.get("ASSISTANT_LLM_BACKEND", "embedded"),
                          data_dir=args.data_dir, endpoint=args.endpoint, endpoint_model=args.endpoint_model,
                          endpoint_key=os.environ.get("ASSISTANT_EVAL_API_KEY"))
    started = datetime.now(timezone.utc)
    suites: dict[str, SuiteResult] = {}
    try:
        for name in names:
            options = SuiteOptions(data=data.get(name), limit=args.limit, baseline=not args.no_baseline,
                                   progress=not (args.quiet or args.json), ci=ci, judge=not args.no_judge)
            log.warning("running suite %s", name)
            suites[name] = run_suite(name, system, options)
    finally:
        system.close()
    checks = gate.check(suites, thresholds)
    return {
        "run": {
            "started": started.isoformat(timespec="seconds"),
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "suites": names, "ci": ci, "target": system.name, "endpoint": args.endpoint,
            "limit": args.limit, "data": {k: str(v) for k, v in data.items()},
            "git": _git_commit(), "thresholds": str(args.thresholds) if args.thresholds else None,
            "settings": {k: v for k, v in system.settings.masked().items()
                         if k in {"llm_backend", "llm_model", "llm_served_model", "llm_base_url", "embedding_model",
                                  "retrieval_k", "hybrid", "faq_threshold", "answer_min_score", "llm_max_new_tokens"}},
        },
        "suites": {name: result.as_dict() for name, result in suites.items()},
        "gate": [c.as_dict() for c in checks],
        "passed": gate.passed(checks),
    }


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
                             text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=PROJECT_ROOT, capture_output=True,
                               text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "") if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def write_report(results: dict[str, Any], out: Path) -> Path:
    from evals.report import render_html
    from evals.scenario_table import scenario_markdown

    folder = out / datetime.now().strftime("%Y%m%d-%H%M%S")
    n = 1
    while folder.exists():
        n += 1
        folder = out / (datetime.now().strftime("%Y%m%d-%H%M%S") + f"-{n}")
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False, default=str),
                                         encoding="utf-8")
    (folder / "report.html").write_text(render_html(results), encoding="utf-8")
    scenarios = results.get("suites", {}).get("scenarios")
    if scenarios and scenarios.get("rows"):
        (folder / "scenarios.md").write_text(scenario_markdown(scenarios), encoding="utf-8")
    return folder


def print_summary(results: dict[str, Any], folder: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    gate_by_metric = {}
    for c in results["gate"]:
        gate_by_metric.setdefault(c["metric"], []).append(c)
    table = Table(title=f"Eval run {results['run']['started']} · {results['run']['target']}")
    for column in ("suite", "metric", "value", "baseline", "threshold", "gate"):
        table.add_column(column)
    for name, suite in results["suites"].items():
        if suite["status"] != "ok":
            table.add_row(name, suite["status"], "", "", "", "", style="yellow" if suite["status"] != "error" else "red")
            table.add_row("", f"[dim]{suite['note'][:110]}[/dim]", "", "", "", "")
            continue
        baseline = next(iter(suite["baselines"].values()), {}) if suite["baselines"] else {}
        for metric, value in suite["metrics"].items():
            if metric.startswith("path_share.") or metric == "n":
                continue
            checks = gate_by_metric.get(f"{name}.{metric}", [])
            thr = ", ".join(f"{c['op']} {c['threshold']:g}" for c in checks)
            verdict = ", ".join(c["status"] for c in checks)
            style = "red" if "fail" in verdict else None
            table.add_row(name, metric, _fmt(value), _fmt(baseline.get(metric)) if metric in baseline else "",
                          thr, verdict, style=style)
        name = ""
    console.print(table)
    failed = [c for c in results["gate"] if c["status"] == "fail"]
    console.print(f"report: {folder / 'report.html'}")
    if failed:
        console.print(f"[red]gate: {len(failed)} threshold(s) missed[/red]: "
                      + ", ".join(f"{c['metric']} {c['op']} {c['threshold']:g} (got {_fmt(c['value'])})" for c in failed))
    else:
        console.print("[green]gate: every threshold met[/green]")


def summary(results: dict[str, Any]) -> dict[str, Any]:
    """results.json without the per-row records (those stay in the report folder)."""
    keep = ("status", "note", "metrics", "baselines", "by_category", "seconds")
    return {**results, "suites": {name: {k: s[k] for k in keep} for name, s in results["suites"].items()}}


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.0f}"
    return str(value)


def main(argv: list[str] | None = None) -> int:
    apply_offline_env()
    try:
        args = parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or bad usage (2)
        return int(exc.code or 0)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.compare:
            from evals.compare import main as compare_main

            return compare_main(args.compare[0], args.compare[1], as_json=args.json)
        if args.limit is not None and args.limit < 1:
            raise UsageError("--limit must be at least 1")
        results = run(args)
    except (UsageError, ValueError, FileNotFoundError) as exc:
        if args.json:
            sys.stdout.write(json.dumps({"error": str(exc)}) + "\n")
        else:
            print(f"error: {exc}", file=sys.stderr)
        return 2
    folder = write_report(results, args.out or _reports_dir())
    results["report"] = str(folder)
    if args.json:
        sys.stdout.write(json.dumps(summary(results), ensure_ascii=False, default=str) + "\n")
    else:
        print_summary(results, folder)
    return 0 if (results["passed"] or args.no_gate) else 1


def _reports_dir() -> Path:
    """Reports go under the data dir (not the code checkout), so the web app's QA tab finds them."""
    from assistant.config import Settings

    return Settings().reports_path
