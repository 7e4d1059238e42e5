#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""End-to-end tests of build/lightws-tunnel on loopback (issue 17).

A TCP target (echo, or a scripted one) behind `lightws-tunnel server`,
`lightws-tunnel client` in front, and real sockets through both: many
concurrent connections with checksums both ways, half-close in each
direction, a refused target, a remote that disappears, wss, SIP003 and
python websockets on either side. Every wait has a deadline.

usage: run.py --tool build/lightws-tunnel [--certs build/tls/certs] [--quick]
"""
import argparse
import asyncio
import hashlib
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time

ARGS = None
FAILS = []
LOGDIR = tempfile.mkdtemp(prefix="tunnel-test-")


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 65536)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


class Proc:
    """A tunnel process; its 'listening on' port and its stderr log."""
    n = 0

    def __init__(self, args, env=None, expect_listen=True):
        Proc.n += 1
        self.logpath = os.path.join(LOGDIR, "p%d.log" % Proc.n)
        self.log = open(self.logpath, "w+")
        self.args = [ARGS.tool] + args
        self.p = subprocess.Popen(self.args, stdout=subprocess.PIPE,
                                  stderr=self.log, env=env, text=True)
        self.port = None
        if expect_listen:
            line = self._readline(5.0)
            if not line.startswith("listening on "):
                self.stop()
                raise RuntimeError("%s: no 'listening on' line (%r); log: %s"
                                   % (args, line, self.text()))
            self.port = int(line.rsplit(":", 1)[1])

    def _readline(self, timeout):
        import selectors
        sel = selectors.DefaultSelector()
        sel.register(self.p.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            return ""
        return self.p.stdout.readline().strip()

    def text(self):
        self.log.flush()
        with open(self.logpath) as f:
            return f.read()

    def wait_log(self, needle, timeout=5.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if needle in self.text():
                return True
            time.sleep(0.02)
        return False

    def stop(self, sig=signal.SIGTERM):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
            # after SIGTERM the tool exits 0; a sanitizer report makes it 1
            if sig == signal.SIGTERM and self.p.returncode != 0:
                check("%s exits 0 after SIGTERM" % " ".join(self.args[1:3]), False,
                      "status %s\n%s" % (self.p.returncode, self.text()[-3000:]))
        return self.p.returncode


def check(name, cond, detail=""):
    if cond:
        print("  ok   %s" % name)
    else:
        print("  FAIL %s %s" % (name, detail))
        FAILS.append(name)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


# ---- TCP targets (asyncio, in this process) ---------------------------------

async def echo_target():
    async def handle(r, w):
        try:
            while True:
                d = await r.read(65536)
                if not d:
                    break
                w.write(d)
                await w.drain()
            w.write_eof()
            await w.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            w.close()
    srv = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096)
    return srv, srv.sockets[0].getsockname()[1]


async def one_echo(port, size, seed):
    """Sends `size` random bytes, reads the echo, compares checksums."""
    data = (hashlib.sha256(b"%d" % seed).digest() * (size // 32 + 1))[:size]
    data = bytes(b ^ (i * 7 & 0xff) for i, b in enumerate(data[:64])) + data[64:]
    r, w = await asyncio.open_connection("127.0.0.1", port)
    got = hashlib.sha256()
    n = 0

    async def reader():
        nonlocal n
        while True:
            d = await r.read(65536)
            if not d:
                return
            got.update(d)
            n += len(d)
    rt = asyncio.ensure_future(reader())
    for i in range(0, size, 8192):
        w.write(data[i:i + 8192])
        await w.drain()
    w.write_eof()
    await rt
    w.close()
    return n == size and got.digest() == hashlib.sha256(data).digest()


def echo_pair(sargs=(), cargs=(), scheme="ws", host="127.0.0.1", path="/t"):
    """Starts target (returns it), server and client."""
    return sargs, cargs


async def with_tunnel(body, sargs=(), cargs=(), scheme="ws", host="127.0.0.1",
                      path="/t", target=None):
    if target is None:
        srv, tport = await echo_target()
    else:
        srv, tport = target
    s = Proc(["server", "--listen", "127.0.0.1:0", "--target",
              "127.0.0.1:%d" % tport] + list(sargs))
    c = Proc(["client", "--listen", "127.0.0.1:0", "--remote",
              "%s://%s:%d%s" % (scheme, host, s.port, path)] + list(cargs))
    try:
        return await body(s, c, tport)
    finally:
        rc_c = c.stop()
        rc_s = s.stop()
        srv.close()
        if rc_c != 0 or rc_s != 0:
            check("clean exit after SIGTERM", False,
                  "client %s server %s\n%s\n%s" % (rc_c, rc_s, c.text()[-2000:],
                                                   s.text()[-2000:]))


# ---- cases ------------------------------------------------------------------

async def t_many(n_conns, label=""):
    async def body(s, c, tport):
        t0 = time.monotonic()
        sizes = [1 + (i * 7919) % 6000 for i in range(n_conns)]
        res = await asyncio.wait_for(
            asyncio.gather(*[one_echo(c.port, sz, i) for i, sz in enumerate(sizes)],
                           return_exceptions=True), 30)
        good = sum(1 for x in res if x is True)
        check("%d concurrent connections, checksums both ways%s (%.1f s)"
              % (n_conns, label, time.monotonic() - t0), good == n_conns,
              "%d/%d good; first error: %r" % (
                  good, n_conns, next((x for x in res if x is not True), None)))
        ok = c.wait_log("done (close 1000)") and s.wait_log("done (close 1000)")
        check("log line per connection with bytes and close reason", ok,
              c.text()[-500:])
        lines = [l for l in c.text().splitlines() if "tcp>ws" in l]
        check("one log line per connection", c.wait_log("ms: ", 1) and
              _count_eventually(c, "tcp>ws", n_conns), "%d lines" % len(lines))
    await with_tunnel(body)


def _count_eventually(p, needle, n, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if p.text().count(needle) >= n:
            return True
        time.sleep(0.05)
    return False


async def t_large():
    async def body(s, c, tport):
        ok = await asyncio.wait_for(one_echo(c.port, 3 << 20, 99), 20)
        check("3 MiB both ways through one connection (back-pressure)", ok)
    await with_tunnel(body)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for l in f:
            if l.startswith("VmRSS:"):
                return int(l.split()[1])
    return 0


async def t_backpressure():
    """A target that stops reading stops the application's writes: the
    tunnel buffers at most a relay buffer per direction, the kernels' socket
    buffers hold the rest, and nothing is lost when reading resumes."""
    # more than the three TCP connections on the path can buffer
    # (tcp_rmem + tcp_wmem maxima each), so the writer must stall
    try:
        mx = sum(int(open("/proc/sys/net/ipv4/tcp_%s" % k).read().split()[2])
                 for k in ("rmem", "wmem"))
    except (OSError, ValueError, IndexError):
        mx = 10 << 20
    total = min(3 * mx + (16 << 20), 256 << 20)
    release = asyncio.Event()
    got = asyncio.get_running_loop().create_future()

    async def handle(r, w):
        await release.wait()
        h, n = hashlib.sha256(), 0
        while True:
            d = await r.read(1 << 20)
            if not d:
                break
            h.update(d)
            n += len(d)
        got.set_result((n, h.digest()))
        w.close()
    srv = await asyncio.start_server(handle, "127.0.0.1", 0)

    async def body(s, c, tport):
        r0 = rss_kib(c.p.pid) + rss_kib(s.p.pid)
        r, w = await asyncio.open_connection("127.0.0.1", c.port)
        chunk = os.urandom(1 << 20)
        h, sent = hashlib.sha256(), 0
        t_end = time.monotonic() + 1.5
        while sent < total and time.monotonic() < t_end:
            w.write(chunk)
            h.update(chunk)
            sent += len(chunk)
            try:
                await asyncio.wait_for(w.drain(), max(0.01, t_end - time.monotonic()))
            except asyncio.TimeoutError:
                break
        stalled = sent < total
        r1 = rss_kib(c.p.pid) + rss_kib(s.p.pid)
        check("back-pressure: a target that does not read stops the writer "
              "(%d MiB accepted of %d)" % (sent >> 20, total >> 20), stalled)
        check("back-pressure: tunnel memory stays flat while stalled (+%d KiB)"
              % (r1 - r0), r1 - r0 < 2048)
        release.set()
        while sent < total:
            w.write(chunk)
            h.update(chunk)
            sent += len(chunk)
            await asyncio.wait_for(w.drain(), 10)
        w.write_eof()
        n, dig = await asyncio.wait_for(got, 15)
        w.close()
        check("back-pressure: every byte arrives once reading resumes",
              n == total and dig == h.digest(), "%d of %d" % (n, total))
    await with_tunnel(body, target=(srv, srv.sockets[0].getsockname()[1]))


async def t_half_close_client_first():
    """Client shuts down its write side first, then still receives all."""
    payload = os.urandom(200000)

    async def handle(r, w):
        got = await r.read(-1)          # until the client's FIN
        w.write(hashlib.sha256(got).digest() + payload)
        await w.drain()
        w.close()
    srv = await asyncio.start_server(handle, "127.0.0.1", 0)

    async def body(s, c, tport):
        r, w = await asyncio.open_connection("127.0.0.1", c.port)
        data = os.urandom(100000)
        w.write(data)
        w.write_eof()
        back = await asyncio.wait_for(r.read(-1), 10)
        w.close()
        check("half-close: client FIN first, target sees it after all bytes",
              back[:32] == hashlib.sha256(data).digest())
        check("half-close: client still receives everything after its FIN",
              back[32:] == payload, "%d bytes" % len(back))
    await with_tunnel(body, target=(srv, srv.sockets[0].getsockname()[1]))


async def t_half_close_target_first():
    """The target sends and shuts down first, then reads the client's bytes."""
    greeting = os.urandom(150000)
    result = asyncio.get_running_loop().create_future()

    async def handle(r, w):
        w.write(greeting)
        await w.drain()
        w.write_eof()                  # target FIN first
        got = await r.read(-1)
        if not result.done():
            result.set_result(got)
        w.close()
    srv = await asyncio.start_server(handle, "127.0.0.1", 0)

    async def body(s, c, tport):
        r, w = await asyncio.open_connection("127.0.0.1", c.port)
        first = await asyncio.wait_for(r.read(-1), 10)   # EOF: target's FIN
        check("half-close: target FIN first reaches the client after its bytes",
              first == greeting, "%d bytes" % len(first))
        data = os.urandom(120000)
        w.write(data)
        w.write_eof()
        got = await asyncio.wait_for(result, 10)
        check("half-close: client's bytes after the target's FIN all arrive",
              got == data, "%d bytes" % len(got))
        w.close()
        check("half-close: both ends done -> close 1000",
              c.wait_log("done (close 1000)") and s.wait_log("done (close 1000)"))
    await with_tunnel(body, target=(srv, srv.sockets[0].getsockname()[1]))


