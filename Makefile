# mip6term — the two entry points are `make demo` and `make test`; each does its own set-up.
SHELL := /bin/bash
VENV := .venv
MIP6TERM := $(VENV)/bin/mip6term
PYTEST := $(VENV)/bin/pytest
# `make demo` runs the appliance VM (issue 5); `make demo GUEST=lite` the namespace guest
GUEST ?= vm

.PHONY: setup demo test test-unit test-netns lint bench clean

setup:
	@./scripts/setup.sh

demo: setup
	$(MIP6TERM) demo --guest $(GUEST)

lint: setup
	$(VENV)/bin/ruff check .

test-unit: setup
	$(PYTEST) -q -m "not netns and not vm" tests

test-netns: setup
	$(PYTEST) -q -m "netns" tests

# All tiers that exist: unit, then netns (needs root), then vm.
# pytest exits 5 when a tier selects no test (e.g. no vm tests yet): that is not a failure.
test: setup lint
	$(PYTEST) -m "not netns and not vm" tests || [ $$? -eq 5 ]
	$(PYTEST) -m "netns" tests || [ $$? -eq 5 ]
	$(PYTEST) -m "vm" tests || [ $$? -eq 5 ]

bench: setup
	$(VENV)/bin/python -m benchmarks

clean:
	-$(MIP6TERM) testbed down
	rm -rf $(VENV) .pytest_cache .ruff_cache
