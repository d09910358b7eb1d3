"""Evaluate: does cross-domain transfer beat what one would otherwise run, and for whom? Scores every
recommender on the cold-start and warm cohorts of a target domain, on the same stored split.

    ./spark-submit.sh evaluate --lake data/demo/lake --run-date 2026-11-23 \\
        [--target drama] [--source comedy] [--seeds 0,1,2] [--k 10] [--ks 1,5,10,20,50,100] \\
        [--models popularity,als_target,als_pooled,ease_pooled] [--tune] \\
        [--param als_pooled.rank=128 --param crossrec.epochs=3] [--min-value 4|none] \\
        [--train-events positives|all]

Per seed of the cold-user draw: split (stored in the run as ``split_train``/``split_test``) ->
leak check -> fit and score every model -> metrics. Publishes dataset ``evaluation`` (tables
``split_train``, ``split_test``, ``metrics``; files ``report/report.md`` and its PNGs) and prints
the model x cohort table (mean ± std over seeds). ``--tune`` picks each baseline's setting from
its grid on a validation split carved from the first seed's training data. Exit status: 0
published, 2 bad arguments or input, 3 a model failed (the message names it) or the split leaked.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from crossrec.cli import min_value_arg
from crossrec.errors import ConfigError, InputError
from crossrec.evaluate.harness import ModelError
from crossrec.evaluate.job import EvaluateConfig, run
from crossrec.evaluate.report import table
from crossrec.evaluate.split import EvalProtocol, LeakError
from crossrec.lake import Lake, run_date_arg
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


def _param(text: str) -> tuple[str, str, Any]:
    """``model.key=value``; the value is read as JSON when it parses (3, 0.1, true), else a string."""
    head, sep, raw = text.partition("=")
    model, dot, key = head.partition(".")
    if not (sep and dot and model and key):
        raise argparse.ArgumentTypeError(f"expected MODEL.KEY=VALUE, got {text!r}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return model, key, value


def parse_args(argv: list[str] | None) -> EvaluateConfig:
    p = argparse.ArgumentParser(prog="evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--lake", required=True, help="lake root: a path, file://, hdfs:// or s3a:// URL")
    p.add_argument("--run-date", required=True, type=run_date_arg,
                   help="unified run date to evaluate on and publish, YYYY-MM-DD")
    p.add_argument("--target", default="drama", help="target domain T (default drama)")
    p.add_argument("--source", default="comedy", help="source domain S of the cold cohort (default comedy)")
    p.add_argument("--seeds", type=_ints, default=(0, 1, 2), help="cold-user draws (default 0,1,2)")
    p.add_argument("--k", type=int, default=10, help="list length of the table (default 10)")
    p.add_argument("--ks", type=_ints, default=(1, 5, 10, 20, 50, 100), help="K of the recall@K curve")
    p.add_argument("--models", default="", help="comma-separated names (default: every registered)")
    p.add_argument("--tune", action="store_true", help="choose each model's setting from its grid")
    p.add_argument("--param", type=_param, action="append", default=[],
                   help="MODEL.KEY=VALUE passed to the model (repeatable)")
    p.add_argument("--min-value", type=min_value_arg, default=4.0,
                   help="value of a positive (default 4.0); 'none': every event with weight > 0")
    p.add_argument("--train-events", choices=("positives", "all"), default="positives",
                   help="training data: positives only (the benchmark) or every event")
    p.add_argument("--cold-frac", type=float, default=0.2)
    p.add_argument("--warm-test-frac", type=float, default=0.2)
    p.add_argument("--work-dir", default=".crossrec-work/evaluate", help="scratch folder for models")
    a = p.parse_args(argv)
    try:
        protocol = EvalProtocol(a.target, a.source, a.min_value, a.cold_frac, a.warm_test_frac,
                                a.seeds[0], a.k, a.ks, a.train_events)
    except ValueError as e:
        p.error(str(e))
    params: dict[str, dict[str, Any]] = {}
    for model, key, value in a.param:
        params.setdefault(model, {})[key] = value
    models = tuple(m.strip() for m in a.models.split(",") if m.strip())
    return EvaluateConfig(a.lake, a.run_date, protocol, a.seeds, models, params, a.tune, a.work_dir)


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    spark = get_session("crossrec-evaluate")
    try:
        manifest, state = run(spark, cfg)
    except (ConfigError, InputError) as e:
        log.error("%s", e)
        return 2
    except (ModelError, LeakError) as e:
        log.error("%s", e)
        return 3
    lake = Lake.open(cfg.lake, spark)
    print(f"evaluation {manifest.run_date} version {manifest.version}: target {cfg.protocol.target}, "
          f"source {cfg.protocol.source}, seeds {list(cfg.seeds)}, cohorts {manifest.extra['cohorts']}")
    print(f"metrics: {lake.path(METRICS, manifest.run_date)}")
    print(f"report:  {lake.version_dir(METRICS.dataset, manifest.run_date)}/{manifest.extra['report']}")
    print(table(state.rows, cfg.protocol.k))
    return 0


if __name__ == "__main__":
    sys.exit(main())
