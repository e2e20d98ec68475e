"""Compare two runs: per-metric deltas, and the rows whose outcome changed (fixed or broken)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from evals.results import SuiteResult, flat_metrics

# Metrics where lower is better: a rise is a regression.
LOWER_IS_BETTER = ("hallucinated_figure_rate", "false_no_answer_rate", "latency", "invented_figure_turns", "ks_gap")


def load_results(path: Path) -> dict[str, Any]:
    path = Path(path)
    file = path / "results.json" if path.is_dir() else path
    if not file.exists():
        raise FileNotFoundError(f"{file} not found (give a report folder or a results.json)")
    return json.loads(file.read_text(encoding="utf-8"))


def compare(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    suites_a = {n: SuiteResult.from_dict(s) for n, s in a.get("suites", {}).items()}
    suites_b = {n: SuiteResult.from_dict(s) for n, s in b.get("suites", {}).items()}
    flat_a, flat_b = flat_metrics(suites_a), flat_metrics(suites_b)
    deltas = []
    for metric in sorted(set(flat_a) | set(flat_b)):
        va, vb = flat_a.get(metric), flat_b.get(metric)
        delta = vb - va if va is not None and vb is not None else None
        deltas.append({"metric": metric, "a": va, "b": vb, "delta": delta, "verdict": _verdict(metric, delta)})
    changed = []
    for name in sorted(set(suites_a) & set(suites_b)):
        rows_a = {r.get("id"): r for r in suites_a[name].rows if r.get("id") is not None}
        for row in suites_b[name].rows:
            before = rows_a.get(row.get("id"))
            if before is None or before.get("passed") == row.get("passed"):
                continue
            changed.append({"suite": name, "id": row.get("id"), "question": row.get("question", ""),
                            "change": "fixed" if row.get("passed") else "broken",
                            "why_a": before.get("why", ""), "why_b": row.get("why", ""),
                            "answer_a": before.get("answer", ""), "answer_b": row.get("answer", "")})
    return {"a": a.get("run", {}), "b": b.get("run", {}), "deltas": deltas, "changed": changed,
            "regressions": [d["metric"] for d in deltas if d["verdict"] == "worse"]}


def _verdict(metric: str, delta: float | None) -> str:
    if delta is None:
        return "n/a"
    if abs(delta) < 1e-9:
        return "same"
    lower_better = any(key in metric for key in LOWER_IS_BETTER)
    better = delta < 0 if lower_better else delta > 0
    return "better" if better else "worse"


def print_comparison(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"A: {result['a'].get('started')} ({result['a'].get('git')})  ->  "
                        f"B: {result['b'].get('started')} ({result['b'].get('git')})")
    for column in ("metric", "A", "B", "delta", ""):
        table.add_column(column)
    for d in result["deltas"]:
        if ".path_share." in d["metric"] or d["verdict"] == "same" and d["metric"].endswith(".n"):
            continue
        style = {"worse": "red", "better": "green"}.get(d["verdict"])
        table.add_row(d["metric"], _fmt(d["a"]), _fmt(d["b"]),
                      "" if d["delta"] is None else f"{d['delta']:+.3f}", d["verdict"], style=style)
    console.print(table)
    if result["changed"]:
        rows = Table(title=f"Rows whose outcome changed ({len(result['changed'])})")
        for column in ("suite", "id", "change", "question", "why (B or A)"):
            rows.add_column(column, overflow="fold")
        for c in result["changed"]:
            rows.add_row(c["suite"], str(c["id"]), c["change"], str(c["question"])[:80],
                         (c["why_b"] or c["why_a"])[:120], style="red" if c["change"] == "broken" else "green")
        console.print(rows)
    else:
        console.print("No row changed outcome.")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.0f}"


def main(path_a: Path, path_b: Path, as_json: bool = False) -> int:
    result = compare(load_results(path_a), load_results(path_b))
    if as_json:
        sys.stdout.write(json.dumps(result, ensure_ascii=False, default=str) + "\n")
    else:
        print_comparison(result)
    return 0
