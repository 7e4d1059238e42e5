# SPDX-License-Identifier: MIT
"""Interop tests: lightws tools against real peers (python3-websockets, node ws), both roles.

Run with Debian's /usr/bin/python3 (it has python3-websockets 10.4) from the
repository root, after `make all`: /usr/bin/python3 tests/interop/interop.py
Prints one line per case and a final "N passed, M failed" line; exits 1 on
any failure.
"""
import asyncio
import os
import re
import resource
import signal
import socket
import struct
import sys
import time

import websockets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deflate as pmd  # noqa: E402  (the permessage-deflate cases)
import wss  # noqa: E402  (the wss cases)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.join(ROOT, "build")
ECHO = os.path.join(BUILD, "lightws-echo")
CAT = os.path.join(BUILD, "lightws-cat")
HERE = os.path.dirname(os.path.abspath(__file__))
NODE_ENV = dict(os.environ, NODE_PATH=os.path.join(BUILD, "node", "node_modules"))
CASE_TIMEOUT = 20

passed = 0
failed = 0


def report(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok    {name}", flush=True)
    else:
        failed += 1
        print(f"FAIL  {name}: {detail}", flush=True)


async def run_case(name, coro):
    try:
        await asyncio.wait_for(coro, CASE_TIMEOUT)
    except Exception as e:  # a failed case never stops the suite
        report(name, False, f"{type(e).__name__}: {e}")
    else:
        report(name, True)


in_thread = pmd.in_thread


def check(cond, what):
    if not cond:
        raise AssertionError(what)


async def read_listening(stream, what):
    """Reads lines until 'listening on HOST:PORT'; returns the port."""
    while True:
        line = await asyncio.wait_for(stream.readline(), 10)
        if not line:
            raise RuntimeError(f"{what} exited before listening")
        m = re.match(rb"listening on .*:(\d+)\s*$", line)
        if m:
            return int(m.group(1))


async def stop(proc):
    if proc.returncode is None:
        try:
            proc.terminate()
        except ProcessLookupError:
            pass
    try:
        return await asyncio.wait_for(proc.wait(), 5)
    except asyncio.TimeoutError:
        proc.kill()
        return await proc.wait()


def connect(url):
    # No compression: these cases check the uncompressed paths (lightws-echo
    # declines when nothing is offered); deflate.py has the compressed ones.
    return websockets.connect(url, max_size=None, compression=None,
                              ping_interval=None, open_timeout=10)


# --- lightws-echo as the server, python websockets as the client ----------

async def py_text(url):
    async with connect(url) as ws:
        for msg in ["hello", "", "h\u00e9llo w\u00f6rld \U0001F600"]:
            await ws.send(msg)
            got = await ws.recv()
            check(isinstance(got, str) and got == msg, f"text echo {got!r} != {msg!r}")


async def py_binary(url):
    async with connect(url) as ws:
        data = os.urandom(1 << 20)
        await ws.send(data)
        got = await ws.recv()
        check(isinstance(got, bytes) and got == data, "1 MiB binary echo differs")
        await ws.send(b"")
        got = await ws.recv()
        check(got == b"", "empty binary echo differs")


async def py_fragmented(url):
    async with connect(url) as ws:
        await ws.send(["frag", "ment", "ed \u00fc"])  # §5.4: one message, three frames
        got = await ws.recv()
        check(got == "fragmented \u00fc", f"fragmented text echo {got!r}")
        parts = [os.urandom(70000), os.urandom(3), os.urandom(100000)]
        await ws.send(parts)
        got = await ws.recv()
        check(got == b"".join(parts), "fragmented binary echo differs")


async def py_ping(url):
    async with connect(url) as ws:
        waiter = await ws.ping(b"py-ping")
        await asyncio.wait_for(waiter, 5)  # resolves only for a pong with b"py-ping"
        await ws.send("after ping")
        check(await ws.recv() == "after ping", "echo after ping")


async def py_close(url):
    ws = await connect(url)
    await ws.close(4000, "py bye")
    # §5.5.1: the reply echoes the code; lightws sends no reason with it.
    # The server log shows the reason it received (checked at the end).
    check(ws.close_code == 4000, f"close code {ws.close_code}")
    check(ws.close_reason in ("", "py bye"), f"close reason {ws.close_reason!r}")


def raw_handshake(port, path="/raw", extra=b""):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    req = (b"GET " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
           b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           b"Sec-WebSocket-Version: 13\r\n" + extra + b"\r\n")
    s.sendall(req)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError("connection closed during handshake")
        head += chunk
    head, rest = head.split(b"\r\n\r\n", 1)
    check(head.startswith(b"HTTP/1.1 101"), f"status line {head[:40]!r}")
    # §1.3 example key and its accept value
    check(b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head, "Sec-WebSocket-Accept")
    return s, rest


def masked_frame(opcode, payload, fin=True):
    key = b"\x01\x02\x03\x04"
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def read_frames_until_close(s, rest):
    """Returns (frames before close, close code) read from a server."""
    buf = rest
    frames = []
    deadline = time.monotonic() + 5  # monotonic: a wall-clock step must not end the wait
    while time.monotonic() < deadline:
        while len(buf) >= 2:
            op = buf[0] & 0x0F
            n = buf[1] & 0x7F
            off = 2
            if n == 126:
                if len(buf) < 4:
                    break
                n = struct.unpack("!H", buf[2:4])[0]
                off = 4
            elif n == 127:
                if len(buf) < 10:
                    break
                n = struct.unpack("!Q", buf[2:10])[0]
                off = 10
            if len(buf) < off + n:
                break
            payload = buf[off:off + n]
            buf = buf[off + n:]
            if op == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                return frames, code
            frames.append((op, payload))
        chunk = s.recv(65536)
        if not chunk:
            raise RuntimeError("EOF before a close frame")
        buf += chunk
    raise RuntimeError("no close frame within 5 s")


async def raw_invalid_utf8(port):
    def go():
        s, rest = raw_handshake(port)
        try:
            s.sendall(masked_frame(0x1, b"ok"))
            s.sendall(masked_frame(0x1, b"bad \xff\xfe utf-8"))
            frames, code = read_frames_until_close(s, rest)
            check(frames == [(0x1, b"ok")], f"frames before close {frames!r}")
            check(code == 1007, f"close code {code}, want 1007")
        finally:
            s.close()
    await asyncio.get_running_loop().run_in_executor(None, go)


async def raw_invalid_utf8_split(port):
    """Invalid UTF-8 spread over fragments (§8.1: fail fast across frames)."""
    def go():
        s, rest = raw_handshake(port)
        try:
            s.sendall(masked_frame(0x1, b"caf\xc3", fin=False))
            s.sendall(masked_frame(0x0, b"\x28 tail"))  # 0xC3 0x28 is invalid
            frames, code = read_frames_until_close(s, rest)
            check(code == 1007, f"close code {code}, want 1007")
        finally:
            s.close()
    await asyncio.get_running_loop().run_in_executor(None, go)


async def raw_unmasked(port):
    def go():
        s, rest = raw_handshake(port)
        try:
            s.sendall(b"\x81\x02hi")  # §5.1: a client frame must be masked
            frames, code = read_frames_until_close(s, rest)
            check(code == 1002, f"close code {code}, want 1002")
        finally:
            s.close()
    await asyncio.get_running_loop().run_in_executor(None, go)


async def raw_byte_at_a_time(port):
    """Every split: the request and frames arrive one byte per segment, with a
    ping between two fragments (§5.4: control frames may be interleaved)."""
    def go():
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            req = (b"GET /bytes HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   b"Sec-WebSocket-Version: 13\r\n\r\n")
            wire = (req + masked_frame(0x1, "byte \u00e9".encode(), fin=False)
                    + masked_frame(0x9, b"mid")
                    + masked_frame(0x0, b" by byte" * 20)
                    + masked_frame(0x8, struct.pack("!H", 1000)))
            for i in range(len(wire)):
                s.sendall(wire[i:i + 1])
                if i % 8 == 0:
                    time.sleep(0.0005)
            head = b""
            while b"\r\n\r\n" not in head:
                head += s.recv(4096)
            check(head.startswith(b"HTTP/1.1 101"), f"status {head[:30]!r}")
            rest = head.split(b"\r\n\r\n", 1)[1]
            frames, code = read_frames_until_close(s, rest)
            ops = [op for op, _ in frames]
            text = b"".join(p for op, p in frames if op in (0x1, 0x0))
            check(text == "byte \u00e9".encode() + b" by byte" * 20, f"echo {text[:40]!r}")
            check((0xA, b"mid") in frames, f"no pong 'mid' in {ops}")
            check(ops[0] == 0x1 and all(op in (0x0, 0xA) for op in ops[1:]), f"opcodes {ops}")
            check(code == 1000, f"close code {code}")
        finally:
            s.close()
    await asyncio.get_running_loop().run_in_executor(None, go)


async def raw_too_big(port):
    """A frame head announcing more than --max-message fails with 1009 at once."""
    def go():
        s, rest = raw_handshake(port)
        try:
            s.sendall(b"\x82\xff" + struct.pack("!Q", 5 << 20) + b"\0\0\0\0")
            frames, code = read_frames_until_close(s, rest)
            check(code == 1009, f"close code {code}, want 1009")
        finally:
            s.close()
    await asyncio.get_running_loop().run_in_executor(None, go)


async def raw_slow_reader(port):
    """The client reads nothing for a while: the server's writes block in the
    middle of frames and must resume without losing or repeating a byte."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # A small receive window set before connecting keeps the server's
    # writes blocking while we do not read.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
    sock.connect(("127.0.0.1", port))
    r, w = await asyncio.open_connection(sock=sock)
    try:
        w.write(b"GET /slow HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 13\r\n\r\n")
        await r.readuntil(b"\r\n\r\n")
        # 12 MiB in 2 MiB messages: more than the kernel buffers on both
        # sides hold, so the server's sends do block mid-frame.
        data = os.urandom(12 << 20)
        key = b"\x11\x22\x33\x44"
        for off in range(0, len(data), 2 << 20):
            part = data[off:off + (2 << 20)]
            n = len(part)
            masked = (int.from_bytes(part, "big") ^
                      int.from_bytes(key * (n // 4), "big")).to_bytes(n, "big")
            w.write(b"\x82\xff" + struct.pack("!Q", n) + key + masked)
        writer = asyncio.ensure_future(w.drain())
        await asyncio.sleep(1.0)  # the server blocks writing the echo meanwhile
        got = bytearray()
        while len(got) < len(data):
            h = await r.readexactly(2)
            n = h[1] & 0x7F
            if n == 126:
                n = struct.unpack("!H", await r.readexactly(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", await r.readexactly(8))[0]
            check(h[0] & 0x0F in (0x2, 0x0), f"opcode {h[0]:#x}")
            got += await r.readexactly(n)
        await writer
        check(bytes(got) == data, "12 MiB echo differs after blocked writes")
    finally:
        w.close()


async def raw_many(port, n):
    """n connections open at once, each echoing a text and a fragmented message."""
    async def one(i):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        try:
            w.write(b"GET /many HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    b"Sec-WebSocket-Version: 13\r\n\r\n")
            await r.readuntil(b"\r\n\r\n")
            await opened.wait()
            msg = b"m%05d" % i
            w.write(masked_frame(0x1, msg) + masked_frame(0x2, b"ab", fin=False)
                    + masked_frame(0x0, b"cd") + masked_frame(0x8, struct.pack("!H", 1000)))
            data = await r.read()  # until the server closes TCP
            want = (b"\x81\x06" + msg + b"\x02\x02ab\x80\x02cd\x88\x02\x03\xe8")
            check(data == want, f"connection {i}: {data!r}")
        finally:
            w.close()
    opened = asyncio.Event()
    tasks = [asyncio.ensure_future(one(i)) for i in range(n)]
    await asyncio.sleep(0.3)
    opened.set()  # all handshakes done or in flight: every connection is open
    await asyncio.gather(*tasks)


def http_status(port, req):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(req)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data
    finally:
        s.close()


async def raw_bad_handshakes(port):
    def go():
        base = (b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\n")
        key = b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        r = http_status(port, base + key + b"Sec-WebSocket-Version: 8\r\n\r\n")
        check(r.startswith(b"HTTP/1.1 426"), f"version 8: {r[:30]!r}")
        check(b"sec-websocket-version: 13" in r.lower(), "426 lacks Sec-WebSocket-Version: 13")
        r = http_status(port, base + b"Sec-WebSocket-Version: 13\r\n\r\n")
        check(r.startswith(b"HTTP/1.1 400"), f"no key: {r[:30]!r}")
        r = http_status(port, b"POST / HTTP/1.1\r\nHost: x\r\n\r\n")
        check(r[:12] in (b"HTTP/1.1 405", b"HTTP/1.1 400"), f"POST: {r[:30]!r}")
    await asyncio.get_running_loop().run_in_executor(None, go)


def node_ws_missing():
    if os.path.isdir(os.path.join(NODE_ENV["NODE_PATH"], "ws")):
        return False
    return "node ws is not installed in build/node (run make deps)"


async def node_client(url):
    if node_ws_missing():
        report("echo-server <- node ws client", False, node_ws_missing())
        return
    proc = await asyncio.create_subprocess_exec(
        "node", os.path.join(HERE, "node_client.js"), url,
        stdout=asyncio.subprocess.PIPE, env=NODE_ENV)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), CASE_TIMEOUT)
    except asyncio.TimeoutError:
        await stop(proc)
        report("node-client", False, "timed out")
        return
    seen = 0
    for line in out.decode(errors="replace").splitlines():
        m = re.match(r"(ok|FAIL)\s+(\S+)(?::\s*(.*))?$", line)
        if m:
            seen += 1
            report(f"echo-server <- node ws client: {m.group(2)}", m.group(1) == "ok", m.group(3) or "")
    if proc.returncode != 0 or seen == 0:
        report("echo-server <- node ws client: exit status", False,
               f"exit {proc.returncode}, {seen} cases reported")


# --- lightws-echo --client against real servers ---------------------------

async def echo_client_run(url, *args):
    proc = await asyncio.create_subprocess_exec(
        ECHO, *args, "--client", url, stderr=asyncio.subprocess.PIPE)
    try:
        _, err = await asyncio.wait_for(proc.communicate(), CASE_TIMEOUT)
    except asyncio.TimeoutError:
        await stop(proc)
        raise
    return proc.returncode, err.decode(errors="replace").strip()


async def echo_client_vs_py_server():
    path = "/runCase?case=7&agent=lightws&x=%20a+b"
    result = {}

    async def handler(ws, _path=None):
        try:
            check(ws.path == path, f"path {ws.path!r} != {path!r}")
            await ws.send("h\u00e9llo client")
            check(await ws.recv() == "h\u00e9llo client", "text echo")
            data = os.urandom(1 << 20)
            await ws.send(data)
            check(await ws.recv() == data, "1 MiB binary echo")
            await ws.send(["frag", "ment", "ed"])
            check(await ws.recv() == "fragmented", "fragmented echo")
            await ws.send(b"")
            check(await ws.recv() == b"", "empty binary echo")
            waiter = await ws.ping(b"server-ping")
            await asyncio.wait_for(waiter, 5)
            await ws.close(4001, "server bye")
            check(ws.close_code == 4001, f"client answered close with {ws.close_code}")
            result["ok"] = True
        except Exception as e:
            result["err"] = f"{type(e).__name__}: {e}"

    async with websockets.serve(handler, "127.0.0.1", 0, max_size=None,
                                compression=None, ping_interval=None) as server:
        port = server.sockets[0].getsockname()[1]
        rc, err = await echo_client_run(f"ws://127.0.0.1:{port}{path}")
    check("err" not in result, result.get("err", ""))
    check(result.get("ok"), "server handler did not finish")
    check(rc == 0, f"lightws-echo --client exit {rc}: {err}")
    check("server closed with 4001 'server bye'" in err, f"client stderr {err!r}")


async def echo_client_invalid_utf8():
    """The server sends invalid UTF-8 text: lightws-echo --client must close
    with 1007 (§8.1), name the error and exit 1."""
    result = {}

    async def handler(ws, _path=None):
        try:
            await ws.send("fine")
            check(await ws.recv() == "fine", "text echo")
            await ws.write_frame(True, 0x1, b"caf\xc3\x28")  # raw frame, bad UTF-8
            await asyncio.wait_for(ws.wait_closed(), 5)
            result["code"] = ws.close_code
        except Exception as e:
            result["err"] = f"{type(e).__name__}: {e}"

    async with websockets.serve(handler, "127.0.0.1", 0, compression=None,
                                ping_interval=None) as server:
        port = server.sockets[0].getsockname()[1]
        rc, err = await echo_client_run(f"ws://127.0.0.1:{port}/bad")
    check("err" not in result, result.get("err", ""))
    check(result.get("code") == 1007, f"client closed with {result.get('code')}")
    check(rc == 1 and "UTF8" in err, f"exit {rc}, stderr {err!r}")


async def echo_client_vs_node_server():
    path = "/node?case=2&agent=lightws"
    check(not node_ws_missing(), node_ws_missing())
    proc = await asyncio.create_subprocess_exec(
        "node", os.path.join(HERE, "node_server.js"), path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=NODE_ENV)
    try:
        port = await read_listening(proc.stdout, "node server")
        rc, err = await echo_client_run(f"ws://127.0.0.1:{port}{path}")
        out = await asyncio.wait_for(proc.stdout.read(), 10)
        nrc = await asyncio.wait_for(proc.wait(), 10)
        check(nrc == 0, f"node server exit {nrc}: {out.decode(errors='replace').strip()}")
        check(rc == 0, f"lightws-echo --client exit {rc}: {err}")
        check("server closed with 4002 'node server bye'" in err, f"client stderr {err!r}")
    finally:
        await stop(proc)


# --- lightws-cat against python websockets --------------------------------

async def cat_client_binary():
    data = os.urandom(300000)
    got = []
    done = asyncio.get_running_loop().create_future()

    async def handler(ws, _path=None):
        await ws.send(b"greeting-bytes")
        try:
            async for msg in ws:
                check(isinstance(msg, bytes), "cat sent a text message in binary mode")
                got.append(msg)
        finally:
            done.set_result(ws.close_code)

    async with websockets.serve(handler, "127.0.0.1", 0, max_size=None,
                                compression=None, ping_interval=None) as server:
        port = server.sockets[0].getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            CAT, f"ws://127.0.0.1:{port}/cat", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(data), CASE_TIMEOUT)
        code = await asyncio.wait_for(done, 5)
    check(proc.returncode == 0, f"lightws-cat exit {proc.returncode}: {err.decode().strip()}")
    check(b"".join(got) == data, f"server got {sum(map(len, got))} bytes, want {len(data)}")
    check(out == b"greeting-bytes", f"cat stdout {out[:40]!r}")
    check(code == 1000, f"cat closed with {code}")


async def cat_client_text():
    lines = ["line one", "", "\u00fcn\u00efc\u00f6de \u2713", "last without newline"]
    got = []

    async def handler(ws, _path=None):
        await ws.send("hello cat")
        await ws.send("second")
        async for msg in ws:
            got.append(msg)

    async with websockets.serve(handler, "127.0.0.1", 0, compression=None,
                                ping_interval=None) as server:
        port = server.sockets[0].getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            CAT, "--text", f"ws://127.0.0.1:{port}/cat?text=1",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        stdin = "\n".join(lines).encode()
        out, err = await asyncio.wait_for(proc.communicate(stdin), CASE_TIMEOUT)
    check(proc.returncode == 0, f"lightws-cat exit {proc.returncode}: {err.decode().strip()}")
    check(got == lines, f"server got {got!r}")
    check(out == b"hello cat\nsecond\n", f"cat stdout {out!r}")


async def cat_listen_binary():
    data = os.urandom(200000)
    proc = await asyncio.create_subprocess_exec(
        CAT, "--listen", "0", "--host", "127.0.0.1", stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        port = await read_listening(proc.stderr, "lightws-cat --listen")
        async with connect(f"ws://127.0.0.1:{port}/") as ws:
            await ws.send(b"client->cat")
            await ws.send("text too")
            proc.stdin.write(data)
            await proc.stdin.drain()
            proc.stdin.close()
            got = []
            async for msg in ws:
                got.append(msg)
            check(ws.close_code == 1000, f"cat closed with {ws.close_code}")
        check(b"".join(got) == data, f"client got {sum(map(len, got))} bytes, want {len(data)}")
        out = await asyncio.wait_for(proc.stdout.read(), 10)
        rc = await asyncio.wait_for(proc.wait(), 10)
        check(rc == 0, f"lightws-cat exit {rc}")
        check(out == b"client->cattext too", f"cat stdout {out!r}")
    finally:
        await stop(proc)


async def cat_listen_text():
    proc = await asyncio.create_subprocess_exec(
        CAT, "--text", "--listen", "0", stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        port = await read_listening(proc.stderr, "lightws-cat --listen")
        async with connect(f"ws://127.0.0.1:{port}/") as ws:
            await ws.send("from client \u00e9")
            proc.stdin.write("a\nb\u00e9\n".encode())
            await proc.stdin.drain()
            check(await ws.recv() == "a", "first line")
            check(await ws.recv() == "b\u00e9", "second line")
            await ws.close(1000, "done")
        out = await asyncio.wait_for(proc.stdout.read(), 10)
        rc = await asyncio.wait_for(proc.wait(), 10)
        check(rc == 0, f"lightws-cat exit {rc}")
        check(out == "from client \u00e9\n".encode(), f"cat stdout {out!r}")
    finally:
        await stop(proc)


# --- time: handshake, idle and keepalive timeouts (issue 12) ---------------

async def start_echo(*args, preexec_fn=None):
    proc = await asyncio.create_subprocess_exec(
        ECHO, "--port", "0", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, preexec_fn=preexec_fn)
    port = await read_listening(proc.stdout, "lightws-echo")
    return proc, port


UPGRADE = (b"GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\n"
           b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           b"Sec-WebSocket-Version: 13\r\n\r\n")


def wait_tcp_end(s, limit):
    """Reads until EOF/reset; returns (seconds waited, bytes read)."""
    t0 = time.monotonic()
    data = b""
    s.settimeout(0.1)
    while time.monotonic() - t0 < limit:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            break
        if not chunk:
            break
        data += chunk
    else:
        raise AssertionError(f"still open after {limit} s")
    return time.monotonic() - t0, data


async def echo_blocking_case(args, go, log_wants):
    """Runs go(port) in a thread against lightws-echo started with `args`,
    then checks that the echo log says `log_wants`."""
    proc, port = await start_echo(*args)
    try:
        await asyncio.get_running_loop().run_in_executor(None, go, port)
    finally:
        await stop(proc)
    log = (await proc.stderr.read()).decode(errors="replace")
    check(log_wants in log, f"log {log!r}")


async def time_dribbled_handshake():
    def go(port):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        t0 = time.monotonic()
        try:
            for i in range(len(UPGRADE) - 1):  # never completes
                s.sendall(UPGRADE[i:i + 1])
                time.sleep(0.1)
                if time.monotonic() - t0 > 8:
                    raise AssertionError("dribbled request not cut within 8 s")
        except (ConnectionResetError, BrokenPipeError):
            pass
        _, data = wait_tcp_end(s, 8)
        elapsed = time.monotonic() - t0
        s.close()
        check(0.4 <= elapsed <= 5, f"cut after {elapsed:.2f} s, want ~0.5")
        check(data == b"" or data.startswith(b"HTTP/1.1 408"), f"got {data[:40]!r}")
    await echo_blocking_case(("--handshake-timeout", "0.5"), go, "(HANDSHAKE_TIMEOUT)")


async def time_idle():
    def go(port):
        s, rest = raw_handshake(port)
        t0 = time.monotonic()
        _, data = wait_tcp_end(s, 8)
        elapsed = time.monotonic() - t0
        s.close()
        data = rest + data
        check(0.4 <= elapsed <= 5, f"closed after {elapsed:.2f} s, want ~0.5")
        check(data[:1] == b"\x88" and struct.unpack("!H", data[2:4])[0] == 1001,
              f"want close 1001, got {data[:8]!r}")
    await echo_blocking_case(("--idle-timeout", "0.5"), go, "close 1001 (IDLE_TIMEOUT)")


async def time_keepalive_python():
    proc, port = await start_echo("--ping-interval", "0.3")
    try:
        pings = []
        async with connect(f"ws://127.0.0.1:{port}/ka") as ws:
            orig = ws.write_frame  # count pongs we send = pings received
            async def wf(fin, opcode, data, *args, **kw):
                if opcode == 0xA:
                    pings.append(data)
                return await orig(fin, opcode, data, *args, **kw)
            ws.write_frame = wf
            await asyncio.sleep(2.0)
            check(ws.open, f"closed while idle: {ws.close_code}")
            await ws.send("still here")
            check(await ws.recv() == "still here", "echo after 2 s idle")
        check(3 <= len(pings) <= 10, f"{len(pings)} pings in 2 s at 0.3 s")
    finally:
        await stop(proc)


async def time_keepalive_unanswered():
    proc, port = await start_echo("--ping-interval", "0.3")
    try:
        def go():
            s, rest = raw_handshake(port)
            t0 = time.monotonic()
            _, data = wait_tcp_end(s, 8)
            elapsed = time.monotonic() - t0
            s.close()
            buf = rest + data
            ops = []
            while len(buf) >= 2:
                n = buf[1] & 0x7F
                ops.append((buf[0] & 0x0F, buf[2:2 + n]))
                buf = buf[2 + n:]
            check(ops and ops[0][0] == 0x9, f"want a ping first, got {ops!r}")
            check(ops[-1][0] == 0x8 and struct.unpack("!H", ops[-1][1][:2])[0] == 1011,
                  f"want close 1011 last, got {ops!r}")
            check(0.4 <= elapsed <= 5, f"closed after {elapsed:.2f} s, want ~0.6")
        await asyncio.get_running_loop().run_in_executor(None, go)
    finally:
        await stop(proc)
    log = (await proc.stderr.read()).decode(errors="replace")
    check("close 1011 (PING_TIMEOUT)" in log, f"log {log!r}")


def fd_limit_256():
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


async def time_fd_limit_dribblers():
    """300 dribbling connections against a 256-descriptor limit: the echo
    server keeps its connections, pauses accepting, and once the dribblers
    time out (--handshake-timeout 1) serves a well-behaved client."""
    proc, port = await start_echo("--handshake-timeout", "1", "--quiet",
                                  preexec_fn=fd_limit_256)
    socks = []
    try:
        # A connection made before the flood must keep being served during it.
        early = await connect(f"ws://127.0.0.1:{port}/early")
        def open_dribblers():
            for _ in range(300):
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", port))
                socks.append(s)
            time.sleep(0.3)
            for s in socks[::2]:  # half send 3 bytes, half nothing at all
                try:
                    s.send(UPGRADE[:3])
                except OSError:
                    pass
        await asyncio.get_running_loop().run_in_executor(None, open_dribblers)
        await early.send("during the flood")
        check(await asyncio.wait_for(early.recv(), 5) == "during the flood",
              "an established connection was not served at the descriptor limit")
        t0 = time.monotonic()
        async with connect(f"ws://127.0.0.1:{port}/good") as ws:
            await ws.send("served")
            check(await asyncio.wait_for(ws.recv(), 10) == "served", "echo")
        waited = time.monotonic() - t0
        check(waited < 12, f"served after {waited:.1f} s")
        print(f"      (good client served {waited:.2f} s after 300 dribblers)", flush=True)
        check(proc.returncode is None, "echo server exited")
        await early.send("after")
        check(await asyncio.wait_for(early.recv(), 5) == "after", "early connection after")
        await early.close()
    finally:
        for s in socks:
            s.close()
        await stop(proc)
    check(proc.returncode == 0, f"echo exit {proc.returncode}")


async def silent_tcp_server():
    """A TCP server that accepts and never answers."""
    held = []
    server = await asyncio.start_server(lambda r, w: held.append(w), "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], held


async def time_client_gives_up(argv_of_port, name):
    server, port, held = await silent_tcp_server()
    try:
        t0 = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            *argv_of_port(port), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), 8)
        except asyncio.TimeoutError:
            await stop(proc)
            raise AssertionError(f"{name} still waiting after 8 s")
        elapsed = time.monotonic() - t0
        err = err.decode(errors="replace").strip()
        check(proc.returncode not in (0, None), f"exit {proc.returncode}")
        check(0.4 <= elapsed <= 5, f"gave up after {elapsed:.2f} s, want ~0.5")
        check(err.count("\n") == 0 and "HANDSHAKE_TIMEOUT" in err, f"stderr {err!r}")
    finally:
        for w in held:
            w.close()
        server.close()


async def time_echo_client_close_while_flooded():
    """After the close handshake the server keeps sending: the echo client
    must still exit (within its close timeout, 2 s)."""
    stop_flood = asyncio.Event()

    async def handler(reader, writer):
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = await reader.read(4096)
            if not chunk:
                return
            head += chunk
        key = re.search(rb"(?i)sec-websocket-key:\s*(\S+)", head).group(1)
        import base64, hashlib
        acc = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + acc + b"\r\n\r\n")
        writer.write(b"\x88\x02\x03\xe8")  # close 1000
        try:
            while not stop_flood.is_set():
                writer.write(b"\x81\x05flood")  # frames after close, forever
                await writer.drain()
                await asyncio.sleep(0.01)
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        t0 = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            ECHO, "--client", f"ws://127.0.0.1:{port}/flood",
            stderr=asyncio.subprocess.PIPE)
        try:
            _, err = await asyncio.wait_for(proc.communicate(), 10)
        except asyncio.TimeoutError:
            await stop(proc)
            raise AssertionError("echo client still running 10 s after the close")
        elapsed = time.monotonic() - t0
        check(proc.returncode == 0, f"exit {proc.returncode}: {err!r}")
        check(elapsed < 6, f"exited after {elapsed:.2f} s, want ~2")
    finally:
        stop_flood.set()
        server.close()


async def time_cases():
    await run_case("time: handshake dribbled 1 byte/100 ms cut at --handshake-timeout 0.5",
                   time_dribbled_handshake())
    await run_case("time: silent connection closed 1001 at --idle-timeout 0.5", time_idle())
    await run_case("time: --ping-interval 0.3, python websockets client idle 2 s stays, sees pings",
                   time_keepalive_python())
    await run_case("time: --ping-interval 0.3, pings never answered -> close 1011, TCP close",
                   time_keepalive_unanswered())
    await run_case("time: 300 dribblers at a 256-descriptor limit, a good client served after",
                   time_fd_limit_dribblers())
    await run_case("time: echo --client --timeout 0.5 against a silent server exits non-zero",
                   time_client_gives_up(lambda p: [ECHO, "--timeout", "0.5", "--client",
                                                   f"ws://127.0.0.1:{p}/"], "echo client"))
    await run_case("time: cat --timeout 0.5 against a silent server exits non-zero",
                   time_client_gives_up(lambda p: [CAT, "--timeout", "0.5",
                                                   f"ws://127.0.0.1:{p}/"], "cat"))
    await run_case("time: echo --client exits after close while the server keeps sending",
                   time_echo_client_close_while_flooded())


# --- many connections (issue 18): shared buffer, frames, workers, stats ----

def read_frames(s, rest, want):
    """Reads `want` whole frames; returns [(fin, op, payload)], the rest."""
    buf, frames = rest, []
    deadline = time.monotonic() + 10
    while len(frames) < want:
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(frames)} of {want} frames in 10 s")
        if len(buf) >= 2:
            n, off = buf[1] & 0x7F, 2
            if n == 126 and len(buf) >= 4:
                n, off = struct.unpack("!H", buf[2:4])[0], 4
            elif n == 127 and len(buf) >= 10:
                n, off = struct.unpack("!Q", buf[2:10])[0], 10
            if n < 126 or off > 2:
                if len(buf) >= off + n:
                    frames.append((buf[0] >> 7, buf[0] & 0x0F, buf[off:off + n]))
                    buf = buf[off + n:]
                    continue
        chunk = s.recv(1 << 20)
        if not chunk:
            raise AssertionError("EOF")
        buf += chunk
    return frames, buf


async def many_frames_whole():
    """A binary frame is echoed as one frame of the same length however it
    arrives (sent in 1000-byte pieces), up to 1 MiB; a text frame that fits
    the 64 KiB shared buffer comes back whole; a larger one as fragments of
    whole frames; the concatenation is always the message."""
    def go(port):
        s, rest = raw_handshake(port, "/frames")
        for size in (16384, 65536 + 100, 1 << 20):
            msg = os.urandom(size)
            f = masked_frame(0x2, msg)
            for i in range(0, len(f), 1000):
                s.sendall(f[i:i + 1000])
            frames, rest = read_frames(s, rest, 1)
            check(frames == [(1, 0x2, msg)], f"binary {size}: {[(a, b, len(c)) for a, b, c in frames]}")
        text = ("\u00e9" * 20000).encode()  # 40,000 bytes, fits
        f = masked_frame(0x1, text)
        for i in range(0, len(f), 777):
            s.sendall(f[i:i + 777])
        frames, rest = read_frames(s, rest, 1)
        check(frames == [(1, 0x1, text)], "text 40,000 B in one frame")
        big = ("x" * 200000).encode()
        s.sendall(masked_frame(0x1, big))
        got, frames = b"", []
        while not frames or not frames[-1][0]:
            fr, rest = read_frames(s, rest, 1)
            frames += fr
            got += fr[0][2]
        check(got == big and len(frames) > 1, f"text 200,000 B in {len(frames)} frames")
        s.sendall(masked_frame(0x8, struct.pack("!H", 1000)))
        s.close()
    await echo_blocking_case((), go, "/frames messages 5 bytes")


def pss_kib(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


async def many_idle_memory():
    """2,000 idle connections (handshake done, a partial frame head each)
    cost lightws-echo under 2 KiB each (17 KiB before the shared buffer;
    bench/many measures 0.8 KiB at 10,000)."""
    proc, port = await start_echo("--quiet")
    try:
        def go():
            socks = []
            before = pss_kib(proc.pid)
            for i in range(2000):
                s, rest = raw_handshake(port, "/idle")
                check(rest == b"", "nothing after the 101")
                s.sendall(b"\x82\xfe")  # half a head: kept in the stream
                socks.append(s)
            s, rest = raw_handshake(port, "/probe")  # the server is live
            s.sendall(masked_frame(0x2, b"ping"))
            frames, _ = read_frames(s, rest, 1)
            check(frames == [(1, 0x2, b"ping")], "probe echo")
            per = (pss_kib(proc.pid) - before) / 2001
            for x in socks + [s]:
                x.close()
            check(per < 2.0, f"{per:.2f} KiB per idle connection")
            return per
        per = await asyncio.get_running_loop().run_in_executor(None, go)
        print(f"      ({per:.2f} KiB per idle connection)", flush=True)
    finally:
        await stop(proc)


async def many_workers_stats():
    """--workers 2: both loops serve one port; SIGUSR1 and the exit print a
    --stats line per worker; the counts add up; SIGTERM ends all, exit 0."""
    proc, port = await start_echo("--workers", "2", "--stats", "--quiet")
    try:
        async def one(i):
            async with connect(f"ws://127.0.0.1:{port}/w{i}") as ws:
                for j in range(5):
                    await ws.send(f"m{i}.{j}")
                    check(await ws.recv() == f"m{i}.{j}", "echo")
        await asyncio.gather(*(one(i) for i in range(40)))
        proc.send_signal(signal.SIGUSR1)
        await asyncio.sleep(0.5)
    finally:
        await stop(proc)
    log = (await proc.stderr.read()).decode(errors="replace")
    check(proc.returncode == 0, f"exit {proc.returncode}")
    lines = [l for l in log.splitlines() if "stats (worker" in l]
    workers = {l.split("(worker ")[1].split(")")[0] for l in lines}
    check(len(lines) == 4 and len(workers) == 2, f"stats lines {lines!r}")
    final = lines[-2:]
    acc = sum(int(l.split(" accepted")[0].split()[-1]) for l in final)
    msgs = sum(int(l.split("messages ")[1].split(";")[0]) for l in final)
    check(acc == 40 and msgs == 200, f"accepted {acc}, messages {msgs}: {final!r}")
    check(all(int(l.split(" accepted")[0].split()[-1]) > 0 for l in final),
          f"one worker served nothing: {final!r}")


async def many_cases():
    await run_case("many: every binary frame echoed as one frame, text whole when it fits",
                   many_frames_whole())
    await run_case("many: 2,000 idle connections under 2 KiB each (shared receive buffer)",
                   many_idle_memory())
    await run_case("many: --workers 2 --stats, SIGUSR1 and exit lines add up",
                   many_workers_stats())


# --- permessage-deflate (RFC 7692), cases in deflate.py ---------------------

async def node_lines(argv, name_prefix, timeout=CASE_TIMEOUT * 4, on_ready=None):
    """Runs a node script that prints "ok NAME" / "FAIL NAME: why" lines;
    reports each. on_ready(lines) runs once it prints "ready"."""
    if node_ws_missing():
        report(name_prefix, False, node_ws_missing())
        return
    proc = await asyncio.create_subprocess_exec(
        "node", *argv, stdout=asyncio.subprocess.PIPE, env=NODE_ENV)
    seen = 0
    try:
        async def read_all():
            nonlocal seen
            early = []
            while True:
                line = await proc.stdout.readline()
                if not line:
                    return
                line = line.decode(errors="replace").rstrip("\n")
                if line == "ready" and on_ready:
                    await on_ready(early)
                    continue
                if line.startswith("listening "):
                    early.append(line)
                    continue
                m = re.match(r"(ok|FAIL)\s+(.*?)(?::\s+(.*))?$", line)
                if m:
                    seen += 1
                    report(f"{name_prefix}: {m.group(2)}", m.group(1) == "ok", m.group(3) or "")
        await asyncio.wait_for(read_all(), timeout)
        rc = await asyncio.wait_for(proc.wait(), 10)
    except asyncio.TimeoutError:
        rc = "timeout"
    finally:
        await stop(proc)
    if rc != 0 or seen == 0:
        report(f"{name_prefix}: exit status", False, f"exit {rc}, {seen} cases reported")


async def deflate_cases():
    proc, port = await start_echo("--max-message", str(4 << 20))
    url = f"ws://127.0.0.1:{port}/deflate"
    pre = "deflate: echo-server <- python websockets"
    try:
        async def py_default():
            ext = await pmd.py_default(url, check)
            print(f"      ({ext})", flush=True)
        await run_case(f"{pre} default compression: 1 MiB, empty, fragmented, 200 in a row",
                       py_default())
        for bits in range(9, 16):
            for nt in (False, True):
                await run_case(f"{pre} window bits {bits} both ways, context takeover "
                               f"{'off' if nt else 'on'}", pmd.py_window(url, check, bits, nt))
        await run_case("deflate: echo-server <- raw frames: compressed in -> compressed out, "
                       "uncompressed -> uncompressed", pmd.in_thread(pmd.raw_compressed_in_out, port, check))
        await run_case("deflate: echo-server <- raw frames: bad deflate data -> 1007, RSV1 on a "
                       "continuation -> 1002", pmd.in_thread(pmd.raw_bad_deflate, port, check))
        await run_case("deflate: echo-server <- raw offers: invalid declined, first acceptable taken",
                       pmd.in_thread(pmd.raw_offers, port, check))
        await node_lines([os.path.join(HERE, "node_deflate.js"), "client", url],
                         "deflate: echo-server <- node ws perMessageDeflate")
    finally:
        await stop(proc)
    log = (await proc.stderr.read()).decode(errors="replace")
    n = sum(1 for ln in log.splitlines() if ln.endswith(" permessage-deflate"))
    report("deflate: echo-server logged its compressed connections", n >= 30,
           f"{n} lines end in permessage-deflate")

    # lightws-echo --client against compressing servers
    pre = "deflate: echo-client -> python websockets server"
    async def py_server(**kw):
        what = await pmd.py_server_for_echo_client(echo_client_run, check, **kw)
        print(f"      ({what})", flush=True)
    await run_case(f"{pre} (default compression)", py_server())
    from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
    # (python's zlib refuses an 8-bit window: node covers 8 below)
    for bits, nt in ((9, True), (15, False), (11, True)):
        await run_case(f"{pre} window bits {bits}, context takeover {'off' if nt else 'on'}",
                       py_server(compression=None, extensions=[ServerPerMessageDeflateFactory(
                           server_no_context_takeover=nt, client_no_context_takeover=nt,
                           server_max_window_bits=bits, client_max_window_bits=bits)]))

    async def node_server_ready(lines):
        for line in lines:
            p = int(line.split()[1])
            rc, err = await echo_client_run(f"ws://127.0.0.1:{p}/node-deflate")
            if rc != 0 or "permessage-deflate" not in err:
                report(f"deflate: echo-client -> node ws server port {p}", False, f"exit {rc}: {err}")
    await node_lines([os.path.join(HERE, "node_deflate.js"), "server"],
                     "deflate: echo-client -> node ws server perMessageDeflate",
                     on_ready=node_server_ready)

    await run_case("deflate: lightws-cat -> lightws-echo (binary and text, compressed both ways)",
                   lightws_pair_cat_echo())
    await run_case("deflate: lightws-echo --client -> lightws-cat --listen", lightws_pair_echo_cat())
    await run_case("deflate: --no-deflate turns it off (echo server, echo client, cat)", no_deflate())


async def lightws_pair_cat_echo():
    proc, port = await start_echo()
    data = (pmd.text_of(200000).encode() + os.urandom(50000)) * 2
    try:
        cat = await asyncio.create_subprocess_exec(
            CAT, f"ws://127.0.0.1:{port}/pair", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(cat.communicate(data), CASE_TIMEOUT)
        check(cat.returncode == 0, f"cat exit {cat.returncode}: {err.decode().strip()}")
        check(out == data, f"cat got {len(out)} bytes back, want {len(data)}")
        lines = ["first line", "", "\u00fcn\u00efc\u00f6de", "x" * 5000]
        cat = await asyncio.create_subprocess_exec(
            CAT, "--text", f"ws://127.0.0.1:{port}/pair-text", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(cat.communicate("\n".join(lines).encode() + b"\n"),
                                          CASE_TIMEOUT)
        check(cat.returncode == 0, f"cat --text exit {cat.returncode}: {err.decode().strip()}")
        check(out.decode() == "".join(ln + "\n" for ln in lines), f"cat --text got {out[:60]!r}")
    finally:
        await stop(proc)
    log = (await proc.stderr.read()).decode(errors="replace")
    check(re.search(r"/pair messages \d+ bytes %d close 1000 permessage-deflate" % len(data), log),
          f"echo log {log!r}")
    check("/pair-text messages 4 bytes" in log and log.count("permessage-deflate") >= 2,
          f"echo log {log!r}")


async def lightws_pair_echo_cat():
    data = pmd.text_of(300000).encode()
    cat = await asyncio.create_subprocess_exec(
        CAT, "--listen", "0", "--host", "127.0.0.1", stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        port = await read_listening(cat.stderr, "lightws-cat --listen")
        echo = asyncio.ensure_future(echo_client_run(f"ws://127.0.0.1:{port}/pair"))
        cat.stdin.write(data)
        await cat.stdin.drain()
        cat.stdin.close()
        out = await asyncio.wait_for(cat.stdout.read(), CASE_TIMEOUT)
        rc = await asyncio.wait_for(cat.wait(), 10)
        erc, err = await asyncio.wait_for(echo, CASE_TIMEOUT)
        check(rc == 0, f"cat exit {rc}")
        check(out == data, f"cat got {len(out)} bytes back, want {len(data)}")
        check(erc == 0 and "server closed with 1000 '' permessage-deflate" in err,
              f"echo client exit {erc}: {err!r}")
    finally:
        await stop(cat)


async def no_deflate():
    proc, port = await start_echo("--no-deflate")
    try:
        async with websockets.connect(f"ws://127.0.0.1:{port}/plain", ping_interval=None) as ws:
            check(pmd.ext_of(ws) == "", f"--no-deflate server answered {pmd.ext_of(ws)!r}")
            await ws.send("plain")
            check(await ws.recv() == "plain", "echo")
    finally:
        await stop(proc)
    offers = []

    async def handler(ws, _path=None):
        offers.append(ws.request_headers.get("Sec-WebSocket-Extensions"))
        try:
            await ws.send(b"no deflate")
            async for _ in ws:
                pass
        except websockets.ConnectionClosed:
            pass

    async with websockets.serve(handler, "127.0.0.1", 0, ping_interval=None) as server:
        p = server.sockets[0].getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            ECHO, "--no-deflate", "--client", f"ws://127.0.0.1:{p}/",
            stderr=asyncio.subprocess.PIPE)
        await asyncio.sleep(0.5)
        await stop(proc)
        cat = await asyncio.create_subprocess_exec(
            CAT, "--no-deflate", f"ws://127.0.0.1:{p}/", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, _ = await asyncio.wait_for(cat.communicate(b"no deflate"), CASE_TIMEOUT)
        check(out == b"no deflate", f"cat got {out!r}")
    check(offers == [None, None], f"offers {offers!r}")


async def main():
    for tool in (ECHO, CAT):
        if not os.access(tool, os.X_OK):
            print(f"FAIL  {tool} not built (run make all)")
            print("0 passed, 1 failed")
            return 1
    server = await asyncio.create_subprocess_exec(
        ECHO, "--port", "0", "--max-message", str(4 << 20),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        port = await read_listening(server.stdout, "lightws-echo")
        url = f"ws://127.0.0.1:{port}/interop?q=1"
        pre = "echo-server <- python websockets:"
        await run_case(f"{pre} text", py_text(url))
        await run_case(f"{pre} binary 1 MiB", py_binary(url))
        await run_case(f"{pre} fragmented", py_fragmented(url))
        await run_case(f"{pre} ping/pong", py_ping(url))
        await run_case(f"{pre} close 4000 + reason, code echoed", py_close(url))
        await run_case("echo-server <- raw socket: invalid UTF-8 text -> 1007", raw_invalid_utf8(port))
        await run_case("echo-server <- raw socket: invalid UTF-8 across fragments -> 1007",
                       raw_invalid_utf8_split(port))
        await run_case("echo-server <- raw socket: unmasked frame -> 1002", raw_unmasked(port))
        await run_case("echo-server <- raw socket: bad handshakes -> 426/400/405",
                       raw_bad_handshakes(port))
        await run_case("echo-server <- raw socket: byte at a time, ping between fragments",
                       raw_byte_at_a_time(port))
        await run_case("echo-server <- raw socket: frame over --max-message -> 1009", raw_too_big(port))
        await run_case("echo-server <- raw socket: slow reader, 12 MiB echo resumes", raw_slow_reader(port))
        await run_case("echo-server <- raw sockets: 1000 connections at once", raw_many(port, 1000))
        await node_client(url)
        # Several clients at once, interleaved (the epoll loop).
        async def many():
            async def one(i):
                async with connect(url) as ws:
                    for j in range(20):
                        msg = os.urandom(1000 + i * 100 + j)
                        await ws.send(msg)
                        check(await ws.recv() == msg, f"client {i} message {j}")
            await asyncio.gather(*(one(i) for i in range(50)))
        await run_case(f"{pre} 50 concurrent clients", many())
    finally:
        await stop(server)
        log = (await server.stderr.read()).decode(errors="replace")
    report("echo-server exits 0 on SIGTERM", server.returncode == 0,
           f"exit {server.returncode}")
    want = ["/interop?q=1 messages 3 bytes", "close 4000 'py bye'",
            "close 4000 'node bye'", "close 1007 (UTF8)",
            "close 1002 (MASK_REQUIRED)", "rejected 426 (BAD_VERSION)",
            "rejected 400 (BAD_KEY)", "close 1009 (FRAME_TOO_BIG)",
            "/bytes messages 1 bytes 167 close 1000"]
    missing = [w for w in want if w not in log]
    lines = log.count("\n")
    report("echo-server logged one line per connection (peer, path, counts, close)",
           lines >= 1065 and not missing, f"{lines} lines, missing {missing}")

    await run_case("echo-client -> python websockets server", echo_client_vs_py_server())
    await run_case("echo-client -> node ws server", echo_client_vs_node_server())
    await run_case("echo-client -> python server sending invalid UTF-8 -> 1007, exit 1",
                   echo_client_invalid_utf8())
    await time_cases()
    await many_cases()
    await run_case("cat client -> python server: binary", cat_client_binary())
    await run_case("cat client -> python server: text lines", cat_client_text())
    await run_case("cat --listen <- python client: binary", cat_listen_binary())
    await run_case("cat --listen <- python client: text lines", cat_listen_text())
    await deflate_cases()
    await wss.wss_cases(sys.modules[__name__])

    print(f"{passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


def raise_fd_limit(want=8192):
    """The 1000-connection case holds ~1010 descriptors in this process and
    as many in lightws-echo (which inherits the limit): a 1024 soft limit
    is just enough, so take what the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        if new > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))


if __name__ == "__main__":
    raise_fd_limit()
    sys.exit(asyncio.run(main()))
