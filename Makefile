# Two commands on a fresh machine (only Python 3.11+ and make needed):
#   make demo   set up .venv, plan the bundled sample city into out/sample/ and print the summary
#   make test   set up .venv with the test dependencies and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --disable-pip-version-check -q -c constraints.txt

.PHONY: demo test bench clean

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

test: $(VENV)/.test
	$(BIN)/python -m pytest

bench: $(VENV)/.test
	$(BIN)/python benchmarks/partition_bench.py --sizes S

clean:
	rm -rf $(VENV) out build *.egg-info .pytest_cache .hypothesis
