# Two commands: `make run` (try it) and `make test` (prove it). See README.md.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# pytest-xdist workers for `make test`, each with its own test database.
TEST_WORKERS ?= auto
# Compute threads per test process (torch, numpy, scikit-learn). Two workers on two
# cores with torch's default of a thread per core spend much of their time waiting on
# each other: a head-training test took 34 s with two threads and 18 s with one.
TEST_THREADS ?= 1

.PHONY: run test install install-dev lint demo-data services bench-load mutation

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed-run

install: $(VENV)/.installed-run
install-dev: $(VENV)/.installed-dev

run: $(VENV)/.installed-run
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/python manage.py ensure_admin
	$(BIN)/python manage.py ticks_arm
	HOST=$(HOST) PORT=$(PORT) scripts/serve.sh

# Installs PostgreSQL, Chromium and Fashion-MNIST from Debian if missing, starts
# PostgreSQL, and runs the whole suite against it (browser tests included).
test: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@url=$$(scripts/test-services.sh) && \
	DATABASE_URL=$$url OMP_NUM_THREADS=$(TEST_THREADS) MKL_NUM_THREADS=$(TEST_THREADS) \
	$(BIN)/pytest -n $(TEST_WORKERS) --durations=25 $(PYTEST_ARGS)

services:
	scripts/test-services.sh

demo-data:
	scripts/test-services.sh >/dev/null

# 50 annotators against 100,000 images on the local PostgreSQL (see README, Benchmarks).
bench-load: $(VENV)/.installed-run
	@url=$$(scripts/test-services.sh) && \
	DATABASE_URL=$$url $(BIN)/python manage.py migrate --noinput --verbosity 0 && \
	DATABASE_URL=$$url $(BIN)/python manage.py bench_load --json bench_load.json $(BENCH_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Mutation testing (docs/mutation.md): mutmut over the learner's logic and the queue,
# split and archive code with the quick tests that cover them; prints `mutation score:
# K of N killed` and the survivors. Not part of `make test`: half an hour or more.
mutation: $(VENV)/.installed-dev
	@url=$$(scripts/test-services.sh) && \
	DATABASE_URL=$$url nice -n 10 $(BIN)/python scripts/mutation.py $(MUTATION_ARGS)
