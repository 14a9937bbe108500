"""The generator process itself: malloc arenas and trimming, GC tuning, memory tracing,
work on a clock, rotating logs."""
