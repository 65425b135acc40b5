#!/usr/bin/env bash
# The fault suite (docs/RELIABILITY.md): `fdpass serve` under load while something goes wrong,
# each case measured against its target. Every case starts its own server on a free loopback
# port with its own control socket, runs a bounded load (at most ~10 s), prints one line
#
#   CASE  PASS|FAIL  figures...  target: ...
#
# and stops everything it started. Exits 1 when any target is missed (named at the end), 2 for
# a bad command line or an unbuilt tree.
#
#   tests/faults/run.sh [-b BUILD_DIR] [CASE...]     cases: kill9 hup-close hup-keepalive hung
#                                                    term soak nofile upgrade-close
#                                                    upgrade-keepalive kill9-kernel hup-kernel
#                                                    upgrade-kernel nofile-kernel term-kernel
#                                                    term-deferred term-kernel-deferred
#                                                    kill9-dispatchers hup-dispatchers
#                                                    upgrade-dispatchers
#                                                    (default: all, in order; the -kernel
#                                                    ones, --dispatch kernel, need root)
#   env: LOAD_SECONDS (10)  CONNS (32)  SOAK_COUNT (200000)  KILL_EVERY (0.5)  HUP_EVERY (1)
#        UPGRADES (10)  UPGRADE_LOAD_SECONDS (UPGRADES * 2.5 + 2)
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=../../bench/lib.sh
# shellcheck disable=SC1091
. bench/lib.sh # wait_ready, json_num, machine

BUILD=build
while getopts b: opt; do
	case $opt in
	b) BUILD=$OPTARG ;;
	*) echo "usage: $0 [-b BUILD_DIR] [CASE...]" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))

ALL_CASES="kill9 hup-close hup-keepalive hung term soak nofile upgrade-close upgrade-keepalive kill9-kernel hup-kernel upgrade-kernel nofile-kernel term-kernel term-deferred term-kernel-deferred kill9-dispatchers hup-dispatchers upgrade-dispatchers"
CASES=${*:-$ALL_CASES}
LOAD_SECONDS=${LOAD_SECONDS:-10}
CONNS=${CONNS:-32}
SOAK_COUNT=${SOAK_COUNT:-200000}
KILL_EVERY=${KILL_EVERY:-0.5}
HUP_EVERY=${HUP_EVERY:-1}
UPGRADES=${UPGRADES:-10}
# An upgrade takes about 1.5 s here (a new master and its workers start, the old ones drain):
# the upgrade cases' load lasts long enough for all of them.
UPGRADE_LOAD_SECONDS=${UPGRADE_LOAD_SECONDS:-$((UPGRADES * 5 / 2 + 2))}

FDPASS=$BUILD/fdpass
LOAD=$BUILD/bench/load/fdp-load
FAULTS_DIR=tests/faults
for exe in "$FDPASS" "$LOAD"; do
	[ -x "$exe" ] || { echo "$exe missing: build first (make, or cmake --build $BUILD)" >&2; exit 2; }
done
for c in $CASES; do
	case " $ALL_CASES " in *" $c "*) ;; *) echo "unknown case '$c' (cases: $ALL_CASES)" >&2; exit 2 ;; esac
done

TMP=$(mktemp -d /tmp/fdpass-faults.XXXXXX)
PIDS=() # every background process a case started that may still run: the trap ends them
FAILED=()

