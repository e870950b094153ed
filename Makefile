# The two entry points the README names:
#   make run TIER=single   install into .venv, then provision this machine (inventories/local)
#   make test              install into .venv, then lint and run every test (what .ci/run calls)
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TIER ?= auto
ARGS ?=

.PHONY: setup run plan test test-deps lint pytest

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.txt
	touch $@

run: setup
	$(BIN)/ansible-playbook site.yml -e tier=$(TIER) $(ARGS)

plan: setup
	$(BIN)/ansible-playbook playbooks/plan.yml -e tier=$(TIER) $(ARGS)

# Everything the tests need beyond .venv: Debian packages (tests/deps/apt-packages.txt) and
# the engines each tests/deps/step_*.py installs and caches. Idempotent; CI runs as root.
test-deps:
	$(PYTHON) tests/deps/install.py

lint: setup
	$(BIN)/yamllint --strict .
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/ansible-lint

pytest: setup test-deps
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/pytest -p no:cacheprovider --durations=40 tests

test: setup test-deps lint pytest
