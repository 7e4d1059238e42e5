# SPDX-License-Identifier: MIT
"""wss (issue 14) interop cases: the tools over TLS (liblightws-tls) against
python websockets with `ssl` and node ws on https.createServer, both roles;
bad certificates (expired, wrong host, unknown CA) rejected with their named
error and a non-zero exit, --insecure accepting them; 1 MiB messages and
permessage-deflate over TLS; the TLS handshake within --handshake-timeout;
close_notify after a clean close. Run from interop.py (wss_cases(h), h the
interop module: run_case, report, check, ...). Certificates: tests/tls/
make_certs.sh, in $LIGHTWS_TLS_CERTS or build/tls/certs (made if missing).
"""
import asyncio
import hashlib
import os
import re
import socket
import ssl
import subprocess
import time

import websockets

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
HERE = os.path.dirname(os.path.abspath(__file__))
CERTS = os.environ.get("LIGHTWS_TLS_CERTS") or os.path.join(ROOT, "build", "tls", "certs")


def certs_ready():
    if not os.path.exists(os.path.join(CERTS, "ca.pem")):
        subprocess.run(["bash", os.path.join(ROOT, "tests", "tls", "make_certs.sh"), CERTS],
                       check=True, stdout=subprocess.DEVNULL)
    return CERTS


def cert(name):
    return os.path.join(CERTS, name)


def tls_built(echo):
    """1 if the tools were built with TLS (else they say so for wss://)."""
    r = subprocess.run([echo, "--client", "wss://127.0.0.1:1/"], capture_output=True, timeout=10)
    return b"needs a build with TLS" not in r.stderr


def client_ctx():
    ctx = ssl.create_default_context(cafile=cert("ca.pem"))
    return ctx


def server_ctx(name="server"):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert(name + ".pem"), cert(name + ".key"))
    return ctx


