"""Rejected rows, made safe to keep: account ids in the raw text are replaced by their tokens."""
from __future__ import annotations

import re

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from crossrec.config import SourceSpec
from crossrec.ingest.pseudonym import account_token
from crossrec.ingest.read import ERR_FIELD, ERR_REASON
from crossrec.schemas import columns as C
from crossrec.schemas.lake import QUARANTINE

_TOKEN = "_token"
_GUESS = "_account_guess"


def _json_value(raw: Column, key: str) -> Column:
    """The value of ``key`` in a JSON text, also from truncated JSON (best effort)."""
    pattern = r'"' + re.escape(key) + r'"\s*:\s*(?:"((?:[^"\\]|\\.)*)"|([^,}\s"]+))'
    quoted, bare = F.regexp_extract(raw, pattern, 1), F.regexp_extract(raw, pattern, 2)
    return F.when(quoted != "", quoted).when(bare != "", bare)


def _json_redact(raw: Column, key: str, token: Column) -> Column:
    pattern = r'("' + re.escape(key) + r'"\s*:\s*)(?:"(?:[^"\\]|\\.)*"|[^,}\s"]+)'
    return F.regexp_replace(raw, F.lit(pattern), F.concat(F.lit('$1"'), token, F.lit('"')))


def _csv_fields(raw: Column, delimiter: str) -> Column:
    return F.split(raw, re.escape(delimiter), -1)


def redact(df: DataFrame, spec: SourceSpec, header: list[str] | None, key: bytes,
           accounts: list[tuple[Column, str]]) -> DataFrame:
    """Replace each account field of ``raw`` by its token.

    ``accounts``: (platform expression, logical account column) pairs; the account is taken from
    the parsed column, or guessed from the raw text for structurally broken rows. ``header``: the
    CSV header (column order), None for other formats.
    """
    for platform, logical in accounts:
        physical = spec.columns[logical]
        if spec.format == "csv":
            pos = header.index(physical)
            fields = _csv_fields(F.col(C.RAW), spec.delimiter)
            guess = F.regexp_replace(F.get(fields, pos), '"', "")
            redacted = F.array_join(F.transform(
                fields, lambda x, i: F.when(i == pos, F.col(_TOKEN)).otherwise(x)), spec.delimiter)
        else:
            guess = _json_value(F.col(C.RAW), physical)
            redacted = _json_redact(F.col(C.RAW), physical, F.col(_TOKEN))
        account = F.coalesce(F.col(logical), guess)
        df = account_token(df.withColumn(_GUESS, F.concat_ws(":", platform, account)),
                           _GUESS, _TOKEN, key)
        df = df.withColumn(C.RAW, F.when(account.isNotNull(), redacted).otherwise(F.col(C.RAW)))
    return df.drop(_TOKEN, _GUESS)


def to_quarantine(rejected: DataFrame, run_id: str) -> DataFrame:
    """Project rejected rows onto the quarantine table."""
    return QUARANTINE.select(rejected.withColumn(C.RUN_ID, F.lit(run_id))
                             .withColumn(C.FIELD, F.col(ERR_FIELD))
                             .withColumn(C.REASON, F.col(ERR_REASON)))
