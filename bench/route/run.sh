#!/bin/sh
# The routing benchmark: new connections per second through `fdpass serve --handler http`
# with --policy route (the master peeks at each request head and routes by its Host header)
# against the same server with --policy round-robin (no peeking), same workers, same load
# (fdp-load --check http: a GET with Connection: close per connection), alternating rounds in
# one run. Prints each round and the ratio of the medians.
#
#   bench/route/run.sh [BUILD_DIR]      env: WORKERS ROUNDS SECONDS CONNS THREADS KEY
set -eu

BUILD=${1:-build}
WORKERS=${WORKERS:-$(nproc)}
ROUNDS=${ROUNDS:-5}
SECONDS_=${SECONDS:-3}
CONNS=${CONNS:-32}
THREADS=${THREADS:-1}
KEY=${KEY:-http-host}
FDPASS=$BUILD/fdpass
LOAD=$BUILD/bench/load/fdp-load
PORT_RR=${PORT_RR:-18490}
PORT_ROUTE=${PORT_ROUTE:-18491}

[ -x "$FDPASS" ] && [ -x "$LOAD" ] || { echo "build first: cmake --build $BUILD" >&2; exit 2; }

cleanup() {
	for pid in ${RR_PID:-} ${ROUTE_PID:-}; do
		kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	done
	true
}
trap cleanup EXIT INT TERM

"$FDPASS" serve --handler http --workers "$WORKERS" --listen "127.0.0.1:$PORT_RR" \
	--policy round-robin --control none --log-level warn &
RR_PID=$!
"$FDPASS" serve --handler http --workers "$WORKERS" --listen "127.0.0.1:$PORT_ROUTE" \
	--policy route --route-key "$KEY" --control none --log-level warn &
ROUTE_PID=$!
for port in $PORT_RR $PORT_ROUTE; do
	"$LOAD" --check http -c 1 -n 1 -m 10 "127.0.0.1:$port" >/dev/null ||
		{ echo "server on $port did not answer" >&2; exit 1; }
done

# One round: connections per second, failing loudly on any error.
round() {
	out=$("$LOAD" --check http -t "$THREADS" -c "$CONNS" -d "$SECONDS_" --json "127.0.0.1:$1") || {
		echo "$out" >&2
		echo "errors during the round on port $1" >&2
		exit 1
	}
	echo "$out" | sed -n 's/.*"cps":\([0-9.]*\).*/\1/p'
}

median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

echo "workers $WORKERS, $ROUNDS rounds of ${SECONDS_} s, $CONNS connections, key $KEY, $(nproc) CPUs"
printf '%-6s %14s %14s\n' round round-robin route
rr_all="" route_all=""
for r in $(seq 1 "$ROUNDS"); do
	a=$(round $PORT_RR)
	b=$(round $PORT_ROUTE)
	rr_all="$rr_all $a"
	route_all="$route_all $b"
	printf '%-6s %14s %14s\n' "$r" "$a" "$b"
done
rr_med=$(echo "$rr_all" | tr ' ' '\n' | grep . | median)
route_med=$(echo "$route_all" | tr ' ' '\n' | grep . | median)
printf '%-6s %14s %14s\n' median "$rr_med" "$route_med"
awk -v a="$rr_med" -v b="$route_med" 'BEGIN {printf "route / round-robin: %.3f\n", b / a}'
