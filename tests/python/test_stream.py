# SPDX-License-Identifier: MIT
"""The blocking WebSocket over socketpairs, both roles: messages, frames
written by hand, protocol errors with the close frame on the wire,
nonblocking resumption, timeouts, threads, the byte-stream and io views."""

import errno
import io
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import unittest

import lightws
from lightws import Opcode

from _helpers import frame, in_thread, pair, raw_pair, read_frame

KEY = b"\x01\x02\x03\x04"


class TestMessages(unittest.TestCase):
    def setUp(self):
        self.c, self.s = pair(timeout=10)

    def tearDown(self):
        for ws in (self.c, self.s):
            ws._release()

    def both_ways(self, msg):
        self.c.send(msg)
        self.assertEqual(self.s.recv(), msg)
        self.s.send(msg)
        self.assertEqual(self.c.recv(), msg)

    def test_text_and_binary(self):
        for msg in ["hello", "", "héllo \U0001F600", b"", b"\x00\xff" * 100, bytes(range(256))]:
            with self.subTest(msg=msg[:10]):
                self.both_ways(msg)

    def test_types(self):
        self.c.send(bytearray(b"ba"))
        self.c.send(memoryview(b"mv"))
        self.c.send(b"as text", Opcode.TEXT)
        self.assertEqual(self.s.recv(), b"ba")
        self.assertEqual(self.s.recv(), b"mv")
        self.assertEqual(self.s.recv(), "as text")
        with self.assertRaises(lightws.InvalidUsage):
            self.c.send(b"x", Opcode.PING)

    def test_one_mebibyte_both_roles(self):
        big = os.urandom(1 << 20)
        for a, b in ((self.c, self.s), (self.s, self.c)):
            join = in_thread(a.send, big)
            self.assertEqual(b.recv(), big)
            join()
        text = "é" * (1 << 19)
        join = in_thread(self.c.send, text)
        self.assertEqual(self.s.recv(), text)
        join()

    def test_send_many(self):
        msgs = ["a", b"", "", b"bb", "ccc" * 10000, b"", os.urandom(100000)] + \
               [f"small {i}" for i in range(100)] + [b""]
        join = in_thread(self.c.send_many, msgs)
        got = [self.s.recv() for _ in msgs]
        join()
        self.assertEqual(got, msgs)
        self.s.send_many([])
        self.s.send_many([b"x", bytearray(b"y"), memoryview(b"z")])
        self.assertEqual([self.c.recv() for _ in range(3)], [b"x", b"y", b"z"])

    def test_fragmented(self):
        self.c.send("frag", fin=False)
        self.c.send(b"men", fin=False)    # continues as text whatever the type
        self.c.send("ted")
        self.assertEqual(self.s.recv(), "fragmented")
        self.s.send_fragments([b"a", b"b", b"c"])
        self.assertEqual(self.c.recv(), b"abc")
        with self.assertRaises(lightws.InvalidUsage):
            self.c.send("x", fin=False)
            self.c.write(b"y")            # write() is not a continuation

    def test_many_messages_and_iteration(self):
        for i in range(200):
            self.c.send(f"m{i}")
        join = in_thread(self.c.close)   # waits for the server's close
        got = []
        for msg in self.s:
            got.append(msg)
        self.s.close()
        join()
        self.assertEqual(got, [f"m{i}" for i in range(200)])
        self.assertEqual(self.s.close_code, 1000)

    def test_recv_chunk_into_zero_copy(self):
        payload = os.urandom(5000)
        self.c.send(payload)
        buf = bytearray(1024)
        got = b""
        while True:
            ch = self.s.recv_chunk_into(buf)
            self.assertEqual(ch.opcode, Opcode.BINARY)
            got += bytes(buf[:ch.nbytes])
            if ch.message_end:
                break
            self.assertLessEqual(ch.nbytes, 1024)
        self.assertEqual(got, payload)
        # recv_into never crosses a message boundary
        self.c.send(b"one")
        self.c.send(b"two")
        self.assertEqual(self.s.recv_into(buf), 3)
        self.assertEqual(bytes(buf[:3]), b"one")
        self.assertEqual(self.s.recv_into(memoryview(buf)[10:]), 3)
        self.assertEqual(bytes(buf[10:13]), b"two")

    def test_byte_stream_read_write(self):
        self.c.write(b"abc")
        self.c.write(b"def")
        self.c.send("gh")     # text frames belong to the byte stream too
        time.sleep(0.05)
        self.assertEqual(self.s.read(100), b"abcdefgh")
        self.s.write(memoryview(b"xyz"))
        self.assertEqual(self.c.read(2), b"xy")
        self.assertEqual(self.c.read(2), b"z")

    def test_ping_pong(self):
        self.c.ping(b"are you there")
        self.c.send("y")
        self.assertEqual(self.s.recv(), "y")    # the ping was answered on the way
        self.s.send("x")
        self.assertEqual(self.c.recv(), "x")
        self.assertEqual(self.c.last_pong, b"are you there")
        self.s.pong(b"unsolicited")
        self.s.send("z")
        self.assertEqual(self.c.recv(), "z")
        self.assertEqual(self.c.last_pong, b"unsolicited")
        with self.assertRaises(lightws.InvalidUsage):
            self.c.ping(b"x" * 126)

    def test_no_auto_pong_hands_pings_out(self):
        c, s = pair(timeout=10, options=lightws.OPT_NO_AUTO_PONG)
        c.send("a", fin=False)
        c.ping(b"manual")
        c.send("b")
        self.assertEqual(s.recv(), "ab")          # the ping inside is skipped
        self.assertEqual(s.last_ping, b"manual")
        s.pong(s.last_ping)                       # answered by hand
        c.ping(b"again")
        buf = bytearray(100)
        ch = s.recv_chunk_into(buf)
        self.assertEqual((ch.opcode, bytes(buf[:ch.nbytes])), (Opcode.PING, b"again"))
        s.send("x")
        self.assertEqual(c.recv(), "x")
        self.assertEqual(c.last_pong, b"manual")  # only the hand-made pong came
        c._release(), s._release()

    def test_context_manager_and_fileno(self):
        fd = self.c.fileno()
        self.assertGreaterEqual(fd, 0)
        self.assertFalse(os.get_blocking(fd))
        self.s.close_timeout = 0.2
        with self.s as ws:
            self.assertIs(ws, self.s)
        self.assertEqual(self.s.fileno(), -1)
        self.assertTrue(self.s.closed)
        with self.assertRaises(lightws.ConnectionClosed) as cm:
            self.c.recv()
        self.assertEqual(cm.exception.code, 1000)


