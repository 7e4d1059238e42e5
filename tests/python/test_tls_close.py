# SPDX-License-Identifier: MIT
"""wss ends with TLS close_notify after the websocket close handshake
(RFC 5246 §7.2.1, RFC 8446 §6.1), in both roles, blocking and asyncio.

The peer here is Python's own TLS socket, made strict: without
OP_IGNORE_UNEXPECTED_EOF (set by default since Python 3.10) and with
suppress_ragged_eofs=False, a TCP end without close_notify raises
SSLError ("unexpected eof while reading"), so recv() returning b"" proves
the alert arrived. The websocket side of that peer is
written out by hand (request, 101, close frames) to keep it exact."""

import asyncio
import base64
import hashlib
import os
import socket
import ssl
import unittest

import lightws
import lightws.asyncio as lwa

from _helpers import Listener, in_thread
from test_tls import client_ctx, server_ctx

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CLOSE_1000 = b"\x88\x02\x03\xe8"        # unmasked close frame, code 1000


def strict(ctx):
    """The raw peer's context: a missing close_notify is an error."""
    ctx.options &= ~getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
    return ctx


def read_exact(tls, n):
    out = b""
    while len(out) < n:
        d = tls.recv(n - len(out))
        if not d:
            raise AssertionError("EOF after %r" % out)
        out += d
    return out


def read_head(tls):
    out = b""
    while not out.endswith(b"\r\n\r\n"):
        d = tls.recv(1)
        if not d:
            raise AssertionError("EOF in the HTTP head %r" % out)
        out += d
    return out.decode("latin-1")


def send_upgrade(tls):
    key = base64.b64encode(os.urandom(16)).decode()
    tls.sendall(("GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n" % key).encode())


def masked_close_1000():
    key = os.urandom(4)
    return b"\x88\x82" + key + bytes(b ^ key[i] for i, b in enumerate(b"\x03\xe8"))


def assert_clean_tls_eof(test, tls):
    """The next read is the end of the stream, announced by close_notify."""
    tls.settimeout(10)
    try:
        test.assertEqual(tls.recv(4096), b"")
    except ssl.SSLError as e:
        test.fail("TCP ended without TLS close_notify: %s" % e)


def raw_tls_client(test, port):
    """Handshake, close 1000 from us, the echoed close, then the TLS end."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    tls = strict(client_ctx()).wrap_socket(sock, server_hostname="localhost",
                                           suppress_ragged_eofs=False)
    try:
        send_upgrade(tls)
        head = read_head(tls)
        test.assertTrue(head.startswith("HTTP/1.1 101"), head)
        tls.sendall(masked_close_1000())
        test.assertEqual(read_exact(tls, 4), CLOSE_1000)
        assert_clean_tls_eof(test, tls)
    finally:
        tls.close()


class TestTlsCloseNotify(Listener, unittest.TestCase):
    def test_server_sends_close_notify(self):
        def run():
            conn, _ = self.srv.accept()
            with lightws.accept(conn, ssl=server_ctx(), timeout=10) as ws:
                with self.assertRaises(lightws.ConnectionClosedOK):
                    ws.recv()
            return ws.close_code
        join = in_thread(run)
        raw_tls_client(self, self.port)
        self.assertEqual(join(), 1000)

    def test_client_sends_close_notify(self):
        def run():
            conn, _ = self.srv.accept()
            tls = strict(server_ctx()).wrap_socket(conn, server_side=True,
                                                   suppress_ragged_eofs=False)
            try:
                tls.settimeout(10)
                head = read_head(tls)
                key = [ln.split(":", 1)[1].strip() for ln in head.split("\r\n")
                       if ln.lower().startswith("sec-websocket-key:")][0]
                accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest())
                tls.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept +
                            b"\r\n\r\n")
                close = read_exact(tls, 8)      # masked close, code 1000
                self.assertEqual(close[:2], b"\x88\x82")
                self.assertEqual(bytes(b ^ close[2 + i] for i, b in enumerate(close[6:])),
                                 b"\x03\xe8")
                tls.sendall(CLOSE_1000)
                assert_clean_tls_eof(self, tls)
            finally:
                tls.close()     # §7.1.1: the server ends TCP
        join = in_thread(run)
        ws = lightws.connect(f"wss://localhost:{self.port}/", ssl=client_ctx(), timeout=10)
        ws.close()
        self.assertEqual(ws.close_code, 1000)
        join()

    def test_protocol_error_over_tls_does_not_hang(self):
        # A protocol error is not a clean end (§7.1.7): the close frame
        # 1002 goes out and the connection ends, without waiting on TLS.
        def run():
            conn, _ = self.srv.accept()
            with lightws.accept(conn, ssl=server_ctx(), timeout=10) as ws:
                with self.assertRaises(lightws.ProtocolError):
                    ws.recv()
        join = in_thread(run)
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        tls = client_ctx().wrap_socket(sock, server_hostname="localhost")
        try:
            send_upgrade(tls)
            read_head(tls)
            tls.sendall(b"\x81\x00")            # unmasked from a client: §5.1
            self.assertEqual(read_exact(tls, 4), b"\x88\x02\x03\xea")   # 1002
        finally:
            tls.close()
        join()


class TestTlsCloseNotifyAsyncio(unittest.IsolatedAsyncioTestCase):
    async def test_asyncio_server_sends_close_notify(self):
        async def handler(ws):
            async for _ in ws:
                pass

        server = await lwa.serve(handler, "127.0.0.1", 0, ssl=server_ctx())
        async with server:
            await asyncio.get_running_loop().run_in_executor(
                None, raw_tls_client, self, server.port)


if __name__ == "__main__":
    unittest.main()
