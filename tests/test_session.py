"""Session settings: a block's scoped SQL settings and their restoration."""
from __future__ import annotations

import pytest

from crossrec.session import scoped_conf

COMPRESSED = "spark.sql.inMemoryColumnarStorage.compressed"


def test_scoped_conf_applies_then_restores(spark):
    spark.conf.set(COMPRESSED, "true")
    with scoped_conf(spark, {COMPRESSED: "false"}):
        assert spark.conf.get(COMPRESSED) == "false"
    assert spark.conf.get(COMPRESSED) == "true"


def test_scoped_conf_unsets_what_was_unset_even_on_error(spark):
    key = "spark.sql.crossrec.test.scoped"
    with pytest.raises(RuntimeError), scoped_conf(spark, {key: "x"}):
        assert spark.conf.get(key) == "x"
        raise RuntimeError("fails inside the block")
    assert spark.conf.get(key, None) is None


def test_scoped_conf_leaves_what_the_user_set(spark):
    # the test session's builder set shuffle partitions: a user's --conf wins over ours
    key = "spark.sql.shuffle.partitions"
    before = spark.conf.get(key)
    with scoped_conf(spark, {key: "17"}):
        assert spark.conf.get(key) == before
