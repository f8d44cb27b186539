#!/bin/sh
# Instructions per request on the running proxy, per kind of thread, counted by callgrind: the
# proxy thread, the fast workers, the edge instances, everything else. Each row runs under
# valgrind behind the load benchmark's nginx origin, takes a warm-up, has its counters zeroed,
# then serves `wrk -c8` for a while with the load benchmark's fixed request (more than 1% of
# answers not 2xx/3xx fail the row); the dump after that window divided by the requests wrk
# made is the cost of one request. Callgrind counts user-space instructions, not the kernel's,
# and repeats on a noisy machine where timings do not.
#
# Usage: scripts/proxy-instructions.sh [ROW ...]   (default: pingora-bare verge-none verge-vr-rewrite)
# ROW is pingora-bare or a verge row of the load benchmark (verge-none, verge-noop,
# verge-vr-rewrite, verge-rewrite, verge-jwt, verge-edge-route, verge-4hooks). It uses the
# configurations and functions `make bench` writes into target/bench, the release binaries, and
# nginx, wrk and valgrind: run `make bench` (quick: BENCH_ROUNDS=1 BENCH_SECONDS=1) once first.
# SECONDS_MEASURED (default 10) sets the window. KEEP=DIR keeps each row's callgrind files in
# DIR/ROW for callgrind_annotate (the window's dump is the files named cg.*.1-*).
set -eu
cd "$(dirname "$0")/.."
for tool in valgrind callgrind_control wrk nginx python3; do
    command -v "$tool" >/dev/null || {
        echo "proxy-instructions: $tool is needed (make bench installs nginx and wrk; apt-get install valgrind)" >&2
        exit 1
    }
done
bench=target/bench
[ -f "$bench/origin/nginx.conf" ] && [ -f "$bench/verge-none.toml" ] || {
    echo "proxy-instructions: no $bench/ from the load benchmark; run make bench once first" >&2
    exit 1
}
[ -x target/release/verge ] || { echo "proxy-instructions: build first (cargo build --release)" >&2; exit 1; }
load=$(ls -t target/release/deps/load-* 2>/dev/null | grep -v '\.d$' | head -n 1 || true)
seconds=${SECONDS_MEASURED:-10}
work=$(mktemp -d)
pids=""
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

