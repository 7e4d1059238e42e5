#!/usr/bin/env bash
# Interop suite entry: lightws tools against python3-websockets and node ws peers (see interop.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
# Debian's python has python3-websockets; a pyenv python3 first on PATH does not.
exec timeout 120 /usr/bin/python3 tests/interop/interop.py
