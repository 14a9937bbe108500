"""Soak mode: connect/disconnect cycles, interim verdicts, status, and resuming a killed soak."""
