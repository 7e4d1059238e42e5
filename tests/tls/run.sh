#!/usr/bin/env bash
# TLS interop (make test-tls-interop): tests/tls/interop.py with Debian's
# python3 (websockets 10.4) and node ws from build/node.
set -eu
peer=${1:?usage: run.sh TLS_PEER}
certs=${LIGHTWS_TLS_CERTS:-build/tls/certs}
exec /usr/bin/python3 "$(dirname "$0")/interop.py" "$peer" "$certs"
