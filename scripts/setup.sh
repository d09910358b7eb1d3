#!/usr/bin/env bash
# Idempotent environment setup: checks Python >= 3.11 and Java >= 17, creates .venv in the repo
# root, installs requirements.txt and crossrec (editable), then Horovod (scripts/build_horovod.sh:
# a from-source build of minutes the first time, a cached wheel after). Stamps (hash of
# requirements.txt, setup.py and the venv's Python; for Horovod also build_horovod.sh) make a
# repeated run skip pip and the build and finish in about a second.
#
#   bash scripts/setup.sh            # PYTHON=/path/to/python3.11 to choose the interpreter
#   CROSSREC_SETUP_FORCE=1 bash scripts/setup.sh   # redo the pip work even if the stamp matches
#   CROSSREC_SKIP_HOROVOD=1 bash scripts/setup.sh  # leave Horovod out (its tests then skip)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STAMP="$VENV/.crossrec-setup-stamp"
HVD_STAMP="$VENV/.crossrec-horovod-stamp"
MIN_PY="3.11"
MIN_JAVA=17

die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }
say() { printf 'setup: %s\n' "$*" >&2; }

# A Python >= 3.11 that actually runs (pyenv shims exist even when no such version is installed).
# 3.11 comes first: the pinned torch wheel in requirements.txt is built for CPython 3.11.
find_python() {
    local cand
    for cand in ${PYTHON:+"$PYTHON"} python3.11 python3; do
        command -v "$cand" >/dev/null 2>&1 || continue
        if "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then
            command -v "$cand"
            return 0
        fi
    done
    return 1
}

check_java() {
    local java="java" out major minor
    [[ -n "${JAVA_HOME:-}" ]] && java="$JAVA_HOME/bin/java"  # what Spark's launcher uses
    if ! out="$("$java" -version 2>&1)"; then
        die "Java not found ('$java -version' failed). Spark needs Java $MIN_JAVA or newer; install it,
       e.g. 'sudo apt-get install openjdk-17-jre-headless' (Debian/Ubuntu), and/or set JAVA_HOME."
    fi
    # 'openjdk version "17.0.15" ...' or 'java version "1.8.0_292"' (old scheme: major is the 2nd part).
    major="$(sed -n 's/.*version "\([0-9][0-9]*\)\(\.\([0-9][0-9]*\)\)\{0,1\}.*/\1 \3/p' <<<"$out" | head -n1)"
    [[ -n "$major" ]] || die "cannot read the Java version from '$java -version':
$out"
    read -r major minor <<<"$major"
    [[ "$major" == 1 ]] && major="${minor:-0}"
    if (( major < MIN_JAVA )); then
        die "Java $major found ('$java'); Spark 4 needs Java $MIN_JAVA or newer. Install it,
       e.g. 'sudo apt-get install openjdk-17-jre-headless', and put it first on PATH or set JAVA_HOME."
    fi
}

stamp_value() {
    # Python version included: a venv rebuilt on another interpreter must reinstall.
    {
        cat "$ROOT/requirements.txt" "$ROOT/setup.py"
        "$VENV/bin/python" -c 'import sys; print(sys.version)'
    } | sha256sum | cut -d' ' -f1
}

main() {
    [[ -f "$ROOT/requirements.txt" && -f "$ROOT/setup.py" ]] \
        || die "requirements.txt or setup.py missing in $ROOT"
    check_java

    local created=0
    if [[ ! -e "$VENV" ]]; then
        local py
        py="$(find_python)" || die "Python >= $MIN_PY not found (tried ${PYTHON:+\$PYTHON, }python3.11, python3).
       Install Python 3.11 (e.g. 'sudo apt-get install python3.11 python3.11-venv' or pyenv), or set PYTHON."
        say "creating $VENV with $py ($("$py" --version 2>&1))"
        # Remove a half-made venv if creation fails, so the next run starts clean.
        "$py" -m venv "$VENV" || { rm -rf "$VENV"; die "'$py -m venv' failed (Debian: apt-get install python3.11-venv)"; }
        created=1
    fi
    "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
        || die "$VENV exists but its python is broken or older than $MIN_PY; remove it ('rm -rf $VENV') and rerun"

    local want
    want="$(stamp_value)"
    # 'if', not '||': set -e is off inside a function called on the left of || or &&.
    if ! stamp_matches "$STAMP" "$want"; then
        install_requirements "$created" "$want"
    fi
    if [[ "${CROSSREC_SKIP_HOROVOD:-0}" != 1 ]]; then
        install_horovod "$want"
    fi
}

# Fast path of a repeated run: the stamp says the work is done; print nothing.
stamp_matches() {
    [[ "${CROSSREC_SETUP_FORCE:-0}" != 1 && -f "$1" && "$(cat "$1")" == "$2" ]]
}

install_requirements() {
    local created="$1" want="$2"
    rm -f "$STAMP"
    say "installing requirements into $VENV (a first run can take several minutes)"
    local pip=("$VENV/bin/python" -m pip --disable-pip-version-check)
    if (( created )); then
        # Old bundled pip/setuptools cannot build some sdists; torch 2.13 also needs setuptools>=77.
        "${pip[@]}" install --progress-bar off --upgrade pip "setuptools>=77" wheel \
            || die "upgrading pip/setuptools in $VENV failed (see above)"
    fi
    "${pip[@]}" install --progress-bar off -r "$ROOT/requirements.txt" \
        || die "'pip install -r requirements.txt' failed (see above)"
    "${pip[@]}" install --progress-bar off --no-deps --no-build-isolation -e "$ROOT" \
        || die "'pip install -e . --no-deps' failed (see above)"
    "$VENV/bin/python" -c 'import crossrec, crossrec.schemas, pyspark' \
        || die "crossrec or pyspark does not import from $VENV after install"
    printf '%s\n' "$want" >"$STAMP"
    say "environment ready: $VENV"
}

# Horovod is built against the installed torch, so its stamp includes the requirements stamp.
install_horovod() {
    local want
    want="$(printf '%s\n' "$1" | cat - "$ROOT/scripts/build_horovod.sh" | sha256sum | cut -d' ' -f1)"
    stamp_matches "$HVD_STAMP" "$want" && return 0
    rm -f "$HVD_STAMP"
    CROSSREC_VENV="$VENV" bash "$ROOT/scripts/build_horovod.sh" \
        || die "installing Horovod failed (see above); CROSSREC_SKIP_HOROVOD=1 sets up without it"
    printf '%s\n' "$want" >"$HVD_STAMP"
}

# One setup at a time (test.sh and demo.sh may start together on a fresh clone).
if command -v flock >/dev/null 2>&1; then
    mkdir -p "$ROOT/.cache"  # git-ignored
    exec 9>"$ROOT/.cache/setup.lock"
    flock 9
fi
main "$@"
