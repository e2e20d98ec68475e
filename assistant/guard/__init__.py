"""Guard: PII redaction, injection heuristics, output policy, rate limits."""
