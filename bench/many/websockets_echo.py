# SPDX-License-Identifier: MIT
"""python3-websockets (10.4, asyncio) echo server for the many-connection benchmark:
    /usr/bin/python3 bench/many/websockets_echo.py --port N [--host ADDR]
With the C speedups (masking) that mk/bench.mk builds into build/pyws/speedups.so
when they are there; no compression, no keepalive ping, no message size limit."""
import argparse
import asyncio
import importlib.machinery
import importlib.util
import os
import signal
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_speedups():
    # Debian ships speedups.c without building it; register the built one
    # as websockets.speedups before websockets imports it.
    path = os.path.join(ROOT, "build", "pyws", "speedups.so")
    if not os.path.exists(path):
        print("websockets_echo: no %s (pure Python masking)" % path, file=sys.stderr)
        return
    loader = importlib.machinery.ExtensionFileLoader("websockets.speedups", path)
    spec = importlib.util.spec_from_file_location("websockets.speedups", path, loader=loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    sys.modules["websockets.speedups"] = mod


load_speedups()
import websockets  # noqa: E402


async def echo(ws):
    try:
        async for msg in ws:
            await ws.send(msg)
    except websockets.ConnectionClosed:
        pass


async def main(host, port):
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    async with websockets.serve(echo, host, port, compression=None, max_size=None,
                                ping_interval=None, backlog=1024) as server:
        bound = server.sockets[0].getsockname()
        print("listening on %s:%d" % (bound[0], bound[1]), flush=True)
        await stop


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    a = ap.parse_args()
    asyncio.run(main(a.host, a.port))