class TestClose(unittest.TestCase):
    def test_close_while_another_thread_is_blocked_in_send(self):
        # A writer blocked on a peer that never reads; close() from a third
        # thread gives up on the write lock after close_timeout. The writer
        # must leave with an error, and the descriptor must not be closed
        # under it: no later call may reach a socket reusing the number.
        c, s = pair(close_timeout=0.3)
        chunk = b"x" * 65536

        def writer():
            while True:
                s.send(chunk)
        join = in_thread(writer)
        time.sleep(0.3)                 # socket buffers full: waiting in poll
        fd = s.fileno()
        s.close()
        with self.assertRaises((lightws.ConnectionClosed, OSError)) as cm:
            join()
        err = cm.exception
        if isinstance(err, OSError) and not isinstance(err, lightws.ConnectionClosed):
            self.assertNotEqual(err.errno, errno.EBADF, err)
        self.assertEqual(s.fileno(), -1)
        # If the writer was not scheduled within close()'s wait (a loaded
        # machine), a "lightws-close" helper thread closes the descriptor
        # once the writer has left: let it finish, or the number may still
        # be taken below ("never reused").
        for th in threading.enumerate():
            if th.name == "lightws-close":
                th.join(10)
        # open sockets until one gets the old number, then call the closed stream
        socks = []
        try:
            for _ in range(64):
                a, b = socket.socketpair()
                socks += [a, b]
                if fd in (a.fileno(), b.fileno()):
                    break
            else:
                self.fail("descriptor %d never reused" % fd)
            with self.assertRaises((lightws.WebSocketError, OSError)):
                s.send(b"late")
            other = b if a.fileno() == fd else a
            other.setblocking(False)
            with self.assertRaises(BlockingIOError):
                other.recv(100)         # nothing reached the new socket
        finally:
            for x in socks:
                x.close()
            c._release()

    def test_close_codes_and_reasons(self):
        for code, reason, cls in [(1000, "", lightws.ConnectionClosedOK),
                                  (1001, "going", lightws.ConnectionClosedOK),
                                  (1011, "oops", lightws.ConnectionClosedError),
                                  (4000, "app ✓", lightws.ConnectionClosedError)]:
            with self.subTest(code=code):
                c, s = pair(timeout=10)
                join = in_thread(c.close, code, reason)
                with self.assertRaises(cls) as cm:
                    s.recv()
                self.assertEqual((cm.exception.code, cm.exception.reason), (code, reason))
                s.close()      # the server closes TCP first (§7.1.1)
                join()
                self.assertEqual(c.close_code, code)   # the server echoed it
                self.assertTrue(c.closed and s.closed)

    def test_close_frame_on_the_wire(self):
        ws, raw = raw_pair(client=False, timeout=5)
        # Long enough for this thread to read the close and answer it on a
        # loaded machine (with 0.5 s the stream could give up first, and the
        # answer then met a closed socket: BrokenPipeError); the reply comes
        # at once, so the test does not wait for it.
        ws.close_timeout = 10
        join = in_thread(ws.close, 1001, "bye")
        fin, op, payload = read_frame(raw)
        self.assertEqual((fin, op, payload), (True, Opcode.CLOSE, b"\x03\xe9bye"))
        raw.sendall(frame(Opcode.CLOSE, b"\x03\xe9", mask=KEY))
        join()
        self.assertEqual(raw.recv(10), b"")       # the server closed TCP

    def test_peer_close_without_code(self):
        ws, raw = raw_pair(client=True, timeout=5)
        raw.sendall(frame(Opcode.CLOSE))
        with self.assertRaises(lightws.ConnectionClosedOK) as cm:
            ws.recv()
        self.assertEqual(cm.exception.code, 1005)
        self.assertEqual(read_frame(raw)[1], Opcode.CLOSE)   # answered
        ws._release()

    def test_eof_without_close(self):
        ws, raw = raw_pair(timeout=5)
        raw.close()
        with self.assertRaises(lightws.ConnectionClosedError) as cm:
            ws.recv()
        self.assertEqual(cm.exception.code, 1006)
        self.assertEqual(ws.read(), b"")
        ws.close()

    def test_invalid_close_code_refused(self):
        c, s = pair()
        with self.assertRaises(lightws.InvalidUsage):
            c._c.close(1005, b"")
        c._release(), s._release()


