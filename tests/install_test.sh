#!/usr/bin/env bash
# make install's layout works for a user: install into a DESTDIR, then build the README's example
# with pkg-config against the installed header and shared library, and run it.
set -euo pipefail
src=$1 build=$2 cc=${3:-cc} extra=${4:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
DESTDIR=$tmp/root cmake --install "$build" --prefix /usr/local >/dev/null
root=$tmp/root
for f in bin/fdpass include/fdpass.h include/fdpass_runtime.h lib/libfdpass.a \
	lib/libfdpass_runtime.a lib/pkgconfig/fdpass.pc lib/pkgconfig/fdpass_runtime.pc; do
	[ -e "$root/usr/local/$f" ] || { echo "not installed: $f"; exit 1; }
done
for lib in libfdpass libfdpass_runtime; do
	soname=$(readelf -d "$root/usr/local/lib/$lib.so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
	[ -e "$root/usr/local/lib/$soname" ] || { echo "no library named by the soname '$soname'"; exit 1; }
done
awk '/^```c$/{f=1;next} /^```$/{if(f)exit} f' "$src/README.md" >"$tmp/demo.c"
export PKG_CONFIG_SYSROOT_DIR=$root PKG_CONFIG_LIBDIR=$root/usr/local/lib/pkgconfig
flags=$(pkg-config --cflags --libs fdpass 2>/dev/null) ||
	flags="-I$root/usr/local/include -L$root/usr/local/lib -lfdpass" # no pkg-config installed
"$cc" -Wall -Wextra -Werror $extra "$tmp/demo.c" $flags -o "$tmp/demo"
out=$(LD_LIBRARY_PATH=$root/usr/local/lib "$tmp/demo")
[ "$out" = "$(cat /etc/hostname)" ] || { echo "example printed '$out'"; exit 1; }
# A worker links the runtime, which brings the mechanism with it.
flags=$(pkg-config --cflags --libs fdpass_runtime 2>/dev/null) ||
	flags="-I$root/usr/local/include -L$root/usr/local/lib -lfdpass_runtime -lfdpass"
"$cc" -Wall -Wextra -Werror $extra "$src/examples/upper_worker.c" $flags -o "$tmp/worker"
echo "installed layout builds and runs the README example"
