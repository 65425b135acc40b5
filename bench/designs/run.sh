#!/usr/bin/env bash
# Run the classic server designs one after another under the same load and report, for each:
# server CPU time per connection (whole process tree, user + system), the same minus the
# iterative server's (the classic study's "process control" cost), connections per second,
# latency p50/p99 and the spread of connections across workers. Writes the table to
# docs/benchmarks/designs.md. See bench/designs/README.md for the method.
#
# Exits 0 when every row ran cleanly, 1 when any row failed (no readiness line, load errors,
# unclean server exit), 2 on a bad option.
set -u

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=bench/lib.sh
. "$here/../lib.sh"

# One row per server. Fields: label | command [| check]. In the command, {bin} is the designs
# build folder, {build} the build folder, {workers} the pool size, {stats} a file the server may
# write "served <worker> <count>" lines to on exit, {port} a free port for servers that
# cannot pick one (otherwise a server prints "ready <port>" on stdout, or logs fdpass's
# "listening on HOST:PORT" and "ready:" lines on stderr); {pass} is "--dispatch pass" where
# the build takes --dispatch (its default is auto), else nothing. The check is fdp-load's --check,
# echo unless given. The first row is the baseline whose CPU per connection is subtracted
# from every row.
#
# The fdpass rows run its stream echo handler: fdp-load half-closes after the request, so the
# handler echoes it and closes; the "--exec design worker" rows run dsg-fdpass-worker instead,
# which serves the echo protocol as the pre-forked designs do (one read, one write). The per-worker spread comes from the "worker N served M
# connections" lines fdpass logs when it stops.
ROWS=(
	"iterative|{bin}/dsg-iterative --stats {stats}"
	"fork per client|{bin}/dsg-fork --stats {stats}"
	"pre-forked, accept unlocked|{bin}/dsg-prefork-nolock -w {workers} --stats {stats}"
	"pre-forked, fcntl lock|{bin}/dsg-prefork-flock -w {workers} --stats {stats}"
	"pre-forked, shared mutex|{bin}/dsg-prefork-mutex -w {workers} --stats {stats}"
	"pre-forked, parent passes fd|{bin}/dsg-prefork-pass -w {workers} --stats {stats}"
	"thread per client|{bin}/dsg-thread --stats {stats}"
	"pre-threaded, mutex|{bin}/dsg-prethread-mutex -w {workers} --stats {stats}"
	"pre-threaded, main accepts|{bin}/dsg-prethread-handoff -w {workers} --stats {stats}"
	"pre-forked, SO_REUSEPORT|{bin}/dsg-prefork-reuseport -w {workers} --stats {stats}"
	"pre-forked, SO_REUSEPORT, epoll and channel|{bin}/dsg-prefork-reuseport-epoll -w {workers} --stats {stats}"
	"pre-forked, passing floor|{bin}/dsg-prefork-pass-floor -w {workers} --stats {stats}"
	"fdpass serve (echo), round-robin|{build}/fdpass serve --listen 127.0.0.1:0 --workers {workers} --handler echo {pass} --policy round-robin --control none"
	"fdpass serve (echo), least-conn|{build}/fdpass serve --listen 127.0.0.1:0 --workers {workers} --handler echo {pass} --policy least-conn --control none"
	"fdpass serve (echo), hash-ip|{build}/fdpass serve --listen 127.0.0.1:0 --workers {workers} --handler echo {pass} --policy hash-ip --control none"
	"fdpass serve (echo), kernel round-robin|{build}/fdpass serve --listen 127.0.0.1:0 --workers {workers} --handler echo --dispatch kernel --policy round-robin --control none"
	"fdpass serve (echo), kernel least-conn|{build}/fdpass serve --listen 127.0.0.1:0 --workers {workers} --handler echo --dispatch kernel --policy least-conn --control none"
	"fdpass --exec design worker, round-robin|{build}/fdpass serve --listen 127.0.0.1:0 --workers {workers} --exec {bin}/dsg-fdpass-worker {pass} --policy round-robin --control none"
	"fdpass --exec design worker, kernel round-robin|{build}/fdpass serve --listen 127.0.0.1:0 --workers {workers} --exec {bin}/dsg-fdpass-worker --dispatch kernel --policy round-robin --control none"
	"fdpass --exec design worker, kernel least-conn|{build}/fdpass serve --listen 127.0.0.1:0 --workers {workers} --exec {bin}/dsg-fdpass-worker --dispatch kernel --policy least-conn --control none"
)

