"""crossrec's daily DAG: one SparkSubmitOperator task per pipeline stage, for the run's logical date.

Each task runs ``jobs/pipeline.py --only STAGE --config CROSSREC_CONFIG --run-date {{ ds }}``
through ``spark-submit`` with the package zip and the same defaults as ./spark-submit.sh. Every
stage is idempotent for its date (it skips when its inputs' versions and parameters are
unchanged, and publishes atomically), so Airflow retries, reruns of a date ("Clear") and
backfills (``airflow backfill create --dag-id crossrec_daily --from-date ... --to-date ...``) are
safe. The date comes only from ``{{ ds }}``; nothing here reads the clock.

Deployment settings, read from the environment of the scheduler/worker when the file is parsed:

- ``CROSSREC_HOME``: the crossrec checkout or release folder (default: this file's parent's parent)
- ``CROSSREC_CONFIG``: the settings file (default ``$CROSSREC_HOME/crossrec.toml``); shipped with
  ``--files``. ``CROSSREC_CONFIG_ARG`` (default: the same path) is what the job is told: set it
  to the file's base name when the connection's deploy mode is ``cluster``.
- ``CROSSREC_SPARK_CONN_ID``: the Spark connection (default ``spark_default``): master, deploy
  mode, queue; ``spark-submit`` must be the one of PySpark 4.3 (first on PATH, or $SPARK_HOME).
- ``CROSSREC_PYSPARK_PYTHON``: if set, the Python of the driver and executors (local/client mode).
- ``CROSSREC_RETRIES`` (default 2), ``CROSSREC_SCHEDULE`` (default ``@daily``).
The pseudonymisation key reaches ingest as ``$CROSSREC_ID_KEY`` in the worker's environment (or a
Spark secret on the cluster), never through this file or the settings file.
"""
from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import DAG

HOME = Path(os.environ.get("CROSSREC_HOME", Path(__file__).resolve().parents[1]))
CONFIG = os.environ.get("CROSSREC_CONFIG", str(HOME / "crossrec.toml"))
CONFIG_ARG = os.environ.get("CROSSREC_CONFIG_ARG", CONFIG)
CONN_ID = os.environ.get("CROSSREC_SPARK_CONN_ID", "spark_default")
PYTHON = os.environ.get("CROSSREC_PYSPARK_PYTHON")

# The pipeline's stages in order (jobs/pipeline.py STAGES; a test checks they agree).
STAGES = ("ingest", "embed_items", "build_examples", "train", "score", "evaluate")
# ./spark-submit.sh's defaults (Arrow, dynamic partition overwrite, committer v1, UTC).
SPARK_CONF = {
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.sources.partitionOverwriteMode": "dynamic",
    "spark.hadoop.mapreduce.fileoutputcommitter.algorithm.version": "1",
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.showConsoleProgress": "false",
}
# The package zip (./spark-submit.sh --package builds it) and the jobs the pipeline imports.
PY_FILES = ",".join([str(HOME / "dist" / "crossrec.zip"),
                     *(str(HOME / "jobs" / f"{s}.py") for s in STAGES)])

default_args = {
    "owner": "crossrec",
    "retries": int(os.environ.get("CROSSREC_RETRIES", "2")),
    "retry_delay": timedelta(minutes=10),
    "retry_exponential_backoff": True,
    "depends_on_past": False,
}

with DAG(
    dag_id="crossrec_daily",
    description="crossrec: ingest -> embed items -> examples -> train -> score -> evaluate",
    schedule=os.environ.get("CROSSREC_SCHEDULE", "@daily"),
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,        # past dates run by an explicit backfill, never by surprise
    max_active_runs=1,    # stages read "latest on or before the date": keep dates in order
    default_args=default_args,
    tags=["crossrec", "spark"],
) as dag:
    previous = None
    for stage in STAGES:
        task = SparkSubmitOperator(
            task_id=stage,
            conn_id=CONN_ID,
            application=str(HOME / "jobs" / "pipeline.py"),
            application_args=["--only", stage, "--config", CONFIG_ARG, "--run-date", "{{ ds }}"],
            py_files=PY_FILES,
            files=CONFIG,
            conf=SPARK_CONF,
            name=f"crossrec-{stage}-{{{{ ds }}}}",
            env_vars=({"PYSPARK_PYTHON": PYTHON, "PYSPARK_DRIVER_PYTHON": PYTHON}
                      if PYTHON else None),
        )
        if previous is not None:
            previous >> task
        previous = task