class TestArgumentChecks(unittest.TestCase):
    """Misuse raises before anything is sent, and the connection stays as
    it was (issue 13 item 4): close codes and reasons, ping payloads,
    timeouts."""

    def assert_nothing_sent(self, raw):
        raw.settimeout(0.2)
        with self.assertRaises(socket.timeout):
            raw.recv(100)
        raw.settimeout(5)

    def test_close_with_a_code_that_may_not_be_sent_raises_and_keeps_the_connection(self):
        ws, raw = raw_pair(client=False, timeout=5)
        for code in (999, 1004, 1005, 1006, 1015, 2999, 5000, 70000, -1):
            with self.subTest(code=code):
                with self.assertRaises(ValueError):
                    ws.close(code)
        for bad in ("1000", 1000.0, None):
            with self.assertRaises(TypeError):
                ws.close(bad)
        with self.assertRaises(TypeError):
            ws.close(1000, b"bytes")
        with self.assertRaises(ValueError):
            ws.close(0, "a reason needs a code")
        self.assert_nothing_sent(raw)
        self.assertFalse(ws.closed)
        ws.send("still open")
        self.assertEqual(read_frame(raw), (True, Opcode.TEXT, b"still open"))
        raw.sendall(frame(Opcode.TEXT, b"and reading", mask=KEY))
        self.assertEqual(ws.recv(), "and reading")
        ws.close_timeout = 10
        join = in_thread(ws.close, 4000, "x" * 123)      # the longest reason that fits
        self.assertEqual(read_frame(raw), (True, Opcode.CLOSE, b"\x0f\xa0" + b"x" * 123))
        raw.sendall(frame(Opcode.CLOSE, b"\x0f\xa0", mask=KEY))
        join()

    def test_close_with_a_reason_over_123_bytes_raises_and_keeps_the_connection(self):
        ws, raw = raw_pair(client=False, timeout=5)
        for reason in ("x" * 124, "é" * 62, "\ud800"):     # 124 bytes in UTF-8; a lone surrogate
            with self.subTest(n=len(reason)):
                with self.assertRaises(ValueError):
                    ws.close(1000, reason)
        self.assert_nothing_sent(raw)
        ws.send(b"still open")
        self.assertEqual(read_frame(raw), (True, Opcode.BINARY, b"still open"))
        ws._release()

    def test_ping_and_pong_payloads(self):
        ws, raw = raw_pair(client=False, timeout=5)
        for bad in (123, 1.5, None, object()):
            with self.subTest(bad=bad):
                with self.assertRaises(TypeError):
                    ws.ping(bad)
                with self.assertRaises(TypeError):
                    ws.pong(bad)
        for long in (b"x" * 126, "é" * 63):
            with self.assertRaises(ValueError):
                ws.ping(long)
        self.assert_nothing_sent(raw)
        ws.ping("hé")                                   # str: UTF-8, as websockets does
        self.assertEqual(read_frame(raw), (True, Opcode.PING, "hé".encode()))
        ws.ping(bytearray(b"ba"))
        self.assertEqual(read_frame(raw), (True, Opcode.PING, b"ba"))
        ws.pong(memoryview(b"mv"))
        self.assertEqual(read_frame(raw), (True, Opcode.PONG, b"mv"))
        ws.ping(b"y" * 125)
        self.assertEqual(read_frame(raw), (True, Opcode.PING, b"y" * 125))
        ws._release()

    def test_settimeout_rejects_nan_and_negative_values_as_socket_does(self):
        c, s = pair(timeout=3)
        for bad in (float("nan"), -1, -0.5, float("-inf")):
            with self.subTest(bad=bad):
                with self.assertRaises(ValueError):
                    c.settimeout(bad)
                self.assertEqual(c.gettimeout(), 3)
        with self.assertRaises(TypeError):
            c.settimeout("1")
        c.settimeout(0)
        c.settimeout(2)
        self.assertEqual(c.gettimeout(), 2.0)
        c._release(), s._release()
        for kw in ({"timeout": float("nan")}, {"timeout": -1},
                   {"close_timeout": float("nan")}, {"close_timeout": -1}):
            with self.subTest(kw=kw):
                a, b = socket.socketpair()
                with self.assertRaises(ValueError):
                    lightws.WebSocket(a, client=True, **kw)
                a.close(), b.close()

    def test_connect_checks_timeouts_before_connecting(self):
        srv = socket.create_server(("127.0.0.1", 0))
        srv.setblocking(False)
        try:
            url = f"ws://127.0.0.1:{srv.getsockname()[1]}/"
            for kw in ({"timeout": float("nan")}, {"timeout": 2, "close_timeout": -1}):
                with self.assertRaises(ValueError):
                    lightws.connect(url, **kw)
            time.sleep(0.1)
            with self.assertRaises(BlockingIOError):
                srv.accept()                # no connection was made
        finally:
            srv.close()


