"""Embed items: each catalog item's text -> an L2-normalised vector, once per catalog version.

    ./spark-submit.sh embed_items --lake data/demo/lake --run-date 2026-11-23 \\
        [--encoder all-MiniLM-L6-v2 | hash:256 | /path/to/model-dir] [--batch-size 256] [--force] \\
        [--config crossrec.toml]

Reads the unified ``items`` table ingest published for the run date and publishes
``item_vectors`` (schemas/training.py) for that date. The encoding runs on executors
(``mapInArrow``), each Python worker loading the model once.

Once per catalog version: the catalog's content is fingerprinted in Spark over every row's
(item_idx, item_id, domain, text) — not ingest's run id, which changes daily though the catalog
rarely does. If the latest item_text published on or before the run date has the same
fingerprint and the same encoder (name and a digest of its model files), nothing is encoded:
the job exits 0 with ``"skipped": true`` and the path of the vectors that still apply
(``crossrec.text.published_vectors`` finds them for any date). ``--force`` re-embeds anyway.

Exit status: 0 published or skipped, 2 bad arguments, encoder or input, 4 another
run of the date published meanwhile (nothing published).
"""
from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from dataclasses import dataclass
from typing import Any

from crossrec.cli import exit_status, job_parser, parse, setup_logging
from crossrec.errors import InputError
from crossrec.lake import Lake, Manifest
from crossrec.logs import event, timed
from crossrec.schemas import columns as C
from crossrec.schemas.lake import ITEMS, UNIFIED
from crossrec.schemas.training import ITEM_TEXT, ITEM_VECTORS
from crossrec.session import get_session
from crossrec.text import (DEFAULT_ENCODER, EncoderSpec, catalog_facts, embed_items,
                           published_vectors)

log = logging.getLogger("crossrec.embed_items")


@dataclass(frozen=True)
class EmbedConfig:
    """What one run needs (parsed from the command line)."""

    lake: str                        # lake root URL
    run_date: str                    # YYYY-MM-DD: the unified catalog to embed, the date to publish
    encoder: str = DEFAULT_ENCODER   # see crossrec.text.TextEncoder.create
    batch_size: int = 256            # texts per encode call (one forward pass)
    force: bool = False              # re-embed even if the catalog and encoder are unchanged


def parse_args(argv: list[str] | None) -> EmbedConfig:
    p = job_parser("embed_items", __doc__, "unified catalog to embed")
    p.add_argument("--encoder", default=DEFAULT_ENCODER,
                   help=f"{DEFAULT_ENCODER} (default), hash:<dim>, or a local model directory")
    p.add_argument("--batch-size", type=int, default=256, help="texts per encode call")
    p.add_argument("--force", action="store_true", help="re-embed an unchanged catalog")
    a = parse(p, argv, "embed_items")
    if a.batch_size < 1:
        p.error(f"--batch-size {a.batch_size}: expected a positive integer")
    return EmbedConfig(a.lake, a.run_date, a.encoder, a.batch_size, a.force)


def check_catalog(facts: dict[str, Any], where: str) -> None:
    if facts["rows"] == 0:
        raise InputError(f"{where}: the items table is empty; nothing to embed")
    if facts["null_text"]:
        raise InputError(f"{where}: field {C.TEXT!r} is null for {facts['null_text']} items")
    if facts["distinct_idx"] != facts["rows"]:
        raise InputError(f"{where}: field {C.ITEM_IDX!r} is not unique "
                         f"({facts['distinct_idx']} values for {facts['rows']} items)")


def unchanged(prior: Manifest | None, fingerprint: str, spec: EncoderSpec, digest: str) -> bool:
    if prior is None:
        return False
    x = prior.extra
    return (x.get("catalog", {}).get("fingerprint") == fingerprint and x.get("encoder") == spec.name
            and x.get("encoder_digest") == digest)


