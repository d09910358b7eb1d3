"""Tables the training side publishes: item text vectors and training examples."""
from . import columns as C
from .table import Field, Table

ITEM_TEXT = "item_text"   # dataset of jobs/embed_items.py
EXAMPLES_DATASET = "examples"  # dataset of jobs/build_examples.py

SPLIT_TRAIN = "train"
SPLIT_VALID = "valid"

ITEM_VECTORS = Table(
    "item_vectors",
    (
        Field(C.ITEM_IDX, "int"),
        Field(C.ITEM_ID, "string"),
        Field(C.DOMAIN, "string"),
        Field(C.VECTOR, "array<float>", doc="L2-normalised sentence embedding of the item's text"),
        Field(C.ENCODER, "string", doc="encoder name (or local path) that produced the vector"),
    ),
    dataset=ITEM_TEXT,
    key=(C.ITEM_IDX,),
    doc="Frozen text embedding of every catalog item, one per catalog version.",
)

DOMAINS = Table(
    "domains",
    (
        Field(C.DOMAIN_IDX, "int", doc="dense index, by domain name order"),
        Field(C.DOMAIN, "string"),
        Field(C.N_ITEMS, "int", doc="catalog items in the domain"),
        Field(C.N_TARGETS, "long", doc="training targets (positives) in the domain"),
    ),
    dataset=EXAMPLES_DATASET,
    key=(C.DOMAIN_IDX,),
    doc="The domain vocabulary the examples and the model use.",
)

EXAMPLES = Table(
    "examples",
    (
        Field(C.USER_IDX, "int"),
        Field(C.SEQ, "int", doc="the target event's seq in the events table"),
        Field(C.ITEM_IDX, "int", doc="the target item"),
        Field(C.DOMAIN_IDX, "int", doc="the target item's domain"),
        Field(C.TS, "timestamp", doc="the target event's time"),
        Field(C.HIST_ITEM, "array<int>",
              doc="items of the user's events strictly before ts, newest first, at most L"),
        Field(C.HIST_DOMAIN, "array<int>", doc="their domain_idx"),
        Field(C.HIST_AGE, "array<float>", doc="days between each history event and the target (> 0)"),
        Field(C.HIST_VALUE, "array<float>", doc="their value (rating), 0 where none"),
        Field(C.SPLIT, "string", doc="'train' or 'valid' (each user's latest targets)"),
    ),
    dataset=EXAMPLES_DATASET,
    partition_by=(C.SPLIT,),
    key=(C.USER_IDX, C.SEQ),
    doc="One row per positive target event with the user's history before it (no leakage).",
)

PUBLISHED_EXAMPLES = (DOMAINS, EXAMPLES)

MODEL = "model"  # dataset of jobs/train.py: artifact files (weights.safetensors, model.json), no tables