# A reader whose read cannot go on until our control slot is written (the
# peer pinged while our own ping waits behind a data frame we cut short)
# used to loop at once, without waiting and without its deadline, for as
# long as nobody finished that frame (issue 13: no progress, no deadline).
# The state is made through the C stream; the child is killed if it spins.
_CUT_FRAME_READER = r"""
import socket, sys, threading, time
import lightws
from _helpers import frame, read_frame
peer_reads = sys.argv[1] == "reads"
a, b = socket.socketpair()
for x in (a, b):
    x.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    x.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
ws = lightws.WebSocket(a, client=False, timeout=0)
ws.send(b"x" * (1 << 20))          # taken; the frame is under way, its rest kept
assert ws.pending
ws._c.ping(b"mine")                 # queued behind the cut frame
b.sendall(frame(0x9, b"theirs", mask=b"abcd"))
got = []
if peer_reads:
    b.settimeout(10)
    def drain():
        try:
            while True:
                got.append(read_frame(b))
        except (OSError, EOFError):
            pass
    threading.Thread(target=drain, daemon=True).start()
ws.settimeout(1.0)
t0, c0 = time.monotonic(), time.process_time()
try:
    ws.recv()
except TimeoutError:
    pass
print("%.2f %.2f" % (time.monotonic() - t0, time.process_time() - c0))
if peer_reads:
    deadline = time.monotonic() + 10
    while len(got) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    print([(op, len(p)) for _, op, p in got[:3]])
"""


