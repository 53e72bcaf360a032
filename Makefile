# aim: `make demo` sets everything up and runs the main job; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PLUGIN_PROJECTS := $(wildcard plugins/*/pyproject.toml examples/aim-plugin-*/pyproject.toml)
# The stamp's name changes with the set of projects, so adding a plugin reinstalls.
STAMP := $(VENV)/.installed-$(shell echo $(PLUGIN_PROJECTS) | cksum | cut -d' ' -f1)

.PHONY: install compile chromium test lint format demo e2e bench clean

install: $(STAMP)

$(STAMP): pyproject.toml $(PLUGIN_PROJECTS) Makefile
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "aim needs Python 3.10 or newer; set PYTHON=python3.x")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -qq --disable-pip-version-check \
		--config-settings editable_mode=compat \
		-e '.[test,serve]' $(foreach p,$(dir $(PLUGIN_PROJECTS)),-e $(p))
	@rm -f $(VENV)/.installed-*
	@touch $@

# Byte-compile our sources: this environment sets PYTHONDONTWRITEBYTECODE, so without
# it every command would compile aim from source again (pip does this for installs).
compile: install
	@$(BIN)/python -m compileall -q aim_core plugins examples scripts >/dev/null

# The dashboard's browser tests drive Debian's chromium (never a browser Playwright would
# download). Installed here when missing and apt-get is usable as root; otherwise those
# tests are skipped and say why.
CHROMIUM := /usr/bin/chromium
chromium:
	@if [ ! -x $(CHROMIUM) ] && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "installing Debian's chromium for the browser tests (apt-get)"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			chromium chromium-driver >/dev/null; } \
		|| echo "note: apt-get could not install chromium; the browser tests will be skipped"; \
	fi

test: compile chromium
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The performance budgets of ARCHITECTURE.md, as ratios measured in one run (a few
# minutes; not part of `make test`). BENCH_ARGS=--quick for fewer repetitions.
bench: compile
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

# The demo installs the pinned aider and claude code as `make e2e` does (cached under
# $AIM_E2E_CACHE, default ~/.cache/aim-e2e) and drives them against a local stub model;
# offline, it says so and runs without them.
demo: compile
	@PATH="$(CURDIR)/$(BIN):$$PATH" PYTHON=$(PYTHON) AIDER_VERSION=$(E2E_AIDER_VERSION) \
		CLAUDE_VERSION=$(E2E_CLAUDE_VERSION) $(BIN)/python scripts/demo.py

# End-to-end tests: the real aider, claude code, jules, codex, gemini-cli and opencode
# (pinned below) against loopback LLM and Jules API stubs. The programs are installed once under $AIM_E2E_CACHE (default
# ~/.cache/aim-e2e, outside the clone) and reused; then tests/e2e runs with them first on PATH.
E2E_AIDER_VERSION := 0.86.2
E2E_CLAUDE_VERSION := 2.1.332
E2E_JULES_VERSION := 0.1.42
E2E_CODEX_VERSION := 0.171.0
E2E_GEMINI_VERSION := 0.61.0
E2E_OPENCODE_VERSION := 1.18.33
E2E_VERSIONS := AIDER_VERSION=$(E2E_AIDER_VERSION) CLAUDE_VERSION=$(E2E_CLAUDE_VERSION) \
	JULES_VERSION=$(E2E_JULES_VERSION) CODEX_VERSION=$(E2E_CODEX_VERSION) \
	GEMINI_VERSION=$(E2E_GEMINI_VERSION) OPENCODE_VERSION=$(E2E_OPENCODE_VERSION)

e2e: compile
	@tools=$$($(E2E_VERSIONS) PYTHON=$(PYTHON) tests/e2e/install_tools.sh) && \
	PATH="$$tools:$(CURDIR)/$(BIN):$$PATH" AIM_E2E=1 $(E2E_VERSIONS) \
		$(BIN)/python -m pytest -q --durations=0 tests/e2e $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
