#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Python websockets peer for the Lua tests.
  peer_python.py server          echo server; prints "listening on 127.0.0.1:PORT"
  peer_python.py client URL      checks an echo server: text, binary, 1 MiB,
                                 fragments, ping, close 1000; exit 0 if all pass"""
import asyncio, os, sys

import websockets


async def echo(ws, path=None):
    try:
        async for msg in ws:
            await ws.send(msg)
    except websockets.ConnectionClosed:
        pass


async def server():
    async with websockets.serve(echo, "127.0.0.1", 0, max_size=None, subprotocols=["chat"]) as srv:
        port = srv.sockets[0].getsockname()[1]
        print("listening on 127.0.0.1:%d" % port, flush=True)
        await asyncio.Future()


async def client(url):
    fails = 0

    def check(cond, what):
        nonlocal fails
        print(("pass " if cond else "FAIL ") + what, flush=True)
        fails += 0 if cond else 1

    async with websockets.connect(url, max_size=None) as ws:
        await ws.send("hello")
        check(await ws.recv() == "hello", "text")
        await ws.send(b"\x00\xff")
        check(await ws.recv() == b"\x00\xff", "binary")
        big = os.urandom(1 << 20)
        await ws.send(big)
        check(await ws.recv() == big, "1 MiB binary")
        await ws.send(["frag", "men", "ted"])
        check(await ws.recv() == "fragmented", "fragmented text")
        await asyncio.wait_for(await ws.ping(b"pp"), 5)
        check(True, "ping answered")
        await ws.close(1000, "bye")
        check(ws.close_code == 1000, "close 1000 answered (%s)" % ws.close_code)
    return fails


if __name__ == "__main__":
    if sys.argv[1] == "server":
        asyncio.run(server())
    else:
        sys.exit(1 if asyncio.run(client(sys.argv[2])) else 0)
