#!/usr/bin/env bash
# make install's layout works for a user: install into a DESTDIR under a prefix other than the
# one the tree was configured with (as `make install PREFIX=...` after a first build does), then
# build the README's example with pkg-config against the installed header and shared library,
# and run it.
set -euo pipefail
src=$1 build=$2 cc=${3:-cc} extra=${4:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=/opt/fdpass-install-test
DESTDIR=$tmp/root cmake --install "$build" --prefix "$prefix" >/dev/null
root=$tmp/root
for f in bin/fdpass include/fdpass.h include/fdpass_runtime.h lib/libfdpass.a \
	lib/libfdpass_runtime.a lib/pkgconfig/fdpass.pc lib/pkgconfig/fdpass_runtime.pc; do
	[ -e "$root$prefix/$f" ] || { echo "not installed: $f"; exit 1; }
done
for lib in libfdpass libfdpass_runtime; do
	soname=$(readelf -d "$root$prefix/lib/$lib.so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
	[ -e "$root$prefix/lib/$soname" ] || { echo "no library named by the soname '$soname'"; exit 1; }
done
grep -qx "prefix=$prefix" "$root$prefix/lib/pkgconfig/fdpass.pc" ||
	{ echo "fdpass.pc does not name the prefix $prefix"; exit 1; }
awk '/^```c$/{f=1;next} /^```$/{if(f)exit} f' "$src/README.md" >"$tmp/demo.c"
export PKG_CONFIG_SYSROOT_DIR=$root PKG_CONFIG_LIBDIR=$root$prefix/lib/pkgconfig
flags=$(pkg-config --cflags --libs fdpass 2>/dev/null) ||
	flags="-I$root$prefix/include -L$root$prefix/lib -lfdpass" # no pkg-config installed
"$cc" -Wall -Wextra -Werror $extra "$tmp/demo.c" $flags -o "$tmp/demo"
out=$(LD_LIBRARY_PATH=$root$prefix/lib "$tmp/demo")
[ "$out" = "$(cat /etc/hostname)" ] || { echo "example printed '$out'"; exit 1; }
# A worker links the runtime, which brings the mechanism with it.
flags=$(pkg-config --cflags --libs fdpass_runtime 2>/dev/null) ||
	flags="-I$root$prefix/include -L$root$prefix/lib -lfdpass_runtime -lfdpass"
"$cc" -Wall -Wextra -Werror $extra "$src/examples/upper_worker.c" $flags -o "$tmp/worker"
echo "installed layout builds and runs the README example"
