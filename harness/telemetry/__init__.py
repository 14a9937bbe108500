"""Live telemetry of a run: the `nova_harness_*` series served for Prometheus while it runs."""
