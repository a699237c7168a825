#!/usr/bin/env bash
# The GPU checks of the recurrent fast paths (cuDNN), for a machine with an
# NVIDIA GPU and PyTorch and JAX installed (TensorFlow too, if present):
#   1. the fast-path tests, with TF32 off so that cuDNN must match the
#      portable loop to 1e-5;
#   2. `benchmarks/run.py --figures recurrent` on each backend, TF32 as
#      users get it, written to $OUT/RESULTS_gpu.md.
# Wheels in .whl/ (keras and what it needs) are installed first if present.
set -u
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
BACKENDS=${BACKENDS:-"torch jax"}
python3 -c "import tensorflow" 2>/dev/null && BACKENDS="$BACKENDS tensorflow"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
for b in $BACKENDS; do
  start=$(date +%s)
  filter="lstm or gru or rnn or cudnn or kernel"
  # JAX and TensorFlow fuse through Keras' kernels: LSTM (and TF's GRU).
  [ "$b" != torch ] && filter="lstm or cudnn or kernel"
  NVIDIA_TF32_OVERRIDE=0 JAX_DEFAULT_MATMUL_PRECISION=highest KERAS_BACKEND=$b \
    timeout 240 python3 -m pytest -q -p no:cacheprovider -o filterwarnings=ignore \
    tests/test_fast_paths.py -k "$filter" \
    >"$OUT/tests_$b.log" 2>&1
  echo "$b fast-path tests: rc=$? in $(( $(date +%s) - start ))s; $(tail -n 1 "$OUT/tests_$b.log")"
done
timeout "${BENCH_TIMEOUT:-420}" python3 benchmarks/run.py --figures recurrent \
  --backends $BACKENDS --output "$OUT/RESULTS_gpu.md" 2>&1 | tail -n 40
