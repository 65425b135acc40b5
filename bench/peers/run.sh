#!/usr/bin/env bash
# The peers benchmark: the same HTTP workload (a tiny fixed answer, Connection: close, so every
# request is a new connection) against nginx, Node.js cluster (round-robin), the bare
# SO_REUSEPORT C server and fdpass serve --handler http (once per policy), with the same number
# of workers, loaded by wrk and by the project's fdp-load. The servers alternate within each
# round; medians over rounds; ratios to the fastest. Writes docs/benchmarks/peers.md and, with
# gnuplot, docs/benchmarks/peers.png and peers-workers.png. See bench/peers/README.md.
#
# Exits 0 when every row that ran was clean, 1 when one failed, 2 on a bad option. A peer that
# is not installed (and cannot be installed) is skipped with a note, not a failure.
set -u

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=bench/lib.sh
. "$here/../lib.sh"

# label | command. {build} is the build folder, {workers} the pool size, {here} this folder,
# {port} a free port (for servers that cannot pick one), {tmp} a scratch folder. A server says
# it is ready with a "ready <port>" line on stdout, with fdpass's "listening on HOST:PORT" and
# "ready:" log lines on stderr, or (for {port} rows) by accepting a connection.
ROWS=(
	"bare SO_REUSEPORT|{build}/bench/peers/bench-reuseport-http -w {workers}"
	"bare passing floor|{build}/bench/peers/bench-pass-http -w {workers}"
	"nginx|nginx -p {tmp} -c {tmp}/nginx.conf -e {tmp}/nginx-error.log"
	"nginx, reuseport|nginx -p {tmp} -c {tmp}/nginx.conf -e {tmp}/nginx-error.log"
	"Node.js cluster RR|node {here}/node_cluster.js {workers}"
	"fdpass, round-robin|{build}/fdpass serve --listen 127.0.0.1:0 --workers {workers} --handler http --policy round-robin --control none --log-level info"
	"fdpass, least-conn|{build}/fdpass serve --listen 127.0.0.1:0 --workers {workers} --handler http --policy least-conn --control none --log-level info"
	"fdpass, hash-ip|{build}/fdpass serve --listen 127.0.0.1:0 --workers {workers} --handler http --policy hash-ip --control none --log-level info"
)

usage() {
	cat <<EOF
usage: bench/peers/run.sh [options]

  --smoke          one short round with fdp-load (and wrk on the first row), only the peers
                   already installed; checks nothing has rotted (writes nothing unless -o)
  -d SECS          seconds of load per server, tool and round (default 4)
  -r ROUNDS        rounds over all servers; medians are reported (default 3)
  -c N             client concurrency (default 32)
  -w N             workers for every server (default: the number of CPUs)
  -b DIR           build folder (default \$FDPASS_BUILD or <repo>/build)
  -o FILE          where to write the table (default docs/benchmarks/peers.md; the charts
                   go next to it)
  --only REGEX     run only the servers whose label matches
  --no-install     do not apt-get missing peers (nginx, wrk, gnuplot); skip them
  -h, --help       show this help
EOF
}

smoke=0 secs=4 rounds=3 conc=32 workers=$(nproc) only="" out="" install=1
build=${FDPASS_BUILD:-$repo/build}
while [ $# -gt 0 ]; do
	case $1 in
	--smoke) smoke=1 ;;
	-d) secs=${2:?}; shift ;;
	-r) rounds=${2:?}; shift ;;
	-c) conc=${2:?}; shift ;;
	-w) workers=${2:?}; shift ;;
	-b) build=${2:?}; shift ;;
	-o) out=${2:?}; shift ;;
	--only) only=${2:?}; shift ;;
	--no-install) install=0 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
	shift
done
build=$(cd "$build" 2>/dev/null && pwd) || { echo "run.sh: no build folder: build first" >&2; exit 1; }
if [ "$smoke" = 1 ]; then
	rounds=1 install=0 conc=4
	load_mode=(-n 300 -c "$conc")
	wrk_secs=1
else
	load_mode=(-d "$secs" -c "$conc")
	wrk_secs=$secs
	[ -n "$out" ] || out=$repo/docs/benchmarks/peers.md
fi

