"""Tables the evaluation job publishes (dataset ``evaluation``): the split every model was scored
on, and the metrics table. The human report (Markdown + PNG) is stored beside them as files."""
from . import columns as C
from .lake import EVENTS
from .table import Field, Table

EVALUATION = "evaluation"  # dataset of jobs/evaluate.py

COLD = "cold"
WARM = "warm"
COHORTS = (COLD, WARM)

SPLIT_TEST = Table(
    "split_test",
    (
        Field(C.EVAL_SEED, "int", doc="seed of the cold-user draw"),
        Field(C.USER_IDX, "int"),
        Field(C.ITEM_IDX, "int", doc="a held-out positive of the target domain"),
        Field(C.COHORT, "string", doc="'cold' (no target-domain training data) or 'warm'"),
        Field(C.TS, "timestamp", doc="time of the user's first positive event on the item"),
    ),
    dataset=EVALUATION,
    partition_by=(C.EVAL_SEED,),
    key=(C.EVAL_SEED, C.USER_IDX, C.ITEM_IDX),
    doc="The test set per seed: held-out target-domain positives of the cold and warm cohorts.",
)

SPLIT_TRAIN = Table(
    "split_train",
    (Field(C.EVAL_SEED, "int"), *EVENTS.fields),  # the unified events, per seed
    dataset=EVALUATION,
    partition_by=(C.EVAL_SEED,),
    key=(C.EVAL_SEED, C.USER_IDX, C.SEQ),
    doc="The training events per seed (unified events minus what the protocol holds out): "
        "every model of the run was fitted on exactly these rows.",
)

RECOMMENDATIONS = Table(
    "recommendations",
    (
        Field(C.USER_IDX, "int"),
        Field(C.ITEM_IDX, "int"),
        Field(C.SCORE, "float"),
        Field(C.RANK, "int", doc="1..n, ties broken by item_idx ascending"),
    ),
    key=(C.USER_IDX, C.RANK),
    doc="What a recommender returns (not published): at most k target-domain items per user.",
)

METRICS = Table(
    "metrics",
    (
        Field(C.MODEL_NAME, "string", doc="registered recommender name"),
        Field(C.COHORT, "string"),
        Field(C.METRIC, "string", doc="ndcg, recall, recall_capped, hit_rate, mrr, precision, f1, "
                                      "coverage, diversity, novelty"),
        Field(C.K, "int", doc="list length the metric is cut at"),
        Field(C.EVAL_SEED, "int"),
        Field(C.METRIC_VALUE, "double", doc="mean over the cohort's users (coverage: of the cohort)"),
        Field(C.N_USERS, "long", doc="users the value is computed over"),
    ),
    dataset=EVALUATION,
    key=(C.MODEL_NAME, C.COHORT, C.METRIC, C.K, C.EVAL_SEED),
    doc="Every model x cohort x metric x k x seed of an evaluation run.",
)

PUBLISHED_EVALUATION = (SPLIT_TRAIN, SPLIT_TEST, METRICS)
