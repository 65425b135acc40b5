#!/usr/bin/env bash
# The section 3 pages cover their header: every function include/fdpass.h declares is in
# fdpass(3)'s SYNOPSIS and described (".BR name ()") in it, and the page lists no function the
# header does not declare; the same for fdpass_runtime.h and fdpass_runtime(3). A function
# added to a header must be added to its page. Usage: man_api_test.sh SRC_DIR
set -uo pipefail
src=$1
status=0

# Functions a header declares: a line that starts with a type and names fdp_NAME(.
declared() { grep -hE '^[a-z].*\bfdp_[a-z0-9_]+\(' "$1" | grep -oE '\bfdp_[a-z0-9_]+\(' | tr -d '(' | sort -u; }
# Functions in a page's SYNOPSIS, and those its text describes (".BR name ()", bold name and
# roman parentheses, as man-pages(7) writes them).
synopsis() { awk '/^\.SH / { s = ($2 == "SYNOPSIS") } s' "$1" | grep -oE '\bfdp_[a-z0-9_]+\(' | tr -d '(' | sort -u; }
described() { awk '/^\.SH / { s = ($2 != "SYNOPSIS") } s' "$1" | grep -oE '\bfdp_[a-z0-9_]+ \(\)' | cut -d' ' -f1 | sort -u; }

check() { # HEADER PAGE
	local h=$src/include/$1 p=$src/man/$2 d s e
	d=$(declared "$h") s=$(synopsis "$p") e=$(described "$p")
	[ -n "$d" ] || { echo "no function found in $1"; status=1; return; }
	for f in $(comm -23 <(echo "$d") <(echo "$s")); do echo "$2: $f (declared in $1) is not in the SYNOPSIS"; status=1; done
	for f in $(comm -13 <(echo "$d") <(echo "$s")); do echo "$2: $f is in the SYNOPSIS but not declared in $1"; status=1; done
	for f in $(comm -23 <(echo "$d") <(echo "$e")); do echo "$2: $f is not described (no \".BR $f ()\")"; status=1; done
	[ "$status" -eq 0 ] && echo "$2: the $(echo "$d" | wc -l) functions of $1, each described"
}
check fdpass.h fdpass.3
check fdpass_runtime.h fdpass_runtime.3
exit "$status"
