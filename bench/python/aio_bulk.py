# SPDX-License-Identifier: MIT
"""W1 (bulk) for lightws.asyncio with python websockets' API, the CLI of
bench/websockets_bench.py:
    python3 bench/python/aio_bulk.py server|client bulk PORT TOTAL SIZE
The client sends TOTAL bytes in SIZE-byte binary messages (await
ws.send()), then closes; it prints RESULT secs=... MBps=... The server
counts the messages (async for msg in ws)."""
import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "bindings", "python"))
import lightws  # noqa: E402
from lightws.asyncio import connect, serve  # noqa: E402

OPTS = dict(compression=None, max_size=None, ping_interval=None)


async def server(port):
    done = asyncio.get_running_loop().create_future()
    stats = [0, 0]

    async def handler(ws):
        try:
            async for msg in ws:
                stats[0] += len(msg)
                stats[1] += 1
        except lightws.ConnectionClosed:
            pass
        finally:
            if not done.done():
                done.set_result(None)

    async with serve(handler, "127.0.0.1", port, **OPTS):
        await done
    print("SERVER bytes=%d frames=%d" % tuple(stats), flush=True)


async def client(port, total, size):
    for _ in range(2000):
        try:
            ws = await connect("ws://127.0.0.1:%d/" % port, **OPTS)
            break
        except OSError:
            await asyncio.sleep(0.01)
    else:
        sys.exit("aio_bulk: cannot connect")
    buf = os.urandom(size)
    frames = total // size
    t0 = time.perf_counter()
    send = ws.send
    for _ in range(frames):
        await send(buf)
    await ws.close()
    secs = time.perf_counter() - t0
    print("RESULT secs=%.6f bytes=%d frames=%d MBps=%.1f fps=%.0f"
          % (secs, frames * size, frames, frames * size / secs / 1e6, frames / secs), flush=True)


if __name__ == "__main__":
    role, mode, port, total, size = sys.argv[1:6]
    assert mode == "bulk"
    if role == "server":
        asyncio.run(server(int(port)))
    else:
        asyncio.run(client(int(port), int(total), int(size)))
