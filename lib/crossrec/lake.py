"""The Parquet lake: table locations, staging and atomic publish.

Layout of one dataset (a job's outputs, committed together) for one run date::

    <root>/<dataset>/run_date=<D>/_v_<version>/<table>/[<partition>=<value>/]part-*.parquet
    <root>/<dataset>/run_date=<D>/_COMMITTED.json     <- pointer to the published version

A run writes a fresh ``_v_<version>`` directory, then publishes by replacing the pointer file in one
atomic step (rename on POSIX/HDFS, a single PUT on object stores). Readers resolve the pointer, so a
run killed at any moment leaves the previous publication intact and readable, and rerunning a date
simply publishes a new version. Names beginning with ``_`` are skipped by Spark's partition
discovery, so a naive ``spark.read.parquet(<root>/<dataset>)`` never sees uncommitted files.
"""
from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from crossrec.errors import InputError, PublishError
from crossrec.schemas.table import Table
from crossrec.store import Store, join, normalize_url

POINTER = "_COMMITTED.json"
FAILED = "_FAILED.json"
KEEP_FAILED = 3  # failed runs' staged versions kept per dataset and date, newest first
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def check_run_date(run_date: str) -> str:
    if not _DATE.match(run_date):
        raise ValueError(f"run date {run_date!r}: expected YYYY-MM-DD")
    try:
        dt.date.fromisoformat(run_date)
    except ValueError as e:  # 2026-02-30
        raise ValueError(f"run date {run_date!r}: {e} (expected a real date, YYYY-MM-DD)") from None
    return run_date


