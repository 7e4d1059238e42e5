# SPDX-License-Identifier: MIT
"""Time (issue 12): open_timeout, keepalive (ping_interval, ping_timeout),
close_timeout and the asyncio read-ahead, over real loopback sockets and
real clocks. Timeouts are short (0.2-0.5 s); the checks allow generous
margins, and every wait has its own deadline."""

import asyncio
import contextlib
import socket
import struct
import threading
import time
import unittest

import websockets

import lightws
import lightws.asyncio as lwa
from lightws import codec

from _helpers import (dribble, in_thread, loopback_server, read_frame, read_head,
                      wait_eof)

SLACK = 3.0     # upper margin on a timeout's effect (a loaded 2-core machine)


def raw_accept(srv):
    """Accepts one connection on ``srv`` and answers its upgrade by hand:
    a websocket peer that does only what the test tells it."""
    conn, _ = srv.accept()
    conn.settimeout(10)
    req = codec.parse_request(read_head(conn))
    conn.sendall(codec.build_response(req.key))
    return conn


def frames_until_close(conn):
    """The frames a raw peer reads up to and including a close frame."""
    frames = []
    while True:
        _, op, payload = read_frame(conn)
        frames.append((op, payload))
        if op == 8:
            return frames


def close_code_of(frames):
    op, payload = frames[-1]
    assert op == 8, frames
    return struct.unpack("!H", payload[:2])[0], payload[2:]


def never_pong_peer(srv):
    """Accepts, reads every frame of the client and answers none; returns
    (frames up to the close, what followed until EOF)."""
    conn = raw_accept(srv)
    with conn:
        frames = frames_until_close(conn)
        return frames, wait_eof(conn)


@contextlib.contextmanager
def websockets_thread(handler, **kw):
    """A python websockets server on its own thread and event loop (for
    the blocking API); yields its port."""
    loop = asyncio.new_event_loop()
    box = {}
    started = threading.Event()

    async def main():
        async with websockets.serve(handler, "127.0.0.1", 0, **kw) as srv:
            box["port"] = srv.sockets[0].getsockname()[1]
            box["stop"] = loop.create_future()
            started.set()
            await box["stop"]

    t = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    t.start()
    if not started.wait(10):
        raise AssertionError("websockets server did not start")
    try:
        yield box["port"]
    finally:
        loop.call_soon_threadsafe(box["stop"].set_result, None)
        t.join(10)
        loop.close()


async def ws_echo(ws, path=None):
    try:
        async for msg in ws:
            await ws.send(msg)
    except websockets.ConnectionClosed:
        pass


class TestErrors(unittest.TestCase):
    def test_time_errors_in_the_table_and_their_exceptions(self):
        table = {name: (value, close, status)
                 for value, name, _, close, status in lightws._core.error_table()}
        self.assertEqual(table["HANDSHAKE_TIMEOUT"], (-10, 0, 408))
        self.assertEqual(table["IDLE_TIMEOUT"], (-11, 1001, 0))
        self.assertEqual(table["PING_TIMEOUT"], (-12, 1011, 0))
        self.assertEqual(table["CLOSE_TIMEOUT"], (-13, 0, 0))
        self.assertEqual(table["BUFFER_TOO_SMALL"], (-14, 0, 431))
        err = lightws._core.error_for
        e = err(-12)
        self.assertIsInstance(e, lightws.PingTimeout)
        self.assertIsInstance(e, lightws.ConnectionClosedError)
        self.assertEqual((e.code, e.close_code, e.reason, e.errname, e.errcode),
                         (1011, 1011, "keepalive ping timeout", "PING_TIMEOUT", -12))
        e = err(-10)
        self.assertIsInstance(e, lightws.HandshakeTimeout)
        self.assertIsInstance(e, TimeoutError)
        self.assertIsInstance(e, lightws.HandshakeError)
        self.assertEqual((e.errname, e.errcode, e.status), ("HANDSHAKE_TIMEOUT", -10, 408))
        self.assertIn("HANDSHAKE_TIMEOUT", str(e))
        self.assertEqual((err(-11).code, err(-11).errname), (1001, "IDLE_TIMEOUT"))
        self.assertEqual((err(-13).code, err(-13).errname), (1006, "CLOSE_TIMEOUT"))
        e = err(-14)
        self.assertIsInstance(e, lightws.HandshakeError)
        self.assertEqual((e.errname, e.status), ("BUFFER_TOO_SMALL", 431))

    def test_bad_time_arguments(self):
        a, b = socket.socketpair()
        with a, b:
            for kw in ({"ping_interval": -1}, {"ping_timeout": float("nan")},
                       {"ping_interval": "5"}):
                with self.assertRaises((ValueError, TypeError)):
                    lightws.WebSocket(a, client=True, **kw)
        with self.assertRaises(ValueError):
            lightws.connect("ws://127.0.0.1:9/", open_timeout=-1)


