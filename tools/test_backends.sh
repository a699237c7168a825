#!/usr/bin/env bash
# Runs the suite once per Keras backend, each in its own process, then prints
# one summary line per backend. Fails if any backend fails or runs no test
# (pytest exit code 5 is a failure here, not a pass).
#
# JOBS=2 (the default) runs two backends at a time: most of a backend's test
# time is single-threaded Python (tracing, compiling), so two processes share
# two cores well. Each backend's output goes to $LOGS/<backend>.log
# (LOGS=.test-logs by default) and is printed when it ends. JOBS=1 runs
# them one after another, streaming.
set -u
PY=${PY:-.venv/bin/python}
BACKENDS=${BACKENDS:-"jax tensorflow torch"}
JOBS=${JOBS:-2}
# Where the per-backend logs go (`make test-oldest` keeps its own).
LOGS=${LOGS:-.test-logs}
if [ "$JOBS" -gt 1 ]; then
  # One thread per backend process: two processes already fill two cores,
  # and torch's, TensorFlow's and XLA's own pools would oversubscribe them.
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
  export TF_NUM_INTRAOP_THREADS=${TF_NUM_INTRAOP_THREADS:-1}
  export TF_NUM_INTEROP_THREADS=${TF_NUM_INTEROP_THREADS:-1}
  export XLA_FLAGS=${XLA_FLAGS:-"--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"}
fi
mkdir -p "$LOGS"
rm -f "$LOGS"/*.status

run_one() {
  local backend=$1
  shift
  local log="$LOGS/$backend.log"
  local start rc
  start=$(date +%s)
  KERAS_BACKEND=$backend "$PY" -m pytest -p no:cacheprovider --durations=15 "$@" >"$log" 2>&1
  rc=$?
  echo "$rc $(( $(date +%s) - start ))" >"$LOGS/$backend.status"
}

if [ "$JOBS" -le 1 ]; then
  for backend in $BACKENDS; do
    echo "=== KERAS_BACKEND=$backend ==="
    run_one "$backend" "$@"
    cat "$LOGS/$backend.log"
  done
else
  # A simple pool: start up to $JOBS backends, start the next when one ends.
  running=()
  for backend in $BACKENDS; do
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do
      wait -n
    done
    echo "=== started KERAS_BACKEND=$backend ==="
    run_one "$backend" "$@" &
    running+=("$backend")
  done
  wait
  for backend in "${running[@]}"; do
    echo "=== KERAS_BACKEND=$backend ==="
    cat "$LOGS/$backend.log"
  done
fi

status=0
summary=()
for backend in $BACKENDS; do
  log="$LOGS/$backend.log"
  read -r rc secs <"$LOGS/$backend.status" || { rc=1; secs=0; }
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
