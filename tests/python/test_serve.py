# SPDX-License-Identifier: MIT
"""lightws.serve(): the blocking, thread-per-connection server, over
loopback TCP (and an AF_UNIX socket) with lightws, python3-websockets and
raw-socket clients: echo of text, binary and 1 MiB messages, concurrent
clients, subprotocols, close codes 1000 / 1001 / 1011 (RFC 6455 §7.4.1),
rejected handshakes (§4.2.1), shutdown() and the handshake timeout."""

import asyncio
import contextlib
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import lightws

from _helpers import in_thread, read_head
from test_tls import client_ctx, server_ctx


def echo(ws):
    for message in ws:
        ws.send(message)


@contextlib.contextmanager
def raw_upgrade(port):
    """A raw socket that sent the sample request of RFC 6455 §1.3 and
    read the response head (a byte at a time: nothing past it)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\n"
                  b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  b"Sec-WebSocket-Version: 13\r\n\r\n")
        yield s, read_head(s)


def wait_no_connections(server, timeout=5.0):
    """Until the server's handler threads have all finished (bounded)."""
    deadline = time.monotonic() + timeout
    while server.connections and time.monotonic() < deadline:
        time.sleep(0.01)


class Running:
    """serve() plus serve_forever() in a thread; stop() is Server.close()
    and checks that serve_forever() returned."""

    def __init__(self, handler, **kw):
        self.server = lightws.serve(handler, "127.0.0.1", 0, **kw)
        self.port = self.server.port
        self.url = f"ws://127.0.0.1:{self.port}"
        self.join = in_thread(self.server.serve_forever)

    def stop(self):
        self.server.close()
        self.join(5)


class ServeCase(unittest.TestCase):
    def run_server(self, handler, **kw):
        r = Running(handler, **kw)
        self.addCleanup(r.stop)
        return r


class TestEcho(ServeCase):
    def test_text_binary_and_large(self):
        r = self.run_server(echo)
        with lightws.connect(r.url + "/echo", timeout=10) as ws:
            for msg in ["hello", "", "ünïcödé \U0001F600", b"\x00\x01\xff", b"",
                        os.urandom(70000)]:
                ws.send(msg)
                self.assertEqual(ws.recv(), msg)
            big = os.urandom(1 << 20)
            ws.send(big)
            self.assertEqual(ws.recv(), big)
            ws.send("x" * (1 << 20))
            self.assertEqual(ws.recv(), "x" * (1 << 20))
        # The client closed first (1000); the server answered it.
        self.assertEqual(ws.close_code, 1000)

    def test_twenty_concurrent_clients(self):
        # Each handler waits until all 20 run at once: one thread each.
        handlers = threading.Barrier(20)
        seen = []

        def handler(ws):
            t = threading.current_thread()
            seen.append((t.daemon, t.name.startswith("lightws-conn-127.0.0.1:")))
            handlers.wait(10)
            echo(ws)

        r = self.run_server(handler)
        start = threading.Barrier(20)

        def client(i):
            with lightws.connect(f"{r.url}/c{i}", timeout=20) as ws:
                start.wait(10)          # all 20 connected at the same time
                for j in range(30):
                    msg = f"client {i} message {j}"
                    ws.send(msg)
                    self.assertEqual(ws.recv(), msg)
                blob = bytes([i]) * (100000 + i)
                ws.send(blob)
                self.assertEqual(ws.recv(), blob)
            return ws.close_code

        joins = [in_thread(client, i) for i in range(20)]
        self.assertEqual([j(30) for j in joins], [1000] * 20)
        self.assertEqual(seen, [(True, True)] * 20)

    def test_request_seen_by_handler_and_response_headers(self):
        def handler(ws):
            ws.send(ws.path)
            ws.send(ws.request.header("X-Client") or "none")
            ws.send(repr(ws.gettimeout()))
            ws.recv()

        r = self.run_server(handler, headers=[("X-Server", "lightws")], timeout=7.5)
        with lightws.connect(r.url + "/p?q=1", headers=[("X-Client", "abc")],
                             timeout=10) as ws:
            self.assertEqual(ws.response.header("x-server"), "lightws")
            self.assertEqual(ws.recv(), "/p?q=1")
            self.assertEqual(ws.recv(), "abc")
            self.assertEqual(ws.recv(), "7.5")
            ws.send("done")

    def test_response_headers_as_a_dict(self):
        # a dict failed every handshake (its keys were unpacked as pairs)
        def handler(ws):
            ws.send(ws.request.header("Authorization") or "none")
            ws.recv()

        r = self.run_server(handler, headers={"X-Server": "lightws", "ID": "12345"})
        with lightws.connect(r.url, headers={"Authorization": "Bearer t0k"},
                             timeout=10) as ws:
            self.assertEqual(ws.response.header("X-Server"), "lightws")
            self.assertEqual(ws.response.header("ID"), "12345")
            self.assertEqual(ws.recv(), "Bearer t0k")
            ws.send("done")

    def test_bad_headers_fail_at_serve(self):
        for bad in ("X-Server: lightws", b"X: y", [("X",)], {"X": 1}, 7):
            with self.subTest(bad=bad):
                with self.assertRaises(TypeError):
                    lightws.serve(echo, "127.0.0.1", 0, headers=bad)
        for bad in ({"X": "a\r\nInjected: 1"}, {"Bad Name": "x"}, {"X": "\u20ac"}):
            with self.subTest(bad=bad):
                with self.assertRaises(ValueError):
                    lightws.serve(echo, "127.0.0.1", 0, headers=bad)

    def test_exports(self):
        self.assertIn("serve", lightws.__all__)
        self.assertIn("Server", lightws.__all__)
        self.assertIs(lightws.serve, lightws.server.serve)

    def test_unknown_option_fails_at_serve(self):
        with self.assertRaises(TypeError):
            lightws.serve(echo, "127.0.0.1", 0, no_such_option=1)
        with self.assertRaises(ValueError):
            lightws.serve(echo, "127.0.0.1", 0, open_timeout=0)
        with self.assertRaises(TypeError):
            lightws.serve("not callable", "127.0.0.1", 0)


