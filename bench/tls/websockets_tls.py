# SPDX-License-Identifier: MIT
"""bench/websockets_bench.py (python3-websockets, its C speedups) over TLS 1.3:
the same W1/W3 code, with websockets.serve/connect given ssl contexts (the
server certificate and the test CA of $BENCH_TLS_CERTS) and ws:// dialled as
wss://. Python's ssl module cannot choose TLS 1.3 suites; bench/tls/run.py
runs this with OPENSSL_CONF=bench/tls/openssl-aes128.cnf, which does
(TLS_AES_128_GCM_SHA256). The server prints the negotiated suite to stderr."""
import os
import ssl
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import websockets_bench  # noqa: E402 (loads the C speedups before websockets)
import websockets  # noqa: E402

CERTS = os.environ.get("BENCH_TLS_CERTS", os.path.join(HERE, "..", "..", "build", "tls", "certs"))


def contexts():
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(os.path.join(CERTS, "server.pem"), os.path.join(CERTS, "server.key"))
    client = ssl.create_default_context(cafile=os.path.join(CERTS, "ca.pem"))
    for c in (server, client):
        c.minimum_version = ssl.TLSVersion.TLSv1_3
    return server, client


def install():
    server_ctx, client_ctx = contexts()
    serve, connect = websockets.serve, websockets.connect

    def tls_serve(handler, host, port, **kw):
        async def logged(ws):
            obj = ws.transport.get_extra_info("ssl_object")
            print("CIPHER %s %s" % (obj.version(), obj.cipher()[0]), file=sys.stderr, flush=True)
            return await handler(ws)
        return serve(logged, host, port, ssl=server_ctx, **kw)

    def tls_connect(uri, **kw):
        return connect(uri.replace("ws://", "wss://", 1), ssl=client_ctx, **kw)

    websockets.serve, websockets.connect = tls_serve, tls_connect


if __name__ == "__main__":
    install()
    websockets_bench.main()
