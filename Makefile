# Two commands matter: `make demo` and `make test`. Both set up everything they need on a
# fresh Debian machine: the virtualenv, Debian's docker.io, and the private Docker engine
# (its own socket, data-root and swarm port; the host's Docker is never touched).

PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv engine engine-stop lint test demo bench clean

$(STAMP): setup.cfg pyproject.toml
	$(PY) -m venv $(VENV) || { apt-get update -qq && apt-get install -y -qq python3-venv && $(PY) -m venv $(VENV); }
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

venv: $(STAMP)

engine:
	$(PY) -m harness start

engine-stop:
	$(PY) -m harness stop

lint: venv
	$(BIN)/ruff check ccci tests harness benchmarks demo
	$(BIN)/mypy ccci
	$(BIN)/mypy --explicit-package-bases tests/unit

test: venv engine lint
	$(BIN)/python -m pytest -q

demo: venv engine
	$(BIN)/python -m demo

bench: venv engine
	$(BIN)/python benchmarks/plan_scale.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache .ruff_cache
