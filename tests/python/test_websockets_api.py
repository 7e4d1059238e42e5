# SPDX-License-Identifier: MIT
"""lightws.asyncio with python websockets' (13+) API: connect()/serve() as
await, async with and async for; keyword names and defaults; connection
attributes; the exception hierarchy on each failure path; process_request,
origins, redirects; broadcast()."""

import asyncio
import http
import logging
import os
import re
import socket
import unittest
import uuid

import websockets

import lightws
import lightws.asyncio as lwa
from lightws import _compat

T = 10      # every wait of these tests is bounded by this many seconds


async def echo(ws):
    async for msg in ws:
        await ws.send(msg)


async def ws_echo(ws, path=None):       # python websockets (legacy API) handler
    async for msg in ws:
        await ws.send(msg)


async def raw_http(port, request):
    """Sends ``request`` bytes and reads the answer until EOF."""
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(request)
    data = await asyncio.wait_for(r.read(), T)
    w.close()
    return data


class TestOpen(unittest.IsolatedAsyncioTestCase):
    async def test_await_async_with_and_attributes(self):
        seen = {}

        async def handler(ws):
            seen.update(kind=type(ws).__name__, path=ws.request.path,
                        agent=ws.request.headers["User-Agent"],
                        extra=ws.request.headers.get("X-Extra"),
                        state=ws.state, sub=ws.subprotocol, remote=ws.remote_address,
                        status=ws.response.status_code,
                        server=ws.response.headers["Server"])
            await echo(ws)

        async with lwa.serve(handler, "127.0.0.1", 0, subprotocols=["chat"]) as server:
            self.assertIsInstance(server.port, int)
            self.assertEqual(server.sockets[0].getsockname()[1], server.port)
            uri = f"ws://127.0.0.1:{server.port}/room?x=1"
            async with lwa.connect(uri, subprotocols=["chat"],
                                   additional_headers={"X-Extra": "1"}) as ws:
                self.assertIsInstance(ws, lwa.ClientConnection)
                self.assertIsInstance(ws.id, uuid.UUID)
                self.assertIs(ws.state, lightws.State.OPEN)
                self.assertEqual(ws.subprotocol, "chat")
                self.assertEqual(ws.response.status_code, 101)
                self.assertEqual(ws.response.reason_phrase, "Switching Protocols")
                self.assertTrue(ws.response.headers["Server"].startswith("Python/"))
                self.assertEqual(ws.request.path, "/room?x=1")
                self.assertEqual(ws.local_address, ws._sock.getsockname())
                self.assertEqual(ws.remote_address[1], server.port)
                await ws.send("hi")
                self.assertEqual(await asyncio.wait_for(ws.recv(), T), "hi")
                self.assertEqual(len(server.connections), 1)
                self.assertIsInstance(next(iter(server.connections)), lwa.ServerConnection)
            self.assertIs(ws.state, lightws.State.CLOSED)
            self.assertEqual((ws.close_code, ws.close_reason), (1000, ""))
            ws2 = await lwa.connect(uri, extra_headers=[("X-Extra", "2")],
                                    user_agent_header=None)
            await ws2.close()
        self.assertEqual(seen["kind"], "ServerConnection")
        self.assertEqual((seen["path"], seen["extra"], seen["sub"], seen["status"]),
                         ("/room?x=1", "1", "chat", 101))
        self.assertTrue(seen["agent"].startswith("Python/") and "lightws/" in seen["agent"])
        self.assertIs(seen["state"], lightws.State.OPEN)
        self.assertEqual(seen["remote"], ws.local_address)

    async def test_keywords_checked_at_the_call(self):
        with self.assertRaises(TypeError):
            lwa.connect("ws://127.0.0.1:1/", headers={}, additional_headers={})
        with self.assertRaises(TypeError):
            lwa.connect("ws://127.0.0.1:1/", extensions=[object()])
        with self.assertRaises(TypeError):
            lwa.connect("ws://127.0.0.1:1/", no_such_option=1)
        with self.assertRaises(TypeError):
            lwa.serve(echo, "127.0.0.1", 0, no_such_option=1)
        with self.assertRaises(TypeError):
            lwa.connect("ws://127.0.0.1:1/", additional_headers="X: y")
        with self.assertRaises(lightws.InvalidURI) as cm:
            await lwa.connect("http://example.com/")
        self.assertEqual(cm.exception.uri, "http://example.com/")
        self.assertIsInstance(cm.exception, ValueError)

    async def test_defaults_as_websockets(self):
        async with lwa.serve(echo, "127.0.0.1", 0) as server:
            async with lwa.connect(f"ws://127.0.0.1:{server.port}/") as ws:
                self.assertEqual(ws.max_size, 2 ** 20)
                self.assertEqual((ws.ping_interval, ws.ping_timeout, ws.close_timeout),
                                 (20, 20, 10))
                self.assertEqual(ws.compression, "deflate")
                await ws.send(b"x" * (2 ** 20 + 1))     # over the server's 1 MiB
                with self.assertRaises(lightws.ConnectionClosedError) as cm:
                    await asyncio.wait_for(ws.recv(), T)
                self.assertEqual(cm.exception.code, 1009)
                self.assertEqual(cm.exception.rcvd.code, 1009)

    async def test_lightws_names_still_work(self):
        async with lwa.serve(echo, "127.0.0.1", 0, protocols=["a"],
                             headers={"X-S": "1"}, max_size=None) as server:
            async with await lwa.connect(f"ws://127.0.0.1:{server.port}/", protocols=["a"],
                                         headers={"X-C": "1"}) as ws:
                self.assertEqual((ws.subprotocol, ws.response.header("x-s")), ("a", "1"))

    async def test_open_timeout_and_invalid_message(self):
        lsock = socket.create_server(("127.0.0.1", 0))
        lsock.setblocking(False)
        port = lsock.getsockname()[1]
        accepted = []

        async def acceptor():
            loop = asyncio.get_running_loop()
            while True:
                c, _ = await loop.sock_accept(lsock)
                accepted.append(c)

        task = asyncio.create_task(acceptor())
        try:
            with self.assertRaises(TimeoutError):        # never answers
                await lwa.connect(f"ws://127.0.0.1:{port}/", open_timeout=0.3)
            task.cancel()
            loop = asyncio.get_running_loop()

            async def close_at_once():
                c, _ = await loop.sock_accept(lsock)
                await loop.sock_recv(c, 4096)
                c.close()
            t2 = asyncio.create_task(close_at_once())
            with self.assertRaises(lightws.InvalidMessage):
                await lwa.connect(f"ws://127.0.0.1:{port}/", open_timeout=T)
            await t2
        finally:
            task.cancel()
            for c in accepted:
                c.close()
            lsock.close()


