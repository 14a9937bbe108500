"""Functional checklist suites (`nova-harness check`): each check is one checklist line, ends
PASS, FAIL or SKIPPED, and keeps its evidence (docs/checks.md)."""