# Three free loopback ports: the origin's, the proxy's, the admin listener's.
ports=$(python3 -c 'import socket
s=[socket.socket() for _ in range(3)]
[x.bind(("127.0.0.1",0)) for x in s]
print(" ".join(str(x.getsockname()[1]) for x in s))')
origin_port=${ports%% *}; rest=${ports#* }; proxy_port=${rest%% *}; admin_port=${rest#* }

# The benchmark's origin on core 1, on its own port and files.
mkdir -p "$work/origin"
for d in body proxy fastcgi uwsgi scgi; do mkdir -p "$work/origin/$d"; done
sed -e "s#$PWD/$bench/origin#$work/origin#g" \
    -e "s#listen 127.0.0.1:[0-9]*#listen 127.0.0.1:$origin_port#" \
    "$bench/origin/nginx.conf" > "$work/origin/nginx.conf"
taskset -c 1 nginx -c "$work/origin/nginx.conf" -p "$work/origin" >/dev/null 2>&1 &
pids="$pids $!"

wait_for() {
    i=0
    until python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null; do
        i=$((i + 1))
        [ "$i" -lt 600 ] || { echo "proxy-instructions: nothing listens on port $1 after 60 s" >&2; exit 1; }
        sleep 0.1
    done
}
wait_for "$origin_port"

# The configurations name their functions by paths relative to their own folder.
cp "$bench"/*.js "$work/" 2>/dev/null || true

# The load benchmark's fixed request: its cookie, and the token the JWT row accepts (without
# it that row would count its 401 path).
[ -n "$load" ] || { echo "proxy-instructions: no load bench binary (cargo bench --bench load --no-run)" >&2; exit 1; }
fixed=$("$load" headers)
cookie=$(printf '%s\n' "$fixed" | grep '^Cookie: ')
authorization=$(printf '%s\n' "$fixed" | grep '^Authorization: ')
[ -n "$cookie" ] && [ -n "$authorization" ] || { echo "proxy-instructions: $load headers printed no fixed request" >&2; exit 1; }

[ $# -gt 0 ] || set -- pingora-bare verge-none verge-vr-rewrite
printf '%-18s %9s %11s %11s %11s %11s\n' row requests proxy fast edge other
for row in "$@"; do
    out="$work/cg-$row"
    mkdir -p "$out"
    if [ "$row" = pingora-bare ]; then
        taskset -c 0 valgrind --tool=callgrind --separate-threads=yes \
            --callgrind-out-file="$out/cg.%p" "$load" bare "127.0.0.1:$proxy_port" \
            "127.0.0.1:$origin_port" "$work/bare-access.log" >"$out/stdout" 2>"$out/stderr" &
    else
        [ -f "$bench/$row.toml" ] || { echo "proxy-instructions: no $bench/$row.toml" >&2; exit 1; }
        sed -e "s#^listen = \[.*\]#listen = [\"127.0.0.1:$proxy_port\"]#" \
            -e "s#^listen = \"127.*\"#listen = \"127.0.0.1:$admin_port\"#" \
            -e "s#url = \"http://127.0.0.1:[0-9]*\"#url = \"http://127.0.0.1:$origin_port\"#" \
            "$bench/$row.toml" > "$work/$row.toml"
        # Throttling off for the CloudFront Functions: under valgrind they run tens of times
        # slower, close to their budget, and a few overruns would throttle one for seconds, so
        # the window would count 503s. Off, an overrun costs one answer, and the count leaves
        # out only the throttle's own check (~0.2k instructions a request).
        python3 - "$work/$row.toml" <<'PY'
import re, sys
path = sys.argv[1]
parts = re.split(r"(?m)^(?=\[)", open(path).read())
for i, part in enumerate(parts):
    if part.startswith("[functions.") and 'runtime = "lambda-edge"' not in part:
        header, _, rest = part.partition("\n")
        parts[i] = header + "\nthrottle = false\n" + rest
open(path, "w").write("".join(parts))
PY
        # The edge router sends bucket b to the benchmark's origin port: point it at this one.
        sed -i "s/port = [0-9]*;/port = $origin_port;/" "$work/edge-route.js" 2>/dev/null || true
        taskset -c 0 valgrind --tool=callgrind --separate-threads=yes \
            --callgrind-out-file="$out/cg.%p" target/release/verge serve \
            --config "$work/$row.toml" >"$out/stdout" 2>"$out/stderr" &
    fi
    vg=$!
    pids="$pids $vg"
    wait_for "$proxy_port"
    taskset -c 1 wrk -t1 -c8 -d3s -H "$cookie" -H "$authorization" "http://127.0.0.1:$proxy_port/" >/dev/null
    callgrind_control -z "$vg" >/dev/null 2>&1
    taskset -c 1 wrk -t1 -c8 -d"${seconds}s" -H "$cookie" -H "$authorization" \
        "http://127.0.0.1:$proxy_port/" >"$out/wrk"
    requests=$(awk '/requests in/ {print $1}' "$out/wrk")
    callgrind_control -d "$vg" >/dev/null 2>&1
    kill "$vg"
    wait "$vg" 2>/dev/null || true
    # A count over error answers measures the error path, not the row. Under valgrind a
    # function now and then passes its budget (it runs tens of times slower): a few such
    # answers barely move the count and are reported; more than 1% fail the row.
    bad=$(awk '/Non-2xx/ {print $NF}' "$out/wrk")
    if [ -n "$bad" ]; then
        cp "$out/stdout" "$bench/proxy-instructions-$row.log"
        if [ $((bad * 100)) -gt "$requests" ]; then
            echo "proxy-instructions: $row answered $bad of $requests requests with a status other than 2xx/3xx; its log is $bench/proxy-instructions-$row.log (under valgrind a function runs tens of times slower, and one that passes its budget, at most 1 ms, fails: count such a function with make instructions)" >&2
            exit 1
        fi
        echo "proxy-instructions: note: $row answered $bad of $requests requests with a status other than 2xx/3xx (log: $bench/proxy-instructions-$row.log)" >&2
    fi
    # The dump after the window (part 1) has a file per thread; a thread's kind is told by the
    # functions it ran.
    proxy=0 fast=0 edge=0 other=0
    for f in "$out"/cg.*.1-*; do
        n=$(sed -n 's/^summary: *//p' "$f")
        if grep -qE 'fast_pool::work( |$)' "$f"; then fast=$((fast + n))
        elif grep -q 'edge_pool::run_instance' "$f"; then edge=$((edge + n))
        elif grep -q 'process_new_http' "$f"; then proxy=$((proxy + n))
        else other=$((other + n))
        fi
    done
    printf '%-18s %9d %11d %11d %11d %11d\n' "$row" "$requests" $((proxy / requests)) \
        $((fast / requests)) $((edge / requests)) $((other / requests))
    if [ -n "${KEEP:-}" ]; then
        mkdir -p "$KEEP/$row"
        cp "$out"/cg.* "$KEEP/$row/"
    fi
done
