# SPDX-License-Identifier: MIT
"""The examples of python websockets' user guide (echo, broadcast,
authentication in process_request, a reconnecting client) written once
for lightws and once for python websockets (the installed one: its
legacy API where the new one is missing), run in all four pairings of
server and client; every pairing must see the same results. Then the
same for lightws.sync (websockets.sync's API) against both servers."""

import asyncio
import http
import threading
import time
import unittest
from contextlib import asynccontextmanager, contextmanager
from urllib.parse import parse_qs, urlsplit

import websockets

import lightws
import lightws.asyncio as lwa
import lightws.sync as lws_sync

T = 10
USERS = {"t0k3n": "alice"}


def token_user(path):
    return USERS.get(parse_qs(urlsplit(path).query).get("token", [""])[0])


# -- servers: the user guide's handlers, per library --------------------------

async def echo(ws, path=None):
    async for message in ws:
        await ws.send(message)


async def hello(ws, path=None):
    user = token_user(ws.request.path if hasattr(ws, "request") and ws.request
                      else path or ws.path)
    await ws.send(f"Hello {user}!")
    await ws.close()


async def flaky(ws, path=None):
    await ws.send("msg")
    await ws.close(1011, "going down")


def lw_auth(connection, request):                       # websockets >= 13 form
    if token_user(request.path) is None:
        return connection.respond(http.HTTPStatus.UNAUTHORIZED, "Missing token\n")
    return None


def ws_auth(path, request_headers):                     # websockets' legacy form
    if token_user(path) is None:
        return http.HTTPStatus.UNAUTHORIZED, [], b"Missing token\n"
    return None


@asynccontextmanager
async def server(lib, handler, auth=False):
    if lib == "lightws":
        kw = {"process_request": lw_auth} if auth else {}
        async with lwa.serve(handler, "127.0.0.1", 0, **kw) as srv:
            yield srv.port
    else:
        kw = {"process_request": ws_auth} if auth else {}
        async with websockets.serve(handler, "127.0.0.1", 0, **kw) as srv:
            yield srv.sockets[0].getsockname()[1]


def connect(lib, uri):
    return lwa.connect(uri) if lib == "lightws" else websockets.connect(uri)


def rejected_status(e):
    if isinstance(e, lightws.InvalidStatus):
        return e.response.status_code
    return e.status_code


REJECTED = (lightws.InvalidStatus, websockets.InvalidStatusCode)
CLOSED = (lightws.ConnectionClosed, websockets.ConnectionClosed)
PAIRS = [(s, c) for s in ("lightws", "websockets") for c in ("lightws", "websockets")]


class TestUserGuide(unittest.IsolatedAsyncioTestCase):
    async def test_echo(self):
        results = {}
        for s, c in PAIRS:
            async with server(s, echo) as port:
                async with connect(c, f"ws://127.0.0.1:{port}/") as ws:
                    await ws.send("Hello world!")
                    results[s, c] = await asyncio.wait_for(ws.recv(), T)
        self.assertEqual(set(results.values()), {"Hello world!"}, results)

    async def test_authentication(self):
        results = {}
        for s, c in PAIRS:
            async with server(s, hello, auth=True) as port:
                try:
                    async with connect(c, f"ws://127.0.0.1:{port}/?token=bad"):
                        pass
                except REJECTED as e:
                    status = rejected_status(e)
                async with connect(c, f"ws://127.0.0.1:{port}/?token=t0k3n") as ws:
                    greeting = await asyncio.wait_for(ws.recv(), T)
                results[s, c] = (status, greeting)
        self.assertEqual(set(results.values()), {(401, "Hello alice!")}, results)

    async def test_broadcast(self):
        results = {}
        for s, c in PAIRS:
            connections = set()
            joined = asyncio.Event()

            async def register(ws, path=None):
                connections.add(ws)
                if len(connections) == 3:
                    joined.set()
                try:
                    await ws.wait_closed()
                finally:
                    connections.discard(ws)

            bcast = lightws.broadcast if s == "lightws" else websockets.broadcast
            async with server(s, register) as port:
                clients = [await connect(c, f"ws://127.0.0.1:{port}/") for _ in range(3)]
                await asyncio.wait_for(joined.wait(), T)
                for i in range(3):
                    bcast(connections, f"tick {i}")
                got = [[await asyncio.wait_for(ws.recv(), T) for _ in range(3)]
                       for ws in clients]
                for ws in clients:
                    await ws.close()
            results[s, c] = got
        self.assertEqual(list(results.values()), [[["tick 0", "tick 1", "tick 2"]] * 3] * 4,
                         results)

    async def test_reconnecting_client(self):
        results = {}
        for s, c in PAIRS:
            async with server(s, flaky) as port:
                got, codes = [], []

                async def client():
                    async for ws in connect(c, f"ws://127.0.0.1:{port}/"):
                        try:
                            got.append(await ws.recv())
                            await ws.recv()
                        except CLOSED as e:
                            codes.append(e.code if hasattr(e, "code") else e.rcvd.code)
                            if len(got) == 3:
                                return
                            continue
                await asyncio.wait_for(client(), T)
            results[s, c] = (got, codes)
        self.assertEqual(set(map(repr, results.values())),
                         {repr((["msg"] * 3, [1011] * 3))}, results)


