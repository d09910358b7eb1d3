"""Ingest: raw platform logs -> one pseudonymised user-item table (plus catalog, events, users,
quarantine and quality report) published atomically to the lake for a run date.

    ./spark-submit.sh ingest --sources data/demo/raw/sources.toml --lake data/demo/lake \\
        --run-date 2026-11-23 [--dev-key] [--master yarn --conf k=v ...]

The pseudonymisation key comes from $CROSSREC_ID_KEY; ``--dev-key`` uses a fixed, public
development key instead (demo and local runs only). Exit status: 0 published, 2 bad
configuration or input, 3 data-quality gate failed (nothing published).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys

from crossrec.errors import ConfigError, InputError, QualityGateError
from crossrec.ingest.pipeline import IngestConfig, run
from crossrec.lake import Lake, run_date_arg
from crossrec.schemas.lake import PUBLISHED
from crossrec.session import get_session

log = logging.getLogger("crossrec.ingest")


def parse_args(argv: list[str] | None) -> IngestConfig:
    p = argparse.ArgumentParser(prog="ingest", description=__doc__.split("\n\n")[0])
    p.add_argument("--sources", required=True, help="sources TOML file (platforms, catalog, links)")
    p.add_argument("--lake", required=True, help="lake root: a path, file://, hdfs:// or s3a:// URL")
    p.add_argument("--run-date", required=True, type=run_date_arg,
                   help="partition to publish, YYYY-MM-DD")
    p.add_argument("--dev-key", action="store_true",
                   help="use the fixed development pseudonymisation key (NOT secret; demo only)")
    a = p.parse_args(argv)
    return IngestConfig(sources=a.sources, lake=a.lake, run_date=a.run_date, dev_key=a.dev_key)


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    spark = get_session("crossrec-ingest")
    try:
        manifest = run(spark, cfg)
    except (ConfigError, InputError) as e:
        log.error("%s", e)
        return 2
    except QualityGateError as e:
        log.error("%s", e)
        return 3
    lake = Lake.open(cfg.lake, spark)
    summary = {"run_date": manifest.run_date, "version": manifest.version,
               "run_id": manifest.run_id, **manifest.extra,
               "tables": {t.name: {"rows": manifest.tables[t.name]["rows"],
                                   "path": lake.path(t, manifest.run_date)} for t in PUBLISHED}}
    print(json.dumps(summary, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
