#!/usr/bin/env bash
# The install users do (`make check-dist`): builds the sdist and the wheel
# (`python -m build`: the wheel is built from the sdist), checks them with
# `twine check --strict`, installs the wheel into a fresh virtual
# environment in a temporary folder outside the clone, with the backends,
# and there trains one small model per backend (tools/dist_smoke.py).
#
# PY: the Python that has `build` and `twine` (the dev extra).
# BASE_PYTHON: the Python that makes the fresh environment.
# BACKENDS, BACKEND_PKGS: the backends to train on and the packages that
# install them (the Makefile passes its own).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
BASE_PYTHON=${BASE_PYTHON:-python3}
BACKENDS=${BACKENDS:-"jax tensorflow torch"}
BACKEND_PKGS=${BACKEND_PKGS:-"tensorflow-cpu torch==2.13.0 jax"}
start=$(date +%s)
# Seconds since the start, for the log: the install is most of the time.
elapsed() { echo "$(($(date +%s) - start))s"; }
work=$(mktemp -d "${TMPDIR:-/tmp}/keras_reg-dist.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "=== build (sdist, then the wheel from it) ==="
"$PY" -m build --outdir "$work/dist" . >"$work/build.log" 2>&1 || {
  cat "$work/build.log"
  exit 1
}
ls "$work/dist"
"$PY" -m twine check --strict "$work"/dist/*
echo "built and checked at $(elapsed)"

echo "=== install the wheel into a fresh venv in $work ==="
"$BASE_PYTHON" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --upgrade pip
# shellcheck disable=SC2086  # BACKEND_PKGS is a list of requirements
"$work/venv/bin/python" -m pip install --quiet "$work"/dist/*.whl $BACKEND_PKGS

echo "installed at $(elapsed)"

# Away from the clone: nothing of it is on the path there.
cp tools/dist_smoke.py "$work/"
cd "$work"
for backend in $BACKENDS; do
  KERAS_BACKEND=$backend TF_CPP_MIN_LOG_LEVEL=2 "$work/venv/bin/python" dist_smoke.py
done
echo "check-dist: ok ($(elapsed))"
