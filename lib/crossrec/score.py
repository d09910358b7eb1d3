"""Scoring: a trained model artifact + events + items -> the top-K items of every (user, domain).

    recs = recommend(events, items, artifact_dir, k=10)          # RECOMMENDATIONS rows

The driver reads only ``model.json`` and plans, in O(items): each scored domain's candidates (the
catalog's items of that domain the model knows, matched by ``item_id``, in ``item_idx`` order) and
their popularity. Users never come to the driver: events are hash-partitioned by user and sorted
by ``(user_idx, ts, seq)``; ``mapInArrow`` then scores each partition in blocks of
``block_users`` whole users. The lake's events files already hold whole users in that order, so
the score job's tasks read them themselves (:func:`score_event_files`; no shuffle). Every Python
worker loads the artifact once (a module-level cache keyed by artifact path and plan) and keeps
each domain's item matrix on its device; a slice of
a block's screen scores (``[c, M]``: on CPU about 8 MB, on a GPU the whole block) is the only
user × item array that ever exists.

Histories follow training (:func:`crossrec.examples.history_slices`): the user's latest L events
(L from the artifact) whose item and domain the model knows, newest first, with their domain,
value and age. The age reference is the user's own latest event: training measured ages to the
next target, which follows the history closely, so "now" for a user is their last activity, not
the run date (a user idle for a year is scored as they were when last seen).

Two kinds of artifact (``model_config.kind``), one scoring path: the embedding model
(``towers``: user vectors [B, T, D] from histories as above, item vectors [M, D]) and the
closed-form transfer model (``transfer``: a user is the 0/1 row [V] of their positives of known
items, whole history, and a domain's "item vectors" are its θ_d columns [M, V]); either way a
block is one ``mm`` per domain (the bias folded in as a row), then the same exclusions, ties and
top-K. The ``mm`` is a screen (:mod:`crossrec.screen`; bf16 on CPUs with native bf16): it finds
the few items per user that can be in the top K, and only those are scored exactly (float64,
rounded to the output's float32), so the lists and scores do not depend on the screen's
precision, the slicing or the device.

Exclusions: every item the user has in ``events`` in that domain (all events, not only the last
L). Ties: higher score first, then smaller ``item_idx``. A user with no usable history (no
events, or only events of items or domains the model does not know) gets the domain's most
popular items by distinct users in ``events``, same exclusions, ``source = "popular"`` and the
user count as score. Catalog items the model does not know (added since training) cannot be
scored: they are left out and counted in :attr:`ScoringPlan.facts`.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from torch import Tensor

from crossrec.errors import InputError, raised_in_tasks
from crossrec.event_files import Piece, per_piece, read_piece
from crossrec.examples import history_slices, run_starts
from crossrec.schemas import columns as C
from crossrec.schemas.scoring import RECOMMENDATIONS, SOURCE_MODEL, SOURCE_POPULAR
from crossrec.screen import (Screen, check_screen, make_screen, screen_dtype, screen_scores,
                             screened_top_k)
from crossrec.worker import freeze_long_lived

_US_PER_DAY = 86_400_000_000.0
_MODEL_IDX = "_model_idx"  # an item's index in the artifact (null: unknown to the model)
_INPUT = [C.USER_IDX, C.USER_KEY, C.TS, C.SEQ, _MODEL_IDX, C.DOMAIN_IDX, C.VALUE, C.WEIGHT]
_ARROW_OUT = RECOMMENDATIONS.as_arrow_schema()
# Columns per group of the two-stage top-k: an amax over 32 contiguous floats vectorises well on
# CPU (16 did not), and a group's columns come back as one 128-byte run per candidate group.
TOPK_GROUP = 32
# On CPU a block's scores are made and reduced a few users at a time, so that each [c, M] slice
# stays in cache between the GEMM that writes it and the exclusions and top-k that read it:
# [1024, 20000] fp32 is 80 MB, and every pass over it went to memory. Smaller slices re-read the
# [M, D] items more often and pay per-call costs; 8 MB was best or within 15 % of it for M from
# 3,000 to 100,000 (one thread, D 64: [1024, 20000] in 42 ms against 88 ms whole); the users
# per slice are then rounded to a power of two (cpu_slice_users).
CPU_SCORE_BYTES = 8 << 20


@dataclass(frozen=True)
class Candidates:
    """One scored domain's items, in ``item_idx`` order (the tie-break order)."""

    domain: str
    domain_idx: int          # in the artifact's vocabulary
    model_idx: np.ndarray    # [M] the items' rows in the artifact
    item_idx: np.ndarray     # [M] in the items table scored
    item_id: np.ndarray      # [M] object
    users: np.ndarray        # [M] distinct users with the item in the events (popularity)


