# SPDX-License-Identifier: MIT
"""The lean paths of the blocking WebSocket (timeout None): send() with one
C call and its fall back to the resumable job, send(mask_in_place=True),
and recv() waiting for POLLIN first when the receive buffer is empty
(messages already buffered, byte-at-a-time arrival, pings, threads)."""

import array
import os
import socket
import time
import unittest

import lightws
from lightws import Opcode

from _helpers import frame, in_thread, pair, raw_pair, read_frame

KEY = b"\x0a\x0b\x0c\x0d"


class TestSendFastPath(unittest.TestCase):
    def setUp(self):
        self.c, self.s = pair()          # timeout None: the lean paths

    def tearDown(self):
        for ws in (self.c, self.s):
            ws._release()

    def test_types_and_opcodes_on_the_wire(self):
        ws, raw = raw_pair(client=False)
        ws.send(b"ab")
        ws.send(bytearray(b"cd"))
        ws.send(memoryview(b"xefx")[1:3])
        ws.send(array.array("H", [0x4142]))          # 2 bytes, 1 item
        ws.send("é")
        ws.send(b"{}", Opcode.TEXT)
        ws.send("t", Opcode.BINARY)
        ws.send(b"")
        self.assertEqual([read_frame(raw) for _ in range(8)], [
            (True, Opcode.BINARY, b"ab"), (True, Opcode.BINARY, b"cd"),
            (True, Opcode.BINARY, b"ef"),
            (True, Opcode.BINARY, array.array("H", [0x4142]).tobytes()),
            (True, Opcode.TEXT, "é".encode()), (True, Opcode.TEXT, b"{}"),
            (True, Opcode.BINARY, b"t"), (True, Opcode.BINARY, b"")])
        with self.assertRaises(lightws.InvalidUsage):
            ws.send(b"x", Opcode.PING)
        ws._release()

    def test_fragment_then_fast_send(self):
        ws, raw = raw_pair(client=False)
        ws.send(b"a", fin=False)
        ws.send(b"b")                    # continues the message: slow path
        ws.send(b"c")                    # a new message: fast path
        self.assertEqual([read_frame(raw) for _ in range(3)], [
            (False, Opcode.BINARY, b"a"), (True, Opcode.CONTINUATION, b"b"),
            (True, Opcode.BINARY, b"c")])
        ws._release()

    def test_partial_sends_resume(self):
        # A small send buffer cuts every big frame: the lean call's partial
        # send continues in the job machinery with no byte lost.
        self.c._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        msgs = [os.urandom(n) for n in (300000, 1, 70000, 0, 200000)]
        join = in_thread(lambda: [self.c.send(m) for m in msgs])
        got = [self.s.recv() for _ in msgs]
        join()
        self.assertEqual(got, msgs)
        self.assertFalse(self.c.pending)

    def test_mask_in_place(self):
        data = os.urandom(100000)
        # The client left the buffer masked. A random key is all zero 1 time
        # in 2^32 (masking is then a no-op): up to 3 frames, one must differ.
        for _ in range(3):
            buf = bytearray(data)
            join = in_thread(lambda: self.c.send(buf, mask_in_place=True))
            self.assertEqual(self.s.recv(), data)
            join()
            if bytes(buf) != data:
                break
        self.assertNotEqual(bytes(buf), data)     # the client left it masked
        # the server does not mask: the buffer stays as it was
        buf2 = bytearray(b"server")
        self.s.send(buf2, mask_in_place=True)
        self.assertEqual(self.c.recv(), b"server")
        self.assertEqual(buf2, b"server")
        # a fragment (slow path) with the flag
        buf3 = bytearray(b"frag")
        self.c.send(buf3, fin=False, mask_in_place=True)
        self.c.send(b"ment")
        self.assertEqual(self.s.recv(), b"fragment")

    def test_mask_in_place_on_the_wire(self):
        ws, raw = raw_pair(client=True)
        ws._c.set_mask_mode("fixed")
        buf = bytearray(b"hello")
        ws.send(buf, mask_in_place=True)
        b0, b1 = raw.recv(2)
        self.assertEqual((b0, b1), (0x82, 0x85))
        key = raw.recv(4)
        wire = raw.recv(5)
        self.assertEqual(bytes(c ^ key[i % 4] for i, c in enumerate(wire)), b"hello")
        self.assertEqual(bytes(buf), wire)         # exactly what went out
        ws._release()

    def test_mask_in_place_needs_a_writable_buffer(self):
        for data in (b"bytes", memoryview(b"ro"), "text"):
            with self.assertRaises(TypeError):
                self.c.send(data, mask_in_place=True)
            with self.assertRaises(TypeError):
                self.c.send(data, fin=False, mask_in_place=True)
        self.c.send(b"still fine")
        self.assertEqual(self.s.recv(), b"still fine")


class TestSendMany(unittest.TestCase):
    def test_partial_writes_every_type(self):
        # A small send buffer cuts calls anywhere; buffers reused by the
        # caller after send_many() returns must not change what is sent.
        c, s = pair()
        c._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        ba = bytearray(os.urandom(3000))
        msgs = ([b"x" * i for i in range(0, 200, 7)] + [ba, "é" * 999, b"",
                memoryview(os.urandom(5000))[17:4017], array.array("i", range(500)),
                bytes(70000), b""] + [os.urandom(1024)] * 100)
        want = [m if isinstance(m, str) else bytes(m) for m in msgs]
        join = in_thread(lambda: [s.recv() for _ in msgs])
        c.send_many(msgs)
        ba[:] = bytes(len(ba))
        c.send_many([])
        self.assertEqual(join(20), want)
        self.assertFalse(c.pending)
        c._release(), s._release()

    def test_wire_format(self):
        ws, raw = raw_pair(client=False)
        ws.send_many([b"a", "b", b"", bytearray(b"cd")])
        self.assertEqual([read_frame(raw) for _ in range(4)], [
            (True, Opcode.BINARY, b"a"), (True, Opcode.TEXT, b"b"),
            (True, Opcode.BINARY, b""), (True, Opcode.BINARY, b"cd")])
        ws._release()


