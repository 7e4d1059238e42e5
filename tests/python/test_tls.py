# SPDX-License-Identifier: MIT
"""wss: the C stream over Python's ssl (lightws_io callbacks and memory
BIOs), both roles, against lightws itself, python3-websockets and node ws,
blocking, nonblocking and asyncio. tls/cert.pem is a self-signed
certificate for localhost and 127.0.0.1 (tls/key.pem its key)."""

import asyncio
import os
import socket
import ssl
import subprocess
import sys
import time
import unittest

import lightws
import lightws.asyncio as lwa

from _helpers import Listener, Proc, in_thread, node, node_env
from test_interop import exercise

HERE = os.path.dirname(os.path.abspath(__file__))
TLS_DIR = os.path.join(HERE, "tls")
CERT = os.path.join(TLS_DIR, "cert.pem")
KEY = os.path.join(TLS_DIR, "key.pem")


def server_ctx():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(CERT, KEY)
    return ctx


def client_ctx():
    return ssl.create_default_context(cafile=CERT)


class TestTlsLightws(Listener, unittest.TestCase):
    def serve_echo(self):
        def run():
            conn, _ = self.srv.accept()
            with lightws.accept(conn, ssl=server_ctx(), timeout=20) as ws:
                for m in ws:
                    ws.send(m)
            return ws.path
        return in_thread(run)

    def test_both_roles(self):
        join = self.serve_echo()
        with lightws.connect(f"wss://localhost:{self.port}/secure?x", ssl=client_ctx(),
                             timeout=20) as ws:
            exercise(self, ws)
        self.assertEqual(ws.close_code, 1000)
        self.assertEqual(join(), "/secure?x")

    def test_nonblocking_client(self):
        join = self.serve_echo()
        ws = lightws.connect(f"wss://127.0.0.1:{self.port}/", ssl=client_ctx(), timeout=0)
        big = os.urandom(300000)
        ws.send(big)                      # taken; ciphertext may be queued
        got = None
        deadline = time.monotonic() + 10
        while got is None and time.monotonic() < deadline:
            try:
                ws.flush()
            except BlockingIOError:
                pass
            try:
                got = ws.recv()
            except BlockingIOError:
                time.sleep(0.001)
        self.assertEqual(got, big)
        ws.settimeout(10)
        ws.close()
        join()

    def test_existing_socket_with_host(self):
        join = self.serve_echo()
        sock = socket.create_connection(("127.0.0.1", self.port))
        with lightws.connect(sock, host=f"localhost:{self.port}", path="/s",
                             ssl=client_ctx(), timeout=10) as ws:
            ws.send("over a given socket")
            self.assertEqual(ws.recv(), "over a given socket")
        self.assertEqual(join(), "/s")

    def test_untrusted_certificate_fails(self):
        def run():
            conn, _ = self.srv.accept()
            try:
                lightws.accept(conn, ssl=server_ctx(), timeout=5)
            except (OSError, lightws.WebSocketError):
                pass
        join = in_thread(run)
        with self.assertRaises(ssl.SSLCertVerificationError):
            lightws.connect(f"wss://localhost:{self.port}/", ssl=ssl.create_default_context(),
                            timeout=5)
        join()

    def test_wrong_hostname_fails(self):
        def run():
            conn, _ = self.srv.accept()
            try:
                lightws.accept(conn, ssl=server_ctx(), timeout=5)
            except (OSError, lightws.WebSocketError):
                pass
        join = in_thread(run)
        with self.assertRaises(ssl.SSLCertVerificationError):
            lightws.connect(f"ws://127.0.0.1:{self.port}/", ssl=client_ctx(),
                            server_hostname="example.com", timeout=5)
        join()


class TestTlsPeers(unittest.TestCase):
    def client_role(self, argv, env=None):
        srv = Proc(argv, env=env)
        try:
            with lightws.connect(f"wss://localhost:{srv.port}/", ssl=client_ctx(),
                                 timeout=20) as ws:
                exercise(self, ws)
            self.assertEqual(ws.close_code, 1000)
        finally:
            srv.stop()

    def server_role(self, argv_for_url, env=None):
        srv = socket.create_server(("127.0.0.1", 0))
        port = srv.getsockname()[1]
        p = subprocess.Popen(argv_for_url(f"wss://localhost:{port}/peer"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            srv.settimeout(10)
            conn, _ = srv.accept()
            ws = lightws.accept(conn, ssl=server_ctx(), timeout=20)
            exercise(self, ws)
            ws.close(1000, "bye")
            out, err = p.communicate(timeout=20)
        finally:
            srv.close()
            if p.poll() is None:
                p.kill()
                p.communicate()
        self.assertEqual(p.returncode, 0, err)
        self.assertIn("closed 1000", out)

    def test_websockets_server(self):
        self.client_role([sys.executable, os.path.join(HERE, "peer_websockets.py"),
                          "server", TLS_DIR])

    def test_websockets_client(self):
        self.server_role(lambda url: [sys.executable, os.path.join(HERE, "peer_websockets.py"),
                                      "client", url, CERT])

    def test_node_server(self):
        self.client_role([node(), os.path.join(HERE, "peer_node.js"), "server", TLS_DIR],
                         node_env())

    def test_node_client(self):
        self.server_role(lambda url: [node(), os.path.join(HERE, "peer_node.js"),
                                      "client", url, CERT], node_env())


class TestTlsAsyncio(unittest.IsolatedAsyncioTestCase):
    async def test_serve_and_connect(self):
        async def echo(ws):
            async for m in ws:
                await ws.send(m)

        server = await lwa.serve(echo, "127.0.0.1", 0, ssl=server_ctx())
        async with server:
            async with await lwa.connect(f"wss://localhost:{server.port}/", ssl=client_ctx()) as ws:
                for msg in ["tls", b"\x00" * 200000, ""]:
                    await ws.send(msg)
                    self.assertEqual(await ws.recv(), msg)
                await ws.send_many(["a", b"b"])
                self.assertEqual([await ws.recv(), await ws.recv()], ["a", b"b"])
            self.assertEqual(ws.close_code, 1000)

    async def test_concurrent_reader_and_writer(self):
        async def echo(ws):
            async for m in ws:
                await ws.send(m)

        server = await lwa.serve(echo, "127.0.0.1", 0, ssl=server_ctx())
        async with server:
            ws = await lwa.connect(f"wss://127.0.0.1:{server.port}/", ssl=client_ctx())
            payloads = [os.urandom(i * 3000) for i in range(40)]

            async def writer():
                for p in payloads:
                    await ws.send(p)

            async def reader():
                return [await ws.recv() for _ in payloads]

            _, got = await asyncio.wait_for(asyncio.gather(writer(), reader()), 30)
            self.assertEqual(got, payloads)
            await ws.close()


if __name__ == "__main__":
    unittest.main()