load=$build/bench/load/fdp-load
rusage=$build/bench/load/fdp-rusage
for f in "$load" "$rusage" "$build/bench/peers/bench-reuseport-http" "$build/bench/peers/bench-pass-http"; do
	[ -x "$f" ] || { echo "run.sh: $f missing: build first (cmake --build $build)" >&2; exit 1; }
done

# Missing tools come from Debian packages when we may install them.
install_pkgs() {
	[ "$install" = 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || return 1
	echo "installing $*" >&2
	DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1
}
command -v nginx >/dev/null || install_pkgs nginx-light || install_pkgs nginx
command -v wrk >/dev/null || install_pkgs wrk
if [ "$smoke" = 0 ]; then
	command -v gnuplot >/dev/null || install_pkgs gnuplot-nox
fi
# Debian starts nginx when it installs it; this benchmark runs its own.
[ "$install" = 1 ] && command -v service >/dev/null && service nginx stop >/dev/null 2>&1

notes=()
have_row() {
	case $1 in
	nginx*) command -v nginx >/dev/null || { echo "nginx is not installed"; return 1; } ;;
	Node*) command -v node >/dev/null || { echo "node is not installed"; return 1; } ;;
	fdpass*) "$build/fdpass" serve --help >/dev/null 2>&1 ||
		{ echo "this build's fdpass has no serve command"; return 1; } ;;
	esac
	return 0
}
labels=() row_ran=()
for i in "${!ROWS[@]}"; do
	labels[$i]=${ROWS[$i]%%|*}
	[ -z "$only" ] || [[ ${labels[$i]} =~ $only ]] || continue
	if why=$(have_row "${labels[$i]}"); then
		row_ran[$i]=1
	else
		notes+=("${labels[$i]}: skipped, $why")
	fi
done
tools=(fdp-load)
if command -v wrk >/dev/null; then
	tools=(wrk fdp-load)
else
	notes+=("wrk: skipped, not installed")
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fdp-peers.XXXXXX")
server_pid=""
stop_server() {
	[ -n "$server_pid" ] || return 0
	kill -TERM "$server_pid" 2>/dev/null
	wait "$server_pid" 2>/dev/null
	local rc=$?
	server_pid=""
	return $rc
}
cleanup() {
	stop_server
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Clock ticks (user + system, including reaped children) of process $1 and all its
# descendants, and of $1 alone: the server's first process (fdpass's master, Node's primary,
# nginx's master, the bare server's idle parent). By descent, not by process group: fdpass
# puts each worker in a process group of its own.
clk_tck=$(getconf CLK_TCK)
tree_ticks() {
	# cat, not awk on the glob: a process may exit between the glob and the read, and awk
	# gives up on a file it cannot open.
	cat /proc/[0-9]*/stat 2>/dev/null | awk -v top="$1" '
		{
			pid = $1; s = $0; sub(/^[0-9]+ \(.*\) /, "", s); split(s, f, " ")
			parent[pid] = f[2]; t[pid] = f[12] + f[13] + f[14] + f[15]; own[pid] = f[12] + f[13]
		}
		END {
			for (p in t) {
				q = p
				for (d = 0; d < 8 && q != top && q > 1; d++) q = parent[q]
				if (q == top) tree += t[p]
			}
			print tree + 0, own[top] + 0
		}'
}

# The pid fdp-rusage started (the group leader), once it exists.
leader_of() {
	local p
	for _ in $(seq 100); do
		p=$(cat "/proc/$1/task/$1/children" 2>/dev/null)
		p=${p%% *}
		[ -n "$p" ] && { echo "$p"; return 0; }
		sleep 0.01
	done
	return 1
}

# wrk prints latencies as 1.23ms, 456.00us or 1.20s.
wrk_us() {
	awk -v q="$2" '$1 == q {
		v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
		print v * (u == "s" ? 1e6 : u == "ms" ? 1e3 : 1); exit }' "$1"
}

