#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The Lua suite (make test-lua): busted specs under lua5.4 and luajit, the
# demo client, lightws.resty in real nginx, and luarocks installs from the
# rockspec for both ABIs. Prints one line per part and a summary; exits
# non-zero on any failure (a missing tool is a failure, not a skip).
set -u
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
export LIGHTWS_ROOT="$ROOT"
LOG="$ROOT/build/lua-test"
rm -rf "$LOG"; mkdir -p "$LOG"
pass=0; fail=0; failed=""

part() {  # part NAME COMMAND...: runs one part, output in build/lua-test/NAME.log
    local name=$1; shift
    if "$@" >"$LOG/$name.log" 2>&1; then
        pass=$((pass + 1)); echo "lua: PASS $name$(summary_of "$LOG/$name.log")"
    else
        fail=$((fail + 1)); failed="$failed $name"
        echo "lua: FAIL $name (log: build/lua-test/$name.log)"; tail -n 40 "$LOG/$name.log" | sed 's/^/    /'
    fi
}

summary_of() {  # the busted / driver count line, if any
    local l
    l=$(grep -E '^[0-9]+ successes|passed, [0-9]+ failed|^1\.\.[0-9]+' "$1" | tail -n 1)
    [ -n "$l" ] && echo " ($l)"
}

busted_run() {  # busted_run LUA ABI: all specs with the build tree first on the paths
    local lua=$1 abi=$2
    LUA_PATH="$ROOT/bindings/lua/?.lua;;" LUA_CPATH="$ROOT/build/$abi/?.so;;" \
        busted --lua="$lua" -o TAP tests/lua/codec_spec.lua tests/lua/stream_spec.lua tests/lua/interop_spec.lua tests/lua/hostile_spec.lua tests/lua/time_spec.lua tests/lua/tls_spec.lua tests/lua/deflate_spec.lua \
        | grep -v '^Terminated$'
    return "${PIPESTATUS[0]}"
}

demo() {  # demo LUA
    local lua=$1
    "$ROOT/build/lightws-echo" --host 127.0.0.1 --port 0 >"$LOG/echo-$lua.out" 2>/dev/null &
    local pid=$! port=""
    # up to 30 s (was 5 s: arbitrary, and a loaded machine may need more); usually the first try
    for _ in $(seq 300); do
        port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$LOG/echo-$lua.out"); [ -n "$port" ] && break; sleep 0.1
    done
    [ -n "$port" ] || { echo "lightws-echo printed no port within 30 s"; kill "$pid" 2>/dev/null; return 1; }
    local rc=0
    "$lua" examples/demo_client.lua "ws://127.0.0.1:$port/demo" || rc=$?
    kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
    return $rc
}

rocks() {  # rocks LUAVERSION TREE [VAR=VALUE]: luarocks make from a clean copy, then use it
    local ver=$1 tree=$2; shift 2
    local src="$ROOT/build/rock-src-$ver"
    rm -rf "$src" "$tree"; mkdir -p "$src"
    cp -r lightws-scm-1.rockspec lightws-tls-scm-1.rockspec lib bindings "$src/"
    find "$src" -name '*.o' -o -name '*.so' | xargs -r rm -f
    # the rockspec lists lib/*.c by name: it must match the tree
    local listed actual
    listed=$(grep -o '"lib/[a-z0-9_]*\.c"' lightws-scm-1.rockspec | tr -d '"' | sort)
    actual=$(ls lib/*.c | sort)
    if [ "$listed" != "$actual" ]; then echo "rockspec sources differ from lib/*.c:"; diff <(echo "$listed") <(echo "$actual"); return 1; fi
    (cd "$src" && luarocks --lua-version "$ver" --tree "$tree" make lightws-scm-1.rockspec "$@") || return 1
    local lua=lua5.4; [ "$ver" = 5.1 ] && lua=luajit
    local lver=$ver
    LUA_PATH="$tree/share/lua/$lver/?.lua;$tree/share/lua/$lver/?/init.lua" LUA_CPATH="$tree/lib/lua/$lver/?.so" "$lua" -e '
        local lightws = require "lightws"
        assert(package.searchpath == nil or package.searchpath("lightws.core", package.cpath):find("'"$tree"'", 1, true))
        assert(require("lightws.resty")._VERSION == lightws._VERSION)
        local a, b = lightws.socketpair()
        local s, c = lightws.wrap(a, "server"), lightws.wrap(b, "client")
        c:send("rock", "text")
        local d, k = s:receive()
        assert(d == "rock" and k == "text", "roundtrip failed")
        -- built with zlib: permessage-deflate works from the rock
        assert(lightws.pmd_available(), "no permessage-deflate in the rock")
        assert(s:set_deflate({}) and c:set_deflate({}))
        c:send(("rock "):rep(100), "text")
        d = s:receive()
        assert(d == ("rock "):rep(100) and s:compressed(), "compressed roundtrip failed")
        print("installed lightws " .. lightws._VERSION .. " works under " .. (jit and jit.version or _VERSION))' || return 1
    [ "${LIGHTWS_LUA_TLS:-1}" = 0 ] && return 0
    # the TLS module's rock (lightws-tls-scm-1.rockspec) into the same tree
    listed=$(grep -o '"lib/[a-z0-9_]*\.c"' lightws-tls-scm-1.rockspec | tr -d '"' | sort)
    if [ "$listed" != "$actual" ]; then echo "lightws-tls rockspec sources differ from lib/*.c:"; diff <(echo "$listed") <(echo "$actual"); return 1; fi
    (cd "$src" && luarocks --lua-version "$ver" --tree "$tree" make lightws-tls-scm-1.rockspec "$@") || return 1
    LUA_PATH="$tree/share/lua/$lver/?.lua;$tree/share/lua/$lver/?/init.lua" LUA_CPATH="$tree/lib/lua/$lver/?.so" "$lua" -e '
        local lightws = require "lightws"
        assert(lightws.tls_available())
        assert(package.searchpath == nil or package.searchpath("lightws.tls_core", package.cpath):find("'"$tree"'", 1, true))
        assert(lightws.tls_context { role = "client" }:role() == "client")
        print("installed lightws-tls works under " .. (jit and jit.version or _VERSION) .. " with " .. require("lightws.tls_core").openssl)'
}

for t in busted lua5.4 luajit luarocks nginx /usr/bin/python3; do
    command -v "$t" >/dev/null || { echo "lua: FAIL missing $t (run scripts/deps.sh)"; fail=$((fail + 1)); failed="$failed missing-$t"; }
done
[ -x build/lightws-echo ] || { echo "lua: FAIL build/lightws-echo missing (make tools)"; fail=$((fail + 1)); failed="$failed no-echo"; }

part busted-lua5.4 busted_run lua5.4 lua54
part busted-luajit busted_run luajit luajit
part demo-lua5.4 demo lua5.4
part demo-luajit demo luajit
part nginx /usr/bin/python3 tests/lua/nginx_test.py "$ROOT"
part rockspec-lua5.4 rocks 5.4 "$ROOT/build/rocks-5.4"
part rockspec-luajit rocks 5.1 "$ROOT/build/rocks-5.1" LUA_INCDIR=/usr/include/luajit-2.1

echo "lua: $pass passed, $fail failed${failed:+ (failed:$failed)}"
[ "$fail" -eq 0 ]
