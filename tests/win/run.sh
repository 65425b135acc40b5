#!/usr/bin/env bash
# make test-windows: run the Windows tests (build-windows, cross-compiled by make windows) under
# Wine, in a Wine prefix of their own that is thrown away afterwards, with one wineserver kept
# up for the whole run (so each test does not start its own) and stopped at the end, taking
# with it any process a failed test left. Without Wine it says so and skips (exit 0), unless
# FDPASS_REQUIRE_WINE=1 (CI) makes that a failure.
set -euo pipefail
build=${1:-build-windows}
if ! command -v wine >/dev/null 2>&1 || ! command -v wineserver >/dev/null 2>&1; then
	echo "test-windows: skipped: Wine is not installed (Debian: apt-get install wine wine64;"
	echo "  tests/win/install-tools.sh does it)"
	[ "${FDPASS_REQUIRE_WINE:-0}" = 1 ] && exit 1
	exit 0
fi
prefix=$(mktemp -d /tmp/fdpass-wine.XXXXXX)
export WINEPREFIX=$prefix WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
unset DISPLAY
cleanup() {
	wineserver -k 2>/dev/null || true
	wineserver -w 2>/dev/null || true
	rm -rf "$prefix"
}
trap cleanup EXIT
wineserver -p # one server for the whole run, until cleanup() stops it
# The prefix is made once, before the clock of any test starts (about 20 s the first time).
if ! wineboot --init >/dev/null 2>&1 || ! wine "$build/fdpass.exe" --version >/dev/null 2>&1; then
	echo "test-windows: skipped: Wine cannot run programs here"
	[ "${FDPASS_REQUIRE_WINE:-0}" = 1 ] && exit 1
	exit 0
fi
ctest --test-dir "$build" --output-on-failure -j "${JOBS:-2}"
