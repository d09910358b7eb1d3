"""One local SparkSession for the whole test session (petastorm's SparkTestContext)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # jobs/ and tests/ helpers importable as packages

# Every driver JVM the suite starts (this session's, and those of the jobs, the pipeline, Airflow's
# tasks and demo.sh that tests run as processes) is short-lived: with the C1 compiler and the
# serial collector the tiny pipeline took 68/52 s against 78/64 s (alternating pairs, 2 cores), and
# demo.sh on MovieLens-1M was no slower (307 s vs 331 s). Results are unaffected. The code cache
# has room for a whole suite's generated code: a C1-only JVM reserves 48 MB, and a session that
# ran about half the suite's jobs died with "Out of space in CodeCache for adapters".
SHORT_LIVED_JAVA = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -XX:ReservedCodeCacheSize=256m"


def pytest_configure(config: pytest.Config) -> None:
    # spark-submit (and pyspark's own launch of it) passes SPARK_SUBMIT_OPTS to the driver JVM;
    # child processes inherit it from here.
    opts = os.environ.get("SPARK_SUBMIT_OPTS", "")
    if SHORT_LIVED_JAVA not in opts:
        os.environ["SPARK_SUBMIT_OPTS"] = f"{opts} {SHORT_LIVED_JAVA}".strip()


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory):
    from crossrec.session import get_session

    warehouse = tmp_path_factory.mktemp("warehouse")
    os.environ.setdefault("CROSSREC_SPARK_LOG_LEVEL", "ERROR")
    session = get_session("crossrec-tests", master="local[2]", conf={
        "spark.sql.warehouse.dir": str(warehouse),
        "spark.driver.memory": "2g",
        "spark.sql.shuffle.partitions": "4",
        "spark.default.parallelism": "4",
        "spark.ui.showConsoleProgress": "false",
    })
    yield session
    session.stop()