class TestNoSpin(unittest.TestCase):
    def run_child(self, mode):
        r = subprocess.run([sys.executable, "-c", _CUT_FRAME_READER, mode],
                           capture_output=True, text=True, timeout=30,
                           cwd=os.path.dirname(os.path.abspath(__file__)))
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout.split("\n")

    def test_reader_behind_a_cut_frame_keeps_its_deadline(self):
        # the peer reads nothing: the reader cannot finish the frame, and
        # waits for writability until its 1 s timeout, without spinning
        try:
            out = self.run_child("stuck")
        except subprocess.TimeoutExpired:
            self.fail("recv() spun past its timeout")
        wall, cpu = map(float, out[0].split())
        self.assertLess(wall, 10)
        self.assertLess(cpu, 0.5 * wall + 0.2, "recv() burnt CPU while it waited")

    def test_reader_behind_a_cut_frame_finishes_it(self):
        # the peer reads: the reader writes the rest of the frame, then our
        # ping and the pong, and waits for data until its timeout
        try:
            out = self.run_child("reads")
        except subprocess.TimeoutExpired:
            self.fail("recv() spun past its timeout")
        self.assertLess(float(out[0].split()[0]), 10)
        self.assertEqual(out[1], str([(2, 1 << 20), (9, 4), (10, 6)]))   # BINARY, PING, PONG


class TestProtocolErrors(unittest.TestCase):
    """A raw peer sends a bad frame: recv() raises ProtocolError with the
    close code, and the close frame with that code is on the wire."""

    CASES = [
        ("unmasked client frame", frame(Opcode.TEXT, b"hi"), "MASK_REQUIRED", 1002),
        ("reserved opcode", frame(3, b"", mask=KEY), "RESERVED_OPCODE", 1002),
        ("rsv bit", frame(Opcode.TEXT, b"x", mask=KEY, rsv=0x40), "RESERVED_BITS", 1002),
        ("fragmented ping", frame(Opcode.PING, b"", fin=False, mask=KEY), "FRAGMENTED_CONTROL", 1002),
        ("stray continuation", frame(Opcode.CONTINUATION, b"x", mask=KEY), "UNEXPECTED_CONTINUATION", 1002),
        ("invalid utf-8", frame(Opcode.TEXT, b"\xed\xa0\x80", mask=KEY), "UTF8", 1007),
        ("1-byte close", frame(Opcode.CLOSE, b"\x03", mask=KEY), "CLOSE_PAYLOAD", 1002),
        ("close code 1005", frame(Opcode.CLOSE, b"\x03\xed", mask=KEY), "CLOSE_CODE", 1002),
    ]

    def test_server_side(self):
        for name, wire, errname, code in self.CASES:
            with self.subTest(name=name):
                ws, raw = raw_pair(client=False, timeout=5)
                raw.sendall(wire)
                with self.assertRaises(lightws.ProtocolError) as cm:
                    ws.recv()
                self.assertEqual((cm.exception.errname, cm.exception.close_code), (errname, code))
                fin, op, payload = read_frame(raw)
                self.assertEqual(op, Opcode.CLOSE)
                self.assertEqual(int.from_bytes(payload[:2], "big"), code)
                with self.assertRaises(lightws.ProtocolError):
                    ws.recv()                      # the stream stays failed
                ws.close()
                self.assertEqual(raw.recv(100), b"")  # no second close frame
                raw.close()

    def test_client_rejects_masked_server_frame(self):
        ws, raw = raw_pair(client=True, timeout=5)
        raw.sendall(frame(Opcode.TEXT, b"x", mask=KEY))
        with self.assertRaises(lightws.ProtocolError) as cm:
            ws.recv()
        self.assertEqual(cm.exception.errname, "MASK_UNEXPECTED")
        fin, op, payload = read_frame(raw)
        self.assertEqual((op, payload[:2]), (Opcode.CLOSE, b"\x03\xea"))
        ws._release()

    def test_message_too_big(self):
        ws, raw = raw_pair(client=False, timeout=5, max_size=1000)
        raw.sendall(frame(Opcode.BINARY, b"a" * 600, fin=False, mask=KEY)
                    + frame(Opcode.CONTINUATION, b"b" * 600, mask=KEY))
        with self.assertRaises(lightws.ProtocolError) as cm:
            ws.recv()
        self.assertEqual(cm.exception.close_code, 1009)
        self.assertEqual(read_frame(raw)[2][:2], (1009).to_bytes(2, "big"))
        ws._release()