class TestKeywords(unittest.IsolatedAsyncioTestCase):
    async def test_timeouts_queue_logger_and_headers_reach_the_connection(self):
        seen = {}
        log = logging.getLogger("test.lightws.server")

        async def handler(ws):
            seen.update(logger=ws.logger, ping=(ws.ping_interval, ws.ping_timeout),
                        close=ws.close_timeout, limit=ws.read_ahead_limit,
                        max_size=ws.max_size, wl=ws.write_limit, queue=ws.max_queue)
            await echo(ws)

        async with lwa.serve(handler, "127.0.0.1", 0, logger=log, ping_interval=5,
                             ping_timeout=3, close_timeout=2, max_queue=64, max_size=4096,
                             write_limit=(1000, 10), compression=None,
                             server_header="lightws-test") as server:
            async with lwa.connect(f"ws://127.0.0.1:{server.port}/", logger="test.client",
                                   ping_interval=None, close_timeout=None, max_queue=None,
                                   compression=None, user_agent_header="agent/1",
                                   origin="https://o.example") as ws:
                self.assertEqual(ws.logger.name, "test.client")
                self.assertIsNone(ws.ping_interval)
                self.assertIsNone(ws.close_timeout)
                self.assertIsNone(ws.compression)
                self.assertEqual(ws.response.headers["Server"], "lightws-test")
                self.assertEqual(ws.request.headers["User-Agent"], "agent/1")
                self.assertEqual(ws.request.headers["Origin"], "https://o.example")
                await ws.send("x")
                await asyncio.wait_for(ws.recv(), T)
        self.assertIs(seen["logger"], log)
        self.assertEqual(seen["queue"], 64)
        self.assertEqual((seen["ping"], seen["close"]), ((5, 3), 2))
        self.assertEqual((seen["limit"], seen["max_size"], seen["wl"]), (64 * 4096, 4096, 1000))


