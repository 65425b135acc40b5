#!/usr/bin/env bash
# Routing past one core: `fdpass serve --handler http --policy route` with the master routing
# alone (--dispatchers 0) and with 1, 2 (and DISPATCHERS...) dispatcher processes, same workers,
# same load (fdp-load --check http, Connection: close, KEYS targets), alternating rounds in
# one run. For each: the rate, the master's own CPU per connection, the dispatchers' (all of
# them together), and the ceiling the routing cost implies for one core.
#
# A machine of 2 cores cannot show a second routing core paying: the load client and the
# workers already use both (docs/BENCHMARKS.md, "Several dispatchers"). With CAP set, a second
# part runs the same servers with every routing process (the master when it routes alone,
# else each dispatcher) held to CAP percent of one core by a CPU cgroup of its own (cgroup v1
# cpu.cfs_quota_us, or v2 cpu.max, over 5 ms periods; root only), an attempt at making
# routing what limits the rate, as on a machine with many cores and one master. Skipped, with
# a note, where no cgroup can be made.
#
#   bench/route/dispatchers.sh [BUILD_DIR]   env: WORKERS ROUNDS DURATION CONNS KEYS
#                                                DISPATCHERS ("1 2") CAP (unset: no capped part)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$here/../lib.sh"

BUILD=${1:-build}
WORKERS=${WORKERS:-$(nproc)}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-3}
CONNS=${CONNS:-32}
KEYS=${KEYS:-64}
CAP=${CAP:-}
DISPATCHERS=${DISPATCHERS:-1 2}
FDPASS=$BUILD/fdpass
LOAD=${LOAD:-$BUILD/bench/load/fdp-load}

[ -x "$FDPASS" ] && [ -x "$LOAD" ] || { echo "build first: cmake --build $BUILD" >&2; exit 2; }
"$FDPASS" serve --dispatchers 1 --help >/dev/null 2>&1 ||
	{ echo "this fdpass has no --dispatchers" >&2; exit 2; }

tmp=$(mktemp -d)
pids=()
groups=()
cleanup() {
	for pid in "${pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	done
	for g in "${groups[@]}"; do
		rmdir "$g" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# A CPU cgroup ($1: a name) holding CAP % of one core: prints its directory, or fails.
cgroup_make() {
	local g
	if [ -w /sys/fs/cgroup/cpu ] && [ -f /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]; then
		g=/sys/fs/cgroup/cpu/fdp-bench-$$-$1
		mkdir "$g" 2>/dev/null || return 1
		groups+=("$g")
		echo 5000 >"$g/cpu.cfs_period_us" && echo $((CAP * 50)) >"$g/cpu.cfs_quota_us" ||
			return 1
	elif [ -w /sys/fs/cgroup/cgroup.subtree_control ] &&
		grep -qw cpu /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
		g=/sys/fs/cgroup/fdp-bench-$$-$1
		echo +cpu >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || true
		mkdir "$g" 2>/dev/null || return 1
		groups+=("$g")
		echo "$((CAP * 50)) 5000" >"$g/cpu.max" || return 1
	else
		return 1
	fi
	echo "$g"
}

# The dispatchers' pids, from the server's log ($1).
dispatcher_pids() { sed -n 's/.*dispatcher [0-9]* pid \([0-9]*\) started.*/\1/p' "$1"; }

# start NAME N: a route server with N dispatchers; sets port_NAME, pid_NAME.
start() {
	serve_http "$1" --policy route --route-key http-path --dispatchers "$2"
}

# cap NAME: each of NAME's routing processes into a capped cgroup of its own.
cap() {
	local name=$1 pid=pid_$1 procs g i=0
	procs=$(dispatcher_pids "$tmp/$name.err")
	[ -n "$procs" ] || procs=${!pid}
	for p in $procs; do
		g=$(cgroup_make "$name-$i") || return 1
		echo "$p" >"$g/cgroup.procs" || return 1
		i=$((i + 1))
	done
}

# round NAME: sets cps, mus (the master, µs per connection), dus (the dispatchers').
round() {
	local name=$1 port=port_$1 pid=pid_$1 json=$tmp/round.json m0 m1 d0=0 d1=0 p
	m0=$(cpu_ns "${!pid}")
	for p in $(dispatcher_pids "$tmp/$name.err"); do d0=$((d0 + $(cpu_ns "$p"))); done
	"$LOAD" --check http -c "$CONNS" -d "$DURATION" --keys "$KEYS" --json \
		"127.0.0.1:${!port}" >"$json" ||
		{ cat "$json" >&2; echo "errors during the round against $name" >&2; exit 1; }
	m1=$(cpu_ns "${!pid}")
	for p in $(dispatcher_pids "$tmp/$name.err"); do d1=$((d1 + $(cpu_ns "$p"))); done
	read -r cps mus dus <<<"$(awk -v cps="$(json_num "$json" cps)" \
		-v n="$(json_num "$json" completed)" -v m=$((m1 - m0)) -v d=$((d1 - d0)) \
		'BEGIN { printf "%.0f %.2f %.2f\n", cps, n ? m / 1000 / n : 0, n ? d / 1000 / n : 0 }')"
}

names=(d0)
start d0 0
for n in $DISPATCHERS; do
	start "d$n" "$n"
	names+=("d$n")
done

# measure TITLE: ROUNDS alternating rounds of every server, then the medians.
measure() {
	echo "$1"
	printf '%-14s %10s %12s %16s %18s\n' server "conn/s" "master µs" "dispatchers µs" \
		"routing core's max"
	for _ in $(seq 1 "$ROUNDS"); do
		for name in "${names[@]}"; do
			round "$name"
			echo "$cps $mus $dus" >>"$tmp/$name.all"
		done
	done
	for name in "${names[@]}"; do
		local c m d per
		c=$(awk '{ print $1 }' "$tmp/$name.all" | median)
		m=$(awk '{ print $2 }' "$tmp/$name.all" | median)
		d=$(awk '{ print $3 }' "$tmp/$name.all" | median)
		# What one routing process costs per connection: the master's alone, or the
		# dispatchers' together (each routes its share).
		per=$([ "$name" = d0 ] && echo "$m" || echo "$d")
		printf '%-14s %10s %12s %16s %18s\n' "${name#d} dispatchers" "$c" "$m" "$d" \
			"$(awk -v u="$per" 'BEGIN { printf "%.0f", (u > 0 ? 1e6 / u : 0) }')"
		echo "$c" >"$tmp/$name.rate"
		rm -f "$tmp/$name.all"
	done
	for name in "${names[@]}"; do
		[ "$name" = d0 ] && continue
		awk -v a="$(cat "$tmp/d0.rate")" -v b="$(cat "$tmp/$name.rate")" -v n="${name#d}" \
			'BEGIN { printf "%s dispatchers / the master alone: rate %.2f\n", n, b / a }'
	done
}

echo "workers $WORKERS, $ROUNDS rounds of ${DURATION} s, $CONNS connections, $KEYS targets;" \
	"$(machine)"
measure "uncapped:"
[ -n "$CAP" ] || exit 0
capped=1
for name in "${names[@]}"; do
	cap "$name" || { capped=0; break; }
done
if [ "$capped" = 1 ]; then
	echo
	measure "each routing process held to $CAP % of one core (a cgroup each):"
else
	echo
	echo "capped: skipped (no CPU cgroup can be made here: needs root and the cpu controller)"
fi
