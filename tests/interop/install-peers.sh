#!/usr/bin/env bash
# Install the tests' peers and tools from Debian packages when they are missing (run by
# .ci/run; needs root). Python's socket.send_fds and multiprocessing come with python3 itself;
# Perl's IO::FDPass is Debian's libio-fdpass-perl; systemd-socket-activate (the socket
# activation test's manager) is in Debian's systemd package; the Prometheus text parser that
# checks `fdpass serve --metrics` is Debian's python3-prometheus-client (for /usr/bin/python3);
# mandoc lints the manual pages (alongside groff, tests/man_lint_test.sh). Without them the
# tests say they were skipped.
set -euo pipefail

missing=()
perl -MIO::FDPass -e 1 2>/dev/null || missing+=(libio-fdpass-perl)
[ -x /usr/bin/systemd-socket-activate ] || missing+=(systemd)
/usr/bin/python3 -c 'import prometheus_client' 2>/dev/null || missing+=(python3-prometheus-client)
command -v mandoc >/dev/null 2>&1 || missing+=(mandoc)
if ((${#missing[@]} == 0)); then
	exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
	echo "install-peers: ${missing[*]} missing and apt-get cannot install them here" >&2
	exit 0
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
perl -MIO::FDPass -e 1
[ -x /usr/bin/systemd-socket-activate ]
/usr/bin/python3 -c 'import prometheus_client'
command -v mandoc >/dev/null
echo "install-peers: installed ${missing[*]}"
