# SPDX-License-Identifier: MIT
"""python3-websockets echo peer for the interop tests.

    python3 peer_websockets.py server [CERTDIR]      prints "listening on 127.0.0.1:PORT"
    python3 peer_websockets.py client URL [CAFILE]   echoes until the server closes;
                                                     prints "closed CODE", exit 0
CERTDIR (cert.pem, key.pem) makes the server wss; CAFILE trusts a wss server.
"""

import asyncio
import os
import ssl
import sys

import websockets


async def echo(ws, path=None):
    try:
        async for msg in ws:
            await ws.send(msg)
    except websockets.ConnectionClosed:
        pass


async def server(certdir=None):
    ctx = None
    if certdir:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(certdir, "cert.pem"), os.path.join(certdir, "key.pem"))
    async with websockets.serve(echo, "127.0.0.1", 0, max_size=None, ssl=ctx,
                                subprotocols=["chat", "superchat"]) as srv:
        port = srv.sockets[0].getsockname()[1]
        print(f"listening on 127.0.0.1:{port}", flush=True)
        await asyncio.Future()


async def client(url, cafile=None):
    ctx = ssl.create_default_context(cafile=cafile) if cafile else None
    async with websockets.connect(url, max_size=None, ssl=ctx) as ws:
        try:
            async for msg in ws:
                await ws.send(msg)
        except websockets.ConnectionClosed:
            pass
    print(f"closed {ws.close_code} {ws.close_reason}", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        asyncio.run(server(*sys.argv[2:3]))
    else:
        asyncio.run(client(*sys.argv[2:4]))
