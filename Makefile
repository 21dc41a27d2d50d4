# Sluice — the two commands a newcomer runs are `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
# Seconds each cargo-fuzz target runs during `make test`.
FUZZ_SECONDS ?= 60

.PHONY: test deps test-cargo test-fuzz test-bench-smoke bench bench-daemon fuzz demo clean

## make test: install what the tests need, then run every test: unit, property,
## simulation, the engine against the Linux kernel over TAP (needs root), a
## bounded fuzz run of every target, and a correctness smoke run of the benchmark.
test: deps test-cargo test-fuzz test-bench-smoke
	@echo "make test: all stages passed"

## System packages (iproute2, nftables, ...) and cargo-fuzz.
deps:
	@bash scripts/install-deps.sh

test-cargo:
	$(CARGO) test --workspace --release

test-fuzz:
	bash stack/fuzz/run.sh $(FUZZ_SECONDS)

test-bench-smoke:
	$(CARGO) run --release -p sluice-integration --bin sluice-bench -- --quick

## The full engine benchmark (Sluice vs smoltcp); writes bench/results/engine.md.
bench:
	$(CARGO) run --release -p sluice-integration --bin sluice-bench -- --out bench/results/engine.md

## The daemon benchmark (needs root): the HTTP test server on Sluice (AF_XDP)
## vs on kernel sockets, same topology and pinning, plus idle CPU and wake-up
## latency; writes bench/results/daemon.md.
bench-daemon: deps
	@command -v wrk >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null)
	$(CARGO) build --release -p sluice-daemon --bin sluice -p sluice-integration --bin sluice-server
	python3 scripts/bench-daemon.py --sluice $${CARGO_TARGET_DIR:-target}/release/sluice --server $${CARGO_TARGET_DIR:-target}/release/sluice-server --out bench/results/daemon.md

## Longer fuzzing: make fuzz FUZZ_SECONDS=600
fuzz:
	bash stack/fuzz/run.sh $(FUZZ_SECONDS)

## make demo: the Sluice daemon (AF_XDP, else TAP) and an HTTP server on vcl
## serve Linux clients in another namespace, clean and through 5% loss
## (nginx under the preload takes the server's place with issue 5).
demo:
	@bash scripts/demo.sh

clean:
	$(CARGO) clean

## make nginx-tests: nginx's behaviours under the preload vs the same nginx on
## the kernel, case by case (needs root); prints the table and each side's
## pass rate. `make test` runs the same suite (nginx-tests/tests/suite.rs).
.PHONY: nginx-tests
nginx-tests: deps
	$(CARGO) run --release -p sluice-nginx-tests --bin nginx-tests
