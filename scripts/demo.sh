#!/usr/bin/env bash
# `make demo`: the echo server on a free loopback port, driven by the C, Lua and Python demo clients, plus a throughput figure.
set -euo pipefail
cd "$(dirname "$0")/.."

B=build
out=$(mktemp)
log=$(mktemp)
pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill "$pid" 2>/dev/null || true; fi
  rm -f "$out" "$log"
}
trap cleanup EXIT

"$B/lightws-echo" --port 0 >"$out" 2>"$log" &
pid=$!
port=
for _ in $(seq 100); do
  port=$(sed -n 's/^listening on .*:\([0-9][0-9]*\)$/\1/p' "$out")
  [ -n "$port" ] && break
  sleep 0.05
done
if [ -z "$port" ]; then
  echo "demo: lightws-echo did not start" >&2
  cat "$log" >&2
  exit 1
fi
url="ws://127.0.0.1:$port/demo"
echo "== lightws demo: echo server listening on 127.0.0.1:$port"

status=0
echo "-- C client ($B/demo_client $url)"
timeout 10 "$B/demo_client" "$url" || status=1

echo "-- Lua client"
if [ -f examples/demo_client.lua ]; then
  # lightws.core comes from mk/lua.mk's Lua 5.4 build, lightws.lua from the source tree.
  LUA_CPATH="$B/lua54/?.so;;" LUA_PATH="bindings/lua/?.lua;bindings/lua/?/init.lua;;" \
    timeout 10 lua5.4 examples/demo_client.lua "$url" || status=1
else
  echo "lua client: not yet available"
fi

echo "-- Python client"
if [ -f examples/demo_client.py ]; then
  # mk/python.mk builds the extension in place with Debian's python3.
  py=/usr/bin/python3
  [ -x "$py" ] || py=python3
  PYTHONPATH=bindings/python timeout 10 "$py" examples/demo_client.py "$url" || status=1
else
  echo "python client: not yet available"
fi

echo "-- throughput"
timeout 20 "$B/demo_client" --bulk 256 "$url" || status=1

kill -TERM "$pid"
wait "$pid" || status=1
pid=
echo "-- server log (one line per connection)"
cat "$log"
if [ "$status" -ne 0 ]; then
  echo "demo: FAILED"
  exit 1
fi
echo "demo: ok"
