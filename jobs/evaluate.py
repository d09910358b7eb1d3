"""Evaluate: does cross-domain transfer beat what one would otherwise run, and for whom? Scores every
recommender on the cold-start and warm cohorts of a target domain, on the same stored split.

    ./spark-submit.sh evaluate --lake data/demo/lake --run-date 2026-11-23 \\
        [--target drama] [--source comedy] [--seeds 0,1,2] [--k 10] [--ks 1,5,10,20,50,100] \\
        [--models popularity,als_target,als_pooled,ease_pooled,crossrec] [--tune] \\
        [--param als_pooled.rank=128 --param crossrec.l2=1000] [--min-value 4|none] \\
        [--train-events positives|all] [--force] [--config crossrec.toml]

Per seed of the cold-user draw: split (stored in the run as ``split_train``/``split_test``) ->
leak check -> fit and score every model -> metrics. Publishes dataset ``evaluation`` (tables
``split_train``, ``split_test``, ``metrics``; files ``report/report.md`` and its PNGs) and prints
the model x cohort table (mean ± std over seeds). ``--tune`` picks each model's setting from
its grid on a validation split carved from the first seed's training data. A rerun with the same
unified version, protocol, seeds, models and parameters publishes nothing and prints the published
table (``--force`` evaluates again). Exit status: 0 published or unchanged, 2 bad arguments or
input, 3 a model failed (the message names it) or the split leaked, 4 another run of the date
published meanwhile (nothing published).
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from crossrec.cli import (EXIT_CODES, exit_status, job_parser, min_value_arg, model_param_arg,
                          parse, setup_logging)
from crossrec.evaluate.harness import ModelError
from crossrec.evaluate.job import EvaluateConfig, run
from crossrec.evaluate.report import table
from crossrec.evaluate.split import EvalProtocol, LeakError
from crossrec.lake import Lake
from crossrec.schemas.evaluation import METRICS
from crossrec.session import get_session

log = logging.getLogger("crossrec.evaluate")


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return values


def parse_args(argv: list[str] | None) -> EvaluateConfig:
    p = job_parser("evaluate", __doc__, "unified run date to evaluate on and publish")
    p.add_argument("--target", default="drama", help="target domain T (default drama)")
    p.add_argument("--source", default="comedy", help="source domain S of the cold cohort (default comedy)")
    p.add_argument("--seeds", type=_ints, default=(0, 1, 2), help="cold-user draws (default 0,1,2)")
    p.add_argument("--k", type=int, default=10, help="list length of the table (default 10)")
    p.add_argument("--ks", type=_ints, default=(1, 5, 10, 20, 50, 100), help="K of the recall@K curve")
    p.add_argument("--models", default="", help="comma-separated names (default: every registered)")
    p.add_argument("--tune", action="store_true", help="choose each model's setting from its grid")
    p.add_argument("--param", type=model_param_arg, action="append", default=[],
                   help="MODEL.KEY=VALUE passed to the model (repeatable)")
    p.add_argument("--min-value", type=min_value_arg, default=4.0,
                   help="value of a positive (default 4.0); 'none': every event with weight > 0")
    p.add_argument("--train-events", choices=("positives", "all"), default="positives",
                   help="training data: positives only (the benchmark) or every event")
    p.add_argument("--cold-frac", type=float, default=0.2)
    p.add_argument("--warm-test-frac", type=float, default=0.2)
    p.add_argument("--work-dir", default=".crossrec-work/evaluate", help="scratch folder for models")
    p.add_argument("--force", action="store_true",
                   help="evaluate again even if the inputs and parameters are unchanged")
    a = parse(p, argv, "evaluate")
    try:
        protocol = EvalProtocol(a.target, a.source, a.min_value, a.cold_frac, a.warm_test_frac,
                                a.seeds[0], a.k, a.ks, a.train_events)
    except ValueError as e:
        p.error(str(e))
    params: dict[str, dict[str, Any]] = {}
    for model, key, value in a.param:
        params.setdefault(model, {})[key] = value
    models = tuple(m.strip() for m in a.models.split(",") if m.strip())
    return EvaluateConfig(a.lake, a.run_date, protocol, a.seeds, models, params, a.tune, a.work_dir,
                          a.force)


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    setup_logging()
    spark = get_session("crossrec-evaluate")

    def body() -> None:
        manifest, rows = run(spark, cfg)
        lake = Lake.open(cfg.lake, spark)
        print(f"evaluation {manifest.run_date} version {manifest.version}: target "
              f"{cfg.protocol.target}, source {cfg.protocol.source}, seeds {list(cfg.seeds)}, "
              f"cohorts {manifest.extra['cohorts']}")
        print(f"metrics: {lake.path(METRICS, manifest.run_date)}")
        print(f"report:  {lake.version_dir(METRICS.dataset, manifest.run_date)}/{manifest.extra['report']}")
        print(table(rows, cfg.protocol.k))

    return exit_status(log, body, {**EXIT_CODES, ModelError: 3, LeakError: 3})


if __name__ == "__main__":
    sys.exit(main())
