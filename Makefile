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

# Two pytest runs side by side, split by folder (tests/lanes.py); each prints its slowest tests.
pytest: setup test-deps
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python tests/lanes.py -p no:cacheprovider --durations=25

test: setup test-deps lint pytest