class TestSubprotocol(ServeCase):
    def handler(self, ws):
        ws.send(repr(ws.subprotocol))
        ws.recv()

    def test_client_preference_order(self):
        # §4.2.2: the first of the client's offers the server supports.
        r = self.run_server(self.handler, protocols=["chat", "superchat"])
        with lightws.connect(r.url, protocols=["superchat", "chat"], timeout=10) as ws:
            self.assertEqual(ws.subprotocol, "superchat")
            self.assertEqual(ws.recv(), "'superchat'")
            ws.send("ok")
        with lightws.connect(r.url, protocols=["other", "chat"], timeout=10) as ws:
            self.assertEqual(ws.subprotocol, "chat")
            self.assertEqual(ws.recv(), "'chat'")
            ws.send("ok")
        with lightws.connect(r.url, protocols=["other"], timeout=10) as ws:
            self.assertIsNone(ws.subprotocol)
            self.assertIsNone(ws.response.header("Sec-WebSocket-Protocol"))
            self.assertEqual(ws.recv(), "None")
            ws.send("ok")

    def test_select_subprotocol(self):
        def select(request):
            return "b" if "b" in request.protocols else None

        r = self.run_server(self.handler, select_subprotocol=select)
        with lightws.connect(r.url, protocols=["a", "b"], timeout=10) as ws:
            self.assertEqual(ws.subprotocol, "b")
            self.assertEqual(ws.recv(), "'b'")
            ws.send("ok")


