"""The Nova load, soak and failover harness."""

from records.provenance import HARNESS_VERSION as __version__

__all__ = ["__version__"]
