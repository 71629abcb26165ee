# Everything the project needs is installed from here, on a bare machine, into .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint demo clean chromium screenshot bench
# The browser tests (tests/browser) drive Debian's chromium through playwright; playwright's
# own browser download does not work here, so `playwright install` is never run.
CHROMIUM ?= /usr/bin/chromium

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  echo "python3-venv is missing; installing it with apt-get"; \
	  apt-get update -qq && apt-get install -y -qq python3-venv python3-pip && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

test: $(STAMP) chromium
	$(BIN)/python -m pytest

# If apt cannot install it, carry on: the browser tests then skip (or fail under CI) and say why.
chromium:
	@test -x $(CHROMIUM) || { echo "chromium is missing; installing it with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
	  || echo "could not install chromium: the browser tests will report it"; }

# Refresh docs/demo.png, the README's screenshot, from the browser story test.
screenshot: $(STAMP) chromium
	GATEWAY_UPDATE_SCREENSHOT=1 GATEWAY_TEST_REQUIRE_BROWSER=1 \
	  $(BIN)/python -m pytest -q tests/browser/test_demo_story.py -k demo_story

lint: $(STAMP)
	$(BIN)/ruff check gateway tests examples bench
	$(BIN)/mypy --strict gateway

demo: $(STAMP)
	$(BIN)/gateway demo

# The load benchmark (issue 7): installs wrk, nginx and haproxy with apt-get when missing, pins
# the system under test to core 0 and the load to core 1, writes bench/RESULTS.md. Not a test.
bench: $(STAMP)
	bench/run.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
