"""Errors a user can act on. Messages name the file, row and field; never a raw user id."""


class CrossrecError(Exception):
    """Base of every error crossrec raises on purpose."""


class ConfigError(CrossrecError):
    """A configuration file or argument is invalid."""


class InputError(CrossrecError):
    """An input file cannot be read at all (wrong header, unreadable Parquet, ...)."""


class QualityGateError(CrossrecError):
    """The data-quality gate failed: nothing was published."""


class PublishError(CrossrecError):
    """A staged version could not be published: nothing was (the previous publication stands)."""
