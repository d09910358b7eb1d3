"""Keyed pseudonyms: HMAC-SHA256 (RFC 2104) computed natively in Spark SQL.

HMAC(K, m) = H((K' xor opad) || H((K' xor ipad) || m)), where K' is K zero-padded to the 64-byte
SHA-256 block (or H(K), padded, when K is longer than a block). Spark has ``sha2`` but no HMAC, so
both hashes are built from ``sha2`` and ``concat`` on binary columns: no Python UDF, so 5M rows
cost seconds. The pads are derived from the secret key, so they never enter the query plan as
literals (``explain()`` and the Spark UI print literals): they arrive through a one-row DataFrame
broadcast to every task and are dropped right after use.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
from collections.abc import Mapping

import pyarrow as pa
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import BinaryType, StructField, StructType

from crossrec.errors import ConfigError

ENV_VAR = "CROSSREC_ID_KEY"
# Development only: pseudonyms made with this key can be reversed by anyone with the source code.
DEV_KEY = b"crossrec-development-key-NOT-SECRET"
MIN_KEY_BYTES = 16
PERSON_NS = "person"
ACCOUNT_NS = "account"
NS_SEP = "\x1f"  # ASCII unit separator; refused in namespaces, so (namespace, value) is unique
ACCOUNT_TOKEN_PREFIX = "acct-"
ACCOUNT_TOKEN_HEX = 16

_BLOCK = 64  # SHA-256 block size in bytes
_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")
_IPAD = "__hmac_ipad"
_OPAD = "__hmac_opad"
_MESSAGE = "__pseudonym_message"
_FULL_TOKEN = "__account_pseudonym"

log = logging.getLogger("crossrec.pseudonym")


def load_key(dev_mode: bool, env: Mapping[str, str] = os.environ) -> bytes:
    """The pseudonymisation key from ``$CROSSREC_ID_KEY``.

    64 hex characters are decoded to 32 bytes; anything else is taken as UTF-8 text. Surrounding
    whitespace (a trailing newline from a secrets file) is ignored. The key must be at least 16
    bytes. Missing key: ``ConfigError``, or in ``dev_mode`` ``DEV_KEY`` with a warning.
    """
    value = env.get(ENV_VAR, "").strip()
    if not value:
        if dev_mode:
            log.warning("%s is not set: using the built-in development key; pseudonyms are NOT "
                        "secret and must not be used for real data", ENV_VAR)
            return DEV_KEY
        raise ConfigError(
            f"{ENV_VAR} is not set: set it to a secret of at least {MIN_KEY_BYTES} bytes, e.g. "
            f"`export {ENV_VAR}=$(openssl rand -hex 32)` (64 hex characters are read as 32 "
            "bytes), or pass it to the driver through your secret manager")
    key = bytes.fromhex(value) if _HEX_KEY.fullmatch(value) else value.encode("utf-8")
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(f"{ENV_VAR} is too short: {len(key)} bytes, need at least "
                          f"{MIN_KEY_BYTES} (e.g. `openssl rand -hex 32`)")
    return key


def hmac_sha256_hex(df: DataFrame, message_col: str, key: bytes, out_col: str) -> DataFrame:
    """Add ``out_col`` = lowercase hex HMAC-SHA256(key, UTF-8 bytes of ``message_col``).

    ``df``: ``[N]`` rows; returns ``[N]`` rows with ``out_col`` (string, 64 hex chars; null where
    the message is null). Example: key ``b"Jefe"``, message ``"what do ya want for nothing?"``
    -> ``"5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"`` (RFC 4231 case 2).
    """
    pads = _pads(df, key)
    message = F.col(message_col).cast("string").cast("binary")
    inner = F.unhex(F.sha2(F.concat(F.col(_IPAD), message), 256))
    return (df.crossJoin(F.broadcast(pads))
            .withColumn(out_col, F.sha2(F.concat(F.col(_OPAD), inner), 256))
            .drop(_IPAD, _OPAD))


def pseudonymize(df: DataFrame, col: str, out_col: str, key: bytes, namespace: str) -> DataFrame:
    """Add ``out_col`` = hex HMAC-SHA256(key, ``namespace + "\\x1f" + col``); null stays null.

    Different namespaces (``PERSON_NS``, ``ACCOUNT_NS``) never give the same pseudonym for the same
    value. Example: ``pseudonymize(people, identity.PERSON, C.USER_KEY, key, PERSON_NS)``.
    """
    if NS_SEP in namespace:
        raise ValueError("a pseudonym namespace must not contain the separator \\x1f")
    with_message = df.withColumn(_MESSAGE, _namespaced(F.col(col), namespace))
    return hmac_sha256_hex(with_message, _MESSAGE, key, out_col).drop(_MESSAGE)


def account_token(df: DataFrame, col: str, out_col: str, key: bytes) -> DataFrame:
    """Add ``out_col`` = ``"acct-"`` + 16 hex chars of the account pseudonym of ``col``.

    For redacting account ids in text kept for diagnosis (quarantined raw rows); 64 bits are
    plenty to tell accounts apart there. Matches ``account_token_of``.
    """
    tokens = pseudonymize(df, col, _FULL_TOKEN, key, ACCOUNT_NS)
    token = F.concat(F.lit(ACCOUNT_TOKEN_PREFIX), F.substring(_FULL_TOKEN, 1, ACCOUNT_TOKEN_HEX))
    return tokens.withColumn(out_col, token).drop(_FULL_TOKEN)


def account_token_of(account: str, key: bytes) -> str:
    """The ``account_token`` of one account id, on the driver (e.g. to redact a message)."""
    digest = hmac.new(key, (ACCOUNT_NS + NS_SEP + account).encode("utf-8"), hashlib.sha256)
    return ACCOUNT_TOKEN_PREFIX + digest.hexdigest()[:ACCOUNT_TOKEN_HEX]


def _namespaced(value: Column, namespace: str) -> Column:
    return F.concat(F.lit(namespace + NS_SEP), value.cast("string"))


def _pads(df: DataFrame, key: bytes) -> DataFrame:
    """One row ``(ipad, opad)``: the RFC 2104 block key xor 0x36 / 0x5c, as binary columns."""
    block = hashlib.sha256(key).digest() if len(key) > _BLOCK else key
    block = block.ljust(_BLOCK, b"\0")
    ipad = bytearray(b ^ 0x36 for b in block)
    opad = bytearray(b ^ 0x5C for b in block)
    schema = StructType([StructField(_IPAD, BinaryType(), False),
                         StructField(_OPAD, BinaryType(), False)])
    # From Arrow it is a local relation: no Python worker is started to make one row (a list of
    # tuples becomes a Python RDD, ~1 s per call here). Its rows are not printed in plans.
    pads = pa.table({_IPAD: pa.array([bytes(ipad)], pa.binary()),
                     _OPAD: pa.array([bytes(opad)], pa.binary())})
    return df.sparkSession.createDataFrame(pads, schema)
