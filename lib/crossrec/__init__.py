"""crossrec: cross-platform, cross-domain recommendation as Spark batch jobs."""

__version__ = "0.1.0"
