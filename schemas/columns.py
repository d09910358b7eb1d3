"""Column names: the only place they are spelled (Spark ML's ``userCol``/``itemCol`` idea)."""

# identities
USER_KEY = "user_key"        # HMAC-SHA256 pseudonym of a resolved person (hex)
USER_IDX = "user_idx"        # dense int index of a person, deterministic for a publication
ITEM_ID = "item_id"          # catalog item id (shared by all platforms)
ITEM_IDX = "item_idx"        # dense int index of an item
DOMAIN = "domain"
PLATFORM = "platform"
ACCOUNT = "account"          # a raw platform account id: internal to ingest, never written

# events
EVENT_TYPE = "event_type"
VALUE = "value"              # explicit feedback (e.g. a rating), null for implicit events
WEIGHT = "weight"
TS = "ts"
SEQ = "seq"                  # position of an event in its user's time-ordered history

# aggregates
N_EVENTS = "n_events"
FIRST_TS = "first_ts"
LAST_TS = "last_ts"
PLATFORMS = "platforms"
VALUE_LAST = "value_last"
VALUE_MAX = "value_max"
N_ACCOUNTS = "n_accounts"

# training: examples, domains, item vectors
DOMAIN_IDX = "domain_idx"    # dense index of a domain, by domain name order
SPLIT = "split"              # "train" or "valid"
HIST_ITEM = "hist_item"      # item_idx of the user's events strictly before the target, newest first
HIST_DOMAIN = "hist_domain"  # their domain_idx
HIST_AGE = "hist_age"        # their age at the target's time, in days (> 0)
HIST_VALUE = "hist_value"    # their value (0 where the event has none)
HIST_MASK = "hist_mask"      # not a column: the feed's [B, L] bool mask of real history slots
N_ITEMS = "n_items"
N_TARGETS = "n_targets"
VECTOR = "vector"            # an embedding
ENCODER = "encoder"          # the text encoder's name or path

# scoring
RANK = "rank"                # 1-based position in a recommendation list
SCORE = "score"

# evaluation: split, recommendations, metrics
COHORT = "cohort"            # "cold" or "warm" (jobs/evaluate.py's protocol)
EVAL_SEED = "seed"           # the seed of the cold-user draw
MODEL_NAME = "model"         # a registered recommender's name
METRIC = "metric"
K = "k"
METRIC_VALUE = "value"
N_USERS = "n_users"

# catalog
TITLE = "title"
YEAR = "year"
GENRES = "genres"
TEXT = "text"

# account links
PLATFORM_A = "platform_a"
ACCOUNT_A = "account_a"
PLATFORM_B = "platform_b"
ACCOUNT_B = "account_b"

# run bookkeeping
RUN_ID = "run_id"
RUN_DATE = "run_date"
SOURCE = "source"            # the configured source (platform, catalog or links) a row came from
SOURCE_FILE = "source_file"
FIELD = "field"
REASON = "reason"
RAW = "raw"
CHECK = "check"
PASSED = "passed"
OBSERVED = "observed"
EXPECTED = "expected"
DETAIL = "detail"