usage() {
	cat <<EOF
usage: bench/designs/run.sh [options]

  --smoke          a few hundred connections per row, one round; checks nothing has rotted
                   (writes no table unless -o is given)
  -d SECS          seconds of load per row and round (default 3)
  -r ROUNDS        rounds over all rows; medians are reported (default 3)
  -c N             client concurrency (default 16)
  -w N             workers in each pool (default 4)
  -s BYTES         echo payload size (default 64)
  -b DIR           build folder (default \$FDPASS_BUILD or <repo>/build)
  -o FILE          where to write the table (default docs/benchmarks/designs.md)
  --only REGEX     run only rows whose label matches (the first row always runs: baseline)
  --no-sequential  skip the second, shorter pass with one client connection at a time
                   (-c 1), which shows how each design spreads a sequential client's
                   connections over its workers
  -h, --help       show this help
EOF
}

smoke=0 sequential=1 secs=3 rounds=3 conc=16 workers=4 size=64 only="" out=""
build=${FDPASS_BUILD:-$repo/build}
while [ $# -gt 0 ]; do
	case $1 in
	--smoke) smoke=1 ;;
	-d) secs=${2:?}; shift ;;
	-r) rounds=${2:?}; shift ;;
	-c) conc=${2:?}; shift ;;
	-w) workers=${2:?}; shift ;;
	-s) size=${2:?}; shift ;;
	-b) build=${2:?}; shift ;;
	-o) out=${2:?}; shift ;;
	--only) only=${2:?}; shift ;;
	--no-sequential) sequential=0 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
	shift
done
if [ "$smoke" = 1 ]; then
	rounds=1 sequential=0
	load_mode=(-n 300 -c 4 -m 20)
else
	load_mode=(-d "$secs" -c "$conc")
	[ -n "$out" ] || out=$repo/docs/benchmarks/designs.md
fi

