#!/usr/bin/env bash
# The peers benchmark: the same HTTP workload (a tiny fixed answer, Connection: close, so every
# request is a new connection) against nginx, Node.js cluster (round-robin), the bare
# SO_REUSEPORT C server and fdpass serve --handler http (once per policy, passing and, where the
# build has --dispatch, kernel dispatch), with the same number of workers, loaded by wrk and by
# the project's fdp-load, then by fdp-load with an uneven mix (a share of large answers). The
# servers alternate within each round; medians over rounds; ratios to the fastest. --scaling
# adds 1 against N workers. Writes docs/benchmarks/peers.md and, with gnuplot, the charts next
# to it (for peers.md: peers.png, peers-workers.png, peers-uneven.png). See bench/peers/README.md.
#
# Exits 0 when every row that ran was clean, 1 when one failed, 2 on a bad option. A peer that
# is not installed (and cannot be installed) is skipped with a note, not a failure.
set -u

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=bench/lib.sh
. "$here/../lib.sh"

# label | command. {build} is the build folder, {workers} the pool size, {here} this folder,
# {pass} "--dispatch pass" where the build takes --dispatch (its default became auto: the
# passing rows must ask for passing), else nothing,
# {port} a free port (for servers that cannot pick one), {tmp} a scratch folder. A server says
# it is ready with a "ready <port>" line on stdout, with fdpass's "listening on HOST:PORT" and
# "ready:" log lines on stderr, or (for {port} rows) by accepting a connection.
ROWS=(
	"bare SO_REUSEPORT|{build}/bench/peers/bench-reuseport-http -w {workers}"
	"bare passing floor|{build}/bench/peers/bench-pass-http -w {workers}"
	"bare shared queue|{build}/bench/peers/bench-shared-http -w {workers}"
	"nginx|nginx -p {tmp} -c {tmp}/nginx.conf -e {tmp}/nginx-error.log"
	"nginx, reuseport|nginx -p {tmp} -c {tmp}/nginx.conf -e {tmp}/nginx-error.log"
	"Node.js cluster RR|node {here}/node_cluster.js {workers}"
	"fdpass, round-robin|{build}/fdpass serve --listen 127.0.0.1:0 --workers {workers} --handler http {pass} --policy round-robin --control none --log-level info"
	"fdpass, least-conn|{build}/fdpass serve --listen 127.0.0.1:0 --workers {workers} --handler http {pass} --policy least-conn --control none --log-level info"
	"fdpass, hash-ip|{build}/fdpass serve --listen 127.0.0.1:0 --workers {workers} --handler http {pass} --policy hash-ip --control none --log-level info"
	"fdpass, kernel round-robin|{build}/fdpass serve --listen 127.0.0.1:0 --workers {workers} --handler http --dispatch kernel --policy round-robin --control none --log-level info"
	"fdpass, kernel least-conn|{build}/fdpass serve --listen 127.0.0.1:0 --workers {workers} --handler http --dispatch kernel --policy least-conn --control none --log-level info"
	"nginx, deferred|nginx -p {tmp} -c {tmp}/nginx.conf -e {tmp}/nginx-error.log"
	"fdpass, kernel round-robin, deferred|{build}/fdpass serve --listen 127.0.0.1:0,defer=on --workers {workers} --handler http --dispatch kernel --policy round-robin --control none --log-level info"
)
# The deferred rows (TCP_DEFER_ACCEPT: nginx's "listen ... deferred", fdpass's defer=on) are
# compared with each other: the other rows accept as clients connect.
# The rows of the uneven load: those that choose by load and the peers issue 15 measures them
# against (the others add little and would make the default run longer: Node.js is far
# behind, hash-ip and passing round-robin and the floor do not choose by load), with the
# bare shared queue as the floor of a queue the workers pull from, and of --scaling.
UNEVEN_ROWS='^(bare SO_REUSEPORT|bare shared queue|nginx|nginx, reuseport|fdpass, least-conn|fdpass, kernel (round-robin|least-conn))$'
SCALING_ROWS='^(bare SO_REUSEPORT|fdpass, (kernel )?(round-robin|least-conn))$'
# The fdpass rows whose master's own CPU the master table shows, and which are targets.
FDPASS_ROWS=("fdpass, round-robin" "fdpass, least-conn" "fdpass, hash-ip" "fdpass, kernel round-robin" "fdpass, kernel least-conn")

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
  --uneven         (the default) after wrk and fdp-load, load the uneven rows once more with
                   fdp-load --heavy: a share of the requests fetch a large answer (/pad/N)
  --no-uneven      skip that load
  --mix PCT:WHAT   the uneven load's share of expensive requests and what they ask for:
                   /pad/N, an N-byte answer, or /sleep/N, an answer after the worker has
                   slept N µs with its loop stopped (nginx: the echo module's
                   echo_blocking_sleep, in whole ms, from Debian's libnginx-mod-http-echo); a bare
                   number N means /pad/N. Default 10:/sleep/1000: one request in ten stops
                   its worker for 1 ms
  -u SECS          seconds of the uneven load per server and round (default 2)
  --open-rate N    then the same mix as an open loop (fdp-load --rate): N new connections
                   per second, each timed from when it was due, so that every row is compared
                   at the same load (a closed loop gives a faster server more of it). Default
                   auto: 80 % of the first uneven row's closed-loop rate in round 1
  --no-open        skip the open loop
  --scaling        then run bare SO_REUSEPORT and the fdpass round-robin and least-conn rows
                   (passing and kernel) with 1 worker and with -w workers, fdp-load only
  --only REGEX     run only the servers whose label matches
  --no-install     do not apt-get missing peers (nginx, wrk, gnuplot); skip them
  -h, --help       show this help
EOF
}

