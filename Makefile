# Sluice — the two commands a newcomer runs are `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: test unit deps check-fmt demo bench clean

## make test: install what the tests need, then run every test.
test: deps
	$(CARGO) test --workspace --release

## Build tools and system packages the tests use.
deps:
	@bash scripts/install-deps.sh

clean:
	$(CARGO) clean
