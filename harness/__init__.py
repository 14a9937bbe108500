"""The Nova load, soak and failover harness."""

__version__ = "0.1.0"
