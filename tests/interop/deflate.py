# SPDX-License-Identifier: MIT
"""permessage-deflate (RFC 7692) interop cases, run by interop.py: lightws
tools against python websockets (its default compression and every window
size), node ws (perMessageDeflate, both roles, node_deflate.js), raw frames
(a compressed message is answered compressed, an uncompressed one
uncompressed), lightws against lightws, and --no-deflate."""
import asyncio
import base64
import hashlib
import os
import re
import socket
import struct
import time
import zlib

import websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def text_of(n):
    s = "permessage-deflate from python websockets to lightws, \u00e9\u20ac. "
    return (s * (n // len(s) + 1))[:n]


def messages():
    return [("text", text_of(3000)), ("empty text", ""), ("empty binary", b""),
            ("random 1 MiB", os.urandom(1 << 20)), ("text 1 MiB", text_of(1 << 20)),
            ("one byte", "x")]


def ext_of(ws):
    return ws.response_headers.get("Sec-WebSocket-Extensions") or ""


async def py_echo_roundtrip(ws, check, rounds=2):
    for r in range(rounds):  # a second round reuses the compression context
        for what, msg in messages():
            await ws.send(msg)
            got = await ws.recv()
            check(type(got) is type(msg) and got == msg, f"{what} echo differs (round {r})")
    await ws.send(["frag", "ment", "ed \u00fc"])
    check(await ws.recv() == "fragmented \u00fc", "fragmented echo")
    for i in range(200):  # many small messages: context takeover
        await ws.send(f"message {i} " + "abc" * i)
    for i in range(200):
        check(await ws.recv() == f"message {i} " + "abc" * i, f"burst message {i}")


async def py_default(url, check):
    """websockets' default client compression (what most Python users get)."""
    async with websockets.connect(url, max_size=None, ping_interval=None,
                                  open_timeout=10) as ws:
        ext = ext_of(ws)
        check(ext.startswith("permessage-deflate"), f"extension {ext!r}")
        await py_echo_roundtrip(ws, check)
        waiter = await ws.ping(b"deflate-ping")
        await asyncio.wait_for(waiter, 5)
    return ext


async def py_window(url, check, bits, no_takeover):
    """websockets offering server_max_window_bits and client_max_window_bits
    = bits (and both no_context_takeover): lightws answers the server limit
    (at most its own 12) and takes the client's."""
    factory = ClientPerMessageDeflateFactory(
        server_no_context_takeover=no_takeover, client_no_context_takeover=no_takeover,
        server_max_window_bits=bits, client_max_window_bits=bits)
    async with websockets.connect(url, max_size=None, ping_interval=None, open_timeout=10,
                                  extensions=[factory], compression=None) as ws:
        ext = ext_of(ws)
        check(f"server_max_window_bits={min(bits, 12)}" in ext, f"server window answer {ext!r}")
        check(f"client_max_window_bits={bits}" in ext, f"client window answer {ext!r}")
        check(("server_no_context_takeover" in ext) == no_takeover, f"takeover answer {ext!r}")
        await py_echo_roundtrip(ws, check, rounds=1)
    return ext


async def py_server_for_echo_client(echo_client_run, check, **server_kw):
    """python websockets server with compression on, lightws-echo --client
    (which offers permessage-deflate by default) echoes what it sends."""
    result = {}

    async def handler(ws, _path=None):
        try:
            result["ext"] = ws.response_headers.get("Sec-WebSocket-Extensions") or ""
            result["offer"] = ws.request_headers.get("Sec-WebSocket-Extensions") or ""
            for r in range(2):
                for what, msg in messages():
                    await ws.send(msg)
                    got = await ws.recv()
                    check(type(got) is type(msg) and got == msg, f"{what} echo (round {r})")
            await ws.send(["frag", "ment", "ed"])
            check(await ws.recv() == "fragmented", "fragmented echo")
            await ws.close(4001, "server bye")
            result["ok"] = True
        except Exception as e:
            result["err"] = f"{type(e).__name__}: {e}"

    async with websockets.serve(handler, "127.0.0.1", 0, max_size=None, ping_interval=None,
                                **server_kw) as server:
        port = server.sockets[0].getsockname()[1]
        rc, err = await echo_client_run(f"ws://127.0.0.1:{port}/deflate")
    check("err" not in result, result.get("err", ""))
    check(result.get("ok"), "server handler did not finish")
    check(result["offer"].startswith("permessage-deflate"), f"offer {result['offer']!r}")
    check(result["ext"].startswith("permessage-deflate"), f"answer {result['ext']!r}")
    check(rc == 0, f"lightws-echo --client exit {rc}: {err}")
    return f"{result['offer']} -> {result['ext']}"


# --- raw frames: what the echo server sends back ----------------------------

def raw_open(port, offer):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    key = base64.b64encode(os.urandom(16))
    req = (b"GET /raw-deflate HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
           b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key + b"\r\n"
           b"Sec-WebSocket-Version: 13\r\n")
    if offer is not None:
        req += b"Sec-WebSocket-Extensions: " + offer + b"\r\n"
    s.sendall(req + b"\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError("closed during the handshake")
        head += chunk
    head, rest = head.split(b"\r\n\r\n", 1)
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"status {head[:40]!r}")
    acc = base64.b64encode(hashlib.sha1(key + GUID).digest())
    if acc not in head:
        raise RuntimeError("bad Sec-WebSocket-Accept")
    m = re.search(rb"(?i)\r\nsec-websocket-extensions:\s*([^\r]*)", head)
    return s, rest, (m.group(1).decode() if m else None)


def masked(opcode, payload, fin=True, rsv1=False):
    key = os.urandom(4)
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    if n < 126:
        head = bytes([b0, 0x80 | n])
    elif n < 65536:
        head = bytes([b0, 0x80 | 126]) + struct.pack("!H", n)
    else:
        head = bytes([b0, 0x80 | 127]) + struct.pack("!Q", n)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def read_message(s, buf):
    """(first frame's rsv1, opcode, payload of the whole message, rest)."""
    first = None
    parts = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        while len(buf) >= 2:
            b0, n = buf[0], buf[1] & 0x7F
            off = 2
            if n == 126:
                if len(buf) < 4:
                    break
                n, off = struct.unpack("!H", buf[2:4])[0], 4
            elif n == 127:
                if len(buf) < 10:
                    break
                n, off = struct.unpack("!Q", buf[2:10])[0], 10
            if len(buf) < off + n:
                break
            payload, buf = buf[off:off + n], buf[off + n:]
            op = b0 & 0x0F
            if op >= 8:
                if op == 8:
                    raise RuntimeError(f"close {payload[:2].hex()} {payload[2:]!r}")
                continue
            if first is None:
                first = (bool(b0 & 0x40), op)
            elif b0 & 0x40:
                raise RuntimeError("RSV1 on a continuation frame")
            parts.append(payload)
            if b0 & 0x80:
                return first[0], first[1], b"".join(parts), buf
        chunk = s.recv(65536)
        if not chunk:
            raise RuntimeError("EOF")
        buf += chunk
    raise RuntimeError("no message within 5 s")


def raw_compressed_in_out(port, check):
    """A compressed message comes back compressed (RSV1), an uncompressed
    one uncompressed, on one connection; empty and 1-byte ones too."""
    s, buf, ext = raw_open(port, b"permessage-deflate; client_max_window_bits")
    try:
        check(ext is not None and ext.startswith("permessage-deflate"), f"answer {ext!r}")
        comp = zlib.compressobj(6, zlib.DEFLATED, -15)
        decomp = zlib.decompressobj(-15)

        def compress(data):
            out = comp.compress(data) + comp.flush(zlib.Z_SYNC_FLUSH)
            assert out.endswith(b"\x00\x00\xff\xff")
            return out[:-4]  # §7.2.1

        cases = [(True, b"hello compressed"), (False, b"hello plain"), (True, b""),
                 (False, b""), (True, b"y"), (True, b"z" * 100000), (False, os.urandom(70000))]
        for compressed, data in cases:
            payload = compress(data) if compressed else data
            s.sendall(masked(0x2, payload, rsv1=compressed))
            rsv1, op, got, buf = read_message(s, buf)
            check(op == 0x2, f"opcode {op}")
            check(rsv1 == compressed, f"{len(data)} bytes sent {'' if compressed else 'un'}compressed,"
                                      f" echo {'' if rsv1 else 'un'}compressed")
            if rsv1:
                got = decomp.decompress(got + b"\x00\x00\xff\xff")
            check(got == data, f"{len(data)}-byte echo differs")
        # a compressed message in three frames: RSV1 on the first only (§6.1)
        payload = compress(b"fragmented and compressed " * 50)
        a, b = len(payload) // 3, 2 * len(payload) // 3
        s.sendall(masked(0x1, payload[:a], fin=False, rsv1=True) +
                  masked(0x0, payload[a:b], fin=False) + masked(0x0, payload[b:]))
        rsv1, op, got, buf = read_message(s, buf)
        check(rsv1 and op == 0x1, f"fragmented: rsv1 {rsv1} opcode {op}")
        check(decomp.decompress(got + b"\x00\x00\xff\xff") == b"fragmented and compressed " * 50,
              "fragmented compressed echo differs")
        s.sendall(masked(0x8, struct.pack("!H", 1000)))
    finally:
        s.close()


def raw_bad_deflate(port, check):
    """Compressed data that is not deflate: close 1007; RSV1 on a
    continuation: close 1002 (§6.1)."""
    for frames, want in ((masked(0x2, b"\xff\xff\xff\xff", rsv1=True), 1007),
                         (masked(0x2, b"ab", fin=False) + masked(0x0, b"cd", rsv1=True), 1002)):
        s, buf, ext = raw_open(port, b"permessage-deflate")
        try:
            check(ext == "permessage-deflate", f"answer {ext!r}")
            s.sendall(frames)
            code = None
            deadline = time.monotonic() + 5
            while code is None and time.monotonic() < deadline:
                while len(buf) >= 2 and len(buf) >= 2 + (buf[1] & 0x7F):
                    n = buf[1] & 0x7F
                    if buf[0] & 0x0F == 8:
                        code = struct.unpack("!H", buf[2:4])[0]
                        break
                    buf = buf[2 + n:]
                if code is None:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    buf += chunk
            check(code == want, f"close {code}, want {want}")
        finally:
            s.close()


def raw_offers(port, check):
    """The server's answers to offers (§7.1): invalid ones declined, the
    first acceptable of several taken, other extensions ignored."""
    cases = [
        (b"permessage-deflate; foo", None),
        (b"permessage-deflate; server_max_window_bits=7", None),
        (b"permessage-deflate; server_max_window_bits", None),
        (b"permessage-deflate; server_no_context_takeover; server_no_context_takeover", None),
        (b"x-webkit-deflate-frame", None),
        (b"permessage-deflate; client_max_window_bits=16, permessage-deflate; server_max_window_bits=10",
         "permessage-deflate; server_max_window_bits=10"),
        (b"x-foo, permessage-deflate; server_no_context_takeover",
         "permessage-deflate; server_no_context_takeover"),
        (b"permessage-deflate; client_max_window_bits=9",
         "permessage-deflate; client_max_window_bits=9"),
        (b'permessage-deflate; server_max_window_bits="13"',
         "permessage-deflate; server_max_window_bits=12"),
    ]
    for offer, want in cases:
        s, _, ext = raw_open(port, offer)
        s.close()
        check(ext == want, f"offer {offer!r}: answer {ext!r}, want {want!r}")


async def in_thread(fn, *args):
    await asyncio.get_running_loop().run_in_executor(None, fn, *args)