async def t_refused():
    dead = free_port()
    s = Proc(["server", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:%d" % dead])
    c = Proc(["client", "--listen", "127.0.0.1:0", "--remote", "ws://127.0.0.1:%d/" % s.port])
    try:
        r, w = await asyncio.open_connection("127.0.0.1", c.port)
        w.write(b"hello")
        try:
            d = await asyncio.wait_for(r.read(100), 5)
            closed = d == b""
        except ConnectionResetError:
            closed = True
        w.close()
        check("refused target: client's connection is closed", closed)
        check("refused target: client log says HTTP 502",
              c.wait_log("remote rejected the upgrade: HTTP 502"), c.text())
        check("refused target: server log says why",
              s.wait_log("connect: Connection refused (HTTP 502 sent)"), s.text())
    finally:
        c.stop()
        s.stop()


async def t_target_silent():
    """A target whose SYNs go unanswered (its accept queue is full): the
    client gets 504 within the server's handshake timeout."""
    full = socket.socket()
    full.bind(("127.0.0.1", 0))
    full.listen(0)
    fport = full.getsockname()[1]
    fillers = []
    for _ in range(3):           # the queue holds backlog + 1; then SYNs drop
        f = socket.socket()
        f.setblocking(False)
        try:
            f.connect(("127.0.0.1", fport))
        except BlockingIOError:
            pass
        fillers.append(f)
    await asyncio.sleep(0.1)
    s = Proc(["server", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:%d" % fport,
              "--handshake-timeout", "0.5"])
    c = Proc(["client", "--listen", "127.0.0.1:0", "--remote", "ws://127.0.0.1:%d/" % s.port])
    try:
        r, w = await asyncio.open_connection("127.0.0.1", c.port)
        t0 = time.monotonic()
        try:
            d = await asyncio.wait_for(r.read(10), 5)
        except ConnectionResetError:
            d = b""
        dt = time.monotonic() - t0
        w.close()
        check("silent target: client gets 504 after the server's handshake "
              "timeout (%.2f s)" % dt,
              d == b"" and c.wait_log("HTTP 504") and s.wait_log("(HTTP 504 sent)"),
              c.text()[-300:] + s.text()[-300:])
    finally:
        c.stop()
        s.stop()
        for f in fillers:
            f.close()
        full.close()


async def t_remote_refused():
    c = Proc(["client", "--listen", "127.0.0.1:0", "--remote",
              "ws://127.0.0.1:%d/" % free_port()])
    try:
        try:
            # the tunnel may reset our connection before asyncio saw its
            # connect complete: then the connect itself reports the reset
            r, w = await asyncio.open_connection("127.0.0.1", c.port)
        except ConnectionResetError:
            r = w = None
        try:
            d = await asyncio.wait_for(r.read(10), 5) if r else b""
        except ConnectionResetError:
            d = b""
        if w:
            w.close()
        check("remote refuses TCP: local connection closed, log says why",
              d == b"" and c.wait_log("connect: Connection refused"), c.text()[-300:])
    finally:
        c.stop()


async def t_remote_disappears():
    srv, tport = await echo_target()
    s = Proc(["server", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:%d" % tport])
    c = Proc(["client", "--listen", "127.0.0.1:0", "--remote", "ws://127.0.0.1:%d/" % s.port])
    try:
        r, w = await asyncio.open_connection("127.0.0.1", c.port)
        w.write(b"x" * 10000)
        await w.drain()
        d = await asyncio.wait_for(r.readexactly(10000), 5)
        s.stop(signal.SIGKILL)          # the remote vanishes mid-stream
        w.write(b"y" * 1000)
        t0 = time.monotonic()
        try:
            rest = await asyncio.wait_for(r.read(-1), 5)
            how = "EOF after %d bytes" % len(rest)
        except ConnectionResetError:
            how = "reset"
        w.close()
        check("remote disappears: local connection ends (%s, %.2f s)"
              % (how, time.monotonic() - t0), len(d) == 10000 and how == "reset")
        check("remote disappears: log line says why",
              c.wait_log("remote read:") or c.wait_log("remote send:"), c.text()[-600:])
    finally:
        c.stop()
        s.stop()
        srv.close()


async def t_local_reset():
    """The application resets its connection: the target sees a reset too,
    never a clean end of a stream that was cut."""
    ended = asyncio.get_running_loop().create_future()

    async def handle(r, w):
        try:
            while await r.read(65536):
                pass
            how = "eof"
        except ConnectionResetError:
            how = "reset"
        if not ended.done():
            ended.set_result(how)
        w.close()
    srv = await asyncio.start_server(handle, "127.0.0.1", 0)

    async def body(s, c, tport):
        sk = socket.create_connection(("127.0.0.1", c.port))
        sk.sendall(b"z" * 5000)
        await asyncio.sleep(0.2)
        sk.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
        sk.close()
        how = await asyncio.wait_for(ended, 5)
        check("local reset: the target's connection is reset too (%s)" % how,
              how == "reset")
        check("local reset: logged on both ends",
              c.wait_log("local read: Connection reset by peer") and
              s.wait_log("remote closed 1001"), c.text()[-300:] + s.text()[-300:])
    await with_tunnel(body, target=(srv, srv.sockets[0].getsockname()[1]))


async def t_wss():
    if not ARGS.certs or not os.path.exists(os.path.join(ARGS.certs, "ca.pem")):
        print("  skip wss (no certificates / TLS=0 build)")
        return
    cert = os.path.join(ARGS.certs, "server.pem")
    key = os.path.join(ARGS.certs, "server.key")
    ca = os.path.join(ARGS.certs, "ca.pem")

    async def body(s, c, tport):
        n = 50 if ARGS.quick else 200
        res = await asyncio.wait_for(asyncio.gather(
            *[one_echo(c.port, 1 + i * 37 % 30000, i) for i in range(n)],
            return_exceptions=True), 30)
        check("wss: %d connections with checksums" % n,
              all(x is True for x in res), repr([x for x in res if x is not True][:3]))
        ok = await asyncio.wait_for(one_echo(c.port, 1 << 20, 7), 20)
        check("wss: 1 MiB both ways", ok)
        check("wss: clean close", c.wait_log("done (close 1000)"), c.text()[-400:])
    await with_tunnel(body, sargs=["--tls-cert", cert, "--tls-key", key],
                      cargs=["--cafile", ca], scheme="wss", host="localhost")

    # a client that does not trust the server's CA
    async def body2(s, c, tport):
        r, w = await asyncio.open_connection("127.0.0.1", c.port)
        try:
            d = await asyncio.wait_for(r.read(10), 5)
        except ConnectionResetError:
            d = b""
        w.close()
        check("wss: untrusted certificate closes the connection, log names it",
              d == b"" and c.wait_log("TLS_CERT_UNTRUSTED"), c.text()[-400:])
    await with_tunnel(body2, sargs=["--tls-cert", cert, "--tls-key", key],
                      cargs=["--cafile", os.path.join(ARGS.certs, "unknown-ca.pem")],
                      scheme="wss", host="localhost")


async def t_kaminari_form():
    srv, tport = await echo_target()
    s = Proc(["server", "127.0.0.1:0", "127.0.0.1:%d" % tport, "ws;host=example.com;path=/k"])
    c = Proc(["client", "127.0.0.1:0", "127.0.0.1:%d" % s.port,
              "ws;host=example.com;path=/k;mask=skip"])
    try:
        ok = await asyncio.wait_for(one_echo(c.port, 100000, 3), 10)
        check("kaminari form 'LISTEN REMOTE ws;host=;path=;mask=skip'", ok,
              c.text() + s.text())
    finally:
        c.stop()
        s.stop()
    # escapes: '\;' '\=' '\\' are literal (kaminari's README); spaces trimmed
    s = Proc(["server", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:%d" % tport,
              "--path", "/a;b=c\\d"])
    c = Proc(["client", "--listen", "127.0.0.1:0", "--remote", "ws://127.0.0.1:%d/" % s.port,
              "--opts", " ws ; host = example.com ; path=/a\\;b\\=c\\\\d;mask=fixed;"])
    try:
        ok = await asyncio.wait_for(one_echo(c.port, 1000, 4), 10)
        check("kaminari option escapes (path=/a\\;b\\=c\\\\d) and trimmed spaces", ok,
              c.text()[-300:] + s.text()[-300:])
    finally:
        c.stop()
        s.stop()
        srv.close()


async def t_sip003():
    """As shadowsocks-libev starts a plugin: no arguments, SS_* set."""
    srv, tport = await echo_target()
    sport, cport = free_port(), free_port()
    senv = dict(os.environ, SS_REMOTE_HOST="127.0.0.1", SS_REMOTE_PORT=str(sport),
                SS_LOCAL_HOST="127.0.0.1", SS_LOCAL_PORT=str(tport),
                SS_PLUGIN_OPTIONS="ws;host=example.com;path=/chat;server")
    cenv = dict(os.environ, SS_REMOTE_HOST="127.0.0.1", SS_REMOTE_PORT=str(sport),
                SS_LOCAL_HOST="127.0.0.1", SS_LOCAL_PORT=str(cport),
                SS_PLUGIN_OPTIONS="ws;host=example.com;path=/chat;mask=fixed")
    s = Proc([], env=senv)
    c = Proc([], env=cenv)
    try:
        check("SIP003: server listens on SS_REMOTE, client on SS_LOCAL",
              s.port == sport and c.port == cport)
        ok = await asyncio.wait_for(asyncio.gather(
            *[one_echo(cport, 5000 + i, i) for i in range(20)]), 10)
        check("SIP003: 20 connections through the plugin pair", all(ok))
    finally:
        c.stop()
        s.stop()
        srv.close()


async def t_websockets_remote():
    """The tunnel's client against python websockets (any RFC 6455 server)."""
    import websockets

    async def handler(ws, path=None):
        async for msg in ws:       # echo: the empty text end marker too
            await ws.send(msg)
    wss = await websockets.serve(handler, "127.0.0.1", 0, compression=None)
    wport = wss.sockets[0].getsockname()[1]
    c = Proc(["client", "--listen", "127.0.0.1:0", "--remote", "ws://127.0.0.1:%d/e" % wport])
    try:
        res = await asyncio.wait_for(asyncio.gather(
            *[one_echo(c.port, 1 + i * 997 % 50000, i) for i in range(20)]), 15)
        check("python websockets as the remote (echo): 20 connections", all(res),
              c.text()[-400:])
        check("python websockets as the remote: close handshake",
              c.wait_log("done (close 1000)"), c.text()[-400:])
    finally:
        c.stop()
        wss.close()


async def t_websockets_client():
    """python websockets as the client of the tunnel's server."""
    import websockets
    srv, tport = await echo_target()
    s = Proc(["server", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:%d" % tport,
              "--path", "/p"])
    try:
        async with websockets.connect("ws://127.0.0.1:%d/p" % s.port,
                                      compression=None, max_size=None) as ws:
            data = os.urandom(300000)
            for i in range(0, len(data), 50000):
                await ws.send(data[i:i + 50000])
            await ws.send("")            # our end of data (half-close)
            got = bytearray()
            while True:
                m = await asyncio.wait_for(ws.recv(), 10)
                if m == "":
                    break              # the server's end of data
                got.extend(m)
        check("python websockets as the client: echo through the target, "
              "half-close marker both ways", bytes(got) == data, "%d" % len(got))
        check("python websockets as the client: server logs a clean close",
              s.wait_log("done (close 1000)"), s.text()[-400:])
        try:
            async with websockets.connect("ws://127.0.0.1:%d/other" % s.port) as ws:
                pass
            st = None
        except websockets.exceptions.InvalidStatusCode as e:
            st = e.status_code
        check("server --path: another path gets 404", st == 404, repr(st))
        check("server --path: log says why", s.wait_log("is not /p (HTTP 404 sent)"))
    finally:
        s.stop()
        srv.close()


async def connect_proxy(refuse=False):
    """A minimal HTTP CONNECT proxy (RFC 7231 §4.3.6); records requests."""
    seen = []

    async def pipe(r, w):
        try:
            while True:
                d = await r.read(65536)
                if not d:
                    break
                w.write(d)
                await w.drain()
            w.write_eof()
        except (ConnectionError, OSError):
            w.close()

    async def handle(r, w):
        head = await r.readuntil(b"\r\n\r\n")
        line = head.split(b"\r\n")[0].decode()
        seen.append(line)
        method, target, _ = line.split(" ")
        if refuse or method != "CONNECT":
            w.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            await w.drain()
            w.close()
            return
        host, port = target.rsplit(":", 1)
        ur, uw = await asyncio.open_connection(host, int(port))
        w.write(b"HTTP/1.1 200 Connection established\r\nProxy-Agent: test\r\n\r\n")
        await w.drain()
        await asyncio.gather(pipe(r, uw), pipe(ur, w))
        w.close()
        uw.close()
    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    return srv, srv.sockets[0].getsockname()[1], seen


async def t_proxy():
    psrv, pport, seen = await connect_proxy()

    async def body(s, c, tport):
        res = await asyncio.wait_for(asyncio.gather(
            *[one_echo(c.port, 3000 + i, i) for i in range(20)]), 10)
        check("--proxy http://HOST:PORT: 20 connections through CONNECT",
              all(res) and len(seen) == 20 and
              seen[0] == "CONNECT 127.0.0.1:%d HTTP/1.1" % s.port, repr(seen[:2]))
    await with_tunnel(body, cargs=["--proxy", "http://127.0.0.1:%d" % pport])

    # the environment: http_proxy for ws://, no_proxy exempts the remote
    srv, tport = await echo_target()
    s = Proc(["server", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:%d" % tport])
    env = dict(os.environ, http_proxy="http://127.0.0.1:%d/" % pport)
    c = Proc(["client", "--listen", "127.0.0.1:0", "--remote",
              "ws://127.0.0.1:%d/" % s.port], env=env)
    env2 = dict(env, no_proxy="localhost,127.0.0.1")
    c2 = Proc(["client", "--listen", "127.0.0.1:0", "--remote",
               "ws://127.0.0.1:%d/" % s.port], env=env2)
    try:
        n0 = len(seen)
        ok = await asyncio.wait_for(one_echo(c.port, 10000, 1), 10)
        check("http_proxy in the environment is used", ok and len(seen) == n0 + 1)
        ok = await asyncio.wait_for(one_echo(c2.port, 10000, 2), 10)
        check("no_proxy naming the remote bypasses the proxy", ok and len(seen) == n0 + 1)
    finally:
        c.stop()
        c2.stop()
        s.stop()
        srv.close()
    psrv.close()

    psrv, pport, seen = await connect_proxy(refuse=True)

    async def body2(s, c, tport):
        r, w = await asyncio.open_connection("127.0.0.1", c.port)
        try:
            d = await asyncio.wait_for(r.read(10), 5)
        except ConnectionResetError:
            d = b""
        w.close()
        check("a proxy that refuses: connection closed, log quotes its status",
              d == b"" and c.wait_log("refused CONNECT 127.0.0.1:%d: HTTP/1.1 403 Forbidden"
                                      % s.port), c.text()[-300:])
    await with_tunnel(body2, cargs=["--proxy", "127.0.0.1:%d" % pport])
    psrv.close()


async def t_workers():
    async def body(s, c, tport):
        res = await asyncio.wait_for(asyncio.gather(
            *[one_echo(c.port, 2000, i) for i in range(200)], return_exceptions=True), 20)
        check("--workers 2 (SO_REUSEPORT): 200 connections", all(x is True for x in res))
    await with_tunnel(body, sargs=["--workers", "2"], cargs=["--workers", "2"])


async def t_idle():
    async def body(s, c, tport):
        r, w = await asyncio.open_connection("127.0.0.1", c.port)
        t0 = time.monotonic()
        try:
            d = await asyncio.wait_for(r.read(10), 5)
        except ConnectionResetError:
            d = b""
        dt = time.monotonic() - t0
        w.close()
        check("--idle-timeout 0.4 ends a quiet tunnel (%.2f s)" % dt,
              d == b"" and 0.3 < dt < 3 and c.wait_log("idle timeout"), c.text()[-300:])
    await with_tunnel(body, cargs=["--idle-timeout", "0.4", "--ping-interval", "0.1"])


async def silent_ws_server(answer):
    """Accepts TCP; with `answer` completes the upgrade, then says nothing
    more (never a pong); without, never answers the request."""
    import base64
    conns = []

    async def handle(r, w):
        conns.append(w)
        head = await r.readuntil(b"\r\n\r\n")
        if not answer:
            await asyncio.sleep(30)
            return
        key = [l.split(b":", 1)[1].strip() for l in head.split(b"\r\n")
               if l.lower().startswith(b"sec-websocket-key:")][0]
        acc = base64.b64encode(hashlib.sha1(
            key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
        w.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + acc + b"\r\n\r\n")
        await w.drain()
        await asyncio.sleep(30)
    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    return srv, srv.sockets[0].getsockname()[1], conns


async def t_timeouts():
    for answer, args, needle, label in (
            (False, ["--handshake-timeout", "0.3"], "HANDSHAKE_TIMEOUT",
             "--handshake-timeout 0.3: a remote that never answers"),
            (True, ["--ping-interval", "0.2", "--ping-timeout", "0.3"], "PING_TIMEOUT",
             "--ping-interval 0.2 --ping-timeout 0.3: a remote that never pongs")):
        srv, port, conns = await silent_ws_server(answer)
        c = Proc(["client", "--listen", "127.0.0.1:0", "--remote",
                  "ws://127.0.0.1:%d/" % port] + args)
        try:
            r, w = await asyncio.open_connection("127.0.0.1", c.port)
            t0 = time.monotonic()
            try:
                d = await asyncio.wait_for(r.read(10), 5)
            except ConnectionResetError:
                d = b""
            dt = time.monotonic() - t0
            w.close()
            check("%s ends the tunnel (%.2f s), log names %s" % (label, dt, needle),
                  d == b"" and dt < 3 and c.wait_log(needle), c.text()[-400:])
        finally:
            c.stop()
            for x in conns:
                x.close()
            srv.close()


def t_bad_cli():
    cases = [
        ([], "no SIP003 environment"),
        (["proxy"], "first argument must be 'client' or 'server'"),
        (["client", "--remote", "ws://127.0.0.1:1/"], "--listen ADDR:PORT is required"),
        (["client", "--listen", "127.0.0.1"], "expected HOST:PORT"),
        (["client", "--listen", "127.0.0.1:99999", "--remote", "ws://a:1/"], "bad port"),
        (["client", "--listen", "127.0.0.1:0", "--remote", "http://x/"], "must start with ws://"),
        (["client", "--listen", "127.0.0.1:0", "--remote", "ws://x:0/"], "bad port in URL"),
        (["client", "--listen", "127.0.0.1:0", "--remote", "ws://x/#f"], "fragment"),
        (["client", "--listen", "127.0.0.1:0", "--remote", "ws:///p"], "URL has no host"),
        (["client", "--listen", "127.0.0.1:0", "--remote", "ws://[::1/"], "unterminated ["),
        (["client", "--listen", "127.0.0.1:0", "--remote", "ws://h:12ab/"], "bad port in URL"),
        (["client", "--listen", "::1:5", "--remote", "ws://h:1/"], "write IPv6 addresses as [ADDR]:PORT"),
        (["client", "--listen", "127.0.0.1:0"], "--remote ws[s]://HOST:PORT/PATH is required"),
        (["client", "--listen", "127.0.0.1:0", "--remote", "ws://x:1/", "--mask", "odd"], "--mask must be"),
        (["client", "--listen", "127.0.0.1:0", "--remote", "ws://x:1/", "--cafile", "f"], "need wss://"),
        (["client", "--listen", "127.0.0.1:0", "--remote", "ws://x:1/", "--bogus"], "unknown option"),
        (["client", "--listen", "127.0.0.1:0", "--remote", "ws://x:1/", "--opts", "host=a"], "has no 'ws'"),
        (["client", "--listen", "127.0.0.1:0", "--remote", "ws://x:1/", "--opts", "ws;colour=red"], "unknown option 'colour'"),
        (["client", "--listen", "127.0.0.1:0", "--remote", "ws://x:1/", "--idle-timeout", "soon"], "bad --idle-timeout"),
        (["server", "--listen", "127.0.0.1:0"], "--target HOST:PORT is required"),
        (["server", "--listen", "127.0.0.1:0", "--target", "x:1", "--tls-key", "k"], "--tls-key needs --tls-cert"),
        (["server", "--listen", "127.0.0.1:0", "--target", "x:1", "--path", "nope"], "--path must start with '/'"),
        (["server", "--listen", "127.0.0.1:0", "--target", "x:1", "--workers", "0"], "--workers must be"),
        (["server", "127.0.0.1:0", "x:1", "ws;servername=a"], "not supported"),
        (["server", "127.0.0.1:0", "x:1"], "kaminari's form takes"),
        (["client", "--listen", "127.0.0.1:0", "--remote", "ws://x:1/", "--proxy", "socks5://p:1"], "only http:// proxies"),
        (["client", "--listen", "127.0.0.1:0", "--remote", "ws://x:1/", "--proxy", "http://u:p@p:1"], "credentials"),
        (["server", "--listen", "127.0.0.1:0", "--target", "x:1", "--proxy", "p:1"], "--proxy is for the client"),
        (["server", "--listen", "127.0.0.1:0", "--target", "x:1", "--mask", "zero"], "--mask is for the client"),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SS_")}
    bad = []
    for args, msg in cases:
        p = subprocess.run([ARGS.tool] + args, capture_output=True, text=True,
                           timeout=5, env=env)
        if p.returncode != 2 or msg not in p.stderr:
            bad.append((args, p.returncode, p.stderr.strip()[-200:]))
    check("bad command lines exit 2 with a message (%d cases)" % len(cases),
          not bad, repr(bad))
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    p = subprocess.run([ARGS.tool, "server", "--listen", "127.0.0.1:%d" % busy.getsockname()[1],
                        "--target", "127.0.0.1:1"], capture_output=True, text=True, timeout=5,
                       env=env)
    busy.close()
    check("listen address in use: exit 1 with a message",
          p.returncode == 1 and "Address already in use" in p.stderr, p.stderr)
    p = subprocess.run([ARGS.tool, "--help"], capture_output=True, text=True, timeout=5)
    check("--help exits 0", p.returncode == 0 and "usage:" in p.stdout)
    p = subprocess.run([ARGS.tool, "server", "--listen", "127.0.0.1:0", "--target",
                        "127.0.0.1:1", "--tls-cert", "/nonexistent.pem"],
                       capture_output=True, text=True, timeout=5)
    check("unreadable certificate: exit 1 with a message",
          (p.returncode == 1 and "TLS_CERT" in p.stderr) or
          (p.returncode == 2 and "TLS=0" in p.stderr), p.stderr)


async def main_async():
    n = 200 if ARGS.quick else 1000
    await t_many(n)
    await t_large()
    await t_backpressure()
    await t_half_close_client_first()
    await t_half_close_target_first()
    await t_refused()
    await t_remote_refused()
    await t_target_silent()
    await t_remote_disappears()
    await t_local_reset()
    await t_wss()
    await t_kaminari_form()
    await t_sip003()
    await t_websockets_remote()
    await t_websockets_client()
    await t_proxy()
    if not ARGS.quick:
        await t_workers()
        async def mask_zero():
            async def body(s, c, tport):
                ok = await asyncio.wait_for(one_echo(c.port, 1 << 20, 5), 10)
                check("--mask zero: 1 MiB both ways", ok)
            await with_tunnel(body, cargs=["--mask", "zero"])
        await mask_zero()
    await t_idle()
    await t_timeouts()


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True)
    ap.add_argument("--certs")
    ap.add_argument("--quick", action="store_true")
    ARGS = ap.parse_args()
    raise_fd_limit()
    for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY",
              "no_proxy", "NO_PROXY"):
        os.environ.pop(k, None)
    t0 = time.monotonic()
    print("tunnel tests: %s%s (logs in %s)" % (ARGS.tool, " quick" if ARGS.quick else "", LOGDIR))
    t_bad_cli()
    asyncio.run(asyncio.wait_for(main_async(), 120))
    print("tunnel tests: %d failed, %.1f s" % (len(FAILS), time.monotonic() - t0))
    sys.exit(1 if FAILS else 0)


if __name__ == "__main__":
    main()
