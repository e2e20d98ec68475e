"""Routing: the intent router on intents.jsonl, beside its baseline, through the router's own
evaluation function (assistant.router); this adapter maps its result onto a SuiteResult."""

from __future__ import annotations

from evals.results import SuiteResult
from evals.suites.base import DATASETS, SuiteOptions, SuiteUnavailable
from evals.system import System

NAME = "routing"
DEFAULT_DATA = DATASETS / "intents.jsonl"


def run(system: System, options: SuiteOptions) -> SuiteResult:
    raise SuiteUnavailable("the router's evaluation function (assistant.router) is not built yet")
