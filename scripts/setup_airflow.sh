#!/usr/bin/env bash
# Idempotent setup of .venv-airflow: Apache Airflow + the Spark provider, kept apart from .venv
# (Airflow pins its own versions of many libraries; the DAG only needs SparkSubmitOperator, which
# runs the project's ./spark-submit.sh, so the two environments never share a process).
#
#   bash scripts/setup_airflow.sh                       # PYTHON=/path/to/python3.11 to choose
#   CROSSREC_SETUP_FORCE=1 bash scripts/setup_airflow.sh  # reinstall even if the stamp matches
#   CROSSREC_SKIP_AIRFLOW=1 bash scripts/setup_airflow.sh # do nothing (the DAG tests then skip)
#
# A stamp (hash of this script and the venv's Python) makes a repeated run finish in a second.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-airflow"
STAMP="$VENV/.crossrec-airflow-stamp"
# Versions checked together on Python 3.11 (see ../shared/RECIPES.md of the project notes).
AIRFLOW_VERSION="3.3.2"
SPARK_PROVIDER_VERSION="6.3.4"

die() { printf 'setup_airflow: error: %s\n' "$*" >&2; exit 1; }
say() { printf 'setup_airflow: %s\n' "$*" >&2; }

find_python() {
    local cand
    for cand in ${PYTHON:+"$PYTHON"} python3.11 python3; do
        command -v "$cand" >/dev/null 2>&1 || continue
        if "$cand" -c 'import sys; sys.exit(not (3, 10) <= sys.version_info[:2] < (3, 14))' \
            >/dev/null 2>&1; then
            command -v "$cand"
            return 0
        fi
    done
    return 1
}

stamp_value() {
    { cat "${BASH_SOURCE[0]}"; "$VENV/bin/python" -c 'import sys; print(sys.version)'; } \
        | sha256sum | cut -d' ' -f1
}

main() {
    if [[ "${CROSSREC_SKIP_AIRFLOW:-0}" == 1 ]]; then
        say "CROSSREC_SKIP_AIRFLOW=1: not setting up $VENV"
        return 0
    fi
    if [[ ! -e "$VENV" ]]; then
        local py
        py="$(find_python)" || die "no Python 3.10-3.13 found for Airflow $AIRFLOW_VERSION (set PYTHON)"
        say "creating $VENV with $py"
        "$py" -m venv "$VENV" || { rm -rf "$VENV"; die "'$py -m venv' failed"; }
    fi
    local want
    want="$(stamp_value)"
    if [[ "${CROSSREC_SETUP_FORCE:-0}" != 1 && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
        return 0
    fi
    rm -f "$STAMP"
    say "installing apache-airflow==$AIRFLOW_VERSION and the Spark provider into $VENV (about a minute)"
    "$VENV/bin/python" -m pip --disable-pip-version-check install --progress-bar off \
        "apache-airflow==$AIRFLOW_VERSION" \
        "apache-airflow-providers-apache-spark==$SPARK_PROVIDER_VERSION" \
        || die "pip install of Airflow failed (see above); CROSSREC_SKIP_AIRFLOW=1 skips it"
    "$VENV/bin/python" -c \
        'from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator' \
        || die "SparkSubmitOperator does not import from $VENV after install"
    printf '%s\n' "$want" >"$STAMP"
    say "Airflow ready: $VENV"
}

if command -v flock >/dev/null 2>&1; then
    mkdir -p "$ROOT/.cache"
    exec 9>"$ROOT/.cache/setup-airflow.lock"
    flock 9
fi
main "$@"