smoke=0 secs=4 rounds=3 conc=32 workers=$(nproc) only="" out="" install=1
uneven=1 mix=10:/sleep/1000 usecs=2 scaling=0 open=1 open_rate=auto
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
	--uneven) uneven=1 ;;
	--no-uneven) uneven=0 ;;
	--open-rate) open_rate=${2:?}; open=1; shift ;;
	--no-open) open=0 ;;
	--mix) mix=${2:?}; shift ;;
	-u) usecs=${2:?}; shift ;;
	--scaling) scaling=1 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
	shift
done
build=$(cd "$build" 2>/dev/null && pwd) || { echo "run.sh: no build folder: build first" >&2; exit 1; }
[[ $mix =~ ^([0-9]+(\.[0-9])?):([0-9]+)$ ]] && mix=${BASH_REMATCH[1]}:/pad/${BASH_REMATCH[3]}
[[ $mix =~ ^([0-9]+(\.[0-9])?):/(pad|sleep)/([0-9]+)$ ]] && [ "${BASH_REMATCH[4]}" -le 1000000 ] ||
	{ echo "run.sh: --mix PCT:/pad/N or PCT:/sleep/N, N at most 1000000: $mix" >&2; exit 2; }
mix_pct=${mix%%:*} mix_path=${mix#*:} mix_kind=${BASH_REMATCH[3]} mix_n=${BASH_REMATCH[4]}
# In words, for the tables.
if [ "$mix_kind" = pad ]; then
	mix_words="$mix_pct % of requests fetch $mix_n bytes"
else
	mix_words="$mix_pct % of requests stop their worker for $mix_n µs"
fi
if [ "$smoke" = 1 ]; then
	rounds=1 install=0 conc=4
	load_mode=(-n 300 -c "$conc")
	uneven_mode=(-n 100 -c "$conc")
	open_mode=(-n 100 -c 64)
	[ "$open_rate" = auto ] && open_rate=1000
	scaling_mode=(-n 200 -c "$conc")
	wrk_secs=1
else
	load_mode=(-d "$secs" -c "$conc")
	uneven_mode=(-d "$usecs" -c "$conc")
	open_mode=(-d "$usecs" -c 256)
	scaling_mode=(-d "$secs" -c "$conc")
	wrk_secs=$secs
	[ -n "$out" ] || out=$repo/docs/benchmarks/peers.md
fi
# The charts are named after the table: peers.md gets peers.png, peers-workers.png, ...
stem=$(basename "${out:-peers.md}" .md)
uneven_mode+=(--heavy "$mix_pct:$mix_path")
open_mode+=(--heavy "$mix_pct:$mix_path")
case $open_rate in
auto) ;;
*[!0-9]* | "" | 0) echo "run.sh: --open-rate: a whole number of connections per second, or auto" >&2; exit 2 ;;
esac

load=$build/bench/load/fdp-load
rusage=$build/bench/load/fdp-rusage
for f in "$load" "$rusage" "$build/bench/peers/bench-reuseport-http" "$build/bench/peers/bench-pass-http" \
	"$build/bench/peers/bench-shared-http"; do
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
# nginx answers /sleep/N with its echo module (a dynamic module Debian packages apart).
nginx_modules=$(nginx -V 2>&1 | sed -n 's/.*--modules-path=\([^ ]*\).*/\1/p')
echo_module=${nginx_modules:-/usr/lib/nginx/modules}/ngx_http_echo_module.so
if [ "$uneven" = 1 ] && [ "$mix_kind" = sleep ] && command -v nginx >/dev/null && [ ! -e "$echo_module" ]; then
	install_pkgs libnginx-mod-http-echo
fi
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
		{ echo "this build's fdpass has no serve command"; return 1; } ;;&
	"fdpass, kernel"*) have_dispatch "$build/fdpass" ||
		{ echo "this build's fdpass serve has no --dispatch"; return 1; } ;;&
	"fdpass"*deferred) "$build/fdpass" serve --listen 127.0.0.1:0,defer=on --check >/dev/null 2>&1 ||
		{ echo "this build's fdpass serve has no defer="; return 1; } ;;
	esac
	return 0
}
pass_opt=""
have_dispatch "$build/fdpass" && pass_opt="--dispatch pass"
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
# The uneven load is one more "tool": fdp-load with --heavy, on the uneven rows only; nginx's
# rows need its echo module for /sleep/N.
[ "$uneven" = 1 ] && tools+=(uneven)
# And the open loop of the same mix ("open"): the same rows, all at one rate.
[ "$uneven" = 1 ] && [ "$open" = 1 ] && tools+=(open)
nginx_uneven=1
if [ "$uneven" = 1 ] && [ "$mix_kind" = sleep ] && command -v nginx >/dev/null && [ ! -e "$echo_module" ]; then
	nginx_uneven=0
	notes+=("nginx rows: no uneven load, nginx's echo module ($echo_module, Debian's libnginx-mod-http-echo) is not installed")
