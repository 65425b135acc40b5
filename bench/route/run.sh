#!/usr/bin/env bash
# The routing benchmark: new connections per second through `fdpass serve --handler http`
# with --policy route (the master peeks at each request head and routes by its key) against
# the same server with --policy round-robin (passed, no peeking), same workers, same load
# (fdp-load --check http: a GET with Connection: close per connection; with KEYS, the targets
# /0 .. /KEYS-1 in turn), alternating rounds in one run. Prints each round's rate and the
# master's own CPU per connection (its threads' schedstat over the round), then the medians,
# their ratios and the ceiling the master's cost implies: 10^6 / µs, the new connections per
# second one master core could route doing nothing else.
#
#   bench/route/run.sh [BUILD_DIR]      env: WORKERS ROUNDS DURATION CONNS THREADS KEY KEYS LOAD
#
# KEY is the route key (default http-path); KEYS the number of distinct targets (default 64;
# 0: every request asks for /, so http-path and http-host send everything to one worker).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$here/../lib.sh"

BUILD=${1:-build}
WORKERS=${WORKERS:-$(nproc)}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-3} # seconds of load per server and round
CONNS=${CONNS:-32}
THREADS=${THREADS:-1}
KEY=${KEY:-http-path}
KEYS=${KEYS:-64}
FDPASS=$BUILD/fdpass
LOAD=${LOAD:-$BUILD/bench/load/fdp-load} # LOAD: another build's client (an A/B of servers)

[ -x "$FDPASS" ] && [ -x "$LOAD" ] || { echo "build first: cmake --build $BUILD" >&2; exit 2; }
case $KEYS in '' | *[!0-9]*) echo "KEYS must be a number" >&2; exit 2 ;; esac
keys=()
[ "$KEYS" -gt 0 ] && keys=(--keys "$KEYS")
pass=() # round-robin passed by the master, as route is (a build's default may be kernel)
have_dispatch "$FDPASS" && pass=(--dispatch pass)

tmp=$(mktemp -d)
pids=()
cleanup() {
	for pid in "${pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	done
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# start NAME POLICY-ARGS...: a server on a port of its own; sets port_NAME and pid_NAME.
start() {
	local name=$1
	shift
	serve_http "$name" "${pass[@]}" "$@"
}

start rr --policy round-robin
start route --policy route --route-key "$KEY"

# round NAME: sets cps and mus (the master's µs per connection); exits on any error.
round() {
	local port=port_$1 pid=pid_$1 before after json=$tmp/round.json
	before=$(cpu_ns "${!pid}")
	"$LOAD" --check http -t "$THREADS" -c "$CONNS" -d "$DURATION" "${keys[@]}" --json \
		"127.0.0.1:${!port}" >"$json" ||
		{ cat "$json" >&2; echo "errors during the round against $1" >&2; exit 1; }
	after=$(cpu_ns "${!pid}")
	read -r cps mus <<<"$(awk -v cps="$(json_num "$json" cps)" \
		-v n="$(json_num "$json" completed)" -v ns=$((after - before)) \
		'BEGIN { printf "%.0f %.2f\n", cps, n ? ns / 1000 / n : 0 }')"
}

echo "workers $WORKERS, $ROUNDS rounds of ${DURATION} s, $CONNS connections, key $KEY," \
	"$KEYS targets; $(machine)"
printf '%-6s %14s %12s %14s %12s\n' round "round-robin/s" "master µs" "route/s" "master µs"
for r in $(seq 1 "$ROUNDS"); do
	round rr
	a=$cps am=$mus
	round route
	b=$cps bm=$mus
	echo "$a $am $b $bm" >>"$tmp/all"
	printf '%-6s %14s %12s %14s %12s\n' "$r" "$a" "$am" "$b" "$bm"
done
for col in 1 2 3 4; do
	med[col]=$(awk -v c=$col '{ print $c }' "$tmp/all" | median)
done
printf '%-6s %14s %12s %14s %12s\n' median "${med[1]}" "${med[2]}" "${med[3]}" "${med[4]}"
awk -v a="${med[1]}" -v am="${med[2]}" -v b="${med[3]}" -v bm="${med[4]}" 'BEGIN {
	printf "route / round-robin: rate %.3f, master CPU per connection %.3f\n", b / a, bm / am
	printf "one master core: round-robin %.0f, route %.0f new connections per second\n",
		(am > 0 ? 1e6 / am : 0), (bm > 0 ? 1e6 / bm : 0)
}'
