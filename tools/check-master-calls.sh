#!/usr/bin/env bash
# The master's files must call each other one way (docs/ARCHITECTURE.md): this prints the
# file-level call graph among them, read from the built objects' symbol tables, and exits 1 if
# it has a cycle (2 when it cannot tell: no build, a stale object; 77, skipped: no nm).
#
# Usage: tools/check-master-calls.sh [BUILD_DIR]   (default: build/ at the top of this tree)
#
# The symbol tables, not a grep: a reference the compiler kept is a dependency whatever the
# source's macros or comments say, and a static helper (a local symbol) never counts. Without
# LTO a call between files cannot be inlined away, so nothing is missed.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$root/build}
objdir=$build/CMakeFiles/fdp_master.dir/src/runtime/master
NM=${NM:-nm}

if ! command -v "$NM" >/dev/null; then
	echo "check-master-calls: no $NM to read the objects with: skipped" >&2
	exit 77
fi

# Exactly the master's sources of this tree: a stale object of a removed file does not count.
shopt -s nullglob
srcs=("$root"/src/runtime/master/*.c)
if ((${#srcs[@]} == 0)); then
	echo "check-master-calls: no sources in $root/src/runtime/master" >&2
	exit 2
fi

table=$(mktemp)
trap 'rm -f "$table"' EXIT
for src in "${srcs[@]}"; do
	name=$(basename "$src" .c)
	obj=$objdir/$name.c.o
	if [[ ! -f $obj ]]; then
		echo "check-master-calls: $obj is missing: build first" >&2
		exit 2
	fi
	if [[ $obj -ot $src ]]; then
		echo "check-master-calls: $obj is older than its source: build first" >&2
		exit 2
	fi
	# "D name sym": defined (global) here; "U name sym": referenced here, defined elsewhere.
	"$NM" -g --defined-only "$obj" | awk -v f="$name" 'NF >= 3 { print "D", f, $3 }' >>"$table"
	"$NM" -u "$obj" | awk -v f="$name" '{ print "U", f, $NF }' >>"$table"
done

awk '
$1 == "D" { def[$3] = $2; files[$2] = 1; next }
$1 == "U" { use[++nu] = $2 " " $3; files[$2] = 1 }
END {
	for (i = 1; i <= nu; i++) {
		split(use[i], u, " ")
		to = def[u[2]]
		if (to == "" || to == u[1])
			continue # another layer, the libc, or itself
		key = u[1] SUBSEP to
		if (!(key in edge))
			out[u[1]] = out[u[1]] " " to
		edge[key] = edge[key] (edge[key] == "" ? "" : ", ") u[2]
	}
	n = 0
	for (f in files)
		names[++n] = f
	for (i = 2; i <= n; i++) # sorted, so the output is stable
		for (j = i; j > 1 && names[j - 1] > names[j]; j--) {
			t = names[j]; names[j] = names[j - 1]; names[j - 1] = t
		}
	print "master file-level call graph (caller -> callee: symbols):"
	for (i = 1; i <= n; i++) {
		f = names[i]
		m = split(out[f], tl, " ")
		if (m == 0)
			printf "  %s -> (nothing)\n", f
		for (k = 1; k <= m; k++)
			printf "  %s -> %s: %s\n", f, tl[k], edge[f SUBSEP tl[k]]
	}
	# Depth-first search; a grey node reached again closes a cycle.
	cycles = 0
	for (i = 1; i <= n; i++)
		if (!(names[i] in colour))
			visit(names[i], 0)
	if (cycles) {
		print "FAIL: the master files call each other in a cycle"
		exit 1
	}
	print "OK: no cycle; an order that respects every call (callers first):"
	line = " "
	for (i = topo_n; i >= 1; i--)
		line = line " " topo[i]
	print line
}
function visit(f, depth,    m, k, tl, j, path) {
	colour[f] = "grey"
	stack[depth] = f
	m = split(out[f], tl, " ")
	for (k = 1; k <= m; k++) {
		if ((tl[k] in colour) && colour[tl[k]] == "grey") {
			path = tl[k]
			for (j = depth; j >= 0 && stack[j] != tl[k]; j--)
				path = stack[j] " -> " path
			print "CYCLE: " tl[k] " -> " path
			cycles++
		} else if (!(tl[k] in colour)) {
			visit(tl[k], depth + 1)
		}
	}
	colour[f] = "black"
	topo[++topo_n] = f
}
' "$table"
