"""Tables the ingest job publishes to the lake (dataset ``unified``), and the raw inputs it reads."""
from . import columns as C
from .table import Field, Table

UNIFIED = "unified"  # the publication unit of the ingest job: these tables commit together

# --- raw inputs with a fixed logical shape (their physical column names come from config) ---------

CATALOG_RAW = Table(
    "catalog_raw",
    (
        Field(C.ITEM_ID, "string"),
        Field(C.TITLE, "string"),
        Field(C.YEAR, "int", nullable=True),
        Field(C.GENRES, "string", nullable=True, doc="genres joined by '|'"),
        Field(C.DOMAIN, "string"),
        Field(C.TEXT, "string", nullable=True, doc="free text for the item encoder"),
    ),
    doc="Item catalog as delivered.",
)

LINKS_RAW = Table(
    "links_raw",
    (
        Field(C.PLATFORM_A, "string"),
        Field(C.ACCOUNT_A, "string"),
        Field(C.PLATFORM_B, "string"),
        Field(C.ACCOUNT_B, "string"),
    ),
    doc="Pairs of platform accounts known to belong to the same person.",
)

# --- published tables ------------------------------------------------------------------------------

ITEMS = Table(
    "items",
    (
        Field(C.ITEM_IDX, "int", doc="dense index, by item_id order"),
        Field(C.ITEM_ID, "string"),
        Field(C.TITLE, "string"),
        Field(C.YEAR, "int", nullable=True),
        Field(C.GENRES, "array<string>"),
        Field(C.DOMAIN, "string"),
        Field(C.TEXT, "string", doc="text for the item encoder (title + genres when not given)"),
    ),
    dataset=UNIFIED,
    key=(C.ITEM_ID,),
    doc="The item catalog with dense indices.",
)

USERS = Table(
    "users",
    (
        Field(C.USER_IDX, "int", doc="dense index, by user_key order"),
        Field(C.USER_KEY, "string", doc="HMAC-SHA256 pseudonym of the resolved person"),
        Field(C.N_ACCOUNTS, "int", doc="platform accounts resolved to this person"),
        Field(C.PLATFORMS, "array<string>", doc="platforms with events, sorted"),
        Field(C.N_EVENTS, "long"),
        Field(C.FIRST_TS, "timestamp"),
        Field(C.LAST_TS, "timestamp"),
    ),
    dataset=UNIFIED,
    key=(C.USER_KEY,),
    doc="One row per resolved, pseudonymised person with at least one valid event.",
)

INTERACTIONS = Table(
    "interactions",
    (
        Field(C.USER_IDX, "int"),
        Field(C.ITEM_IDX, "int"),
        Field(C.USER_KEY, "string"),
        Field(C.ITEM_ID, "string"),
        Field(C.WEIGHT, "double", doc="sum of event weights"),
        Field(C.N_EVENTS, "int"),
        Field(C.FIRST_TS, "timestamp"),
        Field(C.LAST_TS, "timestamp"),
        Field(C.PLATFORMS, "array<string>", doc="platforms the events came from, sorted"),
        Field(C.VALUE_LAST, "double", nullable=True,
              doc="value of the latest event (by seq) with one"),
        Field(C.VALUE_MAX, "double", nullable=True),
        Field(C.DOMAIN, "string"),
    ),
    dataset=UNIFIED,
    partition_by=(C.DOMAIN,),
    key=(C.USER_IDX, C.ITEM_IDX),
    doc="The user-item matrix: one row per (person, item), partitioned by domain.",
)

EVENTS = Table(
    "events",
    (
        Field(C.USER_IDX, "int"),
        Field(C.SEQ, "int", doc="0-based position in the user's time-ordered history"),
        Field(C.USER_KEY, "string"),
        Field(C.ITEM_IDX, "int"),
        Field(C.ITEM_ID, "string"),
        Field(C.DOMAIN, "string"),
        Field(C.PLATFORM, "string"),
        Field(C.EVENT_TYPE, "string"),
        Field(C.VALUE, "double", nullable=True),
        Field(C.WEIGHT, "double"),
        Field(C.TS, "timestamp"),
    ),
    dataset=UNIFIED,
    key=(C.USER_IDX, C.SEQ),
    doc="De-duplicated events; each file holds whole users, sorted by (user_idx, seq): the input "
        "of sequence models.",
)

QUARANTINE = Table(
    "quarantine",
    (
        Field(C.RUN_ID, "string"),
        Field(C.SOURCE, "string", doc="platform name, 'catalog' or 'links'"),
        Field(C.SOURCE_FILE, "string"),
        Field(C.FIELD, "string", doc="the offending field, or '*' for the whole row"),
        Field(C.REASON, "string"),
        Field(C.RAW, "string", doc="the row as read; account ids replaced by their pseudonym"),
    ),
    dataset=UNIFIED,
    doc="Every rejected input row, with why. Nothing is dropped silently.",
)

QUALITY = Table(
    "quality",
    (
        Field(C.RUN_ID, "string"),
        Field(C.CHECK, "string"),
        Field(C.PASSED, "bool"),
        Field(C.OBSERVED, "double"),
        Field(C.EXPECTED, "string"),
        Field(C.DETAIL, "string"),
    ),
    dataset=UNIFIED,
    key=(C.CHECK,),
    doc="The data-quality gate's checks for the run.",
)

PUBLISHED = (ITEMS, USERS, INTERACTIONS, EVENTS, QUARANTINE, QUALITY)
