#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Reference echo peer on python3-websockets 10.4 (Debian), used to
validate the conformance suite itself: the same command line as the
lightws echo tools.

  ref_websockets_echo.py --host ADDR --port N      echo server
  ref_websockets_echo.py --client ws://HOST:PORT/P echo client

No compression, no keepalive pings, 32 MiB message limit. Two gaps of
websockets 10.4's server are patched in process_request, both RFC MUSTs:
 - an unsupported Sec-WebSocket-Version gets 400 without a
   Sec-WebSocket-Version header, which §4.4 requires ("MUST respond with a
   |Sec-WebSocket-Version| header field"): we answer 426 with the header;
 - a request without Host is accepted, though §4.1/§4.2.1 make Host
   mandatory and a server MUST reject such a handshake: we answer 400."""
import argparse
import asyncio
import http
import sys

import websockets
import websockets.exceptions

LIMIT = 32 * 1024 * 1024


async def echo(ws, path=None):
    try:
        async for msg in ws:
            await ws.send(msg)
    except websockets.exceptions.ConnectionClosed:
        pass


async def version_check(path, headers):
    if headers.get("Host") is None:
        return (http.HTTPStatus.BAD_REQUEST, [], b"missing Host\n")
    v = headers.get("Sec-WebSocket-Version")
    if v is not None and v != "13":
        return (http.HTTPStatus.UPGRADE_REQUIRED, [("Sec-WebSocket-Version", "13")],
                b"Sec-WebSocket-Version 13 only\n")
    return None


async def serve(host, port):
    async with websockets.serve(echo, host, port, compression=None, max_size=LIMIT, max_queue=None,
                                ping_interval=None, process_request=version_check) as server:
        sock = server.sockets[0]
        h, p = sock.getsockname()[:2]
        print("listening on %s:%d" % (h, p), flush=True)
        await asyncio.Future()


async def client(url):
    try:
        async with websockets.connect(url, compression=None, max_size=LIMIT, max_queue=None,
                                      ping_interval=None) as ws:
            await echo(ws)
    except websockets.exceptions.InvalidHandshake as e:
        print("handshake failed: %s" % e, file=sys.stderr)
        return 1
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int)
    ap.add_argument("--client")
    a = ap.parse_args()
    if a.client:
        return asyncio.run(client(a.client))
    try:
        asyncio.run(serve(a.host, a.port))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