def run_date_arg(text: str) -> str:
    """:func:`check_run_date` as an argparse ``type``: a bad date is a usage error (exit 2)
    naming the ``--run-date`` argument."""
    import argparse

    try:
        return check_run_date(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


@dataclass(frozen=True)
class Manifest:
    """What a commit published: the version directory and per-table facts (row counts, ...)."""

    dataset: str
    run_date: str
    version: str
    run_id: str
    tables: dict[str, dict[str, Any]]
    previous: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @staticmethod
    def from_json(text: str) -> "Manifest":
        return Manifest(**json.loads(text))


@dataclass(frozen=True)
class Staging:
    """Where one run writes before it publishes."""

    dataset: str
    run_date: str
    version: str
    dir: str

    def path(self, table: Table) -> str:
        return join(self.dir, table.name)


class Lake:
    """Table locations by name, staging and atomic publish over a :class:`Store`."""

    def __init__(self, root: str, store: Store) -> None:
        self.root = normalize_url(root)
        self.store = store

    @classmethod
    def open(cls, root: str, spark: Any = None) -> "Lake":
        return cls(root, Store.create(root, spark))

    def date_dir(self, dataset: str, run_date: str) -> str:
        return join(self.root, dataset, f"run_date={check_run_date(run_date)}")

    def stage(self, dataset: str, run_date: str, run_id: str) -> Staging:
        """A new, empty version directory for this run (never one that was published)."""
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%f")
        version = f"{stamp}_{run_id}"
        return Staging(dataset, run_date, version, join(self.date_dir(dataset, run_date), f"_v_{version}"))

    def commit(self, staging: Staging, run_id: str, tables: dict[str, dict[str, Any]],
               extra: dict[str, Any] | None = None) -> Manifest:
        """Publish ``staging`` in one atomic step, then drop versions nobody can be reading.

        Raises :class:`PublishError`, publishing nothing, if a table of ``tables`` (a folder of
        its name, or the files its ``files`` lists) is not in the staged folder: a run of the
        same dataset and date that published meanwhile collected unpublished versions, this one
        included (one writer per dataset and date).
        """
        wanted = [f for t, facts in tables.items() for f in facts.get("files", [t])]
        missing = [f for f in wanted if not self.store.exists(join(staging.dir, f))]
        if missing:
            raise PublishError(
                f"{staging.dir}: staged {', '.join(missing)} missing; nothing published. "
                f"Another run of {staging.dataset!r} for {staging.run_date} probably published "
                f"while this one ran and removed this unpublished version; run one writer per "
                f"dataset and date, then rerun")
        old = self.manifest(staging.dataset, staging.run_date)
        manifest = Manifest(staging.dataset, staging.run_date, staging.version, run_id, tables,
                            previous=old.version if old else None, extra=extra or {})
        date_dir = self.date_dir(staging.dataset, staging.run_date)
        self.store.write_text_atomic(join(staging.dir, "_MANIFEST.json"), manifest.to_json())
        self.store.write_text_atomic(join(date_dir, POINTER), manifest.to_json())
        self._collect_garbage(date_dir, keep={manifest.version, manifest.previous})
        return manifest

    def mark_failed(self, staging: Staging, reason: dict[str, Any]) -> None:
        """Keep a failed run's staged output (e.g. its quarantine) for inspection: the newest
        :data:`KEEP_FAILED` of the date are kept, older failed versions deleted (each holds a
        whole staged copy of the tables, and a date may fail every day until it is fixed)."""
        self.store.write_text_atomic(join(staging.dir, FAILED), json.dumps(reason, indent=2))
        date_dir = self.date_dir(staging.dataset, staging.run_date)
        self._prune_failed(date_dir, self._versions(date_dir)[0])

    def _collect_garbage(self, date_dir: str, keep: set[str | None]) -> None:
        failed, others = self._versions(date_dir)
        for name in others:
            if name[3:] not in keep:
                self.store.delete(join(date_dir, name))  # superseded, or left by a killed run
        self._prune_failed(date_dir, failed)

    def _versions(self, date_dir: str) -> tuple[list[str], list[str]]:
        """Version folders of a date as (failed, the others), each oldest first: names start
        with their UTC staging time."""
        names = sorted(n for n in self.store.list_names(date_dir) if n.startswith("_v_"))
        failed = [n for n in names if self.store.exists(join(date_dir, n, FAILED))]
        return failed, [n for n in names if n not in failed]

    def _prune_failed(self, date_dir: str, failed: list[str]) -> None:
        for name in failed[:-KEEP_FAILED]:
            self.store.delete(join(date_dir, name))

    def dates(self, dataset: str) -> list[str]:
        """Run dates with a published version, ascending."""
        names = self.store.list_names(join(self.root, dataset))
        dates = [n.split("=", 1)[1] for n in names if n.startswith("run_date=")]
        return [d for d in sorted(dates) if self.store.exists(join(self.date_dir(dataset, d), POINTER))]

    def manifest(self, dataset: str, run_date: str | None = None) -> Manifest | None:
        """The published manifest of ``run_date`` (default: the latest date), or None."""
        if run_date is None:
            dates = self.dates(dataset)
            if not dates:
                return None
            run_date = dates[-1]
        pointer = join(self.date_dir(dataset, run_date), POINTER)
        if not self.store.exists(pointer):
            return None
        return Manifest.from_json(self.store.read_text(pointer))

    def require(self, dataset: str, run_date: str, publisher: str) -> Manifest:
        """The published manifest of ``run_date``; an InputError naming the folder and the job to
        run first (``publisher``) when there is none."""
        m = self.manifest(dataset, run_date)
        if m is None:
            raise InputError(f"{self.date_dir(dataset, run_date)}: no published {dataset!r} dataset "
                             f"for {run_date} (run {publisher} for that date first)")
        return m

    def manifest_on_or_before(self, dataset: str, run_date: str) -> Manifest | None:
        """The latest publication dated ``run_date`` or earlier, or None: for datasets published
        only when their inputs change (item text vectors), so a date may have none of its own."""
        dates = [d for d in self.dates(dataset) if d <= check_run_date(run_date)]
        return self.manifest(dataset, dates[-1]) if dates else None

    def version_dir(self, dataset: str, run_date: str | None = None) -> str:
        """Folder of the published version of ``run_date`` (default: the latest date); raises if
        nothing is published."""
        m = self.manifest(dataset, run_date)
        if m is None:
            when = run_date or "any date"
            raise FileNotFoundError(f"{self.root}: no published {dataset!r} dataset for {when}")
        return join(self.date_dir(dataset, m.run_date), f"_v_{m.version}")

    def path(self, table: Table, run_date: str | None = None) -> str:
        """Location of a published table; raises if nothing is published."""
        return join(self.version_dir(table.dataset, run_date), table.name)

    def read(self, spark: Any, table: Table, run_date: str | None = None) -> Any:
        """The published table as a DataFrame, with its declared schema."""
        return spark.read.schema(table.as_spark_schema()).parquet(self.path(table, run_date))
