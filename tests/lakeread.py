"""Small helpers for lake tests: published tables as comparable row lists, file listings, pointers.

Rows come back as plain dicts sorted by their JSON text, so two publications compare with ``==``
whatever their file layout, partitioning or version folder.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from crossrec.lake import POINTER, Lake, Manifest
from crossrec.schemas.lake import PUBLISHED, UNIFIED

Rows = list[dict[str, Any]]


def _key(row: dict[str, Any]) -> str:
    return json.dumps(row, sort_keys=True, default=str)


def sorted_rows(df: Any) -> Rows:
    """Every row of a Spark DataFrame as a dict, sorted (order-independent comparison)."""
    return sorted((r.asDict(recursive=True) for r in df.collect()), key=_key)


def published_tables(spark: Any, lake: str | Path, run_date: str) -> dict[str, Rows]:
    """Every published table of ``unified`` for ``run_date``, read through ``Lake.read``."""
    lk = Lake.open(str(lake), spark)
    return {t.name: sorted_rows(lk.read(spark, t, run_date)) for t in PUBLISHED}


def version_tables(spark: Any, version_dir: str | Path) -> dict[str, Rows]:
    """Every table staged in one ``_v_<version>`` folder, published or not."""
    return {t.name: sorted_rows(spark.read.schema(t.as_spark_schema())
                                .parquet(str(Path(version_dir) / t.name))) for t in PUBLISHED}


def manifest(lake: str | Path, run_date: str, dataset: str = UNIFIED) -> Manifest | None:
    """The published manifest (the pointer's content), or None."""
    return Lake.open(str(lake)).manifest(dataset, run_date)


def date_dir(lake: str | Path, run_date: str, dataset: str = UNIFIED) -> Path:
    return Path(lake) / dataset / f"run_date={run_date}"


def pointer_bytes(lake: str | Path, run_date: str, dataset: str = UNIFIED) -> bytes | None:
    path = date_dir(lake, run_date, dataset) / POINTER
    return path.read_bytes() if path.exists() else None


def version_dirs(lake: str | Path, run_date: str, dataset: str = UNIFIED) -> list[str]:
    """Names of the ``_v_<version>`` folders of a date, sorted."""
    d = date_dir(lake, run_date, dataset)
    return sorted(p.name for p in d.glob("_v_*")) if d.exists() else []


def all_files(folder: str | Path) -> list[Path]:
    """Every regular file below ``folder`` (hidden ones included), sorted."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file())


def data_files(folder: str | Path) -> list[Path]:
    """Parquet part files below ``folder``, wherever Spark put them (``_temporary`` included)."""
    return [p for p in all_files(folder) if p.name.startswith("part-")]


def parquet_strings(path: str | Path) -> Iterator[str]:
    """Every string value of a Parquet file, list elements and struct fields included."""
    table = pq.read_table(path)
    for column in table.columns:
        yield from _strings(column.combine_chunks() if column.num_chunks else pa.array([]))


def _strings(arr: pa.Array) -> Iterator[str]:
    t = arr.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        yield from (s for s in arr.to_pylist() if s is not None)
    elif pa.types.is_binary(t) or pa.types.is_large_binary(t):
        yield from (b.decode("utf-8", "replace") for b in arr.to_pylist() if b is not None)
    elif pa.types.is_list(t) or pa.types.is_large_list(t):
        yield from _strings(arr.flatten())
    elif pa.types.is_struct(t):
        for i in range(t.num_fields):
            yield from _strings(arr.field(i))
    elif pa.types.is_dictionary(t):
        yield from _strings(arr.dictionary)


def copy_lake(src: str | Path, dst: str | Path) -> Path:
    """A private copy of a lake (same versions and pointers) for a test that changes it."""
    shutil.copytree(src, dst)
    return Path(dst)
