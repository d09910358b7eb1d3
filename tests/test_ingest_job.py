"""The ingest job's main() in process, on the shared session: edge cases of whole runs."""
from __future__ import annotations

import json

from crossrec.lake import Lake
from jobs import ingest
from tests.rawdata import CP_HEADER, write_raw


def test_a_platform_with_only_a_header_counts_zero_rows(spark, tmp_path, capsys):
    sources = write_raw(tmp_path / "raw")
    (tmp_path / "raw" / "cp" / "part-0.csv").write_text(CP_HEADER + "\n")
    lake = tmp_path / "lake"
    rc = ingest.main(["--sources", str(sources), "--lake", str(lake), "--run-date", "2026-11-23",
                      "--dev-key"])
    assert rc == 3  # comedy then has no interactions: the min_rows gate says so
    assert Lake.open(str(lake)).manifest("unified") is None
    (tmp_path / "raw" / "cp" / "part-0.csv").write_text(CP_HEADER + "\nc-1,i3,4,rate,978343200000\n")
    sources.write_text(sources.read_text().replace("min_rows_per_domain = 1",
                                                   "min_rows_per_domain = 0"))
    assert ingest.main(["--sources", str(sources), "--lake", str(lake), "--run-date",
                        "2026-11-23", "--dev-key"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["read"]["cp"] == 1 and summary["tables"]["events"]["rows"] == 6
    assert summary["tables"]["interactions"]["path"].endswith("/interactions")


def test_help_and_bad_run_date(capsys):
    import pytest

    with pytest.raises(SystemExit) as e:
        ingest.main(["--help"])
    assert e.value.code == 0 and "--sources" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        ingest.main(["--sources", "s", "--lake", "l", "--run-date", "2026-13-01"])
    assert e.value.code == 2 and "YYYY-MM-DD" in capsys.readouterr().err


def _cached(spark) -> int:
    """Persisted RDDs of the session (a cached DataFrame's buffers, once filled), except the
    connected components' localCheckpoint rounds, which Spark's ContextCleaner releases after
    garbage collection (crossrec.ingest.identity)."""
    rdds = spark.sparkContext._jsc.getPersistentRDDs().values()
    return sum("localCheckpoint" not in r.toString() for r in rdds)


def test_no_cache_outlives_a_run_that_publishes_or_fails(spark, tmp_path, monkeypatch):
    from crossrec.ingest import unify

    sources = write_raw(tmp_path / "raw")
    args = ["--sources", str(sources), "--lake", str(tmp_path / "lake"), "--run-date",
            "2026-11-23", "--dev-key"]
    before = _cached(spark)
    assert ingest.main(args) == 0
    assert _cached(spark) == before

    def broken(*a, **k):
        raise RuntimeError("users failed")  # after every cache of the run has been filled

    monkeypatch.setattr(unify, "build_users", broken)
    try:
        ingest.main([*args, "--force"])
    except RuntimeError as e:
        assert "users failed" in str(e)
    else:
        raise AssertionError("the run did not fail")
    assert _cached(spark) == before
