# shellcheck shell=bash
# Helpers shared by the benchmark scripts (bench/designs/run.sh, bench/peers/run.sh): sourced,
# not run.

# A port nothing listens on, below the ephemeral range: a client's port there could otherwise
# block the bind of a SO_REUSEPORT listener.
free_port() {
	local p lo
	lo=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null)
	[ "${lo:-0}" -gt 12000 ] || lo=32768
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		p=$((10000 + RANDOM % (lo - 10000)))
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
	done
	return 1
}

# Prints the port once the server is ready: a "ready <port>" line in its standard output
# (file $1), fdpass's "listening on" and "ready:" lines in its standard error (file $2), or,
# given a fixed port ($4), that port accepting a connection. Gives up after 15 s or when the
# server (pid $3) dies.
wait_ready() {
	local outf=$1 errf=$2 pid=$3 fixed=$4 p
	for _ in $(seq 300); do
		p=$(awk '$1 == "ready" { print $2; exit }' "$outf" 2>/dev/null)
		[ -n "$p" ] && { echo "$p"; return 0; }
		if grep -q ' ready: ' "$errf" 2>/dev/null; then
			p=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$errf" | head -n 1)
			[ -n "$p" ] && { echo "$p"; return 0; }
		fi
		if [ -n "$fixed" ] && (exec 3<>"/dev/tcp/127.0.0.1/$fixed") 2>/dev/null; then
			echo "$fixed"
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

# A number from fdp-load's --json output ($1) by key ($2); a value from a "key value" file.
json_num() { sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p" "$1"; }
kv() { awk -v k="$2" '$1 == k { print $2; exit }' "$1" 2>/dev/null; }

# The median of the numbers on standard input, one per line; nothing for none.
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2); else print "" }'; }

machine() {
	local model
	model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null)
	echo "${model:-unknown CPU}, $(nproc) CPUs, Linux $(uname -r)"
}

# Process $1's own time on a CPU so far, in nanoseconds: the first field of schedstat summed
# over its threads (0 where the kernel keeps no schedstat). Precise where /proc/PID/stat's
# clock ticks (10 ms) are not: a master's fraction of a µs per connection.
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%.0f\n", s + 0 }'; }

# The first child of process $1 (fdp-rusage's: the server it started), once it exists.
first_child() {
	local p
	for _ in $(seq 100); do
		p=$(cat "/proc/$1/task/$1/children" 2>/dev/null)
		p=${p%% *}
		[ -n "$p" ] && { echo "$p"; return 0; }
		sleep 0.01
	done
	return 1
}

# Does fdpass ($1) serve take --dispatch? Asked by parsing it before --help, so a
# build that has the option answers yes whether or not its help text names it.
have_dispatch() { "$1" serve --dispatch pass --help >/dev/null 2>&1; }

# Does the server's log ($2) agree with its row or command ($1)? One that asks for kernel
# dispatch must have a listener that says "kernel dispatch (" (not fallen back to passing);
# any other must have none (a passing row stays passing whatever the build's default).
kernel_dispatched() {
	if [[ $1 == *"kernel"* ]]; then
		grep -q ': kernel dispatch (' "$2" 2>/dev/null
	else
		! grep -q ': kernel dispatch (' "$2" 2>/dev/null
	fi
}

# The row indexes $2... in the order round $1 runs them: as given in odd rounds, reversed in
# even ones, so that what drifts over a round (the machine's load, the sockets left in
# TIME_WAIT by the rows before) weighs on every row alike once the rounds are counted.
round_order() {
	local r=$1
	shift
	if [ $((r % 2)) = 1 ]; then
		echo "$@"
	else
		printf '%s\n' "$@" | tac | tr '\n' ' '
	fi
}

# serve_http NAME ARGS...: `$FDPASS serve --handler http --workers $WORKERS` on a free loopback
# port with ARGS, in the background (its output in $tmp/NAME.out and .err, its pid added to
# pids), once it answers a request of $LOAD; sets port_NAME and pid_NAME. Exits on failure.
# shellcheck disable=SC2154 # FDPASS, WORKERS, LOAD and tmp are the sourcing script's
serve_http() {
	local name=$1 port pid
	shift
	port=$(free_port) || { echo "no free port" >&2; exit 1; }
	"$FDPASS" serve --handler http --workers "$WORKERS" --listen "127.0.0.1:$port" \
		"$@" --control none --log-level info >"$tmp/$name.out" 2>"$tmp/$name.err" &
	pid=$!
	pids+=("$pid")
	wait_ready "$tmp/$name.out" "$tmp/$name.err" "$pid" "$port" >/dev/null ||
		{ cat "$tmp/$name.err" >&2; echo "$name did not start" >&2; exit 1; }
	"$LOAD" --check http -c 1 -n 1 -m 10 "127.0.0.1:$port" >/dev/null ||
		{ echo "$name on $port did not answer" >&2; exit 1; }
	printf -v "port_$name" %s "$port"
	printf -v "pid_$name" %s "$pid"
}
