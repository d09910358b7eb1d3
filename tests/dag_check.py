"""Checks of dags/crossrec_daily.py, run with .venv-airflow's Python (Airflow is not in .venv).

    .venv-airflow/bin/python tests/dag_check.py structure   # prints the DAG as JSON
    .venv-airflow/bin/python tests/dag_check.py run DATE    # dag.test() for DATE; prints states

Expects AIRFLOW_HOME (a scratch folder) and the CROSSREC_* variables the DAG reads to be set by
the caller (tests/test_dag.py).
"""
from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

DAGS = Path(__file__).resolve().parents[1] / "dags"


def load_dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    if bag.import_errors:
        raise SystemExit(f"import errors: {bag.import_errors}")
    return bag.dags["crossrec_daily"]


def structure() -> dict:
    dag = load_dag()
    tasks = {}
    for t in dag.tasks:
        tasks[t.task_id] = {
            "type": type(t).__name__, "upstream": sorted(t.upstream_task_ids),
            "application": t.application, "application_args": list(t.application_args),
            "conf": dict(t.conf or {}), "py_files": t.py_files, "files": t.files,
            "conn_id": t._conn_id, "retries": t.retries, "name": t.name,
        }
    return {"dag_id": dag.dag_id, "catchup": dag.catchup, "max_active_runs": dag.max_active_runs,
            "schedule": getattr(dag.timetable, "_expression", None) or str(dag.timetable),
            "tasks": tasks}


def run(date: str) -> dict:
    dag = load_dag()
    day = datetime.fromisoformat(date).replace(tzinfo=timezone.utc)
    dr = dag.test(logical_date=day)
    return {"state": str(dr.state),
            "tasks": {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}}


if __name__ == "__main__":
    out = structure() if sys.argv[1] == "structure" else run(sys.argv[2])
    print("DAG_CHECK " + json.dumps(out, sort_keys=True))
