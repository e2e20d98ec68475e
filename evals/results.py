"""What a suite hands back: metrics, the baselines measured in the same run, rows (each with
why it failed), plot data, and the definition of every metric. Plain data, JSON-ready."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class SuiteResult:
    suite: str
    status: str = "ok"  # ok | not_available | error
    note: str = ""
    metrics: dict[str, float | None] = field(default_factory=dict)
    baselines: dict[str, dict[str, float | None]] = field(default_factory=dict)  # name -> metrics
    by_category: dict[str, dict[str, float | None]] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)  # one per item: id, passed, why, ...
    plots: dict[str, Any] = field(default_factory=dict)  # data the report draws
    definitions: dict[str, str] = field(default_factory=dict)  # metric -> what it means
    seconds: float = 0.0

    @classmethod
    def unavailable(cls, suite: str, reason: str) -> "SuiteResult":
        return cls(suite=suite, status="not_available", note=f"not available: {reason}")

    @classmethod
    def failed(cls, suite: str, error: str) -> "SuiteResult":
        return cls(suite=suite, status="error", note=error)

    @property
    def failures(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r.get("passed") is False]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SuiteResult":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def flat_metrics(suites: dict[str, SuiteResult]) -> dict[str, float | None]:
    """{"qa.key_fact_accuracy": 0.62, "qa.baseline.langchain_rag.key_fact_accuracy": 0.41, ...}"""
    flat: dict[str, float | None] = {}
    for name, result in suites.items():
        for metric, value in result.metrics.items():
            flat[f"{name}.{metric}"] = value
        for baseline, metrics in result.baselines.items():
            for metric, value in metrics.items():
                flat[f"{name}.baseline.{baseline}.{metric}"] = value
    return flat
