#!/bin/sh
# The serve benchmark: new connections per second through `fdpass serve --handler http`
# against a bare pre-forked server whose workers accept for themselves on SO_REUSEPORT
# sockets, same number of workers, same load tool (wrk with Connection: close), alternating
# rounds in one run. Also the master's CPU time per connection.
#
#   bench/serve/run.sh [BUILD_DIR]      env: WORKERS ROUNDS SECONDS CONNS THREADS
set -eu

BUILD=${1:-build}
WORKERS=${WORKERS:-$(nproc)}
ROUNDS=${ROUNDS:-5}
SECONDS_=${SECONDS:-3}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
FDPASS=$BUILD/fdpass
BARE=$BUILD/bench/peers/bench-reuseport-http # the bare server the peers benchmark runs too
PORT_A=${PORT_A:-18480}
PORT_B=${PORT_B:-18481}
CTL=$(mktemp -u /tmp/fdpass-bench.XXXXXX.sock)

[ -x "$FDPASS" ] && [ -x "$BARE" ] || { echo "build first: cmake --build $BUILD" >&2; exit 2; }
if ! command -v wrk >/dev/null 2>&1; then
	echo "installing wrk (Debian package)" >&2
	if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq wrk; else sudo apt-get install -y -qq wrk; fi
fi

cleanup() {
	[ -n "${SERVE_PID:-}" ] && kill -TERM "$SERVE_PID" 2>/dev/null && wait "$SERVE_PID" 2>/dev/null
	[ -n "${BARE_PID:-}" ] && kill -TERM "$BARE_PID" 2>/dev/null && wait "$BARE_PID" 2>/dev/null
	true
}
trap cleanup EXIT INT TERM

"$FDPASS" serve --handler http --workers "$WORKERS" --listen "127.0.0.1:$PORT_A" \
	--control "$CTL" --log-level warn &
SERVE_PID=$!
"$BARE" -w "$WORKERS" -p "$PORT_B" >/dev/null 2>&1 &
BARE_PID=$!
# Wait (bounded) until both answer.
for port in $PORT_A $PORT_B; do
	i=0
	until curl -sf "http://127.0.0.1:$port/" >/dev/null 2>&1; do
		i=$((i + 1)); [ $i -lt 100 ] || { echo "server on $port did not start" >&2; exit 1; }
		sleep 0.05
	done
done

# One wrk round; prints requests/s, failing loudly on any error.
round() {
	out=$(wrk -t "$THREADS" -c "$CONNS" -d "${SECONDS_}s" -H 'Connection: close' "http://127.0.0.1:$1/")
	if echo "$out" | grep -q -e 'Socket errors' -e 'Non-2xx'; then
		echo "$out" >&2
		echo "errors during the round on port $1" >&2
		exit 1
	fi
	echo "$out" | awk '/Requests\/sec/ {print $2}'
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
accepted() { "$FDPASS" status --control "$CTL" --json | sed 's/.*"accepted":\([0-9]*\).*/\1/'; }

echo "workers=$WORKERS rounds=$ROUNDS seconds=$SECONDS_ conns=$CONNS threads=$THREADS cpus=$(nproc)"
A="" B="" R="" ticks=0 conns=0
for r in $(seq "$ROUNDS"); do
	t0=$(cpu_ticks "$SERVE_PID"); c0=$(accepted)
	a=$(round "$PORT_A")
	t1=$(cpu_ticks "$SERVE_PID"); c1=$(accepted)
	ticks=$((ticks + t1 - t0)); conns=$((conns + c1 - c0))
	b=$(round "$PORT_B")
	ratio=$(awk "BEGIN {printf \"%.3f\", $a/$b}")
	echo "round $r: fdpass serve $a/s, bare SO_REUSEPORT $b/s, ratio ${ratio}x"
	A="$A $a" B="$B $b" R="$R $ratio"
done

median() { echo "$@" | tr ' ' '\n' | grep . | sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
ma=$(median $A); mb=$(median $B)
hz=$(getconf CLK_TCK)
echo "median: fdpass serve $ma conn/s, bare $mb conn/s, ratio of medians $(awk "BEGIN {printf \"%.2f\", $ma/$mb}")x, median of round ratios $(median $R)x"
echo "master CPU: $(awk "BEGIN {printf \"%.2f\", $ticks / $hz * 1e6 / $conns}") us per connection ($conns connections, $ticks ticks at $hz Hz)"
echo "status after the run:"
"$FDPASS" status --control "$CTL" | sed -n 2,3p
