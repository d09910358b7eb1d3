"""Field/Table: one declaration, rendered as Spark and Arrow schemas."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

# Logical type name -> Arrow type. Spark types are derived from these names, so a table is declared
# once and both engines agree on it (Spark writes timestamps as INT64 micros in UTC).
_ARROW: dict[str, pa.DataType] = {
    "string": pa.string(),
    "int": pa.int32(),
    "long": pa.int64(),
    "double": pa.float64(),
    "float": pa.float32(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "binary": pa.binary(),
    "array<string>": pa.list_(pa.string()),
    "array<float>": pa.list_(pa.float32()),
    "array<int>": pa.list_(pa.int32()),
}


def _spark_type(name: str) -> Any:
    from pyspark.sql import types as T  # lazy: the model side never imports Spark

    simple = {
        "string": T.StringType(), "int": T.IntegerType(), "long": T.LongType(),
        "double": T.DoubleType(), "float": T.FloatType(), "bool": T.BooleanType(),
        "date": T.DateType(), "timestamp": T.TimestampType(), "binary": T.BinaryType(),
    }
    if name in simple:
        return simple[name]
    if name.startswith("array<") and name.endswith(">"):
        return T.ArrayType(_spark_type(name[6:-1]), containsNull=False)
    raise ValueError(f"unknown logical type {name!r}")


@dataclass(frozen=True)
class Field:
    """One column: name, logical type (a key of ``_ARROW``), nullability, meaning."""

    name: str
    type: str
    nullable: bool = False
    doc: str = ""

    def __post_init__(self) -> None:
        if self.type not in _ARROW:
            raise ValueError(f"field {self.name!r}: unknown logical type {self.type!r}")


@dataclass(frozen=True)
class Table:
    """A table's schema and layout.

    ``dataset`` is the publication unit the table is committed with (one job's outputs commit
    together); ``partition_by`` are Hive-style partition columns inside a published version;
    ``key`` is the set of columns that must be unique (checked by the data-quality gate).
    """

    name: str
    fields: tuple[Field, ...]
    dataset: str = ""
    partition_by: tuple[str, ...] = ()
    key: tuple[str, ...] = ()
    doc: str = ""
    _index: dict[str, Field] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = [f.name for f in self.fields]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"table {self.name!r}: duplicate fields {sorted(dupes)}")
        for col in (*self.partition_by, *self.key):
            if col not in names:
                raise ValueError(f"table {self.name!r}: {col!r} is not a field")
        self._index.update({f.name: f for f in self.fields})

    @property
    def columns(self) -> list[str]:
        return [f.name for f in self.fields]

    def __getitem__(self, name: str) -> Field:
        return self._index[name]

    def as_spark_schema(self) -> Any:
        """The ``pyspark.sql.types.StructType`` of this table."""
        from pyspark.sql import types as T

        return T.StructType(
            [T.StructField(f.name, _spark_type(f.type), f.nullable) for f in self.fields]
        )

    def as_arrow_schema(self) -> pa.Schema:
        return pa.schema([pa.field(f.name, _ARROW[f.type], f.nullable) for f in self.fields])

    def local_frame(self, spark: Any, rows: Any = ()) -> Any:
        """A DataFrame of ``rows`` (tuples in field order) with this table's schema.

        Built from Arrow, so Spark plans it as a local relation: no Python worker starts for a
        few rows, as one would for a list of tuples (about a second for a session's first).
        """
        arrow = self.as_arrow_schema()
        data = pa.Table.from_pylist([dict(zip(self.columns, r)) for r in rows], schema=arrow)
        return spark.createDataFrame(data, self.as_spark_schema())

    def select(self, df: Any) -> Any:
        """Project and cast a DataFrame onto exactly this table's columns, in order."""
        from pyspark.sql import functions as F

        missing = [c for c in self.columns if c not in df.columns]
        if missing:
            raise ValueError(f"table {self.name!r}: DataFrame lacks columns {missing}")
        return df.select(
            [F.col(f.name).cast(_spark_type(f.type)).alias(f.name) for f in self.fields]
        )

    def markdown(self) -> str:
        """A Markdown table of the fields, for docs."""
        rows = [f"| `{f.name}` | {f.type} | {'yes' if f.nullable else 'no'} | {f.doc} |"
                for f in self.fields]
        head = f"### `{self.name}`\n\n{self.doc}\n\n| column | type | nullable | meaning |\n|---|---|---|---|"
        return "\n".join([head, *rows])
