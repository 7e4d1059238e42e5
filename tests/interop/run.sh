#!/usr/bin/env bash
# Interop suite entry: lightws tools against python3-websockets and node ws peers (see interop.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
# The suite and every server it starts run in their own process group, so
# whatever happens (failure, timeout, ^C) none of them outlives the suite.
# Debian's python has python3-websockets; a pyenv python3 first on PATH does not.
setsid timeout 120 /usr/bin/python3 tests/interop/interop.py &
pid=$!
trap 'kill -TERM -- -"$pid" 2>/dev/null || true' EXIT
trap 'exit 130' INT TERM
wait "$pid"
