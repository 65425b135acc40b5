#!/usr/bin/env bash
# Install the interop tests' peers from Debian packages when they are missing (run by .ci/run;
# needs root). Python's socket.send_fds and multiprocessing come with python3 itself; Perl's
# IO::FDPass is Debian's libio-fdpass-perl; systemd-socket-activate (the socket activation
# test's manager) is in Debian's systemd package. Without them the tests say they were skipped.
set -euo pipefail

missing=()
perl -MIO::FDPass -e 1 2>/dev/null || missing+=(libio-fdpass-perl)
[ -x /usr/bin/systemd-socket-activate ] || missing+=(systemd)
if ((${#missing[@]} == 0)); then
	exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
	echo "install-peers: ${missing[*]} missing and apt-get cannot install it here" >&2
	exit 0
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
perl -MIO::FDPass -e 1
[ -x /usr/bin/systemd-socket-activate ]
echo "install-peers: installed ${missing[*]}"