@dataclass(frozen=True)
class ScoringPlan:
    """What every executor needs besides its users: O(items), shipped with the task."""

    artifact_dir: str
    max_history: int
    k: int
    block_users: int
    device: str
    candidates: tuple[Candidates, ...]
    facts: dict[str, Any] = field(default_factory=dict)  # for the job's summary
    kind: str = "towers"                # the artifact's model: "towers" or "transfer"
    min_value: float | None = None      # transfer: a person's row is their positives only
    slice_users: int | None = None      # users per score slice; None: see score_rows
    screen: str = "auto"                # the model path's screen precision (crossrec.screen)
    # by the catalog's item_idx: the item's row in the artifact and its domain's index in the
    # artifact's vocabulary, -1 where unknown (what the joins of score_users find by name)
    item_model_idx: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    item_domain_idx: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))

    @property
    def key(self) -> str:
        """Identifies the executor-side state this plan needs (artifact, device, candidates)."""
        h = hashlib.sha256(f"{self.artifact_dir}|{self.device}|{self.screen}".encode())
        for c in self.candidates:
            h.update(c.domain.encode())
            h.update(np.ascontiguousarray(c.model_idx, dtype=np.int64).tobytes())
        return h.hexdigest()


# --- driver: plan -----------------------------------------------------------------------------------

def local_dir(url: str) -> Path:
    """A local (or shared-filesystem) artifact folder from a path or ``file://`` URL."""
    if "://" in url and not url.startswith("file://"):
        raise InputError(f"{url}: scoring reads the model artifact from a local or shared "
                         "filesystem path; copy it there first")
    return Path(url.removeprefix("file://"))


def read_meta(artifact_dir: str) -> dict[str, Any]:
    """``model.json`` of an artifact, checked for what scoring needs."""
    path = local_dir(artifact_dir) / "model.json"
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no model artifact here") from None
    for key in ("domains", "item_ids", "model_config"):
        if key not in meta:
            raise InputError(f"{path}: field {key!r} missing (trained before scoring recorded it; "
                             "retrain to score with this model)")
    if len(meta["item_ids"]) != meta["model_config"]["n_items"]:
        raise InputError(f"{path}: {len(meta['item_ids'])} item_ids for "
                         f"{meta['model_config']['n_items']} items in model_config")
    return meta


def model_kind(meta: dict[str, Any]) -> str:
    """``towers`` (the embedding model; artifacts before the field existed too) or ``transfer``."""
    return meta["model_config"].get("kind", "towers")


def max_history(meta: dict[str, Any]) -> int:
    """The L training saw: recorded by the train job; older artifacts only have the feed's.
    The transfer model reads a person's whole history: 0."""
    if model_kind(meta) == "transfer":
        return 0
    if "max_history" in meta:
        return int(meta["max_history"])
    return int(meta.get("train_config", {}).get("max_history", 50))


def plan_scoring(events: DataFrame, items: DataFrame, artifact_dir: str, k: int,
                 domains: list[str] | None = None, *, block_users: int = 1024,
                 device: str = "auto", slice_users: int | None = None, screen: str = "auto",
                 users_per_item: pd.Series | None = None) -> ScoringPlan:
    """Candidates and popularity per domain (two O(items) collects) for :func:`score_users`;
    ``users_per_item``: :func:`popularity` of ``events`` when already counted."""
    if k < 1 or block_users < 1 or (slice_users is not None and slice_users < 1):
        raise ValueError(f"k, block_users and slice_users must be >= 1, got k={k}, "
                         f"block_users={block_users}, slice_users={slice_users}")
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device: expected auto, cpu or cuda, got {device!r}")
    check_screen(screen)
    meta = read_meta(artifact_dir)
    vocab = list(meta["domains"])
    wanted = vocab if domains is None else list(domains)
    unknown = sorted(set(wanted) - set(vocab))
    if unknown:
        raise InputError(f"domains {unknown}: the model was trained on {vocab} only")
    known = {item_id: i for i, item_id in enumerate(meta["item_ids"])}
    catalog = items.select(C.ITEM_IDX, C.ITEM_ID, C.DOMAIN).toPandas()
    if catalog[C.ITEM_ID].duplicated().any():
        dupe = catalog[C.ITEM_ID][catalog[C.ITEM_ID].duplicated()].iloc[0]
        raise InputError(f"items: field {C.ITEM_ID!r} is not unique (e.g. {dupe!r})")
    catalog["m"] = catalog[C.ITEM_ID].map(known)
    counts = popularity(events) if users_per_item is None else users_per_item
    catalog["n"] = catalog[C.ITEM_IDX].map(counts).fillna(0)
    catalog = catalog.sort_values(C.ITEM_IDX, kind="stable")
    cands = []
    for name in wanted:
        rows = catalog[(catalog[C.DOMAIN] == name) & catalog["m"].notna()]
        cands.append(Candidates(name, vocab.index(name), rows["m"].to_numpy(np.int64),
                                rows[C.ITEM_IDX].to_numpy(np.int64),
                                rows[C.ITEM_ID].to_numpy(object), rows["n"].to_numpy(np.float64)))
    facts = {"items": len(catalog), "unknown_items": int(catalog["m"].isna().sum()),
             "unscored_domains": sorted(set(catalog[C.DOMAIN]) - set(vocab)),
             "candidates": {c.domain: len(c.model_idx) for c in cands},
             "max_history": max_history(meta)}
    model_of, domain_of = by_item_idx(catalog, vocab)
    return ScoringPlan(artifact_dir, max_history(meta), k, block_users, device, tuple(cands), facts,
                       model_kind(meta), meta.get("min_value"), slice_users, screen, model_of,
                       domain_of)


