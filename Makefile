# keras_reg developer commands. `make test` works on a fresh machine:
# it creates .venv, installs the package with every backend, and runs the
# suite once per backend.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DOCS_STAMP := $(VENV)/.docs-installed
BACKENDS ?= jax tensorflow torch
JOBS ?= 2
BACKEND ?= tensorflow
PYTEST_ARGS ?=

# torch is pinned to the CPU wheel that ships on the build machines; a bare
# `torch` would pull a multi-GB CUDA build.
BACKEND_PKGS := tensorflow-cpu torch==2.13.0 jax

.PHONY: install active-learning test test-fast test-oldest check-dist lint demo bench docs docs-serve clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]" $(BACKEND_PKGS)
	touch $(STAMP)

install: $(STAMP)

# The full suite, `slow` cases included (what CI and the README run).
test: $(STAMP)
	BACKENDS="$(BACKENDS)" JOBS=$(JOBS) PY=$(PY) bash tools/test_backends.sh $(PYTEST_ARGS)

# The inner loop: every case not marked `slow` (cross-backend subprocesses,
# multi-process launches, XLA and torch.compile, the demo reruns), on three
# backends. Not a substitute for `make test` before a commit is shared.
# JAX keeps its compiled programs in .cache/jax between runs (JAX's
# persistent compilation cache): a second run of the JAX-eager files costs
# about a quarter of the first. `make test`, which CI runs on a fresh
# clone, gives its JAX runs a cache of their own, fresh and removed after
# (tools/test_backends.sh).
JAX_CACHE := $(CURDIR)/.cache/jax

test-fast: $(STAMP)
	JAX_COMPILATION_CACHE_DIR=$(JAX_CACHE) JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0 \
	BACKENDS="$(BACKENDS)" JOBS=$(JOBS) PY=$(PY) bash tools/test_backends.sh -m "not slow" $(PYTEST_ARGS)

# The suite on the oldest Keras that pyproject declares (`keras>=`), on
# torch, in its own venv: the range users may install is the range tested.
OLDEST_VENV := .venv-oldest
OLDEST_PY := $(OLDEST_VENV)/bin/python
OLDEST_STAMP := $(OLDEST_VENV)/.installed

$(OLDEST_STAMP): pyproject.toml Makefile
	test -x $(OLDEST_PY) || $(PYTHON) -m venv $(OLDEST_VENV)
	$(OLDEST_PY) -m pip install --quiet --upgrade pip
	$(OLDEST_PY) -m pip install --quiet -e ".[dev]" "$$($(PYTHON) tools/oldest_keras.py)" torch==2.13.0
	touch $(OLDEST_STAMP)

test-oldest: $(OLDEST_STAMP)
	KERAS_BACKEND=torch $(OLDEST_PY) -c "import keras; print('keras', keras.__version__)"
	BACKENDS=torch JOBS=1 LOGS=.test-logs/oldest PY=$(OLDEST_PY) bash tools/test_backends.sh $(PYTEST_ARGS)

# The install users do: build and check the sdist and the wheel, install
# the wheel into a fresh venv outside the clone, train a model per backend.
check-dist: $(STAMP)
	PY=$(PY) BASE_PYTHON=$(PYTHON) BACKEND_PKGS="$(BACKEND_PKGS)" bash tools/check_dist.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check keras_reg tests examples benchmarks docs tools
	$(VENV)/bin/ruff format --check keras_reg tests examples benchmarks docs tools

demo: $(STAMP)
	KERAS_BACKEND=$(BACKEND) $(PY) -m examples.demo

# The active-learning experiment in full (5 methods x 5 seeds; each run's
# curve is cached in demo_output/active_learning/ and reused).
active-learning: $(STAMP)
	KERAS_BACKEND=$(BACKEND) $(PY) -m examples.active_learning --full --output-dir demo_output

bench: $(STAMP)
	$(PY) benchmarks/run.py
	$(PY) benchmarks/run.py --timings

# The docs tools only (the `docs` extra): the API reference is read from the
# source, so the site builds without keras_reg or a backend installed.
$(DOCS_STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) tools/extra_requirements.py docs > $(VENV)/docs-requirements.txt
	$(PY) -m pip install --quiet -r $(VENV)/docs-requirements.txt
	touch $(DOCS_STAMP)

# --strict: any warning (a broken link or reference, a docstring that does
# not parse) fails the build.
docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site
	$(PY) tools/check_site_links.py site

# The site at http://127.0.0.1:8000/, rebuilt on every change (site/ also
# browses from files: open site/index.html).
docs-serve: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve

clean:
	rm -rf $(VENV) $(OLDEST_VENV) .pytest_cache .ruff_cache .test-logs .cache demo_output site
