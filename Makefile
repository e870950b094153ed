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

# System tools the Molecule hosts need: debootstrap builds them, apt-ftparchive signs
# the test apt mirror. Installed only when missing (CI runs as root).
test-deps:
	@missing=""; \
	command -v debootstrap >/dev/null || missing="$$missing debootstrap"; \
	command -v apt-ftparchive >/dev/null || missing="$$missing apt-utils"; \
	command -v gpg >/dev/null || missing="$$missing gnupg"; \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

lint: setup
	$(BIN)/yamllint --strict .
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/ansible-lint

pytest: setup test-deps
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/pytest -p no:cacheprovider tests

test: setup test-deps lint pytest
