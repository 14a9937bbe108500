"""Analysis of results folders (verdicts, charts, reports)."""
