"""One declaration renders both engines' schemas, and tables are checked when declared."""
from __future__ import annotations

import pyarrow as pa
import pytest

from crossrec.schemas import Field, Table
from crossrec.schemas.lake import INTERACTIONS, PUBLISHED


def test_arrow_and_spark_agree(spark):
    for table in PUBLISHED:
        empty = spark.createDataFrame([], table.as_spark_schema())
        arrow = empty.toArrow().schema
        assert arrow.names == table.as_arrow_schema().names
        for got, want in zip(arrow, table.as_arrow_schema()):
            assert got.type == want.type or (pa.types.is_list(got.type) and
                                              got.type.value_type == want.type.value_type), got


def test_declaration_errors():
    with pytest.raises(ValueError, match="duplicate fields"):
        Table("t", (Field("a", "int"), Field("a", "int")))
    with pytest.raises(ValueError, match="'b' is not a field"):
        Table("t", (Field("a", "int"),), key=("b",))
    with pytest.raises(ValueError, match="unknown logical type"):
        Field("a", "decimal")


def test_select_projects_and_names_missing_columns(spark):
    df = spark.createDataFrame([(1, 2)], "user_idx long, extra int")
    with pytest.raises(ValueError, match="lacks columns"):
        INTERACTIONS.select(df)
    assert "| `user_idx` | int | no |" in INTERACTIONS.markdown()


def test_docs_tables_md_is_current():
    from pathlib import Path

    from crossrec.schemas.docs import render

    path = Path(__file__).resolve().parents[1] / "docs" / "tables.md"
    assert path.read_text() == render(), "run: python -m crossrec.schemas.docs > docs/tables.md"


def test_local_frame_has_the_schema_and_rows_without_a_python_rdd(spark):
    from pyspark.testing import assertSchemaEqual

    table = Table("t", (Field("k", "string"), Field("n", "long", nullable=True),
                        Field("tags", "array<string>")))
    df = table.local_frame(spark, [("a", 1, ["x"]), ("b", None, [])])
    assertSchemaEqual(df.schema, table.as_spark_schema())
    assert [tuple(r) for r in df.collect()] == [("a", 1, ["x"]), ("b", None, [])]
    assert table.local_frame(spark).count() == 0
    assert "LocalTableScan" in df._jdf.queryExecution().executedPlan().toString()