# On any exit: SIGTERM what is still running (a server then drains), wait up to 5 s, SIGKILL
# the rest (each by its own pid, and a server's workers with it), remove the scratch files.
cleanup() {
	local rc=$? p alive
	if [ $rc != 0 ] && [ -n "${CASE:-}" ]; then echo "fault suite: case $CASE aborted (status $rc)" >&2; fi
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for _ in $(seq 50); do
		alive=0
		for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
		[ $alive = 0 ] && break
		sleep 0.1
	done
	for p in "${PIDS[@]}"; do
		if kill -0 "$p" 2>/dev/null; then
			pkill -KILL -P "$p" 2>/dev/null || true
			kill -KILL "$p" 2>/dev/null || true
		fi
	done
	wait 2>/dev/null || true
	rm -rf "$TMP"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- the server ------------------------------------------------------------------------------

# Starts `fdpass serve` on a free loopback port (port 0, read back from its log) with the
# arguments given, and waits for its "ready:" log line. Sets SRV (pid), PORT, CTL, SRV_LOG.
# SERVE_NOFILE, when set, is the descriptor limit (soft and hard) the server runs under.
start_server() {
	CTL=$TMP/ctl.$CASE.sock
	SRV_LOG=$TMP/serve.$CASE.log
	(
		[ -z "${SERVE_NOFILE:-}" ] || ulimit -n "$SERVE_NOFILE" # soft and hard: the server raises its soft limit to the hard one
		# The master hands over every connection (the cases count hand-overs) unless a
		# case asks for kernel dispatch (DISPATCH).
		# shellcheck disable=SC2086 # DISPATCH is two words
		# LISTEN_OPTS: options of the listener (",defer=on").
		exec "$FDPASS" serve --listen "127.0.0.1:0${LISTEN_OPTS:-}" --control "$CTL" --log-level info \
			${DISPATCH:---dispatch pass} "$@"
	) 2>"$SRV_LOG" &
	SRV=$!
	PIDS+=("$SRV")
	PORT=$(wait_ready /dev/null "$SRV_LOG" "$SRV" "") || {
		echo "$CASE: the server did not start:" >&2
		cat "$SRV_LOG" >&2
		return 1
	}
}

# Drains the server (SIGTERM) and waits for it to exit; its exit status must be 0.
stop_server() {
	local rc=0
	kill -TERM "$SRV" 2>/dev/null || true
	wait "$SRV" || rc=$?
	[ $rc = 0 ] || echo "$CASE: fdpass serve exited with status $rc" >&2
	return $rc
}

# The master's status as JSON (fdpass status --json), and one numeric master field of it.
# Exit status 3 is a status shown while a slot has no ready worker: a case's usual moment.
status_json() { "$FDPASS" status --control "$CTL" --json || [ $? = 3 ]; }
mfield() { sed -n "s/.*\"master\":{[^}]*\"$2\":\([0-9]*\).*/\1/p" <<<"$1"; }

# The worker table, one line per process: "slot pid state open served" (fdpass status, text).
workers() {
	{ "$FDPASS" status --control "$CTL" || [ $? = 3 ]; } |
		awk 'f && $1 ~ /^[0-9]+$/ { print $1, $2, $4, $5, $6 } /^index/ { f = 1 }'
}

# The dispatcher processes' pids (fdpass status, text: "    dispatcher TAG pid PID ...").
dispatchers() {
	{ "$FDPASS" status --control "$CTL" || [ $? = 3 ]; } |
		awk '$1 == "dispatcher" && $3 == "pid" { print $4 }'
}

# Waits (up to 15 s, polling the status) until the server holds no connection: nothing
# pending, no worker with an open connection. The figures after a load are read then; the
# worker table of that moment is left in WORKERS_AT_END.
wait_idle() {
	local s open
	for _ in $(seq 300); do
		s=$(status_json)
		WORKERS_AT_END=$(workers)
		open=$(awk '{ n += $4 } END { print n + 0 }' <<<"$WORKERS_AT_END")
		if [ "$(mfield "$s" pending)" = 0 ] && [ "$open" = 0 ]; then return 0; fi
		sleep 0.05
	done
	echo "$CASE: the server still holds connections 15 s after the load" >&2
	return 1
}

# Waits (polling the status, up to 15 s) until at least $1 connections were accepted.
wait_accepted() {
	local s k
	for _ in $(seq 300); do
		s=$(status_json)
		# The master's count, and what the workers accepted themselves (kernel dispatch).
		k=$(sed -n 's/.*"kernel":{[^}]*"accepted":\([0-9]*\).*/\1/p' <<<"$s")
		[ $(($(mfield "$s" accepted) + ${k:-0})) -ge "$1" ] && return 0
		sleep 0.05
	done
	return 1
}

# ---- loads and results -----------------------------------------------------------------------

# Starts fdp-load in the background against the server (arguments: fdp-load options); its
# JSON report goes to $TMP/load.$CASE.json. Sets LOADP.
start_load() {
	"$LOAD" --json "$@" "127.0.0.1:$PORT" >"$TMP/load.$CASE.json" 2>"$TMP/load.$CASE.err" &
	LOADP=$!
	PIDS+=("$LOADP")
}

# Waits for the load; fdp-load exits 1 when any connection failed, which is a figure here,
# not an error of the script. Anything else (2: bad options, a crash) is.
wait_load() {
	local rc=0
	wait "$LOADP" || rc=$?
	if [ $rc -gt 1 ] || [ ! -s "$TMP/load.$CASE.json" ]; then
		echo "$CASE: fdp-load failed (status $rc):" >&2
		cat "$TMP/load.$CASE.err" >&2
		return 1
	fi
}

# One figure of the last load's report: completed, errors, or an error kind (reset, ...).
lnum() { json_num "$TMP/load.$CASE.json" "$1"; }
load_summary() {
	printf 'attempted %d completed %d failed %d (refused %d reset %d timeout %d short %d wrong %d ports %d other %d) max %.0f ms' \
		$(($(lnum completed) + $(lnum errors))) "$(lnum completed)" "$(lnum errors)" \
		"$(lnum refused)" "$(lnum reset)" "$(lnum timeout)" "$(lnum short)" "$(lnum wrong)" \
		"$(lnum ports)" "$(lnum other)" "$(awk "BEGIN { print $(lnum max) / 1000 }")"
}

# The master's counters as "key value ..." for a result line.
master_summary() {
	local s=$1 k out=""
	for k in accepted rehanded returned lost ack_timeouts closed_no_worker closed_shutdown closed_error; do
		out="$out $k $(mfield "$s" $k)"
	done
	echo "${out# }"
}

# Prints the case's result line and records a missed target. $1: 1 when the target is met.
result() {
	local ok=$1 figures=$2 target=$3 verdict
	if [ "$ok" = 1 ]; then
		verdict=PASS
	else
		verdict=FAIL
		FAILED+=("$CASE")
	fi
	printf '%-14s %-10s %s; target: %s\n' "$CASE" "$verdict" "$figures" "$target"
}

# ---- the cases -------------------------------------------------------------------------------

# kill -9 of a worker every KILL_EVERY s, Connection: close clients. What a killed worker loses
# is what it had acknowledged and not finished; that set cannot be seen from outside, but it
# is contained in the worker's `open` count (handed to it and not reported done): the suite
# stops the worker (SIGSTOP), so it acknowledges nothing more, reads its `open` from the
# status, then kills it. The bound checked: client failures <= the sum of those counts. The
# last ready worker is never killed, so a failure cannot come from having no worker at all.
# Also checked: failures <= what the server's counters say was lost (accepted, less served,
# less closed unserved): every client failure is a connection a killed worker took with it.
case_kill9() {
	local tick=0 kills=0 skipped=0 bound=0 served_dead=0 s0 s1 line slot pid open served other
	# shellcheck disable=SC2086 # SERVE_ARGS and LOAD_ARGS are words (the -dispatchers cases)
	start_server --workers 2 --handler http ${SERVE_ARGS:-}
	s0=$(status_json)
	# shellcheck disable=SC2086
	start_load --check http -c "$CONNS" -d "$LOAD_SECONDS" ${LOAD_ARGS:-}
	while kill -0 "$LOADP" 2>/dev/null; do
		sleep "$KILL_EVERY" # the fault's cadence
		kill -0 "$LOADP" 2>/dev/null || break
		slot=$((tick++ % 2))
		line=$(workers | awk -v s=$slot '$1 == s && $3 == "ready" { print; exit }')
		other=$(workers | awk -v s=$slot '$1 != s && $3 == "ready"' | wc -l)
		if [ -z "$line" ] || [ "$other" = 0 ]; then
			skipped=$((skipped + 1))
			continue
		fi
		pid=$(awk '{ print $2 }' <<<"$line")
		kill -STOP "$pid" 2>/dev/null || { skipped=$((skipped + 1)); continue; }
		read -r _ _ _ open served < <(workers | awk -v p="$pid" '$2 == p')
		kill -KILL "$pid"
		kills=$((kills + 1))
		bound=$((bound + ${open:-0}))
		served_dead=$((served_dead + ${served:-0}))
	done
	wait_load
	wait_idle
	s1=$(status_json)
	stop_server
	# The server's own view of what was lost: accepted, less served (by the killed processes
	# when they were stopped, by the live ones now) and closed unserved. An upper estimate:
	# a DONE still in a killed worker's channel is not in its `served`.
	local served_live closed accepted lost
	served_live=$(awk '{ n += $5 } END { print n + 0 }' <<<"$WORKERS_AT_END")
	closed=$(($(mfield "$s1" closed_no_worker) + $(mfield "$s1" closed_shutdown) + $(mfield "$s1" closed_error)))
	accepted=$(($(mfield "$s1" accepted) - $(mfield "$s0" accepted)))
	lost=$((accepted - served_dead - served_live - closed))
	local failed counted
	failed=$(lnum errors)
	# The master's own count: acknowledged by a worker that died before reporting them done.
	counted=$(mfield "$s1" lost)
	if [ -n "${DISPATCH:-}" ]; then
		# The workers accept themselves: the master's accepted and served are not every
		# connection, so only the bound and the master's lost count (what a dead worker
		# had accepted and not finished, read from the shared state) apply.
		result $((failed <= bound && failed <= counted)) \
			"kills $kills (skipped $skipped); $(load_summary); $(master_summary "$s1"); lost counted $counted; bound $bound" \
			"failed <= bound (sum of the killed workers' open connections when stopped), failed <= the master's lost count: nothing lost that waited on a killed worker's socket"
		return
	fi
	result $((failed <= bound && failed <= lost && failed <= counted)) \
		"kills $kills (skipped $skipped); $(load_summary); $(master_summary "$s1"); server-side lost <= $lost; lost counted $counted; bound $bound" \
		"failed <= bound (sum of the killed workers' open connections when stopped), failed <= server-side lost, failed <= the master's lost count"
}

# SIGHUP every HUP_EVERY s under a Connection: close load: every reload replaces both workers.
# Target: 0 client errors.
case_hup_close() {
	local hups=0 s
	# shellcheck disable=SC2086
	start_server --workers 2 --handler http ${SERVE_ARGS:-}
	# shellcheck disable=SC2086
	start_load --check http -c "$CONNS" -d "$LOAD_SECONDS" ${LOAD_ARGS:-}
	while kill -0 "$LOADP" 2>/dev/null; do
		sleep "$HUP_EVERY" # the fault's cadence
		kill -0 "$LOADP" 2>/dev/null || break
		kill -HUP "$SRV"
		hups=$((hups + 1))
	done
	wait_load
	wait_idle
	s=$(status_json)
	stop_server
	result $(($(lnum errors) == 0)) \
		"SIGHUPs $hups, reloads completed $(grep -c 'reload complete' "$SRV_LOG"); $(load_summary); $(master_summary "$s")" \
		"0 client errors"
}

# SIGHUP every HUP_EVERY s under keep-alive clients (tests/faults/keepalive.py). Target 0
# errors: a draining worker hands its idle keep-alive connections to the next generation
# (RETURN), so no client's next request crosses a close.
case_hup_keepalive() {
	local hups=0 s out=$TMP/keepalive.json rc=0 kp
	start_server --workers 2 --handler http
	python3 "$FAULTS_DIR/keepalive.py" -c 16 -d "$LOAD_SECONDS" "127.0.0.1:$PORT" >"$out" &
	kp=$!
	PIDS+=("$kp")
	while kill -0 "$kp" 2>/dev/null; do
		sleep "$HUP_EVERY" # the fault's cadence
		kill -0 "$kp" 2>/dev/null || break
		kill -HUP "$SRV"
		hups=$((hups + 1))
	done
	wait "$kp" || rc=$?
	if [ $rc -gt 1 ] || [ ! -s "$out" ]; then echo "$CASE: keepalive.py failed (status $rc)" >&2; return 1; fi
	wait_idle
	s=$(status_json)
	stop_server
	local kinds
	kinds=$(sed -n 's/.*"error_kinds":{\([^}]*\)}.*/\1/p' "$out" | tr -d '"' | tr ',:' '  ')
	result $(($(json_num "$out" errors) == 0)) \
		"SIGHUPs $hups; requests $(json_num "$out" requests) on $(json_num "$out" connections) connections, graceful closes $(json_num "$out" graceful_closes), errors $(json_num "$out" errors) ($kinds); $(master_summary "$s")" \
		"0 client errors"
}

# A hung worker: alive, READY, but never reading its channel again (tests/faults/hung_worker.py:
# the first worker process to start). 10 concurrent requests; round-robin hands some to it.
# Target: every one succeeds, none waits longer than --ack-timeout + 1 s, and the master
# counted the hang (ack_timeouts >= 1; without it the case proved nothing).
case_hung() {
	local ack=1 n=10 i s max ok bad curls=()
	start_server --workers 2 --ack-timeout $ack --drain-timeout 2 \
		--exec "HUNG_FLAG=$TMP/hung.flag exec python3 $FAULTS_DIR/hung_worker.py"
	for i in $(seq $n); do
		curl -s -o /dev/null --max-time 10 -w '%{http_code} %{time_total}\n' \
			"http://127.0.0.1:$PORT/$i" >"$TMP/curl.$i" 2>/dev/null &
		curls+=("$!")
		PIDS+=("$!")
	done
	# curl's own status is not a figure: a failure shows as a code other than 200.
	for i in "${curls[@]}"; do wait "$i" || true; done
	cat "$TMP"/curl.* >"$TMP/curl.all"
	ok=$(awk '$1 == 200' "$TMP/curl.all" | wc -l)
	bad=$((n - ok))
	max=$(awk '{ if ($2 > m) m = $2 } END { printf "%.3f", m }' "$TMP/curl.all")
	s=$(status_json)
	stop_server
	local slow
	slow=$(awk -v lim=$((ack + 1)) '$2 > lim' "$TMP/curl.all" | wc -l)
	result $((bad == 0 && slow == 0 && $(mfield "$s" ack_timeouts) >= 1)) \
		"requests $n, succeeded $ok, failed $bad, max latency ${max} s, slower than $((ack + 1)) s: $slow; $(master_summary "$s")" \
		"all succeed, none over ack-timeout + 1 s = $((ack + 1)) s, ack_timeouts >= 1"
}

# SIGTERM under load (256 clients, so the accept queue is seldom empty). Once the listeners close, new connects are refused: those never had a
# handshake. A connection whose handshake completed either gets its answer or ends in a reset
# or an early end of file: fdp-load's `reset` and `short` kinds. Target: both 0.
case_term() {
	local s rc=0
	start_server --workers 2 --handler http
	# Many clients, so that connections wait in the accept queue at the stop.
	start_load --check http -c 256 -d 4
	wait_accepted 3000 # the load is in full swing: then the fault
	s=$(status_json)
	kill -TERM "$SRV"
	wait "$SRV" || rc=$?
	wait_load
	local queued
	queued=$(sed -n 's/.*took \([0-9]*\) connection(s) still queued.*/\1/p' "$SRV_LOG" | head -n 1)
	result $(($(lnum reset) == 0 && $(lnum short) == 0 && rc == 0)) \
		"$(load_summary); taken from the accept queues at the stop ${queued:-0}; exit status $rc" \
		"0 reset, 0 short (refused after the listeners closed is expected)"
}

# The master's descriptors (/proc/PID/fd) and resident memory (VmRSS).
master_fds() { find "/proc/$SRV/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
master_rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$SRV/status"; }

# SOAK_COUNT connections through one server. After a warm-up load (so that buffers grown once
# are counted as the start), the master's descriptors and memory are read before and after.
# Target: 0 client errors, descriptors back to the start value, VmRSS growth < 1024 KiB.
case_soak() {
	local fd0 fd1 rss0 rss1 s
	start_server --workers 2 --handler http
	start_load --check http -c "$CONNS" -n 5000
	wait_load
	wait_idle
	fd0=$(master_fds) rss0=$(master_rss)
	start_load --check http -c "$CONNS" -n "$SOAK_COUNT" --max-time 120
	wait_load
	wait_idle
	fd1=$(master_fds) rss1=$(master_rss)
	s=$(status_json)
	stop_server
	result $(($(lnum errors) == 0 && fd1 == fd0 && rss1 - rss0 < 1024)) \
		"$(load_summary), $(awk "BEGIN { printf \"%.0f\", $(lnum cps) }") conn/s; master fds $fd0 -> $fd1 (status fds $(mfield "$s" fds)), VmRSS $rss0 -> $rss1 KiB ($((rss1 - rss0)) KiB); $(master_summary "$s")" \
		"0 errors, fds equal, VmRSS growth < 1024 KiB"
}

# The server under `ulimit -n 64` (soft and hard, inherited by its workers: each takes at
# most 32 connections). For the first 3 s of a 5 s Connection: close load of CONNS clients,
# 100 clients that connect and send nothing tie up the workers' share and then the master's
# descriptors. Errors during the load are reported, not judged: with no descriptor left the
# master cannot accept, and clients wait in the kernel's backlog or time out. Once the load stops: nothing was lost (every
# accepted connection served or counted closed), and a fresh load of 1000 has 0 errors.
case_nofile() {
	local s0 s1 during accepted served closed lost limit idle=$TMP/idle.json ip rc=0
	SERVE_NOFILE=64 start_server --workers 2 --handler http
	limit=$(awk '/^Max open files/ { print $4 }' "/proc/$SRV/limits")
	s0=$(status_json)
	python3 "$FAULTS_DIR/keepalive.py" --idle -c 100 -d 3 "127.0.0.1:$PORT" >"$idle" &
	ip=$!
	PIDS+=("$ip")
	start_load --check http -c "$CONNS" -d 5
	wait_load
	wait "$ip" || rc=$?
	if [ $rc -gt 1 ] || [ ! -s "$idle" ]; then echo "$CASE: keepalive.py --idle failed (status $rc)" >&2; return 1; fi
	during=$(load_summary)
	wait_idle
	s1=$(status_json)
	accepted=$(($(mfield "$s1" accepted) - $(mfield "$s0" accepted)))
	served=$(awk '{ n += $5 } END { print n + 0 }' <<<"$WORKERS_AT_END")
	closed=$(($(mfield "$s1" closed_no_worker) + $(mfield "$s1" closed_shutdown) + $(mfield "$s1" closed_error)))
	lost=$((accepted - served - closed))
	start_load --check http -c 8 -n 1000
	wait_load
	stop_server
	result $((lost == 0 && $(lnum errors) == 0 && limit == 64)) \
		"soft limit $limit; idle clients connected $(json_num "$idle" connections) of 100; during the load: $during; after: accepted $accepted served $served closed $closed lost $lost; a fresh load: $(load_summary)" \
		"0 lost after the load, 0 errors in a fresh load"
}

# Waits (up to 15 s) until process $1, not a child of this shell, is gone.
wait_gone() {
	for _ in $(seq 300); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.05
	done
	return 1
}

# UPGRADES hot upgrades in a row (SIGUSR2) while the load runs ($1: the load's pid). Each waits
# until the new master answers on the control socket, then for the old one and its workers to
# be gone (the first old master is this shell's child: its exit status must be 0). Sets
# UPGRADED (how many completed), GONE (old masters and workers that went away) and
# OLD_PROCS (how many were waited for), and leaves SRV the current master.
upgrade_loop() {
	local loadp=$1 i old new pids p rc
	UPGRADED=0 GONE=0 OLD_PROCS=0
	for i in $(seq "$UPGRADES"); do
		kill -0 "$loadp" 2>/dev/null || break
		sleep 0.2 # the load runs between two upgrades too
		old=$SRV
		pids="$old $(workers | awk '{ print $2 }') $(dispatchers)"
		kill -USR2 "$old"
		new=
		for _ in $(seq 300); do
			new=$(mfield "$(status_json 2>/dev/null || true)" pid)
			[ -n "$new" ] && [ "$new" != "$old" ] && break
			new=
			sleep 0.05
		done
		[ -n "$new" ] || { echo "$CASE: upgrade $i: no new master answered in 15 s" >&2; return 1; }
		SRV=$new
		PIDS+=("$new")
		UPGRADED=$((UPGRADED + 1))
		if [ "$i" = 1 ]; then
			rc=0
			wait "$old" || rc=$?
			[ $rc = 0 ] || echo "$CASE: the first master exited with status $rc" >&2
		fi
		for p in $pids; do
			OLD_PROCS=$((OLD_PROCS + 1))
			wait_gone "$p" && GONE=$((GONE + 1))
		done
	done
}

# Stops the current master, which after an upgrade is not this shell's child: SIGTERM, then
# wait for it to be gone.
stop_upgraded_server() {
	kill -TERM "$SRV" 2>/dev/null || true
	wait_gone "$SRV" || { echo "$CASE: master $SRV still running 15 s after SIGTERM" >&2; return 1; }
}

# UPGRADES hot upgrades under a Connection: close load. Target: every upgrade completes, the
# old masters and their workers are gone, and no request fails (none refused, none reset).
case_upgrade_close() {
	local first s
	# shellcheck disable=SC2086
	start_server --workers 2 --handler http ${SERVE_ARGS:-}
	first=$SRV
	# shellcheck disable=SC2086
	start_load --check http -c "$CONNS" -d "$UPGRADE_LOAD_SECONDS" ${LOAD_ARGS:-}
	upgrade_loop "$LOADP"
	wait_load
	wait_idle
	s=$(status_json)
	stop_upgraded_server
	result $(($(lnum errors) == 0 && UPGRADED == UPGRADES && GONE == OLD_PROCS && SRV != first)) \
		"upgrades $UPGRADED of $UPGRADES, master pid $first -> $SRV, old masters and workers gone $GONE of $OLD_PROCS; $(load_summary); $(master_summary "$s")" \
		"$UPGRADES upgrades, 0 client errors (refused, reset or other), every old process gone"
}

# The same under keep-alive clients (tests/faults/keepalive.py): an idle keep-alive connection
# follows to the new master (handed back by the old workers, forwarded over the upgrade
# socket), so no client's next request crosses a close.
case_upgrade_keepalive() {
	local first s out=$TMP/keepalive.upgrade.json rc=0 kp
	start_server --workers 2 --handler http
	first=$SRV
	python3 "$FAULTS_DIR/keepalive.py" -c 16 -d "$UPGRADE_LOAD_SECONDS" "127.0.0.1:$PORT" >"$out" &
	kp=$!
	PIDS+=("$kp")
	upgrade_loop "$kp"
	wait "$kp" || rc=$?
	if [ $rc -gt 1 ] || [ ! -s "$out" ]; then echo "$CASE: keepalive.py failed (status $rc)" >&2; return 1; fi
	wait_idle
	s=$(status_json)
	stop_upgraded_server
	result $(($(json_num "$out" errors) == 0 && UPGRADED == UPGRADES && GONE == OLD_PROCS && SRV != first)) \
		"upgrades $UPGRADED of $UPGRADES, master pid $first -> $SRV, old processes gone $GONE of $OLD_PROCS; requests $(json_num "$out" requests) on $(json_num "$out" connections) connections, errors $(json_num "$out" errors); $(master_summary "$s")" \
		"$UPGRADES upgrades, 0 client errors, every old process gone"
}

# The same cases under --dispatch kernel (docs/STEERING.md): each worker accepts on its
# slot's own socket; a killed worker's queue is accepted by the master and handed on; a
# reload's old and new workers share the slot's socket; an upgrade's new master adopts the
# steering group, both masters' workers sharing its sockets; a stop accepts what is queued on
# every slot's socket. Root only (a BPF program).
case_kill9_kernel() { kernel_case case_kill9; }
case_hup_kernel() { kernel_case case_hup_close; }
case_upgrade_kernel() { kernel_case case_upgrade_close; }
case_nofile_kernel() { kernel_case case_nofile; }
case_term_kernel() { kernel_case case_term; }
# The stop of a deferred listener (--listen ADDR,defer=on): a client connected but not yet sent
# its request waits in the kernel, not in the accept queue, and the stop lingers for it
# (docs/RELIABILITY.md, "Deferred listeners at a stop"). The same target as term.
case_term_deferred() { LISTEN_OPTS=,defer=on case_term; }
case_term_kernel_deferred() { LISTEN_OPTS=,defer=on kernel_case case_term; }
# kill9 and hup-close with --policy route and two dispatcher processes (docs/ROUTING.md): the
# dispatchers hand the connections, the same targets. A killed worker's slot keeps its keys:
# what was routed to it waits for its replacement (held), so the load spreads its requests
# over 64 paths, and the last worker of a slot being killed is no exception here.
DISPATCHER_ARGS="--policy route --route-key http-path --dispatchers 2"
case_kill9_dispatchers() { SERVE_ARGS=$DISPATCHER_ARGS LOAD_ARGS="--keys 64" case_kill9; }
case_hup_dispatchers() { SERVE_ARGS=$DISPATCHER_ARGS LOAD_ARGS="--keys 64" case_hup_close; }
case_upgrade_dispatchers() { SERVE_ARGS=$DISPATCHER_ARGS LOAD_ARGS="--keys 64" case_upgrade_close; }
kernel_case() {
	if [ "$(id -u)" != 0 ]; then
		printf '%-14s %-10s %s\n' "$CASE" SKIP "kernel dispatch needs root (a BPF program)"
		return
	fi
	DISPATCH="--dispatch kernel" "$1"
}

# ---- main ------------------------------------------------------------------------------------

echo "fault suite: $(machine); commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'); $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "cases: $CASES; load ${LOAD_SECONDS} s, $CONNS clients"
# A case is called plainly, not under `||`, which would switch off set -e inside it: a step
# that fails unexpectedly (a server that does not start, a status that does not answer) ends
# the suite at once, the trap names the case and stops what it started.
for CASE in $CASES; do
	"case_${CASE//-/_}"
	# Each case waits for what it started; one still running would be a bug of the suite.
	for p in "${PIDS[@]}"; do
		if kill -0 "$p" 2>/dev/null; then echo "$CASE: pid $p still running" >&2; fi
	done
	PIDS=()
done
CASE=
if [ ${#FAILED[@]} -gt 0 ]; then
	echo "fault suite: FAILED: ${FAILED[*]}"
	exit 1
fi
echo "fault suite: every target met"
