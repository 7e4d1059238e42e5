# SPDX-License-Identifier: MIT
"""permessage-deflate (RFC 7692) in the Python binding: interop with
python websockets in both roles (blocking and asyncio), compression=None
on either side, the threshold and send(compress=False) checked as RSV1 on
the wire with raw socket peers, bombs refused with 1009 within a time and
memory bound, invalid deflate data -> 1007, the echo tool with and without
--no-deflate, and the sans-IO codec (RFC 7692 §7.2.3 examples)."""

import asyncio
import os
import resource
import socket
import subprocess
import sys
import threading
import time
import unittest
import zlib

import websockets
from websockets.extensions.permessage_deflate import PerMessageDeflate as WsPMD

import lightws
import lightws.asyncio as lwa
from lightws import codec

from _helpers import ECHO_BIN, Proc, frame, in_thread, need_file, read_head

MIB = 1 << 20
HELLO = bytes.fromhex("f248cdc9c90700")          # §7.2.3.1: "Hello" compressed


def messages():
    """Text and binary, empty, 1 MiB (random and compressible)."""
    return ["hello", "", "ünïcödé \U0001F600" * 10, b"\x00\x01\x02", b"",
            os.urandom(MIB), b"abc" * (MIB // 3), "text " * 50000]


class WsServer:
    """python websockets (default compression unless told) echoing in a
    thread of its own; ``extensions`` records each connection's."""

    def __init__(self, **kw):
        self.extensions = []
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def echo(ws, path=None):
            self.extensions.append(list(ws.extensions))
            try:
                async for msg in ws:
                    await ws.send(msg)
            except websockets.ConnectionClosed:
                pass

        async def main():
            self.stop = asyncio.Event()
            async with websockets.serve(echo, "127.0.0.1", 0, max_size=None, **kw) as srv:
                self.port = srv.sockets[0].getsockname()[1]
                ready.set()
                await self.stop.wait()

        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(main(),),
                                       daemon=True)
        self.thread.start()
        ready.wait(10)

    def close(self):
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(10)

    @property
    def url(self):
        return f"ws://127.0.0.1:{self.port}/"


def ws_client(url, msgs, **kw):
    """python websockets client: sends each message, returns (extensions,
    answers)."""
    async def main():
        async with websockets.connect(url, max_size=None, **kw) as ws:
            out = []
            for m in msgs:
                await ws.send(m)
                out.append(await ws.recv())
            return list(ws.extensions), out
    return asyncio.run(main())


class TestWebsocketsServer(unittest.TestCase):
    """lightws clients (blocking and asyncio) against python websockets."""

    def setUp(self):
        self.srv = WsServer()

    def tearDown(self):
        self.srv.close()

    def test_blocking_client(self):
        with lightws.connect(self.srv.url) as ws:
            self.assertEqual(ws.compression, "deflate")
            self.assertEqual([e.name for e in ws.extensions], ["permessage-deflate"])
            for m in messages():
                ws.send(m)
                self.assertEqual(ws.recv(), m)
            # context takeover: many similar messages, both directions
            for i in range(300):
                ws.send(f"message number {i} with the same words again")
            for i in range(300):
                self.assertEqual(ws.recv(), f"message number {i} with the same words again")
            ws.send_fragments([b"frag" * 1000, b"men" * 1000, b"ted"])
            self.assertEqual(ws.recv(), b"frag" * 1000 + b"men" * 1000 + b"ted")
            ws.send_many(["a" * 100, b"b" * 100, "", "c" * 5000])
            self.assertEqual([ws.recv() for _ in range(4)], ["a" * 100, b"b" * 100, "", "c" * 5000])
            ws.send("not compressed " * 10, compress=False)
            self.assertEqual(ws.recv(), "not compressed " * 10)
        self.assertEqual(len(self.srv.extensions), 1)
        self.assertIsInstance(self.srv.extensions[0][0], WsPMD)

    def test_blocking_client_no_compression(self):
        with lightws.connect(self.srv.url, compression=None) as ws:
            self.assertIsNone(ws.compression)
            self.assertEqual(ws.extensions, [])
            self.assertIsNone(ws.response.header("Sec-WebSocket-Extensions"))
            ws.send("x" * 1000)
            self.assertEqual(ws.recv(), "x" * 1000)
        self.assertEqual(self.srv.extensions, [[]])

    def test_asyncio_client(self):
        async def main():
            # max_size=None: 1 MiB of random bytes compresses to more than
            # the 1 MiB default (websockets refuses such a frame too)
            async with await lwa.connect(self.srv.url, max_size=None) as ws:
                self.assertEqual(ws.compression, "deflate")
                self.assertIsInstance(ws.extensions[0], lightws.PerMessageDeflate)
                for m in messages():
                    await ws.send(m)
                    self.assertEqual(await ws.recv(), m)
                for i in range(200):
                    await ws.send(f"again and again {i}")
                for i in range(200):
                    self.assertEqual(await ws.recv(), f"again and again {i}")
                await ws.send(b"z" * 3000, compress=False)
                self.assertEqual(await ws.recv(), b"z" * 3000)
                await ws.send_many([b"q" * 400] * 10)
                for _ in range(10):
                    self.assertEqual(await ws.recv(), b"q" * 400)
        asyncio.run(main())
        self.assertIsInstance(self.srv.extensions[0][0], WsPMD)

    def test_asyncio_client_no_compression(self):
        async def main():
            async with await lwa.connect(self.srv.url, compression=None) as ws:
                self.assertEqual(ws.extensions, [])
                await ws.send("y" * 500)
                self.assertEqual(await ws.recv(), "y" * 500)
        asyncio.run(main())
        self.assertEqual(self.srv.extensions, [[]])


class TestWebsocketsServerDeclines(unittest.TestCase):
    def test_server_compression_none(self):
        srv = WsServer(compression=None)
        try:
            with lightws.connect(srv.url) as ws:
                self.assertIsNone(ws.compression)
                self.assertEqual(ws.extensions, [])
                ws.send("abc" * 100)
                self.assertEqual(ws.recv(), "abc" * 100)
            # required=True: the declined offer fails the connection (1010)
            with self.assertRaises(lightws.ProtocolError) as cm:
                lightws.connect(srv.url, compression=lightws.Deflate(required=True))
            self.assertEqual(cm.exception.close_code, 1010)
            self.assertEqual(cm.exception.errname, "EXTENSION_DECLINED")
        finally:
            srv.close()


class TestWebsocketsClient(unittest.TestCase):
    """python websockets clients against lightws servers."""

    def check_server(self, url, exts):
        msgs = messages() + [f"ctx {i} the same text" for i in range(200)]
        theirs, out = ws_client(url, msgs)
        self.assertEqual(out, msgs)
        self.assertIsInstance(theirs[0], WsPMD)
        theirs, out = ws_client(url, ["plain"] * 3, compression=None)
        self.assertEqual((theirs, out), ([], ["plain"] * 3))
        self.assertEqual([e.name for e in exts[0]], ["permessage-deflate"])
        self.assertEqual(exts[1], [])

    def test_blocking_serve(self):
        exts = []

        def echo(ws):
            exts.append(ws.extensions)
            for msg in ws:
                ws.send(msg)
        with lightws.serve(echo) as srv:
            t = threading.Thread(target=srv.serve_forever, daemon=True)
            t.start()
            self.check_server(f"ws://127.0.0.1:{srv.port}/", exts)
            srv.shutdown()

    def test_blocking_serve_no_compression(self):
        exts = []

        def echo(ws):
            exts.append((ws.compression, ws.response))
            for msg in ws:
                ws.send(msg)
        with lightws.serve(echo, compression=None) as srv:
            threading.Thread(target=srv.serve_forever, daemon=True).start()
            theirs, out = ws_client(f"ws://127.0.0.1:{srv.port}/", ["a" * 100, b"b" * 100])
            srv.shutdown()
        self.assertEqual((theirs, out), ([], ["a" * 100, b"b" * 100]))
        self.assertEqual(exts[0][0], None)

    def test_asyncio_serve(self):
        exts = []

        async def echo(ws):
            exts.append(ws.extensions)
            async for msg in ws:
                await ws.send(msg)

        async def main():
            async with await lwa.serve(echo, max_size=None) as srv:   # as above
                url = f"ws://127.0.0.1:{srv.port}/"
                await asyncio.get_running_loop().run_in_executor(
                    None, self.check_server, url, exts)
        asyncio.run(main())


def raw_connect(port, offer="permessage-deflate; client_max_window_bits"):
    """A raw client: the upgrade request with ``offer`` (None: none);
    returns (socket, response head)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    headers = [("Sec-WebSocket-Extensions", offer)] if offer else []
    s.sendall(codec.build_request(f"127.0.0.1:{port}", "/raw", headers=headers))
    return s, read_head(s).decode("latin-1")


def read_frame_raw(sock):
    """(byte 0 of the head, payload) of the next frame (unmasked)."""
    def need(n):
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise EOFError("peer closed")
            buf += chunk
        return buf
    b0, b1 = need(2)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(need(2), "big")
    elif n == 127:
        n = int.from_bytes(need(8), "big")
    key = need(4) if b1 & 0x80 else b"\0\0\0\0"
    return b0, codec.mask(need(n), key)


def read_message_raw(sock):
    """(rsv1 of the first frame, opcode, payload joined) of one message."""
    b0, payload = read_frame_raw(sock)
    first, parts = b0, [payload]
    while not b0 & 0x80:
        b0, payload = read_frame_raw(sock)
        assert not b0 & 0x40, "RSV1 on a continuation"
        parts.append(payload)
    return bool(first & 0x40), first & 0x0F, b"".join(parts)


KEY = b"\x11\x22\x33\x44"


def masked(opcode, payload, rsv=0, fin=True):
    return frame(opcode, payload, fin=fin, mask=KEY, rsv=rsv)


class Handler:
    """A lightws.serve() server whose handler runs ``script(ws)``; what it
    raised or returned lands in ``result``."""

    def __init__(self, script, **kw):
        self.result = {}
        self.done = threading.Event()

        def handle(ws):
            try:
                self.result["value"] = script(ws)
            except BaseException as e:  # noqa: BLE001
                self.result["error"] = e
            finally:
                self.done.set()
        self.srv = lightws.serve(handle, **kw)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.port = self.srv.port

    def wait(self):
        self.assert_done = self.done.wait(10)
        return self.result

    def close(self):
        self.srv.shutdown()
        self.srv.close()


class TestWire(unittest.TestCase):
    """RSV1 on the wire, seen by raw socket peers."""

    def test_threshold_and_no_compress_flag(self):
        def script(ws):
            ws.send("x" * 31)                      # under the threshold (32)
            ws.send("x" * 32)                      # at it: compressed
            ws.send(b"y" * 1000, compress=False)   # the per-message flag
            ws.send("")                            # empty: plain
            ws.send(b"z" * 1000)
            ws.send_fragments([b"f" * 10, b"g" * 10])   # fragments: compressed
            ws.recv()
        h = Handler(script)
        try:
            s, head = raw_connect(h.port)
            self.assertIn("Sec-WebSocket-Extensions: permessage-deflate", head)
            dec = codec.Decompressor()
            got = [read_message_raw(s) for _ in range(6)]
            self.assertEqual([g[0] for g in got], [False, True, False, False, True, True])
            self.assertEqual(got[0][2], b"x" * 31)
            self.assertEqual(dec.decompress(got[1][2]), b"x" * 32)
            self.assertEqual(got[2][2], b"y" * 1000)
            self.assertEqual(got[3][2], b"")
            self.assertLess(len(got[4][2]), 100)
            self.assertEqual(dec.decompress(got[4][2]), b"z" * 1000)   # context kept
            self.assertEqual(dec.decompress(got[5][2]), b"f" * 10 + b"g" * 10)
            s.sendall(masked(1, b"bye"))
            h.wait()
            self.assertNotIn("error", h.result)
            s.close()
        finally:
            h.close()

    def test_threshold_option(self):
        def script(ws):
            ws.send(b"ab")
            ws.send(b"c" * 100)
            ws.recv()
        for threshold, want in ((0, [True, True]), (200, [False, False]), (2, [True, True]),
                                (3, [False, True])):
            h = Handler(script, compression_threshold=threshold)
            try:
                s, _ = raw_connect(h.port)
                got = [read_message_raw(s)[0] for _ in range(2)]
                self.assertEqual(got, want, threshold)
                s.sendall(masked(1, b"bye"))
                h.wait()
                s.close()
            finally:
                h.close()

    def test_client_frames(self):
        """A lightws client against a raw server: masked compressed frames
        with RSV1 on the first only; context takeover (client window 12)."""
        lsock = socket.create_server(("127.0.0.1", 0))
        port = lsock.getsockname()[1]

        def server():
            conn, _ = lsock.accept()
            conn.settimeout(10)
            req = read_head(conn).decode("latin-1")
            key = [ln.split(":", 1)[1].strip() for ln in req.split("\r\n")
                   if ln.lower().startswith("sec-websocket-key:")][0]
            offer = [ln.split(":", 1)[1].strip() for ln in req.split("\r\n")
                     if ln.lower().startswith("sec-websocket-extensions:")]
            conn.sendall(codec.build_response(key, headers=[
                ("Sec-WebSocket-Extensions", "permessage-deflate")]))
            got = [read_message_raw(conn) for _ in range(4)]
            # the server sends a compressed message too (§7.2.3.1's Hello)
            conn.sendall(frame(1, HELLO, rsv=0x40))
            conn.sendall(frame(2, bytes.fromhex("f2 48 cd c9 c9 07 00")[:3], fin=False, rsv=0x40)
                         + frame(0, bytes.fromhex("f2 48 cd c9 c9 07 00")[3:]))
            return offer, got, conn

        join = in_thread(server)
        ws = lightws.connect(f"ws://127.0.0.1:{port}/", ping_interval=None)
        try:
            self.assertEqual(ws.extensions, [lightws.PerMessageDeflate()])
            ws.send("hello hello hello hello hello hello")
            ws.send("hello hello hello hello hello hello")
            ws.send(b"q" * 100, compress=False)
            ws.send(b"\x00" * MIB)
            offer, got, conn = join()
            self.assertEqual(offer, ["permessage-deflate; client_max_window_bits"])
            self.assertEqual([g[0] for g in got], [True, True, False, True])
            dec = codec.Decompressor(12)
            self.assertEqual(dec.decompress(got[0][2]), b"hello hello hello hello hello hello")
            self.assertLess(len(got[1][2]), len(got[0][2]))   # context takeover
            self.assertEqual(dec.decompress(got[1][2]), b"hello hello hello hello hello hello")
            self.assertEqual(got[2][2], b"q" * 100)
            self.assertEqual(dec.decompress(got[3][2]), b"\x00" * MIB)
            self.assertEqual(ws.recv(), "Hello")
            self.assertEqual(ws.recv(), b"Hello")
            conn.close()
        finally:
            ws._release()
            lsock.close()


def raw_server_pair(**kw):
    """(lightws client with permessage-deflate agreed, raw server socket)
    over a socketpair: the raw side answers the offer by hand."""
    a, b = socket.socketpair()
    b.settimeout(10)

    def server():
        req = read_head(b).decode("latin-1")
        key = [ln.split(":", 1)[1].strip() for ln in req.split("\r\n")
               if ln.lower().startswith("sec-websocket-key:")][0]
        b.sendall(codec.build_response(key, headers=[
            ("Sec-WebSocket-Extensions", "permessage-deflate")]))
    join = in_thread(server)
    ws = lightws.connect(a, host="x", ping_interval=None, **kw)
    join()
    return ws, b


class TestClientReads(unittest.TestCase):
    def test_ping_inside_a_compressed_message(self):
        ws, raw = raw_server_pair(options=lightws.OPT_NO_AUTO_PONG)
        try:
            z = codec.compress(b"abc" * 1000)
            raw.sendall(frame(2, z[:5], fin=False, rsv=0x40) + frame(9, b"p1")
                        + frame(0, z[5:]))
            self.assertEqual(ws.recv(), b"abc" * 1000)
            self.assertEqual(ws.last_ping, b"p1")
            raw.sendall(frame(1, HELLO, rsv=0x40) + frame(1, b"plain"))
            # a compressed frame whole in the buffer ends in one piece
            self.assertEqual(ws.recv_piece(), lightws.Piece(b"Hello", 1, True, True, True))
            self.assertEqual(ws.recv_piece(), lightws.Piece(b"plain", 1, True, True, False))
            # recv_into and the byte stream inflate into the caller's buffer
            raw.sendall(frame(2, codec.compress(b"x" * 5000), rsv=0x40))
            buf = bytearray(10000)
            n, got = 0, None
            while got is None or not got.message_end:
                got = ws.recv_chunk_into(memoryview(buf)[n:])
                self.assertTrue(got.compressed)
                n += got.nbytes
            self.assertEqual(bytes(buf[:n]), b"x" * 5000)
            raw.sendall(frame(2, b"plain"))
            ch = ws.recv_chunk_into(buf)
            self.assertEqual((ch, ch.compressed), ((5, 2, True, True), False))
            raw.sendall(frame(2, codec.compress(b"y" * 300), rsv=0x40))
            self.assertEqual(ws.read(300), b"y" * 300)
        finally:
            ws._release()
            raw.close()

    def test_asyncio_read_ahead_of_compressed(self):
        async def main():
            a, b = socket.socketpair()
            b.settimeout(10)

            def server():
                req = read_head(b).decode("latin-1")
                key = [ln.split(":", 1)[1].strip() for ln in req.split("\r\n")
                       if ln.lower().startswith("sec-websocket-key:")][0]
                b.sendall(codec.build_response(key, headers=[
                    ("Sec-WebSocket-Extensions", "permessage-deflate")]))
                c = codec.Compressor()
                b.sendall(b"".join(frame(1, c.compress(f"msg {i} " * 20), rsv=0x40)
                                   for i in range(50)))
            loop = asyncio.get_running_loop()
            fut = loop.run_in_executor(None, server)
            ws = await lwa.connect(a, host="x", ping_interval=None)
            await fut
            await asyncio.sleep(0.1)            # read ahead while nobody reads
            got = [await ws.recv() for _ in range(50)]
            self.assertEqual(got, [f"msg {i} " * 20 for i in range(50)])
            b.sendall(frame(2, HELLO, rsv=0x40))
            p = await ws.recv_piece()
            self.assertEqual((p.data, p.compressed), (b"Hello", True))
            ws._release()
            b.close()
        asyncio.run(main())


def bomb(size):
    """A deflate stream (no 00 00 ff ff tail) inflating to ``size`` zeros,
    made fast: after the first MiB, every MiB of zeros compresses to the
    same bytes (each flushed to a byte boundary; back references reach
    only zeros), so one of them is repeated."""
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    first, second, third = (co.compress(bytes(MIB)) + co.flush(zlib.Z_SYNC_FLUSH)
                            for _ in range(3))
    assert second == third
    stream = first + second * (size // MIB - 1)
    assert stream.endswith(b"\x00\x00\xff\xff")
    return stream[:-4]


BOMB = bomb(1 << 30)         # 1 GiB of zeros in about 1 MB


def maxrss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class TestPeerErrors(unittest.TestCase):
    """A raw client sends bad compressed messages to lightws servers."""

    def run_bad(self, payload, opcode=2, **kw):
        def script(ws):
            return ws.recv()
        h = Handler(script, **kw)
        try:
            s, _ = raw_connect(h.port)
            rss0, t0 = maxrss_mib(), time.monotonic()
            try:
                s.sendall(masked(opcode, payload, rsv=0x40))
            except (BrokenPipeError, ConnectionResetError):
                pass      # the server closed before it had it all
            h.wait()
            elapsed = time.monotonic() - t0
            try:
                b0, close = read_frame_raw(s)
            except (EOFError, ConnectionResetError):
                b0, close = 0, b""
            s.close()
            return h.result, b0, close, elapsed, maxrss_mib() - rss0
        finally:
            h.close()

    def test_bomb_1009(self):
        res, b0, close, elapsed, rss = self.run_bad(BOMB, max_size=MIB)
        self.assertIsInstance(res.get("error"), lightws.ProtocolError)
        self.assertEqual(res["error"].close_code, 1009)
        self.assertEqual((b0 & 0x0F, close[:2]), (8, (1009).to_bytes(2, "big")))
        # refused at 1 MiB + 1: not 1 GiB inflated (that takes seconds and
        # would show in the peak resident size)
        self.assertLess(elapsed, 2.0)
        self.assertLess(rss, 64)

    def test_bomb_asyncio(self):
        box = {}

        async def handler(ws):
            try:
                await ws.recv()
            except lightws.ProtocolError as e:
                box["error"] = e

        async def main():
            async with await lwa.serve(handler, max_size=MIB) as srv:
                def client():
                    s, _ = raw_connect(srv.port)
                    t0 = time.monotonic()
                    try:
                        s.sendall(masked(2, BOMB, rsv=0x40))
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    b0, close = read_frame_raw(s)
                    s.close()
                    return close, time.monotonic() - t0
                return await asyncio.get_running_loop().run_in_executor(None, client)
        close, elapsed = asyncio.run(main())
        self.assertEqual(close[:2], (1009).to_bytes(2, "big"))
        self.assertEqual(box["error"].close_code, 1009)
        self.assertLess(elapsed, 2.0)

    def test_invalid_deflate_1007(self):
        res, b0, close, _, _ = self.run_bad(b"\xff\xff\xff\xff\xff")
        self.assertEqual(res["error"].close_code, 1007)
        self.assertEqual(res["error"].errname, "BAD_DEFLATE")
        self.assertEqual(close[:2], (1007).to_bytes(2, "big"))

    def test_bad_utf8_after_inflate_1007(self):
        res, _, close, _, _ = self.run_bad(codec.compress(b"ok \xff\xfe"), opcode=1)
        self.assertEqual(res["error"].close_code, 1007)
        self.assertEqual(res["error"].errname, "UTF8")

    def test_rsv1_without_extension_1002(self):
        res, _, close, _, _ = self.run_bad(HELLO, compression=None)
        self.assertEqual(res["error"].close_code, 1002)
        self.assertEqual(close[:2], (1002).to_bytes(2, "big"))

    def test_rsv1_on_continuation_1002(self):
        def script(ws):
            return ws.recv()
        h = Handler(script)
        try:
            s, _ = raw_connect(h.port)
            s.sendall(masked(2, HELLO[:3], rsv=0x40, fin=False) + frame(0, HELLO[3:], mask=KEY, rsv=0x40))
            h.wait()
            self.assertEqual(h.result["error"].errname, "BAD_RSV1")
            self.assertEqual(h.result["error"].close_code, 1002)
            s.close()
        finally:
            h.close()


class TestLightwsPair(unittest.TestCase):
    """lightws in both roles: settings negotiated and what each side sees."""

    def run_pair(self, server_kw, client_kw, msgs):
        seen = {}

        def echo(ws):
            seen["server"] = ws.extensions
            for m in ws:
                ws.send(m)
        h = Handler(echo, **server_kw)
        try:
            with lightws.connect(f"ws://127.0.0.1:{h.port}/", **client_kw) as ws:
                for m in msgs:
                    ws.send(m)
                    self.assertEqual(ws.recv(), m)
                seen["client"] = ws.extensions
            h.wait()
        finally:
            h.close()
        return seen

    def test_default(self):
        seen = self.run_pair({}, {}, messages())
        # the client offers client_max_window_bits bare; the server names 15
        agreed = lightws.PerMessageDeflate(client_max_window_bits=15)
        self.assertEqual(seen["client"], [agreed])
        self.assertEqual(seen["server"], [agreed])

    def test_settings(self):
        cfg = lightws.Deflate(window_bits=9, peer_window_bits=10, no_context_takeover=True,
                              peer_no_context_takeover=True, mem_level=1, level=1)
        seen = self.run_pair({"compression": lightws.Deflate(window_bits=11)},
                             {"compression": cfg}, messages()[:6])
        agreed = lightws.PerMessageDeflate(server_no_context_takeover=True,
                                           client_no_context_takeover=True,
                                           server_max_window_bits=10, client_max_window_bits=15)
        self.assertEqual(seen["client"], [agreed])
        self.assertEqual(seen["server"], [agreed])
        self.assertEqual(str(agreed), "permessage-deflate; server_no_context_takeover; "
                         "client_no_context_takeover; server_max_window_bits=10; "
                         "client_max_window_bits=15")

    def test_either_side_none(self):
        for skw, ckw in (({"compression": None}, {}), ({}, {"compression": None})):
            seen = self.run_pair(skw, ckw, ["a" * 100, b"b" * 100])
            self.assertEqual((seen["client"], seen["server"]), ([], []))

    def test_nonblocking_send_keeps_compressed_frames(self):
        """settimeout(0): send() takes a message into the compressor; what
        the socket did not take waits in the C work buffer (``pending``)
        and flush() finishes it; nothing is lost or reordered."""
        a, b = socket.socketpair()
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        join = in_thread(lambda: lightws.accept(b, ping_interval=None))
        c = lightws.connect(a, host="x", ping_interval=None)
        srv = join()
        try:
            self.assertEqual(c.compression, "deflate")
            c.settimeout(0)
            sent = []
            for i in range(200):
                m = os.urandom(20000)       # incompressible: fills the socket
                try:
                    c.send(m)
                except BlockingIOError:
                    break
                sent.append(m)
            self.assertTrue(c.pending)
            got = []
            deadline = time.monotonic() + 20
            while len(got) < len(sent):
                self.assertLess(time.monotonic(), deadline)
                try:
                    c.flush()
                except BlockingIOError:
                    pass
                srv.settimeout(0.05)
                try:
                    got.append(srv.recv())
                except TimeoutError:
                    pass
            self.assertEqual(got, sent)
            self.assertFalse(c.pending)
        finally:
            c._release()
            srv._release()

    def test_tls(self):
        """Compression over TLS (python ssl in both roles)."""
        import ssl
        certdir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tls")
        cert = os.path.join(certdir, "cert.pem")
        if not os.path.exists(cert):
            self.skipTest("no test certificate")
        sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        sctx.load_cert_chain(cert, os.path.join(certdir, "key.pem"))
        cctx = ssl.create_default_context(cafile=cert)
        seen = {}

        def echo(ws):
            seen["ext"] = ws.extensions
            for m in ws:
                ws.send(m)
        h = Handler(echo, ssl=sctx)
        try:
            with lightws.connect(f"wss://localhost:{h.port}/", ssl=cctx) as ws:
                self.assertEqual(ws.compression, "deflate")
                for m in messages():
                    ws.send(m)
                    self.assertEqual(ws.recv(), m)
            h.wait()
            self.assertTrue(seen["ext"])
        finally:
            h.close()

    def test_bad_arguments(self):
        with self.assertRaises(ValueError):
            lightws.connect("ws://127.0.0.1:1/", compression="gzip")
        with self.assertRaises(TypeError):
            lightws.connect("ws://127.0.0.1:1/", compression=15)
        with self.assertRaises(ValueError):
            lightws.connect("ws://127.0.0.1:1/", compression=lightws.Deflate(window_bits=20))
        with self.assertRaises(ValueError):
            lightws.connect("ws://127.0.0.1:1/", compression_threshold=-1)


class TestEchoTool(unittest.TestCase):
    """python3 -m lightws.echo answers compressed with compressed and
    uncompressed with uncompressed; --no-deflate declines."""

    def echo(self, *args):
        return Proc([sys.executable, "-m", "lightws.echo", "--host", "127.0.0.1",
                     "--port", "0", "--quiet", *args])

    def test_rsv1_mirrored(self):
        srv = self.echo()
        try:
            s, head = raw_connect(srv.port)
            self.assertIn("permessage-deflate", head)
            comp = codec.Compressor(no_context_takeover=True)
            dec = codec.Decompressor()
            s.sendall(masked(1, comp.compress(b"tiny"), rsv=0x40))       # under the threshold
            s.sendall(masked(2, b"p" * 500))                               # plain, over it
            s.sendall(masked(2, comp.compress(b"r" * 100000), rsv=0x40))
            s.sendall(masked(1, comp.compress(b""), rsv=0x40))           # empty, compressed
            s.sendall(masked(1, b""))
            got = [read_message_raw(s) for _ in range(5)]
            self.assertEqual([(g[0], g[1]) for g in got],
                             [(True, 1), (False, 2), (True, 2), (True, 1), (False, 1)])
            self.assertEqual(dec.decompress(got[0][2]), b"tiny")
            self.assertEqual(got[1][2], b"p" * 500)
            self.assertEqual(dec.decompress(got[2][2]), b"r" * 100000)
            self.assertEqual(dec.decompress(got[3][2]), b"")
            self.assertEqual(got[4][2], b"")
            s.close()
        finally:
            srv.stop()

    def test_websockets_client(self):
        for args, want in (((), True), (("--no-deflate",), False)):
            srv = self.echo(*args)
            try:
                url = f"ws://127.0.0.1:{srv.port}/"
                msgs = ["hi", b"", os.urandom(MIB), "t" * 70000]
                theirs, out = ws_client(url, msgs)
                self.assertEqual(out, msgs)
                self.assertEqual(bool(theirs) and isinstance(theirs[0], WsPMD), want)
                s, head = raw_connect(srv.port)
                self.assertEqual("permessage-deflate" in head, want)
                s.close()
            finally:
                srv.stop()

    def test_client_mode(self):
        """--client against python websockets: compressed both ways (the
        server sees the extension), or not with --no-deflate."""
        for args, want in (((), True), (("--no-deflate",), False)):
            box = {}

            async def handler(ws, path=None):
                box["ext"] = list(ws.extensions)
                await ws.send("x" * 1000)
                box["back"] = await ws.recv()
                await ws.close()

            async def main():
                async with websockets.serve(handler, "127.0.0.1", 0) as srv:
                    port = srv.sockets[0].getsockname()[1]
                    p = await asyncio.create_subprocess_exec(
                        sys.executable, "-m", "lightws.echo", *args, "--client",
                        f"ws://127.0.0.1:{port}/", stderr=subprocess.PIPE)
                    _, err = await asyncio.wait_for(p.communicate(), 20)
                    return p.returncode, err
            rc, err = asyncio.run(main())
            self.assertEqual(rc, 0, err)
            self.assertEqual(box["back"], "x" * 1000)
            self.assertEqual(bool(box["ext"]), want)


def pieces_message(ws):
    """(message, compressed) read with recv_piece()."""
    parts, comp = [], None
    while True:
        p = ws.recv_piece()
        comp = p.compressed if comp is None else comp
        parts.append(p.data)
        if p.message_end:
            return b"".join(parts), comp


class TestCEcho(unittest.TestCase):
    """build/lightws-echo (C) in both roles, with and without --no-deflate;
    recv_piece().compressed shows how each answer came."""

    def test_server(self):
        need_file(ECHO_BIN)
        for args, want in (((), True), (("--no-deflate",), False)):
            srv = Proc([ECHO_BIN, "--host", "127.0.0.1", "--port", "0", "--quiet", *args])
            try:
                with lightws.connect(f"ws://127.0.0.1:{srv.port}/") as ws:
                    self.assertEqual(bool(ws.extensions), want)
                    # (b"e" is under the threshold: it goes, and comes back, plain)
                    for m, comp, back in ((b"c" * 5000, True, True), (b"d" * 5000, False, False),
                                          (b"e", True, False), (os.urandom(MIB), True, True)):
                        ws.send(m, compress=comp)
                        self.assertEqual(pieces_message(ws), (m, back and want))
            finally:
                srv.stop()

    def test_client(self):
        need_file(ECHO_BIN)
        for args, want in (((), True), (("--no-deflate",), False)):
            seen = {}

            def script(ws):
                seen["ext"] = ws.extensions
                out = []
                for m, comp, back in ((b"f" * 3000, True, True), (b"g" * 3000, False, False),
                                      (b"", True, False)):
                    ws.send(m, compress=comp)
                    out.append(pieces_message(ws) == (m, back and want))
                ws.close()
                return out
            h = Handler(script)
            try:
                r = subprocess.run([ECHO_BIN, "--client", f"ws://127.0.0.1:{h.port}/", *args],
                                   capture_output=True, timeout=20)
                h.wait()
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(h.result.get("value"), [True, True, True], h.result)
                self.assertEqual(bool(seen["ext"]), want)
            finally:
                h.close()


class TestCodec(unittest.TestCase):
    """The sans-IO helpers against RFC 7692 §7.2.3 and zlib as a peer."""

    def test_rfc_examples(self):
        self.assertEqual(codec.compress(b"Hello"), HELLO)
        c = codec.Compressor()
        self.assertEqual(c.compress("Hello"), HELLO)
        self.assertEqual(c.compress("Hello"), bytes.fromhex("f200110000"))   # §7.2.3.2
        self.assertEqual(codec.compress(b""), b"\x00")                        # §7.2.3.6
        d = codec.Decompressor()
        self.assertEqual(d.decompress(HELLO), b"Hello")
        self.assertEqual(d.decompress(bytes.fromhex("f200110000")), b"Hello")
        # §7.2.3.3: a stored block; §7.2.3.4: BFINAL set; §7.2.3.5: two blocks
        self.assertEqual(codec.decompress(bytes.fromhex("0005 00fa ff48 656c 6c6f 00")), b"Hello")
        self.assertEqual(d.decompress(bytes.fromhex("f3 48 cd c9 c9 07 00 00")), b"Hello")
        self.assertEqual(d.decompress(HELLO), b"Hello")     # reset after BFINAL
        self.assertEqual(codec.decompress(bytes.fromhex("f2 48 05 00 00 00 ff ff ca c9 c9 07 00")),
                         b"Hello")
        self.assertEqual(codec.decompress(b"\x00"), b"")

    def test_zlib_peer(self):
        data = b"the quick brown fox " * 5000
        for bits in (9, 12, 15):
            co = zlib.compressobj(6, zlib.DEFLATED, -bits)
            d = codec.Decompressor(bits)
            for _ in range(3):          # context takeover across messages
                payload = co.compress(data) + co.flush(zlib.Z_SYNC_FLUSH)
                self.assertEqual(payload[-4:], b"\x00\x00\xff\xff")
                self.assertEqual(d.decompress(payload[:-4]), data)
            c = codec.Compressor(bits)
            do = zlib.decompressobj(-15)
            for _ in range(3):
                self.assertEqual(do.decompress(c.compress(data) + b"\x00\x00\xff\xff"), data)

    def test_no_context_takeover(self):
        c = codec.Compressor(no_context_takeover=True)
        a, b = c.compress(b"repeat " * 100), c.compress(b"repeat " * 100)
        self.assertEqual(a, b)
        d = codec.Decompressor(no_context_takeover=True)
        self.assertEqual(d.decompress(a), d.decompress(b))

    def test_bomb_is_valid(self):
        d = zlib.decompressobj(-15)
        self.assertEqual(d.decompress(bomb(8 * MIB) + b"\x00\x00\xff\xff"), bytes(8 * MIB))

    def test_limits_and_errors(self):
        t0 = time.monotonic()
        with self.assertRaises(lightws.ProtocolError) as cm:
            codec.decompress(BOMB, max_size=MIB)
        self.assertEqual(cm.exception.close_code, 1009)
        self.assertLess(time.monotonic() - t0, 1.0)
        self.assertEqual(len(codec.decompress(codec.compress(bytes(MIB)), max_size=MIB)), MIB)
        with self.assertRaises(lightws.ProtocolError) as cm:
            codec.decompress(codec.compress(bytes(MIB + 1)), max_size=MIB)
        self.assertEqual(cm.exception.close_code, 1009)
        with self.assertRaises(lightws.ProtocolError) as cm:
            codec.decompress(b"\xff\xff\xff")
        self.assertEqual(cm.exception.close_code, 1007)
        with self.assertRaises(lightws.ProtocolError) as cm:
            codec.decompress(codec.compress(b"\xc3"), text=True)
        self.assertEqual(cm.exception.close_code, 1007)
        self.assertEqual(codec.decompress(codec.compress("é"), text=True), "é".encode())

    def test_negotiation_values(self):
        self.assertEqual(codec.offer_value(), "permessage-deflate; client_max_window_bits")
        p = codec.accept_offer("x-other, permessage-deflate; client_max_window_bits")
        self.assertEqual(p, codec.PerMessageDeflate(client_max_window_bits=15))
        self.assertIsNone(codec.accept_offer("permessage-deflate; bogus=1"))
        self.assertEqual(codec.response_value(codec.PerMessageDeflate(server_max_window_bits=12)),
                         "permessage-deflate; server_max_window_bits=12")
        self.assertEqual(codec.check_response("permessage-deflate; server_no_context_takeover"),
                         codec.PerMessageDeflate(server_no_context_takeover=True))
        with self.assertRaises(lightws.HandshakeError):
            codec.check_response("permessage-deflate; bogus")
        self.assertTrue(codec.deflate_available())

    def test_parse_response_with_offer(self):
        key = codec.new_key()
        resp = codec.build_response(key, headers=[
            ("Sec-WebSocket-Extensions", "permessage-deflate; server_max_window_bits=10")])
        with self.assertRaises(lightws.HandshakeError) as cm:
            codec.parse_response(resp, key)
        self.assertEqual(cm.exception.errname, "BAD_EXTENSION")
        r = codec.parse_response(resp, key, offered="deflate")
        self.assertEqual(r.extensions, "permessage-deflate; server_max_window_bits=10")
        self.assertEqual(codec.check_response(r.extensions),
                         codec.PerMessageDeflate(server_max_window_bits=10))
        bad = codec.build_response(key, headers=[
            ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits=20")])
        with self.assertRaises(lightws.HandshakeError) as cm:
            codec.parse_response(bad, key, offered="deflate")
        self.assertEqual(cm.exception.errname, "BAD_EXTENSION_PARAMS")


if __name__ == "__main__":
    unittest.main()
