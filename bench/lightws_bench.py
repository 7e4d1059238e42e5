# SPDX-License-Identifier: MIT
"""lightws Python binding benchmark (blocking lightws.WebSocket API), same CLI as the C programs.

Server: bulk reads with ws.readinto() (the byte-stream read, many frames per
call) into a buffer as large as the receive buffer; pingpong echoes
ws.recv() with ws.send(). Client (fresh mask key per frame): as the C
program, frames under 8 KiB go 32 per ws.send_many() call (the gathering
write, lightws_stream_sendv), larger ones one ws.send(buf,
mask_in_place=True) each (the random payload is not needed back, so
lightws masks it in place); ws.recv() for the echo. LIGHTWS_PY_SEND=send
forces one plain ws.send() per frame, LIGHTWS_PY_SEND=many send_many() for
any size. Experiments without the public API
(optional rows of run.py): LIGHTWS_PY_SENDV=1 sends bulk frames 32 at a
time through CStream.sendv; LIGHTWS_PY_DIRECT=1|inplace calls CStream.send
per frame without the WebSocket layers. `lightws_bench.py micro` (W4) times
the sans-IO codec (lightws.codec) from Python and prints MICRO lines.
"""
import os
import socket
import sys
import time

import lightws
from bench_micro import best_of, micro_print


def rbuf_size(size):
    env = os.environ.get("BENCH_RBUF")
    if env:
        return int(env)
    return 65536 if size >= 8192 else 262144


def deflate():
    """zbulk (W5) and the echo server: lightws's defaults (window 12, memLevel 5,
    level 6) unless BENCH_WBITS / BENCH_MEMLEVEL / BENCH_LEVEL say otherwise."""
    kw = {}
    for env, name in (("BENCH_WBITS", "window_bits"), ("BENCH_MEMLEVEL", "mem_level"),
                      ("BENCH_LEVEL", "level"), ("BENCH_PEER_WBITS", "peer_window_bits")):
        if os.environ.get(env):
            kw[name] = int(os.environ[env])
    return lightws.Deflate(**kw)


def echo_server(port):
    """`server echo PORT 0 0`: an asyncio echo server with compression until
    SIGTERM (idle memory per connection)."""
    import asyncio
    import lightws.asyncio as lwa

    async def handler(ws):
        try:
            async for msg in ws:
                await ws.send(msg)
        except lightws.ConnectionClosed:
            pass

    async def main():
        server = await lwa.serve(handler, "127.0.0.1", port, compression=deflate(),
                                 ping_interval=None, max_size=None)
        print("READY", flush=True)
        async with server:
            await asyncio.Future()

    asyncio.run(main())


def server(mode, port, total, size):
    if mode == "echo":
        return echo_server(port)
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(1)
    conn, _ = ls.accept()
    ls.close()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    rsize = rbuf_size(size)
    ws = lightws.accept(conn, rbuf_size=rsize,
                        compression=deflate() if mode == "zbulk" else None)
    if mode == "zbulk" and ws.compression is None:
        sys.exit("lightws_bench.py: permessage-deflate not agreed")
    nbytes = frames = 0
    if mode in ("bulk", "zbulk"):
        buf = bytearray(rsize)
        readinto = ws.readinto
        while True:
            n = readinto(buf)
            if n == 0:
                break
            nbytes += n
        frames = nbytes // size
    else:
        send = ws.send
        for msg in ws:
            send(msg)
            nbytes += len(msg)
            frames += 1
    ws.close()
    print("SERVER bytes=%d frames=%d" % (nbytes, frames), flush=True)


