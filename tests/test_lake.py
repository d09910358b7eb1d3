"""The lake's publish protocol: staged versions become visible only by the pointer flip."""
from __future__ import annotations

import pytest

from crossrec.lake import KEEP_FAILED, POINTER, Lake, check_run_date
from crossrec.schemas.lake import ITEMS
from crossrec.store import HadoopStore, LocalStore, join


def _write(store, staging, text="x"):
    store.write_text_atomic(join(staging.path(ITEMS), "part-0.txt"), text)


def test_stage_commit_and_resolve(tmp_path):
    lake = Lake.open(str(tmp_path))
    assert lake.manifest("unified") is None
    with pytest.raises(FileNotFoundError, match="no published 'unified' dataset"):
        lake.path(ITEMS)
    s1 = lake.stage("unified", "2026-11-22", "r1")
    _write(lake.store, s1)
    assert lake.dates("unified") == []  # staged is not published
    m1 = lake.commit(s1, "r1", {"items": {"rows": 1}})
    assert lake.path(ITEMS) == join(lake.date_dir("unified", "2026-11-22"), f"_v_{m1.version}",
                                    "items")
    s2 = lake.stage("unified", "2026-11-23", "r2")
    _write(lake.store, s2)
    lake.commit(s2, "r2", {"items": {"rows": 2}})
    assert lake.dates("unified") == ["2026-11-22", "2026-11-23"]
    assert lake.manifest("unified").run_id == "r2"            # latest date by default
    assert lake.manifest("unified", "2026-11-22").run_id == "r1"


def test_killed_run_leaves_previous_publication_and_is_collected(tmp_path):
    lake = Lake.open(str(tmp_path))
    s1 = lake.stage("unified", "2026-11-23", "a")
    _write(lake.store, s1)
    m1 = lake.commit(s1, "a", {})
    orphan = lake.stage("unified", "2026-11-23", "b")   # a run that dies before its commit
    _write(lake.store, orphan)
    assert lake.manifest("unified", "2026-11-23").version == m1.version
    s3 = lake.stage("unified", "2026-11-23", "c")
    _write(lake.store, s3)
    m3 = lake.commit(s3, "c", {})
    assert m3.previous == m1.version
    names = lake.store.list_names(lake.date_dir("unified", "2026-11-23"))
    # current and previous stay (a reader may still be on it); the orphan is gone
    assert sorted(names) == sorted([POINTER, f"_v_{m1.version}", f"_v_{m3.version}"])


def test_failed_run_is_kept_for_inspection(tmp_path):
    lake = Lake.open(str(tmp_path))
    failed = lake.stage("unified", "2026-11-23", "f")
    _write(lake.store, failed)
    lake.mark_failed(failed, {"failed": ["x"]})
    ok = lake.stage("unified", "2026-11-23", "g")
    _write(lake.store, ok)
    lake.commit(ok, "g", {})
    assert lake.store.exists(failed.dir)


def test_only_the_newest_failed_runs_are_kept(tmp_path):
    lake = Lake.open(str(tmp_path))
    ok = lake.stage("unified", "2026-11-23", "ok")
    _write(lake.store, ok)
    m = lake.commit(ok, "ok", {})
    failed = []
    for i in range(KEEP_FAILED + 2):  # a date that fails run after run
        s = lake.stage("unified", "2026-11-23", f"f{i}")
        _write(lake.store, s)
        lake.mark_failed(s, {"failed": [i]})
        failed.append(s)
    other = lake.stage("unified", "2026-11-24", "other")   # another date keeps its own
    _write(lake.store, other)
    lake.mark_failed(other, {"failed": []})
    names = lake.store.list_names(lake.date_dir("unified", "2026-11-23"))
    assert sorted(names) == sorted([POINTER, f"_v_{m.version}",
                                    *[f"_v_{s.version}" for s in failed[-KEEP_FAILED:]]])
    assert lake.store.exists(other.dir)
    assert lake.manifest("unified", "2026-11-23").version == m.version


def test_run_date_is_validated():
    assert check_run_date("2026-02-28") == "2026-02-28"
    for bad in ("2026-2-28", "2026-02-30", "../x", "20260228"):
        with pytest.raises(ValueError):
            check_run_date(bad)


@pytest.mark.parametrize("make", [lambda spark: LocalStore(), lambda spark: HadoopStore(spark)],
                         ids=["local", "hadoop"])
def test_stores_agree(spark, tmp_path, make):
    """The Hadoop store (hdfs://, s3a://) is exercised here through Hadoop's file:// FS."""
    store = make(spark)
    base = tmp_path.as_uri()
    store.write_text_atomic(join(base, "d", "a.txt"), "first\r\nsecond\n")
    store.write_text_atomic(join(base, "d", "a.txt"), "one\r\ntwo\n")  # replace
    store.write_text_atomic(join(base, "d", "e", "b.txt"), "")
    assert store.exists(join(base, "d", "a.txt")) and not store.exists(join(base, "nope"))
    assert store.read_text(join(base, "d", "a.txt")) == "one\r\ntwo\n"
    assert store.head(join(base, "d", "a.txt")) == "one"
    assert store.list_names(join(base, "d")) == ["a.txt", "e"]
    assert store.list_names(join(base, "nope")) == []
    files = store.list_files(join(base, "d"))
    assert [f.path.rsplit("/", 2)[-2:] for f in files] == [["d", "a.txt"], ["e", "b.txt"]]
    assert [f.size for f in files] == [9, 0]
    store.delete(join(base, "d"))
    assert not store.exists(join(base, "d"))


def test_a_version_collected_by_a_concurrent_run_is_never_published(tmp_path):
    from crossrec.errors import PublishError

    lake = Lake.open(str(tmp_path))
    slow = lake.stage("unified", "2026-11-23", "slow")   # still writing when ...
    _write(lake.store, slow)
    fast = lake.stage("unified", "2026-11-23", "fast")   # ... another run of the date publishes
    _write(lake.store, fast)
    published = lake.commit(fast, "fast", {"items": {"rows": 1}})
    assert not lake.store.exists(slow.dir)               # collected as an unpublished version
    _write(lake.store, slow, "late")   # the slow run's last write recreates part of its folder
    with pytest.raises(PublishError, match="staged users missing; nothing published. Another run"):
        lake.commit(slow, "slow", {"items": {"rows": 1}, "users": {"rows": 1}})
    assert lake.manifest("unified", "2026-11-23").version == published.version


def test_a_file_listed_by_a_table_must_be_staged(tmp_path):
    from crossrec.errors import PublishError

    lake = Lake.open(str(tmp_path))
    s = lake.stage("model", "2026-11-23", "m")
    lake.store.write_text_atomic(join(s.dir, "model.json"), "{}")
    with pytest.raises(PublishError, match="weights.safetensors"):
        lake.commit(s, "m", {"artifact": {"files": ["model.json", "weights.safetensors"]}})
    assert lake.manifest("model", "2026-11-23") is None
    lake.store.write_text_atomic(join(s.dir, "weights.safetensors"), "w")
    assert lake.commit(s, "m", {"artifact": {"files": ["model.json", "weights.safetensors"]}})
