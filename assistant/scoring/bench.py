"""Benchmark: batch throughput (applicants/s) and single-call latency in-process.

    python -m assistant.scoring.bench [--rows 20000] [--calls 2000] [--out bench/scoring.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from assistant.scoring.decision import Scorer, decision_log


def synthetic_applicants(scorer: Scorer, rows: int, seed: int = 0) -> list[dict[str, Any]]:
    """Valid applicants spread over every field's range (deterministic)."""
    rng = np.random.default_rng(seed)
    product = scorer.terms.product(scorer.info.field("product").default)
    out = []
    for _ in range(rows):
        a: dict[str, Any] = {"product": product.key, "consent": True}
        for f in scorer.info.fields:
            if f.name in a or f.source == "profile" and rng.random() < 0.5:
                continue
            if f.kind == "choice":
                a[f.name] = str(rng.choice(f.choices))
            elif f.name == "age":
                a[f.name] = int(rng.integers(18, 66))
            elif f.name == "monthly_income":
                a[f.name] = float(rng.integers(20, 400) * 100)
            elif f.name == "term_months":
                a[f.name] = int(rng.choice(product.term_months))
            elif f.name == "amount":
                a[f.name] = float(rng.integers(product.limit_min / 100, product.limit_max / 100 + 1) * 100)
            else:
                low, high = f.min or 0, min(f.max or 10, 20000)
                value = rng.uniform(low, high)
                a[f.name] = int(value) if f.kind == "integer" else round(float(value), 2)
        out.append(a)
    return out


def run(scorer: Scorer, rows: int = 20000, calls: int = 2000) -> dict[str, Any]:
    """The scorer's own speed: the per-decision log is off while it runs (an app that configured
    logging at INFO writes one JSON line per decision, which measured 18 times slower in the test run)."""
    was, decision_log.disabled = decision_log.disabled, True
    try:
        return _run(scorer, rows, calls)
    finally:
        decision_log.disabled = was


def _run(scorer: Scorer, rows: int, calls: int) -> dict[str, Any]:
    applicants = synthetic_applicants(scorer, rows)
    scorer.score_many(applicants[:1000])  # warm up
    runs = [_timed(lambda: scorer.score_many(applicants)) for _ in range(3)]
    batch_s, cpu_s = min(r[0] for r in runs), min(r[1] for r in runs)
    latencies = []
    for a in applicants[:calls]:
        started = time.perf_counter()
        scorer.score(a)
        latencies.append((time.perf_counter() - started) * 1000)
    latencies.sort()
    return {
        "model_version": scorer.model.version,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "batch": {"rows": rows, "seconds": round(batch_s, 4), "applicants_per_s": round(rows / batch_s),
                  # CPU time: what one idle core does, whatever else shares the machine
                  "cpu_seconds": round(cpu_s, 4), "applicants_per_cpu_s": round(rows / cpu_s)},
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "single": {"calls": calls, "p50_ms": round(statistics.median(latencies), 4),
                   "p95_ms": round(latencies[int(0.95 * (calls - 1))], 4),
                   "p99_ms": round(latencies[int(0.99 * (calls - 1))], 4)},
        "targets": {"applicants_per_s": 20000, "p50_ms": 2.0},
    }


def _timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def table(result: dict[str, Any]) -> str:
    b, s = result["batch"], result["single"]
    return "\n".join([
        f"scorecard {result['model_version']} on {result['machine']['cpus']} CPUs, "
        f"load average {result['load_average'][0] if result['load_average'] else '?'}",
        f"{'measure':<28}{'value':>12}{'target':>10}",
        f"{'batch applicants/s (wall)':<28}{b['applicants_per_s']:>12,}{'>= 20,000':>10}",
        f"{'batch applicants/CPU-s':<28}{b['applicants_per_cpu_s']:>12,}{'':>10}",
        f"{'single call p50 (ms)':<28}{s['p50_ms']:>12.3f}{'< 2':>10}",
        f"{'single call p95 (ms)':<28}{s['p95_ms']:>12.3f}{'':>10}",
        f"{'single call p99 (ms)':<28}{s['p99_ms']:>12.3f}{'':>10}",
    ])


def main(argv: list[str] | None = None) -> None:
    from assistant.config import Settings
    from assistant.scoring.client import build_scorer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=Path("bench/scoring.json"))
    parser.add_argument("--json", action="store_true", help="print the JSON result instead of the table")
    args = parser.parse_args(argv)
    result = run(build_scorer(Settings()), args.rows, args.calls)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(result) if args.json else table(result))


if __name__ == "__main__":
    main()
