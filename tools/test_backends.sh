#!/usr/bin/env bash
# Runs the suite once per Keras backend, then prints one summary line per
# backend. Fails if any backend fails or runs no test (pytest exit code 5 is
# a failure here, not a pass).
#
# JOBS=2 (the default) runs two pytest processes at a time, each with one
# thread: most of a backend's test time is single-threaded Python (tracing,
# compiling), so two processes share two cores well. To keep both cores
# busy to the end, a backend may run as two or three processes over
# disjoint sets of test files (SPLIT and SPLIT_C, below): the longest parts
# start first. Each part's
# output goes to $LOGS/<backend>[.<part>].log (LOGS=.test-logs by default)
# and is printed when it ends. JOBS=1 runs every backend in one process,
# one after another, streaming.
set -u
PY=${PY:-.venv/bin/python}
BACKENDS=${BACKENDS:-"jax tensorflow torch"}
JOBS=${JOBS:-2}
# Where the per-backend logs go (`make test-oldest` keeps its own).
LOGS=${LOGS:-.test-logs}
# The backends run as two processes when JOBS > 1: the files of part "a"
# (the execution matrix: a third of JAX's run, the heaviest file on
# TensorFlow and JAX) in one, the other files in the other, so that the
# last minutes of the run keep both cores busy (with one process per
# backend, torch ran alone at the end). SPLIT="" runs every backend in one
# process; test paths among the pytest arguments turn the split off.
SPLIT=${SPLIT-"tensorflow jax torch"}
PART_A_FILES=${PART_A_FILES:-"tests/test_execution_matrix.py"}
# The backends whose run is long enough for a third process: the files of
# part "c" in it, the other files (neither a nor c) in part "b".
SPLIT_C=${SPLIT_C-"jax"}
PART_C_FILES=${PART_C_FILES:-"tests/test_recurrent.py tests/test_models.py tests/test_keras_suite.py tests/test_structured.py tests/test_examples.py tests/test_reuse.py"}
# The parts, longest first (on 2 quiet cores, 2026-12-06 21:31: tensorflow.b
# 424 s, jax.b 361, torch.b 289, jax.c 278, tensorflow.a 161, jax.a 74,
# torch.a 40; CONTRIBUTING.md; this order, from the 18:53 figures, ran):
# the pool starts them in this order, so that the last to end are short
# ones.
ORDER=${ORDER:-"jax.b tensorflow.b jax.c torch.b tensorflow.a jax.a torch.a"}
# The JAX runs share a compilation cache, fresh for this run of the script
# and removed after it (unless JAX_COMPILATION_CACHE_DIR is set, as `make
# test-fast` sets it to keep one between runs). In the execution matrix
# every reloaded model compiles the programs its original has just
# compiled: served from the cache, the JAX matrix cost 89 CPU s against
# 141 without; other files gained 7 to 10% (2026-12-06, on loaded cores,
# each pair run back to back: 114.9 against 123.5, 75.5 against 81.8,
# 85.1 against 94.3). The other backends' runs get it too, for the JAX
# subprocesses they start (TensorFlow's partner backend, the checker's JAX
# workers): what one JAX process has compiled, the next one loads.
# JAX_CACHE_PARTS="" turns it off.
JAX_CACHE_PARTS=${JAX_CACHE_PARTS-"jax jax.a jax.b jax.c tensorflow tensorflow.a tensorflow.b torch torch.a torch.b"}
if [ "$JOBS" -gt 1 ]; then
  # One thread per process: two processes already fill two cores,
  # and torch's, TensorFlow's and XLA's own pools would oversubscribe them.
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
  export TF_NUM_INTRAOP_THREADS=${TF_NUM_INTRAOP_THREADS:-1}
  export TF_NUM_INTEROP_THREADS=${TF_NUM_INTEROP_THREADS:-1}
  export XLA_FLAGS=${XLA_FLAGS:-"--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"}
  # torch.compile's inductor compiles its C++ kernels in the process, not
  # in a pool of worker processes that each import torch (the same code;
  # the portability test's compiled training: 60.4 and 59.3 against 55.8
  # and 55.6 CPU s, back to back).
  export TORCHINDUCTOR_COMPILE_THREADS=${TORCHINDUCTOR_COMPILE_THREADS:-1}
else
  SPLIT=""
fi
# Test paths on the command line select the files themselves: no split.
for arg in "$@"; do
  case "$arg" in tests* | *.py | *::*) SPLIT="" ;; esac