class TestBlocking(unittest.TestCase):
    def test_open_timeout_silent_server(self):
        # The listener never accepts: TCP connects (backlog), no answer.
        srv, port = loopback_server()
        with srv:
            t0 = time.monotonic()
            with self.assertRaises(lightws.HandshakeTimeout) as cm:
                lightws.connect(f"ws://127.0.0.1:{port}/", open_timeout=0.5)
            elapsed = time.monotonic() - t0
        self.assertIsInstance(cm.exception, TimeoutError)
        self.assertEqual(cm.exception.errname, "HANDSHAKE_TIMEOUT")
        self.assertGreater(elapsed, 0.4)
        self.assertLess(elapsed, SLACK)

    def test_serve_cuts_a_dribbled_handshake(self):
        def echo(ws):
            for m in ws:
                ws.send(m)
        with lightws.serve(echo, "127.0.0.1", 0, open_timeout=0.5) as server:
            threading.Thread(target=server.serve_forever, daemon=True).start()
            elapsed, answer = dribble(server.port)
            self.assertGreater(elapsed, 0.4)
            self.assertLess(elapsed, SLACK)
            self.assertTrue(answer == b"" or answer.startswith(b"HTTP/1.1 408 "), answer)
            with lightws.connect(f"ws://127.0.0.1:{server.port}/", timeout=10) as ws:
                ws.send("fine")
                self.assertEqual(ws.recv(), "fine")

    def test_accept_cuts_a_dribbled_handshake(self):
        srv, port = loopback_server()
        with srv:
            srv.settimeout(10)
            join = in_thread(dribble, port)
            conn, _ = srv.accept()
            t0 = time.monotonic()
            with self.assertRaises(lightws.HandshakeTimeout) as cm:
                lightws.accept(conn, open_timeout=0.5)
            elapsed = time.monotonic() - t0
            self.assertEqual(cm.exception.status, 408)
            self.assertEqual(conn.fileno(), -1)         # released
            _, answer = join()
        self.assertLess(elapsed, SLACK)
        self.assertTrue(answer == b"" or answer.startswith(b"HTTP/1.1 408 "), answer)

    def test_keepalive_against_websockets(self):
        # Pings go out while the application waits in a call (here recv()
        # with a timeout); python websockets answers them.
        with websockets_thread(ws_echo, ping_interval=None) as port:
            with lightws.connect(f"ws://127.0.0.1:{port}/", ping_interval=0.2,
                                 ping_timeout=SLACK) as ws:
                self.assertEqual(ws.latency, 0.0)
                ws.settimeout(1.0)
                with self.assertRaises(socket.timeout):
                    ws.recv()
                self.assertGreater(ws.latency, 0.0)
                self.assertLess(ws.latency, SLACK)
                ws.settimeout(10)
                ws.send("still here")
                self.assertEqual(ws.recv(), "still here")

    def test_blocking_recv_waits_with_keepalive(self):
        # The lean path (blocking, no timeout) waits in poll() up to the
        # keepalive deadline too: a message after several intervals.
        async def late(ws, path=None):
            await asyncio.sleep(0.8)
            await ws.send("late")
            await ws_echo(ws)
        with websockets_thread(late, ping_interval=None) as port:
            with lightws.connect(f"ws://127.0.0.1:{port}/", ping_interval=0.2,
                                 ping_timeout=SLACK) as ws:
                self.assertEqual(ws.recv(), "late")
                self.assertGreater(ws.latency, 0.0)

    def test_ping_timeout_sends_1011(self):
        srv, port = loopback_server()
        with srv:
            srv.settimeout(10)
            join = in_thread(never_pong_peer, srv)
            ws = lightws.connect(f"ws://127.0.0.1:{port}/", ping_interval=0.2,
                                 ping_timeout=0.3)
            t0 = time.monotonic()
            with self.assertRaises(lightws.PingTimeout) as cm:
                ws.recv()
            elapsed = time.monotonic() - t0
            ws.close()
            frames, _ = join()
        e = cm.exception
        self.assertIsInstance(e, lightws.ConnectionClosedError)
        self.assertEqual((e.code, e.errname), (1011, "PING_TIMEOUT"))
        self.assertGreater(elapsed, 0.4)
        self.assertLess(elapsed, SLACK)
        self.assertEqual(frames[0][0], 9)               # the keepalive ping
        self.assertEqual(close_code_of(frames), (1011, b"keepalive ping timeout"))
        self.assertTrue(ws.closed)

    def test_nonblocking_mode_ticks_in_calls(self):
        # settimeout(0): the application polls; each call that would
        # block ticks the clock, so keepalive still fails in time.
        srv, port = loopback_server()
        with srv:
            srv.settimeout(10)
            join = in_thread(never_pong_peer, srv)
            ws = lightws.connect(f"ws://127.0.0.1:{port}/", ping_interval=0.2,
                                 ping_timeout=0.3)
            ws.settimeout(0)
            deadline = time.monotonic() + SLACK
            with self.assertRaises(lightws.PingTimeout):
                while time.monotonic() < deadline:
                    try:
                        ws.recv()
                    except BlockingIOError:
                        pass
                    time.sleep(0.05)
            frames, _ = join()
        self.assertEqual(close_code_of(frames)[0], 1011)

    def test_close_timeout_peer_never_answers(self):
        srv, port = loopback_server()
        with srv:
            srv.settimeout(10)

            def peer():
                conn = raw_accept(srv)
                with conn:
                    frames = frames_until_close(conn)
                    t = time.monotonic()
                    wait_eof(conn)      # never sends its close; waits for ours to give up
                    return frames, time.monotonic() - t
            join = in_thread(peer)
            ws = lightws.connect(f"ws://127.0.0.1:{port}/", close_timeout=0.5,
                                 ping_interval=None)
            t0 = time.monotonic()
            ws.close(1000, "bye")
            elapsed = time.monotonic() - t0
            frames, held = join()
        self.assertGreater(elapsed, 0.4)
        self.assertLess(elapsed, SLACK)
        self.assertLess(held, SLACK)
        self.assertEqual(close_code_of(frames), (1000, b"bye"))