# Run one load tool against the server; leaves <base>.res with lines: rate, completed, p50,
# p99, errors, tree_us, lead_us (CPU spent by the server's tree and its leader during the load).
run_tool() {
	local tool=$1 port=$2 base=$3 top=$4 t0 t1 rc
	read -r -a t0 <<<"$(tree_ticks "$top")"
	if [ "$tool" = wrk ]; then
		wrk -t 1 -c "$conc" -d "${wrk_secs}s" --latency -H 'Connection: close' \
			"http://127.0.0.1:$port/" >"$base.wrk" 2>&1
		rc=$?
	else
		"$load" --check http --json "${load_mode[@]}" "127.0.0.1:$port" >"$base.json" 2>>"$base.err"
		rc=$?
	fi
	read -r -a t1 <<<"$(tree_ticks "$top")"
	{
		if [ "$tool" = wrk ]; then
			local n errs
			n=$(awk '/requests in/ { print $1; exit }' "$base.wrk")
			errs=$(awk '/Socket errors/ { gsub(/,/, ""); print $4 + $6 + $8 + $10 }
				/Non-2xx/ { print $NF }' "$base.wrk" | awk '{ s += $1 } END { print s + 0 }')
			echo "rate $(awk '/^Requests\/sec/ { print $2 }' "$base.wrk")"
			echo "completed ${n:-0}"
			echo "p50 $(wrk_us "$base.wrk" 50%)"
			echo "p99 $(wrk_us "$base.wrk" 99%)"
			echo "errors $errs"
		else
			echo "rate $(json_num "$base.json" cps)"
			echo "completed $(json_num "$base.json" completed)"
			echo "p50 $(json_num "$base.json" p50)"
			echo "p99 $(json_num "$base.json" p99)"
			echo "errors $(json_num "$base.json" errors)"
			echo "workers $(sed -n 's/.*"workers":\[\([0-9,]*\)\].*/\1/p' "$base.json")"
		fi
		echo "tree_us $(((t1[0] - t0[0]) * 1000000 / clk_tck))"
		echo "lead_us $(((t1[1] - t0[1]) * 1000000 / clk_tck))"
		echo "rc $rc"
	} >"$base.res"
	[ "$rc" = 0 ] || echo "$tool exit $rc: $(tail -n 3 "$base.err" "$base.wrk" 2>/dev/null | tr '\n' ' ')" >>"$base.fail"
}

# One server, one round: start it, warm it up, run every tool, stop it.
run_server() {
	local i=$1 r=$2 cmd=${ROWS[$1]#*|} dir=$tmp/srv.$1.$2 port="" fixed="" argv pid tool
	local base=$tmp/$i.$r
	mkdir -p "$dir"
	cmd=${cmd//\{build\}/$build}
	cmd=${cmd//\{workers\}/$workers}
	cmd=${cmd//\{here\}/$here}
	cmd=${cmd//\{tmp\}/$dir}
	if [[ ${labels[$i]} == nginx* ]]; then
		fixed=$(free_port) || { echo "no free port" >"$base.fail"; return 1; }
		local opts=""
		[[ ${labels[$i]} == *reuseport* ]] && opts=reuseport
		sed -e "s|@WORKERS@|$workers|; s|@PORT@|$fixed|; s|@PREFIX@|$dir|g; s|@LISTEN_OPTS@|$opts|" \
			"$here/nginx.conf.in" >"$dir/nginx.conf"
	fi
	read -r -a argv <<<"$cmd"
	"$rusage" -o "$base.cpu" -k 3 -- "${argv[@]}" >"$base.out" 2>"$base.err" &
	server_pid=$!
	if ! pid=$(leader_of "$server_pid") || ! port=$(wait_ready "$base.out" "$base.err" "$server_pid" "$fixed"); then
		echo "server not ready: $(head -c 300 "$base.err")" >"$base.fail"
		stop_server
		return 1
	fi
	# Warm-up: JIT (Node), page faults, the first fork of anything lazy.
	"$load" --check http -n 300 -c 4 "127.0.0.1:$port" >/dev/null 2>&1
	for tool in "${tools[@]}"; do
		[ "$tool" = wrk ] && [ "$smoke" = 1 ] && [ "$i" != "${first_row}" ] && continue
		run_tool "$tool" "$port" "$base.$tool" "$pid"
		[ -e "$base.$tool.fail" ] && cat "$base.$tool.fail" >>"$base.fail"
	done
	stop_server || echo "server exit status $?: $(tail -c 300 "$base.err")" >>"$base.fail"
	[ ! -e "$base.fail" ]
}

# Median of key $3 over the rounds of row $1, tool $2.
med() {
	local r f
	for r in $(seq "$rounds"); do
		f=$tmp/$1.$r.$2.res
		[ -s "$f" ] && kv "$f" "$3"
	done | grep -v '^$' | median
}
# Median over rounds of (key $3 ÷ completed), in µs per connection.
med_per_conn() {
	local r f
	for r in $(seq "$rounds"); do
		f=$tmp/$1.$r.$2.res
		[ -s "$f" ] || continue
		awk -v a="$(kv "$f" "$3")" -v n="$(kv "$f" completed)" 'BEGIN { if (n > 0) print a / n }'
	done | median
}
sum_errors() {
	local r f
	for r in $(seq "$rounds"); do
		f=$tmp/$1.$r.$2.res
		[ -s "$f" ] && kv "$f" errors
	done | awk '{ s += $1 } END { print s + 0 }'
}
# Per-worker counts from fdp-load summed over rounds, "a/b/c"; empty when nothing was tagged.
served() {
	local r f
	for r in $(seq "$rounds"); do
		f=$tmp/$1.$r.fdp-load.res
		[ -s "$f" ] && kv "$f" workers
	done | awk -F, '{ for (k = 1; k <= NF; k++) v[k] += $k; if (NF > m) m = NF }
		END { for (k = 1; k <= m; k++) printf "%s%d", (k > 1 ? "/" : ""), v[k] }'
}
spread() {
	[ -n "$1" ] || { echo "–"; return; }
	echo "$1" | awk -F/ '{ lo = $1; hi = $1; for (k = 2; k <= NF; k++) { if ($k < lo) lo = $k; if ($k > hi) hi = $k }
		if (lo > 0) printf "%.2f", hi / lo; else printf "%d/0", hi }'
}

# Table for one tool: rate, ratio to the fastest, latency, CPU per connection.
table() {
	local tool=$1 i best=0 rate
	for i in "${!labels[@]}"; do
		[ -n "${row_ran[$i]:-}" ] || continue
		rate=$(med "$i" "$tool" rate)
		[ -n "$rate" ] && best=$(awk -v a="$rate" -v b="$best" 'BEGIN { print (a > b ? a : b) }')
	done
	echo "| server | conn/s | × fastest | p50 µs | p99 µs | server CPU µs/conn | leader CPU µs/conn | spread max/min | errors |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
	for i in "${!labels[@]}"; do
		[ -n "${row_ran[$i]:-}" ] || continue
		rate=$(med "$i" "$tool" rate)
		[ -n "$rate" ] || continue
		local note="" sp="–"
		[ -n "${row_fail[$i]:-}" ] && note=" **FAILED**"
		[ "$tool" = fdp-load ] && sp=$(spread "$(served "$i")")
		printf "| %s%s | %.0f | %.2f | %.0f | %.0f | %.1f | %.1f | %s | %s |\n" "${labels[$i]}" "$note" \
			"$rate" "$(awk -v a="$rate" -v b="$best" 'BEGIN { print (b > 0 ? a / b : 0) }')" \
			"$(med "$i" "$tool" p50)" "$(med "$i" "$tool" p99)" \
			"$(med_per_conn "$i" "$tool" tree_us)" "$(med_per_conn "$i" "$tool" lead_us)" \
			"$sp" "$(sum_errors "$i" "$tool")"
	done
}

row_index() {
	local i
	for i in "${!labels[@]}"; do
		[ "${labels[$i]}" = "$1" ] && [ -n "${row_ran[$i]:-}" ] && { echo "$i"; return 0; }
	done
	return 1
}

# The targets of issues 4 and 5: fdpass's rate over each peer's, per tool.
ratio_cell() {
	local a b
	a=$(med "$1" "$3" rate) b=$(med "$2" "$3" rate)
	[ -n "$a" ] && [ -n "$b" ] || { echo "–"; return; }
	awk -v a="$a" -v b="$b" -v t="$4" 'BEGIN { if (b <= 0) print "–"; else if (t == "") printf "%.2f×", a / b
		else printf "%.2f× %s", a / b, (a / b >= t ? "✓" : "✗") }'
}
targets() {
	local nginx node bare floor f tool
	nginx=$(row_index nginx) node=$(row_index "Node.js cluster RR") bare=$(row_index "bare SO_REUSEPORT")
	floor=$(row_index "bare passing floor")
	echo "| ratio of new connections/s | target | ${tools[*]/%/ |}"
	echo "|---|---:|$(for _ in "${tools[@]}"; do printf -- '---:|'; done)"
	# What passing itself allows: the floor against nginx's target, no fdpass in it.
	[ -n "$floor" ] && [ -n "$nginx" ] && { printf '| %s ÷ nginx | (≥ 0.95×) |' "${labels[$floor]}"; for tool in "${tools[@]}"; do printf ' %s |' "$(ratio_cell "$floor" "$nginx" "$tool" 0.95)"; done; echo; }
	for f in "fdpass, round-robin" "fdpass, least-conn" "fdpass, hash-ip"; do
		f=$(row_index "$f") || continue
		[ -n "$nginx" ] && { printf '| %s ÷ nginx | ≥ 0.95× |' "${labels[$f]}"; for tool in "${tools[@]}"; do printf ' %s |' "$(ratio_cell "$f" "$nginx" "$tool" 0.95)"; done; echo; }
		[ -n "$node" ] && { printf '| %s ÷ Node.js cluster RR | ≥ 2× |' "${labels[$f]}"; for tool in "${tools[@]}"; do printf ' %s |' "$(ratio_cell "$f" "$node" "$tool" 2)"; done; echo; }
		[ -n "$bare" ] && { printf '| %s ÷ bare SO_REUSEPORT | ≥ 0.9× |' "${labels[$f]}"; for tool in "${tools[@]}"; do printf ' %s |' "$(ratio_cell "$f" "$bare" "$tool" 0.9)"; done; echo; }
		[ -n "$floor" ] && { printf '| %s ÷ bare passing floor | – |' "${labels[$f]}"; for tool in "${tools[@]}"; do printf ' %s |' "$(ratio_cell "$f" "$floor" "$tool" "")"; done; echo; }
	done
}

versions() {
	local v=()
	command -v nginx >/dev/null && v+=("nginx $(nginx -v 2>&1 | sed 's|.*/||')")
	command -v node >/dev/null && v+=("Node.js $(node --version)")
	command -v wrk >/dev/null && v+=("wrk $(wrk -v 2>&1 | awk 'NR == 1 { print $2 }')")
	local IFS=,
	echo "${v[*]}" | sed 's/,/, /g'
}

# Chart data: one line per server (label, wrk rate, fdp-load rate, CPU/conn, leader CPU/conn),
# and per-worker shares from fdp-load.
write_chart_data() {
	local i
	for i in "${!labels[@]}"; do
		[ -n "${row_ran[$i]:-}" ] || continue
		printf '"%s"\t%s\t%s\t%s\t%s\n' "${labels[$i]}" "$(med "$i" wrk rate || true)" \
			"$(med "$i" fdp-load rate)" "$(med_per_conn "$i" fdp-load tree_us)" \
			"$(med_per_conn "$i" fdp-load lead_us)"
	done | awk -F'\t' -v OFS='\t' '{ for (k = 2; k <= 5; k++) if ($k == "") $k = "NaN"; print }' >"$tmp/peers.dat"
	for i in "${!labels[@]}"; do
		[ -n "${row_ran[$i]:-}" ] || continue
		local s
		s=$(served "$i")
		[ -n "$s" ] && printf '"%s"\t%s\n' "${labels[$i]}" "$s"
	done | awk -F'\t' -v OFS='\t' '{ n = split($2, v, "/"); t = 0; for (k = 1; k <= n; k++) t += v[k]
		line = $1; for (k = 1; k <= n; k++) line = line OFS (t > 0 ? 100 * v[k] / t : "NaN")
		rows[NR] = line; cols[NR] = n; if (n > m) m = n }
		END { for (r = 1; r <= NR; r++) { line = rows[r]; for (k = cols[r] + 1; k <= m; k++) line = line OFS "NaN"; print line }
			print m > "/dev/stderr" }' >"$tmp/workers.dat" 2>"$tmp/workers.ncol"
}

draw_charts() {
	local dir=$1
	command -v gnuplot >/dev/null || { notes+=("charts: skipped, gnuplot is not installed"); return 0; }
	write_chart_data
	gnuplot -e "data='$tmp/peers.dat'; out='$dir/peers.png'" "$repo/bench/charts/peers.gp" &&
		echo "chart written to ${dir#"$repo"/}/peers.png"
	if [ -s "$tmp/workers.dat" ]; then
		gnuplot -e "data='$tmp/workers.dat'; out='$dir/peers-workers.png'; ncol=$(cat "$tmp/workers.ncol"); title='Connections per worker (fdp-load, all rounds), peers'" \
			"$repo/bench/charts/workers.gp" && echo "chart written to ${dir#"$repo"/}/peers-workers.png"
	fi
}

write_doc() {
	local f=$1 args=$2 tool
	{
		echo "# The peers, measured"
		echo
		echo "Generated by \`bench/peers/run.sh${args:+ $args}\` on $(date -u '+%Y-%m-%d %H:%M UTC')."
		echo
		echo "- Machine: $(machine). Client and server share it, unpinned (the scheduler"
		echo "  places both). Load average when the run started: ${loadavg_start}."
		echo "- Peers: $(versions). Every server runs ${workers} workers."
		echo "- Workload: \`GET /\` with \`Connection: close\`; a ~65-byte text answer, then the server"
		echo "  closes: every request is a new TCP connection. wrk: \`wrk -t 1 -c ${conc} -d ${wrk_secs}s"
		echo "  -H 'Connection: close'\`; fdp-load: \`--check http ${load_mode[*]}\`."
		echo "- ${rounds} round(s); in each, every server is started, warmed up (300 connections), loaded"
		echo "  by each tool in turn and stopped, in table order. Medians over rounds."
		echo "- CPU: user + system ticks of the server's whole process tree during the load"
		echo "  (/proc/PID/stat), per completed connection. *Leader* is the group's first process"
		echo "  alone: fdpass's master, Node's primary and the passing floor's parent (all accept"
		echo "  every connection), nginx's master and the bare server's parent (both idle)."
		echo "- Spread: max/min of the connections each worker answered (bodies naming"
		echo "  \`worker=N\`, fdp-load, summed over rounds); nginx does not say."
		for n in "${notes[@]}"; do
			echo "- Note: $n"
		done
		for tool in "${tools[@]}"; do
			echo
			echo "## Load from $tool"
			echo
			table "$tool"
		done
		echo
		echo "## Targets (issues 4 and 5)"
		echo
		targets
		echo
		echo "![new connections per second per server](peers.png)"
		echo
		echo "![connections per worker](peers-workers.png)"
	} >"$f"
}

started=$SECONDS
loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)
first_row=""
for i in "${!labels[@]}"; do
	[ -n "${row_ran[$i]:-}" ] && { first_row=$i; break; }
done
[ -n "$first_row" ] || { echo "run.sh: no server to run" >&2; exit 1; }
declare -a row_fail
failed=0
for r in $(seq "$rounds"); do
	for i in "${!labels[@]}"; do
		[ -n "${row_ran[$i]:-}" ] || continue
		printf 'round %d/%d  %-22s ' "$r" "$rounds" "${labels[$i]}"
		if run_server "$i" "$r"; then
			for tool in "${tools[@]}"; do
				[ -s "$tmp/$i.$r.$tool.res" ] || continue
				printf '%s %6.0f/s %5.1f µs  ' "$tool" "$(kv "$tmp/$i.$r.$tool.res" rate)" \
					"$(awk -v a="$(kv "$tmp/$i.$r.$tool.res" tree_us)" -v n="$(kv "$tmp/$i.$r.$tool.res" completed)" \
						'BEGIN { print (n > 0 ? a / n : 0) }')"
			done
			echo
		else
			echo "FAILED: $(cat "$tmp/$i.$r.fail")"
			row_fail[$i]=1
			failed=1
		fi
	done
done

for tool in "${tools[@]}"; do
	echo
	echo "load from $tool:"
	table "$tool"
done
echo
targets
for n in "${notes[@]}"; do
	echo "note: $n"
done
echo
echo "$(machine); ${load_mode[*]}, workers $workers, rounds $rounds; $((SECONDS - started)) s"
echo "load average at start: $loadavg_start; at end: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"
if [ -n "$out" ]; then
	mkdir -p "$(dirname "$out")"
	args="-d $secs -r $rounds -c $conc -w $workers"
	[ "$smoke" = 1 ] && args="--smoke"
	[ -n "$only" ] && args+=" --only '$only'"
	write_doc "$out" "$args"
	echo "table written to ${out#"$repo"/}"
	draw_charts "$(cd "$(dirname "$out")" && pwd)"
fi
if [ "$failed" = 1 ]; then
	echo "run.sh: some servers failed" >&2
	exit 1
fi