done
# Python writes the bytecode of keras_reg and the tests (and pytest its
# rewritten test modules) once, and the other pytest processes and the
# tests' worker processes read it: with PYTHONDONTWRITEBYTECODE set, as on
# the build machines, each process compiled them again (collecting the
# suite: 6.6 against 4.2 CPU s). __pycache__ is in .gitignore.
unset PYTHONDONTWRITEBYTECODE
mkdir -p "$LOGS"
rm -f "$LOGS"/*.status
RUN_CACHE=""
if [ -z "${JAX_COMPILATION_CACHE_DIR:-}" ] && [ -n "$JAX_CACHE_PARTS" ]; then
  RUN_CACHE=$(mktemp -d "${TMPDIR:-/tmp}/keras_reg_jax_cache.XXXXXX")
  trap 'rm -rf "$RUN_CACHE"' EXIT
fi

parts_of() {
  # The parts of a split backend's run.
  case " $SPLIT_C " in
    *" $1 "*) echo "a b c" ;;
    *) echo "a b" ;;
  esac
}

# The jobs: "<backend>" for a whole run, "<backend>.a", ".b" (and ".c")
# for the parts of a split one.
jobs_list=()
for job in $ORDER $BACKENDS; do
  backend=${job%%.*}
  case " $BACKENDS " in *" $backend "*) ;; *) continue ;; esac
  case " $SPLIT " in
    *" $backend "*)
      [ "$job" = "$backend" ] && continue
      case " $(parts_of "$backend") " in *" ${job#*.} "*) ;; *) continue ;; esac
      ;;
    *) [ "$job" != "$backend" ] && continue ;;
  esac
  case " ${jobs_list[*]-} " in *" $job "*) continue ;; esac
  jobs_list+=("$job")
done
for backend in $BACKENDS; do
  case " $SPLIT " in
    *" $backend "*)
      for part in $(parts_of "$backend"); do
        case " ${jobs_list[*]} " in *" $backend.$part "*) ;; *) jobs_list+=("$backend.$part") ;; esac
      done
      ;;
  esac
done

part_args() {
  # The pytest arguments that select a job's files.
  local job=$1 file
  local backend=${job%%.*}
  case "$job" in
    *.a) for file in $PART_A_FILES; do echo "$file"; done ;;
    *.c) for file in $PART_C_FILES; do echo "$file"; done ;;
    *.b)
      for file in $PART_A_FILES; do echo "--ignore=$file"; done
      case " $(parts_of "$backend") " in
        *" c "*) for file in $PART_C_FILES; do echo "--ignore=$file"; done ;;
      esac
      ;;
  esac
}

run_one() {
  local job=$1
  shift
  local backend=${job%%.*}
  local log="$LOGS/$job.log"
  local start rc
  local -a selection=()
  mapfile -t selection < <(part_args "$job")
  local -a cache_env=()
  case " $JAX_CACHE_PARTS " in
    *" $job "*)
      if [ -n "$RUN_CACHE" ]; then
        cache_env=(JAX_COMPILATION_CACHE_DIR="$RUN_CACHE"
          JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0
          JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES=0)
      fi
      ;;
  esac
  start=$(date +%s)
  env "${cache_env[@]}" KERAS_BACKEND="$backend" "$PY" -m pytest -p no:cacheprovider \
    --durations=15 "${selection[@]}" "$@" >"$log" 2>&1
  rc=$?
  echo "$rc $(( $(date +%s) - start ))" >"$LOGS/$job.status"
}

if [ "$JOBS" -le 1 ]; then
  for job in "${jobs_list[@]}"; do
    echo "=== KERAS_BACKEND=${job%%.*} ==="
    run_one "$job" "$@"
    cat "$LOGS/$job.log"
  done
else
  # A simple pool: start up to $JOBS jobs, start the next when one ends.
  for job in "${jobs_list[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do
      wait -n
    done
    echo "=== started KERAS_BACKEND=${job%%.*} (${job}) ==="
    run_one "$job" "$@" &
  done
  wait
  for job in "${jobs_list[@]}"; do
    echo "=== KERAS_BACKEND=${job%%.*} (${job}) ==="
    cat "$LOGS/$job.log"
  done
fi

# One line per backend: its parts' counts added up. A part that selects no
# test (exit 5) is fine when the other part ran some; a backend whose every
# part ran none fails.
status=0
summary=()
for backend in $BACKENDS; do
  total_rc=0 any_ran=0 secs_list="" counts=""
  declare -A sums=()
  for job in "${jobs_list[@]}"; do
    [ "${job%%.*}" = "$backend" ] || continue
    read -r rc secs <"$LOGS/$job.status" || { rc=1; secs=0; }
    secs_list="$secs_list${secs_list:+ + }${secs}s"
    if [ "$rc" -eq 0 ]; then
      any_ran=1
    elif [ "$rc" -ne 5 ]; then
      total_rc=$rc
    fi
    last=$(grep -E '(passed|failed|error|no tests ran)' "$LOGS/$job.log" | tail -n 1)
    for word in passed failed skipped xfailed xpassed error errors deselected warnings; do
      n=$(echo "$last" | grep -oE "[0-9]+ $word\b" | head -n 1 | cut -d' ' -f1)
      [ -n "$n" ] && sums[$word]=$(( ${sums[$word]:-0} + n ))
    done
  done
  for word in passed failed skipped xfailed xpassed error errors deselected warnings; do
    [ -n "${sums[$word]:-}" ] && counts="$counts${counts:+, }${sums[$word]} $word"
  done
  unset sums
  if [ "$total_rc" -eq 0 ] && [ "$any_ran" -eq 0 ]; then
    total_rc=5
    counts="no tests ran"
  fi
  if [ "$total_rc" -ne 0 ]; then
    status=1
    summary+=("$backend: FAILED (exit $total_rc, $secs_list) $counts")
  else
    summary+=("$backend: ok ($secs_list) $counts")
  fi
done
echo
echo "=== summary ==="
for line in "${summary[@]}"; do echo "$line"; done
exit $status
