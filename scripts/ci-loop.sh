#!/usr/bin/env bash
# scripts/ci-loop.sh - the reliability bar: RUNS consecutive runs of the README's test command
# (scripts/test.sh) on a fresh clone of HEAD, while HOGS busy loops (`yes >/dev/null`) load the
# machine for the whole time. Prints one line per run and exits non-zero if any run failed.
# Knobs: RUNS=10 HOGS=2 DIR=/tmp/sessions-ci-loop (the clone and the logs, run-N.log, go there).
set -uo pipefail
RUNS=${RUNS:-10}; HOGS=${HOGS:-2}; DIR=${DIR:-/tmp/sessions-ci-loop}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
rm -rf "$DIR" && mkdir -p "$DIR" && git clone -q "$ROOT" "$DIR/clone" || exit 1
cd "$DIR/clone" && echo "commit $(git log --oneline -1)"
PIDS=()
for _ in $(seq 1 "$HOGS"); do yes >/dev/null & PIDS+=($!); done
trap 'kill "${PIDS[@]}" 2>/dev/null' EXIT
failed=0
for i in $(seq 1 "$RUNS"); do
  start=$(date +%s)
  scripts/test.sh > "$DIR/run-$i.log" 2>&1; rc=$?
  (( rc != 0 )) && failed=$((failed + 1))
  echo "run $i rc=$rc $(( $(date +%s) - start ))s $(grep -E 'Test run with' "$DIR/run-$i.log" | tail -1)"
done
echo "$((RUNS - failed)) of $RUNS green (logs in $DIR)"
(( failed == 0 ))
