# One command each does all set-up on a fresh machine: `make demo`, `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.demo-installed

AZURITE := .tools/node_modules/.bin/azurite-table

.PHONY: demo test lint typecheck bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[aws,gcp,azure,cli,infra,dev]'
	touch $(STAMP) $(DEMO_STAMP)

# The demo needs only the runtime and local extras, so a fresh `make demo` skips Pulumi's providers.
$(DEMO_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[aws,gcp,azure,cli]'
	touch $(DEMO_STAMP)

# Three cells (AWS, GCP, Azure) and the billing home; a cloud whose stand-in cannot run here (no
# Java and gcloud's Firestore emulator, no npm for Azurite) is replaced by an AWS cell, and said so.
demo: $(DEMO_STAMP) $(AZURITE)
	$(BIN)/meterline demo

# Azurite (Azure Tables stand-in) comes from npm; without npm its tests skip and say why.
$(AZURITE):
	@if command -v npm >/dev/null; then \
		npm install --silent --no-audit --no-fund --prefix .tools azurite@3; \
	else echo "npm not found: the Azure Tables contract tests will skip"; fi

test: $(STAMP) $(AZURITE)
	$(BIN)/ruff check shared functions infra tests
	$(BIN)/mypy
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/meterline bench

clean:
	rm -rf $(VENV) .tools out .pytest_cache .mypy_cache .ruff_cache .hypothesis
