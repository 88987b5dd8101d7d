# The verbs people expect. Every target creates .venv (and node_modules for buf) on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt

.PHONY: run test lint format type imports buf-lint gen gen-check pytest bench lock clean

$(VENV)/.runtime: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) -e .
	touch $@

$(VENV)/.dev: $(VENV)/.runtime
	$(PIP) -e '.[dev]'
	touch $@

# `npm ci` rejects a lock file without every platform's optional binary, and the registry here
# records only Linux ones; `npm install --no-save` installs the pinned versions and changes nothing.
node_modules/.bin/buf: package.json package-lock.json
	npm install --no-audit --no-fund --no-save --loglevel=error
	touch $@

# promtool for the alert-rule tests (deploy/prometheus/rules.test.yml), from Debian's prometheus
# package, unpacked into the venv (scripts/install-promtool.sh).
$(VENV)/bin/promtool: | $(VENV)/.runtime
	scripts/install-promtool.sh $@

## run: start the gateway on its embedded defaults (mock provider, no Redis, no database)
run: $(VENV)/.runtime
	$(VENV)/bin/ai-gateway serve

## test: everything CI checks
test: lint type imports buf-lint gen-check pytest

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

type: $(VENV)/.dev
	$(VENV)/bin/mypy

## imports: the layers and boundaries in pyproject.toml (import-linter)
imports: $(VENV)/.dev
	$(VENV)/bin/lint-imports

buf-lint: $(VENV)/.dev node_modules/.bin/buf
	scripts/buf-lint.sh

gen: $(VENV)/.dev
	scripts/gen.sh

gen-check: $(VENV)/.dev
	scripts/check-gen.sh

# The Node client test needs node_modules (buf, protoc-gen-es, connect); the alert tests promtool.
pytest: $(VENV)/.dev node_modules/.bin/buf $(VENV)/bin/promtool
	$(VENV)/bin/pytest

## bench: the gateway vs. its ceiling (bare relays), calling the upstream directly, LiteLLM and Portkey (bench/README.md); BENCH_ARGS=--no-peers
bench: $(VENV)/.dev
	$(PY) -m bench $(BENCH_ARGS)

## lock: re-pin constraints.txt to what a fresh install of pyproject.toml resolves to now
lock:
	rm -rf .lockvenv && $(PYTHON) -m venv .lockvenv
	.lockvenv/bin/pip install --quiet -e '.[dev]'
	{ echo "# Exact versions tested; every install uses this file as pip constraints (make venv)."; \
	  echo "# Regenerate with 'make lock' after changing dependencies in pyproject.toml."; \
	  .lockvenv/bin/pip freeze --exclude-editable; } > constraints.txt
	rm -rf .lockvenv

clean:
	rm -rf $(VENV) node_modules .mypy_cache .ruff_cache .pytest_cache
