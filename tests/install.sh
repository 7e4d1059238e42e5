#!/usr/bin/env bash
# `make install` into a scratch DESTDIR, then build the README quick start
# against it through pkg-config, statically and shared, and run both against
# build/lightws-echo.
set -euo pipefail
cd "$(dirname "$0")/.."
d=$(mktemp -d)
trap 'kill $echo_pid 2>/dev/null || true; rm -rf "$d"' EXIT
make -s install PREFIX=/usr DESTDIR="$d" >/dev/null
export PKG_CONFIG_SYSROOT_DIR="$d" PKG_CONFIG_PATH="$d/usr/lib/pkgconfig"
flags=$(pkg-config --cflags --libs lightws)
cc -std=c99 -Wall -Wextra -pedantic -Werror examples/quickstart.c $flags -o "$d/qs-shared"
# a static link also needs what lightws.pc names in Requires.private (zlib)
static_libs=$(pkg-config --static --libs-only-l lightws | sed 's/-llightws//')
cc -std=c99 -Wall -Wextra -pedantic -Werror examples/quickstart.c "$d/usr/lib/liblightws.a" \
   $(pkg-config --cflags lightws) $static_libs -o "$d/qs-static"
build/lightws-echo --host 127.0.0.1 --port 0 --quiet > "$d/echo.out" 2>/dev/null &
echo_pid=$!
# up to 30 s (was 5 s: arbitrary, and a loaded machine may need more); usually the first try
for _ in $(seq 300); do grep -q listening "$d/echo.out" && break; sleep 0.1; done
port=$(sed -n 's/.*listening on [^:]*:\([0-9]*\).*/\1/p' "$d/echo.out")
pass=0 fail=0
for v in shared static; do
  out=$(LD_LIBRARY_PATH="$d/usr/lib" "$d/qs-$v" 127.0.0.1 "$port" /quickstart 2>&1) && [ "$out" = hello ] \
    && { echo "ok    quickstart ($v, pkg-config) -> '$out'"; pass=$((pass+1)); } \
    || { echo "FAIL  quickstart ($v): $out"; fail=$((fail+1)); }
done
readelf -d "$d/usr/lib/liblightws.so" | grep -q 'SONAME.*liblightws.so.0' \
  && { echo "ok    SONAME liblightws.so.0"; pass=$((pass+1)); } || { echo "FAIL  SONAME"; fail=$((fail+1)); }
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
