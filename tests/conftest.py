"""One local SparkSession for the whole test session (petastorm's SparkTestContext)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # jobs/ and tests/ helpers importable as packages


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory):
    from crossrec.session import get_session
    from tests.fault_runner import SHORT_LIVED_JAVA

    warehouse = tmp_path_factory.mktemp("warehouse")
    os.environ.setdefault("CROSSREC_SPARK_LOG_LEVEL", "ERROR")
    session = get_session("crossrec-tests", master="local[2]", conf={
        "spark.sql.warehouse.dir": str(warehouse),
        "spark.driver.memory": "2g",
        "spark.sql.shuffle.partitions": "4",
        "spark.default.parallelism": "4",
        "spark.ui.showConsoleProgress": "false",
        # tiny data: a JVM that starts fast beats one that optimises long-running code
        # Room for the whole suite's generated code: a C1-only JVM reserves a 48 MB code cache,
        # and one that ran about half the suite's jobs died with "Out of space in CodeCache".
        "spark.driver.extraJavaOptions": f"{SHORT_LIVED_JAVA} -XX:ReservedCodeCacheSize=256m",
    })
    yield session
    session.stop()
