#!/usr/bin/env bash
# make install's layout works for a packager and for a user. Usage:
#   install_test.sh SRC_DIR BUILD_DIR [CC [EXTRA_CFLAGS]]
# 1. `make install PREFIX=... DESTDIR=...` (as after a first build configured with another
#    prefix) puts every file under DESTDIR/PREFIX and nothing elsewhere: program, headers,
#    shared libraries with their soname links, static libraries, pkg-config files naming the
#    prefix, manual pages (which man -l or groff renders) and the documentation.
# 2. The README's "Under any other prefix" block, run as written with its prefix replaced by a
#    temporary one: it builds the README's example with pkg-config and an RPATH, and the
#    example runs without LD_LIBRARY_PATH; linked with the archive by path, it needs no
#    library of ours. A worker (examples/upper_worker.c) builds the same way against
#    fdpass_runtime, and the installed program runs.
set -euo pipefail
src=$1 build=$2 cc=${3:-cc} extra=${4:-}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/fdpass-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM HUP PIPE # through the EXIT trap: a killed run leaves nothing either
fail() { echo "$*"; exit 1; }

# make install, through the Makefile when the tree was built by it (Unix Makefiles), else the
# cmake --install it runs.
make_install() { # PREFIX DESTDIR
	if [ -e "$build/Makefile" ] && command -v make >/dev/null 2>&1; then
		make -s -C "$src" install BUILD="$build" PREFIX="$1" DESTDIR="$2" >/dev/null
	else
		DESTDIR=$2 cmake --install "$build" --prefix "$1" >/dev/null
	fi
}

# 1. The staged layout.
prefix=/opt/fdpass-install-test
root=$tmp/root
make_install "$prefix" "$root"
p=$root$prefix
for f in bin/fdpass include/fdpass.h include/fdpass_runtime.h lib/libfdpass.a \
	lib/libfdpass_runtime.a lib/pkgconfig/fdpass.pc lib/pkgconfig/fdpass_runtime.pc \
	share/man/man1/fdpass.1 share/man/man3/fdpass.3 share/man/man3/fdpass_runtime.3 \
	share/doc/fdpass/README.md; do
	[ -e "$p/$f" ] || fail "not installed: $f"
