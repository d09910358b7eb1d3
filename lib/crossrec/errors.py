"""Errors a user can act on. Messages name the file, row and field; never a raw user id."""
from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Iterator


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


class LakeUnreadable(CrossrecError):
    """pyarrow cannot open the lake's files from a process (hdfs:// without libhdfs, s3a://
    without credentials there): the readers that can leave the files to Spark."""


@contextmanager
def raised_in_tasks(kind: type[CrossrecError] = InputError) -> Iterator[None]:
    """A ``kind`` error a Spark task raised, raised again on the driver as itself: it arrives
    wrapped in a ``PythonException`` whose text is the worker's whole traceback, which the jobs
    would print (exit 1) instead of the error's one line (exit 2), and which callers could not
    catch by its type."""
    try:
        yield
    except Exception as e:
        found = re.findall(rf"crossrec\.errors\.{kind.__name__}: (.+)", str(e))
        if type(e).__name__ != "PythonException" or not found:
            raise
        raise kind(found[-1]) from e