class TestMessages(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):
        self.server = await lwa.serve(echo, "127.0.0.1", 0)
        self.ws = await lwa.connect(f"ws://127.0.0.1:{self.server.port}/")

    async def asyncTearDown(self):
        await self.ws.close()
        self.server.close()
        await self.server.wait_closed()

    async def recv(self, **kw):
        return await asyncio.wait_for(self.ws.recv(**kw), T)

    async def test_decode(self):
        await self.ws.send(b"bin")
        self.assertEqual(await self.recv(decode=True), "bin")
        await self.ws.send("txt")
        self.assertEqual(await self.recv(decode=False), b"txt")
        await self.ws.send(b"as text", text=True)
        self.assertEqual(await self.recv(), "as text")
        await self.ws.send("as binary", text=False)
        self.assertEqual(await self.recv(), b"as binary")

    async def test_fragments_from_iterables(self):
        await self.ws.send(["fr", "ag", "ment"])
        self.assertEqual(await self.recv(), "fragment")

        async def parts():
            for p in (b"a", b"b", b"c"):
                yield p
        await self.ws.send(parts())
        self.assertEqual(await self.recv(), b"abc")
        await self.ws.send([])          # nothing at all
        with self.assertRaises(TypeError):
            await self.ws.send({"a": 1})
        with self.assertRaises(TypeError):
            await self.ws.send(123)
        await self.ws.send(["é", "è"] * 100)
        self.assertEqual(await self.recv(), "éè" * 100)

    async def test_mixed_iterable_is_type_error(self):
        with self.assertRaises(TypeError):
            await self.ws.send(["a", b"b"])

    async def test_recv_streaming(self):
        await self.ws.send(["é" * 3, "x"])
        parts = [p async for p in self.ws.recv_streaming()]
        self.assertEqual("".join(parts), "ééé" + "x")
        self.assertTrue(all(isinstance(p, str) for p in parts))
        await self.ws.send(b"bytes")
        self.assertEqual(b"".join([p async for p in self.ws.recv_streaming()]), b"bytes")

    async def test_ping_returns_latency(self):
        waiter = await self.ws.ping()
        latency = await asyncio.wait_for(waiter, T)
        self.assertGreater(latency, 0)
        self.assertEqual(self.ws.latency, latency)
        w1 = await self.ws.ping(b"one")
        with self.assertRaises(lightws.ConcurrencyError):
            await self.ws.ping(b"one")
        w2 = await self.ws.ping("two")
        self.assertGreater(await asyncio.wait_for(w2, T), 0)
        self.assertTrue(w1.done())           # answered by the later pong too
        await self.ws.pong(b"unsolicited")
        await self.ws.send("still fine")
        self.assertEqual(await self.recv(), "still fine")

    async def test_pending_ping_fails_at_close(self):
        server_side = next(iter(self.server.connections))
        waiter = await server_side.ping(b"never")   # answered... then the socket goes
        await self.ws.close()
        try:
            await asyncio.wait_for(waiter, T)
        except lightws.ConnectionClosed:
            pass


class TestWriteQueue(unittest.IsolatedAsyncioTestCase):
    async def test_queued_sends_keep_order_under_backpressure(self):
        got = []
        release = asyncio.Event()

        async def slow(ws):
            await release.wait()            # the socket buffers fill meanwhile
            async for m in ws:
                got.append(m)
                if len(got) == 6000:
                    await ws.close()

        async with lwa.serve(slow, "127.0.0.1", 0, max_size=None) as server:
            for limit in (2 ** 15, 0):
                got.clear()
                release.clear()
                async with lwa.connect(f"ws://127.0.0.1:{server.port}/", compression=None,
                                       write_limit=limit) as ws:
                    self.assertEqual(ws.write_limit, limit)

                    async def produce():
                        for i in range(6000):   # 24 MB: more than the socket buffers
                            await ws.send(b"%d " % i + b"x" * 4000)
                    producer = asyncio.create_task(produce())
                    await asyncio.sleep(0.2)
                    self.assertFalse(producer.done())   # held back: bounded queue
                    self.assertLessEqual(ws._wq_bytes, limit + 4100)
                    release.set()
                    await asyncio.wait_for(producer, T)
                    await asyncio.wait_for(ws.wait_closed(), T)
                self.assertEqual([m.split(b" ")[0] for m in got],
                                 [b"%d" % i for i in range(6000)])