class TestNonblocking(unittest.TestCase):
    def test_handshake_waits_then_stream_is_nonblocking(self):
        srv = socket.create_server(("127.0.0.1", 0))
        port = srv.getsockname()[1]
        join = in_thread(lambda: lightws.accept(srv.accept()[0], timeout=0))
        c = lightws.connect(f"ws://127.0.0.1:{port}/", timeout=0)
        s = join()
        srv.close()
        self.assertEqual((c.gettimeout(), s.gettimeout()), (0, 0))
        with self.assertRaises(BlockingIOError):
            s.recv()
        c.send("now")
        deadline = time.monotonic() + 5
        while True:
            try:
                self.assertEqual(s.recv(), "now")
                break
            except BlockingIOError:
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.01)
        c._release(), s._release()

    def test_send_many_nonblocking_keeps_the_rest(self):
        c, s = pair()
        c._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        c.settimeout(0)
        msgs = [os.urandom(n) for n in (10, 0, 70000, 5, 0, 300000)] + ["end"]
        c.send_many(msgs)                 # taken: the rest is pending
        self.assertTrue(c.pending)
        got = []
        s.settimeout(0)
        deadline = time.monotonic() + 10
        while len(got) < len(msgs) and time.monotonic() < deadline:
            try:
                c.flush()
            except BlockingIOError:
                pass
            try:
                got.append(s.recv())
            except BlockingIOError:
                pass
        self.assertEqual(got, msgs)
        self.assertFalse(c.pending)
        c._release(), s._release()

    def test_ping_with_a_cut_frame_pending(self):
        c, s = pair()
        c._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        c.settimeout(0)
        big = os.urandom(1 << 20)
        c.send(big)                       # taken; most of it is pending
        self.assertTrue(c.pending)
        c.settimeout(10)
        join = in_thread(s.recv)
        c.ping(b"p")                      # finishes the frame first
        self.assertEqual(join(), big)
        self.assertFalse(c.pending)
        c._release(), s._release()

    def test_recv_resumes_byte_at_a_time(self):
        ws, raw = raw_pair(client=False)
        ws.settimeout(0)
        msg = "résumé " * 50
        wire = (frame(Opcode.TEXT, msg[:100].encode(), fin=False, mask=KEY)
                + frame(Opcode.PING, b"p", mask=KEY)
                + frame(Opcode.CONTINUATION, msg[100:].encode(), mask=KEY))
        got = None
        blocked = 0
        for i in range(len(wire)):
            raw.sendall(wire[i:i + 1])
            try:
                got = ws.recv()
            except BlockingIOError as e:
                self.assertEqual(e.errno, errno.EAGAIN)
                self.assertTrue(e.want & lightws.WANT_READ)
                blocked += 1
        self.assertEqual(got, msg)
        self.assertEqual(blocked, len(wire) - 1)
        self.assertEqual(read_frame(raw), (True, Opcode.PONG, b"p"))
        ws._release()

    def test_send_resumes_when_the_socket_is_full(self):
        c, s = pair()
        c._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        c.settimeout(0)
        msgs = [os.urandom(50000) for _ in range(8)]
        sent = []
        received = []
        deadline = time.monotonic() + 20
        while len(received) < len(msgs) and time.monotonic() < deadline:
            if len(sent) < len(msgs):
                try:
                    c.send(msgs[len(sent)])
                    sent.append(True)
                except BlockingIOError as e:
                    self.assertTrue(e.want & lightws.WANT_WRITE)
                    self.assertEqual(e.characters_written, 0)
            elif c.pending:
                try:
                    c.flush()
                except BlockingIOError:
                    pass
            s.settimeout(0)
            try:
                received.append(s.recv())
            except BlockingIOError:
                pass
        self.assertEqual(received, msgs)
        self.assertFalse(c.pending)
        c._release(), s._release()

    def test_timeout(self):
        c, s = pair()
        s.settimeout(0.1)
        self.assertEqual(s.gettimeout(), 0.1)
        t0 = time.monotonic()
        with self.assertRaises(socket.timeout):
            s.recv()
        self.assertGreaterEqual(time.monotonic() - t0, 0.09)
        c.send("late")
        self.assertEqual(s.recv(), "late")   # nothing lost
        s.setblocking(True)
        self.assertIsNone(s.gettimeout())
        c._release(), s._release()


