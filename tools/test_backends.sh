#!/usr/bin/env bash
# Runs the suite once per Keras backend, each in its own process, then prints
# one summary line per backend. Fails if any backend fails or runs no test
# (pytest exit code 5 is a failure here, not a pass).
set -u
PY=${PY:-.venv/bin/python}
BACKENDS=${BACKENDS:-"tensorflow torch jax"}
mkdir -p .test-logs
status=0
summary=()
for backend in $BACKENDS; do
  echo "=== KERAS_BACKEND=$backend ==="
  log=".test-logs/$backend.log"
  start=$(date +%s)
  KERAS_BACKEND=$backend "$PY" -m pytest -p no:cacheprovider "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  secs=$(( $(date +%s) - start ))
  last=$(grep -E '(passed|failed|error|no tests ran)' "$log" | tail -n 1 | tr -d '=' | sed 's/^ *//;s/ *$//')
  if [ "$rc" -eq 5 ]; then
    last="no tests ran"
  fi
  if [ "$rc" -ne 0 ]; then
    status=1
    summary+=("$backend: FAILED (exit $rc, ${secs}s) $last")
  else
    summary+=("$backend: ok (${secs}s) $last")
  fi
done
echo
echo "=== summary ==="
for line in "${summary[@]}"; do echo "$line"; done
exit $status
