"""Time to the quality bar: crossrec beside Spark MLlib ALS (and EASE) on the evaluation's cohort
protocol, every model fitted and scored on the same stored split in the same run.

    .venv/bin/python bench/quality.py --lake data/demo/lake --run-date 2026-11-23   # one JSON object

Needs a lake with the unified tables (``./demo.sh prepare ingest`` makes one from MovieLens-1M).
Per seed of the cold-user draw: split once (positives ≥ 4, 20 % cold, latest 20 % warm) and cache
it, then for each model the wall time of ``fit`` and of ``recommend`` for every tested user, its
NDCG@10 per cohort and whether it clears the issue's bar (≥ 0.50 cold, ≥ 0.175 warm). Models run
with their defaults (the settings ``evaluate --tune`` chose, see the README); ``--param`` as in
the evaluate job. Printed: one JSON object, load average included.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BAR = {"cold": 0.50, "warm": 0.175}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lake", default=str(ROOT / "data" / "demo" / "lake"))
    p.add_argument("--run-date", required=True)
    p.add_argument("--master", default="local[2]")
    p.add_argument("--seeds", default="0", help="comma-separated seeds of the cold-user draw")
    p.add_argument("--models", default="crossrec,als_pooled,ease_pooled,popularity")
    p.add_argument("--param", action="append", default=[], metavar="MODEL.KEY=VALUE",
                   help="a model setting, as the evaluate job's --param")
    return p.parse_args(argv)


def one_seed(spark: Any, events: Any, items: Any, seed: int, models: list[str],
             params: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    from crossrec.evaluate.harness import cohort_mean, evaluate_model
    from crossrec.evaluate.recommender import EvalData, Recommender
    from crossrec.evaluate.split import EvalProtocol
    from crossrec.evaluate.tuning import Validation

    protocol = EvalProtocol(seed=seed)
    t0 = time.perf_counter()
    v = Validation.cut(EvalData(spark, events, items, None, protocol,
                                str(ROOT / ".cache" / "bench-quality")), protocol)
    split_s = time.perf_counter() - t0
    out = []
    for name in models:
        rec = Recommender.create(name, **params.get(name, {}))
        rows, secs = evaluate_model(name, rec, v.data, v.test, v.view, v.facts, seed)
        ndcg = cohort_mean(rows, "ndcg", protocol.k)
        out.append({"seed": seed, "model": name, "settings": rec.settings(), **secs,
                    "ndcg@10": {c: round(v, 4) for c, v in ndcg.items()},
                    "passes_bar": all(ndcg.get(c, 0.0) >= b for c, b in BAR.items()),
                    "split_s": round(split_s, 2)})
        print(json.dumps(out[-1]), file=sys.stderr, flush=True)
    v.data.train.unpersist()
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(ROOT / "lib"))
    from crossrec.cli import model_param_arg
    from crossrec.lake import Lake
    from crossrec.schemas.lake import EVENTS, ITEMS
    from crossrec.session import get_session

    logging.basicConfig(level=logging.WARNING)
    spark = get_session("crossrec-bench-quality", master=args.master, conf={"spark.driver.memory": "4g"})
    load_before = os.getloadavg()
    lake = Lake.open(args.lake, spark)
    events, items = lake.read(spark, EVENTS, args.run_date), lake.read(spark, ITEMS, args.run_date)
    models = [m for m in args.models.split(",") if m]
    params: dict[str, dict[str, Any]] = {}
    for model, key, value in map(model_param_arg, args.param):
        params.setdefault(model, {})[key] = value
    runs = [r for seed in (int(s) for s in args.seeds.split(","))
            for r in one_seed(spark, events, items, seed, models, params)]
    print(json.dumps({
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
        "lake": args.lake, "run_date": args.run_date, "bar": BAR, "runs": runs,
    }, indent=2))
    spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
