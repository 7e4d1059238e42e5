# SPDX-License-Identifier: MIT
"""The command-line pieces: `python -m lightws.echo` (server and client
modes, the same contract as build/lightws-echo) and
examples/demo_client.py as `make demo` runs it."""

import os
import resource
import socket
import subprocess
import sys
import time
import unittest

import lightws
from lightws import Opcode

from _helpers import (ECHO_BIN, ROOT, Proc, dribble, frame, need_file, read_frame,
                      read_head, wait_eof)

DEMO = os.path.join(ROOT, "examples", "demo_client.py")


class TestEchoModule(unittest.TestCase):
    def test_server_prints_listening_line_and_echoes_fragments(self):
        srv = Proc([sys.executable, "-m", "lightws.echo", "--host", "127.0.0.1", "--port", "0"])
        try:
            with lightws.connect(f"ws://127.0.0.1:{srv.port}/cli", timeout=10) as ws:
                big = os.urandom(300000)      # streamed back chunk by chunk
                ws.send(big)
                self.assertEqual(ws.recv(), big)
                ws.send_fragments(["a", "b", "c"])
                self.assertEqual(ws.recv(), "abc")
                # several connections at once (one thread each)
                others = [lightws.connect(f"ws://127.0.0.1:{srv.port}/{i}", timeout=10)
                          for i in range(3)]
                for i, o in enumerate(others):
                    o.send(f"conn {i}")
                for i, o in enumerate(others):
                    self.assertEqual(o.recv(), f"conn {i}")
                    o.close()
        finally:
            srv.stop()

    def test_client_mode_exits_zero_when_the_server_closes(self):
        srv = socket.create_server(("127.0.0.1", 0))
        port = srv.getsockname()[1]
        p = subprocess.Popen([sys.executable, "-m", "lightws.echo", "--client",
                              f"ws://127.0.0.1:{port}/x?y=z"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            srv.settimeout(10)
            conn, _ = srv.accept()
            ws = lightws.accept(conn, timeout=10)
            self.assertEqual(ws.path, "/x?y=z")
            for msg in ["one", b"two", "x" * 100000]:
                ws.send(msg)
                self.assertEqual(ws.recv(), msg)
            ws.close()
            _, err = p.communicate(timeout=10)
            self.assertEqual(p.returncode, 0, err)
        finally:
            srv.close()
            if p.poll() is None:
                p.kill()
                p.communicate()

    def test_client_mode_fails_without_server(self):
        srv = socket.create_server(("127.0.0.1", 0))
        port = srv.getsockname()[1]
        srv.close()
        r = subprocess.run([sys.executable, "-m", "lightws.echo", "--client",
                            f"ws://127.0.0.1:{port}/"], capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 1)
        self.assertIn("lightws.echo", r.stderr)


def echo_server(*args, nofile=None):
    """`python -m lightws.echo` on a free port; ``nofile``: its soft
    descriptor limit (RLIMIT_NOFILE), set in the child before exec."""
    def limit():
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard))
    return Proc([sys.executable, "-m", "lightws.echo", "--port", "0", *args],
                preexec_fn=limit if nofile else None)


