# aim: `make demo` sets everything up and runs the main job; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PLUGIN_PROJECTS := $(wildcard plugins/*/pyproject.toml examples/aim-plugin-*/pyproject.toml)
# The stamp's name changes with the set of projects, so adding a plugin reinstalls.
STAMP := $(VENV)/.installed-$(shell echo $(PLUGIN_PROJECTS) | cksum | cut -d' ' -f1)

.PHONY: install test lint format demo e2e bench clean

install: $(STAMP)

$(STAMP): pyproject.toml $(PLUGIN_PROJECTS) Makefile
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "aim needs Python 3.10 or newer; set PYTHON=python3.x")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -qq --disable-pip-version-check \
		-e '.[test]' $(foreach p,$(dir $(PLUGIN_PROJECTS)),-e $(p))
	@rm -f $(VENV)/.installed-*
	@touch $@

test: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

demo: install
	@PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python scripts/demo.py

clean:
	rm -rf $(VENV) build *.egg-info
