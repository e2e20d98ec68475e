"""Prometheus counters. Components take a registry (tests pass a fresh one); the default registry
is what the web app exposes on /metrics. Asking twice for the same counter returns the first one,
so building several guards in one process is fine."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter


def counter(name: str, documentation: str, labels: list[str], registry: CollectorRegistry) -> Counter:
    existing = getattr(registry, "_names_to_collectors", {}).get(name)
    if isinstance(existing, Counter):
        return existing
    return Counter(name, documentation, labels, registry=registry)


class GuardMetrics:
    """Every block with its reason, every flag, every PII value found (by kind, never by value)."""

    def __init__(self, registry: CollectorRegistry | None = None):
        registry = REGISTRY if registry is None else registry
        self.blocks = counter("assistant_guard_blocks", "Messages or replies the guard blocked or rewrote, "
                              "by direction (input/output) and reason", ["direction", "reason"], registry)
        self.flags = counter("assistant_guard_flags", "Policy flags raised by the guard, by direction and flag",
                             ["direction", "flag"], registry)
        self.pii = counter("assistant_guard_pii", "PII values found, by direction and kind",
                           ["direction", "kind"], registry)

    def block(self, direction: str, reason: str) -> None:
        self.blocks.labels(direction=direction, reason=reason).inc()

    def flag(self, direction: str, flags: list[str]) -> None:
        for flag in flags:
            self.flags.labels(direction=direction, flag=flag).inc()

    def found_pii(self, direction: str, kinds: list[str]) -> None:
        for kind in kinds:
            self.pii.labels(direction=direction, kind=kind).inc()
