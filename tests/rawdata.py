"""Tiny raw inputs written by hand for ingest tests: three platforms in three formats."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

CATALOG = [
    {"item_id": "i1", "title": "Alpha", "year": 1999, "genres": "Comedy", "domain": "comedy"},
    {"item_id": "i2", "title": "Beta", "year": 2001, "genres": "Drama", "domain": "drama"},
    {"item_id": "i3", "title": "Gamma, The", "year": 1987, "genres": "Action|Sci-Fi",
     "domain": "other", "text": "Gamma: a space film"},
    {"item_id": "i4", "title": "Delta", "year": None, "genres": "Drama", "domain": "drama"},
]
# JSON platform "jp" (drama): uid, movie, action, stars, at (ISO-8601)
JP = [
    {"uid": "j-ann", "movie": "i2", "action": "rated", "stars": 5, "at": "2001-01-01T10:00:00Z"},
    {"uid": "j-ann", "movie": "i4", "action": "rated", "stars": 3, "at": "2001-01-02T10:00:00Z"},
    {"uid": "j-bob", "movie": "i2", "action": "rated", "stars": 4, "at": "2001-01-03T10:00:00+01:00"},
]
# CSV platform "cp" (comedy): member_id,item,score,event,epoch_ms
CP_HEADER = "member_id,item,score,event,epoch_ms"
CP = [
    "c-1,i1,4,rate,978343200000",
    "c-2,i1,2,rate,978429600000",
]
# Parquet platform "pp" (other): account_id, item_ref, rating, kind, ts_s
PP = {"account_id": ["p-x", "p-y"], "item_ref": ["i3", "i3"], "rating": [5, 1],
      "kind": ["rating", "rating"], "ts_s": [978343200, 978429600]}
# links: j-ann ~ c-1 ~ p-x (a chain), j-bob ~ c-2
LINKS = ["platform_a,account_a,platform_b,account_b", "jp,j-ann,cp,c-1", "pp,p-x,cp,c-1",
         "cp,c-2,jp,j-bob"]

SOURCES = """
[catalog]
path = "catalog.jsonl"
format = "jsonl"

[links]
path = "links.csv"
format = "csv"

[[platforms]]
name = "jp"
path = "jp/"
format = "jsonl"
timestamp = "iso8601"
columns = { account = "uid", item_id = "movie", event_type = "action", value = "stars", ts = "at" }
event_types = { rated = "rating" }
value_range = [1, 5]

[[platforms]]
name = "cp"
path = "cp/"
format = "csv"
timestamp = "epoch_ms"
columns = { account = "member_id", item_id = "item", event_type = "event", value = "score", ts = "epoch_ms" }
event_types = { rate = "rating" }
value_range = [1, 5]

[[platforms]]
name = "pp"
path = "pp/"
format = "parquet"
timestamp = "epoch_s"
columns = { account = "account_id", item_id = "item_ref", event_type = "kind", value = "rating", ts = "ts_s" }
event_types = { rating = "rating" }
value_range = [1, 5]

[quality]
min_rows_per_domain = 1
max_quarantine_share = %(share)s
"""


def write_raw(root: Path, jp_extra: list[str] = (), cp_extra: list[str] = (),
              pp: dict | None = None, catalog_extra: list[str] = (), links_extra: list[str] = (),
              max_quarantine_share: float = 0.5) -> Path:
    """Write the tiny inputs (plus extra raw lines) under ``root``; return the sources file."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "jp").mkdir(exist_ok=True)
    (root / "cp").mkdir(exist_ok=True)
    (root / "pp").mkdir(exist_ok=True)
    lines = [json.dumps(r) for r in CATALOG] + list(catalog_extra)
    (root / "catalog.jsonl").write_text("\n".join(lines) + "\n")
    (root / "links.csv").write_text("\n".join(LINKS + list(links_extra)) + "\n")
    lines = [json.dumps(r) for r in JP] + list(jp_extra)
    (root / "jp" / "part-0.jsonl").write_text("\n".join(lines) + "\n")
    (root / "cp" / "part-0.csv").write_text("\n".join([CP_HEADER, *CP, *cp_extra]) + "\n")
    pq.write_table(pa.table(pp or PP), root / "pp" / "part-0.parquet")
    path = root / "sources.toml"
    path.write_text(SOURCES % {"share": max_quarantine_share})
    return path
