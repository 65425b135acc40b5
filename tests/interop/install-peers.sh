#!/usr/bin/env bash
# Install the interop tests' peers from Debian packages when they are missing (run by .ci/run;
# needs root). Python's socket.send_fds and multiprocessing come with python3 itself; Perl's
# IO::FDPass is Debian's libio-fdpass-perl. Without them the tests say they were skipped.
set -euo pipefail

if perl -MIO::FDPass -e 1 2>/dev/null; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
	echo "install-peers: Perl's IO::FDPass is missing and apt-get cannot install it here" >&2
	exit 0
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libio-fdpass-perl >/dev/null
perl -MIO::FDPass -e 1
echo "install-peers: installed libio-fdpass-perl"
