# Two entry points: `make bench` and `make test`. Both create .venv and install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEFAULT_SET := results/datasets/default-medium-s7-n300

.PHONY: bench test install dev clean

bench: install
	$(BIN)/captcha-bench generate --preset medium --count 300 --seed 7 --workers 2 --out $(DEFAULT_SET) --reuse
	$(BIN)/captcha-bench verify $(DEFAULT_SET) --workers 2

test: dev
	$(BIN)/python -m mypy captchas bench solvers
	$(BIN)/python -m pytest -q

install: $(VENV)/.installed
dev: $(VENV)/.installed-dev

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

clean:
	rm -rf $(VENV) *.egg-info
