# SPDX-License-Identifier: MIT
"""connect() and accept() over loopback: URL handling, subprotocols,
headers, rejected requests with the HTTP status on the wire, bad
responses, bytes pipelined after the handshake, timeouts."""

import http.client
import io
import socket
import time
import types
import unittest

from websockets.datastructures import Headers as WsHeaders

import lightws
from lightws import codec, Opcode

from _helpers import frame, in_thread, loopback_server, read_frame

KEY = b"\x0a\x0b\x0c\x0d"


def http_head(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


class TestConnectAccept(unittest.TestCase):
    def setUp(self):
        self.srv, self.port = loopback_server()
        self.srv.settimeout(10)

    def tearDown(self):
        self.srv.close()

    def serve(self, **kw):
        def run():
            conn, _ = self.srv.accept()
            return lightws.accept(conn, timeout=10, **kw)
        return in_thread(run)

    def test_url_path_query_and_headers(self):
        join = self.serve(headers=[("X-Server", "yes")])
        ws = lightws.connect(f"ws://127.0.0.1:{self.port}/a/b?c=d&e", timeout=10,
                             origin="http://example.org", headers=[("X-Client", "1")])
        srv = join()
        self.assertEqual(srv.path, "/a/b?c=d&e")
        self.assertEqual(srv.request.host, f"127.0.0.1:{self.port}")
        self.assertEqual(srv.request.origin, "http://example.org")
        self.assertEqual(srv.request.header("x-client"), "1")
        self.assertEqual(ws.response.header("X-Server"), "yes")
        self.assertIsNone(ws.subprotocol)
        ws.send("hi")
        self.assertEqual(srv.recv(), "hi")
        srv.send(b"back")
        self.assertEqual(ws.recv(), b"back")
        ws.close_timeout = srv.close_timeout = 2
        join_c = in_thread(ws.close)
        with self.assertRaises(lightws.ConnectionClosedOK):
            srv.recv()
        srv.close()
        join_c()

    def test_subprotocol_client_preference(self):
        join = self.serve(protocols=["a", "b"])
        ws = lightws.connect(f"ws://127.0.0.1:{self.port}/", protocols=["c", "b", "a"])
        srv = join()
        self.assertEqual((ws.subprotocol, srv.subprotocol), ("b", "b"))
        self.assertEqual(srv.request.protocols, ["c", "b", "a"])
        ws._release(), srv._release()

    def test_select_subprotocol_callback(self):
        join = self.serve(select_subprotocol=lambda req: req.protocols[-1])
        ws = lightws.connect(f"ws://127.0.0.1:{self.port}/", protocols="x, y")
        self.assertEqual(ws.subprotocol, "y")
        join()._release(), ws._release()

    def test_no_common_subprotocol(self):
        join = self.serve(protocols=["z"])
        ws = lightws.connect(f"ws://127.0.0.1:{self.port}/", protocols="x")
        self.assertIsNone(ws.subprotocol)
        join()._release(), ws._release()

    def test_existing_socket_and_int_fd(self):
        class HasFileno:
            def __init__(self, sock):
                self.sock = sock
                self.closed = False

            def fileno(self):
                return self.sock.fileno()

            def close(self):
                self.closed = True
                self.sock.close()

        for kind in ("socket", "fd", "fileno"):
            with self.subTest(kind=kind):
                join = self.serve()
                sock = socket.create_connection(("127.0.0.1", self.port))
                target = {"socket": sock, "fileno": HasFileno(sock)}.get(kind) or sock.detach()
                ws = lightws.connect(target, host="example.com", path="/p")
                srv = join()
                self.assertEqual((srv.request.host, srv.path), ("example.com", "/p"))
                ws.send(b"x")
                self.assertEqual(srv.recv(), b"x")
                ws._release(), srv._release()
                if kind == "fileno":
                    self.assertTrue(target.closed)   # close() reached the owner

    def test_rejects_bad_request_with_status(self):
        cases = [
            (b"POST / HTTP/1.1\r\nHost: h\r\n\r\n", 405, "HTTP_METHOD"),
            (codec.build_request("h", "/").replace(b"Version: 13", b"Version: 7"), 426, "BAD_VERSION"),
            (b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\n\r\n", 400, "NO_UPGRADE"),
        ]
        for request, status, name in cases:
            with self.subTest(name=name):
                raw = socket.create_connection(("127.0.0.1", self.port))
                raw.settimeout(5)
                conn, _ = self.srv.accept()
                raw.sendall(request)
                with self.assertRaises(lightws.HandshakeError) as cm:
                    lightws.accept(conn, timeout=5)
                self.assertEqual((cm.exception.status, cm.exception.errname), (status, name))
                head = http_head(raw)
                self.assertTrue(head.startswith(f"HTTP/1.1 {status} ".encode()), head)
                if status == 426:
                    self.assertIn(b"Sec-WebSocket-Version: 13", head)
                self.assertEqual(conn.fileno(), -1)        # accept() closed it
                raw.close()

    def test_client_sees_http_error_status(self):
        def fake_server():
            conn, _ = self.srv.accept()
            http_head(conn)
            conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            time.sleep(0.2)
            conn.close()
        join = in_thread(fake_server)
        with self.assertRaises(lightws.HandshakeError) as cm:
            lightws.connect(f"ws://127.0.0.1:{self.port}/missing", timeout=5)
        self.assertEqual((cm.exception.errname, cm.exception.status), ("BAD_STATUS", 404))
        join()

    def test_client_checks_accept_key(self):
        def fake_server():
            conn, _ = self.srv.accept()
            http_head(conn)
            conn.sendall(codec.build_response(codec.new_key()))   # wrong key
            time.sleep(0.2)
            conn.close()
        join = in_thread(fake_server)
        with self.assertRaises(lightws.HandshakeError) as cm:
            lightws.connect(f"ws://127.0.0.1:{self.port}/", timeout=5)
        self.assertEqual(cm.exception.errname, "BAD_ACCEPT")
        join()

    def test_first_frame_in_the_same_packet_as_the_request(self):
        raw = socket.create_connection(("127.0.0.1", self.port))
        raw.settimeout(5)
        conn, _ = self.srv.accept()
        req = codec.build_request("h", "/", key="dGhlIHNhbXBsZSBub25jZQ==")
        raw.sendall(req + frame(Opcode.TEXT, b"early", mask=KEY))
        ws = lightws.accept(conn, timeout=5)
        head = http_head(raw)
        self.assertIn(b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", head)
        self.assertEqual(ws.recv(), "early")
        ws._release(), raw.close()

    def test_first_frame_in_the_same_packet_as_the_response(self):
        def fake_server():
            conn, _ = self.srv.accept()
            req = codec.parse_request(http_head(conn))
            conn.sendall(codec.build_response(req.key) + frame(Opcode.BINARY, b"early"))
            read_frame(conn)
            conn.close()
        join = in_thread(fake_server)
        ws = lightws.connect(f"ws://127.0.0.1:{self.port}/", timeout=5)
        self.assertEqual(ws.recv(), b"early")
        ws.send("done")
        join()
        ws._release()

    def test_request_and_response_byte_at_a_time(self):
        raw = socket.create_connection(("127.0.0.1", self.port))
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        raw.settimeout(5)
        conn, _ = self.srv.accept()
        req = codec.build_request("h", "/slow", key="dGhlIHNhbXBsZSBub25jZQ==")

        def dribble():
            for i in range(len(req)):
                raw.send(req[i:i + 1])
                time.sleep(0.001)
        join = in_thread(dribble)
        ws = lightws.accept(conn, timeout=10)
        join()
        self.assertEqual(ws.path, "/slow")
        self.assertIn(b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", http_head(raw))
        ws._release(), raw.close()

        def slow_server():
            c, _ = self.srv.accept()
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            r = codec.parse_request(http_head(c))
            resp = codec.build_response(r.key) + frame(Opcode.TEXT, b"after")
            for i in range(len(resp)):
                c.send(resp[i:i + 1])
                time.sleep(0.001)
            time.sleep(0.2)
            c.close()
        join = in_thread(slow_server)
        ws = lightws.connect(f"ws://127.0.0.1:{self.port}/", timeout=10)
        self.assertEqual(ws.recv(), "after")
        join()
        ws._release()

    def test_handshake_timeout(self):
        t0 = time.monotonic()
        with self.assertRaises(socket.timeout):
            lightws.connect(f"ws://127.0.0.1:{self.port}/", timeout=0.2)
        self.assertLess(time.monotonic() - t0, 2)

    def test_eof_during_handshake(self):
        def fake_server():
            conn, _ = self.srv.accept()
            http_head(conn)
            conn.close()
        join = in_thread(fake_server)
        with self.assertRaises(lightws.HandshakeError) as cm:
            lightws.connect(f"ws://127.0.0.1:{self.port}/", timeout=5)
        self.assertEqual(cm.exception.errname, "EOF")
        join()


# Headers as users write them (issue 13 item 10): one helper turns each of
# these into (name, value) pairs, and rejects anything else at the call.
def header_forms():
    msg = http.client.parse_headers(io.BytesIO(
        b"Authorization: Bearer t0k\r\nX-Multi: 1\r\nX-Multi: 2\r\n\r\n"))
    return [
        ("dict", {"Authorization": "Bearer t0k", "ID": "12345"},
         [("Authorization", "Bearer t0k"), ("ID", "12345")]),
        ("mapping proxy", types.MappingProxyType({"ID": "12345"}), [("ID", "12345")]),
        ("list of pairs", [("X-Multi", "1"), ("X-Multi", "2")],
         [("X-Multi", "1"), ("X-Multi", "2")]),
        ("generator", ((k, v) for k, v in [("ID", "12345")]), [("ID", "12345")]),
        ("HTTPMessage", msg,
         [("Authorization", "Bearer t0k"), ("X-Multi", "1"), ("X-Multi", "2")]),
        # a multidict whose items() refuses repeated names: raw_items() is used
        ("websockets Headers", WsHeaders([("X-Multi", "1"), ("X-Multi", "2")]),
         [("X-Multi", "1"), ("X-Multi", "2")]),
    ]


BAD_HEADERS = ["Authorization: x", b"ID: 1", 5, [("ID",)], [("ID", "1", "2")],
               [("ID", 12345)], {"ID": 12345}, {b"ID": "1"}, ["ID"], [None]]


class TestHeaderArguments(unittest.TestCase):
    def setUp(self):
        self.srv, self.port = loopback_server()
        self.srv.settimeout(10)

    def tearDown(self):
        self.srv.close()

    def test_client_and_server_headers_in_every_form(self):
        for name, client_headers, want in header_forms():
            with self.subTest(name):
                def run():
                    conn, _ = self.srv.accept()
                    return lightws.accept(conn, timeout=10, headers={"X-Server": "yes"})
                join = in_thread(run)
                ws = lightws.connect(f"ws://127.0.0.1:{self.port}/", timeout=10,
                                     headers=client_headers)
                srv = join()
                sent = [(n, v) for n, v in srv.request.headers
                        if n in ("Authorization", "ID", "X-Multi")]
                self.assertEqual(sent, want)
                self.assertEqual(ws.response.header("X-Server"), "yes")
                ws._release(), srv._release()

    def test_server_headers_in_every_form(self):
        for name, server_headers, want in header_forms():
            with self.subTest(name):
                def run(h=server_headers):
                    conn, _ = self.srv.accept()
                    return lightws.accept(conn, timeout=10, headers=h)
                join = in_thread(run)
                ws = lightws.connect(f"ws://127.0.0.1:{self.port}/", timeout=10)
                srv = join()
                got = [(n, v) for n, v in ws.response.headers
                       if n in ("Authorization", "ID", "X-Multi")]
                self.assertEqual(got, want)
                ws._release(), srv._release()

    def test_bad_headers_raise_type_error_before_connecting(self):
        self.srv.setblocking(False)
        url = f"ws://127.0.0.1:{self.port}/"
        for bad in BAD_HEADERS:
            with self.subTest(bad=bad):
                with self.assertRaises(TypeError):
                    lightws.connect(url, timeout=2, headers=bad)
                with self.assertRaises(TypeError):
                    codec.build_request("h", "/", headers=bad)
        time.sleep(0.1)
        with self.assertRaises(BlockingIOError):
            self.srv.accept()                # no connection was made

    def test_accept_rejects_bad_headers_before_reading_the_request(self):
        for bad in BAD_HEADERS:
            with self.subTest(bad=bad):
                a, b = socket.socketpair()
                with self.assertRaises(TypeError):
                    lightws.accept(a, timeout=2, headers=bad)
                a.close(), b.close()


class TestUrls(unittest.TestCase):
    def test_parse_url(self):
        self.assertEqual(lightws.parse_url("ws://h/"), ("h", 80, "h", "/"))
        self.assertEqual(lightws.parse_url("ws://h:8080"), ("h", 8080, "h:8080", "/"))
        self.assertEqual(lightws.parse_url("ws://[::1]:9/p?q"), ("::1", 9, "[::1]:9", "/p?q"))
        self.assertEqual(lightws.parse_url("wss://h/x"), ("h", 443, "h", "/x"))
        self.assertEqual(lightws.parse_url("wss://h:8443"), ("h", 8443, "h:8443", "/"))
        for bad in ("http://h/", "ws:///x"):
            with self.assertRaises(lightws.InvalidUsage):
                lightws.parse_url(bad)

    def test_bad_ports_and_hosts_are_invalid_usage(self):
        # urlsplit raises a bare ValueError for these (or, for port 0,
        # nothing: "or default" made it 80)
        for bad in ("ws://127.0.0.1:111661/", "ws://h:65536/", "ws://h:abc/",
                    "ws://h:-1/", "ws://h:0/", "ws://[::1/"):
            with self.subTest(bad=bad):
                with self.assertRaises(lightws.InvalidUsage):
                    lightws.parse_url(bad)
                with self.assertRaises(lightws.InvalidUsage):
                    lightws.connect(bad, timeout=2)
        self.assertEqual(lightws.parse_url("ws://h:65535/")[1], 65535)


if __name__ == "__main__":
    unittest.main()