class TestRecvWaitsFirst(unittest.TestCase):
    def test_buffered_messages_do_not_wait(self):
        # Several frames arrive in one read: the later ones are in the
        # receive buffer, so recv() must not wait for the descriptor.
        ws, raw = raw_pair(client=False)
        raw.sendall(b"".join(frame(Opcode.BINARY, bytes([i]) * i, mask=KEY)
                             for i in range(1, 6)))
        join = in_thread(lambda: [ws.recv() for _ in range(5)])
        self.assertEqual(join(5), [bytes([i]) * i for i in range(1, 6)])
        self.assertTrue(ws._c.read_idle())
        ws._release()

    def test_every_split(self):
        msg = "split é " * 40
        wire = (frame(Opcode.TEXT, msg[:50].encode(), fin=False, mask=KEY)
                + frame(Opcode.PING, b"p", mask=KEY)
                + frame(Opcode.CONTINUATION, msg[50:].encode(), mask=KEY)
                + frame(Opcode.BINARY, b"next", mask=KEY))
        for cut in range(1, len(wire)):
            ws, raw = raw_pair(client=False)
            join = in_thread(lambda: (ws.recv(), ws.recv()))
            raw.sendall(wire[:cut])
            time.sleep(0.001 if cut % 50 else 0.02)
            raw.sendall(wire[cut:])
            self.assertEqual(join(5), (msg, b"next"), cut)
            self.assertEqual(read_frame(raw), (True, Opcode.PONG, b"p"))
            ws._release()

    def test_byte_at_a_time(self):
        ws, raw = raw_pair(client=False)
        wire = frame(Opcode.BINARY, os.urandom(300), mask=KEY) + \
            frame(Opcode.TEXT, b"end", mask=KEY)
        join = in_thread(lambda: (ws.recv(), ws.recv()))
        for i in range(len(wire)):
            raw.sendall(wire[i:i + 1])
        first, second = join(10)
        self.assertEqual(len(first), 300)
        self.assertEqual(second, "end")
        ws._release()

    def test_ping_answered_while_waiting(self):
        ws, raw = raw_pair(client=False)
        join = in_thread(ws.recv)
        time.sleep(0.05)                 # recv() waits in poll
        raw.sendall(frame(Opcode.PING, b"are you there", mask=KEY))
        self.assertEqual(read_frame(raw), (True, Opcode.PONG, b"are you there"))
        raw.sendall(frame(Opcode.BINARY, b"data", mask=KEY))
        self.assertEqual(join(5), b"data")
        ws._release()

    def test_closed_stream_raises_at_once(self):
        c, s = pair()
        c.send(b"last")
        c._c.close(1000, b"bye")
        c._c.flush()
        self.assertEqual(s.recv(), b"last")
        with self.assertRaises(lightws.ConnectionClosedOK):
            s.recv()
        join = in_thread(s.recv)         # must not wait in poll
        with self.assertRaises(lightws.ConnectionClosed):
            join(5)
        c._release(), s._release()

    def test_recv_into_and_readinto(self):
        ws, raw = raw_pair(client=False)
        raw.sendall(frame(Opcode.BINARY, b"0123456789", mask=KEY))
        buf = bytearray(4)
        self.assertEqual(ws.recv_chunk_into(buf), (4, Opcode.BINARY, False, False))
        self.assertEqual(buf, b"0123")
        self.assertEqual(ws.readinto(buf), 4)
        self.assertEqual(buf, b"4567")
        join = in_thread(lambda: ws.recv_into(buf))
        self.assertEqual(join(5), 2)
        self.assertEqual(buf[:2], b"89")
        join = in_thread(lambda: ws.readinto(buf))
        time.sleep(0.05)
        raw.sendall(frame(Opcode.BINARY, b"late", mask=KEY))
        self.assertEqual(join(5), 4)
        self.assertEqual(buf, b"late")
        ws._release()


class TestThreadsBlocking(unittest.TestCase):
    def test_reader_and_writer_threads_without_timeout(self):
        # timeout None: recv() waits for POLLIN outside the C lock, so each
        # end's writer keeps sending while its reader waits.
        c, s = pair()
        n = 400
        payloads = [os.urandom((i * 7919) % 90000) for i in range(n)]

        def writer(ws):
            for p in payloads:
                ws.send(p)

        def reader(ws):
            return [ws.recv() for _ in range(n)]

        joins = [in_thread(reader, s), in_thread(reader, c),
                 in_thread(writer, c), in_thread(writer, s)]
        results = [j(60) for j in joins]
        self.assertEqual(results[0], payloads)
        self.assertEqual(results[1], payloads)
        c._release(), s._release()

    def test_writer_not_blocked_by_waiting_reader(self):
        c, s = pair()
        join = in_thread(c.recv)             # waits: nothing to read
        time.sleep(0.05)
        t0 = time.monotonic()
        for i in range(100):
            c.send(b"w%d" % i)
        self.assertLess(time.monotonic() - t0, 2)
        self.assertEqual([s.recv() for _ in range(100)], [b"w%d" % i for i in range(100)])
        s.send(b"wake")
        self.assertEqual(join(5), b"wake")
        c._release(), s._release()


if __name__ == "__main__":
    unittest.main()
