"""README command 1 end to end: ./demo.sh on the real MovieLens-1M data, in local mode."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from crossrec.lake import Lake
from crossrec.schemas import columns as C
from crossrec.schemas.evaluation import METRICS
from crossrec.schemas.scoring import RECOMMENDATIONS
from crossrec.schemas.lake import EVENTS, INTERACTIONS, ITEMS, QUARANTINE, USERS
from crossrec.schemas.training import DOMAINS, ITEM_TEXT, ITEM_VECTORS, MODEL
from crossrec.train.artifact import load_artifact
from crossrec.train.job import artifact_dir

ROOT = Path(__file__).resolve().parents[1]
RUN_DATE = "2026-11-23"


@pytest.mark.slow
def test_demo_runs_ingest_to_evaluation_on_movielens(tmp_path):
    # one short epoch: the demo's full schedule is the benchmark's business, not CI's
    env = {**os.environ, "CROSSREC_DEMO_DIR": str(tmp_path / "demo"), "RUN_DATE": RUN_DATE,
           "CROSSREC_DEMO_TRAIN_ARGS": "--pretrain-epochs 1 --finetune-epochs 0 --dim 32",
           # one cold draw, crossrec and the two cheap baselines: the full table is the benchmark's
           "CROSSREC_DEMO_EVAL_ARGS": "--seeds 0 --models popularity,ease_pooled,crossrec"}
    env.pop("CROSSREC_ID_KEY", None)  # the demo uses the development key by itself
    done = subprocess.run(["bash", "demo.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"lake:              {tmp_path / 'demo' / 'lake'}" in done.stdout

    # the ratings in the real files, counted independently of crossrec
    ml = ROOT / "data" / "cache"
    inter = next(ml.rglob("ml-1m.inter"))
    ratings = sum(1 for _ in inter.open("rb")) - 1
    items = sum(1 for _ in next(ml.rglob("ml-1m.item")).open("rb")) - 1
    people = len({line.split(b"\t", 1)[0] for line in inter.open("rb")}) - 1

    lake = Lake.open(str(tmp_path / "demo" / "lake"))
    manifest = lake.manifest("unified", RUN_DATE)
    assert manifest is not None
    rows = {name: facts["rows"] for name, facts in manifest.tables.items()}
    assert rows[EVENTS.name] + rows[QUARANTINE.name] + manifest.extra["duplicates"] == ratings
    assert rows[ITEMS.name] == items
    # linked people merge into one user; unlinked ones stay one user per platform account
    assert people <= rows[USERS.name] <= 3 * people
    users = pq.read_table(lake.path(USERS, RUN_DATE)).to_pandas()
    assert users[C.N_EVENTS].sum() == rows[EVENTS.name]
    assert (users[C.N_ACCOUNTS] > 1).sum() >= 0.7 * people  # 80 % of people are linked
    domains = pq.read_table(lake.path(INTERACTIONS, RUN_DATE),
                            columns=[C.DOMAIN]).column(C.DOMAIN).unique().to_pylist()
    assert sorted(domains) == ["comedy", "drama", "other"]

    # training side: one MiniLM vector per item, examples for every domain, a loadable model
    assert lake.manifest(ITEM_TEXT, RUN_DATE).tables[ITEM_VECTORS.name]["rows"] == items
    domains = pq.read_table(lake.path(DOMAINS, RUN_DATE)).to_pandas()
    assert sorted(domains[C.DOMAIN]) == ["comedy", "drama", "other"] and (domains[C.N_TARGETS] > 0).all()
    model, meta = load_artifact(Path(artifact_dir(lake, RUN_DATE).removeprefix("file://")))
    assert meta["model_config"]["n_items"] == items and meta["encoder"] == "all-MiniLM-L6-v2"
    assert meta["max_history"] == 20  # train's default L, recorded: scoring cuts histories by it
    history = lake.manifest(MODEL, RUN_DATE).extra["metrics"]
    assert history["valid_recall@10"] > 0.05  # far above chance (10 of ~1,300 items per domain)

    # scoring: every (user, domain) list is at most 10 long, ranks 1..n, from this date's model
    recs = pq.read_table(lake.path(RECOMMENDATIONS, RUN_DATE),
                         columns=[C.USER_KEY, C.DOMAIN, C.RANK, C.ITEM_IDX]).to_pandas()
    per_list = recs.groupby([C.USER_KEY, C.DOMAIN])
    assert per_list.size().max() <= 10 and per_list[C.RANK].max().eq(per_list.size()).all()
    assert recs[C.USER_KEY].nunique() == rows[USERS.name]
    assert not recs.duplicated([C.USER_KEY, C.DOMAIN, C.ITEM_IDX]).any()

    # evaluation: the printed table and the metrics table agree on who was measured
    metrics = pq.read_table(lake.path(METRICS, RUN_DATE)).to_pandas()
    assert set(metrics[C.MODEL_NAME]) == {"popularity", "ease_pooled", "crossrec"}
    assert set(metrics[C.COHORT]) == {"cold", "warm"}
    assert "ease_pooled" in done.stdout and "popularity" in done.stdout

    # the quality bar on the real data (seed 0 of the cold draw): crossrec clears the issue's
    # NDCG@10 (0.50 cold, 0.175 warm) and beats the strongest cheap baseline on both cohorts
    ndcg = metrics[(metrics[C.METRIC] == "ndcg") & (metrics[C.K] == 10)] \
        .set_index([C.MODEL_NAME, C.COHORT])[C.METRIC_VALUE]
    assert ndcg["crossrec", "cold"] >= 0.50 and ndcg["crossrec", "warm"] >= 0.175, ndcg
    assert ndcg["crossrec", "cold"] > ndcg["ease_pooled", "cold"], ndcg
    assert ndcg["crossrec", "warm"] > ndcg["ease_pooled", "warm"], ndcg