class TestAsyncio(unittest.IsolatedAsyncioTestCase):
    async def test_open_timeout_silent_server(self):
        srv, port = loopback_server()
        with srv:
            t0 = time.monotonic()
            with self.assertRaises(lightws.HandshakeTimeout) as cm:
                await asyncio.wait_for(
                    lwa.connect(f"ws://127.0.0.1:{port}/", open_timeout=0.5), 10)
            elapsed = time.monotonic() - t0
        self.assertIsInstance(cm.exception, TimeoutError)
        self.assertGreater(elapsed, 0.4)
        self.assertLess(elapsed, SLACK)

    async def test_serve_cuts_a_dribbled_handshake(self):
        async def echo(ws):
            async for m in ws:
                await ws.send(m)
        server = await lwa.serve(echo, "127.0.0.1", 0, open_timeout=0.5)
        async with server:
            elapsed, answer = await asyncio.wait_for(
                asyncio.to_thread(dribble, server.port), 20)
            self.assertGreater(elapsed, 0.4)
            self.assertLess(elapsed, SLACK)
            self.assertTrue(answer == b"" or answer.startswith(b"HTTP/1.1 408 "), answer)
            async with await lwa.connect(f"ws://127.0.0.1:{server.port}/") as ws:
                await ws.send("fine")
                self.assertEqual(await asyncio.wait_for(ws.recv(), 10), "fine")

    async def test_keepalive_without_recv_against_websockets(self):
        # Our pings, answered by websockets, while the application is not
        # in any call: the read-ahead sees the pongs.
        async with websockets.serve(ws_echo, "127.0.0.1", 0, ping_interval=None) as srv:
            port = srv.sockets[0].getsockname()[1]
            async with await lwa.connect(f"ws://127.0.0.1:{port}/", ping_interval=0.2,
                                         ping_timeout=SLACK) as ws:
                await asyncio.sleep(1.2)
                self.assertFalse(ws.closed)
                self.assertGreater(ws.latency, 0.0)
                self.assertLess(ws.latency, SLACK)
                await ws.send("after")
                self.assertEqual(await asyncio.wait_for(ws.recv(), 10), "after")

    async def test_no_recv_for_5s_against_websockets_pinging(self):
        # websockets pings every 0.5 s and wants the pong within 0.5 s;
        # the application sleeps 5 s without recv(). It stays connected,
        # and the messages sent meanwhile come in order afterwards.
        gone = []

        async def handler(ws, path=None):
            for i in range(10):
                await ws.send(f"m{i}")
                await asyncio.sleep(0.05)
            try:
                async for msg in ws:
                    await ws.send("echo " + msg)
            except websockets.ConnectionClosed as e:
                gone.append(e)
            gone.append(ws.close_code)

        async with websockets.serve(handler, "127.0.0.1", 0, ping_interval=0.5,
                                    ping_timeout=0.5) as srv:
            port = srv.sockets[0].getsockname()[1]
            async with await lwa.connect(f"ws://127.0.0.1:{port}/") as ws:
                await asyncio.sleep(5)
                self.assertEqual(gone, [])
                self.assertFalse(ws.closed)
                await ws.send("x")
                got = [await asyncio.wait_for(ws.recv(), 10) for _ in range(11)]
                self.assertEqual(got, [f"m{i}" for i in range(10)] + ["echo x"])
            await asyncio.sleep(0.2)
            self.assertEqual(gone[-1], 1000)

    async def test_read_ahead_is_bounded_and_loses_nothing(self):
        # The peer floods while the application does not read: the
        # read-ahead stops at its limit, TCP holds the peer back (small
        # socket buffers make that visible soon), and every message comes
        # later, in order, once.
        n, size = 2048, 4096
        progress = {"sent": 0}

        async def flood(ws, path=None):
            for i in range(n):
                await ws.send(i.to_bytes(4, "big") + bytes(size - 4))
                progress["sent"] = i + 1
            await ws.wait_closed()

        lsock = socket.create_server(("127.0.0.1", 0))
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        async with websockets.serve(flood, sock=lsock, ping_interval=None,
                                    max_size=None,
                                    compression=None) as srv:   # bytes on the wire
            port = srv.sockets[0].getsockname()[1]
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
            ws = await lwa.connect(sock, host=f"127.0.0.1:{port}", ping_interval=None,
                                   rbuf_size=65536)
            # wait until the flood stalls (no progress for 0.3 s)
            deadline = time.monotonic() + 15
            last = -1
            while True:
                await asyncio.sleep(0.3)
                stalled = progress["sent"]
                if stalled == last:
                    break
                last = stalled
                self.assertLess(time.monotonic(), deadline, "the flood never stalled")
            self.assertLessEqual(ws._ahead_bytes, ws.read_ahead_limit + 65536 + 64)
            self.assertLessEqual(len(ws._ahead), ws.read_ahead_limit // 64 + 2)
            self.assertGreater(ws._ahead_bytes, 0)          # it did read ahead
            self.assertLess(stalled * size, 4 << 20)        # back-pressured: not 8 MiB
            for i in range(n):
                msg = await asyncio.wait_for(ws.recv(), 10)
                self.assertEqual((len(msg), int.from_bytes(msg[:4], "big")), (size, i))
            self.assertEqual(progress["sent"], n)
            self.assertEqual(ws._ahead_bytes, 0)
            await ws.close()

    async def test_read_ahead_chunks_and_bytes(self):
        # recv_chunk_into() and readinto() take from the read-ahead first.
        async def send3(ws, path=None):
            await ws.send("abcdef")
            await ws.send(b"\x01\x02")
            await ws.send(b"tail")
            await ws.wait_closed()
        async with websockets.serve(send3, "127.0.0.1", 0, ping_interval=None,
                                    compression=None) as srv:   # exact chunks
            port = srv.sockets[0].getsockname()[1]
            async with await lwa.connect(f"ws://127.0.0.1:{port}/") as ws:
                deadline = time.monotonic() + 10
                while ws._ahead_bytes < 12 and time.monotonic() < deadline:
                    await asyncio.sleep(0.02)
                buf = bytearray(4)
                ch = await ws.recv_chunk_into(buf)
                self.assertEqual((bytes(buf[:ch.nbytes]), ch.message_end), (b"abcd", False))
                ch = await ws.recv_chunk_into(buf)
                self.assertEqual((bytes(buf[:ch.nbytes]), ch.message_end), (b"ef", True))
                big = bytearray(100)
                n = await ws.readinto(big)
                self.assertEqual(bytes(big[:n]), b"\x01\x02tail")

    async def test_cancelled_recv_then_read_ahead_finishes_the_message(self):
        # recv() cancelled inside a fragmented message keeps its start; the
        # read-ahead takes the rest; the next recv() joins both.
        async def slow_fragments(ws, path=None):
            async def parts():
                yield "a" * 100
                await asyncio.sleep(0.5)
                yield "b" * 100
            await ws.send(parts())
            await ws.send("next")
            await ws.wait_closed()
        async with websockets.serve(slow_fragments, "127.0.0.1", 0, ping_interval=None) as srv:
            port = srv.sockets[0].getsockname()[1]
            async with await lwa.connect(f"ws://127.0.0.1:{port}/") as ws:
                with self.assertRaises(asyncio.TimeoutError):
                    await asyncio.wait_for(ws.recv(), 0.2)
                deadline = time.monotonic() + 10
                while not ws._ahead and time.monotonic() < deadline:
                    await asyncio.sleep(0.02)
                self.assertTrue(ws._ahead)              # read ahead meanwhile
                self.assertEqual(await asyncio.wait_for(ws.recv(), 10), "a" * 100 + "b" * 100)
                self.assertEqual(await asyncio.wait_for(ws.recv(), 10), "next")

    async def test_ping_timeout_while_not_in_recv(self):
        srv, port = loopback_server()
        with srv:
            srv.settimeout(10)
            join = in_thread(never_pong_peer, srv)
            ws = await lwa.connect(f"ws://127.0.0.1:{port}/", ping_interval=0.2,
                                   ping_timeout=0.3)
            deadline = time.monotonic() + SLACK
            while not ws.closed and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            self.assertTrue(ws.closed)
            with self.assertRaises(lightws.PingTimeout) as cm:
                await asyncio.wait_for(ws.recv(), 5)
            frames, _ = await asyncio.to_thread(join)
            await ws.close()
        self.assertEqual(cm.exception.code, 1011)
        self.assertEqual(close_code_of(frames), (1011, b"keepalive ping timeout"))

    async def test_ping_timeout_wakes_recv(self):
        srv, port = loopback_server()
        with srv:
            srv.settimeout(10)
            join = in_thread(never_pong_peer, srv)
            ws = await lwa.connect(f"ws://127.0.0.1:{port}/", ping_interval=0.2,
                                   ping_timeout=0.3)
            t0 = time.monotonic()
            with self.assertRaises(lightws.PingTimeout):
                await asyncio.wait_for(ws.recv(), 10)
            elapsed = time.monotonic() - t0
            frames, _ = await asyncio.to_thread(join)
        self.assertGreater(elapsed, 0.4)
        self.assertLess(elapsed, SLACK)
        self.assertEqual(close_code_of(frames)[0], 1011)

    async def test_close_timeout_peer_never_answers(self):
        srv, port = loopback_server()
        with srv:
            srv.settimeout(10)

            def peer():
                conn = raw_accept(srv)
                with conn:
                    frames = frames_until_close(conn)
                    wait_eof(conn)
                    return frames
            join = in_thread(peer)
            ws = await lwa.connect(f"ws://127.0.0.1:{port}/", close_timeout=0.5,
                                   ping_interval=None)
            t0 = time.monotonic()
            await asyncio.wait_for(ws.close(1001, "away"), 10)
            elapsed = time.monotonic() - t0
            frames = await asyncio.to_thread(join)
        self.assertGreater(elapsed, 0.4)
        self.assertLess(elapsed, SLACK)
        self.assertEqual(close_code_of(frames), (1001, b"away"))


if __name__ == "__main__":
    unittest.main()