class TestCloseCodes(ServeCase):
    def test_handler_return_closes_1000(self):
        def handler(ws):
            ws.send("bye")

        r = self.run_server(handler)
        ws = lightws.connect(r.url, timeout=10)
        self.assertEqual(ws.recv(), "bye")
        with self.assertRaises(lightws.ConnectionClosedOK) as cm:
            ws.recv()
        self.assertEqual(cm.exception.code, 1000)
        self.assertEqual(ws.close_code, 1000)
        ws.close()

    def test_handler_exception_closes_1011_and_logs(self):
        def handler(ws):
            if ws.recv() == "boom":
                raise RuntimeError("handler bug")

        r = self.run_server(handler)
        with self.assertLogs("lightws.server", logging.ERROR) as logs:
            ws = lightws.connect(r.url, timeout=10)
            ws.send("boom")
            with self.assertRaises(lightws.ConnectionClosedError) as cm:
                ws.recv()
            ws.close()
        self.assertEqual(cm.exception.code, 1011)
        self.assertEqual(ws.close_code, 1011)
        self.assertEqual(ws.close_reason, "internal error")
        self.assertEqual(len(logs.records), 1)
        self.assertIn("connection handler failed", logs.output[0])
        self.assertEqual(logs.records[0].exc_info[0], RuntimeError)
        # The server goes on.
        with lightws.connect(r.url, timeout=10) as ws2:
            ws2.send("fine")

    def test_peer_close_is_not_an_error(self):
        # The handler's recv() raises ConnectionClosedOK when the client
        # closes: nothing is logged above DEBUG.
        def handler(ws):
            while True:
                ws.send(ws.recv())

        r = self.run_server(handler)
        with self.assertNoLogs("lightws.server", logging.INFO):
            with lightws.connect(r.url, timeout=10) as ws:
                ws.send("a")
                self.assertEqual(ws.recv(), "a")
            time.sleep(0.2)
        self.assertEqual(ws.close_code, 1000)

    def test_protocol_error_closes_1007_without_error_log(self):
        # §8.1: invalid UTF-8 in a text message fails the connection with
        # 1007; lightws sends it, the server only logs at debug level.
        r = self.run_server(echo)
        with self.assertNoLogs("lightws.server", logging.INFO):
            ws = lightws.connect(r.url, timeout=10)
            ws.send(b"\xff\xfe", opcode=lightws.Opcode.TEXT)
            with self.assertRaises(lightws.ConnectionClosedError) as cm:
                ws.recv()
            ws.close()
            wait_no_connections(r.server)
        self.assertEqual(cm.exception.code, 1007)

    def test_client_vanishing_is_not_an_error(self):
        # The handler's send() fails when the client resets the TCP
        # connection: logged at debug level, not as a handler failure.
        failed = threading.Event()

        def handler(ws):
            try:
                while True:
                    ws.send(b"x" * 65536)
            finally:
                failed.set()

        r = self.run_server(handler)
        with self.assertNoLogs("lightws.server", logging.INFO):
            with raw_upgrade(r.port) as (s, head):
                self.assertTrue(head.startswith(b"HTTP/1.1 101 "), head)
                self.assertTrue(s.recv(1000))
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                             struct.pack("ii", 1, 0))      # close() sends RST
            self.assertTrue(failed.wait(10))
            wait_no_connections(r.server)
        self.assertEqual(r.server.connections, 0)

    def test_context_exit_closes_live_connections_1001(self):
        entered = threading.Event()

        def handler(ws):
            entered.set()
            for m in ws:
                ws.send(m)

        server = lightws.serve(handler, "127.0.0.1", 0)
        with server:
            join = in_thread(server.serve_forever)
            ws = lightws.connect(f"ws://127.0.0.1:{server.port}/", timeout=10)
            ws.send("hi")
            self.assertEqual(ws.recv(), "hi")
            got = in_thread(ws.recv)      # reads (and answers) the server's close
            self.assertTrue(entered.wait(5))
            t0 = time.monotonic()
        self.assertLess(time.monotonic() - t0, 5)
        join(5)
        with self.assertRaises(lightws.ConnectionClosedOK) as cm:
            got(5)
        self.assertEqual(cm.exception.code, 1001)
        self.assertEqual(ws.close_reason, "server shutting down")
        ws.close()
        self.assertEqual(server.connections, 0)

    def test_close_ends_pending_handshakes_at_once(self):
        server = lightws.serve(echo, "127.0.0.1", 0, open_timeout=60)
        join = in_thread(server.serve_forever)
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        deadline = time.monotonic() + 5
        while server.connections == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertEqual(server.connections, 1)
        t0 = time.monotonic()
        server.close()
        self.assertLess(time.monotonic() - t0, 3)
        join(5)
        self.assertEqual(raw.recv(100), b"")      # the server closed it, no answer
        raw.close()


