# Two entry points: `make bench` and `make test`. Both create .venv and install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian packages the ocr solver needs (tesseract's trained data); tesserocr's wheel brings the library.
SYSTEM_PACKAGES := tesseract-ocr tesseract-ocr-eng
# ...and the browser that the study app's test drives: Debian's chromium, through Python
# playwright (never `playwright install`, which would download a browser of its own).
TEST_PACKAGES := $(SYSTEM_PACKAGES) chromium

.PHONY: bench test install dev system clean

bench: install
	@$(MAKE) --no-print-directory system PACKAGES="$(SYSTEM_PACKAGES)"
	$(BIN)/captcha-bench run

test: dev
	@$(MAKE) --no-print-directory system PACKAGES="$(TEST_PACKAGES)"
	$(BIN)/python -m mypy captchas bench solvers
	$(BIN)/python -m pytest -q

install: $(VENV)/.installed
dev: $(VENV)/.installed-dev

PACKAGES ?= $(SYSTEM_PACKAGES)
system:
	@if dpkg -s $(PACKAGES) >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(PACKAGES) >/dev/null; \
	else \
		echo "note: cannot install $(PACKAGES) here (needs apt-get as root); the ocr solver and browser test will be skipped"; \
	fi

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
