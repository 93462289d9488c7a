# hlm: `make demo` and `make test` are all a newcomer needs.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
HLM := $(VENV)/bin/hlm

# Find a Python >= 3.12 by itself: $(PYTHON) if given, then python3.13/3.12 on PATH,
# then pyenv's installed versions, then python3.
PYTHON_CANDIDATES := $(PYTHON) python3.14 python3.13 python3.12 \
	$(wildcard $(HOME)/.pyenv/versions/3.1[2-9]*/bin/python) \
	$(wildcard /root/.pyenv/versions/3.1[2-9]*/bin/python) \
	$(wildcard /usr/local/bin/python3.1[2-9]) python3
FIND_PY := for p in $(PYTHON_CANDIDATES); do \
	  if command -v $$p >/dev/null 2>&1 && PYENV_VERSION= $$p -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; then \
	    command -v $$p; exit 0; fi; done; exit 1

.PHONY: help venv demo test test-slow test-all lint bench sample-data clean

help:
	@echo "make demo       create .venv if needed, fit the cell-line sample model into results/demo"
	@echo "make test       create .venv if needed, run the default test suite"
	@echo "make test-slow  the slow sampling tests (real fits of every sample dataset)"
	@echo "make lint       ruff, and the import contracts in pyproject.toml (lint-imports)"

$(VENV)/.installed: pyproject.toml
	@py=$$($(FIND_PY)) || { echo "error: no Python >= 3.12 found (tried: $(PYTHON_CANDIDATES))." >&2; \
	  echo "hint:  install Python 3.12+ (e.g. 'pyenv install 3.12'), or run 'make PYTHON=/path/to/python3.12 ...'" >&2; exit 1; }; \
	echo "creating $(VENV) with $$py ($$($$py --version 2>&1))"; \
	$$py -m venv $(VENV) && \
	$(PY) -m pip install -q --upgrade pip && \
	$(PY) -m pip install -q -e '.[dev]' && touch $@

venv: $(VENV)/.installed

demo: venv
	rm -rf results/demo
	$(HLM) fit sample_data/cell_lines.csv --config configs/cell_lines.toml --out results/demo

# make test runs the test files on up to 4 worker processes (pytest-xdist, one file per
# worker at a time: module fixtures are shared within a file); TEST_WORKERS=1 runs them in
# this process. Measured on 2 cores with both busy: 7 min 49 s against 11 min 02 s serially.
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ $$n -gt 4 ] && n=4; [ $$n -lt 1 ] && n=1; echo $$n)

test: venv
	$(PY) -m pytest -q $(if $(filter 1,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)

test-slow: venv
	$(PY) -m pytest -q -m slow

test-all: venv
	$(PY) -m pytest -q -m ''

lint: venv
	$(VENV)/bin/ruff check hlm_cli tests
	$(VENV)/bin/lint-imports --no-cache

sample-data: venv
	$(PY) sample_data/make_sample_data.py

clean:
	rm -rf $(VENV) results

bench: venv
	$(PY) benchmarks/bench_vs_brms.py