class TestClose(unittest.IsolatedAsyncioTestCase):
    async def test_ok_and_error_with_rcvd_and_sent(self):
        async def closer(ws):
            msg = await ws.recv()
            await ws.close(1000 if msg == "ok" else 1011, "bye")

        async with lwa.serve(closer, "127.0.0.1", 0) as server:
            uri = f"ws://127.0.0.1:{server.port}/"
            for msg, cls, code in (("ok", lightws.ConnectionClosedOK, 1000),
                                   ("err", lightws.ConnectionClosedError, 1011)):
                async with lwa.connect(uri) as ws:
                    await ws.send(msg)
                    with self.assertRaises(cls) as cm:
                        await asyncio.wait_for(ws.recv(), T)
                    e = cm.exception
                    self.assertEqual((e.code, e.reason), (code, "bye"))
                    self.assertEqual(e.rcvd, lightws.Close(code, "bye"))
                    self.assertEqual(e.sent.code, code)
                    self.assertTrue(e.rcvd_then_sent)
                    with self.assertRaises(cls):
                        await ws.send("after")
                    self.assertEqual(ws.close_code, code)
            async with lwa.connect(uri) as ws:
                await ws.close(4000, "mine")
                with self.assertRaises(lightws.ConnectionClosed) as cm:
                    await ws.recv()
                self.assertEqual(cm.exception.sent, lightws.Close(4000, "mine"))

    async def test_protocol_errors_are_connection_closed_errors(self):
        async with lwa.serve(echo, "127.0.0.1", 0) as server:
            async with lwa.connect(f"ws://127.0.0.1:{server.port}/", max_size=10) as ws:
                await ws.send("x" * 100)            # the echo is over our max_size
                with self.assertRaises(lightws.PayloadTooBig) as cm:
                    await asyncio.wait_for(ws.recv(), T)
                e = cm.exception
                self.assertIsInstance(e, lightws.ConnectionClosedError)
                self.assertEqual((e.close_code, e.sent.code, e.rcvd, e.code),
                                 (1009, 1009, None, 1006))
                with self.assertRaises(lightws.ConnectionClosed):
                    await ws.send("after")

    async def test_finer_handshake_errors(self):
        answers = [b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\r\n",
                   b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                   b"Connection: Upgrade\r\nSec-WebSocket-Accept: AAAA\r\n\r\n"]

        async def answer(reader, writer):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answers.pop(0))
            await writer.drain()
            writer.close()

        srv = await asyncio.start_server(answer, "127.0.0.1", 0)
        try:
            port = srv.sockets[0].getsockname()[1]
            with self.assertRaises(lightws.InvalidUpgrade) as cm:
                await lwa.connect(f"ws://127.0.0.1:{port}/")
            self.assertIsInstance(cm.exception, lightws.InvalidHandshake)
            # websockets: InvalidUpgrade is an InvalidHeader, with the name
            self.assertIsInstance(cm.exception, lightws.InvalidHeader)
            self.assertEqual(cm.exception.name, "Upgrade")
            with self.assertRaises(lightws.InvalidHeader) as cm:
                await lwa.connect(f"ws://127.0.0.1:{port}/")
            self.assertEqual((cm.exception.name, cm.exception.value),
                             ("Sec-WebSocket-Accept", None))
        finally:
            srv.close()
            await srv.wait_closed()

    async def send_until_closed(self, ws):
        await ws.send(b"x" * 65536)
        for _ in range(1000):
            await ws.send("small")
            await asyncio.sleep(0.002)
        self.fail("no ConnectionClosedError")

    async def test_send_after_peer_failed_with_1009(self):
        # lightws server, then python websockets server: the same error
        async with lwa.serve(echo, "127.0.0.1", 0, max_size=1024) as server:
            async with lwa.connect(f"ws://127.0.0.1:{server.port}/") as ws:
                with self.assertRaises(lightws.ConnectionClosedError) as cm:
                    await asyncio.wait_for(self.send_until_closed(ws), T)
                self.assertEqual(cm.exception.code, 1009)
        async with websockets.serve(ws_echo, "127.0.0.1", 0, max_size=1024) as srv:
            port = srv.sockets[0].getsockname()[1]
            async with lwa.connect(f"ws://127.0.0.1:{port}/") as ws:
                with self.assertRaises(lightws.ConnectionClosedError) as cm:
                    await asyncio.wait_for(self.send_until_closed(ws), T)
                self.assertEqual(cm.exception.code, 1009)


