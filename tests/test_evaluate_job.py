"""The evaluate job end to end on a tiny lake with the baselines: the published split, metrics and
report, the printed table, a failing model named in exit 3, bad arguments exit 2; and tuning on a
validation split of the training data."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from crossrec.evaluate.baselines import EASEPooled, Popularity
from crossrec.evaluate.recommender import EvalData
from crossrec.evaluate.split import EvalProtocol
from crossrec.evaluate.tuning import Validation, tune
from crossrec.lake import Lake
from crossrec.schemas import columns as C
from crossrec.schemas.evaluation import EVALUATION, METRICS, SPLIT_TEST, SPLIT_TRAIN
from crossrec.schemas.lake import EVENTS, ITEMS
from jobs import evaluate
from tests.evalfix import tiny_world
from tests.lakefix import publish_unified

DATE = "2026-01-01"
MODELS = ("popularity", "ease_pooled")  # ALS is covered by the interface suite


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lake")
    items, events = tiny_world(n_users=40, seed=4)
    publish_unified(spark, root, DATE, items, events)
    return root


def _run(lake: Path, tmp: Path, *args: str) -> int:
    return evaluate.main(["--lake", str(lake), "--run-date", DATE, "--work-dir", str(tmp), *args])


def _local(url: str) -> Path:
    return Path(url[len("file://"):])


def test_publishes_split_metrics_and_report(spark, lake, tmp_path, capsys):
    assert _run(lake, tmp_path, "--models", ",".join(MODELS), "--seeds", "0,1", "--ks", "1,5",
                "--param", "ease_pooled.l2=20") == 0
    out = capsys.readouterr().out
    m = Lake.open(str(lake)).manifest(EVALUATION, DATE)
    assert m.extra["models"] == list(MODELS) and m.extra["seeds"] == [0, 1]
    assert m.extra["settings"]["ease_pooled"]["l2"] == 20
    metrics = ds.dataset(_local(Lake.open(str(lake)).path(METRICS, DATE))).to_table()
    assert metrics.schema == METRICS.as_arrow_schema()
    rows = metrics.to_pylist()
    cohorts = {seed: c for seed, c in m.extra["cohorts"].items()}
    n_cohorts = sum(1 for c in cohorts.values() for n in c.values() if n)
    # per model and cohort: 7 ranking metrics at k = 1, 5, 10, plus coverage, diversity, novelty
    assert len(rows) == m.tables[METRICS.name]["rows"] == len(MODELS) * n_cohorts * (7 * 3 + 3)
    assert {r[C.K] for r in rows} == {1, 5, 10}
    for seed in (0, 1):
        test = ds.dataset(_local(Lake.open(str(lake)).path(SPLIT_TEST, DATE)) / f"seed={seed}").to_table()
        users = {c: len({u for u, cc in zip(test[C.USER_IDX].to_pylist(), test[C.COHORT].to_pylist())
                         if cc == c}) for c in ("cold", "warm")}
        assert users == cohorts[str(seed)]
        for r in rows:
            if r[C.EVAL_SEED] == seed and r[C.METRIC] == "ndcg":
                assert r[C.N_USERS] == users[r[C.COHORT]] and 0.0 <= r[C.METRIC_VALUE] <= 1.0
        train = ds.dataset(_local(Lake.open(str(lake)).path(SPLIT_TRAIN, DATE)) / f"seed={seed}").to_table()
        assert set(EVENTS.columns) <= set(train.schema.names) and train.num_rows > 0
    report = _local(Lake.open(str(lake)).version_dir(EVALUATION, DATE)) / "report"
    assert {p.name for p in report.iterdir()} == {"report.md", "metrics_by_cohort.png", "recall_at_k.png"}
    assert "No model reported a training curve." in (report / "report.md").read_text()
    for model in MODELS:
        for cohort in ("cold", "warm"):
            assert f"| {model} | {cohort} | " in out
    ndcg = [r[C.METRIC_VALUE] for r in rows if (r[C.MODEL_NAME], r[C.COHORT], r[C.METRIC], r[C.K])
            == ("popularity", "warm", "ndcg", 10)]
    assert f"{sum(ndcg) / 2:.4f} ± " in out  # the printed mean over the two seeds


def test_a_failing_model_fails_the_job_by_name(spark, lake, tmp_path, monkeypatch, caplog):
    def broken(self, data):
        raise RuntimeError("out of cheese")

    monkeypatch.setattr(Popularity, "fit", broken)
    assert _run(lake, tmp_path, "--models", "popularity", "--seeds", "0") == 3
    assert "model 'popularity' failed: RuntimeError: out of cheese" in caplog.text


def test_bad_arguments(spark, lake, tmp_path, capsys, caplog):
    assert _run(lake, tmp_path, "--models", "nope", "--seeds", "0") == 2
    assert "unknown model 'nope'" in caplog.text
    assert _run(lake, tmp_path, "--models", "popularity", "--target", "jazz") == 2
    assert "--target 'jazz' is not a domain" in caplog.text
    for bad, message in ((["--seeds", "a"], "--seeds"), (["--param", "rank=3"], "MODEL.KEY=VALUE"),
                         (["--source", "drama"], "both 'drama'")):
        with pytest.raises(SystemExit) as e:
            _run(lake, tmp_path, *bad)
        assert e.value.code == 2 and message in capsys.readouterr().err


def test_tuning_uses_a_validation_split_of_the_training_data(spark, lake, tmp_path):
    lk = Lake.open(str(lake))
    protocol = EvalProtocol(seed=0)
    data = EvalData(spark, lk.read(spark, EVENTS, DATE), lk.read(spark, ITEMS, DATE), None, protocol,
                    str(tmp_path))
    valid = Validation.of(data)
    assert valid.data.protocol.seed != protocol.seed  # another draw than the test draw
    assert valid.data.train.count() < data.train.count()
    assert len(EASEPooled.grid) > 1 and EASEPooled.grid[0] != EASEPooled.grid[-1]
    grid = (EASEPooled.grid[0], EASEPooled.grid[-1])  # two settings keep the test short
    best, trials = tune("ease_pooled", valid, {"max_items": 100}, grid)
    assert [t.params for t in trials] == [{"max_items": 100, **g} for g in grid]
    assert best == max(trials, key=lambda t: (t.cold + t.warm) / 2).params
    json.dumps([t.params for t in trials])  # reportable


def test_rerun_skips_force_reruns_and_config_alone_works(spark, lake, tmp_path, capsys):
    """An unchanged rerun publishes nothing and prints the published table; --force evaluates
    again; the job takes its options from a --config file's [evaluate] table alone."""
    config = tmp_path / "crossrec.toml"
    config.write_text(f'lake = "{lake}"\nrun_date = "{DATE}"\n\n[evaluate]\nmodels = "popularity"\n'
                      f'seeds = "0"\nks = "1,5"\nwork_dir = "{tmp_path / "work"}"\n')
    assert evaluate.main(["--config", str(config)]) == 0
    first = Lake.open(str(lake)).manifest(EVALUATION, DATE)
    assert first.extra["models"] == ["popularity"] and first.extra["seeds"] == [0]
    printed = capsys.readouterr().out
    assert "| popularity | warm | " in printed
    assert evaluate.main(["--config", str(config)]) == 0
    assert Lake.open(str(lake)).manifest(EVALUATION, DATE).version == first.version
    assert capsys.readouterr().out.split("\n", 1)[1] == printed.split("\n", 1)[1]  # same table
    assert evaluate.main(["--config", str(config), "--force"]) == 0
    assert Lake.open(str(lake)).manifest(EVALUATION, DATE).version != first.version
