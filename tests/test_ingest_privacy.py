"""No raw account id leaves the ingest job: not in a published table, a staged file, a manifest,
nor a log line (Spark at INFO), even for rows that were quarantined.

A sentinel account id is planted in valid rows of all three platforms, in the link table and in
quarantined rows of every kind of source (a short CSV row, a truncated JSON line, an out-of-range
Parquet row, a link to an unknown platform). The person behind it must still be published, under
its pseudonym, so dropping the rows cannot pass for privacy.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
from pathlib import Path

import pytest

from crossrec.ingest.pseudonym import DEV_KEY, NS_SEP, PERSON_NS, account_token_of
from crossrec.schemas.lake import EVENTS, QUARANTINE, USERS
from tests import fault_runner
from tests.lakeread import all_files, parquet_strings, published_tables
from tests.rawdata import PP, write_raw

ROOT = Path(__file__).resolve().parents[1]
DATE = "2026-11-23"
SENTINEL = "SENTINEL-7f3a9c"


def _inputs(root: Path) -> Path:
    pp = {k: list(v) for k, v in PP.items()}
    for row in ({"account_id": SENTINEL, "item_ref": "i3", "rating": 4, "kind": "rating",
                 "ts_s": 978500000},
                {"account_id": SENTINEL, "item_ref": "i3", "rating": 9, "kind": "rating",
                 "ts_s": 978600000}):  # out of range: quarantined
        for k, v in row.items():
            pp[k].append(v)
    return write_raw(
        root,
        jp_extra=[json.dumps({"uid": SENTINEL, "movie": "i2", "action": "rated", "stars": 4,
                              "at": "2001-02-01T10:00:00Z"}),
                  f'{{"uid": "{SENTINEL}", "movie": "i4", "act'],       # truncated
        cp_extra=[f"{SENTINEL},i1,5,rate,978343200000", f"{SENTINEL},i1,4"],  # 2nd: short row
        pp=pp,
        links_extra=[f"jp,{SENTINEL},cp,{SENTINEL}", f"pp,{SENTINEL},jp,{SENTINEL}",
                     f"zz,{SENTINEL},cp,c-2"],                            # unknown platform
    )


def _person_key(platform: str, account: str) -> str:
    """The published ``user_key`` of the person whose smallest linked account is this one."""
    message = f"{PERSON_NS}{NS_SEP}{platform}:{account}".encode()
    return hmac.new(DEV_KEY, message, hashlib.sha256).hexdigest()


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, str]:
    """(lake, stdout+stderr) of one subprocess run with Spark logging at INFO."""
    root = tmp_path_factory.mktemp("privacy")
    sources, lake = _inputs(root / "raw"), root / "lake"
    cmd = fault_runner.command(["--sources", str(sources), "--lake", str(lake),
                                "--run-date", DATE, "--dev-key"])
    proc = subprocess.run(cmd, cwd=ROOT, env=fault_runner.environment(log_level="INFO"),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:]
    return lake, proc.stdout


@pytest.mark.slow
def test_sentinel_in_no_log_line(run):
    _, output = run
    lines = output.splitlines()
    assert sum(" INFO " in line for line in lines) > 100, "expected Spark INFO logging"
    assert [line for line in lines if SENTINEL in line] == []


@pytest.mark.slow
def test_sentinel_in_no_output_file(run):
    lake, _ = run
    files = all_files(lake)
    parquet = [f for f in files if f.name.endswith(".parquet")]
    assert len(parquet) >= 6 and any(f.name == "_COMMITTED.json" for f in files)
    for f in parquet:
        assert SENTINEL not in "\n".join(parquet_strings(f)), f
    for f in files:
        assert SENTINEL.encode() not in f.read_bytes(), f


@pytest.mark.slow
def test_sentinel_person_is_published_under_its_pseudonym(spark, run):
    lake, _ = run
    tables = published_tables(spark, lake, DATE)
    key = _person_key("cp", SENTINEL)  # cp:… < jp:… < pp:…
    user = [u for u in tables[USERS.name] if u["user_key"] == key]
    assert len(user) == 1
    assert (user[0]["n_accounts"], user[0]["platforms"], user[0]["n_events"]) == \
        (3, ["cp", "jp", "pp"], 3)
    events = [e for e in tables[EVENTS.name] if e["user_key"] == key]
    assert sorted((e["platform"], e["item_id"]) for e in events) == \
        [("cp", "i1"), ("jp", "i2"), ("pp", "i3")]

    # Each quarantined sentinel row is kept, with the account replaced by its token.
    raw = {r["source"]: r["raw"] for r in tables[QUARANTINE.name]}
    assert len(tables[QUARANTINE.name]) == 4 and set(raw) == {"cp", "jp", "pp", "links"}
    for source, platform in (("cp", "cp"), ("jp", "jp"), ("pp", "pp"), ("links", "zz")):
        assert account_token_of(f"{platform}:{SENTINEL}", DEV_KEY) in raw[source], raw[source]
