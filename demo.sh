#!/usr/bin/env bash
# README command 1: the end-to-end demo on real data (MovieLens-1M as two platforms), local mode.
#
#   ./demo.sh                     # every step, run date = today (UTC)
#   RUN_DATE=2026-01-01 ./demo.sh # a fixed run date
#   ./demo.sh ingest              # only the named steps, in the order given
#
# Idempotent: rerunning replaces the demo's outputs for the same run date.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

DEMO_DIR="${CROSSREC_DEMO_DIR:-data/demo}"  # tests point it elsewhere
RAW="$DEMO_DIR/raw"
LAKE="$DEMO_DIR/lake"
RUN_DATE="${RUN_DATE:-$(date -u +%F)}"

# --- steps: one function each, run in the order of STEPS. -------------------------------------------
step_prepare() {  # fetch MovieLens-1M (cached in data/cache) and write raw platform logs + sources.toml
    .venv/bin/python jobs/prepare_demo.py --out "$RAW"
}

step_ingest() {  # raw logs -> the lake's unified tables for RUN_DATE
    ./spark-submit.sh ingest --sources "$RAW/sources.toml" --lake "$LAKE" --run-date "$RUN_DATE" --dev-key
}

step_embed() {  # item text -> MiniLM vectors (skipped when the catalog is unchanged)
    ./spark-submit.sh embed_items --lake "$LAKE" --run-date "$RUN_DATE"
}

step_examples() {  # events -> training examples (history strictly before each positive)
    ./spark-submit.sh build_examples --lake "$LAKE" --run-date "$RUN_DATE"
}

step_train() {  # the shared cross-domain model; CROSSREC_DEMO_TRAIN_ARGS adds/overrides options
    # shellcheck disable=SC2086  # word splitting of the extra options is intended
    ./spark-submit.sh train --lake "$LAKE" --run-date "$RUN_DATE" --work-dir "$DEMO_DIR/work" \
        ${CROSSREC_DEMO_TRAIN_ARGS:-}
}

step_score() {  # top-10 lists per user and domain from the trained model (consumed items excluded)
    ./spark-submit.sh score --lake "$LAKE" --run-date "$RUN_DATE"
}

step_evaluate() {  # cold/warm cohorts of drama (source comedy) against the baselines; prints the table
    # shellcheck disable=SC2086  # word splitting of the extra options is intended
    ./spark-submit.sh evaluate --lake "$LAKE" --run-date "$RUN_DATE" --work-dir "$DEMO_DIR/work/evaluate" \
        ${CROSSREC_DEMO_EVAL_ARGS:-}
}

STEPS=(prepare ingest embed examples train score evaluate)
# -------------------------------------------------------------------------------------------------

die() { printf 'demo: error: %s\n' "$*" >&2; exit 1; }
CURRENT_STEP=""
on_exit() {
    local rc=$?
    if (( rc )) && [[ -n "$CURRENT_STEP" ]]; then
        printf 'demo: error: step %s failed (exit %d)\n' "$CURRENT_STEP" "$rc" >&2
    fi
}
trap on_exit EXIT

main() {
    case "${1:-}" in
        -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; echo "Steps: ${STEPS[*]}"; return 0 ;;
    esac
    [[ "$RUN_DATE" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}$ && "$(date -u -d "$RUN_DATE" +%F 2>/dev/null)" == "$RUN_DATE" ]] \
        || die "RUN_DATE must be a date as YYYY-MM-DD, got '$RUN_DATE'"

    local -a steps=("$@")
    (( ${#steps[@]} )) || steps=("${STEPS[@]}")
    local step
    for step in "${steps[@]}"; do
        declare -F "step_$step" >/dev/null || die "unknown step '$step' (steps: ${STEPS[*]})"
    done

    bash scripts/setup.sh
    local start
    for step in "${steps[@]}"; do
        printf '\n=== demo: %s (run date %s) ===\n' "$step" "$RUN_DATE"
        start=$SECONDS
        CURRENT_STEP="$step"
        "step_$step"  # not in an || list: that would switch off set -e inside the step
        CURRENT_STEP=""
        printf '=== demo: %s done in %ds ===\n' "$step" "$((SECONDS - start))"
    done

    printf '\nDemo outputs (run date %s):\n' "$RUN_DATE"
    printf '  raw platform logs: %s\n' "$(realpath -m "$RAW")"
    printf '  lake:              %s\n' "$(realpath -m "$LAKE")"
    if [[ -d "$LAKE" ]]; then
        find "$LAKE" -mindepth 1 -maxdepth 2 -not -name '.*' -not -name '_*' | sort | sed "s|^$LAKE/|    |"
    fi
}

main "$@"