class TestThreads(unittest.TestCase):
    def test_reader_and_writer_threads_on_each_end(self):
        c, s = pair(timeout=20)
        n = 300
        payloads = [os.urandom((i * 997) % 70000) for i in range(n)]

        def writer(ws):
            for p in payloads:
                ws.send(p)

        def reader(ws):
            return [ws.recv() for _ in range(n)]

        joins = [in_thread(writer, c), in_thread(reader, s),
                 in_thread(writer, s), in_thread(reader, c)]
        results = [j(60) for j in joins]
        self.assertEqual(results[1], payloads)
        self.assertEqual(results[3], payloads)
        c._release(), s._release()

    def test_close_from_writer_wakes_reader(self):
        c, s = pair(timeout=10)
        # The bound below only tells "answered" from "gave up after
        # close_timeout": both were arbitrary (2 s / 1.5 s left a loaded
        # machine 1.5 s), now 10 s / 5 s.
        c.close_timeout = 10
        join = in_thread(c.recv)
        time.sleep(0.1)
        def server():
            got = list(s)        # iterates until the client's close
            s.close()
            return got
        join_s = in_thread(server)
        t0 = time.monotonic()
        c.close(1000, "done")
        self.assertLess(time.monotonic() - t0, 5)
        with self.assertRaises(lightws.ConnectionClosedOK):
            join()
        self.assertEqual(join_s(), [])


class TestIO(unittest.TestCase):
    def test_copyfileobj_through_buffered_reader(self):
        c, s = pair(timeout=10)
        data = os.urandom(300000)

        def produce():
            for i in range(0, len(data), 7000):
                c.write(data[i:i + 7000])
            c.close()

        join = in_thread(produce)
        out = io.BytesIO()
        with s.makefile("rb") as f:
            self.assertIsInstance(f, io.BufferedReader)
            shutil.copyfileobj(f, out)
        self.assertNotEqual(s.fileno(), -1)        # the file left it open
        s.close()
        join()
        self.assertEqual(out.getvalue(), data)
        c2, s2 = pair(timeout=10)
        s2.close_timeout = 0.2      # c2 does not read: no close reply comes
        c2.write(b"raw")
        with lightws.RawStream(s2) as raw:
            self.assertEqual(raw.read(10), b"raw")
        self.assertEqual(s2.fileno(), -1)          # RawStream closes by default
        c2._release()

    def test_raw_stream_write_side(self):
        c, s = pair(timeout=10)
        raw = lightws.RawStream(c)
        self.assertTrue(raw.readable() and raw.writable())
        self.assertEqual(raw.fileno(), c.fileno())
        w = c.makefile("wb")
        shutil.copyfileobj(io.BytesIO(b"x" * 20000), w, 4096)
        w.flush()
        got = b""
        while len(got) < 20000:
            got += s.read(65536)
        self.assertEqual(got, b"x" * 20000)
        c._release(), s._release()


if __name__ == "__main__":
    unittest.main()
