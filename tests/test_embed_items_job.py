"""embed_items main() in process on a 5-item fixture lake: publish, skip, force, re-embed."""
from __future__ import annotations

import json

import numpy as np
import pytest
from pyspark.testing import assertSchemaEqual

from crossrec.schemas import columns as C
from crossrec.schemas.lake import ITEMS
from crossrec.schemas.training import ITEM_TEXT, ITEM_VECTORS
from crossrec.text import MINILM, EncoderSpec, HashEncoder, cached, published_vectors
from jobs import embed_items
from tests.lakefix import item, publish_unified

DAY = "2026-01-01"
TITLES = ["Toy Story", "Heat", "Funny Farm", "Serious Drama", "Comedy Night"]


def catalog(titles: list[str]) -> list[dict]:
    return [item(f"m{i}", "comedy" if i % 2 else "drama", i, title=t) for i, t in enumerate(titles)]


@pytest.fixture()
def lake(spark, tmp_path):
    return publish_unified(spark, tmp_path / "lake", DAY, items=catalog(TITLES), events=[])


def run(capsys, lake, run_date: str = DAY, *extra: str) -> dict:
    assert embed_items.main(["--lake", lake.root, "--run-date", run_date, *extra]) == 0
    return json.loads(capsys.readouterr().out)


def texts(spark, lake, run_date: str = DAY) -> list[str]:
    return [r[C.TEXT] for r in lake.read(spark, ITEMS, run_date).orderBy(C.ITEM_IDX).collect()]


def published(spark, summary: dict) -> list:
    df = spark.read.schema(ITEM_VECTORS.as_spark_schema()).parquet(summary["path"])
    return df.orderBy(C.ITEM_IDX).collect()


def test_hash_encoder_publish_skip_force_and_a_changed_catalog(spark, lake, capsys):
    hash16 = ["--encoder", "hash:16", "--batch-size", "2"]  # 3 chunks over 2 partitions
    first = run(capsys, lake, DAY, *hash16)
    assert not first["skipped"] and first["rows"] == 5 and first["dim"] == 16
    raw = spark.read.parquet(first["path"])
    assertSchemaEqual(raw.schema, ITEM_VECTORS.as_spark_schema())  # as written, no schema given
    rows = published(spark, first)
    assert [r[C.ITEM_IDX] for r in rows] == list(range(5))
    assert {r[C.ENCODER] for r in rows} == {"hash:16"}
    expected = HashEncoder(16).encode(texts(spark, lake))
    np.testing.assert_allclose([r[C.VECTOR] for r in rows], expected, rtol=1e-6)
    m = lake.manifest(ITEM_TEXT, DAY)
    assert m.extra["encoder"] == "hash:16" and m.extra["dim"] == 16
    assert m.extra["catalog"]["version"] == lake.manifest("unified", DAY).version

    again = run(capsys, lake, DAY, *hash16)
    assert again["skipped"] and again["version"] == first["version"]
    forced = run(capsys, lake, DAY, *hash16, "--force")
    assert not forced["skipped"] and forced["version"] != first["version"]
    assert [r[C.VECTOR] for r in published(spark, forced)] == [r[C.VECTOR] for r in rows]

    # ingest republishes an unchanged catalog the next day: nothing to embed, DAY's vectors apply
    publish_unified(spark, lake.root, "2026-01-02", items=catalog(TITLES), events=[], run_id="d2")
    next_day = run(capsys, lake, "2026-01-02", *hash16)
    assert next_day["skipped"] and next_day["published_run_date"] == DAY
    assert published_vectors(lake, "2026-01-02").version == forced["version"]
    # another encoder, or a changed text, is a new catalog version for the vectors
    assert not run(capsys, lake, "2026-01-02", "--encoder", "hash:8")["skipped"]
    publish_unified(spark, lake.root, "2026-01-03", items=catalog([*TITLES[:4], "Tax Law"]),
                    events=[], run_id="d3")
    changed = run(capsys, lake, "2026-01-03", "--encoder", "hash:8")
    assert not changed["skipped"] and changed["published_run_date"] == "2026-01-03"
    assert changed["catalog"]["fingerprint"] != next_day["catalog"]["fingerprint"]


def test_minilm_vectors_match_the_encoder(spark, lake, capsys):
    summary = run(capsys, lake)
    assert summary["encoder"] == MINILM and summary["dim"] == 384 and summary["rows"] == 5
    rows = published(spark, summary)
    expected = cached(EncoderSpec.parse(MINILM)).encode(texts(spark, lake))
    np.testing.assert_allclose([r[C.VECTOR] for r in rows], expected, atol=1e-5)
    assert lake.manifest(ITEM_TEXT, DAY).extra["encoder"] == MINILM


def test_bad_inputs_exit_2(lake, tmp_path, capsys, caplog):
    hash8 = ["--encoder", "hash:8"]
    assert embed_items.main(["--lake", lake.root, "--run-date", "2026-02-01", *hash8]) == 2
    assert "no published 'unified' dataset for 2026-02-01" in caplog.text
    missing = tmp_path / "no-model"
    assert embed_items.main(["--lake", lake.root, "--run-date", DAY, "--encoder",
                             str(missing)]) == 2
    assert str(missing) in caplog.text
    with pytest.raises(SystemExit) as e:
        embed_items.main(["--lake", lake.root, "--run-date", DAY, "--batch-size", "0"])
    assert e.value.code == 2 and "--batch-size" in capsys.readouterr().err


@pytest.mark.parametrize("facts, says", [
    ({"rows": 0, "null_text": 0, "distinct_idx": 0}, "empty"),
    ({"rows": 3, "null_text": 1, "distinct_idx": 3}, "'text' is null for 1 items"),
    ({"rows": 3, "null_text": 0, "distinct_idx": 2}, "'item_idx' is not unique"),
])
def test_a_bad_catalog_is_named(facts, says):
    from crossrec.errors import InputError

    with pytest.raises(InputError, match=f"lake/items: .*{says}"):
        embed_items.check_catalog(facts, "lake/items")
