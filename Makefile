# hashrepro: two commands on a fresh machine (Python 3.11 + the package registries).
#   make book   set up .venv, run every chapter notebook with its embedded defaults, build the site
#   make test   set up .venv (and headless Chromium for the site test), run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.hashrepro-installed
PYTEST_ARGS ?=

.PHONY: setup runs book test test-fast test-unit browser sweep-help clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

setup: $(STAMP)

# Every chapter notebook once, with its own small defaults (embedded data, a few minutes each);
# results/local is not committed, so a tree with local edits may run them (the diff is saved there).
runs: setup
	$(BIN)/hashrepro sweep all --defaults --allow-dirty

book: runs
	$(BIN)/jupyter-book build book/ -W
	@echo "site: $(CURDIR)/_build/html/index.html"

# Debian's Chromium + ChromeDriver for the rendered-site test (only when missing; needs root).
browser:
	@bash .ci/install-browser.sh

# The chapter notebooks run under nbval at their smoke scale (HASHREPRO_NOTEBOOK_SCALE: a notebook's
# default scale only, never a -p scale); their default-scale runs are `make runs`/`make book`.
test: setup browser
	HASHREPRO_NOTEBOOK_SCALE=smoke $(BIN)/python -m pytest tests notebooks --nbval-lax --nbval-sanitize-with .ci/nbval-sanitize.cfg \
	  -p no:cacheprovider --durations=30 $(PYTEST_ARGS)

# Unit tests only (seconds to minutes): no notebooks, no site build.
test-fast: setup
	$(BIN)/python -m pytest tests -m "not slow" -p no:cacheprovider --durations=30 $(PYTEST_ARGS)

# The library's pieces only (tests/unit: codes, metrics, index, losses, records, claims; a few minutes).
test-unit: setup
	$(BIN)/python -m pytest tests/unit -p no:cacheprovider --durations=30 $(PYTEST_ARGS)

clean:
	rm -rf _build book/runs/local results/local
