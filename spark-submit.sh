#!/usr/bin/env bash
# Run a crossrec job (jobs/JOB.py) with spark-submit. See usage() or ./spark-submit.sh --help.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$ROOT/.venv"
JOBS_DIR="$ROOT/jobs"
ZIP="$ROOT/dist/crossrec.zip"
PROG="$(basename "$0")"

# spark-submit's own options: value-taking ones (also as --opt=value), then flags. All others go to the job.
is_value_opt() {
    case "$1" in
        --master|--deploy-mode|--conf|-c|--name|--driver-memory|--driver-cores|--executor-memory|\
        --executor-cores|--num-executors|--total-executor-cores|--queue|--jars|--packages|\
        --repositories|--files|--archives|--py-files|--properties-file|--keytab|--principal|\
        --driver-java-options|--driver-class-path|--driver-library-path|--proxy-user) return 0 ;;
        *) return 1 ;;
    esac
}
is_flag_opt() { [[ "$1" == --verbose || "$1" == --supervise ]]; }

# Applied unless the user sets the same key (--conf, or --properties-file).
DEFAULT_CONFS=(
    "spark.sql.execution.arrow.pyspark.enabled=true"
    "spark.sql.sources.partitionOverwriteMode=dynamic"
    "spark.hadoop.mapreduce.fileoutputcommitter.algorithm.version=1"
    "spark.sql.session.timeZone=UTC"
    "spark.ui.showConsoleProgress=false"
)

die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 2; }

list_jobs() {
    local f name doc
    for f in "$JOBS_DIR"/*.py; do
        [[ -e "$f" ]] || continue
        name="$(basename "$f" .py)"
        [[ "$name" == _* ]] && continue
        # First line of the module docstring, if the file starts with one (after comments/blank lines).
        doc="$(awk '/^[[:space:]]*(#|$)/ {next} /^[rRuU]?"""/ {sub(/^[rRuU]?"""/, ""); sub(/""".*/, ""); print} {exit}' "$f")"
        printf '  %-14s %s\n' "$name" "$doc"
    done
}

usage() {
    cat <<EOF
Usage: ./$PROG JOB [options]

Runs jobs/JOB.py with spark-submit (--master local[*] unless --master is given), shipping the
crossrec package to executors as dist/crossrec.zip. Options that belong to spark-submit go to it
wherever they appear; all other options go to the job. Put job options after '--' if a job
option has the same name as a spark-submit one.

Jobs:
$(list_jobs | grep . || echo "  (none found in jobs/)")

spark-submit options (also as --opt=value):
  --master --deploy-mode --conf/-c K=V --name --driver-memory --driver-cores --executor-memory
  --executor-cores --num-executors --total-executor-cores --queue --jars --packages --repositories
  --files --archives --py-files --properties-file --keytab --principal --driver-java-options
  --driver-class-path --driver-library-path --proxy-user --verbose --supervise

Defaults (a user --conf for the same key wins):
$(printf '  --conf %s\n' "${DEFAULT_CONFS[@]}")

Examples:
  ./$PROG pipeline --date 2026-01-01 --config crossrec.toml   # every stage, see docs/operations.md
  ./$PROG ingest --help
  ./$PROG ingest --sources data/demo/raw/sources.toml --lake data/demo/lake --run-date 2026-01-01
  ./$PROG ingest --master yarn --conf spark.executor.instances=4 -- --sources s3a://bucket/sources.toml

Environment:
  SPARK_HOME          use \$SPARK_HOME/bin/spark-submit instead of the venv's
  PYSPARK_PYTHON      executors' python (default: the venv's, when the master is local)
  CROSSREC_LOCAL_DRIVER_MEMORY  driver memory in local mode unless given (default 4g)
  CROSSREC_DRY_RUN=1  print the spark-submit command, one argument per line, instead of running it

A local file given as the job's --config is shipped with --files (in --deploy-mode cluster the job
reads it by its base name); the pipeline job also ships the other jobs' files with --py-files.
./$PROG --package builds dist/crossrec.zip, prints its path and exits (for Airflow or a cluster).
EOF
}

