# SPDX-License-Identifier: MIT
"""python3-websockets benchmark (asyncio, its C speedups for masking), same CLI as the C programs."""
import asyncio
import importlib.machinery
import importlib.util
import os
import sys
import time


def load_speedups():
    """Debian ships websockets' speedups.c without building it; mk/bench.mk builds it
    into build/pyws/speedups.so and we register it as websockets.speedups before
    websockets imports it (frames.py falls back to pure Python otherwise)."""
    path = os.environ.get("WEBSOCKETS_SPEEDUPS") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "build", "pyws", "speedups.so")
    if not os.path.exists(path):
        print("websockets_bench: no C speedups at %s (pure Python masking)" % path, file=sys.stderr)
        return
    loader = importlib.machinery.ExtensionFileLoader("websockets.speedups", path)
    spec = importlib.util.spec_from_file_location("websockets.speedups", path, loader=loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    sys.modules["websockets.speedups"] = mod


load_speedups()
import websockets  # noqa: E402
from websockets.legacy import framing  # noqa: E402

assert framing.apply_mask.__module__ != "websockets.utils" or "websockets.speedups" not in sys.modules

OPTS = dict(compression=None, max_size=None, ping_interval=None)


def zopts(server):
    """zbulk (W5) and the idle echo server: permessage-deflate with window
    BENCH_WBITS (12), memLevel BENCH_MEMLEVEL (5) and level BENCH_LEVEL (6)
    both ways: websockets 10.4's own defaults (12/5, zlib's level), stated."""
    from websockets.extensions import permessage_deflate as pmd
    wb = int(os.environ.get("BENCH_WBITS", "12"))
    settings = {"memLevel": int(os.environ.get("BENCH_MEMLEVEL", "5")),
                "level": int(os.environ.get("BENCH_LEVEL", "6"))}
    if server:
        f = pmd.ServerPerMessageDeflateFactory(server_max_window_bits=wb, client_max_window_bits=wb,
                                               compress_settings=settings)
    else:
        f = pmd.ClientPerMessageDeflateFactory(server_max_window_bits=wb, client_max_window_bits=wb,
                                               compress_settings=settings)
    return dict(compression=None, extensions=[f], max_size=None, ping_interval=None)


def load_corpus(size):
    with open(os.environ["BENCH_CORPUS"], "rb") as f:
        data = f.read()
    return [data[i:i + size].decode() for i in range(0, len(data), size)]


async def echo_server(port):
    """`server echo PORT 0 0`: an echo server with compression until SIGTERM (idle memory)."""
    async def handler(ws):
        try:
            async for msg in ws:
                await ws.send(msg)
        except websockets.ConnectionClosed:
            pass

    async with websockets.serve(handler, "127.0.0.1", port, **zopts(True)):
        print("READY", flush=True)
        await asyncio.Future()


def usage():
    sys.exit("usage: websockets_bench.py server|client bulk|pingpong|zbulk PORT TOTAL SIZE\n"
             "       websockets_bench.py server echo PORT 0 0\n"
             "       websockets_bench.py micro")


async def server(mode, port, total, size):
    if mode == "echo":
        return await echo_server(port)
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    stats = [0, 0]

    async def handler(ws):
        try:
            if mode in ("bulk", "zbulk"):
                async for msg in ws:
                    stats[0] += len(msg)
                    stats[1] += 1
            else:
                async for msg in ws:
                    await ws.send(msg)
                    stats[0] += len(msg)
                    stats[1] += 1
        except websockets.ConnectionClosed:
            pass
        finally:
            if not done.done():
                done.set_result(None)

    opts = zopts(True) if mode == "zbulk" else OPTS
    async with websockets.serve(handler, "127.0.0.1", port, **opts):
        await done
    print("SERVER bytes=%d frames=%d" % tuple(stats), flush=True)


async def client(mode, port, total, size):
    uri = "ws://127.0.0.1:%d/" % port
    for _ in range(2000):
        try:
            ws = await websockets.connect(uri, **(zopts(False) if mode == "zbulk" else OPTS))
            break
        except OSError:
            await asyncio.sleep(0.01)
    else:
        sys.exit("websockets_bench: cannot connect")
    buf = os.urandom(size)
    if mode == "zbulk":
        if not ws.extensions:
            sys.exit("websockets_bench: permessage-deflate not agreed")
        msgs = load_corpus(size)
        frames, count = total // size, len(msgs)
        t0 = time.perf_counter()
        send = ws.send
        for i in range(frames):
            await send(msgs[i % count])
        await ws.close()
        secs = time.perf_counter() - t0
        print("RESULT secs=%.6f bytes=%d frames=%d MBps=%.1f fps=%.0f"
              % (secs, frames * size, frames, frames * size / secs / 1e6, frames / secs), flush=True)
    elif mode == "bulk":
        frames = total // size
        t0 = time.perf_counter()
        send = ws.send
        for _ in range(frames):
            await send(buf)
        await ws.close()
        secs = time.perf_counter() - t0
        print("RESULT secs=%.6f bytes=%d frames=%d MBps=%.1f fps=%.0f"
              % (secs, frames * size, frames, frames * size / secs / 1e6, frames / secs), flush=True)
    else:
        t0 = time.perf_counter()
        for _ in range(total):
            await ws.send(buf)
            await ws.recv()
        await ws.close()
        secs = time.perf_counter() - t0
        print("RESULT secs=%.6f rtts=%d rtps=%.0f" % (secs, total, total / secs), flush=True)


def micro():
    """W4 (`websockets_bench.py micro`): what websockets exposes. It has no head
    codec of its own: its sans-I/O frame parser (Frame.parse over a StreamReader,
    what its protocol layer runs) gives the cost per whole client frame with a
    16-byte payload (head, unmask, Frame object). Masking is apply_mask, which
    returns new bytes: the C speedups (when loaded) and the pure-Python
    fallback (websockets.utils), 64 KiB, against copying the same bytearray into
    another (slice assignment, a memmove) and into new bytes (bytes(buf)). Each
    figure is the best of several short runs."""
    from websockets import frames, streams, utils

    from bench_micro import best_of
    from bench_micro import micro_print as out

    payload = bytes(range(48, 64))
    chunk = b"".join(frames.Frame(frames.Opcode.BINARY, payload).serialize(mask=True, extensions=[])
                     for _ in range(64))
    parse = frames.Frame.parse
    reader = streams.StreamReader()
    read_exact = reader.read_exact

    def frame16(n):
        f = None
        for _ in range(n // 64):
            reader.feed_data(chunk)
            for _ in range(64):
                gen = parse(read_exact, mask=True, max_size=None, extensions=[])
                try:
                    next(gen)
                except StopIteration as e:
                    f = e.value
        assert f.data == payload

    out("frame16_decode_ns", best_of(30, 3200, frame16) * 1e9)
    size = 65536
    buf = bytearray(b"\x5a" * size)
    src, key = bytes(buf), b"\x12\x34\x56\x78"
    speedups = "websockets.speedups" in sys.modules
    def masking(fn):
        def run(n):
            for _ in range(n):
                fn(src, key)
        return run

    def bytes_copy(n):
        for _ in range(n):
            bytes(buf)

    dst = bytearray(size)

    def slice_copy(n):
        for _ in range(n):
            dst[:] = buf

    # Interleaved trials, so a busy moment of the machine hits masking and copying alike.
    tests = [("mask_copy_py_GBps", masking(utils.apply_mask), 5), ("slice_copy_GBps", slice_copy, 200),
             ("bytes_copy_GBps", bytes_copy, 200)]
    if speedups:
        tests.insert(0, ("mask_copy_GBps", masking(sys.modules["websockets.speedups"].apply_mask), 200))
    best = {}
    for trial in range(15):
        for name, fn, reps in tests:
            t = best_of(1, reps, fn)
            best[name] = min(best.get(name, t), t)
    gbps = {}
    for name, _, _ in tests:
        gbps[name] = size / best[name] / 1e9
        out(name, gbps[name])
    out("mask_vs_copy", gbps.get("mask_copy_GBps", gbps["mask_copy_py_GBps"]) / gbps["slice_copy_GBps"])


def main():
    if sys.argv[1:] == ["micro"]:
        micro()
        return
    if len(sys.argv) != 6 or sys.argv[1] not in ("server", "client") \
            or sys.argv[2] not in ("bulk", "pingpong", "zbulk", "echo"):
        usage()
    role, mode, port, total, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), \
        int(sys.argv[4]), int(sys.argv[5])
    asyncio.run((server if role == "server" else client)(mode, port, total, size))


if __name__ == "__main__":
    main()
