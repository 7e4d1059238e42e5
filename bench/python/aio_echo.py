# SPDX-License-Identifier: MIT
"""lightws.asyncio echo server written as a python websockets user would
(websockets 13+ API), for bench/python/run.py and build/loadgen:
    python3 bench/python/aio_echo.py --port N [--host ADDR]
No compression, no keepalive ping, no message size limit: the settings of
bench/many/websockets_echo.py."""
import argparse
import asyncio
import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "bindings", "python"))
from lightws.asyncio import serve  # noqa: E402
import lightws  # noqa: E402


async def echo(ws):
    try:
        async for msg in ws:
            await ws.send(msg)
    except lightws.ConnectionClosed:
        pass


async def main(host, port):
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    async with serve(echo, host, port, compression=None, max_size=None,
                     ping_interval=None, backlog=1024) as server:
        print("listening on %s:%d" % (host, server.port), flush=True)
        await stop


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()
    asyncio.run(main(a.host, a.port))