class TestShutdown(ServeCase):
    def test_shutdown_from_a_handler(self):
        box = {}

        def handler(ws):
            if ws.recv() == "stop":
                box["server"].shutdown()
                ws.send("stopping")
            ws.recv()

        server = lightws.serve(handler, "127.0.0.1", 0)
        box["server"] = server
        self.addCleanup(server.close)
        join = in_thread(server.serve_forever)
        with lightws.connect(f"ws://127.0.0.1:{server.port}/", timeout=10) as ws:
            ws.send("stop")
            self.assertEqual(ws.recv(), "stopping")
            join(5)                       # serve_forever() returned
            # The listener is gone; the live connection goes on.
            self.assertEqual(server.fileno(), -1)
            with self.assertRaises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", server.port), timeout=5)
            ws.send("last")
        self.assertEqual(ws.close_code, 1000)
        server.serve_forever()            # returns at once once shut down

    def test_shutdown_before_serve_forever_and_twice(self):
        server = lightws.serve(echo, "127.0.0.1", 0)
        server.shutdown()
        server.shutdown()
        server.serve_forever()
        server.close()
        self.assertEqual(server.fileno(), -1)

    def test_serve_forever_twice_at_once(self):
        r = self.run_server(echo)
        with lightws.connect(r.url, timeout=10) as ws:     # so it is serving
            ws.send("x")
            self.assertEqual(ws.recv(), "x")
        with self.assertRaises(RuntimeError):
            r.server.serve_forever()


SIGNAL_SCRIPT = r'''
import signal, sys, lightws

def echo(ws):
    for m in ws:
        ws.send(m)

if sys.argv[1] == "int":
    # What Python installs at startup, unless it inherited SIGINT ignored
    # (started in the background by a shell without job control, as a CI
    # runner may do): then Ctrl-C would do nothing at all.
    signal.signal(signal.SIGINT, signal.default_int_handler)

with lightws.serve(echo, "127.0.0.1", 0) as server:
    if sys.argv[1] == "term":
        signal.signal(signal.SIGTERM, lambda *a: server.shutdown())
    print(server.port, flush=True)
    server.serve_forever()
print("done", flush=True)
'''


