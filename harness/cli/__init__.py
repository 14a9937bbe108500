"""The `nova-harness` command: argument parsing, the commands, live progress. The only part
of the harness that imports `analysis/`."""
