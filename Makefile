# Two commands on a fresh machine (only Python 3.11+ and make needed):
#   make demo   set up .venv, plan the bundled sample city into out/sample/ and print the summary
#   make test   set up .venv with the test dependencies (and Debian's chromium for the browser tests),
#               lint with ruff, type-check the public API with mypy and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --disable-pip-version-check -q -c constraints.txt

# root installs system packages directly; anyone else through sudo
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test bench clean chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.base: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) -e .
	touch $@

$(VENV)/.test: $(VENV)/.base
	$(PIP) -e '.[test]'
	touch $@

demo: $(VENV)/.base
	$(BIN)/gridengine plan --customers data/sample/customers.csv --specialists data/sample/specialists.csv \
	    --service-area data/sample/service_area.geojson --out out/sample --force

# The browser tests drive Debian's Chromium (/usr/bin/chromium); Playwright never downloads a browser.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	    $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver \
	    || { $(SUDO) apt-get update -qq && \
	         $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver; }; }

test: $(VENV)/.test chromium
	$(BIN)/ruff check gridengine tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest

bench: $(VENV)/.test
	$(BIN)/python benchmarks/partition_bench.py --sizes S

clean:
	rm -rf $(VENV) out build *.egg-info .pytest_cache .hypothesis .mypy_cache
