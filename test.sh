#!/usr/bin/env bash
# README command 2: set up the environment if needed, then run the test suite.
#   ./test.sh                 # everything
#   ./test.sh -m "not slow"   # extra arguments go to pytest as they are
#   CROSSREC_SKIP_AIRFLOW=1 ./test.sh   # no .venv-airflow: the Airflow DAG tests skip
# Exits with pytest's exit code.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

bash scripts/setup.sh
bash scripts/setup_airflow.sh  # .venv-airflow for tests/test_dag.py (CROSSREC_SKIP_AIRFLOW=1: skip)
# No -q/-qq here: pytest's closing summary line ("N passed in Xs") must always appear.
exec .venv/bin/python -m pytest "$@"
