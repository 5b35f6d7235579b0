# peakready — every target sets up what it needs on a fresh Debian 12 machine.
SHELL := /bin/bash
PYTHON ?= /usr/bin/python3
VENV := .venv
BIN := $(VENV)/bin
STACK ?= dev
REPORT_DIR ?= reports/latest

# Debian packages the lab runs (DESIGN §5, LAB-NOTES): servers and tools. Debian's
# patroni (3.0.2) is only for the lab.binaries override test: the lab runs Patroni 4
# from PyPI (LAB-NOTES: 3.0.2 with etcd3 split-brains).
APT_PACKAGES := postgresql-15 postgresql-client-15 redis-server redis-sentinel haproxy \
	sphinxsearch etcd-server pgbackrest python3-venv python3-dev util-linux procps iproute2 \
	patroni prometheus prometheus-alertmanager prometheus-postgres-exporter \
	prometheus-redis-exporter prometheus-node-exporter prometheus-blackbox-exporter \
	rabbitmq-server

.PHONY: setup apt venv test test-fast lint drill bench clean lab-down

setup: apt venv

# Install only what is missing; apt starts no services here (no init system).
apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "make: installing Debian packages:" $$missing; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# Debian's python3 (not a per-user interpreter): Patroni runs as the postgres user
# from this virtualenv, so the interpreter must be readable by that user.
venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

# pytest exits 5 when it collected nothing: say so, and fail (a suite that ran no test passed nothing).
test: setup
	@$(BIN)/pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make: pytest collected no tests" >&2; fi; \
	exit $$rc

test-fast: setup
	$(BIN)/pytest -m "not lab"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/yamllint -s stacks chaos playbooks .github
	cd playbooks && ../$(BIN)/ansible-lint -q

drill: setup
	$(BIN)/peakready drill --target lab --stack $(STACK) --report-dir $(REPORT_DIR)

bench: setup
	$(BIN)/python -m peakready.bench

lab-down:
	-$(BIN)/peakready lab down --stack $(STACK)

clean: lab-down
	rm -rf $(VENV) .lab reports .pytest_cache .mypy_cache .ruff_cache
