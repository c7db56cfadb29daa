#!/usr/bin/env bash
# Install (idempotent), lint (ruff), type-check (mypy), and run the whole test suite: library, app (AppTest) and browser (Chromium) tests,
# on two pytest-xdist workers, with the 25 slowest tests and the wall time (last line) at the end.
#   bash scripts/test.sh                 everything (CI: .ci/run)
#   bash scripts/test.sh --fast          the inner loop: no `slow` and no `e2e` tests (under two minutes)
#   bash scripts/test.sh tests/structure -x     extra arguments go to pytest
# TEST_WORKERS=N sets the workers (default 2; 0 runs in this process, one test after another).
# REFS=1 also runs the whole third-party model families (the `refs` marker).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
fast=0
if [ "${1:-}" = --fast ]; then fast=1; shift; fi

bash scripts/setup.sh dev
.venv/bin/ruff check .
# mypy (resnet_core/, as mypy.ini says) runs beside pytest: the suite waits on subprocesses and browsers
mypy_log=$(mktemp)
.venv/bin/python -m mypy >"$mypy_log" 2>&1 &
mypy_pid=$!

args=(--durations=25)
workers=${TEST_WORKERS:-2}
if [ "$workers" != 0 ]; then args+=(-n "$workers" --dist loadgroup); fi
# the whole third-party families (tests/modules/test_third_party.py, ~190 models) only with REFS=1; a
# sample of them always runs
if [ "$fast" = 1 ]; then
  args+=(-m "not slow and not e2e and not refs")
elif [ "${REFS:-0}" != 1 ]; then
  args+=(-m "not refs")
fi
status=0
.venv/bin/python -m pytest "${args[@]}" "$@" || status=$?
mypy_status=0
wait "$mypy_pid" || mypy_status=$?
cat "$mypy_log"
rm -f "$mypy_log"
if [ "$mypy_status" != 0 ] && [ "$status" = 0 ]; then status=$mypy_status; fi

elapsed=$(( $(date +%s) - start ))
# CPU time of everything this script ran (setup, ruff, pytest and its workers and subprocesses): on a machine
# shared with other jobs the wall time says how loaded it was, the CPU time what the suite itself costs
read -r -a stat < /proc/$$/stat
ticks=$(getconf CLK_TCK)
cpu=$(( (stat[15] + stat[16]) / ticks ))
lane=suite
if [ "$fast" = 1 ]; then lane="suite (fast lane)"; fi
result=passed
if [ "$status" != 0 ]; then result="FAILED (pytest exit $status, mypy exit $mypy_status)"; fi
printf '%s: %dm%02ds (CPU %dm%02ds, %s workers), %s\n' "$lane" $((elapsed / 60)) $((elapsed % 60)) \
  $((cpu / 60)) $((cpu % 60)) "$workers" "$result"
exit "$status"
