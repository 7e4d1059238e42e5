# SPDX-License-Identifier: MIT
"""lightws.asyncio: serve()/connect() between lightws peers, against
build/lightws-echo, and against python3-websockets in the same loop."""

import asyncio
import os
import socket
import subprocess
import sys
import unittest

import websockets

import lightws
import lightws.asyncio as lwa

from _helpers import ECHO_BIN, Proc, need_file


async def echo_handler(ws):
    async for msg in ws:
        await ws.send(msg)


async def exercise(test, ws):
    # 512 KiB: under the 1 MiB max_size default (websockets') also once compressed
    for msg in ["hello", "", "ünïcödé", b"\x00\xff", os.urandom(1 << 19)]:
        await ws.send(msg)
        test.assertEqual(await ws.recv(), msg)
    await ws.send("frag", fin=False)
    await ws.send("ment")
    test.assertEqual(await ws.recv(), "fragment")
    await ws.send_many(["m1", b"m2", "", b"m3" * 50000])
    test.assertEqual([await ws.recv() for _ in range(4)], ["m1", b"m2", "", b"m3" * 50000])
    await ws.ping(b"p1")
    await ws.send("after")
    test.assertEqual(await ws.recv(), "after")
    test.assertEqual(ws.last_pong, b"p1")


class TestAsyncio(unittest.IsolatedAsyncioTestCase):
    async def test_serve_and_connect(self):
        server = await lwa.serve(echo_handler, "127.0.0.1", 0)
        async with server:
            async with await lwa.connect(f"ws://127.0.0.1:{server.port}/aio") as ws:
                await exercise(self, ws)
                await ws.close(4002, "bye")
                self.assertEqual(ws.close_code, 4002)
            self.assertTrue(ws.closed)

    async def test_served_sockets_have_nodelay(self):
        # an echo with several small messages in flight must not wait for
        # the client's delayed ACK (Nagle)
        seen = []

        async def handler(ws):
            seen.append(ws._sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            await ws.close()

        server = await lwa.serve(handler, "127.0.0.1", 0)
        async with server:
            async with await lwa.connect(f"ws://127.0.0.1:{server.port}/") as ws:
                with self.assertRaises(lightws.ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 10)
        self.assertEqual(len(seen), 1)
        self.assertNotEqual(seen[0], 0)

    async def test_async_iteration_and_concurrent_tasks(self):
        n = 200

        async def producer(ws):
            for i in range(n):
                await ws.send(f"msg {i}")
            await ws.close()

        server = await lwa.serve(producer, "127.0.0.1", 0)
        async with server:
            ws = await lwa.connect(f"ws://127.0.0.1:{server.port}/")
            got = [m async for m in ws]
            self.assertEqual(got, [f"msg {i}" for i in range(n)])
            self.assertEqual(ws.close_code, 1000)
            await ws.close()

    async def test_reader_and_writer_tasks(self):
        server = await lwa.serve(echo_handler, "127.0.0.1", 0)
        async with server:
            ws = await lwa.connect(f"ws://127.0.0.1:{server.port}/")
            payloads = [os.urandom(i * 1000) for i in range(60)]

            async def writer():
                for p in payloads:
                    await ws.send(p)

            async def reader():
                return [await ws.recv() for _ in payloads]

            _, got = await asyncio.wait_for(asyncio.gather(writer(), reader()), 30)
            self.assertEqual(got, payloads)
            await ws.close()

    async def test_server_close_sends_1001(self):
        started = asyncio.Event()

        async def idle(ws):
            started.set()
            await asyncio.sleep(60)

        server = await lwa.serve(idle, "127.0.0.1", 0)
        ws = await lwa.connect(f"ws://127.0.0.1:{server.port}/")
        await asyncio.wait_for(started.wait(), 5)
        server.close()
        with self.assertRaises(lightws.ConnectionClosedOK) as cm:
            await asyncio.wait_for(ws.recv(), 10)
        self.assertEqual(cm.exception.code, 1001)
        await server.wait_closed()
        await ws.close()

    async def test_handshake_rejected(self):
        server = await lwa.serve(echo_handler, "127.0.0.1", 0)
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
            head = await asyncio.wait_for(reader.read(100), 5)
            self.assertTrue(head.startswith(b"HTTP/1.1 400 "), head)
            writer.close()

    async def test_protocol_error_from_raw_peer(self):
        reader, writer = None, None

        async def handler(ws):
            with self.assertRaises(lightws.ProtocolError) as cm:
                await ws.recv()
            self.assertEqual(cm.exception.close_code, 1007)
            done.set_result(True)

        done = asyncio.get_running_loop().create_future()
        server = await lwa.serve(handler, "127.0.0.1", 0)
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(lightws.codec.build_request("h", "/"))
            await reader.readuntil(b"\r\n\r\n")
            writer.write(bytes([0x81, 0x82, 0, 0, 0, 0, 0xC3, 0x28]))  # masked, bad UTF-8
            self.assertTrue(await asyncio.wait_for(done, 5))
            close = await asyncio.wait_for(reader.readexactly(4), 5)
            self.assertEqual(close, bytes([0x88, 0x02, 0x03, 0xEF]))
            writer.close()

    async def test_against_c_echo(self):
        need_file(ECHO_BIN)
        srv = Proc([ECHO_BIN, "--host", "127.0.0.1", "--port", "0"])
        try:
            async with await lwa.connect(f"ws://127.0.0.1:{srv.port}/") as ws:
                await exercise(self, ws)
        finally:
            srv.stop()

    async def test_lightws_client_websockets_server(self):
        async def ws_echo(ws, path=None):
            async for m in ws:
                await ws.send(m)

        async with websockets.serve(ws_echo, "127.0.0.1", 0, max_size=None) as srv:
            port = srv.sockets[0].getsockname()[1]
            async with await lwa.connect(f"ws://127.0.0.1:{port}/") as ws:
                await exercise(self, ws)

    async def test_websockets_client_lightws_server(self):
        server = await lwa.serve(echo_handler, "127.0.0.1", 0)
        async with server:
            async with websockets.connect(f"ws://127.0.0.1:{server.port}/x",
                                          max_size=None) as ws:
                for msg in ["hi", b"\x01" * 100000]:
                    await ws.send(msg)
                    self.assertEqual(await ws.recv(), msg)
                pong = await ws.ping(b"hb")
                await asyncio.wait_for(pong, 5)
                await ws.close(1000, "ok")
            self.assertEqual(ws.close_code, 1000)

    async def test_byte_stream(self):
        async def sink(ws):
            data = b""
            while True:
                chunk = await ws.read()
                if not chunk:
                    break
                data += chunk
            await ws.close()
            result.set_result(data)

        result = asyncio.get_running_loop().create_future()
        server = await lwa.serve(sink, "127.0.0.1", 0)
        async with server:
            ws = await lwa.connect(f"ws://127.0.0.1:{server.port}/")
            payload = os.urandom(200000)
            for i in range(0, len(payload), 30000):
                await ws.write(payload[i:i + 30000])
            await ws.close()
            self.assertEqual(await asyncio.wait_for(result, 10), payload)

    async def test_close_with_a_bad_code_or_reason_raises_and_keeps_the_connection(self):
        server = await lwa.serve(echo_handler, "127.0.0.1", 0)
        async with server:
            ws = await lwa.connect(f"ws://127.0.0.1:{server.port}/")
            for code in (999, 1005, 1006, 5000):
                with self.assertRaises(ValueError):
                    await ws.close(code)
            with self.assertRaises(ValueError):
                await ws.close(1000, "x" * 124)
            with self.assertRaises(TypeError):
                await ws.close("1000")
            self.assertFalse(ws.closed)
            await ws.send("still open")
            self.assertEqual(await asyncio.wait_for(ws.recv(), 10), "still open")
            await ws.close(4001, "y" * 123)        # the longest reason that fits
            self.assertEqual(ws.close_code, 4001)   # the server echoed the code
            await asyncio.wait_for(ws.wait_closed(), 5)

    async def test_ping_payloads(self):
        result = asyncio.get_running_loop().create_future()

        async def handler(ws):
            try:
                for bad in (123, 1.5):          # None: random payload, as websockets
                    with self.assertRaises(TypeError):
                        await ws.ping(bad)
                with self.assertRaises(ValueError):
                    await ws.ping(b"x" * 126)
                await ws.ping("hé")                 # UTF-8
                await ws.recv()                     # the pong comes before it
                result.set_result(ws.last_pong)
            except BaseException as e:
                result.set_exception(e)
                raise

        server = await lwa.serve(handler, "127.0.0.1", 0)
        async with server:
            async with websockets.connect(f"ws://127.0.0.1:{server.port}/") as ws:
                await asyncio.sleep(0.2)
                await ws.send("after the ping")
                self.assertEqual(await asyncio.wait_for(result, 10), "hé".encode())

    async def test_headers_as_a_dict_everywhere(self):
        async def handler(ws):
            await ws.send(ws.request.header("ID") or "none")
            await ws.recv()

        server = await lwa.serve(handler, "127.0.0.1", 0, headers={"X-Server": "yes"})
        async with server:
            ws = await lwa.connect(f"ws://127.0.0.1:{server.port}/", headers={"ID": "12345"})
            self.assertEqual(ws.response.header("X-Server"), "yes")
            self.assertEqual(await asyncio.wait_for(ws.recv(), 10), "12345")
            await ws.close()

    async def test_bad_arguments_fail_at_the_call(self):
        for bad in ("X: y", [("X",)], {"X": 1}):
            with self.subTest(bad=bad):
                with self.assertRaises(TypeError):
                    await lwa.serve(echo_handler, "127.0.0.1", 0, headers=bad)
                with self.assertRaises(TypeError):
                    await lwa.connect("ws://127.0.0.1:9/", headers=bad)
        with self.assertRaises(TypeError):
            await lwa.serve(echo_handler, "127.0.0.1", 0, no_such_option=1)
        with self.assertRaises(ValueError):
            await lwa.serve(echo_handler, "127.0.0.1", 0, open_timeout=float("nan"))

    async def test_open_timeout_drops_silent_clients(self):
        server = await lwa.serve(echo_handler, "127.0.0.1", 0, open_timeout=0.3)
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            # the server answers 408 (one attempt) and closes the
            # connection that sent no request
            got = await asyncio.wait_for(reader.read(), 10)
            self.assertTrue(got == b"" or got.startswith(b"HTTP/1.1 408 "), got)
            writer.close()
            async with await lwa.connect(f"ws://127.0.0.1:{server.port}/") as ws:
                await ws.send("ok")
                self.assertEqual(await asyncio.wait_for(ws.recv(), 10), "ok")


# As test_stream's _CUT_FRAME_READER, over asyncio: the reader's loop went
# round without awaiting, so not even wait_for() could end it and the
# whole event loop hung.
_CUT_FRAME_READER = r"""
import asyncio, socket, time
import lightws.asyncio as lwa
from _helpers import frame

async def main():
    a, b = socket.socketpair()
    for x in (a, b):
        x.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        x.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    ws = lwa.WebSocket(a, client=False)
    task = asyncio.ensure_future(ws.send(b"x" * (1 << 20)))
    await asyncio.sleep(0.2)
    task.cancel()                      # the frame is under way: its rest is kept
    try:
        await task
    except asyncio.CancelledError:
        pass
    assert ws.pending
    ws._c.ping(b"mine")                # queued behind the cut frame
    b.sendall(frame(0x9, b"theirs", mask=b"abcd"))
    t0 = time.monotonic()
    try:
        await asyncio.wait_for(ws.recv(), 1.0)
    except asyncio.TimeoutError:
        pass
    print("%.2f" % (time.monotonic() - t0))

asyncio.run(main())
"""


class TestNoSpin(unittest.TestCase):
    def test_reader_behind_a_cut_frame_keeps_the_loop_running(self):
        try:
            r = subprocess.run([sys.executable, "-c", _CUT_FRAME_READER],
                               capture_output=True, text=True, timeout=30,
                               cwd=os.path.dirname(os.path.abspath(__file__)))
        except subprocess.TimeoutExpired:
            self.fail("recv() spun and blocked the event loop")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertLess(float(r.stdout.split()[0]), 10)


if __name__ == "__main__":
    unittest.main()
