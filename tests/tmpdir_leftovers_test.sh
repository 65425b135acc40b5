#!/usr/bin/env bash
# No test left its private directory behind: nothing in /tmp starts with PREFIX (the harness's
# /tmp/fdpass-test.TAG., TAG naming this build tree; see fdp_test_tmpdir() in harness.c). Run
# by ctest after every harness test. Lists what it finds, then removes it, so that one
# leftover fails one run, not every run after it. Usage: tmpdir_leftovers_test.sh PREFIX
set -uo pipefail
prefix=$1
shopt -s nullglob
left=("$prefix"*)
if [ "${#left[@]}" -eq 0 ]; then
	echo "no ${prefix}* directory left behind"
	exit 0
fi
echo "${#left[@]} test director(ies) left behind:"
for d in "${left[@]}"; do
	echo "  $d: $(ls -A "$d" 2>/dev/null | tr '\n' ' ')"
done
rm -rf "${left[@]}"
exit 1
