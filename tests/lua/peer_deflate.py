#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Python websockets peer with permessage-deflate for the Lua tests (deflate_spec.lua).
  peer_deflate.py server [nct]   echo server with websockets' default compression
                                 (nct: server/client_no_context_takeover and
                                 max_window_bits 10 asked); the text "ext?" is
                                 answered with what websockets negotiated;
                                 prints "listening on 127.0.0.1:PORT"
  peer_deflate.py client URL [off|declined]  checks an echo server:
                                 PerMessageDeflate negotiated (off: not offered;
                                 declined: offered, expected declined),
                                 text, binary, 0 bytes, 1 MiB, fragments, close"""
import asyncio, os, sys

import websockets
from websockets.extensions import permessage_deflate as pmd


def describe(ws):
    if not ws.extensions:
        return "none"
    e = ws.extensions[0]
    return "%s local_nct=%s remote_nct=%s local_bits=%s remote_bits=%s" % (
        e.name, e.local_no_context_takeover, e.remote_no_context_takeover,
        e.local_max_window_bits, e.remote_max_window_bits)


async def echo(ws, path=None):
    try:
        async for msg in ws:
            if msg == "ext?":
                await ws.send("ext: " + describe(ws))
            else:
                await ws.send(msg)
    except websockets.ConnectionClosed:
        pass


async def server(mode):
    kw = {}
    if mode == "nct":
        kw["extensions"] = [pmd.ServerPerMessageDeflateFactory(
            server_no_context_takeover=True, client_no_context_takeover=True,
            server_max_window_bits=10, client_max_window_bits=10)]
        kw["compression"] = None
    async with websockets.serve(echo, "127.0.0.1", 0, max_size=None, **kw) as srv:
        print("listening on 127.0.0.1:%d" % srv.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()


async def client(url, mode):
    fails = 0

    def check(cond, what):
        nonlocal fails
        print(("pass " if cond else "FAIL ") + what, flush=True)
        fails += 0 if cond else 1

    kw = {"compression": None} if mode == "off" else {}
    async with websockets.connect(url, max_size=None, **kw) as ws:
        print("ext " + describe(ws), flush=True)
        if mode in ("off", "declined"):
            check(not ws.extensions, "no extension")
        else:
            check(len(ws.extensions) == 1 and ws.extensions[0].name == "permessage-deflate",
                  "PerMessageDeflate negotiated")
        await ws.send("hello " * 100)
        check(await ws.recv() == "hello " * 100, "text")
        await ws.send(b"\x00\xff" * 50)
        check(await ws.recv() == b"\x00\xff" * 50, "binary")
        await ws.send(b"")
        check(await ws.recv() == b"", "0 bytes")
        big = os.urandom(1 << 19) * 2
        await ws.send(big)
        check(await ws.recv() == big, "1 MiB binary")
        await ws.send(["frag", "men", "ted"])
        check(await ws.recv() == "fragmented", "fragmented text")
        await ws.close(1000, "bye")
        check(ws.close_code == 1000, "close 1000 answered (%s)" % ws.close_code)
    return fails


if __name__ == "__main__":
    if sys.argv[1] == "server":
        asyncio.run(server(sys.argv[2] if len(sys.argv) > 2 else ""))
    else:
        sys.exit(1 if asyncio.run(client(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "")) else 0)
