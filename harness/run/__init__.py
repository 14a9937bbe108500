"""`nova-harness run`: the engine that composes a run, and the live row sink."""
