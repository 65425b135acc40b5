#!/usr/bin/env bash
# Every manual page in man/ formats without a single warning: groff with every warning on
# (-ww) in the man(7) macros, and mandoc's linter (warnings and worse) when it is installed
# (tests/interop/install-peers.sh installs it from Debian); and its header names the version
# being built. Usage: man_lint_test.sh SRC_DIR
set -uo pipefail
src=$1
command -v groff >/dev/null 2>&1 || { echo "skipped: groff is not installed"; exit 77; }
pages=("$src"/man/*.[1-9])
[ -e "${pages[0]}" ] || { echo "no manual page in $src/man"; exit 1; }
status=0
# Each page's header names the project's version (CMakeLists.txt's project()).
version=$(sed -n 's/^project(fdpass VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
for page in "${pages[@]}"; do
	if ! grep -q "^\.TH .* \"fdpass $version\"" "$page"; then
		echo "$page: its .TH line does not name \"fdpass $version\": $(grep '^\.TH' "$page")"
		status=1
	fi
	out=$(groff -ww -z -man "$page" 2>&1)
	if [ -n "$out" ] || ! groff -ww -z -man "$page" >/dev/null 2>&1; then
		printf 'groff -ww -z -man %s:\n%s\n' "$page" "$out"
		status=1
	fi
	if command -v mandoc >/dev/null 2>&1; then
		if ! out=$(mandoc -T lint -W warning "$page" 2>&1) || [ -n "$out" ]; then
			printf 'mandoc -T lint -W warning %s:\n%s\n' "$page" "$out"
			status=1
		fi
	fi
done
command -v mandoc >/dev/null 2>&1 || echo "mandoc not installed: checked with groff only"
[ "$status" -eq 0 ] && echo "${#pages[@]} manual pages format without a warning"
exit "$status"