def by_item_idx(catalog: pd.DataFrame, vocab: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """[max item_idx + 1] int32 each: the artifact row (``m``, NaN: unknown) and the index in
    ``vocab`` of the domain of every catalog item, -1 where unknown or not a catalog item."""
    idx = catalog[C.ITEM_IDX].to_numpy(np.int64)
    n = int(idx.max()) + 1 if len(idx) else 0
    model_of, domain_of = np.full(n, -1, np.int32), np.full(n, -1, np.int32)
    known = catalog["m"].notna().to_numpy()
    model_of[idx[known]] = catalog["m"].to_numpy()[known].astype(np.int32)
    domain_of[idx] = catalog[C.DOMAIN].map({d: i for i, d in enumerate(vocab)}).fillna(-1).to_numpy(np.int32)
    return model_of, domain_of


def popularity(events: DataFrame) -> pd.Series:
    """Distinct users per ``item_idx`` of ``events`` (which index the items table scored, as
    every EVENTS table of a unified version does). Keyed by the int, not ``item_id``: hashing
    and shuffling the strings made this count half of planning (200k users: 2.5 -> 1.3 s)."""
    got = events.groupBy(C.ITEM_IDX).agg(F.countDistinct(C.USER_IDX).alias("n")).toArrow()
    return pd.Series(got["n"].to_numpy(), index=got[C.ITEM_IDX].to_numpy(), dtype=np.float64)


def piece_popularity(spark: Any, pieces: list[Piece]) -> pd.Series:
    """:func:`popularity` of the events of ``pieces``, counted by the tasks from the files: a
    user is in one piece only, so the pieces' distinct (user, item) pairs add up. Reading every
    piece first also checks the files' order before any scoring starts. A piece's count takes
    ~20 ms (25,000 users) against ~70 ms for a Python task's round trip, so the pieces go in one
    task per core, not one task each (200,000 users, 10 pieces, 2 cores: 0.73 -> 0.3 s)."""
    if not pieces:
        return pd.Series(dtype=np.float64)
    tasks = min(len(pieces), spark.sparkContext.defaultParallelism)
    with raised_in_tasks():  # a file out of order: its InputError, not a worker traceback
        got = per_piece(spark, pieces, lambda piece: iter([_users_per_item(piece)]),
                        f"{C.ITEM_IDX} int, n long", tasks).toArrow()
    total = np.bincount(got[C.ITEM_IDX].to_numpy(), weights=got["n"].to_numpy())
    seen = np.flatnonzero(total)
    return pd.Series(total[seen], index=seen, dtype=np.float64)


def _users_per_item(piece: Piece) -> pa.RecordBatch:
    parts = list(read_piece(piece, [C.USER_IDX, C.SEQ, C.ITEM_IDX]))
    user = np.concatenate([b[C.USER_IDX].to_numpy() for b in parts] or [[]]).astype(np.int64)
    item = np.concatenate([b[C.ITEM_IDX].to_numpy() for b in parts] or [[]]).astype(np.int64)
    # users ascend in a piece, so the keys come nearly sorted (numpy's hashed unique took 4x)
    pairs = np.sort(user << 32 | item)   # both are non-negative int32
    distinct = pairs[np.append(True, pairs[1:] != pairs[:-1])] if len(pairs) else pairs
    n = np.bincount(distinct & 0xFFFFFFFF)
    ids = np.flatnonzero(n)
    n = n[ids]
    return pa.RecordBatch.from_arrays([pa.array(ids, pa.int32()), pa.array(n, pa.int64())],
                                      names=[C.ITEM_IDX, "n"])


# --- driver: the distributed transform ----------------------------------------------------------------

def recommend(events: DataFrame, items: DataFrame, artifact_dir: str, k: int,
              domains: list[str] | None = None, *, users: DataFrame | None = None,
              block_users: int = 1024, device: str = "auto",
              partitions: int | None = None, slice_users: int | None = None,
              screen: str = "auto") -> DataFrame:
    """RECOMMENDATIONS rows: top-``k`` items of each (user, domain) for every user in ``events``
    (EVENTS schema), plus the users of ``users`` (``user_idx``, ``user_key``) who have no event
    there (they get popular items). ``items``: the ITEMS schema, of the unified version the
    events are (their ``item_idx`` index it); ``domains``: default all the model's domains;
    ``slice_users``: see :func:`score_rows`; ``screen``: the precision of the product that picks
    candidates (:mod:`crossrec.screen`; the lists are the same)."""
    plan = plan_scoring(events, items, artifact_dir, k, domains, block_users=block_users,
                        device=device, slice_users=slice_users, screen=screen)
    return score_users(events, plan, users, partitions)


def score_users(events: DataFrame, plan: ScoringPlan, users: DataFrame | None = None,
                partitions: int | None = None) -> DataFrame:
    """The executor side of :func:`recommend` for a ready ``plan``."""
    meta = read_meta(plan.artifact_dir)
    spark = events.sparkSession
    # through Arrow: a Python row list of a large catalog costs ~1 s of per-row type checks
    ids = spark.createDataFrame(pa.table({C.ITEM_ID: pa.array(meta["item_ids"], pa.string()),
                                          _MODEL_IDX: pa.array(range(len(meta["item_ids"])),
                                                               pa.int32())}))
    vocab = spark.createDataFrame(list(enumerate(meta["domains"])),
                                  f"{C.DOMAIN_IDX} int, {C.DOMAIN} string")
    rows = (events.join(F.broadcast(ids), C.ITEM_ID, "left")
            .join(F.broadcast(vocab), C.DOMAIN, "left").select(_INPUT))
    if users is not None:
        absent = users.select(C.USER_IDX, C.USER_KEY).join(
            events.select(C.USER_IDX).distinct(), C.USER_IDX, "left_anti")
        rows = rows.unionByName(absent, allowMissingColumns=True)
    sorted_rows = (rows.repartition(*([partitions] if partitions else []), C.USER_IDX)
                   .sortWithinPartitions(C.USER_IDX, C.TS, C.SEQ))

    def per_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        freeze_long_lived()
        yield from score_batches(batches, plan)

    return sorted_rows.mapInArrow(per_partition, RECOMMENDATIONS.as_spark_schema())


def score_event_files(spark: Any, pieces: list[Piece], plan: ScoringPlan) -> DataFrame:
    """:func:`score_users` for the lake's events files (:mod:`crossrec.event_files`: whole
    users sorted by ``(user_idx, seq)`` in each file): one task per piece reads it with pyarrow
    and scores it as it streams, so the events never pass through the JVM. The lists of
    ``score_users(spark.read.parquet(<the files>), plan)``, their scores equal to float rounding
    (blocks of other users take other GEMM kernels)."""
    schema = RECOMMENDATIONS.as_spark_schema()
    if not pieces:
        return spark.createDataFrame([], schema)
    return per_piece(spark, pieces, lambda piece: score_batches(piece_input(piece, plan), plan),
                     schema)


_FILE_COLUMNS = [C.USER_IDX, C.USER_KEY, C.TS, C.SEQ, C.ITEM_IDX, C.VALUE, C.WEIGHT]


def piece_input(piece: Piece, plan: ScoringPlan) -> Iterator[pa.RecordBatch]:
    """A piece's events as ``_INPUT`` batches: the artifact row and domain of each event's item
    looked up by ``item_idx`` in the plan's catalog (null where unknown, as the left joins of
    :func:`score_users` leave them). In a unified version an event's ``item_idx`` indexes the
    items table and its domain is its item's (ingest joins it from the catalog), so this finds
    what those joins find by ``item_id`` and ``domain``, without reading and hashing the two
    string columns (a 16,700-user piece: 50 -> 18 ms)."""
    for batch in read_piece(piece, _FILE_COLUMNS):
        yield pa.RecordBatch.from_arrays([
            batch[C.USER_IDX], batch[C.USER_KEY],
            batch[C.TS].cast(pa.timestamp("us", tz="UTC")), batch[C.SEQ],
            _lookup(plan.item_model_idx, batch[C.ITEM_IDX]),
            _lookup(plan.item_domain_idx, batch[C.ITEM_IDX]),
            batch[C.VALUE], batch[C.WEIGHT]], names=_INPUT)


def _lookup(table: np.ndarray, item_idx: pa.Array) -> pa.Array:
    """int32 ``table[item_idx]``, null where it holds -1 or ``item_idx`` is outside it or null."""
    idx = item_idx.fill_null(-1).to_numpy().astype(np.int64)
    inside = (idx >= 0) & (idx < len(table))
    got = np.full(len(idx), -1, np.int32)
    got[inside] = table[idx[inside]]
    return pa.array(got, mask=got < 0)


# --- executors ------------------------------------------------------------------------------------------

@dataclass
class _DomainState:
    screen: Screen           # the item matrix (vectors and bias) the scores multiply by
    popular: Tensor          # [M] float64: users * (M + 1) - position, so no two tie
    item_id: pa.Array        # [M] the candidates' ids, for the output rows


Encode = Callable[[pa.Table, "_Block", ScoringPlan], Tensor]  # a block's users -> [B, T, D]
ItemMatrix = Callable[[Candidates], Tensor]                    # a domain's rows [M, D + 1]


@dataclass
class _State:
    encode: Encode
    device: torch.device
    domains: list[_DomainState]
    slot_of: np.ndarray      # [N] which scored domain an artifact item is a candidate of, -1 none
    col_of: np.ndarray       # [N] its column there
    scratch: dict[torch.dtype, Tensor] = field(default_factory=dict)  # flat, per dtype

    def scores_out(self, rows: int, cols: int, dtype: torch.dtype = torch.float32) -> Tensor:
        """A ``[rows, cols]`` view of the scratch memory (grown as needed): a fresh tensor per
        slice pays its page faults every time ([256, 20000] slices: 79 vs 51 ms a 1024 users)."""
        flat = self.scratch.get(dtype)
        if flat is None or flat.numel() < rows * cols:
            flat = self.scratch[dtype] = torch.empty(rows * cols, device=self.device, dtype=dtype)
        return flat[:rows * cols].view(rows, cols)


_CACHE: dict[str, _State] = {}


def _state(plan: ScoringPlan) -> _State:
    """The artifact and item matrices, loaded once per Python worker and plan."""
    key = plan.key
    if key not in _CACHE:
        _CACHE.clear()  # one plan at a time: a worker never holds two models
        use_cuda = plan.device == "cuda" or (plan.device == "auto" and torch.cuda.is_available())
        device = torch.device("cuda" if use_cuda else "cpu")
        load = _load_transfer if plan.kind == "transfer" else _load_towers
        encode, item_matrix, n = load(plan, device)
        slot_of, col_of = np.full(n, -1, np.int64), np.full(n, -1, np.int64)
        dtype, domains = screen_dtype(plan.screen, device), []
        for s, c in enumerate(plan.candidates):
            slot_of[c.model_idx], col_of[c.model_idx] = s, np.arange(len(c.model_idx))
            key_ = c.users * (len(c.model_idx) + 1) - np.arange(len(c.model_idx))
            domains.append(_DomainState(make_screen(item_matrix(c), dtype),
                                        torch.from_numpy(key_).to(device),
                                        pa.array(c.item_id, pa.string())))
        _CACHE[key] = _State(encode, device, domains, slot_of, col_of)
    return _CACHE[key]


def _load_towers(plan: ScoringPlan, device: torch.device) -> tuple[Encode, ItemMatrix, int]:
    """The embedding model: user vectors from each user's latest history, item vectors."""
    from crossrec.model.serving import item_embeddings
    from crossrec.train.artifact import load_artifact

    model, _ = load_artifact(local_dir(plan.artifact_dir), device)
    items = item_embeddings(model)

    def encode(table: pa.Table, block: _Block, plan: ScoringPlan) -> Tensor:
        batch = history_batch(table, block, plan.max_history)
        return model.user_vectors({k: v.to(device) for k, v in batch.items()}, items.vectors)

    def matrix(c: Candidates) -> Tensor:
        rows = torch.from_numpy(c.model_idx).to(device)
        return with_bias(items.vectors[rows], items.bias[rows])

    return encode, matrix, items.vectors.shape[0]


def _load_transfer(plan: ScoringPlan, device: torch.device) -> tuple[Encode, ItemMatrix, int]:
    """The transfer model (:mod:`crossrec.train.transfer`): a user is the 0/1 row [V] of their
    positives, each domain's "item vectors" are θ_d's columns [M, V]."""
    from safetensors.torch import load_file

    meta = read_meta(plan.artifact_dir)
    n, n_domains = int(meta["model_config"]["n_items"]), len(meta["domains"])
    weights = load_file(str(local_dir(plan.artifact_dir) / "weights.safetensors"), device=str(device))

    def encode(table: pa.Table, block: _Block, plan: ScoringPlan) -> Tensor:
        rows = np.flatnonzero(block.usable)
        x = torch.zeros((block.size, n), device=device)
        x[torch.from_numpy(block.row_user[rows]).to(device),
          torch.from_numpy(block.model_idx[rows]).to(device)] = 1.0
        return x.unsqueeze(1).expand(-1, n_domains, -1)  # the same row for every domain

    def matrix(c: Candidates) -> Tensor:
        cols = weights[f"columns.{c.domain_idx}"].cpu().numpy()
        at = np.searchsorted(cols, c.model_idx).clip(0, max(len(cols) - 1, 0))
        inside = torch.from_numpy(cols[at] == c.model_idx if len(cols) else
                                  np.zeros(len(c.model_idx), bool)).to(device)
        theta = weights[f"theta.{c.domain_idx}"]                      # [V, n_d]
        # an item the fit saw in another domain has no column here: never recommended (a bias
        # of -inf times the users' constant 1 makes its score -inf, never NaN)
        bias = torch.zeros(len(at), device=device).masked_fill(~inside, float("-inf"))
        return with_bias(theta[:, torch.from_numpy(at).to(device)].T, bias)   # [M, V + 1]

    return encode, matrix, n


def score_batches(batches: Iterator[pa.RecordBatch], plan: ScoringPlan) -> Iterator[pa.RecordBatch]:
    """One partition's rows (``_INPUT``, sorted by user, ts, seq) -> RECOMMENDATIONS batches."""
    _task_threads()
    state = None
    for block in user_blocks(batches, plan.block_users):
        state = state or _state(plan)
        yield from _score_block(block, plan, state)


def user_blocks(batches: Iterator[pa.RecordBatch], size: int) -> Iterator[pa.Table]:
    """Re-cut batches sorted by user into tables of ``size`` whole users (the last may be short)."""
    carry: pa.Table | None = None
    for batch in batches:
        if batch.num_rows == 0:
            continue
        table = pa.Table.from_batches([batch])
        carry = table if carry is None else pa.concat_tables([carry, table])
        while True:
            starts = np.flatnonzero(run_starts(carry[C.USER_IDX].to_numpy()) == np.arange(carry.num_rows))
            if len(starts) <= size:  # the last user may go on in the next batch
                break
            yield carry.slice(0, int(starts[size])).combine_chunks()
            carry = carry.slice(int(starts[size]))
    if carry is not None and carry.num_rows:
        yield carry.combine_chunks()


@dataclass(frozen=True)
class _Block:
    """A block of B whole users' R events, decoded."""

    user_idx: np.ndarray     # [B]
    user_key: pa.Array       # [B]
    last: np.ndarray         # [B] each user's last row (their latest event)
    row_user: np.ndarray     # [R] each row's user position 0..B-1
    model_idx: np.ndarray    # [R] -1 where unknown
    usable: np.ndarray       # [R] bool: item and domain known to the model
    has_history: np.ndarray  # [B] bool

    @property
    def size(self) -> int:
        return len(self.user_idx)


def _decode(table: pa.Table, plan: ScoringPlan) -> _Block:
    """Usable rows: item and domain known to the model; for the transfer model also positives
    (its rows were fitted on positives only)."""
    user = table[C.USER_IDX].to_numpy()
    new = run_starts(user) == np.arange(len(user))
    first = np.flatnonzero(new)
    row_user = np.cumsum(new) - 1
    model_idx = table[_MODEL_IDX].fill_null(-1).to_numpy().astype(np.int64)
    usable = (model_idx >= 0) & table[C.DOMAIN_IDX].is_valid().to_numpy(zero_copy_only=False)
    if plan.kind == "transfer":
        usable &= positive(table, plan.min_value)
    has = np.bincount(row_user[usable], minlength=len(first)) > 0
    return _Block(user[first], table[C.USER_KEY].combine_chunks().take(pa.array(first)),
                  np.append(first[1:], len(user)) - 1, row_user, model_idx, usable, has)


def positive(table: pa.Table, min_value: float | None) -> np.ndarray:
    """[R] bool: :func:`crossrec.examples.target_flag` on decoded rows."""
    value = table[C.VALUE].to_numpy(zero_copy_only=False).astype(np.float64)  # null -> nan
    weight = table[C.WEIGHT].fill_null(0.0).to_numpy().astype(np.float64)
    if min_value is None:
        return weight > 0
    return np.where(np.isnan(value), weight > 0, value >= min_value)


def history_batch(table: pa.Table, block: _Block, max_history: int) -> dict[str, Tensor]:
    """The feed's batch format (:mod:`crossrec.feed`) for every user of the block, ``[B, L']``
    (L' <= L: the block's longest history): usable events, newest first, ages in days to the
    user's latest event."""
    ts = table[C.TS].cast(pa.int64()).fill_null(0).to_numpy()
    rows = np.flatnonzero(block.usable)                    # still sorted by (user, ts, seq)
    ru = block.row_user[rows]
    users = np.arange(block.size)
    first = np.searchsorted(ru, users, side="left")
    offsets, flat = history_slices(first, np.searchsorted(ru, users, side="right"), max_history)
    pos = rows[flat]
    # padding slots weigh exactly 0 in the tower: pad to the block's longest history, not L
    slots = np.arange(max(1, int(np.diff(offsets).max(initial=0))))
    mask = slots < np.diff(offsets)[:, None]               # [B, L]
    index = np.where(mask, offsets[:-1, None] + slots, 0)

    def padded(values: np.ndarray, dtype: Any) -> Tensor:
        out = values[index] if len(values) else np.zeros(mask.shape, dtype)
        return torch.from_numpy(np.where(mask, out, 0).astype(dtype))

    domain = table[C.DOMAIN_IDX].fill_null(0).to_numpy().astype(np.int64)
    value = table[C.VALUE].fill_null(0.0).to_numpy().astype(np.float32)
    age = (ts[block.last[ru[flat]]] - ts[pos]) / _US_PER_DAY
    return {C.HIST_ITEM: padded(block.model_idx[pos], np.int64),
            C.HIST_DOMAIN: padded(domain[pos], np.int64),
            C.HIST_AGE: padded(age, np.float32), C.HIST_VALUE: padded(value[pos], np.float32),
            C.HIST_MASK: torch.from_numpy(mask)}


@torch.inference_mode()
def _score_block(table: pa.Table, plan: ScoringPlan, state: _State) -> list[pa.RecordBatch]:
    """RECOMMENDATIONS rows of one block: per domain, model users (screened, :func:`_model_top_k`)
    then popular users (:func:`top_k` of the popularity keys)."""
    out = []
    block = _decode(table, plan)
    users = state.encode(table, block, plan)                                  # [B, T, D]
    groups = [(torch.from_numpy(np.flatnonzero(block.has_history)).to(state.device), SOURCE_MODEL),
              (torch.from_numpy(np.flatnonzero(~block.has_history)).to(state.device), SOURCE_POPULAR)]
    consumed = np.flatnonzero(block.model_idx >= 0)
    for s, cand in enumerate(plan.candidates):
        dom = state.domains[s]
        mine = consumed[state.slot_of[block.model_idx[consumed]] == s]   # sorted by user
        excl = (torch.from_numpy(block.row_user[mine]).to(state.device),
                torch.from_numpy(state.col_of[block.model_idx[mine]]).to(state.device))
        for rows, source in groups:
            if len(rows) == 0 or len(cand.model_idx) == 0:
                continue
            best = []
            dtype = dom.screen.weights.dtype if source == SOURCE_MODEL else torch.float32
            for part in rows.split(score_rows(plan, len(cand.model_idx), state.device, dtype)):
                pairs = pairs_of(excl, part)
                if source == SOURCE_MODEL:
                    best.append(_model_top_k(users[part, cand.domain_idx], part, pairs, dom,
                                             block.size, plan.k, state))
                else:
                    scores = dom.popular.expand(len(part), -1).clone()          # [c, M]
                    best.append(top_k(exclude(scores, part, pairs, block.size), plan.k))
            vals, cols = (torch.cat(t) for t in zip(*best))
            out.append(_rows(block, cand, dom, rows.cpu().numpy(), vals, cols, source))
    return out


def _model_top_k(users: Tensor, part: Tensor, consumed: tuple[Tensor, Tensor], dom: _DomainState,
                 n_users: int, k: int, state: _State) -> tuple[Tensor, Tensor]:
    """The top k of one slice of model users ``users`` [c, D] (the block's users ``part``)."""
    u = with_ones(users)
    screen: Screen = dom.screen
    approx = screen_scores(u, screen, state.scores_out(len(u), screen.weights.shape[1],
                                                       screen.weights.dtype))
    return screened_top_k(exclude(approx, part, consumed, n_users), u, screen, k)


def with_bias(vectors: Tensor, bias: Tensor) -> Tensor:
    """Item vectors ``[M, D]`` and bias ``[M]`` -> the contiguous rows ``[M, D + 1]`` that the
    screen (:func:`crossrec.screen.make_screen`) and the exact re-score multiply: with the users'
    column of ones the bias is one more term of the dot product."""
    return torch.cat([vectors, bias[:, None]], dim=1).contiguous()


def with_ones(users: Tensor) -> Tensor:
    """``[c, D]`` -> ``[c, D + 1]``, the last column 1: the bias row's multiplier."""
    return torch.cat([users, users.new_ones(len(users), 1)], dim=1)


def score_rows(plan: ScoringPlan, n_items: int, device: torch.device,
               dtype: torch.dtype = torch.float32) -> int:
    """Users per score slice: the plan's ``slice_users``, else a cache-sized ``[c, M]`` of
    ``dtype`` on CPU and the whole block on a GPU (where small GEMMs would leave it idle)."""
    if plan.slice_users is not None:
        return plan.slice_users
    if device.type != "cpu":
        return plan.block_users
    return cpu_slice_users(n_items, dtype.itemsize)


def cpu_slice_users(n_items: int, itemsize: int = 4) -> int:
    """The power of two of users nearest (by ratio) to those whose scores over ``n_items`` fill
    :data:`CPU_SCORE_BYTES`: slices of 0.7-1.4 times that size that split a power-of-two block
    evenly, with no short last slice, and multiples of the 32-row tiles oneDNN's bf16 GEMM
    works in (one thread, ``[c, 66] x [66, 20000]``: 4.5 us a row at 209 rows, 3.9 at 256; at
    5,000 items 2.3 against 1.3). In the job (200,000 users, 2 x 20,000 items, bf16, blocks of
    1,024, interleaved): 209 rows (8 MB) 6.06 s, 224 5.85 s, 256 5.59-5.73 s, 320 6.04 s, 512
    5.98 s."""
    fill = CPU_SCORE_BYTES / (itemsize * max(1, n_items))
    return 1 << round(math.log2(max(1.0, fill)))


def pairs_of(consumed: tuple[Tensor, Tensor], part: Tensor) -> tuple[Tensor, Tensor]:
    """The run of ``consumed`` (block user, column) pairs, sorted by user, that can belong to
    the users ``part`` (ascending): a slice need not scan the whole block's pairs (that scan
    cost a quarter of the time at 100,000 items, 200 events a user and 20-user slices)."""
    user, col = consumed
    lo = int(torch.searchsorted(user, part[:1]))
    hi = int(torch.searchsorted(user, part[-1:], right=True))
    return user[lo:hi], col[lo:hi]


def exclude(scores: Tensor, rows: Tensor, consumed: tuple[Tensor, Tensor], n_users: int) -> Tensor:
    """``scores`` [b, M] of the block's users ``rows`` [b] (of ``n_users``), -inf in place at the
    consumed (block user, column) pairs."""
    user, col = consumed
    at = torch.full((n_users,), -1, dtype=torch.long, device=scores.device)
    at[rows] = torch.arange(len(rows), device=scores.device)
    at = at[user]
    keep = at >= 0
    scores[at[keep], col[keep]] = float("-inf")
    return scores


def top_k(scores: Tensor, k: int, group: int = TOPK_GROUP) -> tuple[Tensor, Tensor]:
    """Scores [B, M] (-inf: not a candidate) -> the best min(k, M) per row as (values, columns),
    higher score first, equal scores by smaller column; -inf entries come last (drop them)."""
    k = min(k, scores.shape[1])
    if k == 0:  # no columns
        return scores[:, :0], torch.zeros_like(scores[:, :0], dtype=torch.long)
    probe = min(k + 1, scores.shape[1])
    vals, cols = largest(scores, probe, group)            # in any order, ties in any columns
    cols, order = cols.sort(dim=1)                          # then by value, ties by column
    vals = vals.gather(1, order)
    vals, order = vals.sort(dim=1, descending=True, stable=True)
    cols = cols.gather(1, order)
    # a tie straddling the k-th place: the probe may hold a larger column than one left out
    straddle = (vals[:, k - 1] == vals[:, probe - 1]) & torch.isfinite(vals[:, k - 1]) & (probe > k)
    vals, cols = vals[:, :k], cols[:, :k]
    rows = straddle.nonzero().squeeze(1)
    if len(rows):  # rare with real-valued scores: sort those rows fully (stable keeps columns)
        v, c = scores[rows].sort(dim=1, descending=True, stable=True)
        vals[rows], cols[rows] = v[:, :k], c[:, :k]
    return vals, cols


def largest(scores: Tensor, p: int, group: int = TOPK_GROUP) -> tuple[Tensor, Tensor]:
    """The ``p`` largest values of each row of ``scores`` [B, M], in no particular order, with
    columns holding them [B, p] (among equal values, any columns).

    Long rows go in two stages: the maximum of every ``group`` columns, then a top-p over the
    columns of the p best groups only. Exact: those groups hold p values at least the p-th best
    group maximum, and no column outside them exceeds it. ``torch.topk`` then sees
    M / group + p * group values per row instead of M.
    """
    b, m = scores.shape
    n = m // group
    if n < 4 * p:  # too few groups to pay for the second stage
        return select(scores, p)
    maxima = scores[:, :n * group].reshape(b, n, group).amax(dim=2)           # [B, n]
    if n * group < m:  # the short last group
        maxima = torch.cat([maxima, scores[:, n * group:].amax(dim=1, keepdim=True)], dim=1)
    best = select(maxima, p)[1]                                                 # [B, p]
    step = torch.arange(group, device=scores.device)
    cols = (best.unsqueeze(2) * group + step).view(b, p * group)               # [B, p * group]
    past_end = cols >= m                                  # the last group's missing columns
    cols.clamp_(max=m - 1)
    vals = scores.gather(1, cols).masked_fill_(past_end, float("-inf"))
    top, at = select(vals, p)
    return top, cols.gather(1, at)


def select(x: Tensor, p: int) -> tuple[Tensor, Tensor]:
    """The ``p`` largest of each row of ``x`` [B, n] and their columns, in no particular order.
    On CPU by numpy's ``argpartition``: ``torch.topk``'s per-row setup made it 2.5x slower on
    the short rows of the two stages ([104, 625], p 11: 407 vs 160 us; [104, 352]: 246 vs 127)."""
    if x.device.type != "cpu" or p >= x.shape[1]:
        return x.topk(p, dim=1)
    xn = x.numpy()
    cols = np.argpartition(xn, x.shape[1] - p, axis=1)[:, -p:]
    return torch.from_numpy(np.take_along_axis(xn, cols, axis=1)), torch.from_numpy(cols)


def _rows(block: _Block, cand: Candidates, dom: _DomainState, rows: np.ndarray, vals: Tensor,
          cols: Tensor, source: str) -> pa.RecordBatch:
    """The output rows of one group's lists (Arrow takes and repeats: Python lists of
    strings took half of this)."""
    vals, cols = vals.cpu().numpy(), cols.cpu().numpy()
    keep = np.isfinite(vals)                               # [b, k]: fewer candidates than k
    r, j = np.nonzero(keep)
    col = cols[r, j]
    user = rows[r]
    score = (cand.users[col] if source == SOURCE_POPULAR else vals[r, j]).astype(np.float32)
    n = len(r)
    return pa.RecordBatch.from_arrays([
        block.user_key.take(pa.array(user)), pa.array(block.user_idx[user], pa.int32()),
        pa.repeat(pa.scalar(cand.domain, pa.string()), n), pa.array(j + 1, pa.int32()),
        dom.item_id.take(pa.array(col)), pa.array(cand.item_idx[col], pa.int32()),
        pa.array(score, pa.float32()), pa.repeat(pa.scalar(source, pa.string()), n)],
        schema=_ARROW_OUT)


def _task_threads() -> None:
    """Torch threads = the task's cores unless OMP_NUM_THREADS says (as crossrec.text does):
    torch defaults to all the machine's cores, so concurrent tasks would oversubscribe them."""
    from pyspark import TaskContext

    ctx = TaskContext.get()
    if ctx is not None and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, int(ctx.cpus())))
