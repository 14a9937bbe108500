"""The results format: the one contract between `harness/` (which writes a results folder)
and `analysis/` (which reads it). Table schemas, kinds and event types, the folder layout
and atomic writes, the Recorder and its compaction, provenance, the YAML input helpers and
the base errors. It imports nothing from `harness/`, `analysis/` or `stack/`
(tests/unit/test_layout.py holds that)."""