def describe(lake: Lake, m: Manifest, skipped: bool, run_date: str) -> dict[str, Any]:
    """The JSON summary of the publication ``m`` that holds the vectors for ``run_date``."""
    return {"skipped": skipped, "run_date": run_date, "published_run_date": m.run_date,
            "version": m.version, "run_id": m.run_id,
            "rows": m.tables[ITEM_VECTORS.name]["rows"],
            "path": lake.path(ITEM_VECTORS, m.run_date),
            "encoder": m.extra["encoder"], "dim": m.extra["dim"], "catalog": m.extra["catalog"]}


def run(spark: Any, cfg: EmbedConfig, spec: EncoderSpec) -> dict[str, Any]:
    """Embed and publish (or skip); returns the summary."""
    lake = Lake.open(cfg.lake, spark)
    unified = lake.require(UNIFIED, cfg.run_date, "ingest")
    items = lake.read(spark, ITEMS, cfg.run_date)
    with timed(log, "fingerprint_catalog") as facts:
        catalog = catalog_facts(items)
        facts.update(rows=catalog["rows"], fingerprint=catalog["fingerprint"])
    check_catalog(catalog, lake.path(ITEMS, cfg.run_date))
    digest = spec.digest()
    prior = published_vectors(lake, cfg.run_date)
    if not cfg.force and unchanged(prior, catalog["fingerprint"], spec, digest):
        event(log, "skipped", reason="catalog and encoder unchanged", since=prior.run_date)
        return describe(lake, prior, True, cfg.run_date)
    source = {"fingerprint": catalog["fingerprint"], "run_date": unified.run_date,
              "version": unified.version, "run_id": unified.run_id}
    run_id = f"{cfg.run_date.replace('-', '')}-" + hashlib.sha256(
        f"{catalog['fingerprint']}|{spec.name}|{digest}".encode()).hexdigest()[:12]
    staging = lake.stage(ITEM_TEXT, cfg.run_date, run_id)
    n_chunks = int(catalog["max_idx"]) // cfg.batch_size + 1
    partitions = max(1, min(n_chunks, spark.sparkContext.defaultParallelism))
    with timed(log, "embed", encoder=spec.name, partitions=partitions) as facts:
        rows, dim = write_vectors(embed_items(items, spec, cfg.batch_size, partitions),
                                  staging.path(ITEM_VECTORS), catalog["rows"])
        facts.update(rows=rows, dim=dim)
    manifest = lake.commit(staging, run_id, {ITEM_VECTORS.name: {"rows": rows}}, extra={
        "encoder": spec.name, "encoder_digest": digest, "dim": dim,
        "batch_size": cfg.batch_size, "catalog": source})
    event(log, "published", dataset=ITEM_TEXT, run_date=cfg.run_date, version=manifest.version,
          rows=rows)
    return describe(lake, manifest, False, cfg.run_date)


def write_vectors(vectors: Any, path: str, expected: int) -> tuple[int, int]:
    """Write; (rows, dim) observed while writing. Raises if a row went missing or dims differ."""
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    seen = Observation("item_vectors")
    vectors.observe(seen, F.count(F.lit(1)).alias("rows"), F.min(F.size(C.VECTOR)).alias("lo"),
                    F.max(F.size(C.VECTOR)).alias("hi")) \
        .write.mode("errorifexists").parquet(path)
    r = seen.get
    if r["rows"] != expected or r["lo"] != r["hi"]:
        raise RuntimeError(f"{path}: staged {r['rows']} rows of {r['lo']}..{r['hi']} dims for "
                           f"{expected} items; not published")
    return int(r["rows"]), int(r["hi"])


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    setup_logging()
    start = time.perf_counter()

    def body() -> int:
        spec = EncoderSpec.parse(cfg.encoder)  # a bad encoder fails before Spark starts
        summary = run(get_session("crossrec-embed-items"), cfg, spec)
        summary["seconds"] = round(time.perf_counter() - start, 3)
        print(json.dumps(summary, indent=2, sort_keys=True))
        return 0

    return exit_status(log, body)

if __name__ == "__main__":
    sys.exit(main())