async def wss_cases(h):
    check = h.check
    if not tls_built(h.ECHO):
        print("skip  wss: the tools were built with TLS=0", flush=True)
        return
    certs_ready()
    tls_args = ["--tls-cert", cert("server.pem"), "--tls-key", cert("server.key")]

    # --- lightws-echo --tls-cert <- python websockets / node ws / raw TLS ---
    proc, port = await h.start_echo("--max-message", str(4 << 20), "--ping-interval", "0.3",
                                    "--ping-timeout", "5", *tls_args)
    # the handshake timeout cases have their own server (a loaded machine
    # may take over a second for 60 TLS handshakes at once)
    proc_to, port_to = await h.start_echo("--handshake-timeout", "1", *tls_args)
    url = f"wss://localhost:{port}/wss?q=1"
    pre = "wss: echo-server --tls-cert <- python websockets (test CA)"
    try:
        async def py_plain():
            async with websockets.connect(url, ssl=client_ctx(), max_size=None, compression=None,
                                          ping_interval=None, open_timeout=10) as ws:
                for msg in ["h\u00e9llo tls", "", os.urandom(1 << 20), b"", ["frag", "ment"]]:
                    await ws.send(msg)
                    got = await ws.recv()
                    want = "".join(msg) if isinstance(msg, list) else msg
                    check(got == want, f"echo of {type(msg).__name__} {len(want)} differs")
                waiter = await ws.ping(b"tls-ping")
                await asyncio.wait_for(waiter, 5)
                await ws.close(4000, "tls bye")
                check(ws.close_code == 4000, f"close code {ws.close_code}")
        await h.run_case(f"{pre}: text, empty, 1 MiB binary, fragmented, ping, close 4000", py_plain())

        async def py_deflate():
            async with websockets.connect(url.replace("/wss?", "/wss-deflate?"), ssl=client_ctx(),
                                          max_size=None, ping_interval=None) as ws:
                ext = ws.response_headers.get("Sec-WebSocket-Extensions", "")
                check(ext.startswith("permessage-deflate"), f"extension {ext!r}")
                text = "compress me over tls " * 50000  # ~1 MiB
                for msg in [text, os.urandom(1 << 20), "x"]:
                    await ws.send(msg)
                    check(await ws.recv() == msg, "compressed echo differs")
        await h.run_case(f"{pre}: permessage-deflate, 1 MiB compressible text and 1 MiB random",
                         py_deflate())

        def raw_tls(path):
            """A raw TLS client after its 101: (socket, bytes after the head)."""
            raw = socket.create_connection(("127.0.0.1", port), timeout=5)
            s = client_ctx().wrap_socket(raw, server_hostname="localhost",
                                         suppress_ragged_eofs=False)
            s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                      b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      b"Sec-WebSocket-Version: 13\r\n\r\n")
            buf = b""
            while b"\r\n\r\n" not in buf:
                d = s.recv(4096)
                check(d, "EOF in the 101")
                buf += d
            check(buf.startswith(b"HTTP/1.1 101"), f"response {buf[:40]!r}")
            return s, buf.split(b"\r\n\r\n", 1)[1]

        def keepalive():
            # --ping-interval 0.3: two pings come through the TLS layer to a
            # quiet client, the first answered with its pong
            s, rest = raw_tls(b"/keepalive")
            t0 = time.monotonic()
            pings = 0
            while pings < 2:
                while len(rest) < 2 or len(rest) < 2 + (rest[1] & 0x7f):
                    d = s.recv(4096)
                    check(d, "EOF before the pings")
                    rest += d
                n = 2 + (rest[1] & 0x7f)
                frame, rest = rest[:n], rest[n:]
                check(frame[0] == 0x89, f"frame {frame!r}, want a ping")
                pings += 1
                s.sendall(h.masked_frame(10, frame[2:]))
            dt = time.monotonic() - t0
            check(0.4 < dt < 3, f"two pings after {dt:.2f} s")
            s.sendall(h.masked_frame(8, b"\x03\xe8"))
            s.close()
        await h.run_case(f"wss: echo-server --tls-cert keepalive: pings to a quiet TLS client "
                         "(--ping-interval 0.3)", h.in_thread(keepalive))

        async def py_many():
            async def one(i):
                async with websockets.connect(url, ssl=client_ctx(), compression=None,
                                              ping_interval=None) as ws:
                    for j in range(10):
                        msg = os.urandom(500 + 97 * i + j)
                        await ws.send(msg)
                        check(await ws.recv() == msg, f"client {i} message {j}")
            await asyncio.gather(*(one(i) for i in range(60)))
        await h.run_case(f"{pre}: 60 concurrent TLS clients", py_many())

        if h.node_ws_missing():
            h.report("wss: echo-server --tls-cert <- node ws client", False, h.node_ws_missing())
        else:
            await h.node_lines([os.path.join(HERE, "node_wss.js"), "client", CERTS,
                                f"wss://localhost:{port}/node-wss"],
                               "wss: echo-server --tls-cert <- node ws client (ca)")

        def close_notify():
            # A raw TLS client: after the close handshake the server's
            # close_notify must come before its FIN (suppress_ragged_eofs
            # off: a bare TCP end raises SSLEOFError).
            s, rest = raw_tls(b"/notify")
            s.sendall(h.masked_frame(8, b"\x03\xe8"))
            try:
                while True:
                    d = s.recv(4096)
                    if not d:
                        break
                    rest += d
            except ssl.SSLEOFError as e:
                raise AssertionError(f"TCP ended without close_notify ({e})")
            check(rest[:4] == b"\x88\x02\x03\xe8", f"close reply {rest[:8]!r}")
            s.close()
        await h.run_case("wss: echo-server sends close_notify after the close handshake",
                         h.in_thread(close_notify))

        def handshake_timeouts():
            port = port_to
            t0 = time.monotonic()
            quiet = socket.create_connection(("127.0.0.1", port), timeout=5)
            partial = socket.create_connection(("127.0.0.1", port), timeout=5)
            partial.sendall(b"\x16\x03\x01\x02\x00\x01")  # a ClientHello cut short
            slow = client_ctx().wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5),
                                            server_hostname="localhost")  # TLS done
            slow.sendall(b"GET /slow HTTP/1.1\r\n")  # ... and a request cut short
            got = b""
            for s in (quiet, partial, slow):
                try:
                    while True:
                        d = s.recv(4096)
                        if not d:
                            break
                        if s is slow:
                            got += d
                except (ConnectionError, ssl.SSLError, OSError):
                    pass
            dt = time.monotonic() - t0
            check(0.7 < dt < 3, f"closed after {dt:.2f} s, want ~1 s (--handshake-timeout 1)")
            check(got.startswith(b"HTTP/1.1 408 "), f"cut request got {got[:40]!r}, want a 408")
        await h.run_case("wss: echo-server TLS handshake (silent, cut ClientHello) and the request "
                         "after it (408 through TLS) bounded by --handshake-timeout", h.in_thread(handshake_timeouts))

        async def plain_to_tls():
            try:
                async with websockets.connect(f"ws://127.0.0.1:{port}/plain", open_timeout=5):
                    pass
            except Exception:
                return
            raise AssertionError("a ws:// client got through to a wss:// server")
        await h.run_case("wss: echo-server --tls-cert refuses a ws:// client", plain_to_tls())
    finally:
        await h.stop(proc)
        await h.stop(proc_to)
    log = (await proc.stderr.read()).decode(errors="replace")
    log += (await proc_to.stderr.read()).decode(errors="replace")
    want = ["/wss?q=1 messages 5 bytes 1048594 close 4000 'tls bye' wss",
            "/wss-deflate?q=1 messages 3 bytes", "permessage-deflate wss",
            "/node-wss messages 3", "close 4003 'node tls bye'",
            "/notify messages 0 bytes 0 close 1000 wss", "/keepalive messages 0 bytes 0 close 1000 wss", "(HANDSHAKE_TIMEOUT) wss",
            "(TLS_HANDSHAKE) wss"]
    missing = [w for w in want if w not in log]
    h.report("wss: echo-server logged its TLS connections (wss, errors named)", not missing,
             f"missing {missing} in {log[-1500:]!r}")
    h.report("wss: echo-server exits 0 on SIGTERM", proc.returncode == 0, f"exit {proc.returncode}")

    # --- lightws-echo --client wss:// -> python websockets server with ssl --
    async def echo_client_py(compression):
        path = "/runCase?case=1&tls=1"
        result = {}

        async def handler(ws, _path=None):
            try:
                await ws.send("h\u00e9llo tls client")
                check(await ws.recv() == "h\u00e9llo tls client", "text echo")
                data = os.urandom(1 << 20)
                await ws.send(data)
                check(await ws.recv() == data, "1 MiB binary echo")
                text = "deflate me " * 100000
                await ws.send(text)
                check(await ws.recv() == text, "1.1 MiB text echo")
                waiter = await ws.ping(b"srv")
                await asyncio.wait_for(waiter, 5)
                await ws.close(4001, "tls server bye")
                result["ok"] = True
            except Exception as e:
                result["err"] = f"{type(e).__name__}: {e}"

        async with websockets.serve(handler, "127.0.0.1", 0, ssl=server_ctx(), max_size=None,
                                    compression=compression, ping_interval=None) as server:
            p = server.sockets[0].getsockname()[1]
            rc, err = await h.echo_client_run(f"wss://localhost:{p}{path}", "--cafile", cert("ca.pem"))
        check("err" not in result, result.get("err", ""))
        check(result.get("ok"), "server handler did not finish")
        check(rc == 0, f"exit {rc}: {err}")
        tail = " permessage-deflate" if compression else ""
        check(f"server closed with 4001 'tls server bye'{tail}" in err, f"stderr {err!r}")
    pre = "wss: echo-client wss:// --cafile -> python websockets server (ssl)"
    await h.run_case(f"{pre}: text, 1 MiB, ping, close 4001", echo_client_py(None))
    await h.run_case(f"{pre}: permessage-deflate", echo_client_py("deflate"))

    # --- bad certificates: named errors, exit 1; --insecure accepts -------
    async def serve_with(name, addr="127.0.0.1"):
        async def handler(ws, _path=None):
            try:
                await ws.send(b"greeting")
                await ws.recv()  # the echo client's echo (cat sends nothing)
                await ws.close(1000)
            except websockets.ConnectionClosed:
                pass
        return await websockets.serve(handler, addr, 0, ssl=server_ctx(name),
                                      ping_interval=None)

    async def cat_run(*args, data=b""):
        p = await asyncio.create_subprocess_exec(
            h.CAT, *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(p.communicate(data), h.CASE_TIMEOUT)
        return p.returncode, out, err.decode(errors="replace").strip()

    for name, host, want in [("expired", "localhost", "TLS_CERT_EXPIRED"),
                             ("wronghost", "localhost", "TLS_CERT_HOSTNAME"),
                             ("unknown", "localhost", "TLS_CERT_UNTRUSTED"),
                             ("server", "127.0.0.2", "TLS_CERT_HOSTNAME"),
                             ("server", None, "TLS_CERT_UNTRUSTED")]:
        async def bad(name=name, host=host, want=want):
            server = await serve_with(name, "127.0.0.2" if host == "127.0.0.2" else "127.0.0.1")
            try:
                p = server.sockets[0].getsockname()[1]
                url = f"wss://{host or 'localhost'}:{p}/bad"
                ca = ["--cafile", cert("ca.pem")] if host else []  # None: the system store
                rc, err = await h.echo_client_run(url, *ca)
                check(rc == 1 and want in err, f"echo --client exit {rc}: {err!r}")
                rc, out, err = await cat_run(*ca, url)
                check(rc == 1 and want in err, f"cat exit {rc}: {err!r}")
                # --insecure: no verification at all
                rc, out, err = await cat_run("--insecure", url)
                check(rc == 0 and out == b"greeting", f"cat --insecure exit {rc} out {out!r}: {err!r}")
                rc, err = await h.echo_client_run(url, "--insecure")
                check(rc == 0 and "server closed with 1000" in err,
                      f"echo --client --insecure exit {rc}: {err!r}")
            finally:
                server.close()
                await server.wait_closed()
        label = f"{name} certificate" + (f" for {host}" if name == "server" and host else "") + \
            (" and no --cafile (system store)" if host is None else "")
        if host == "127.0.0.2":
            # 127.0.0.2 is loopback too on Linux: the certificate names 127.0.0.1
            label = "server certificate reached as 127.0.0.2"
        await h.run_case(f"wss: {label} -> {want} (echo --client, cat: exit 1); --insecure accepts",
                         bad())

    # --- lightws-cat wss:// -> node ws on https.createServer --------------
    async def cat_node():
        if h.node_ws_missing():
            raise AssertionError(h.node_ws_missing())
        node = await asyncio.create_subprocess_exec(
            "node", os.path.join(HERE, "node_wss.js"), "server", CERTS, str(300000),
            stdout=asyncio.subprocess.PIPE, env=h.NODE_ENV)
        try:
            p = await h.read_listening(node.stdout, "node https server")
            data = os.urandom(1 << 20)
            rc, out, err = await cat_run("--cafile", cert("ca.pem"), f"wss://localhost:{p}/cat",
                                         data=data)
            line = (await asyncio.wait_for(node.stdout.readline(), 10)).decode()
            check(rc == 0, f"cat exit {rc}: {err}")
            check(out == ("greeting " * 40000).encode()[:300000], f"cat got {len(out)} bytes")
            want = f"got {len(data)} bytes sha256 {hashlib.sha256(data).hexdigest()} close 1000 " \
                   "ext permessage-deflate"
            check(line.strip() == want, f"node: {line.strip()!r}")
        finally:
            await h.stop(node)
    await h.run_case("wss: cat wss:// --cafile -> node ws on https.createServer (perMessageDeflate): "
                     "1 MiB up, 300 KB down, close 1000", cat_node())

    # --- lightws-cat --listen --tls-cert <- python websockets client ------
    async def cat_listen(compression):
        data = os.urandom(1 << 20)
        cat = await asyncio.create_subprocess_exec(
            h.CAT, "--listen", "0", "--host", "127.0.0.1", *tls_args, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            p = await h.read_listening(cat.stderr, "lightws-cat --listen --tls-cert")
            async with websockets.connect(f"wss://localhost:{p}/", ssl=client_ctx(), max_size=None,
                                          compression=compression, ping_interval=None) as ws:
                ext = ws.response_headers.get("Sec-WebSocket-Extensions", "")
                check(bool(ext) == bool(compression), f"extension {ext!r}")
                await ws.send(b"client->cat over tls")
                cat.stdin.write(data)
                await cat.stdin.drain()
                cat.stdin.close()
                got = []
                async for msg in ws:
                    got.append(msg)
                check(ws.close_code == 1000, f"cat closed with {ws.close_code}")
            check(b"".join(got) == data, f"client got {sum(map(len, got))} bytes, want {len(data)}")
            out = await asyncio.wait_for(cat.stdout.read(), 10)
            rc = await asyncio.wait_for(cat.wait(), 10)
            check(rc == 0, f"lightws-cat exit {rc}")
            check(out == b"client->cat over tls", f"cat stdout {out!r}")
        finally:
            await h.stop(cat)
    pre = "wss: cat --listen --tls-cert <- python websockets client"
    await h.run_case(f"{pre}: 1 MiB", cat_listen(None))
    await h.run_case(f"{pre}: permessage-deflate, 1 MiB", cat_listen("deflate"))

    # --- both ends lightws: cat --listen --tls-cert <-> echo --client wss:// --
    async def pair():
        data = ("pair over tls " * 30000).encode()
        cat = await asyncio.create_subprocess_exec(
            h.CAT, "--listen", "0", "--host", "127.0.0.1", *tls_args, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            p = await h.read_listening(cat.stderr, "lightws-cat --listen --tls-cert")
            echo = asyncio.ensure_future(h.echo_client_run(f"wss://127.0.0.1:{p}/pair", "--cafile",
                                                           cert("ca.pem")))
            reader = asyncio.ensure_future(cat.stdout.read())  # while stdin is written
            cat.stdin.write(data)
            await cat.stdin.drain()
            cat.stdin.close()
            out = await asyncio.wait_for(reader, h.CASE_TIMEOUT)
            rc = await asyncio.wait_for(cat.wait(), 10)
            erc, err = await asyncio.wait_for(echo, h.CASE_TIMEOUT)
            check(rc == 0, f"cat exit {rc}")
            check(out == data, f"cat got {len(out)} bytes back, want {len(data)}")
            check(erc == 0 and "server closed with 1000 '' permessage-deflate" in err,
                  f"echo client exit {erc}: {err!r}")
        finally:
            await h.stop(cat)
    await h.run_case("wss: cat --listen --tls-cert <-> echo --client wss://127.0.0.1 (IP in the "
                     "certificate), permessage-deflate", pair())
