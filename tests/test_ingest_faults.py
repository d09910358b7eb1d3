"""The ingest job under real faults: a task failing its first attempt, a run killed mid-write, a
rerun of the same date, a failed quality gate and a missing key.

Every test compares whole publications (all tables, all rows) with a clean run's; the ``base``
fixture is that clean run, in-process on the session's Spark. Runs that need their own master or
a process to kill go through ``tests/fault_runner.py`` in a subprocess. A run costs tens of CPU
seconds, so each is done once (module fixtures) and, where possible, while a subprocess runs: two
streams of work for two cores.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyspark.errors import AnalysisException

from crossrec.ingest import pipeline, unify
from crossrec.ingest.pseudonym import ENV_VAR
from crossrec.lake import FAILED, Manifest
from crossrec.schemas.lake import PUBLISHED, QUARANTINE
from jobs import ingest
from tests import fault_runner
from tests.lakeread import (Rows, copy_lake, data_files, date_dir, manifest, pointer_bytes,
                            published_tables, sorted_rows, version_dirs, version_tables)
from tests.rawdata import write_raw

ROOT = Path(__file__).resolve().parents[1]
DATE = "2026-11-23"
# The conftest session's settings, so a subprocess run differs from the in-process one only in
# what the test changes.
CONF = {"spark.sql.shuffle.partitions": "4", "spark.default.parallelism": "4",
        "spark.ui.showConsoleProgress": "false"}
# Base inputs with something in every table: an unknown item, an exact duplicate, a truncated
# JSON line (quarantine 2 rows, duplicates 1).
BASE_CP = ["c-3,i9,4,rate,978343200000", "c-1,i1,4,rate,978343200000"]
BASE_JP = ['{"uid": "j-cat", "movie": "i1", "act']
# Run B of the kill test: base inputs plus a new user, a new link and another rating.
B_CP = [*BASE_CP, "c-9,i1,3,rate,978500000000", "c-2,i3,5,rate,978600000000"]
B_LINKS = ["cp,c-9,pp,p-y"]


@dataclass(frozen=True)
class Published:
    sources: Path
    lake: Path
    manifest: Manifest
    tables: dict[str, Rows]


def args(sources: Path, lake: Path, dev_key: bool = True, *extra: str) -> list[str]:
    return ["--sources", str(sources), "--lake", str(lake), "--run-date", DATE,
            *(["--dev-key"] if dev_key else []), *extra]


def ingest_here(sources: Path, lake: Path, dev_key: bool = True, *extra: str) -> int:
    """``jobs.ingest.main`` in this process, without a real key. Callers hold the ``spark``
    fixture, so the job gets the session's Spark rather than starting its own."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(ENV_VAR, raising=False)
        return ingest.main(args(sources, lake, dev_key, *extra))


@pytest.fixture(scope="module")
def base_sources(tmp_path_factory) -> Path:
    """The base inputs (cheap: a test may start a subprocess on them before ``base`` runs)."""
    return write_raw(tmp_path_factory.mktemp("base") / "raw", cp_extra=BASE_CP, jp_extra=BASE_JP)


@pytest.fixture(scope="module")
def base(spark, base_sources) -> Published:
    """A clean publication of the base inputs; tests that change its lake copy it first."""
    lake = base_sources.parent.parent / "lake"
    assert ingest_here(base_sources, lake) == 0
    m = manifest(lake, DATE)
    tables = published_tables(spark, lake, DATE)
    assert m.extra["duplicates"] == 1 and len(tables[QUARANTINE.name]) == 2
    assert all(tables[t.name] for t in PUBLISHED), "every table should have rows to compare"
    return Published(base_sources, lake, m, tables)


@dataclass(frozen=True)
class Outcome:
    """One in-process run: its lake, exit status, ERROR log messages, and the date's pointer
    file as it was before the run."""

    lake: Path
    rc: int
    errors: list[str]
    pointer_before: bytes | None


@contextmanager
def _error_messages():
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = records.append
    logging.getLogger().addHandler(handler)
    try:
        yield records
    finally:
        logging.getLogger().removeHandler(handler)


def _run_here(sources: Path, lake: Path, dev_key: bool = True, *extra: str) -> Outcome:
    before = pointer_bytes(lake, DATE)
    with _error_messages() as records:
        rc = ingest_here(sources, lake, dev_key, *extra)
    return Outcome(lake, rc, [r.getMessage() for r in records], before)


@pytest.fixture(scope="module")
def rerun(base, tmp_path_factory) -> Outcome:
    """The base inputs run again into (a copy of) the base lake (forced: unforced, an unchanged
    run id is skipped)."""
    lake = copy_lake(base.lake, tmp_path_factory.mktemp("rerun") / "lake")
    return _run_here(base.sources, lake, True, "--force")


def _gate_failure(lake: Path, root: Path) -> Outcome:
    """A run whose quarantine share (1 bad row, none allowed) fails the quality gate."""
    sources = write_raw(root / "raw", max_quarantine_share=0.0,
                        cp_extra=["c-1,i1,4,rate,yesterday"])
    return _run_here(sources, lake)


