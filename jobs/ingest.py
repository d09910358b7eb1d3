"""Ingest: raw platform logs -> one pseudonymised user-item table (plus catalog, events, users,
quarantine and quality report) published atomically to the lake for a run date.

    ./spark-submit.sh ingest --sources data/demo/raw/sources.toml --lake data/demo/lake \\
        --run-date 2026-11-23 [--dev-key] [--force] [--config crossrec.toml] \\
        [--master yarn --conf k=v ...]

The pseudonymisation key comes from $CROSSREC_ID_KEY; ``--dev-key`` uses a fixed, public
development key instead (demo and local runs only). A rerun of a date whose inputs (the files'
path, size and mtime), sources file, key and code are unchanged publishes nothing and exits 0
(``--force`` ingests anyway). Exit status: 0 published or unchanged, 2 bad configuration or
input, 3 data-quality gate failed (nothing published), 4 another run of the date
published meanwhile (nothing published).
"""
from __future__ import annotations

import json
import logging
import sys

from crossrec.cli import exit_status, job_parser, parse, setup_logging
from crossrec.ingest.pipeline import IngestConfig, run
from crossrec.lake import Lake
from crossrec.schemas.lake import PUBLISHED
from crossrec.session import get_session

log = logging.getLogger("crossrec.ingest")


def parse_args(argv: list[str] | None) -> IngestConfig:
    p = job_parser("ingest", __doc__, "partition to publish")
    p.add_argument("--sources", required=True, help="sources TOML file (platforms, catalog, links)")
    p.add_argument("--dev-key", action="store_true",
                   help="use the fixed development pseudonymisation key (NOT secret; demo only)")
    p.add_argument("--force", action="store_true",
                   help="ingest again even if the inputs, key and code are unchanged")
    a = parse(p, argv, "ingest")
    return IngestConfig(sources=a.sources, lake=a.lake, run_date=a.run_date, dev_key=a.dev_key,
                        force=a.force)


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    setup_logging()
    spark = get_session("crossrec-ingest")

    def body() -> int:
        manifest = run(spark, cfg)
        lake = Lake.open(cfg.lake, spark)
        summary = {"run_date": manifest.run_date, "version": manifest.version,
                   "run_id": manifest.run_id, **manifest.extra,
                   "tables": {t.name: {"rows": manifest.tables[t.name]["rows"],
                                       "path": lake.path(t, manifest.run_date)} for t in PUBLISHED}}
        print(json.dumps(summary, indent=2, sort_keys=True))
        return 0

    return exit_status(log, body)

if __name__ == "__main__":
    sys.exit(main())