# -- lightws.sync (websockets.sync's API) -----------------------------------

def sync_echo(ws):
    for message in ws:
        ws.send(message)


@contextmanager
def websockets_in_thread(handler, **kw):
    """A python websockets server on its own event loop thread for the
    blocking tests; yields its port."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box = {}

    async def main():
        async with websockets.serve(handler, "127.0.0.1", 0, **kw) as s:
            box["port"] = s.sockets[0].getsockname()[1]
            box["stop"] = asyncio.Event()
            ready.set()
            await box["stop"].wait()

    t = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    t.start()
    if not ready.wait(T):
        raise AssertionError("websockets server did not start")
    try:
        yield box["port"]
    finally:
        loop.call_soon_threadsafe(box["stop"].set)
        t.join(T)


class TestSync(unittest.TestCase):
    def setUp(self):
        def auth(connection, request):
            if request.path == "/healthz":
                return connection.respond(http.HTTPStatus.OK, "OK\n")
            return lw_auth(connection, request)

        self.server = lws_sync.serve(sync_echo, "127.0.0.1", 0, process_request=auth,
                                     subprotocols=["chat"])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.uri = f"ws://127.0.0.1:{self.server.port}/?token=t0k3n"

    def tearDown(self):
        self.server.shutdown()
        self.server.close()
        self.thread.join(T)

    def test_echo_attributes_and_iterables(self):
        with lws_sync.connect(self.uri, subprotocols=["chat"],
                              additional_headers={"X-A": "1"}) as ws:
            self.assertIsInstance(ws, lws_sync.ClientConnection)
            self.assertIsInstance(ws, lightws.WebSocket)     # lightws' methods too
            self.assertIs(ws.state, lightws.State.OPEN)
            self.assertEqual((ws.subprotocol, ws.response.status_code), ("chat", 101))
            self.assertEqual(ws.request.headers["X-A"], "1")
            ws.send("Hello world!")
            self.assertEqual(ws.recv(timeout=T), "Hello world!")
            ws.send(["a", "b", "c"])
            self.assertEqual(ws.recv(timeout=T), "abc")
            ws.send(b"bin")
            self.assertEqual(ws.recv(timeout=T, decode=True), "bin")
            ws.send("split")
            self.assertEqual("".join(ws.recv_streaming()), "split")
            with self.assertRaises(TimeoutError):
                ws.recv(timeout=0.05)
            pong = ws.ping()
            ws.send("after")
            self.assertEqual(ws.recv(timeout=T), "after")
            self.assertTrue(pong.wait(T))
            self.assertGreater(ws.latency, 0)
        self.assertIs(ws.state, lightws.State.CLOSED)
        self.assertEqual(ws.close_code, 1000)

    def test_rejected_and_healthz(self):
        with self.assertRaises(lightws.InvalidStatus) as cm:
            lws_sync.connect(f"ws://127.0.0.1:{self.server.port}/")
        self.assertEqual(cm.exception.response.status_code, 401)
        import urllib.request
        body = urllib.request.urlopen(f"http://127.0.0.1:{self.server.port}/healthz",
                                      timeout=T).read()
        self.assertEqual(body, b"OK\n")

    def test_keywords_and_failures(self):
        with self.assertRaises(TypeError):
            lws_sync.connect(self.uri, headers={}, additional_headers={})
        with self.assertRaises(TypeError):
            lws_sync.connect(self.uri, no_such_option=1)
        with self.assertRaises(TypeError):
            lws_sync.serve(sync_echo, "127.0.0.1", 0, no_such_option=1)
        with self.assertRaises(lightws.InvalidURI):
            lws_sync.connect("http://127.0.0.1/")
        with self.assertRaises(ConnectionRefusedError):
            lws_sync.connect("ws://127.0.0.1:1/")
        self.assertIsInstance(self.server.port, int)
        with lws_sync.connect(self.uri, max_size=None) as ws:
            ws.ping(b"same")
            with self.assertRaises(lightws.ConcurrencyError):
                ws.ping(b"same")
            ws.send(b"x" * (2 ** 20 + 1))       # over the server's 1 MiB default
            with self.assertRaises(lightws.ConnectionClosedError) as cm:
                for _ in range(1000):
                    ws.recv(timeout=T)
            self.assertEqual(cm.exception.code, 1009)
            with self.assertRaises(lightws.ConnectionClosed):
                ws.send("after")

    def test_origins_and_process_response(self):
        def stamp(connection, request, response):
            response.headers["X-Stamp"] = "1"

        with lws_sync.serve(sync_echo, "127.0.0.1", 0, origins=["https://ok.example"],
                            process_response=stamp, server_header=None) as server:
            t = threading.Thread(target=server.serve_forever, daemon=True)
            t.start()
            uri = f"ws://127.0.0.1:{server.port}/"
            with self.assertRaises(lightws.InvalidStatus) as cm:
                lws_sync.connect(uri, origin="https://evil.example")
            self.assertEqual(cm.exception.status, 403)
            with lws_sync.connect(uri, origin="https://ok.example") as ws:
                self.assertEqual(ws.response.headers["X-Stamp"], "1")
                self.assertNotIn("Server", ws.response.headers)
            server.shutdown()
        t.join(T)

    def test_sync_client_against_websockets_server(self):
        with websockets_in_thread(echo, process_request=ws_auth) as port:
            with self.assertRaises(lightws.InvalidStatus) as cm:
                lws_sync.connect(f"ws://127.0.0.1:{port}/")
            self.assertEqual(cm.exception.status, 401)
            # python websockets' 401 body, as far as it came with the head
            self.assertIn(cm.exception.response.body, (b"Missing token\n", b""))
            with lws_sync.connect(f"ws://127.0.0.1:{port}/?token=t0k3n") as ws:
                ws.send("Hello world!")
                self.assertEqual(ws.recv(timeout=T), "Hello world!")

    def test_idle_sync_client_answers_websockets_keepalive(self):
        """The reader thread answers the server's pings while the
        application does not read: an idle lightws.sync client outlives
        websockets' keepalive (ping every 0.2 s, 0.5 s to answer); its
        messages wait in the queue, in order."""
        box = {}

        async def pinger(ws, path=None):
            await ws.send("first")
            await asyncio.sleep(1.5)            # ~7 pings, none unanswered
            await ws.send("second")
            await ws.wait_closed()
            box["close_code"] = ws.close_code

        with websockets_in_thread(pinger, ping_interval=0.2, ping_timeout=0.5) as port:
            with lws_sync.connect(f"ws://127.0.0.1:{port}/", ping_interval=None) as ws:
                time.sleep(1.8)                 # not reading at all
                self.assertEqual(ws.recv(timeout=T), "first")
                self.assertEqual(ws.recv(timeout=T), "second")
                self.assertIs(ws.state, lightws.State.OPEN)
            deadline = time.monotonic() + T
            while "close_code" not in box and time.monotonic() < deadline:
                time.sleep(0.02)
            self.assertEqual(box.get("close_code"), 1000)   # not 1011

    def test_idle_sync_server_keepalive_and_queue_bound(self):
        """A lightws.sync server's handler that does not read still
        answers pings (the websockets client's keepalive, 2 messages
        queued meanwhile); with max_queue=2 the reader stops after two
        queued messages (as websockets: then pings wait too), the rest
        wait in TCP and all arrive in order once the handler reads."""
        got = []

        def slow(ws):
            time.sleep(1.2)
            for _ in range(int(ws.request.path.strip("/"))):
                got.append(ws.recv(timeout=T))
            ws.send("done")

        with lws_sync.serve(slow, "127.0.0.1", 0, max_queue=2) as server:
            t = threading.Thread(target=server.serve_forever, daemon=True)
            t.start()

            async def client(n, **kw):
                async with websockets.connect(f"ws://127.0.0.1:{server.port}/{n}",
                                              **kw) as ws:
                    for i in range(n):
                        await ws.send(f"m{i}")
                    return await asyncio.wait_for(ws.recv(), T)

            self.assertEqual(asyncio.run(client(2, ping_interval=0.2, ping_timeout=0.5)),
                             "done")
            self.assertEqual(got, ["m0", "m1"])
            got.clear()
            self.assertEqual(asyncio.run(client(20, ping_interval=None)), "done")
            self.assertEqual(got, [f"m{i}" for i in range(20)])
            server.shutdown()
        t.join(T)
        with self.assertRaises(ValueError):
            lws_sync.serve(sync_echo, "127.0.0.1", 0, max_queue=0)


if __name__ == "__main__":
    unittest.main()
