#!/usr/bin/env bash
# The Windows build's tools, from Debian, when missing: the mingw-w64 cross-compiler and Wine.
set -euo pipefail
need=()
command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1 || need+=(gcc-mingw-w64-x86-64)
command -v wine >/dev/null 2>&1 || need+=(wine wine64)
[ ${#need[@]} -eq 0 ] && { echo "windows tools: present"; exit 0; }
if [ "$(id -u)" != 0 ]; then
	echo "windows tools: missing ${need[*]} (not root: not installing)"
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${need[@]}" >/dev/null
echo "windows tools: installed ${need[*]}"