def auth(conn, request):
    if request.path == "/healthz":
        return conn.respond(http.HTTPStatus.OK, "OK\n")
    if request.headers.get("Authorization") != "Bearer secret":
        return conn.respond(http.HTTPStatus.UNAUTHORIZED, "Missing token\n")
    return None


class TestProcessRequest(unittest.IsolatedAsyncioTestCase):
    async def test_reject_with_status_and_healthz(self):
        async with lwa.serve(echo, "127.0.0.1", 0, process_request=auth) as server:
            uri = f"ws://127.0.0.1:{server.port}/"
            with self.assertRaises(lightws.InvalidStatus) as cm:
                await lwa.connect(uri)
            e = cm.exception
            self.assertIsInstance(e, lightws.InvalidHandshake)
            self.assertEqual((e.response.status_code, e.response.reason_phrase),
                             (401, "Unauthorized"))
            self.assertEqual(e.response.headers["Content-Type"], "text/plain; charset=utf-8")
            self.assertEqual(e.response.body, b"Missing token\n")   # what came with the head
            self.assertIn("HTTP 401", str(e))
            async with lwa.connect(uri, additional_headers={"Authorization": "Bearer secret"}) as ws:
                await ws.send("in")
                self.assertEqual(await asyncio.wait_for(ws.recv(), T), "in")
            # a plain GET on the same port, as a load balancer's check
            answer = await raw_http(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertTrue(answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer)
            self.assertTrue(answer.endswith(b"\r\n\r\nOK\n"), answer)
            # python websockets sees the same status
            with self.assertRaises(websockets.InvalidStatusCode) as cm:
                await websockets.connect(uri)
            self.assertEqual(cm.exception.status_code, 401)

    async def test_async_hook_failing_hook_and_process_response(self):
        async def slow_ok(conn, request):
            await asyncio.sleep(0)
            if request.path == "/boom":
                raise RuntimeError("hook bug")

        def add_header(conn, request, response):
            response.headers["X-Seen"] = request.path

        async with lwa.serve(echo, "127.0.0.1", 0, process_request=slow_ok,
                             process_response=add_header, server_header=None) as server:
            uri = f"ws://127.0.0.1:{server.port}"
            async with lwa.connect(uri + "/p") as ws:
                self.assertEqual(ws.response.headers["X-Seen"], "/p")
                self.assertNotIn("Server", ws.response.headers)
            with self.assertLogs("websockets.server", "ERROR"):
                with self.assertRaises(lightws.InvalidStatus) as cm:
                    await lwa.connect(uri + "/boom")
            self.assertEqual(cm.exception.response.status_code, 500)

    async def test_origins(self):
        pattern = re.compile(r"https://[a-z]+\.example\.com")
        async with lwa.serve(echo, "127.0.0.1", 0,
                             origins=["https://example.com", pattern, None]) as server:
            uri = f"ws://127.0.0.1:{server.port}/"
            for origin in ("https://example.com", "https://chat.example.com", None):
                async with lwa.connect(uri, origin=origin) as ws:
                    self.assertIs(ws.state, lightws.State.OPEN)
            with self.assertRaises(lightws.InvalidStatus) as cm:
                await lwa.connect(uri, origin="https://evil.com")
            self.assertEqual(cm.exception.status, 403)

    async def test_select_subprotocol_both_forms(self):
        def ws_style(conn, subprotocols):
            self.assertIsInstance(conn, lwa.ServerConnection)
            return "b" if "b" in subprotocols else None

        async with lwa.serve(echo, "127.0.0.1", 0, select_subprotocol=ws_style) as server:
            async with lwa.connect(f"ws://127.0.0.1:{server.port}/",
                                   subprotocols=["a", "b"]) as ws:
                self.assertEqual(ws.subprotocol, "b")
        def broken(conn, subprotocols):
            raise RuntimeError("bug")

        async with lwa.serve(echo, "127.0.0.1", 0, select_subprotocol=broken) as server:
            with self.assertLogs("websockets.server", "ERROR"):
                with self.assertRaises(lightws.InvalidStatus) as cm:
                    await lwa.connect(f"ws://127.0.0.1:{server.port}/", subprotocols=["a"])
            self.assertEqual(cm.exception.status, 500)
        async with lwa.serve(echo, "127.0.0.1", 0,
                             select_subprotocol=lambda req: req.protocols[-1]) as server:
            async with lwa.connect(f"ws://127.0.0.1:{server.port}/",
                                   subprotocols=["a", "b"]) as ws:
                self.assertEqual(ws.subprotocol, "b")


class TestOverTLS(unittest.IsolatedAsyncioTestCase):
    async def test_wss_hooks_and_rejection(self):
        import ssl
        tls = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tls")
        sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        sctx.load_cert_chain(os.path.join(tls, "cert.pem"), os.path.join(tls, "key.pem"))
        cctx = ssl.create_default_context(cafile=os.path.join(tls, "cert.pem"))
        async with lwa.serve(echo, "127.0.0.1", 0, ssl=sctx, process_request=auth) as server:
            uri = f"wss://127.0.0.1:{server.port}/"
            with self.assertRaises(lightws.InvalidStatus) as cm:
                await lwa.connect(uri, ssl=cctx)
            self.assertEqual(cm.exception.status, 401)
            async with lwa.connect(uri, ssl=cctx,
                                   additional_headers={"Authorization": "Bearer secret"}) as ws:
                await ws.send(["over ", "tls"])
                self.assertEqual(await asyncio.wait_for(ws.recv(), T), "over tls")
                self.assertGreater(await asyncio.wait_for(await ws.ping(), T), 0)


def redirects(conn, request):
    if request.path == "/old":
        r = conn.respond(http.HTTPStatus.MOVED_PERMANENTLY, "")
        r.headers["Location"] = "/new"
        return r
    if request.path == "/loop":
        r = conn.respond(http.HTTPStatus.FOUND, "")
        r.headers["Location"] = "/loop"
        return r
    return None


class TestRedirects(unittest.IsolatedAsyncioTestCase):
    async def test_followed_limited_and_location_on_the_error(self):
        async with lwa.serve(echo, "127.0.0.1", 0, process_request=redirects) as server:
            uri = f"ws://127.0.0.1:{server.port}"
            async with lwa.connect(uri + "/old") as ws:
                self.assertEqual(ws.request.path, "/new")
            with self.assertRaises(lightws.SecurityError):
                await lwa.connect(uri + "/loop")
            sock = socket.create_connection(("127.0.0.1", server.port))
            try:
                with self.assertRaises(lightws.InvalidStatus) as cm:
                    await lwa.connect(sock=sock, uri=uri + "/old")
            finally:
                sock.close()
            self.assertEqual(cm.exception.location, "/new")
            self.assertEqual(cm.exception.response.headers["Location"], "/new")

    def test_never_to_an_insecure_uri(self):
        err = lightws.InvalidStatus(lightws.Response(
            302, "Found", None, None, None, lightws.HeaderList([("Location", "ws://x/")]), 0))
        with self.assertRaises(lightws.SecurityError):
            _compat.redirect_target("wss://example.com/", err)
        err = lightws.InvalidStatus(lightws.Response(
            302, "Found", None, None, None, lightws.HeaderList([("Location", "http://x/")]), 0))
        self.assertEqual(_compat.redirect_target("ws://example.com/", err), "ws://x/")
        with self.assertRaises(lightws.SecurityError):
            _compat.redirect_target("wss://example.com/", err)


class TestReconnect(unittest.IsolatedAsyncioTestCase):
    async def test_async_for_reconnects_with_backoff(self):
        old = (_compat.BACKOFF_INITIAL_DELAY, _compat.BACKOFF_MIN_DELAY)
        _compat.BACKOFF_INITIAL_DELAY, _compat.BACKOFF_MIN_DELAY = 0.01, 0.01
        attempts = []

        def flaky(conn, request):
            if request.path == "/x":
                return conn.respond(http.HTTPStatus.NOT_FOUND, "no\n")
            attempts.append(request.path)
            if len(attempts) <= 2:
                return conn.respond(http.HTTPStatus.SERVICE_UNAVAILABLE, "later\n")
            return None

        async def greet(ws):
            await ws.send(f"hello {len(attempts)}")

        try:
            async with lwa.serve(greet, "127.0.0.1", 0, process_request=flaky) as server:
                got = []

                async def client():
                    async for ws in lwa.connect(f"ws://127.0.0.1:{server.port}/"):
                        try:
                            got.append(await ws.recv())
                            await ws.recv()
                        except lightws.ConnectionClosed:
                            if len(got) == 2:
                                return
                            continue
                await asyncio.wait_for(client(), T)
                self.assertEqual(got, ["hello 3", "hello 4"])
                with self.assertRaises(lightws.InvalidStatus):     # 4xx: not retried
                    async for ws in lwa.connect(f"ws://127.0.0.1:{server.port}/x"):
                        self.fail("connected")
        finally:
            _compat.BACKOFF_INITIAL_DELAY, _compat.BACKOFF_MIN_DELAY = old


class TestServer(unittest.IsolatedAsyncioTestCase):
    async def test_serve_forever_close_and_start_serving(self):
        server = await lwa.serve(echo, "127.0.0.1", 0, start_serving=False)
        self.assertFalse(server.is_serving())
        await server.start_serving()
        self.assertTrue(server.is_serving())
        forever = asyncio.create_task(server.serve_forever())
        ws = await lwa.connect(f"ws://127.0.0.1:{server.port}/")
        server.close()
        await asyncio.wait_for(server.wait_closed(), T)
        await asyncio.wait_for(forever, T)
        with self.assertRaises(lightws.ConnectionClosedOK) as cm:
            await asyncio.wait_for(ws.recv(), T)
        self.assertEqual(cm.exception.code, 1001)

    async def test_broadcast(self):
        clients = []
        async with lwa.serve(lambda ws: ws.wait_closed(), "127.0.0.1", 0) as server:
            uri = f"ws://127.0.0.1:{server.port}/"
            for i in range(20):
                clients.append(await lwa.connect(uri, compression=None if i % 2 else "deflate"))
            while len(server.connections) < 20:
                await asyncio.sleep(0.01)
            lightws.broadcast(server.connections, "to all")
            lwa.broadcast(server.connections, b"\x00bin")
            for c in clients:
                self.assertEqual(await asyncio.wait_for(c.recv(), T), "to all")
                self.assertEqual(await asyncio.wait_for(c.recv(), T), b"\x00bin")
            # queued sends of a connection go first, the broadcast after them
            first = next(c for c in server.connections
                         if c.remote_address == clients[3].local_address)
            await first.send("own")
            lightws.broadcast(server.connections, "after")
            self.assertEqual(await asyncio.wait_for(clients[3].recv(), T), "own")
            for c in clients:
                self.assertEqual(await asyncio.wait_for(c.recv(), T), "after")
            # closed ones are skipped silently, a busy one with a warning
            await clients[0].close()
            busy = next(c for c in server.connections if c.remote_address
                        == clients[1].local_address)
            await busy.send("start", fin=False)
            with self.assertLogs("lightws.broadcast", "WARNING"):
                lightws.broadcast(server.connections, "x")
            with self.assertRaises(Exception) as cm:
                lightws.broadcast(server.connections, "y", raise_exceptions=True)
            self.assertTrue(any(isinstance(e, lightws.ConcurrencyError)
                                for e in cm.exception.exceptions))
            with self.assertRaises(TypeError):
                lightws.broadcast(server.connections, 123)
            for c in clients[1:]:
                await c.close()


if __name__ == "__main__":
    unittest.main()
