# Sluice — the two commands a newcomer runs are `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
# Seconds each cargo-fuzz target runs during `make test`.
FUZZ_SECONDS ?= 60

.PHONY: test deps test-cargo test-fuzz test-bench-smoke bench bench-engine bench-report bench-daemon fuzz demo clean

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

## make bench (needs root): the engine benchmark (Sluice vs smoltcp,
## bench/results/engine.md), then the report: nginx, redis and echo RPC
## latency on Sluice (AF_XDP daemon, servers under the preload) vs on the
## kernel, same run, same pinning: bench/results/report.md and its PNG charts.
## make bench BENCH_ARGS=--quick: the report's short smoke run.
BENCH_ARGS ?=
# Debian's python, which has apt's matplotlib (a pyenv python3 first on
# PATH would not).
BENCH_PYTHON ?= /usr/bin/python3
BENCH_BIN = $${CARGO_TARGET_DIR:-target}/release
bench: deps bench-engine bench-report

bench-engine:
	$(CARGO) run --release -p sluice-integration --bin sluice-bench -- --out bench/results/engine.md

bench-report: deps
	$(CARGO) build --release -p sluice-daemon --bin sluice -p sluice-preload --lib -p sluice-integration --bin sluice-server
	$(BENCH_PYTHON) scripts/bench-report.py --sluice $(BENCH_BIN)/sluice --server $(BENCH_BIN)/sluice-server --out-dir bench/results $(BENCH_ARGS)

## The daemon benchmark (needs root): the HTTP test server on Sluice (AF_XDP)
## vs on kernel sockets, same topology and pinning, plus idle CPU and wake-up
## latency; writes bench/results/daemon.md.
bench-daemon: deps
	$(CARGO) build --release -p sluice-daemon --bin sluice -p sluice-integration --bin sluice-server
	python3 scripts/bench-daemon.py --sluice $(BENCH_BIN)/sluice --server $(BENCH_BIN)/sluice-server --out bench/results/daemon.md

## Longer fuzzing: make fuzz FUZZ_SECONDS=600
fuzz:
	bash stack/fuzz/run.sh $(FUZZ_SECONDS)

## make demo: unmodified nginx (master + 2 workers) under the preload on the
## Sluice daemon (AF_XDP, else TAP) serves Linux clients in another
## namespace, clean and through 5% loss; everything is torn down at the end.
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
