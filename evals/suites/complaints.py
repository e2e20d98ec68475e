"""Complaints: complaint classification on a CFPB-format CSV, beside the TF-IDF baseline,
through the complaints module's own evaluation function."""

from __future__ import annotations

from evals.results import SuiteResult
from evals.suites.base import SuiteOptions, SuiteUnavailable
from evals.system import System

NAME = "complaints"


def run(system: System, options: SuiteOptions) -> SuiteResult:
    raise SuiteUnavailable("the complaints module's evaluation function is not built yet")