# Zip lib/crossrec as crossrec/ and schemas/ as crossrec/schemas/ (setup.py's package_dir mapping).
# Rebuilt every run (a few KB) and moved into place atomically, so concurrent runs never see half a zip.
build_zip() {
    local py="$VENV/bin/python"
    [[ -x "$py" ]] || py="$(command -v python3)" || die "no python to build $ZIP (run scripts/setup.sh)"
    mkdir -p "$(dirname "$ZIP")"
    "$py" - "$ROOT" "$ZIP" <<'PY'
import os, sys, tempfile, zipfile
root, out = sys.argv[1], sys.argv[2]
fd, tmp = tempfile.mkstemp(dir=os.path.dirname(out), suffix=".zip.tmp")
os.close(fd)
with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
    for src, dst in (("lib/crossrec", "crossrec"), ("schemas", "crossrec/schemas")):
        base = os.path.join(root, src)
        for d, dirs, files in os.walk(base):
            dirs[:] = sorted(x for x in dirs if x != "__pycache__")
            rel = os.path.relpath(d, base)
            for f in sorted(files):
                if f.endswith((".pyc", ".pyo")):
                    continue
                arc = os.path.normpath(os.path.join(dst, rel, f))
                if src == "lib/crossrec" and arc.startswith("crossrec/schemas/"):
                    continue  # schemas/ is the only source of crossrec.schemas
                zf.write(os.path.join(d, f), arc)
os.chmod(tmp, 0o644)
os.replace(tmp, out)
PY
}

# Keys set in a Java properties file ("key value", "key=value" or "key: value"; # and ! comments).
properties_keys() {
    [[ -f "$1" ]] || return 0
    awk '/^[[:space:]]*([#!]|$)/ {next} {sub(/^[[:space:]]+/, ""); split($0, a, /[[:space:]=:]/); print a[1]}' "$1"
}