def send_batched(ws, data, frames, size):
    """32 frames per CStream.sendv call on the binding's nonblocking descriptor:
    waits with poll on WouldBlock and finishes a frame cut short with send."""
    import select
    c, op = ws._c, lightws.Opcode.BINARY
    poller = select.poll()
    poller.register(ws.fileno(), select.POLLOUT)
    left = frames
    while left > 0:
        n = min(left, 32)
        try:
            sent = c.sendv([(op, data)] * n)
        except lightws.WouldBlock:
            poller.poll()
            continue
        whole, part = divmod(sent, size)
        left -= whole
        if part:
            view = memoryview(data)[part:]
            while len(view):
                try:
                    k = c.send(op, view)
                except lightws.WouldBlock:
                    poller.poll()
                    continue
                view = view[k:]
            left -= 1


def send_direct(ws, buf, frames, in_place):
    """One CStream.send per frame, skipping the WebSocket layers (not public
    API): what a lean fast path in WebSocket.send would cost. `in_place`
    adds SEND_MASK_IN_PLACE (buf is a bytearray the bench does not need back)."""
    import select
    from lightws import _core
    c, op = ws._c, lightws.Opcode.BINARY
    flags = _core.SEND_MASK_IN_PLACE if in_place else 0
    poller = select.poll()
    poller.register(ws.fileno(), select.POLLOUT)
    send = c.send
    size = len(buf)
    for _ in range(frames):
        done = 0
        while done < size:
            try:
                done += send(op, buf if done == 0 else memoryview(buf)[done:], flags)
            except lightws.WouldBlock:
                poller.poll()


def client(mode, port, total, size):
    for _ in range(2000):
        try:
            ws = lightws.connect("ws://127.0.0.1:%d/" % port,
                                 compression=deflate() if mode == "zbulk" else None)
            break
        except ConnectionRefusedError:
            time.sleep(0.01)
    else:
        sys.exit("lightws_bench.py: cannot connect")
    buf = bytearray(os.urandom(size))
    if mode == "zbulk":
        # the corpus messages in order, cycling, one ws.send (compressed) each, as text
        if ws.compression is None:
            sys.exit("lightws_bench.py: permessage-deflate not agreed")
        with open(os.environ["BENCH_CORPUS"], "rb") as f:
            data = f.read()
        msgs = [data[i:i + size] for i in range(0, len(data), size)]
        frames, count, text = total // size, len(msgs), lightws.Opcode.TEXT
        t0 = time.perf_counter()
        send = ws.send
        for i in range(frames):
            send(msgs[i % count], text)
        ws.close()
        secs = time.perf_counter() - t0
        print("RESULT secs=%.6f bytes=%d frames=%d MBps=%.1f fps=%.0f"
              % (secs, frames * size, frames, frames * size / secs / 1e6, frames / secs), flush=True)
    elif mode == "bulk":
        frames = total // size
        t0 = time.perf_counter()
        if os.environ.get("LIGHTWS_PY_SENDV") == "1":
            send_batched(ws, bytes(buf), frames, size)
        elif os.environ.get("LIGHTWS_PY_DIRECT"):
            send_direct(ws, buf, frames, os.environ["LIGHTWS_PY_DIRECT"] == "inplace")
        elif os.environ.get("LIGHTWS_PY_SEND") == "send":
            send = ws.send
            for _ in range(frames):
                send(buf)
        elif size < 8192 or os.environ.get("LIGHTWS_PY_SEND") == "many":
            send_many = ws.send_many
            batch = [bytes(buf)] * 32
            whole, rest = divmod(frames, 32)
            for _ in range(whole):
                send_many(batch)
            send_many(batch[:rest])
        else:
            send = ws.send
            for _ in range(frames):
                send(buf, mask_in_place=True)
        ws.close()
        secs = time.perf_counter() - t0
        print("RESULT secs=%.6f bytes=%d frames=%d MBps=%.1f fps=%.0f"
              % (secs, frames * size, frames, frames * size / secs / 1e6, frames / secs), flush=True)
    else:
        send, recv = ws.send, ws.recv
        t0 = time.perf_counter()
        for _ in range(total):
            send(buf)
            recv()
        ws.close()
        secs = time.perf_counter() - t0
        print("RESULT secs=%.6f rtts=%d rtps=%.0f" % (secs, total, total / secs), flush=True)