@pytest.fixture(scope="module")
def gate_fresh_lake(spark, tmp_path_factory) -> Outcome:
    root = tmp_path_factory.mktemp("gate_fresh")
    return _gate_failure(root / "lake", root)


@pytest.fixture(scope="module")
def gate_published_lake(base, tmp_path_factory) -> Outcome:
    root = tmp_path_factory.mktemp("gate_published")
    return _gate_failure(copy_lake(base.lake, root / "lake"), root)


# In-process runs that test 1 does while its subprocess runs.
ALONGSIDE_FAULTY_RUN = ("base", "rerun", "gate_fresh_lake", "gate_published_lake")


def _tail(path_or_text: Path | str, n: int = 4000) -> str:
    text = path_or_text.read_text(errors="replace") if isinstance(path_or_text, Path) \
        else path_or_text
    return text[-n:]


# --- 1. a task that fails on its first attempt --------------------------------------------------

@pytest.mark.slow
def test_task_failing_first_attempt_is_retried_with_identical_output(spark, base_sources, request,
                                                                    tmp_path):
    markers, lake = tmp_path / "markers", tmp_path / "lake"
    cmd = fault_runner.command(args(base_sources, lake), master="local[2,2]", conf=CONF,
                               fail_first_attempt=str(markers))
    proc = subprocess.Popen(cmd, cwd=ROOT, env=fault_runner.environment(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        for name in ALONGSIDE_FAULTY_RUN:  # meanwhile, in this process
            request.getfixturevalue(name)
        output, _ = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            _kill(proc)
    assert proc.returncode == 0, _tail(output)
    base = request.getfixturevalue("base")

    # The fault fired inside tasks of both patched steps, and each failed task then succeeded.
    failed = {p.name.removesuffix(".failed") for p in markers.glob("*.failed")}
    ok = {p.name.removesuffix(".ok") for p in markers.glob("*.ok")}
    assert {name.split("-s")[0] for name in failed} == set(fault_runner.PATCHED)
    assert {name.replace("-a0", "-a1") for name in failed} <= ok

    m = manifest(lake, DATE)
    assert m.run_id == base.manifest.run_id and m.version != base.manifest.version
    assert (m.tables, m.extra) == (base.manifest.tables, base.manifest.extra)
    assert published_tables(spark, lake, DATE) == base.tables
    version = date_dir(lake, DATE) / f"_v_{m.version}"
    assert not [p for p in version.rglob("_temporary")], "a failed attempt left files behind"


# --- 2. a run killed mid-write ------------------------------------------------------------------

def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def _kill(proc: subprocess.Popen) -> None:
    """SIGKILL the runner's process group (driver and JVM), then any straggler it started
    (PySpark's worker daemon puts itself in a group of its own)."""
    others = _descendants(proc.pid)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=60)
    time.sleep(1)
    for pid in others:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _has_committed_part(version: Path) -> bool:
    """Whether a table of ``version`` has a part file outside ``_temporary``. Spark's committer
    deletes ``_temporary`` folders while we walk them: a folder gone mid-walk means look again."""
    try:
        return any("_temporary" not in p.parts for p in data_files(version))
    except FileNotFoundError:
        return False


def _kill_once_partial(proc: subprocess.Popen, lake: Path, published: str, log: Path,
                      found: dict[str, object], timeout: float = 900) -> None:
    """Poll (in a thread) for the run's own ``_v_*`` folder; once a table of it has a committed
    part file, kill the run. Sets ``found["dir"]``, or ``found["error"]`` if that never came."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for version in date_dir(lake, DATE).glob("_v_*"):
                if version.name != published and _has_committed_part(version):
                    found["dir"] = version
                    return
            if proc.poll() is not None:
                found["error"] = f"run B ended (rc {proc.returncode}) before it could be " \
                                 f"killed mid-write:\n{_tail(log)}"
                return
            time.sleep(0.05)
        found["error"] = f"run B wrote no part file within {timeout}s:\n{_tail(log)}"
    except Exception as e:  # noqa: BLE001 - the thread's error must reach the test, not stderr
        found["error"] = f"the killer thread failed: {e!r}"
    finally:
        _kill(proc)


def _naive_input_files(spark, path: Path) -> list[str]:
    """Files a plain Parquet read of ``path`` would scan (none: Spark finds no data at all)."""
    files: list[str] = []
    for recursive in ("false", "true"):
        try:
            files += spark.read.option("recursiveFileLookup", recursive) \
                .parquet(str(path)).inputFiles()
        except AnalysisException as e:
            assert "UNABLE_TO_INFER_SCHEMA" in str(e) or "PATH_NOT_FOUND" in str(e), e
    return files


@pytest.mark.slow
def test_run_killed_mid_write_leaves_previous_version_published(spark, base, tmp_path):
    lake = copy_lake(base.lake, tmp_path / "lake")
    a_version = f"_v_{base.manifest.version}"
    a_pointer = pointer_bytes(lake, DATE)
    sources_b = write_raw(tmp_path / "raw_b", cp_extra=B_CP, jp_extra=BASE_JP,
                          links_extra=B_LINKS)

    log, fresh, found = tmp_path / "b.log", tmp_path / "fresh", {}
    with log.open("wb") as out:
        proc = subprocess.Popen(fault_runner.command(args(sources_b, lake), conf=CONF), cwd=ROOT,
                                env=fault_runner.environment(), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    killer = threading.Thread(target=_kill_once_partial, args=(proc, lake, a_version, log, found))
    killer.start()
    try:
        assert ingest_here(sources_b, fresh) == 0  # the clean reference, meanwhile
    finally:
        killer.join()
    assert "error" not in found, found["error"]
    b_dir = found["dir"]
    assert proc.returncode == -signal.SIGKILL
    assert not (b_dir / "_MANIFEST.json").exists(), "B got to its commit before the kill"

    assert pointer_bytes(lake, DATE) == a_pointer
    assert published_tables(spark, lake, DATE) == base.tables
    for path in (lake / "unified", date_dir(lake, DATE)):
        assert not [f for f in _naive_input_files(spark, path) if b_dir.name in f]

    # Rerunning B publishes it and collects the orphan; A stays as the previous version.
    assert ingest_here(sources_b, lake) == 0
    m = manifest(lake, DATE)
    assert m.previous == base.manifest.version
    assert not b_dir.exists()
    assert version_dirs(lake, DATE) == sorted([a_version, f"_v_{m.version}"])
    b_tables = published_tables(spark, lake, DATE)
    assert b_tables == published_tables(spark, fresh, DATE)
    assert b_tables != base.tables  # B's inputs really made a different publication


# --- 3. rerunning a date ------------------------------------------------------------------------

def test_rerun_of_same_date_publishes_identical_data(spark, base, rerun):
    assert rerun.rc == 0
    m = manifest(rerun.lake, DATE)
    assert m.previous == base.manifest.version and m.version != base.manifest.version
    assert (m.run_id, m.tables, m.extra) == \
        (base.manifest.run_id, base.manifest.tables, base.manifest.extra)
    assert published_tables(spark, rerun.lake, DATE) == base.tables
    # The previous version is kept whole (readers may still be on it).
    assert version_dirs(rerun.lake, DATE) == \
        sorted([f"_v_{base.manifest.version}", f"_v_{m.version}"])
    previous = date_dir(rerun.lake, DATE) / f"_v_{base.manifest.version}"
    assert version_tables(spark, previous) == base.tables


def test_users_indexed_by_key_ranges_publish_the_same_tables(spark, base, tmp_path, monkeypatch):
    # large inputs index users by ranges of user keys: forced here on the base inputs
    prefixes = []
    index = unify.with_dense_index

    def spy(df, key, name, prefix=0):
        prefixes.append(prefix)
        return index(df, key, name, prefix)

    monkeypatch.setattr(pipeline, "RANGED_INDEX_EVENTS", 0)
    monkeypatch.setattr(unify, "with_dense_index", spy)
    assert ingest_here(base.sources, tmp_path / "lake") == 0
    assert unify.USER_KEY_PREFIX in prefixes
    assert published_tables(spark, tmp_path / "lake", DATE) == base.tables


# --- 4. configuration and quality failures ------------------------------------------------------

@pytest.mark.parametrize("outcome", ["gate_fresh_lake", "gate_published_lake"])
def test_quality_gate_failure_publishes_nothing(spark, base, request, outcome):
    run = request.getfixturevalue(outcome)
    assert run.rc == 3
    assert pointer_bytes(run.lake, DATE) == run.pointer_before
    if outcome == "gate_published_lake":
        assert published_tables(spark, run.lake, DATE) == base.tables
    else:
        assert run.pointer_before is None and manifest(run.lake, DATE) is None

    # The failed run's staging is kept, marked, with its quarantine, and never published.
    staged = [date_dir(run.lake, DATE) / v for v in version_dirs(run.lake, DATE)
              if v != f"_v_{base.manifest.version}"]
    assert len(staged) == 1 and not (staged[0] / "_MANIFEST.json").exists()
    reason = json.loads((staged[0] / FAILED).read_text())
    assert [r["check"] for r in reason["failed"]] == ["quarantine_share"]
    quarantine = sorted_rows(spark.read.parquet(str(staged[0] / QUARANTINE.name)))
    assert [(r["source"], r["field"]) for r in quarantine] == [("cp", "ts")]
    assert any("quality gate failed" in e and "quarantine_share" in e for e in run.errors), \
        run.errors


def test_missing_key_without_dev_key_is_a_configuration_error(spark, base_sources, tmp_path):
    run = _run_here(base_sources, tmp_path / "lake", dev_key=False)
    assert run.rc == 2
    assert any(ENV_VAR in e for e in run.errors), run.errors
    assert not run.lake.exists()