main() {
    if (( $# == 0 )); then
        usage >&2
        exit 2
    fi

    local job="" master="" deploy_mode="" properties_file="" arg opt val
    local -a spark_args=() job_args=() user_py_files=() user_files=() user_conf_keys=()
    while (( $# )); do
        arg="$1"
        shift
        if [[ "$arg" == "--" ]]; then
            [[ -n "$job" ]] || die "expected JOB before '--' (see --help)"
            job_args+=("$@")
            break
        fi
        opt="${arg%%=*}"
        if is_value_opt "$opt"; then
            if [[ "$arg" == *=* ]]; then
                val="${arg#*=}"
            else
                (( $# )) || die "$opt needs a value"
                val="$1"
                shift
            fi
            case "$opt" in
                --master) master="$val" ;;
                --deploy-mode) deploy_mode="$val"; spark_args+=("$opt" "$val") ;;
                --py-files) user_py_files+=("$val") ;;
                --files) user_files+=("$val") ;;
                --conf|-c)
                    [[ "$val" == *=* ]] || die "$opt expects KEY=VALUE, got '$val'"
                    user_conf_keys+=("${val%%=*}")
                    spark_args+=(--conf "$val") ;;
                --properties-file)
                    properties_file="$val"
                    spark_args+=("$opt" "$val") ;;
                *) spark_args+=("$opt" "$val") ;;
            esac
        elif is_flag_opt "$arg"; then
            spark_args+=("$arg")
        elif [[ -z "$job" ]]; then
            case "$arg" in
                -h|--help) usage; exit 0 ;;
                --package) build_zip; printf '%s\n' "$ZIP"; exit 0 ;;
                -*) die "expected JOB before job option '$arg' (see --help)" ;;
            esac
            job="$arg"
        else
            job_args+=("$arg")
        fi
    done

    [[ -n "$job" ]] || die "no JOB given (see --help)"
    local script="$JOBS_DIR/$job.py"
    if [[ ! "$job" =~ ^[A-Za-z0-9][A-Za-z0-9_]*$ || ! -f "$script" ]]; then
        local known
        known="$(list_jobs | awk '{print $1}' | paste -sd, - | sed 's/,/, /g')"
        die "unknown job '$job': no file jobs/$job.py. Jobs: ${known:-(none)}"
    fi

    local submit
    if [[ -n "${SPARK_HOME:-}" ]]; then
        submit="$SPARK_HOME/bin/spark-submit"
    else
        submit="$VENV/bin/spark-submit"
    fi
    if [[ "${CROSSREC_DRY_RUN:-0}" != 1 && ! -x "$submit" ]]; then
        die "$submit not found: run 'bash scripts/setup.sh' (or set SPARK_HOME)"
    fi

    build_zip
    local py_files="$ZIP" f
    if [[ "$job" == pipeline ]]; then
        # the pipeline imports the other jobs in-process; a cluster driver has only what is shipped
        for f in "$JOBS_DIR"/*.py; do
            [[ "$(basename "$f")" == _* || "$f" == "$script" ]] || py_files+=",$f"
        done
    fi
    for f in "${user_py_files[@]}"; do
        py_files+=",$f"
    done

    # A local --config file travels with the job (--files); in cluster deploy mode the driver runs
    # remotely and finds it under its own name in its working directory.
    local files="" i
    for i in "${!job_args[@]}"; do
        local cfg_file="" cfg_prefix=""
        if [[ "${job_args[$i]}" == --config && $((i + 1)) -lt ${#job_args[@]} ]]; then
            cfg_file="${job_args[$((i + 1))]}"; i=$((i + 1))
        elif [[ "${job_args[$i]}" == --config=* ]]; then
            cfg_file="${job_args[$i]#--config=}"; cfg_prefix="--config="
        fi
        [[ -n "$cfg_file" && -f "$cfg_file" && "$cfg_file" != *://* ]] || continue
        files+="${files:+,}$cfg_file"
        [[ "$deploy_mode" == cluster ]] && job_args[i]="$cfg_prefix$(basename "$cfg_file")"
    done
    for f in "${user_files[@]}"; do
        files+="${files:+,}$f"
    done
    [[ -z "$files" ]] || spark_args+=(--files "$files")

    local -a set_keys=("${user_conf_keys[@]}") conf_args=()
    if [[ -n "$properties_file" ]]; then
        mapfile -t -O "${#set_keys[@]}" set_keys < <(properties_keys "$properties_file")
    fi
    local kv key known_key skip
    for kv in "${DEFAULT_CONFS[@]}"; do
        key="${kv%%=*}"
        skip=0
        for known_key in "${set_keys[@]}"; do
            [[ "$known_key" == "$key" ]] && { skip=1; break; }
        done
        (( skip )) || conf_args+=(--conf "$kv")
    done

    # Local mode runs every task inside the driver JVM, and the training job gathers the item
    # arrays there: Spark's 1 GB default is too small. A user's own setting always wins.
    if [[ "${master:-local}" == local* ]]; then
        local mem_set=0
        for arg in "${spark_args[@]}" "${set_keys[@]}"; do
            [[ "$arg" == --driver-memory* || "$arg" == spark.driver.memory ]] && mem_set=1
        done
        (( mem_set )) || spark_args+=(--driver-memory "${CROSSREC_LOCAL_DRIVER_MEMORY:-4g}")
    fi

    local -a cmd=("$submit" --master "${master:-local[*]}" "${spark_args[@]}" "${conf_args[@]}"
                  --py-files "$py_files" "$script" "${job_args[@]}")

    # The driver runs the venv's python; local executors too (a cluster has its own python).
    if [[ -x "$VENV/bin/python" ]]; then
        export PYSPARK_DRIVER_PYTHON="${PYSPARK_DRIVER_PYTHON:-$VENV/bin/python}"
        if [[ "${master:-local}" == local* ]]; then
            export PYSPARK_PYTHON="${PYSPARK_PYTHON:-$VENV/bin/python}"
        fi
    fi

    if [[ "${CROSSREC_DRY_RUN:-0}" == 1 ]]; then
        printf '%s\n' "${cmd[@]}"
        exit 0
    fi
    exec "${cmd[@]}"
}

main "$@"
