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

.PHONY: install test lint demo bench docs docs-serve clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]" $(BACKEND_PKGS)
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	BACKENDS="$(BACKENDS)" JOBS=$(JOBS) PY=$(PY) bash tools/test_backends.sh $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check keras_reg tests examples benchmarks docs tools
	$(VENV)/bin/ruff format --check keras_reg tests examples benchmarks docs tools

demo: $(STAMP)
	KERAS_BACKEND=$(BACKEND) $(PY) -m examples.demo

bench: $(STAMP)
	$(PY) benchmarks/run.py

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
	rm -rf $(VENV) .pytest_cache .ruff_cache .test-logs demo_output site