load=$build/bench/load/fdp-load
rusage=$build/bench/load/fdp-rusage
for f in "$load" "$rusage" "$build/bench/designs/dsg-iterative"; do
	[ -x "$f" ] || { echo "run.sh: $f missing: build first (cmake --build $build)" >&2; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fdp-designs.XXXXXX")
server_pid=""
cleanup() {
	[ -n "$server_pid" ] && kill -TERM "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# One row (its command), one round. Leaves <base>.{json,cpu,stats,out,err} and <base>.fail on failure.
run_one() {
	local cmd=$1 base=$2 check=echo port="" fixed="" argv lrc src lead ns0
	if [[ $cmd == *"|"* ]]; then
		check=${cmd##*|}
		cmd=${cmd%|*}
	fi
	cmd=${cmd//\{bin\}/$build/bench/designs}
	cmd=${cmd//\{build\}/$build}
	cmd=${cmd//\{workers\}/$workers}
	cmd=${cmd//\{pass\}/$pass_opt}
	cmd=${cmd//\{stats\}/$base.stats}
	if [[ $cmd == *"{port}"* ]]; then
		fixed=$(free_port) || { echo "no free port" >"$base.fail"; return 1; }
		cmd=${cmd//\{port\}/$fixed}
	fi
	read -r -a argv <<<"$cmd"
	"$rusage" -o "$base.cpu" -k 5 -- "${argv[@]}" >"$base.out" 2>"$base.err" &
	server_pid=$!
	if ! port=$(wait_ready "$base.out" "$base.err" "$server_pid" "$fixed"); then
		echo "server not ready: $(head -c 300 "$base.err")" >"$base.fail"
		kill -TERM "$server_pid" 2>/dev/null
		wait "$server_pid" 2>/dev/null
		server_pid=""
		return 1
	fi
	if ! kernel_dispatched "$cmd" "$base.err"; then
		echo "dispatch not as the row says: $(grep -m 1 -i 'dispatch' "$base.err")" >"$base.fail"
		kill -TERM "$server_pid" 2>/dev/null
		wait "$server_pid" 2>/dev/null
		server_pid=""
		return 1
	fi
	# The server's first process: its own CPU during the load (the master, the parent).
	lead=$(first_child "$server_pid") && ns0=$(cpu_ns "$lead")
	"$load" --json --check "$check" -s "$size" "${load_mode[@]}" "127.0.0.1:$port" >"$base.json" 2>>"$base.err"
	lrc=$?
	[ -n "$lead" ] && [ "$have_schedstat" = 1 ] && echo "lead_ns $(($(cpu_ns "$lead") - ns0))" >"$base.lead"
	# A server that writes no stats: the spread from the worker=N its answers named.
	if [ ! -s "$base.stats" ] && [ "$check" = http ]; then
		sed -n 's/.*"workers":\[\([0-9,]*\)\].*/\1/p' "$base.json" |
			awk -F, 'NF { print "pool 1"; for (k = 1; k <= NF; k++) print "served", k - 1, $k }' >"$base.stats"
	fi
	kill -TERM "$server_pid"
	wait "$server_pid"
	src=$?
	server_pid=""
	# fdpass serve logs what each worker slot served when it stops.
	if [ ! -s "$base.stats" ] && grep -q ' served [0-9]* connections$' "$base.err"; then
		{
			echo "pool 1"
			sed -n 's/.* worker \([0-9]*\) served \([0-9]*\) connections$/served \1 \2/p' "$base.err"
		} >"$base.stats"
		# A count of 0 for every worker after a load that completed connections says the
		# log does not count them (the workers accepted them themselves): no spread, then.
		awk '$1 == "served" { s += $3 } END { exit !(s == 0) }' "$base.stats" &&
			[ "$(json_num "$base.json" completed)" != 0 ] && : >"$base.stats"
	fi
	if [ "$lrc" != 0 ]; then
		echo "load client exit $lrc: $(sed -n 's/.*"error_kinds":\({[^}]*}\).*/\1/p' "$base.json") $(tail -n 2 "$base.err")" >"$base.fail"
	elif [ "$src" != 0 ]; then
		echo "server exit status $src: $(head -c 300 "$base.err")" >"$base.fail"
	fi
	[ ! -e "$base.fail" ]
}

# Summarise one row over its rounds into the global cells[] (one table line) and say whether
# every round succeeded.
summarise_row() {
	local i=$1 r base vals_cps="" vals_cpu="" vals_csw="" vals_p50="" vals_p99="" errs=0 fail=""
	local vals_lead=""
	local served="" pool=""
	for r in $(seq "$rounds"); do
		base=$pass_dir/$i.$r
		[ -e "$base.fail" ] && fail=$(cat "$base.fail")
		[ -s "$base.json" ] || continue
		local completed cpu csw
		completed=$(json_num "$base.json" completed)
		cpu=$(kv "$base.cpu" cpu_us)
		csw=$(kv "$base.cpu" switches)
		vals_cps+="$(json_num "$base.json" cps)"$'\n'
		vals_p50+="$(json_num "$base.json" p50)"$'\n'
		vals_p99+="$(json_num "$base.json" p99)"$'\n'
		errs=$((errs + $(json_num "$base.json" errors)))
		if [ -n "$cpu" ] && [ "${completed:-0}" -gt 0 ]; then
			vals_cpu+="$(awk -v c="$cpu" -v n="$completed" 'BEGIN { print c / n }')"$'\n'
		fi
		if [ -s "$base.lead" ] && [ "${completed:-0}" -gt 0 ]; then
			vals_lead+="$(awk -v c="$(kv "$base.lead" lead_ns)" -v n="$completed" 'BEGIN { print c / n / 1000 }')"$'\n'
		fi
		if [ -n "$csw" ] && [ "${completed:-0}" -gt 0 ]; then
			vals_csw+="$(awk -v c="$csw" -v n="$completed" 'BEGIN { print c / n }')"$'\n'
		fi
		if [ -s "$base.stats" ]; then
			pool=$(kv "$base.stats" pool)
			served=$(awk -v prev="$served" '
				BEGIN { n = split(prev, p, "/") }
				$1 == "served" { v[$2] = $3 + (($2 + 1) <= n ? p[$2 + 1] : 0); if ($2 + 1 > m) m = $2 + 1 }
				END { for (k = 0; k < m; k++) printf "%s%d", k ? "/" : "", v[k] }' "$base.stats")
		fi
	done
	row_cps[$i]=$(printf %s "$vals_cps" | median)
	row_cpu[$i]=$(printf %s "$vals_cpu" | median)
	row_csw[$i]=$(printf %s "$vals_csw" | median)
	row_lead[$i]=$(printf %s "$vals_lead" | median)
	row_p50[$i]=$(printf %s "$vals_p50" | median)
	row_p99[$i]=$(printf %s "$vals_p99" | median)
	row_errs[$i]=$errs
	row_fail[$i]=$fail
	row_served[$i]=$([ "$pool" = 1 ] && echo "$served" || echo "")
}

spread() {
	[ -n "$1" ] || { echo "–"; return; }
	echo "$1" | awk -F/ '{ lo = $1; hi = $1; for (k = 2; k <= NF; k++) { if ($k < lo) lo = $k; if ($k > hi) hi = $k }
		if (lo > 0) printf "%.2f", hi / lo; else printf "%d/0", hi }'
}

table() {
	local base_cpu=${row_cpu[0]:-0} i
	echo "| design | conn/s | CPU µs/conn | minus iterative | first process µs/conn | switches/conn | p50 µs | p99 µs | spread max/min | served per worker | errors |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"
	for i in "${!labels[@]}"; do
		[ -n "${row_ran[$i]:-}" ] || continue
		local cpu=${row_cpu[$i]} csw=${row_csw[$i]} lead=${row_lead[$i]} net="–" note=""
		[ -n "$lead" ] && lead=$(awk -v a="$lead" 'BEGIN { printf "%.2f", a }')
		[ -n "$cpu" ] && [ "$i" != 0 ] && net=$(awk -v a="$cpu" -v b="$base_cpu" 'BEGIN { printf "%.1f", a - b }')
		[ -n "$cpu" ] && cpu=$(awk -v a="$cpu" 'BEGIN { printf "%.1f", a }')
		[ -n "$csw" ] && csw=$(awk -v a="$csw" 'BEGIN { printf "%.2f", a }')
		[ -n "${row_fail[$i]}" ] && note=" **FAILED**"
		printf "| %s%s | %.0f | %s | %s | %s | %s | %.0f | %.0f | %s | %s | %s |\n" "${labels[$i]}" "$note" \
			"${row_cps[$i]:-0}" "${cpu:-–}" "$net" "${lead:-–}" "${csw:-–}" "${row_p50[$i]:-0}" "${row_p99[$i]:-0}" \
			"$(spread "${row_served[$i]}")" "${row_served[$i]:-–}" "${row_errs[$i]}"
	done
}

write_doc() {
	local f=$1 args=$2
	mkdir -p "$(dirname "$f")"
	{
		echo "# The classic server designs, measured"
		echo
		echo "Generated by \`bench/designs/run.sh${args:+ $args}\` on $(date -u '+%Y-%m-%d %H:%M UTC')."
		echo
		echo "- Machine: $(machine). Client and server share it. Load average when the run"
		echo "  started: ${loadavg_start} (anything above 0 means other work shared the CPUs)."
		echo "- Load: \`fdp-load\`, ${load_mode[*]}, ${size}-byte echo payload (bench/designs/README.md);"
		echo "  one connection per request, the server closes. ${rounds} round(s) over all rows, medians shown."
		echo "- Pools: ${workers} workers. CPU: user + system time of the server's whole process tree"
		echo "  (fdp-rusage), divided by completed connections; \"minus iterative\" subtracts the"
		echo "  iterative server's figure, leaving the cost of process control as in UNP ch. 30."
		echo "  Switches: the tree's context switches (voluntary and involuntary) per connection."
		echo "  First process: the server's first process alone during the load (its time on a CPU,"
		echo "  /proc/PID/task/*/schedstat): the parent that accepts and passes, fdpass's master"
		echo "  (off the path with \`--dispatch kernel\`), an idle parent, or the whole server where it is"
		echo "  one process (iterative, the threaded designs)."
		echo "- Spread: max/min of the connections each worker served (pools only); n/0 means"
		echo "  some worker served none."
		echo "- The fdpass rows run \`fdpass serve --handler echo\`, a stream echo: the client half-closes"
		echo "  after its request, fdpass echoes it and closes. Its spread comes from the per-worker"
		echo "  counts fdpass logs when it stops."
		for n in "${notes[@]}"; do
			echo "- Note: $n"
		done
		echo
		echo "$table_main"
		echo
		echo "![connections per second and CPU per connection per design](designs.png)"
		echo
		echo "![connections per worker per design](designs-workers.png)"
		if [ -n "$table_seq" ]; then
			echo
			echo "## One client connection at a time"
			echo
			echo "The same rows with \`${seq_mode[*]}\`, one round: a sequential client, as in the"
			echo "textbook's run. Mostly of interest for the spread: a parent that always picks the"
			echo "first idle child leaves the others idle when clients arrive one at a time."
			echo
			echo "$table_seq"
		fi
		echo
		echo "How to read it: on loopback the kernel's TCP work for both ends is charged to whichever"
		echo "process is running, so the CPU columns carry part of the client's cost too and move by"
		echo "a few µs between runs; compare rows within one run. Connection rates on a 2-CPU machine"
		echo "are bounded by the client sharing the CPUs with the server."
	} >"$f"
}

# Chart data from the main pass (before the sequential pass overwrites the row_* arrays):
# rates and CPU per design, and each pool's per-worker shares.
write_chart_data() {
	local i
	for i in "${!labels[@]}"; do
		[ -n "${row_ran[$i]:-}" ] && [ -n "${row_cps[$i]:-}" ] || continue
		printf '"%s"\t%s\t%s\n' "${labels[$i]}" "${row_cps[$i]}" "${row_cpu[$i]:-NaN}"
	done >"$tmp/designs.dat"
	for i in "${!labels[@]}"; do
		[ -n "${row_ran[$i]:-}" ] && [ -n "${row_served[$i]:-}" ] || continue
		printf '"%s"\t%s\n' "${labels[$i]}" "${row_served[$i]}"
	done | awk -F'\t' -v OFS='\t' '{ n = split($2, v, "/"); t = 0; for (k = 1; k <= n; k++) t += v[k]
		line = $1; for (k = 1; k <= n; k++) line = line OFS (t > 0 ? 100 * v[k] / t : "NaN")
		rows[NR] = line; cols[NR] = n; if (n > m) m = n }
		END { for (r = 1; r <= NR; r++) { line = rows[r]; for (k = cols[r] + 1; k <= m; k++) line = line OFS "NaN"; print line }
			print m > "/dev/stderr" }' >"$tmp/designs-workers.dat" 2>"$tmp/designs-workers.ncol"
}

# Charts next to the table (bench/charts).
draw_charts() {
	local dir=$1
	command -v gnuplot >/dev/null || { echo "charts skipped: gnuplot is not installed" >&2; return 0; }
	gnuplot -e "data='$tmp/designs.dat'; out='$dir/designs.png'" "$repo/bench/charts/designs.gp" &&
		echo "chart written to ${dir#"$repo"/}/designs.png"
	[ -s "$tmp/designs-workers.dat" ] &&
		gnuplot -e "data='$tmp/designs-workers.dat'; out='$dir/designs-workers.png'; ncol=$(cat "$tmp/designs-workers.ncol"); title='Connections per worker (fdp-load -c $conc, all rounds), designs with a pool'" \
			"$repo/bench/charts/workers.gp" && echo "chart written to ${dir#"$repo"/}/designs-workers.png"
}

# gnuplot draws the charts; fetch it when missing and allowed (never in a smoke run).
if [ "$smoke" = 0 ] && ! command -v gnuplot >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
	echo "installing gnuplot-nox" >&2
	DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gnuplot-nox >/dev/null 2>&1
fi

labels=() row_ran=() notes=()
declare -a row_cps row_cpu row_csw row_lead row_p50 row_p99 row_errs row_fail row_served
have_schedstat=0
[ -r /proc/self/schedstat ] && have_schedstat=1
have_fdpass_serve=0 dispatch_ok=0
"$build/fdpass" serve --help >/dev/null 2>&1 && have_fdpass_serve=1
have_dispatch "$build/fdpass" && dispatch_ok=1
# The passing rows ask for passing where the build could do otherwise (its default is auto).
pass_opt=""
[ "$dispatch_ok" = 1 ] && pass_opt="--dispatch pass"
for i in "${!ROWS[@]}"; do
	labels[$i]=${ROWS[$i]%%|*}
	if [ "$i" = 0 ] || [ -z "$only" ] || [[ ${labels[$i]} =~ $only ]]; then
		if [[ ${labels[$i]} == fdpass* ]] && [ "$have_fdpass_serve" = 0 ]; then
			notes+=("${labels[$i]}: skipped, this build's fdpass has no serve command")
			continue
		fi
		if [[ ${labels[$i]} == *"--exec design worker"* ]] && [ ! -x "$build/bench/designs/dsg-fdpass-worker" ]; then
			notes+=("${labels[$i]}: skipped, this build has no bench/designs/dsg-fdpass-worker")
			continue
		fi
		if [[ ${labels[$i]} == *", kernel "* ]] && [ "$dispatch_ok" = 0 ]; then
			notes+=("${labels[$i]}: skipped, this build's fdpass serve has no --dispatch")
			continue
		fi
		row_ran[$i]=1
	fi
done

# One pass: every row for the given rounds under the current load_mode, then the summary
# into the row_* arrays. Sets failed=1 if any row failed.
run_pass() {
	local name=$1 r i
	pass_dir=$tmp/$name
	mkdir -p "$pass_dir"
	for r in $(seq "$rounds"); do
		for i in $(round_order "$r" "${!ROWS[@]}"); do
			[ -n "${row_ran[$i]:-}" ] || continue
			printf '%s %d/%d  %-30s ' "$name" "$r" "$rounds" "${labels[$i]}"
			if run_one "${ROWS[$i]#*|}" "$pass_dir/$i.$r"; then
				printf '%8.0f conn/s  %s µs cpu\n' "$(json_num "$pass_dir/$i.$r.json" cps)" \
					"$(awk -v c="$(kv "$pass_dir/$i.$r.cpu" cpu_us)" \
						-v n="$(json_num "$pass_dir/$i.$r.json" completed)" \
						'BEGIN { if (n > 0) printf "%.1f", c / n; else printf "?" }')"
			else
				echo "FAILED: $(cat "$pass_dir/$i.$r.fail")"
			fi
		done
	done
	for i in "${!ROWS[@]}"; do
		[ -n "${row_ran[$i]:-}" ] || continue
		summarise_row "$i"
		[ -n "${row_fail[$i]}" ] && failed=1
	done
}

started=$SECONDS
loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)
failed=0
run_pass round
table_main=$(table)
write_chart_data
table_seq=""
seq_mode=(-d 2 -c 1)
if [ "$sequential" = 1 ]; then
	main_mode=("${load_mode[@]}") main_rounds=$rounds
	load_mode=("${seq_mode[@]}") rounds=1
	run_pass sequential
	table_seq=$(table)
	load_mode=("${main_mode[@]}") rounds=$main_rounds
fi
echo
echo "$table_main"
if [ -n "$table_seq" ]; then
	echo
	echo "one client connection at a time (${seq_mode[*]}):"
	echo "$table_seq"
fi
echo
echo "$(machine); ${load_mode[*]}, size $size, workers $workers, rounds $rounds; $((SECONDS - started)) s"
echo "load average at start: $loadavg_start; at end: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"
for n in "${notes[@]}"; do
	echo "note: $n"
done
if [ -n "$out" ]; then
	args=""
	[ "$smoke" = 1 ] && args="--smoke"
	[ "$smoke" = 1 ] || args="-d $secs -r $rounds -c $conc -w $workers -s $size"
	[ "$sequential" = 0 ] && [ "$smoke" = 0 ] && args+=" --no-sequential"
	write_doc "$out" "$args"
	echo "table written to ${out#"$repo"/}"
	[ "$smoke" = 1 ] || draw_charts "$(cd "$(dirname "$out")" && pwd)"
fi
if [ "$failed" = 1 ]; then
	echo "run.sh: some rows failed" >&2
	exit 1
fi
