#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Smoke test of the many-connection load generator (make test-bench-many):
# ~2 s against build/lightws-echo; every echoed byte is checked by loadgen,
# which exits 1 on any mismatch. Cases: 20 B binary with 4 in flight plus
# idle connections, and 70,000 B text (echoes of several frames).
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
gen="$top/build/loadgen"
out=$(mktemp)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$out"' EXIT
"$top/build/lightws-echo" --host 127.0.0.1 --port 0 --quiet >"$out" 2>&1 &
pid=$!
port=""
for _ in $(seq 100); do   # up to 5 s for "listening on HOST:PORT"
  port=$(sed -n 's/^listening on .*:\([0-9][0-9]*\)$/\1/p' "$out")
  [ -n "$port" ] && break
  sleep 0.05
done
[ -n "$port" ] || { echo "test-bench-many: lightws-echo did not start"; cat "$out"; exit 1; }

check() {  # runs loadgen with "$@"; the JSON line must have no error and echoes
  local j
  j=$(timeout 60 "$gen" --host 127.0.0.1 --port "$port" --server-pid "$pid" --connect-timeout 20 "$@") || {
    echo "test-bench-many: FAIL: loadgen $*: $j"; exit 1; }
  echo "$j" | grep -q '"errors": 0' || { echo "test-bench-many: FAIL: $j"; exit 1; }
  echo "$j" | grep -q '"msgs": 0,' && { echo "test-bench-many: FAIL (no echo): $j"; exit 1; }
  echo "test-bench-many: ok: $j"
}
check --conns 20 --size 20 --inflight 4 --batch 2 --idle 50 --warmup 0.2 --duration 0.8
check --conns 8 --size 70000 --text --inflight 2 --warmup 0.2 --duration 0.8
"$gen" --host 127.0.0.1 --port 1 --conns 1 --duration 0.2 --connect-timeout 2 >/dev/null 2>&1 &&
  { echo "test-bench-many: FAIL: loadgen succeeded with no server"; exit 1; }
kill "$pid"; wait "$pid" 2>/dev/null || true

# The generator's own checks, against bench/many/odd_echo.py (python3, stdlib):
# echoes in 3 frames after a ping must pass; a flipped byte and a wrong
# Sec-WebSocket-Accept must fail loudly.
odd() {  # odd MODE: starts odd_echo.py MODE, sets pid and port
  python3 "$top/bench/many/odd_echo.py" --port 0 "$1" >"$out" 2>&1 &
  pid=$!
  port=""
  for _ in $(seq 100); do
    port=$(sed -n 's/^listening on .*:\([0-9][0-9]*\)$/\1/p' "$out")
    [ -n "$port" ] && break
    sleep 0.05
  done
  [ -n "$port" ] || { echo "test-bench-many: odd_echo.py $1 did not start"; cat "$out"; exit 1; }
}
odd split
j=$(timeout 30 "$gen" --host 127.0.0.1 --port "$port" --conns 4 --size 1000 --inflight 2 \
      --warmup 0.1 --duration 0.5 --connect-timeout 10) || { echo "test-bench-many: FAIL (split): $j"; exit 1; }
echo "$j" | grep -q '"frames_per_echo": 3.000' && ! echo "$j" | grep -q '"pings": 0,' ||
  { echo "test-bench-many: FAIL (split: 3 frames and pings expected): $j"; exit 1; }
echo "test-bench-many: ok: split echoes reassembled, pings answered"
kill "$pid"; wait "$pid" 2>/dev/null || true
for mode in corrupt:"echo byte" badkey:"Sec-WebSocket-Accept"; do
  odd "${mode%%:*}"
  if j=$(timeout 30 "$gen" --host 127.0.0.1 --port "$port" --conns 2 --size 100 --warmup 0.1 \
           --duration 0.3 --connect-timeout 10 2>/dev/null); then
    echo "test-bench-many: FAIL: loadgen passed a ${mode%%:*} server: $j"; exit 1
  fi
  echo "$j" | grep -q "${mode#*:}" || { echo "test-bench-many: FAIL (${mode%%:*}, wrong error): $j"; exit 1; }
  echo "test-bench-many: ok: ${mode%%:*} detected: $j"
  kill "$pid"; wait "$pid" 2>/dev/null || true
done
echo "test-bench-many: passed"
