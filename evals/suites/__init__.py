"""One module per suite; each has `run(system, options) -> SuiteResult` and raises
SuiteUnavailable (reported as "not available: <reason>") when it cannot run here."""
