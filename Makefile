# `make repro`: install into .venv and run the whole pipeline; `make test`: install and test.
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install repro test test-fast bench lint deps

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

repro: install
	dvc repro

test: install
	$(BIN)/pytest -q --durations=30

test-fast: install
	$(BIN)/pytest -q -m "not slow"

deps: install
	$(BIN)/python -m tests.dag --write

bench: install
	$(BIN)/python benchmarks/run.py

lint: install
	$(BIN)/ruff check pipelines tests benchmarks
