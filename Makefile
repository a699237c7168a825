# keras_reg developer commands. `make test` works on a fresh machine:
# it creates .venv, installs the package with every backend, and runs the
# suite once per backend.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BACKENDS ?= jax tensorflow torch
JOBS ?= 2
BACKEND ?= tensorflow
PYTEST_ARGS ?=

# torch is pinned to the CPU wheel that ships on the build machines; a bare
# `torch` would pull a multi-GB CUDA build.
BACKEND_PKGS := tensorflow-cpu torch==2.13.0 jax

.PHONY: install test lint demo bench clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]" $(BACKEND_PKGS)
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	BACKENDS="$(BACKENDS)" JOBS=$(JOBS) PY=$(PY) bash tools/test_backends.sh $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check keras_reg tests examples benchmarks
	$(VENV)/bin/ruff format --check keras_reg tests examples benchmarks

demo: $(STAMP)
	KERAS_BACKEND=$(BACKEND) $(PY) -m examples.demo

bench: $(STAMP)
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .test-logs demo_output
