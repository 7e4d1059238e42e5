# SPDX-License-Identifier: MIT
"""python3-websockets echo peer for the interop tests.

    python3 peer_websockets.py server        prints "listening on 127.0.0.1:PORT"
    python3 peer_websockets.py client URL    echoes until the server closes;
                                             prints "closed CODE", exit 0
"""

import asyncio
import sys

import websockets


async def echo(ws, path=None):
    try:
        async for msg in ws:
            await ws.send(msg)
    except websockets.ConnectionClosed:
        pass


async def server():
    async with websockets.serve(echo, "127.0.0.1", 0, max_size=None,
                                subprotocols=["chat", "superchat"]) as srv:
        port = srv.sockets[0].getsockname()[1]
        print(f"listening on 127.0.0.1:{port}", flush=True)
        await asyncio.Future()


async def client(url):
    async with websockets.connect(url, max_size=None) as ws:
        try:
            async for msg in ws:
                await ws.send(msg)
        except websockets.ConnectionClosed:
            pass
    print(f"closed {ws.close_code} {ws.close_reason}", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        asyncio.run(server())
    else:
        asyncio.run(client(sys.argv[2]))
