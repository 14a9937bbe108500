"""Faults: the schedule of Chaos Toolkit experiments during a run, the fault actions and
probes the experiments call, and the ledger of acknowledged writes read back after the run."""
