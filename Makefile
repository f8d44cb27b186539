# verge's entry points. `make run` and `make test` install what they need first.
.PHONY: run test bench instructions setup

# Run verge: the bundled example in front of the built-in demo origin, or pass a config:
#   make run ARGS="serve --config verge.toml"
run: setup
	cargo run --release --bin verge -- $(ARGS)

# Everything CI runs: format check, clippy with warnings denied, every test, benches compiled.
# Backtraces on: a failure says where, and the memory-ceiling panic test needs the big report.
test: setup
	cargo fmt --all -- --check
	cargo clippy --release --workspace --all-targets -- -D warnings
	RUST_BACKTRACE=1 cargo test --release --workspace -- --skip runaway_matrix
	RUST_BACKTRACE=1 cargo test --release --test runaway -- --test-threads=1
	cargo bench --workspace --no-run

# The load benchmark (installs wrk, nginx and its njs module): verge vs the pingora floor and
# nginx + njs, plus the runaway stress test; a table appended to BENCHMARKS.md and
# target/bench/results.json. Quick smoke run: make bench BENCH_ROUNDS=1 BENCH_SECONDS=2 BENCH_WARMUP=1
bench: setup
	scripts/setup.sh wrk nginx libnginx-mod-http-js
	cargo bench --bench load

# Instructions per invocation by phase (callgrind; repeatable on a noisy machine).
instructions: setup
	scripts/instructions.sh

setup:
	scripts/setup.sh
