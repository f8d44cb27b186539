#!/bin/sh
# Instructions per invocation, by phase, counted by callgrind (repeatable on a noisy machine).
# Each phase runs at two iteration counts; the difference divided by the extra iterations is the
# per-invocation count (loading the function and starting the pool cancel out). Counts cover
# every thread (--trace-children is not needed: the pool's workers are threads).
# Usage: scripts/instructions.sh   (builds the bench binary in release first)
# VERGE_REQUEST=load scripts/instructions.sh measures the load benchmark's request (see
# benches/support/invocations.rs).
set -eu
command -v valgrind >/dev/null || { echo "instructions: valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
cd "$(dirname "$0")/.."
cargo bench --bench instructions --no-run 2>/dev/null
bin=$(ls -t target/release/deps/instructions-* | grep -v '\.d$' | head -n 1)
low=${LOW:-200}
high=${HIGH:-1200}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
count() {
    VERGE_PHASE=$1 VERGE_ITERATIONS=$2 valgrind --tool=callgrind --callgrind-out-file="$out/cg" "$bin" >/dev/null 2>"$out/log"
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$out/log"
}
printf '%-34s %14s\n' phase instructions/invocation
for f in noop security_headers ab_rewrite jwt; do
    for p in marshal_in call marshal_out pool_round_trip; do
        a=$(count "$f/$p" "$low")
        b=$(count "$f/$p" "$high")
        printf '%-34s %14d\n' "$f/$p" $(( (b - a) / (high - low) ))
    done
done
for p in edge_noop/call edge_noop/pool_round_trip edge_route/call edge_response_header/call; do
    a=$(count "$p" "$low")
    b=$(count "$p" "$high")
    printf '%-34s %14d\n' "$p" $(( (b - a) / (high - low) ))
done
# A whole context load (a worker's start, a reload, the clean-up after a runaway; at the edge a
# cold start): millions of instructions each, so a few suffice.
for f in noop edge_noop; do
    a=$(count "$f/load" 2)
    b=$(count "$f/load" 12)
    printf '%-34s %14d\n' "$f/load" $(( (b - a) / 10 ))
done
