#!/usr/bin/env bash
# The FDPASS_PORTABLE library must call none of the Linux-only functions whose fallbacks
# compat.h selects: if one is still called, its fallback was not compiled in.
set -euo pipefail
lib=$1
linux_only='accept4|sendmmsg|recvmmsg|pipe2|dup3|epoll_[a-z_]*|signalfd|pidfd_[a-z_]*|eventfd'
found=$(nm -D --undefined-only "$lib" | awk '{print $2}' | sed 's/@.*//' | grep -Ex "$linux_only" || true)
if [ -n "$found" ]; then
	echo "the portable library still calls: $found"
	exit 1
fi
echo "the portable library calls no Linux-only function"
