"""Build or get the SparkSession with crossrec's defaults."""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Any, Iterator

# SQL settings applied at run time unless the user's spark-submit/--conf already set them.
SQL_DEFAULTS: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",  # timestamps mean the same on every machine
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.sources.partitionOverwriteMode": "dynamic",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.adaptive.enabled": "true",
}
LOCAL_SQL_DEFAULTS: dict[str, str] = {"spark.sql.shuffle.partitions": "8"}
# Settings that only matter when this process starts the JVM itself (not under spark-submit).
LAUNCH_DEFAULTS: dict[str, str] = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.memory": "4g",
    "spark.hadoop.mapreduce.fileoutputcommitter.algorithm.version": "1",
}


def get_session(app_name: str, master: str | None = None,
                conf: dict[str, str] | None = None) -> Any:
    """The active session, or a new one (``local[*]`` unless spark-submit or ``master`` says)."""
    from pyspark.sql import SparkSession

    spark = SparkSession.getActiveSession()
    if spark is None:
        builder = SparkSession.builder.appName(app_name)
        submitted = "PYSPARK_GATEWAY_PORT" in os.environ  # spark-submit started the JVM already
        if master or not submitted:
            builder = builder.master(master or os.environ.get("CROSSREC_MASTER", "local[*]"))
        if not submitted:
            # executors' Python must be this interpreter (its venv has pyarrow and crossrec)
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
            for key, value in LAUNCH_DEFAULTS.items():
                builder = builder.config(key, value)
        for key, value in (conf or {}).items():
            builder = builder.config(key, value)
        spark = builder.getOrCreate()
        level = os.environ.get("CROSSREC_SPARK_LOG_LEVEL", "WARN").upper()
        # Spark 4 ignores a level equal to the root logger's (INFO) even when the console shows
        # only WARN; stepping through another level makes every requested level take effect.
        spark.sparkContext.setLogLevel("ERROR" if level != "ERROR" else "WARN")
        spark.sparkContext.setLogLevel(level)
    user_set = spark.sparkContext.getConf()
    local = spark.sparkContext.master.startswith("local")
    for key, value in {**SQL_DEFAULTS, **(LOCAL_SQL_DEFAULTS if local else {})}.items():
        if not user_set.contains(key):
            spark.conf.set(key, value)
    return spark


@contextmanager
def scoped_conf(spark: Any, settings: dict[str, str]) -> Iterator[None]:
    """Run the block with SQL ``settings`` applied, then put the session's values back.

    A setting the user gave explicitly (spark-submit ``--conf``, the builder) is left as it is,
    as with ``SQL_DEFAULTS``.
    """
    user_set = spark.sparkContext.getConf()
    saved = {k: spark.conf.get(k, None) for k in settings if not user_set.contains(k)}
    for key in saved:
        spark.conf.set(key, settings[key])
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)
