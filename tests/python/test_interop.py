# SPDX-License-Identifier: MIT
"""Interop over loopback, both roles, against real peers: build/lightws-echo
(C), python3-websockets, node ws, and lightws' own `python -m lightws.echo`."""

import os
import socket
import subprocess
import sys
import unittest

import lightws

from _helpers import ECHO_BIN, Proc, need_file, node, node_env

HERE = os.path.dirname(os.path.abspath(__file__))


def exercise(test, ws):
    """Messages through an echoing peer; the same checks in both roles."""
    for msg in ["hello", "", "ünïcödé \U0001F600", b"\x00\x01\x02", b"", os.urandom(70000)]:
        ws.send(msg)
        test.assertEqual(ws.recv(), msg)
    big = os.urandom(1 << 20)
    ws.send(big)
    test.assertEqual(ws.recv(), big)
    ws.send_fragments(["frag", "men", "ted"])
    test.assertEqual(ws.recv(), "fragmented")
    ws.send_fragments([b"a" * 1000, b"b" * 70000])
    test.assertEqual(ws.recv(), b"a" * 1000 + b"b" * 70000)
    ws.ping(b"ping!")
    ws.send("after ping")
    test.assertEqual(ws.recv(), "after ping")
    test.assertEqual(ws.last_pong, b"ping!")
    for i in range(50):
        ws.send(f"burst {i}")
    for i in range(50):
        test.assertEqual(ws.recv(), f"burst {i}")


class ClientRole:
    """lightws client against an echo server started by server_argv()."""

    close_code = 1000

    def server_argv(self):
        raise NotImplementedError

    def env(self):
        return None

    def setUp(self):
        self.srv = Proc(self.server_argv(), env=self.env())

    def tearDown(self):
        self.srv.stop()

    def url(self, path="/interop?x=1"):
        return f"ws://127.0.0.1:{self.srv.port}{path}"

    def test_messages(self):
        with lightws.connect(self.url(), timeout=20) as ws:
            self.assertEqual(ws.response.status, 101)
            exercise(self, ws)
            ws.close(1000, "done")
            self.assertEqual(ws.close_code, 1000)
        self.assertTrue(ws.closed)

    def test_close_code_4000(self):
        ws = lightws.connect(self.url(), timeout=20)
        ws.close(4000, "app")
        self.assertEqual(ws.close_code, 4000)


class ServerRole:
    """An echo client started by client_argv(url) against lightws.accept()."""

    prints_close = True   # the peer prints "closed CODE REASON"

    def client_argv(self, url):
        raise NotImplementedError

    def env(self):
        return None

    def run_peer(self, body, code=1000, reason="bye"):
        srv = socket.create_server(("127.0.0.1", 0))
        port = srv.getsockname()[1]
        p = subprocess.Popen(self.client_argv(f"ws://127.0.0.1:{port}/peer?q=2"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=self.env())
        try:
            srv.settimeout(10)
            conn, _ = srv.accept()
            ws = lightws.accept(conn, timeout=20)
            self.assertEqual(ws.path, "/peer?q=2")
            body(ws)
            ws.close(code, reason)
            out, err = p.communicate(timeout=20)
        finally:
            srv.close()
            if p.poll() is None:
                p.kill()
                p.communicate()
        self.assertEqual(p.returncode, 0, err)
        return out

    def test_messages(self):
        out = self.run_peer(lambda ws: exercise(self, ws))
        if self.prints_close:
            self.assertIn("closed 1000", out)

    def test_close_code_4001(self):
        out = self.run_peer(lambda ws: None, 4001, "custom")
        if self.prints_close:
            self.assertIn("closed 4001 custom", out)


class TestCEchoClientRole(ClientRole, unittest.TestCase):
    def server_argv(self):
        need_file(ECHO_BIN)
        return [ECHO_BIN, "--host", "127.0.0.1", "--port", "0"]


class TestCEchoServerRole(ServerRole, unittest.TestCase):
    prints_close = False

    def client_argv(self, url):
        need_file(ECHO_BIN)
        return [ECHO_BIN, "--client", url]


class TestWebsocketsClientRole(ClientRole, unittest.TestCase):
    def server_argv(self):
        return [sys.executable, os.path.join(HERE, "peer_websockets.py"), "server"]

    def test_subprotocol(self):
        with lightws.connect(self.url(), protocols=["x", "superchat"]) as ws:
            self.assertEqual(ws.subprotocol, "superchat")
            self.assertEqual(ws.response.protocol, "superchat")


class TestWebsocketsServerRole(ServerRole, unittest.TestCase):
    def client_argv(self, url):
        return [sys.executable, os.path.join(HERE, "peer_websockets.py"), "client", url]


class TestNodeClientRole(ClientRole, unittest.TestCase):
    def server_argv(self):
        return [node(), os.path.join(HERE, "peer_node.js"), "server"]

    def env(self):
        return node_env()

    def test_subprotocol(self):
        with lightws.connect(self.url(), protocols="x, chat") as ws:
            self.assertEqual(ws.subprotocol, "chat")


class TestNodeServerRole(ServerRole, unittest.TestCase):
    def client_argv(self, url):
        return [node(), os.path.join(HERE, "peer_node.js"), "client", url]

    def env(self):
        return node_env()


class TestPythonEchoClientRole(ClientRole, unittest.TestCase):
    """`python -m lightws.echo` as the server."""

    def server_argv(self):
        return [sys.executable, "-m", "lightws.echo", "--host", "127.0.0.1", "--port", "0"]


class TestPythonEchoServerRole(ServerRole, unittest.TestCase):
    """`python -m lightws.echo --client` as the echo client."""

    prints_close = False

    def client_argv(self, url):
        return [sys.executable, "-m", "lightws.echo", "--client", url]


if __name__ == "__main__":
    unittest.main()
