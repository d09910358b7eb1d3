"""HMAC-SHA256 in Spark SQL, namespaced pseudonyms and key loading."""
from __future__ import annotations

import hashlib
import hmac
import logging
import random

import pytest
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType
from pyspark.testing import assertDataFrameEqual

from crossrec.errors import ConfigError
from crossrec.ingest.pseudonym import (ACCOUNT_NS, DEV_KEY, ENV_VAR, PERSON_NS, account_token,
                                       account_token_of, hmac_sha256_hex, load_key, pseudonymize)

MSG, OUT = "message", "digest"
MESSAGES = StructType([StructField(MSG, StringType())])
DIGESTS = StructType([StructField(MSG, StringType()), StructField(OUT, StringType())])

# RFC 4231 section 4: test cases 1, 2 and 6 (6 has a 131-byte key, longer than the block).
RFC_4231 = [
    (b"\x0b" * 20, "Hi There",
     "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (b"Jefe", "what do ya want for nothing?",
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    (b"\xaa" * 131, "Test Using Larger Than Block-Size Key - Hash Key First",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
]


def messages(spark, values):
    return spark.createDataFrame([(v,) for v in values], MESSAGES)


def reference(key: bytes, message: str) -> str:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).hexdigest()


@pytest.mark.parametrize(("key", "message", "digest"), RFC_4231, ids=["case1", "case2", "case6"])
def test_rfc_4231_known_answers(spark, key, message, digest):
    out = hmac_sha256_hex(messages(spark, [message]), MSG, key, OUT)
    assertDataFrameEqual(out, spark.createDataFrame([(message, digest)], DIGESTS))


@pytest.mark.parametrize("key_len", [32, 64, 65])  # below, at and above the 64-byte block
def test_random_strings_match_python_hmac(spark, key_len):
    rng = random.Random(key_len)
    key = rng.randbytes(key_len)
    alphabet = "abcXYZ019 :\x1f\t\n" + "éßøñ漢字🙂\u0000"
    values = ["", "é", "🙂"] + ["".join(rng.choices(alphabet, k=rng.randrange(0, 200)))
                                for _ in range(40)]
    out = hmac_sha256_hex(messages(spark, values), MSG, key, OUT)
    assertDataFrameEqual(out, spark.createDataFrame(
        [(v, reference(key, v)) for v in values], DIGESTS))


def test_null_gives_null_and_namespaces_differ(spark):
    key = b"k" * 32
    df = messages(spark, ["u1", None])
    persons = pseudonymize(df, MSG, OUT, key, PERSON_NS)
    accounts = pseudonymize(df, MSG, OUT, key, ACCOUNT_NS)
    assertDataFrameEqual(persons, spark.createDataFrame(
        [("u1", reference(key, "person\x1fu1")), (None, None)], DIGESTS))
    assertDataFrameEqual(accounts, spark.createDataFrame(
        [("u1", reference(key, "account\x1fu1")), (None, None)], DIGESTS))
    assert reference(key, "person\x1fu1") != reference(key, "account\x1fu1")


def test_account_token_is_short_and_matches_driver_side(spark):
    key = b"k" * 32
    out = account_token(messages(spark, ["u1", None]), MSG, OUT, key)
    assertDataFrameEqual(out, spark.createDataFrame(
        [("u1", "acct-" + reference(key, "account\x1fu1")[:16]), (None, None)], DIGESTS))
    assert account_token_of("u1", key) == "acct-" + reference(key, "account\x1fu1")[:16]


def test_namespace_with_separator_is_refused(spark):
    with pytest.raises(ValueError, match="separator"):
        pseudonymize(messages(spark, ["x"]), MSG, OUT, b"k" * 32, "a\x1fb")


def plan_text(df) -> str:
    qe = df._jdf.queryExecution()
    return (qe.toString() + qe.executedPlan().toString()).lower()


@pytest.mark.parametrize("key_len", [32, 131])
def test_key_and_pads_not_in_query_plan(spark, key_len):
    key = random.Random(key_len).randbytes(key_len)
    block = (hashlib.sha256(key).digest() if key_len > 64 else key).ljust(64, b"\0")
    secrets = [key.hex(), block.hex(), bytes(b ^ 0x36 for b in block).hex(),
               bytes(b ^ 0x5C for b in block).hex()]
    out = pseudonymize(messages(spark, ["u1"]), MSG, OUT, key, PERSON_NS)
    assert out.columns == [MSG, OUT]  # pad columns dropped
    text = plan_text(out)
    assert not [s for s in secrets if s[:32] in text]
    # The check can fail: a key put in as a literal shows up in the plan.
    assert key.hex()[:32] in plan_text(out.withColumn("k", F.lit(bytearray(key))))


def test_load_key_hex_and_text():
    hex_key = "00112233445566778899aabbccddeeff" * 2
    assert load_key(False, {ENV_VAR: hex_key + "\n"}) == bytes.fromhex(hex_key)
    assert load_key(False, {ENV_VAR: "correct horse battery staple"}) == \
        b"correct horse battery staple"
    assert load_key(True, {ENV_VAR: "s\u00e9cret-phrase-16b"}) == "s\u00e9cret-phrase-16b".encode()


def test_load_key_missing_or_short_is_config_error():
    with pytest.raises(ConfigError, match=f"{ENV_VAR} is not set.*openssl rand -hex 32"):
        load_key(False, {})
    with pytest.raises(ConfigError, match=f"{ENV_VAR} is not set"):
        load_key(False, {ENV_VAR: "  "})
    with pytest.raises(ConfigError, match="too short: 7 bytes") as short:
        load_key(False, {ENV_VAR: "hunter2"})
    assert "hunter2" not in str(short.value)


def test_load_key_dev_mode_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="crossrec.pseudonym"):
        assert load_key(True, {}) == DEV_KEY
    [record] = caplog.records
    assert record.name == "crossrec.pseudonym" and record.levelno == logging.WARNING
    assert "not secret" in record.getMessage().lower()
    assert len(DEV_KEY) >= 16
