#!/usr/bin/env bash
# Installs what `make test` needs on Debian/Ubuntu, only when it is missing (idempotent).
# Prints each package it installs. Run as root (CI) or with sudo available.
set -eu

PKGS="check pkg-config valgrind clang libclang-rt-14-dev zlib1g-dev libssl-dev openssl
lua5.4 liblua5.4-dev luajit2 libluajit2-5.1-dev lua-busted lua-socket
nginx-light libnginx-mod-http-lua
python3 python3-cffi python3-pytest python3-websockets python3-venv python3-dev python3-wheel-whl python3-setuptools python3-mypy
libwslay-dev libwebsockets-dev nodejs npm chromium luarocks"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
# nodejs/npm may come from outside apt (nvm, NodeSource tarball): accept a working node+npm.
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
    missing=$(echo "$missing" | tr ' ' '\n' | grep -vx -e nodejs -e npm | tr '\n' ' ')
fi
missing=$(echo $missing)

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

if [ -n "$missing" ]; then
    echo "deps: installing: $missing"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
else
    echo "deps: all system packages present"
fi

# node ws peer, installed into build/node (npm registry), only once.
top=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -d "$top/build/node/node_modules/ws" ]; then
    echo "deps: installing node ws into build/node"
    mkdir -p "$top/build/node"
    (cd "$top/build/node" && { [ -f package.json ] || echo '{"name":"lightws-peers","private":true}' > package.json; } \
        && npm install --silent --no-audit --no-fund ws >/dev/null)
fi
# bufferutil (native masking for ws; bench only): optional, prebuilt binaries from the npm registry.
[ -d "$top/build/node/node_modules/bufferutil" ] || (cd "$top/build/node" && npm install --silent --no-audit --no-fund bufferutil >/dev/null 2>&1) || echo "deps: bufferutil not installed (ws masks in JS)"
echo "deps: ok"