class TestSignals(unittest.TestCase):
    """serve_forever() in the main thread of a real process: SIGTERM
    with a handler calling shutdown(), and Ctrl-C (KeyboardInterrupt);
    leaving the with block closes the live connection with 1001."""

    def run_until(self, mode, sig):
        p = subprocess.Popen([sys.executable, "-c", SIGNAL_SCRIPT, mode],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            port = int(p.stdout.readline())
            ws = lightws.connect(f"ws://127.0.0.1:{port}/", timeout=10)
            ws.send("before")
            self.assertEqual(ws.recv(), "before")
            t0 = time.monotonic()
            p.send_signal(sig)
            with self.assertRaises(lightws.ConnectionClosedOK) as cm:
                ws.recv()
            self.assertEqual(cm.exception.code, 1001)
            ws.close()
            out, err = p.communicate(timeout=10)
            self.assertLess(time.monotonic() - t0, 5)
            return p.returncode, out, err
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()

    def test_sigterm_handler_calls_shutdown(self):
        rc, out, err = self.run_until("term", signal.SIGTERM)
        self.assertEqual((rc, out, err), (0, "done\n", ""))

    def test_ctrl_c(self):
        rc, out, err = self.run_until("int", signal.SIGINT)
        self.assertNotEqual(rc, 0)
        self.assertIn("KeyboardInterrupt", err)
        self.assertEqual(out, "")


class TestHandshake(ServeCase):
    def raw_request(self, port, request):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(request)
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    return data
                data += chunk

    def test_plain_get_is_refused_and_server_goes_on(self):
        r = self.run_server(echo)
        with self.assertLogs("lightws.server", logging.DEBUG) as logs:
            answer = self.raw_request(r.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            deadline = time.monotonic() + 5
            while not logs.records and time.monotonic() < deadline:
                time.sleep(0.01)
        status = answer.split(b"\r\n", 1)[0]
        self.assertRegex(status, rb"^HTTP/1\.1 (400|426) ")
        self.assertEqual(logs.records[0].levelno, logging.DEBUG)
        self.assertIn("handshake failed", logs.output[0])
        # Wrong version: 426 with the version we speak (§4.4).
        answer = self.raw_request(
            r.port, b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 8\r\n\r\n")
        self.assertTrue(answer.startswith(b"HTTP/1.1 426 "), answer)
        self.assertIn(b"sec-websocket-version: 13", answer.lower())
        with lightws.connect(r.url, timeout=10) as ws:
            ws.send("still serving")
            self.assertEqual(ws.recv(), "still serving")

    def test_valid_upgrade_by_hand(self):
        # The 101 answer to the sample request of RFC 6455 §1.3.
        r = self.run_server(echo)
        with raw_upgrade(r.port) as (s, head):
            self.assertTrue(head.startswith(b"HTTP/1.1 101 "), head)
            self.assertIn(b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", head)
            # A masked "Hello" (§5.7) comes back unmasked.
            s.sendall(bytes.fromhex("818537fa213d7f9f4d5158"))
            got = b""
            while len(got) < 7:
                chunk = s.recv(7 - len(got))
                self.assertTrue(chunk)
                got += chunk
            self.assertEqual(got, bytes.fromhex("810548656c6c6f"))

    def test_open_timeout_drops_silent_clients(self):
        r = self.run_server(echo, open_timeout=0.3)
        with socket.create_connection(("127.0.0.1", r.port), timeout=10) as s:
            t0 = time.monotonic()
            # one attempt at 408 Request Timeout (as lightws_accept), then EOF
            got = b""
            while True:
                chunk = s.recv(100)
                if not chunk:
                    break
                got += chunk
            self.assertLess(time.monotonic() - t0, 5)
            self.assertTrue(got == b"" or got.startswith(b"HTTP/1.1 408 "), got)
        with lightws.connect(r.url, timeout=10) as ws:
            ws.send("ok")
            self.assertEqual(ws.recv(), "ok")


class TestTransports(ServeCase):
    def test_tls(self):
        r = self.run_server(echo, ssl=server_ctx())
        with lightws.connect(f"wss://localhost:{r.port}/secure", ssl=client_ctx(),
                             timeout=20) as ws:
            ws.send("over tls")
            self.assertEqual(ws.recv(), "over tls")
            big = os.urandom(1 << 20)
            ws.send(big)
            self.assertEqual(ws.recv(), big)
        self.assertEqual(ws.close_code, 1000)
        # A plain client against the TLS server fails; the server goes on.
        with self.assertRaises((OSError, lightws.WebSocketError)):
            lightws.connect(r.url, timeout=5)
        with lightws.connect(f"wss://127.0.0.1:{r.port}/", ssl=client_ctx(),
                             timeout=20) as ws:
            ws.send(b"\x01")
            self.assertEqual(ws.recv(), b"\x01")

    def test_unix_socket(self):
        path = os.path.join(tempfile.mkdtemp(prefix="lightws-"), "s")
        self.addCleanup(os.rmdir, os.path.dirname(path))
        self.addCleanup(os.unlink, path)
        lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        lsock.bind(path)
        lsock.listen()
        server = lightws.serve(lambda ws: ws.send(ws.path), sock=lsock)
        self.assertIsNone(server.port)
        self.assertEqual(server.address, path)
        join = in_thread(server.serve_forever)
        try:
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.connect(path)
            with lightws.connect(c, host="localhost", path="/unix", timeout=10) as ws:
                self.assertEqual(ws.recv(), "/unix")
                with self.assertRaises(lightws.ConnectionClosedOK):
                    ws.recv()
        finally:
            server.close()
        join(5)

    def test_python_websockets_client(self):
        import websockets
        r = self.run_server(echo, protocols=["chat"])
        big = os.urandom(1 << 20)
        try:
            from websockets.sync.client import connect as sync_connect   # websockets >= 11
        except ImportError:
            sync_connect = None
        if sync_connect is not None:
            with sync_connect(r.url + "/pyws", subprotocols=["chat"], max_size=None) as ws:
                proto = ws.subprotocol
                got = []
                for msg in ["hi", b"\x00\x01", big]:
                    ws.send(msg)
                    got.append(ws.recv())
            code = ws.close_code
        else:
            async def run():
                async with websockets.connect(r.url + "/pyws", subprotocols=["chat"],
                                              max_size=None) as ws:
                    out = []
                    for msg in ["hi", b"\x00\x01", big]:
                        await ws.send(msg)
                        out.append(await ws.recv())
                return ws.subprotocol, out, ws.close_code
            proto, got, code = asyncio.run(run())
        self.assertEqual(proto, "chat")
        self.assertEqual(got, ["hi", b"\x00\x01", big])
        self.assertEqual(code, 1000)


if __name__ == "__main__":
    unittest.main()
