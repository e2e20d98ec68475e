"""The eval suite: `python -m evals` (or `assistant eval`). See docs/evals.md."""
