"""The threshold gate: evals/thresholds.yaml says the minimum (or maximum) each metric must
reach; a run that misses one exits non-zero.

    qa.key_fact_accuracy: {min: 0.40}
    qa.hallucinated_figure_rate: {max: 0.0}
    ci:                                  # overrides used by `--suite ci`
      qa.key_fact_accuracy: {min: 0.35}
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from evals.results import SuiteResult, flat_metrics


@dataclass
class Check:
    metric: str
    op: str  # min | max
    threshold: float
    value: float | None
    status: str  # pass | fail | skipped
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_thresholds(path: Path, ci: bool = False) -> dict[str, dict[str, float]]:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of metric -> {{min: x}} or {{max: x}}")
    overrides = data.pop("ci", None) or {}
    thresholds = {k: v for k, v in data.items() if isinstance(v, dict)}
    if ci:
        thresholds.update(overrides)
    for metric, rule in thresholds.items():
        if not set(rule) <= {"min", "max"} or not rule:
            raise ValueError(f"{path}: {metric}: use min: or max:, got {rule}")
    return thresholds


def check(suites: dict[str, SuiteResult], thresholds: dict[str, dict[str, float]]) -> list[Check]:
    """A metric of a suite that did not run, or is not available here, is skipped; a suite that
    crashed fails its thresholds (a broken suite must not pass the gate)."""
    values = flat_metrics(suites)
    checks = []
    for metric, rule in thresholds.items():
        suite = suites.get(metric.split(".", 1)[0])
        for op, threshold in rule.items():
            value = values.get(metric)
            if suite is None:
                checks.append(Check(metric, op, threshold, None, "skipped", "suite not run"))
            elif suite.status == "error":
                checks.append(Check(metric, op, threshold, None, "fail", f"suite failed: {suite.note[:200]}"))
            elif suite.status != "ok":
                checks.append(Check(metric, op, threshold, None, "skipped", suite.note))
            elif value is None:
                checks.append(Check(metric, op, threshold, None, "skipped", "metric not measured in this run"))
            else:
                ok = value >= threshold if op == "min" else value <= threshold
                checks.append(Check(metric, op, threshold, value, "pass" if ok else "fail"))
    return checks


def passed(checks: list[Check]) -> bool:
    return all(c.status != "fail" for c in checks)
