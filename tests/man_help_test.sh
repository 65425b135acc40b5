#!/usr/bin/env bash
# fdpass.1 and the program's --help say the same: the man page's COMMANDS section lists exactly
# the commands of `fdpass --help`, and for each command, the long options its `--help` lists
# (lines "  --name ...") are exactly those of the page's "COMMAND OPTIONS" section (its .TP
# items that start with \-\-name). Compares sets only, so it holds as options and commands are
# added: each must be added to both. Usage: man_help_test.sh FDPASS_PROGRAM MAN_PAGE
set -uo pipefail
prog=$1 page=$2
status=0

# The items of one section of the page: the first word of each line after a .TP, with the
# font macros, quotes and escapes taken off (\-\- is --).
man_items() { # SECTION
	awk -v want="$1" '
		/^\.SH / { sec = substr($0, 5); gsub(/"/, "", sec); in_sec = (toupper(sec) == toupper(want)); next }
		in_sec && /^\.TP/ { tp = 1; next }
		in_sec && tp { tp = 0; line = $0; sub(/^\.[A-Z]+ +/, "", line); gsub(/\\-/, "-", line);
		               gsub(/"/, "", line); gsub(/\\f[A-Z]/, "", line); split(line, w, /[ \[,=]/); print w[1] }
	' "$page" | sort -u
}

compare() { # WHAT HELP_SET MAN_SET
	local only_help only_man
	only_help=$(comm -23 <(printf '%s\n' "$2") <(printf '%s\n' "$3") | sed '/^$/d')
	only_man=$(comm -13 <(printf '%s\n' "$2") <(printf '%s\n' "$3") | sed '/^$/d')
	if [ -n "$only_help" ]; then
		echo "$1: in --help but not in $(basename "$page"):" $only_help
		status=1
	fi
	if [ -n "$only_man" ]; then
		echo "$1: in $(basename "$page") but not in --help:" $only_man
		status=1
	fi
}

help=$("$prog" --help) || { echo "fdpass --help failed"; exit 1; }
verbs=$(printf '%s\n' "$help" | awk '/^Commands:/ { c = 1; next } c && /^  [a-z]/ { print $1 } c && /^$/ { c = 0 }' | sort -u)
[ -n "$verbs" ] || { echo "no command found in fdpass --help"; exit 1; }
compare "commands" "$verbs" "$(man_items COMMANDS | grep -v '^-')"

sections=$(awk '/^\.SH .* OPTIONS"?$/ { s = $2; gsub(/"/, "", s); print tolower(s) }' "$page" | sort -u)
compare "commands with an OPTIONS section" "$(comm -12 <(printf '%s\n' "$verbs") <(printf '%s\n' "$sections"))" "$sections"
for verb in $verbs; do
	if ! out=$("$prog" "$verb" --help 2>/dev/null); then
		echo "fdpass $verb --help failed"
		status=1
		continue
	fi
	opts=$(printf '%s\n' "$out" | sed -n 's/^  \(--[a-z][a-z0-9-]*\).*/\1/p' | sort -u)
	compare "fdpass $verb" "$opts" "$(man_items "$verb OPTIONS" | grep '^--[a-z]')"
done
[ "$status" -eq 0 ] && echo "fdpass.1 lists every command and option of --help, and no other:" $verbs
exit "$status"