fi
in_uneven() { [[ ${labels[$1]} =~ $UNEVEN_ROWS ]] && { [ "$nginx_uneven" = 1 ] || [[ ${labels[$1]} != nginx* ]]; }; }
# The uneven mix's tools: the closed loop and the open one.
is_mix() { [ "$1" = uneven ] || [ "$1" = open ]; }

# The open loop's rate: --open-rate's, or (auto) 80 % of the closed-loop rate of the first
# row that ran the uneven load, fixed once found (in $tmp/open-rate) for every row and round.
open_rate_now() {
	local f r
	if [ "$open_rate" != auto ]; then
		echo "$open_rate"
		return
	fi
	if [ ! -s "$tmp/open-rate" ]; then
		f=$(ls "$tmp"/*.uneven.res 2>/dev/null | head -n 1)
		r=$([ -n "$f" ] && kv "$f" rate)
		awk -v r="${r:-0}" 'BEGIN { v = int(r * 0.8); print (v >= 100 ? v : 1000) }' >"$tmp/open-rate"
	fi
	cat "$tmp/open-rate"
}

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
# nginx's master, the bare server's idle parent); then that process's own time on a CPU in
# nanoseconds (the first field of /proc/PID/task/*/schedstat, summed over its threads; 0
# where the kernel has no schedstat), which resolves a fraction of a µs per connection where
# ticks resolve 10 ms. By descent, not by process group: fdpass puts each worker in a process
# group of its own.
clk_tck=$(getconf CLK_TCK)
have_schedstat=0
[ -r /proc/self/schedstat ] && have_schedstat=1
tree_ticks() { echo "$(tree_ticks_only "$1") $(cpu_ns "$1")"; }
tree_ticks_only() {
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
leader_of() { first_child "$1"; }

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
	elif [ "$tool" = uneven ]; then
		"$load" --check http --json "${uneven_mode[@]}" "127.0.0.1:$port" >"$base.json" 2>>"$base.err"
		rc=$?
	elif [ "$tool" = open ]; then
		"$load" --check http --json "${open_mode[@]}" --rate "$(open_rate_now)" "127.0.0.1:$port" \
			>"$base.json" 2>>"$base.err"
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
			if is_mix "$tool"; then
				echo "light_p99 $(json_num "$base.json" light_p99)"
				echo "heavy_p99 $(json_num "$base.json" heavy_p99)"
			fi
		fi
		echo "tree_us $(((t1[0] - t0[0]) * 1000000 / clk_tck))"
		if [ "$have_schedstat" = 1 ]; then
			echo "lead_us $(awk -v a="${t0[2]}" -v b="${t1[2]}" 'BEGIN { printf "%.1f", (b - a) / 1000 }')"
		else
			echo "lead_us $(((t1[1] - t0[1]) * 1000000 / clk_tck))"
		fi
		echo "rc $rc"
	} >"$base.res"
	[ "$rc" = 0 ] || echo "$tool exit $rc: $(tail -n 3 "$base.err" "$base.wrk" 2>/dev/null | tr '\n' ' ')" >>"$base.fail"
}

# One server, one round: start it, warm it up, run every tool of pass_tools, stop it. Results
# go to $tmp/<pass_prefix><row>.<round>.<tool>.res.
pass_prefix="" pass_tools=()
run_server() {
	local i=$1 r=$2 cmd=${ROWS[$1]#*|} dir=$tmp/srv.$pass_prefix$1.$2 port="" fixed="" argv pid tool
	local base=$tmp/$pass_prefix$i.$r
	mkdir -p "$dir"
	cmd=${cmd//\{build\}/$build}
	cmd=${cmd//\{workers\}/$workers}
	cmd=${cmd//\{here\}/$here}
	cmd=${cmd//\{pass\}/$pass_opt}
	cmd=${cmd//\{tmp\}/$dir}
	if [[ ${labels[$i]} == nginx* ]]; then
		fixed=$(free_port) || { echo "no free port" >"$base.fail"; return 1; }
		local opts=""
		[[ ${labels[$i]} == *reuseport* ]] && opts=reuseport
		[[ ${labels[$i]} == *deferred* ]] && opts=deferred
		sed -e "s|@WORKERS@|$workers|; s|@PORT@|$fixed|; s|@PREFIX@|$dir|g; s|@LISTEN_OPTS@|$opts|" \
			"$here/nginx.conf.in" >"$dir/nginx.conf"
		: >"$dir/main-extra.conf"
		: >"$dir/server-extra.conf"
		if [ "$mix_kind" = pad ]; then
			# The uneven load's large answer: the short answer's line, padded with x.
			mkdir -p "$dir/pad"
			{
				echo "server=nginx generation=1 conn=100000 id=100000 peer=127.0.0.1:50000"
				head -c "$mix_n" /dev/zero | tr '\0' x
			} | head -c "$mix_n" >"$dir/pad/$mix_n"
			# Run as root, nginx's workers drop to an unprivileged user, who must reach the
			# file through the scratch folder (mktemp makes it 0700).
			chmod a+x "$tmp" "$dir" && chmod a+rx "$dir/pad" && chmod a+r "$dir/pad/$mix_n"
		elif [ "$uneven" = 1 ] && [ "$nginx_uneven" = 1 ]; then
			echo "load_module $echo_module;" >"$dir/main-extra.conf"
			printf 'location = /sleep/%s {\n\techo_blocking_sleep %s;\n\techo "%s";\n}\n' "$mix_n" \
				"$(awk -v n="$mix_n" 'BEGIN { printf "%.3f", n / 1e6 }')" \
				"server=nginx generation=1 conn=100000 id=100000 peer=127.0.0.1:50000" >"$dir/server-extra.conf"
		fi
	fi
	read -r -a argv <<<"$cmd"
	"$rusage" -o "$base.cpu" -k 3 -- "${argv[@]}" >"$base.out" 2>"$base.err" &
	server_pid=$!
	if ! pid=$(leader_of "$server_pid") || ! port=$(wait_ready "$base.out" "$base.err" "$server_pid" "$fixed"); then
		echo "server not ready: $(head -c 300 "$base.err")" >"$base.fail"
		stop_server
		return 1
	fi
	if ! kernel_dispatched "${labels[$i]}" "$base.err"; then
		echo "dispatch not as the row says: $(grep -m 1 -i 'dispatch' "$base.err")" >"$base.fail"
		stop_server
		return 1
	fi
	# Warm-up: JIT (Node), page faults, the first fork of anything lazy.
	"$load" --check http -n 300 -c 4 "127.0.0.1:$port" >/dev/null 2>&1
	for tool in "${pass_tools[@]}"; do
		[ "$tool" = wrk ] && [ "$smoke" = 1 ] && [ "$i" != "${first_row}" ] && continue
		is_mix "$tool" && ! in_uneven "$i" && continue
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
# Per-worker counts from tool $2 (default fdp-load) summed over rounds, "a/b/c", padded with
# 0 to the pool size (fdp-load knows only the workers that answered); empty when nothing was
# tagged.
served() {
	local r f
	for r in $(seq "$rounds"); do
		f=$tmp/$1.$r.${2:-fdp-load}.res
		[ -s "$f" ] && kv "$f" workers
	done | awk -F, -v w="$workers" '{ for (k = 1; k <= NF; k++) v[k] += $k; if (NF > m) m = NF }
		END { if (m == 0) exit; if (w > m) m = w; for (k = 1; k <= m; k++) printf "%s%d", (k > 1 ? "/" : ""), v[k] }'
}
spread() {
	[ -n "$1" ] || { echo "–"; return; }
	echo "$1" | awk -F/ '{ lo = $1; hi = $1; for (k = 2; k <= NF; k++) { if ($k < lo) lo = $k; if ($k > hi) hi = $k }
		if (lo > 0) printf "%.2f", hi / lo; else printf "%d/0", hi }'
}
ran_tool() { ! is_mix "$2" || in_uneven "$1"; }

# Table for one tool: rate, ratio to the fastest, latency, CPU per connection. The uneven load
# adds the p99 of its light and of its heavy requests apart.
table() {
	local tool=$1 i best=0 rate
	for i in "${!labels[@]}"; do
		[ -n "${row_ran[$i]:-}" ] && ran_tool "$i" "$tool" || continue
		rate=$(med "$i" "$tool" rate)
		[ -n "$rate" ] && best=$(awk -v a="$rate" -v b="$best" 'BEGIN { print (a > b ? a : b) }')
	done
	if is_mix "$tool"; then
		echo "| server | conn/s | × fastest | p50 µs | p99 µs | p99 light µs | p99 heavy µs | server CPU µs/conn | leader CPU µs/conn | spread max/min | errors |"
		echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	else
		echo "| server | conn/s | × fastest | p50 µs | p99 µs | server CPU µs/conn | leader CPU µs/conn | spread max/min | errors |"
		echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
	fi
	for i in "${!labels[@]}"; do
		[ -n "${row_ran[$i]:-}" ] && ran_tool "$i" "$tool" || continue
		rate=$(med "$i" "$tool" rate)
		[ -n "$rate" ] || continue
		local note="" sp="–" extra=""
		[ -n "${row_fail[$i]:-}" ] && note=" **FAILED**"
		[ "$tool" != wrk ] && sp=$(spread "$(served "$i" "$tool")")
		is_mix "$tool" &&
			extra=$(printf ' %.0f | %.0f |' "$(med "$i" "$tool" light_p99)" "$(med "$i" "$tool" heavy_p99)")
		printf "| %s%s | %.0f | %.2f | %.0f | %.0f |%s %.1f | %.2f | %s | %s |\n" "${labels[$i]}" "$note" \
			"$rate" "$(awk -v a="$rate" -v b="$best" 'BEGIN { print (b > 0 ? a / b : 0) }')" \
			"$(med "$i" "$tool" p50)" "$(med "$i" "$tool" p99)" "$extra" \
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

# The master's (the leader's) own CPU per connection and the ceiling it implies: the new
# connections per second one core could carry with the master doing only that. Under 0.05 µs
# (a ceiling past 20 million a second) the master is off the path.
ceiling_cell() {
	awk -v u="$1" 'BEGIN { if (u == "") print "–"; else if (u < 0.05) print "off the path"
		else printf "%.0f\n", 1e6 / u }' | sed -e ':a' -e 's/\([0-9]\)\([0-9]\{3\}\)\($\|,\)/\1,\2\3/; ta'
}
master_table() {
	local f i tool u
	printf '| fdpass row |'
	for tool in "${tools[@]}"; do printf ' master µs/conn (%s) | ceiling conn/s per master core (%s) |' "$tool" "$tool"; done
	echo
	printf '|---|'
	for _ in "${tools[@]}"; do printf -- '---:|---:|'; done
	echo
	for f in "${FDPASS_ROWS[@]}"; do
		i=$(row_index "$f") || continue
		printf '| %s |' "$f"
		for tool in "${tools[@]}"; do
			if ran_tool "$i" "$tool" && u=$(med_per_conn "$i" "$tool" lead_us) && [ -n "$u" ]; then
				printf ' %.2f | %s |' "$u" "$(ceiling_cell "$u")"
			else
				printf ' – | – |'
			fi
		done
		echo
	done
}

# The targets of issues 4, 5 and 15: fdpass's rate over each peer's, per tool; for the kernel
# rows also CPU per connection, the master's own CPU, and the uneven load's spread and p99.
ratio_cell() {
	local a b
	a=$(med "$1" "$3" rate) b=$(med "$2" "$3" rate)
	[ -n "$a" ] && [ -n "$b" ] || { echo "–"; return; }
	awk -v a="$a" -v b="$b" -v t="$4" 'BEGIN { if (b <= 0) print "–"; else if (t == "") printf "%.2f×", a / b
		else printf "%.2f× %s", a / b, (a / b >= t ? "✓" : "✗") }'
}
# CPU per connection of row $1 over row $2's, tool $3, target at most $4.
cpu_ratio_cell() {
	local a b
	a=$(med_per_conn "$1" "$3" tree_us) b=$(med_per_conn "$2" "$3" tree_us)
	[ -n "$a" ] && [ -n "$b" ] || { echo "–"; return; }
	awk -v a="$a" -v b="$b" -v t="$4" 'BEGIN { if (b <= 0) print "–"; else if (t == "") printf "%.2f×", a / b
		else printf "%.2f× %s", a / b, (a / b <= t ? "✓" : "✗") }'
}
master_cell() {
	local u
	u=$(med_per_conn "$1" "$2" lead_us)
	[ -n "$u" ] || { echo "–"; return; }
	awk -v u="$u" 'BEGIN { printf "%.2f µs %s", u, (u < 0.5 ? "✓" : "✗") }'
}
# A row of the targets table: label, target, then a cell per tool from "$3 <row> <tool>"
# (a function and its leading arguments in $3, the row in $4, the tool appended).
target_row() {
	local what=$1 want=$2 fn=$3 tool
	shift 3
	printf '| %s | %s |' "$what" "$want"
	for tool in "${tools[@]}"; do
		if is_mix "$tool" && ! in_uneven "$1"; then
			printf ' – |'
		else
			printf ' %s |' "$("$fn" "$@" "$tool")"
		fi
	done
	echo
}
# The targets are set for the even loads; under the uneven one the ratios are shown unjudged.
ratio_fn() { ratio_cell "$1" "$2" "$4" "$(is_mix "$4" || echo "$3")"; }
cpu_fn() { cpu_ratio_cell "$1" "$2" "$4" "$(is_mix "$4" || echo "$3")"; }
targets() {
	local nginx nginx_rp node bare floor f
	nginx=$(row_index nginx) node=$(row_index "Node.js cluster RR") bare=$(row_index "bare SO_REUSEPORT")
	nginx_rp=$(row_index "nginx, reuseport") floor=$(row_index "bare passing floor")
	echo "| measure (a ratio of new connections/s unless it says) | target | ${tools[*]/%/ |}"
	echo "|---|---:|$(for _ in "${tools[@]}"; do printf -- '---:|'; done)"
	# What passing itself allows: the floor against nginx's target, no fdpass in it.
	[ -n "$floor" ] && [ -n "$nginx" ] && target_row "${labels[$floor]} ÷ nginx" "(≥ 0.95×)" ratio_fn "$floor" "$nginx" 0.95
	for f in "fdpass, round-robin" "fdpass, least-conn" "fdpass, hash-ip"; do
		f=$(row_index "$f") || continue
		[ -n "$nginx" ] && target_row "${labels[$f]} ÷ nginx" "≥ 0.95×" ratio_fn "$f" "$nginx" 0.95
		[ -n "$node" ] && target_row "${labels[$f]} ÷ Node.js cluster RR" "≥ 2×" ratio_fn "$f" "$node" 2
		[ -n "$bare" ] && target_row "${labels[$f]} ÷ bare SO_REUSEPORT" "≥ 0.9×" ratio_fn "$f" "$bare" 0.9
		[ -n "$floor" ] && target_row "${labels[$f]} ÷ bare passing floor" "–" ratio_fn "$f" "$floor" ""
	done
	for f in "fdpass, kernel round-robin" "fdpass, kernel least-conn"; do
		f=$(row_index "$f") || continue
		[ -n "$bare" ] && target_row "${labels[$f]} ÷ bare SO_REUSEPORT" "≥ 0.97×" ratio_fn "$f" "$bare" 0.97
		[ -n "$nginx" ] && target_row "${labels[$f]} ÷ nginx" "–" ratio_fn "$f" "$nginx" ""
		[ -n "$nginx_rp" ] && target_row "${labels[$f]} ÷ nginx, reuseport" "–" ratio_fn "$f" "$nginx_rp" ""
		[ -n "$bare" ] && target_row "${labels[$f]}: CPU/conn ÷ bare SO_REUSEPORT's" "≤ 1.05×" cpu_fn "$f" "$bare" 1.05
		target_row "${labels[$f]}: the master's own CPU per connection" "< 0.5 µs" master_cell "$f"
	done
}

# Issue 15's targets under the uneven load: kernel least-conn's spread at most 1.1, and its p99
# below nginx's (the better of the two nginx rows).
# The better nginx row's median p99 under tool $1 (uneven or open), or nothing.
nginx_best_p99() {
	local n i p best=""
	for n in nginx "nginx, reuseport"; do
		i=$(row_index "$n") || continue
		p=$(med "$i" "$1" p99)
		[ -n "$p" ] && best=$(awk -v a="$p" -v b="$best" 'BEGIN { print (b == "" || a < b ? a : b) }')
	done
	echo "$best"
}
# p99 $1 against nginx's $2, "–" without it; judged (✓ below it) for kernel least-conn ($3).
p99_cell() {
	awk -v a="$1" -v b="$2" -v k="$3" 'BEGIN {
		if (a == "" || b == "" || b <= 0) { print "–"; exit }
		printf "%.2f×", a / b; if (k == "fdpass, kernel least-conn") printf " %s", (a < b ? "✓" : "✗"); print "" }'
}
uneven_targets() {
	local f i nginx_p99 open_p99="" p po sp
	nginx_p99=$(nginx_best_p99 uneven)
	[ "$open" = 1 ] && open_p99=$(nginx_best_p99 open)
	echo "| row (uneven load) | spread max/min (target ≤ 1.1 for kernel least-conn) | p99 µs | p99 ÷ nginx's best p99 (target < 1 for kernel least-conn) | open loop: p99 µs | open loop: p99 ÷ nginx's best |"
	echo "|---|---:|---:|---:|---:|---:|"
	for f in "${FDPASS_ROWS[@]}" "bare SO_REUSEPORT" "bare shared queue"; do
		i=$(row_index "$f") || continue
		in_uneven "$i" || continue
		p=$(med "$i" uneven p99)
		[ -n "$p" ] || continue
		po=$([ "$open" = 1 ] && med "$i" open p99)
		sp=$(spread "$(served "$i" uneven)")
		if [ "$f" = "fdpass, kernel least-conn" ]; then
			sp+=$(awk -v s="$sp" 'BEGIN { print (s + 0 > 0 && s + 0 <= 1.1 ? " ✓" : " ✗") }')
		fi
		printf '| %s | %s | %.0f | %s | %s | %s |\n' "$f" "$sp" "$p" "$(p99_cell "$p" "$nginx_p99" "$f")" \
			"$([ -n "$po" ] && printf '%.0f' "$po" || echo –)" "$(p99_cell "$po" "$open_p99" "$f")"
	done
}

# --scaling: rate with 1 worker and with $workers, fdp-load only, for the scaling rows.
scaling_table() {
	local i a b
	echo "| server | conn/s, 1 worker | conn/s, $workers workers | $workers ÷ 1 | CPU µs/conn, 1 | CPU µs/conn, $workers | leader µs/conn, 1 | leader µs/conn, $workers |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|"
	for i in "${!labels[@]}"; do
		[ -n "${row_ran[$i]:-}" ] && [[ ${labels[$i]} =~ $SCALING_ROWS ]] || continue
		a=$(med "w1-$i" fdp-load rate) b=$(med "w$workers-$i" fdp-load rate)
		[ -n "$a" ] && [ -n "$b" ] || continue
		printf '| %s | %.0f | %.0f | %.2f× | %.1f | %.1f | %.2f | %.2f |\n' "${labels[$i]}" "$a" "$b" \
			"$(awk -v a="$a" -v b="$b" 'BEGIN { print (a > 0 ? b / a : 0) }')" \
			"$(med_per_conn "w1-$i" fdp-load tree_us)" "$(med_per_conn "w$workers-$i" fdp-load tree_us)" \
			"$(med_per_conn "w1-$i" fdp-load lead_us)" "$(med_per_conn "w$workers-$i" fdp-load lead_us)"
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
# per-worker shares from fdp-load, and the uneven load's p99 (all, light, heavy) and spread.
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
	: >"$tmp/uneven.dat"
	[ "$uneven" = 1 ] || return 0
	for i in "${!labels[@]}"; do
		[ -n "${row_ran[$i]:-}" ] && in_uneven "$i" || continue
		local sp
		sp=$(spread "$(served "$i" uneven)")
		[[ $sp =~ ^[0-9.]+$ ]] || sp=NaN
		printf '"%s"\t%s\t%s\t%s\t%s\n' "${labels[$i]}" "$(med "$i" uneven p99)" \
			"$(med "$i" uneven light_p99)" "$(med "$i" uneven heavy_p99)" "$sp"
	done | awk -F'\t' -v OFS='\t' '{ for (k = 2; k <= 5; k++) if ($k == "") $k = "NaN"; print }' >"$tmp/uneven.dat"
}

draw_charts() {
	local dir=$1
	command -v gnuplot >/dev/null || { notes+=("charts: skipped, gnuplot is not installed"); return 0; }
	write_chart_data
	gnuplot -e "data='$tmp/peers.dat'; out='$dir/$stem.png'" "$repo/bench/charts/peers.gp" &&
		echo "chart written to ${dir#"$repo"/}/$stem.png"
	if [ -s "$tmp/workers.dat" ]; then
		gnuplot -e "data='$tmp/workers.dat'; out='$dir/$stem-workers.png'; ncol=$(cat "$tmp/workers.ncol"); title='Connections per worker (fdp-load, all rounds), peers'" \
			"$repo/bench/charts/workers.gp" && echo "chart written to ${dir#"$repo"/}/$stem-workers.png"
	fi
	if [ -s "$tmp/uneven.dat" ]; then
		gnuplot -e "data='$tmp/uneven.dat'; out='$dir/$stem-uneven.png'; mix='$mix_words'" \
			"$repo/bench/charts/uneven.gp" && echo "chart written to ${dir#"$repo"/}/$stem-uneven.png"
	fi
}

write_doc() {
	local f=$1 args=$2 tool
	{
		echo "# The peers, measured"
		echo
		echo "Generated by \`bench/peers/run.sh${args:+ $args}\` on $(date -u '+%Y-%m-%d %H:%M UTC')$(
			git -C "$repo" rev-parse --short HEAD 2>/dev/null | sed 's/^/, commit /')."
		echo
		echo "- Machine: $(machine). Client and server share it, unpinned (the scheduler"
		echo "  places both). Load average when the run started: ${loadavg_start}."
		echo "- Peers: $(versions). Every server runs ${workers} workers."
		echo "- Workload: \`GET /\` with \`Connection: close\`; a ~65-byte text answer, then the server"
		echo "  closes: every request is a new TCP connection. wrk: \`wrk -t 1 -c ${conc} -d ${wrk_secs}s"
		echo "  -H 'Connection: close'\`; fdp-load: \`--check http ${load_mode[*]}\`."
		if [ "$uneven" = 1 ]; then
			echo "- Uneven load: \`fdp-load --check http ${uneven_mode[*]}\`: one connection in"
			echo "  $(awk -v p="$mix_pct" 'BEGIN { printf "%g", 100 / p }') (${mix_pct} %, evenly spaced) asks for \`${mix_path}\`, the rest for the short answer."
			if [ "$mix_kind" = pad ]; then
				echo "  \`/pad/${mix_n}\` is a ${mix_n}-byte answer (the same line padded with x; nginx sends a"
				echo "  file of that size with sendfile)."
			else
				echo "  \`/sleep/${mix_n}\` is answered after the worker has slept ${mix_n} µs with its whole loop"
				echo "  stopped, as a request that computes would stop it (nginx: \`echo_blocking_sleep\` of its"
				echo "  echo module, which answers chunked)."
			fi
			echo "  Only the rows that choose by load and their peers run it."
		fi
		echo "- ${rounds} round(s); in each, every server is started, warmed up (300 connections), loaded"
		echo "  by each tool in turn and stopped, in table order in odd rounds and in reverse in"
		echo "  even ones (what drifts over a round weighs on every row alike). Medians over rounds."
		echo "- CPU: user + system ticks of the server's whole process tree during the load"
		echo "  (/proc/PID/stat), per completed connection. *Leader* is the group's first process"
		echo "  alone, its time on a CPU from /proc/PID/task/*/schedstat (nanoseconds): fdpass's"
		echo "  master, Node's primary and the passing floor's parent (which accept every"
		echo "  connection, except fdpass's master with \`--dispatch kernel\`), nginx's master and the"
		echo "  bare server's parent (both idle)."
		echo "- Spread: max/min of the connections each worker answered (bodies naming"
		echo "  \`worker=N\`, fdp-load, summed over rounds); nginx does not say."
		for n in "${notes[@]}"; do
			echo "- Note: $n"
		done
		for tool in "${tools[@]}"; do
			echo
			if [ "$tool" = uneven ]; then
				echo "## Uneven load (fdp-load, ${mix_words})"
			elif [ "$tool" = open ]; then
				echo "## Uneven load, open loop ($(open_rate_now) new connections per second, ${mix_words})"
				echo
				echo "The same mix at a fixed rate (\`fdp-load --check http ${open_mode[*]} --rate"
				echo "$(open_rate_now)\`), every row at the same load, each connection timed from when it was"
				echo "due: in the closed loop above a faster server is given more connections per second,"
				echo "the expensive ones too, so its percentiles are taken at a higher load."
			else
				echo "## Load from $tool"
			fi
			echo
			table "$tool"
		done
		echo
		echo "## The master's CPU per connection"
		echo
		echo "The leader's own CPU time during each load over the connections completed, and the"
		echo "ceiling it implies: 10⁶ ÷ µs per connection, the new connections per second one"
		echo "master core could carry if it did nothing else (\"off the path\": under 0.05 µs)."
		echo
		master_table
		echo
		echo "## Targets (issues 4, 5 and 15)"
		echo
		targets
		if [ "$uneven" = 1 ]; then
			echo
			uneven_targets
		fi
		if [ "$scaling" = 1 ]; then
			echo
			echo "## From 1 to $workers workers (fdp-load, \`${scaling_mode[*]}\`)"
			echo
			scaling_table
		fi
		echo
		echo "![new connections per second per server]($stem.png)"
		echo
		echo "![connections per worker]($stem-workers.png)"
		if [ "$uneven" = 1 ]; then
			echo
			echo "![p99 latency and spread under the uneven load]($stem-uneven.png)"
		fi
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
# One server and round under the current pass (pass_prefix, pass_tools, workers), with its
# line of progress.
run_and_report() {
	local i=$1 r=$2 tool f
	printf 'round %d/%d  %-28s ' "$r" "$rounds" "${labels[$i]}${pass_prefix:+ (${pass_prefix%-})}"
	if run_server "$i" "$r"; then
		for tool in "${pass_tools[@]}"; do
			f=$tmp/$pass_prefix$i.$r.$tool.res
			[ -s "$f" ] || continue
			printf '%s %6.0f/s %5.1f µs  ' "$tool" "$(kv "$f" rate)" \
				"$(awk -v a="$(kv "$f" tree_us)" -v n="$(kv "$f" completed)" \
					'BEGIN { print (n > 0 ? a / n : 0) }')"
		done
		echo
	else
		echo "FAILED: $(cat "$tmp/$pass_prefix$i.$r.fail")"
		row_fail[$i]=1
		failed=1
	fi
}
pass_tools=("${tools[@]}")
for r in $(seq "$rounds"); do
	for i in $(round_order "$r" "${!labels[@]}"); do
		[ -n "${row_ran[$i]:-}" ] || continue
		run_and_report "$i" "$r"
	done
done
if [ "$scaling" = 1 ]; then
	main_workers=$workers main_mode=("${load_mode[@]}")
	load_mode=("${scaling_mode[@]}") pass_tools=(fdp-load)
	for r in $(seq "$rounds"); do
		for i in $(round_order "$r" "${!labels[@]}"); do
			[ -n "${row_ran[$i]:-}" ] && [[ ${labels[$i]} =~ $SCALING_ROWS ]] || continue
			for w in 1 "$main_workers"; do
				workers=$w pass_prefix="w$w-"
				run_and_report "$i" "$r"
			done
		done
	done
	workers=$main_workers load_mode=("${main_mode[@]}") pass_prefix=""
fi

for tool in "${tools[@]}"; do
	echo
	if [ "$tool" = uneven ]; then
		echo "uneven load (fdp-load ${uneven_mode[*]}: ${mix_words}):"
	elif [ "$tool" = open ]; then
		echo "uneven load, open loop (fdp-load ${open_mode[*]} --rate $(open_rate_now)):"
	else
		echo "load from $tool:"
	fi
	table "$tool"
done
echo
echo "the master's (leader's) CPU per connection and the ceiling it implies:"
master_table
echo
targets
if [ "$uneven" = 1 ]; then
	echo
	uneven_targets
fi
if [ "$scaling" = 1 ]; then
	echo
	echo "from 1 to $workers workers (fdp-load ${scaling_mode[*]}):"
	scaling_table
fi
for n in "${notes[@]}"; do
	echo "note: $n"
done
echo
echo "$(machine); ${load_mode[*]}, workers $workers, rounds $rounds; $((SECONDS - started)) s"
echo "load average at start: $loadavg_start; at end: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"
if [ -n "$out" ]; then
	mkdir -p "$(dirname "$out")"
	args="-d $secs -r $rounds -c $conc -w $workers"
	[ "$uneven" = 1 ] && args+=" --mix $mix -u $usecs" || args+=" --no-uneven"
	[ "$scaling" = 1 ] && args+=" --scaling"
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