def raw_ws(port):
    """A raw socket past the opening handshake (frames by hand)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(lightws.codec.build_request(f"127.0.0.1:{port}", "/raw"))
    head = read_head(s)
    assert head.startswith(b"HTTP/1.1 101 "), head
    return s


def threads_of(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise AssertionError("no Threads: line")


def descriptors_of(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:         # the process is gone
        return 0


def echo_once(port, text, timeout=10):
    with lightws.connect(f"ws://127.0.0.1:{port}/good", timeout=timeout) as ws:
        ws.send(text)
        return ws.recv()


def echo_within(port, seconds):
    """A well-behaved client: connect and get an echo, retried until
    ``seconds`` have passed (the server may be pausing its accepts)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return echo_once(port, "good", timeout=5)
        except (OSError, lightws.WebSocketError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


class TestEchoServerLimits(unittest.TestCase):
    """Issue 13 items 2 and 6: the echo server survives running out of
    descriptors, holds thousands of idle connections on one thread and
    ends them quickly, limits messages to 64 MiB by default, and refuses
    bad options and URLs with one line instead of a traceback."""

    def test_keeps_serving_after_running_out_of_descriptors(self):
        srv = echo_server("-q", nofile=256)
        flood = []
        try:
            live = lightws.connect(f"ws://127.0.0.1:{srv.port}/live", timeout=10)
            # More connections than the limit, none sending a request (slow
            # handshakes): accept() fails with EMFILE once 256 are taken.
            for _ in range(400):
                c = socket.socket()
                c.setblocking(False)
                c.connect_ex(("127.0.0.1", srv.port))
                flood.append(c)
            # connections past the accept queue get in as the kernel
            # retries their SYN (1 s, 3 s...): wait until the server holds
            # all 256 descriptors, then a moment more for the failed accepts
            deadline = time.monotonic() + 60
            while (srv.p.poll() is None and time.monotonic() < deadline
                   and descriptors_of(srv.p.pid) < 256):
                time.sleep(0.1)
            time.sleep(0.5)
            self.assertIsNone(srv.p.poll(), "the echo server exited")
            live.send("still here")                     # live connections go on
            self.assertEqual(live.recv(), "still here")
            for c in flood:
                c.close()
            flood = []
            self.assertEqual(echo_within(srv.port, 30), "good")
            self.assertEqual(echo_within(srv.port, 30), "good")     # and again
            live.send("after")
            self.assertEqual(live.recv(), "after")
            live.close()
            self.assertIsNone(srv.p.poll(), "the echo server exited")
            srv.p.terminate()
            _, err = srv.p.communicate(timeout=30)
            self.assertEqual(srv.p.returncode, 0, err)
            self.assertIn("Too many open files", err)     # it did run out
            self.assertNotIn("Traceback", err)
        finally:
            for c in flood:
                c.close()
            srv.stop()

    def test_thousands_of_idle_connections_one_thread_quick_teardown(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        n = min(2000, hard - 300)
        self.assertGreater(n, 500, f"descriptor hard limit {hard} too low for the test")
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 1000), hard))
        conns = []
        srv = None
        try:
            srv = echo_server("-q")     # inherits the raised limit
            for i in range(n):
                conns.append(lightws.connect(f"ws://127.0.0.1:{srv.port}/idle{i}",
                                             timeout=20, close_timeout=1))
            # the server's shape: not one thread per connection (it had n + 1)
            self.assertLess(threads_of(srv.p.pid), 10)
            # half the clients vanish at once (no close frame): the server
            # ends those connections and goes on serving a new client
            for ws in conns[: n // 2]:
                ws._release()
            del conns[: n // 2]
            t0 = time.monotonic()
            self.assertEqual(echo_within(srv.port, 30), "good")
            served = time.monotonic() - t0
            self.assertLess(served, 10, "a client waited behind the teardown")
            # SIGTERM with the other half idle: 1001 to each, a bounded wait
            t0 = time.monotonic()
            srv.p.terminate()
            self.assertEqual(srv.p.wait(30), 0)
            self.assertLess(time.monotonic() - t0, 10)
            with self.assertRaises(lightws.ConnectionClosed) as cm:
                conns[0].recv()
            self.assertEqual(cm.exception.code, 1001)
        finally:
            for ws in conns:
                ws._release()
            if srv is not None:
                srv.stop()
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    def test_default_message_limit_is_64_mib(self):
        srv = echo_server()
        try:
            with raw_ws(srv.port) as s:
                # a frame head announcing 64 MiB + 1: close 1009 at the head
                s.sendall(frame(Opcode.BINARY, b"", mask=b"abcd")[:1]
                          + bytes([0x80 | 127]) + ((64 << 20) + 1).to_bytes(8, "big")
                          + b"abcd" + b"x" * 100)
                fin, op, payload = read_frame(s)
                self.assertEqual((op, payload[:2]), (Opcode.CLOSE, b"\x03\xf1"))
            with lightws.connect(f"ws://127.0.0.1:{srv.port}/", timeout=10) as ws:
                big = os.urandom(4 << 20)      # well under the limit: echoed
                ws.send(big)
                self.assertEqual(ws.recv(), big)
        finally:
            srv.stop()

    def test_max_message_option(self):
        srv = echo_server("--max-message", "1000")
        try:
            with lightws.connect(f"ws://127.0.0.1:{srv.port}/", timeout=10) as ws:
                ws.send(b"y" * 1000)
                self.assertEqual(ws.recv(), b"y" * 1000)
                ws.send(b"z" * 1001)
                with self.assertRaises(lightws.ConnectionClosed) as cm:
                    ws.recv()
                self.assertEqual(cm.exception.code, 1009)
        finally:
            srv.stop()

    def test_bad_options_are_one_line_and_exit_2(self):
        for args in (["--port", "70000"], ["--port", "-1"], ["--port", "x"],
                     ["--port", "0", "--max-message", "0"],
                     ["--port", "0", "--max-message", "4294967296"],
                     ["--port", "0", "--max-message", "lots"]):
            with self.subTest(args=args):
                try:
                    r = subprocess.run([sys.executable, "-m", "lightws.echo", *args],
                                       capture_output=True, text=True, timeout=20)
                except subprocess.TimeoutExpired:
                    self.fail(f"{args} was accepted: the server ran")
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertNotIn("Traceback", r.stderr)

    def test_client_bad_url_is_one_line(self):
        for url in ("ws://127.0.0.1:111661/", "ws://[::1/", "ws://h:abc/",
                    "ws://127.0.0.1:0/", "http://127.0.0.1/", "ws:///x"):
            with self.subTest(url=url):
                r = subprocess.run([sys.executable, "-m", "lightws.echo", "--client", url],
                                   capture_output=True, text=True, timeout=20)
                self.assertNotEqual(r.returncode, 0)
                self.assertNotIn("Traceback", r.stderr)
                lines = r.stderr.strip().splitlines()
                self.assertEqual(len(lines), 1, r.stderr)
                self.assertTrue(lines[0].startswith("lightws.echo: "), lines[0])


class TestDemoClient(unittest.TestCase):
    def run_demo(self, server_argv):
        srv = Proc(server_argv)
        try:
            r = subprocess.run([sys.executable, DEMO, f"ws://127.0.0.1:{srv.port}/demo"],
                               capture_output=True, text=True, timeout=30)
        finally:
            srv.stop()
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(len(lines), 5, r.stdout)
        self.assertEqual(lines[0], "python client: text 'hello' echoed")
        self.assertTrue(all(l.startswith("python client: ") for l in lines))
        self.assertRegex(lines[-1], r"closed with 1000 \(server answered 1000\)")

    def test_demo_against_c_echo(self):
        need_file(ECHO_BIN)
        self.run_demo([ECHO_BIN, "--host", "127.0.0.1", "--port", "0"])

    def test_demo_against_python_echo(self):
        self.run_demo([sys.executable, "-m", "lightws.echo", "--port", "0"])


class TestEchoTimeouts(unittest.TestCase):
    """The timeout options of build/lightws-echo and examples/echo.lua, on
    the Python twin (lightws.asyncio.serve with the C core's deadlines)."""

    def close_after(self, s):
        """The frames a raw client reads up to the server's close, and
        whether the server then closed TCP."""
        s.settimeout(10)
        frames = []
        while True:
            _, op, payload = read_frame(s)
            frames.append((op, payload))
            if op == 8:
                return frames, wait_eof(s) == b""

    def test_ping_timeout_closes_1011(self):
        srv = echo_server("--ping-interval", "0.3", "--ping-timeout", "0.3")
        try:
            with raw_ws(srv.port) as s:
                t0 = time.monotonic()
                frames, eof = self.close_after(s)
                elapsed = time.monotonic() - t0
            self.assertEqual(frames[0][0], 9)                 # the keepalive ping
            self.assertEqual(frames[-1][1][:2], (1011).to_bytes(2, "big"))
            self.assertTrue(eof)
            self.assertGreater(elapsed, 0.5)
            self.assertLess(elapsed, 4)
        finally:
            srv.stop()

    def test_idle_timeout_closes_1001(self):
        srv = echo_server("--idle-timeout", "0.5", "--ping-interval", "0")
        try:
            with raw_ws(srv.port) as s:
                t0 = time.monotonic()
                frames, eof = self.close_after(s)
                elapsed = time.monotonic() - t0
            self.assertEqual([op for op, _ in frames], [8])  # no ping: interval 0
            self.assertEqual(frames[0][1][:2], (1001).to_bytes(2, "big"))
            self.assertTrue(eof)
            self.assertGreater(elapsed, 0.4)
            self.assertLess(elapsed, 4)
        finally:
            srv.stop()

    def test_handshake_timeout_cuts_a_dribbler(self):
        srv = echo_server("--handshake-timeout", "0.5")
        try:
            elapsed, answer = dribble(srv.port)
            self.assertGreater(elapsed, 0.4)
            self.assertLess(elapsed, 4)
            self.assertTrue(answer == b"" or answer.startswith(b"HTTP/1.1 408 "), answer)
            self.assertEqual(echo_once(srv.port, "ok"), "ok")
        finally:
            srv.stop()

    def test_client_timeout_against_a_silent_server(self):
        lsock = socket.create_server(("127.0.0.1", 0))
        with lsock:
            t0 = time.monotonic()
            p = subprocess.run([sys.executable, "-m", "lightws.echo", "--timeout", "0.5",
                                "--client", f"ws://127.0.0.1:{lsock.getsockname()[1]}/"],
                               capture_output=True, text=True, timeout=20)
            elapsed = time.monotonic() - t0
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("HANDSHAKE_TIMEOUT", p.stderr)
        self.assertLess(elapsed, 6)


if __name__ == "__main__":
    unittest.main()
