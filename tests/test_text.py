"""Text encoders (hash and MiniLM), the factory's errors, chunking and the catalog fingerprint."""
from __future__ import annotations

import io
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from crossrec.errors import ConfigError
from crossrec.schemas import columns as C
from crossrec.text import (MINILM, EncoderSpec, HashEncoder, TextEncoder, cached, catalog_facts,
                           chunks)

TEXTS = ["a funny comedy film", "hilarious comedy movie", "tax law handbook"]


def cos(v: np.ndarray, i: int, j: int) -> float:
    return float(v[i] @ v[j])


def test_hash_encoder_is_normalised_and_puts_shared_words_close():
    texts = ["a funny comedy film", "funny comedy film for kids", "tax law handbook", ""]
    v = TextEncoder.create("hash:512").encode(texts)
    assert v.shape == (4, 512) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-6)  # the empty text too
    assert cos(v, 0, 1) > 0.5 > cos(v, 0, 2) + 0.3


def test_hash_encoder_is_the_same_in_another_process():
    here = TextEncoder.create("hash:64").encode(TEXTS)
    code = ("import sys, numpy as np; from crossrec.text import HashEncoder; "
            f"np.save(sys.stdout.buffer, HashEncoder(64).encode({TEXTS!r}))")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}  # str hash() would differ; blake2b must not
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, check=True)
    there = np.load(io.BytesIO(out.stdout))
    np.testing.assert_array_equal(here, there)
    assert not np.array_equal(here, HashEncoder(65).encode(TEXTS)[:, :64])  # dim is in the slot


def test_hash_encoder_repeated_words_weigh_more():
    v = HashEncoder(256).encode(["comedy comedy comedy drama", "comedy drama", "drama"])
    assert cos(v, 0, 1) < 1.0 and cos(v, 1, 2) > cos(v, 0, 2)


@pytest.mark.parametrize("spec, says", [
    ("hash:0", "dim must be in"), ("hash:x", "expected hash:<dim>"),
    ("/nonexistent/model-dir", "/nonexistent/model-dir"),
])
def test_bad_specs_are_clear_errors(spec, says):
    with pytest.raises(ConfigError, match=says):
        TextEncoder.create(spec)


def test_a_directory_without_a_model_is_an_error_naming_it(tmp_path):
    with pytest.raises(ConfigError, match=f"{tmp_path}.*no modules.json"):
        EncoderSpec.parse(str(tmp_path))
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match=f"cannot load the model at {tmp_path}"):
        EncoderSpec.parse(str(tmp_path)).load()


def test_spec_names_and_digests():
    assert EncoderSpec.parse(" hash:32 ").name == "hash:32"
    assert EncoderSpec.parse("hash:32").digest() != EncoderSpec.parse("hash:33").digest()
    minilm = EncoderSpec.parse(f"sentence-transformers/{MINILM}")
    assert minilm.name == MINILM and minilm.digest() == EncoderSpec.parse(MINILM).digest()
    assert EncoderSpec.parse(minilm.path) == EncoderSpec("path", minilm.path, path=minilm.path)


def test_minilm_puts_synonyms_close():
    enc = cached(EncoderSpec.parse(MINILM))
    v = enc.encode(TEXTS)
    assert enc.name == MINILM and enc.dim == 384 and v.shape == (3, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    assert cos(v, 0, 1) > cos(v, 0, 2) + 0.3
    assert enc.encode([]).shape == (0, 384)


def test_chunks_regroup_arbitrary_batches_by_item_idx_block():
    idx = [0, 1, 2, 3, 4, 5, 6, 9, 10, 13]
    table = pa.table({C.ITEM_IDX: pa.array(idx, pa.int32()), C.TEXT: [f"t{i}" for i in idx]})
    for cut in ([], [1], [2, 3, 7], [9]):  # Arrow batch boundaries anywhere, empty batches too
        bounds = [0, *cut, len(idx)]
        batches = [table.slice(a, b - a).to_batches()[0] if b > a else
                   pa.RecordBatch.from_pylist([], table.schema) for a, b in zip(bounds, bounds[1:])]
        got = [c.column(C.ITEM_IDX).to_pylist() for c in chunks(batches, 4)]
        assert got == [[0, 1, 2, 3], [4, 5, 6], [9, 10], [13]], cut


def test_catalog_fingerprint_follows_content_not_row_order(spark):
    rows = [(0, "a", "drama", "Alpha"), (1, "b", "comedy", "Beta"), (2, "c", "drama", "Gamma")]
    cols = [C.ITEM_IDX, C.ITEM_ID, C.DOMAIN, C.TEXT]

    def facts(r):
        return catalog_facts(spark.createDataFrame(r, cols))

    base = facts(rows)
    assert base["rows"] == 3 and base["distinct_idx"] == 3 and base["max_idx"] == 2
    assert base["null_text"] == 0
    assert facts(list(reversed(rows)))["fingerprint"] == base["fingerprint"]
    swapped_idx = [(1, "a", "drama", "Alpha"), (0, "b", "comedy", "Beta"), rows[2]]
    assert facts(swapped_idx)["fingerprint"] != base["fingerprint"]
    changed_text = facts([*rows[:2], (2, "c", "drama", None)])
    assert changed_text["fingerprint"] != base["fingerprint"] and changed_text["null_text"] == 1
