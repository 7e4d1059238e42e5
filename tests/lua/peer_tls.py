#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""TLS peers for tests/lua/tls_spec.lua (python websockets 10.4 + ssl).
  peer_tls.py servers CERTDIR
      echo servers over TLS, one per certificate (server, expired, wronghost,
      unknown) and mtls (server.pem, client certificates of ca.pem required);
      prints "listening server=P expired=P wronghost=P unknown=P mtls=P".
      Paths: /echo (default); /truncate: after the first message, the TCP
      connection ends without close_notify or close frame; /notify: after the
      first message, close_notify and TCP end, no close frame; /quiet: reads,
      never answers.
  peer_tls.py client URL CAFILE [CERT KEY]
      checks an echo server over TLS: text, binary, 1 MiB, fragments, ping,
      close 1000; exit 0 if all pass.
  peer_tls.py silent PORT CAFILE
      completes the TLS handshake, sends nothing, prints the first line the
      server sends ("first HTTP/1.1 408 ...") or "first EOF".
  peer_tls.py rawclient PORT CAFILE
      a websocket client on a bare ssl socket: "hi" echoed, close 1000, then
      prints how the TLS stream ended: "end close_notify" or "end truncated"."""
import asyncio, os, socket, ssl, struct, sys

import websockets


async def handler(ws, path):
    try:
        if path == "/quiet":
            async for _ in ws:
                pass
            return
        async for msg in ws:
            if path == "/truncate":
                ws.transport.abort()        # no close_notify, no close frame
                return
            if path == "/notify":
                ws.transport.close()        # close_notify, then TCP end
                return
            await ws.send(msg)
    except websockets.ConnectionClosed:
        pass


async def servers(certdir):
    ports = []
    for name in ("server", "expired", "wronghost", "unknown", "mtls"):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert = "server" if name == "mtls" else name
        ctx.load_cert_chain(os.path.join(certdir, cert + ".pem"), os.path.join(certdir, cert + ".key"))
        if name == "mtls":              # client certificates of the test CA required
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(os.path.join(certdir, "ca.pem"))
        srv = await websockets.serve(handler, "127.0.0.1", 0, ssl=ctx, max_size=None)
        ports.append("%s=%d" % (name, srv.sockets[0].getsockname()[1]))
    print("listening " + " ".join(ports), flush=True)
    await asyncio.Future()


async def client(url, cafile, cert=None, key=None):
    fails = 0

    def check(cond, what):
        nonlocal fails
        print(("pass " if cond else "FAIL ") + what, flush=True)
        fails += 0 if cond else 1

    ctx = ssl.create_default_context(cafile=cafile)
    if cert:
        ctx.load_cert_chain(cert, key)
    async with websockets.connect(url, ssl=ctx, max_size=None) as ws:
        await ws.send("hello")
        check(await ws.recv() == "hello", "text")
        await ws.send(b"\x00\xff")
        check(await ws.recv() == b"\x00\xff", "binary")
        big = os.urandom(1 << 20)
        await ws.send(big)
        check(await ws.recv() == big, "1 MiB binary")
        await ws.send(["frag", "men", "ted"])
        check(await ws.recv() == "fragmented", "fragmented text")
        await asyncio.wait_for(await ws.ping(b"pp"), 5)
        check(True, "ping answered")
        await ws.close(1000, "bye")
        check(ws.close_code == 1000, "close 1000 answered (%s)" % ws.close_code)
    return fails


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        d = s.recv(n - len(b))
        if not d:
            raise EOFError("EOF")
        b += d
    return b


def read_frame(s):
    h = recv_exact(s, 2)
    n = h[1] & 0x7F
    if n == 126:
        n = struct.unpack("!H", recv_exact(s, 2))[0]
    elif n == 127:
        n = struct.unpack("!Q", recv_exact(s, 8))[0]
    return h[0] & 0x0F, recv_exact(s, n)


def masked(op, payload):
    key = b"\x01\x02\x03\x04"
    return bytes([0x80 | op, 0x80 | len(payload)]) + key + bytes(
        c ^ key[i % 4] for i, c in enumerate(payload))


def rawclient(port, cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    s = ctx.wrap_socket(raw, server_hostname="localhost", suppress_ragged_eofs=False)
    s.sendall(b"GET /raw HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
              b"Sec-WebSocket-Version: 13\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    s.sendall(masked(1, b"hi"))
    op, p = read_frame(s)
    print("echo", op, p.decode(), flush=True)
    s.sendall(masked(8, struct.pack("!H", 1000)))
    op, p = read_frame(s)
    print("close", op, struct.unpack("!H", p[:2])[0], flush=True)
    try:
        d = s.recv(1)
        print("end close_notify" if d == b"" else "end data", flush=True)
    except ssl.SSLEOFError:
        print("end truncated", flush=True)


def silent(port, cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    data = b""
    while b"\r\n" not in data:
        d = s.recv(4096)
        if not d:
            break
        data += d
    print("first " + (data.split(b"\r\n")[0].decode() if data else "EOF"), flush=True)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "servers":
        asyncio.run(servers(sys.argv[2]))
    elif mode == "client":
        sys.exit(1 if asyncio.run(client(*sys.argv[2:6])) else 0)
    elif mode == "silent":
        silent(int(sys.argv[2]), sys.argv[3])
    else:
        rawclient(int(sys.argv[2]), sys.argv[3])