def micro():
    """W4 through the public sans-IO codec (lightws.codec), per call from Python:
    head decode of mixed 6/8/14-byte client heads (each followed by payload bytes,
    as in a receive buffer) and head encode of prepared Frames; a whole client
    frame with a 16-byte payload (decode the head, unmask the payload into new
    bytes); masking 64 KiB in place (mask_into) and into new bytes (mask),
    against copying the same bytearray (slice assignment into another one, a
    memmove) and into new bytes (bytes(buf))."""
    from lightws import codec
    masked = codec.DECODE_EXPECT_MASKED
    frames = [codec.Frame(lightws.Opcode.BINARY, (64, 1024, 16384, 100000)[i % 4] + i // 4, True,
                          bytes([i, 1, 2, 3])) for i in range(64)]
    heads = [codec.encode_frame_header(f) + bytes(32) for f in frames]
    decode, encode, mask, mask_into = (codec.decode_frame_header, codec.encode_frame_header,
                                       codec.mask, codec.mask_into)

    def dec(n):
        for _ in range(n // 64):
            for h in heads:
                decode(h, masked)

    def enc(n):
        for _ in range(n // 64):
            for f in frames:
                encode(f)

    key = b"\x12\x34\x56\x78"
    payload = bytes(range(16))
    f16 = [codec.encode_frame_header(codec.Frame(lightws.Opcode.BINARY, 16, True, bytes([i, 7, 8, 9])))
           + mask(payload, bytes([i, 7, 8, 9])) for i in range(64)]

    def frame16(n):
        for _ in range(n // 64):
            for fr in f16:
                f, hl = decode(fr, masked)
                data = mask(fr[hl:hl + f.length], f.mask)
        assert data == payload

    micro_print("head_decode_ns", best_of(30, 6400, dec) * 1e9)
    micro_print("head_encode_ns", best_of(30, 6400, enc) * 1e9)
    micro_print("frame16_decode_ns", best_of(30, 3200, frame16) * 1e9)

    size = 65536
    buf = bytearray(b"\x5a" * size)
    src = bytes(buf)
    dst = bytearray(size)

    def m_in_place(n):
        for _ in range(n):
            mask_into(buf, key)

    def m_copy(n):
        for _ in range(n):
            mask(src, key)

    def slice_copy(n):
        for _ in range(n):
            dst[:] = buf

    def bytes_copy(n):
        for _ in range(n):
            bytes(buf)

    # Interleaved trials, so a busy moment of the machine hits masking and copying alike.
    tests = (("mask_GBps", m_in_place), ("mask_copy_GBps", m_copy),
             ("slice_copy_GBps", slice_copy), ("bytes_copy_GBps", bytes_copy))
    best = dict((name, None) for name, _ in tests)
    for _ in range(15):
        for name, fn in tests:
            t = best_of(1, 200, fn)
            best[name] = t if best[name] is None or t < best[name] else best[name]
    gbps = {}
    for name, _ in tests:
        gbps[name] = size / best[name] / 1e9
        micro_print(name, gbps[name])
    micro_print("mask_vs_copy", gbps["mask_GBps"] / gbps["slice_copy_GBps"])


def main():
    if sys.argv[1:] == ["micro"]:
        micro()
        return
    if len(sys.argv) != 6 or sys.argv[1] not in ("server", "client") \
            or sys.argv[2] not in ("bulk", "pingpong", "zbulk", "echo"):
        sys.exit("usage: lightws_bench.py server|client bulk|pingpong|zbulk PORT TOTAL SIZE\n"
                 "       lightws_bench.py server echo PORT 0 0\n"
                 "       lightws_bench.py micro")
    role, mode = sys.argv[1], sys.argv[2]
    port, total, size = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    (server if role == "server" else client)(mode, port, total, size)


if __name__ == "__main__":
    main()