done
for doc in "$src"/docs/*.md; do
	cmp -s "$doc" "$p/share/doc/fdpass/${doc##*/}" || fail "not installed: share/doc/fdpass/${doc##*/}"
done
for page in "$src"/man/*.[1-9]; do
	cmp -s "$page" "$p/share/man/man${page##*.}/${page##*/}" || fail "manual page ${page##*/} not installed"
done
outside=$(cd "$root" && find . ! -type d ! -path ".$prefix/*")
[ -z "$outside" ] || fail "installed outside DESTDIR/PREFIX: $outside"
for lib in libfdpass libfdpass_runtime; do
	[ -L "$p/lib/$lib.so" ] || fail "$lib.so is not a symbolic link to the versioned library"
	soname=$(readelf -d "$p/lib/$lib.so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
	[ -n "$soname" ] && [ -e "$p/lib/$soname" ] || fail "no library named by the soname '$soname'"
done
for pc in fdpass fdpass_runtime; do
	grep -qx "prefix=$prefix" "$p/lib/pkgconfig/$pc.pc" || fail "$pc.pc does not name the prefix $prefix"
done
# The program needs no library of ours at run time (it links them statically).
dynamic=$(readelf -d "$p/bin/fdpass")
! grep -q 'NEEDED.*libfdpass' <<<"$dynamic" || fail "bin/fdpass needs a shared libfdpass: $dynamic"
version=$("$p/bin/fdpass" --version)
grep -qx "fdpass [0-9]*\.[0-9]*\.[0-9]*" <<<"$version" || fail "installed fdpass --version: $version"
# The installed page renders (man -l formats a file by path; groff when man is missing).
if command -v man >/dev/null 2>&1; then
	page=$(MANWIDTH=80 man -l "$p/share/man/man1/fdpass.1" 2>&1) || fail "man -l fdpass.1: $page"
elif command -v groff >/dev/null 2>&1; then
	page=$(groff -man -Tutf8 "$p/share/man/man1/fdpass.1" 2>&1) || fail "groff fdpass.1: $page"
else
	page="(no man, no groff)"
	echo "man and groff missing: the page is installed but not rendered"
fi
if [ "$page" != "(no man, no groff)" ]; then
	page=$(printf '%s\n' "$page" | sed 's/.\x08//g') # no overstrike, whatever the terminal
	for want in "fdpass serve" "SERVE OPTIONS" "EXIT STATUS" "control.sock"; do
		grep -q "$want" <<<"$page" || fail "rendered fdpass.1 lacks '$want'"
	done
fi

# 2. The README's instructions for another prefix, run as written.
if ! command -v pkg-config >/dev/null 2>&1; then
	echo "skipped: pkg-config is not installed (the README's instructions use it); layout checked"
	exit 77
fi
block=$(awk '/^Under any other prefix/ { f = 1 } f && /^```sh$/ { b = 1; next } b && /^```$/ { exit } b' "$src/README.md")
[ -n "$block" ] || fail "no sh block after 'Under any other prefix' in README.md"
grep -q '^make install PREFIX=/opt/fdpass$' <<<"$block" || fail "README block changed: $block"
mkdir "$tmp/user"
awk '/^```c$/ { f = 1; next } /^```$/ { if (f) exit } f' "$src/README.md" >"$tmp/user/demo.c"
script=$(printf '%s\n' "$block" | sed -e "s|/opt/fdpass|$tmp/prefix|g" \
	-e "s|^make install |make_install_readme |" -e "s|^cc |\"\$CC\" \$EXTRA -Wall -Wextra -Werror |")
make_install_readme() { make_install "${1#PREFIX=}" ""; }
out=$(cd "$tmp/user" && unset LD_LIBRARY_PATH PKG_CONFIG_PATH PKG_CONFIG_LIBDIR &&
	CC=$cc EXTRA=$extra eval "$script") || fail "the README's block failed: $out"
[ "$out" = "$(cat /etc/hostname)" ] || fail "the README's example printed '$out'"
dynamic=$(readelf -d "$tmp/user/demo")
grep -Eq "R(UN)?PATH.*\[$tmp/prefix/lib\]" <<<"$dynamic" || fail "demo has no RPATH to $tmp/prefix/lib: $dynamic"
# Or the archives by path (docs/API.md, Linking): then nothing of ours is needed at run time.
export PKG_CONFIG_PATH=$tmp/prefix/lib/pkgconfig
"$cc" $extra -Wall -Wextra -Werror "$tmp/user/demo.c" $(pkg-config --cflags fdpass) \
	"$(pkg-config --variable=libdir fdpass)/libfdpass.a" -o "$tmp/user/demo_static"
dynamic=$(readelf -d "$tmp/user/demo_static")
! grep -q 'NEEDED.*libfdpass' <<<"$dynamic" || fail "demo_static needs a shared libfdpass: $dynamic"
[ "$("$tmp/user/demo_static")" = "$(cat /etc/hostname)" ] || fail "the statically linked example failed"
# A worker links the runtime, which brings the mechanism with it; and the program runs.
"$cc" $extra -Wall -Wextra -Werror "$src/examples/upper_worker.c" \
	$(pkg-config --cflags --libs fdpass_runtime) \
	-Wl,-rpath,"$(pkg-config --variable=libdir fdpass_runtime)" -o "$tmp/user/worker"
"$tmp/prefix/bin/fdpass" --help >/dev/null || fail "the installed fdpass does not run"
echo "installed layout complete under DESTDIR/PREFIX; the README's instructions build and run the example"
