"""Tables the scoring job publishes: per-user recommendation lists."""
from . import columns as C
from .table import Field, Table

RECOMMENDATIONS_DATASET = "recommendations"  # dataset of jobs/score.py

SOURCE_MODEL = "model"      # ranked by the model's score
SOURCE_POPULAR = "popular"  # the user has no usable history: the domain's most popular items

RECOMMENDATIONS = Table(
    "recommendations",
    (
        Field(C.USER_KEY, "string", doc="pseudonymous person key"),
        Field(C.USER_IDX, "int", doc="the person's index in the events scored"),
        Field(C.DOMAIN, "string"),
        Field(C.RANK, "int", doc="1..K, 1 = best"),
        Field(C.ITEM_ID, "string"),
        Field(C.ITEM_IDX, "int", doc="the item's index in the items table scored"),
        Field(C.SCORE, "float",
              doc="model: <u_t, v_i> + b_i; popular: distinct users with the item in the events"),
        Field(C.SOURCE, "string", doc="'model' or 'popular' (no usable history)"),
    ),
    dataset=RECOMMENDATIONS_DATASET,
    partition_by=(C.DOMAIN,),
    key=(C.USER_IDX, C.DOMAIN, C.RANK),
    doc="Top-K items per (user, domain), items the user already has in the domain excluded; "
        "ties: higher score first, then smaller item_idx.",
)

PUBLISHED_RECOMMENDATIONS = (RECOMMENDATIONS,)
