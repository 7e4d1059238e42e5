# SPDX-License-Identifier: MIT
"""Shared helpers for the Python tests: paths, peers in subprocesses, and
connected WebSocket pairs over socketpairs."""

import os
import re
import select
import shutil
import socket
import subprocess
import threading
import time

import lightws

ROOT = os.environ.get("LIGHTWS_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.join(ROOT, "build")
ECHO_BIN = os.path.join(BUILD, "lightws-echo")
NODE_MODULES = os.path.join(BUILD, "node", "node_modules")


def pair(**kw):
    """(client, server) WebSockets over a socketpair, already open."""
    a, b = socket.socketpair()
    return (lightws.WebSocket(a, client=True, **kw),
            lightws.WebSocket(b, client=False, **kw))


def raw_pair(client=False, **kw):
    """(WebSocket, raw peer socket): the test speaks frames by hand."""
    a, b = socket.socketpair()
    b.settimeout(5)
    return lightws.WebSocket(a, client=client, **kw), b


def frame(opcode, payload=b"", fin=True, mask=None, rsv=0):
    """A frame built by hand (independent of lightws' encoder)."""
    b0 = (0x80 if fin else 0) | rsv | opcode
    n = len(payload)
    mbit = 0x80 if mask is not None else 0
    if n < 126:
        head = bytes([b0, mbit | n])
    elif n < 65536:
        head = bytes([b0, mbit | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([b0, mbit | 127]) + n.to_bytes(8, "big")
    if mask is not None:
        payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
        head += bytes(mask)
    return head + payload


def read_frame(sock):
    """Reads one frame from a raw socket: (fin, opcode, payload)."""
    def need(n):
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise EOFError("peer closed")
            buf += chunk
        return buf
    b0, b1 = need(2)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(need(2), "big")
    elif n == 127:
        n = int.from_bytes(need(8), "big")
    key = need(4) if b1 & 0x80 else None
    payload = need(n)
    if key:
        payload = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
    return bool(b0 & 0x80), b0 & 0x0F, payload


class Proc:
    """A peer process that prints "listening on HOST:PORT" (or PORT)."""

    def __init__(self, argv, env=None, pattern=r"listening on .*?:(\d+)|^(\d+)$", **popen_kw):
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=env, **popen_kw)
        deadline = time.monotonic() + 10
        self.port = None
        while time.monotonic() < deadline:
            line = self.p.stdout.readline()
            if not line:
                break
            m = re.search(pattern, line.strip())
            if m:
                self.port = int(m.group(1) or m.group(2))
                break
        if self.port is None:
            self.stop()
            raise RuntimeError(f"{argv[0]} did not start: {self.p.stderr.read()}")

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        for f in (self.p.stdout, self.p.stderr):
            if f:
                f.close()


def need_file(path):
    """Missing tools are a failure, not a skip (TEAM.md)."""
    if not os.path.exists(path):
        raise AssertionError(f"{path} is missing: run `make` (and `make deps`) first")


def node():
    exe = shutil.which("node") or shutil.which("nodejs")
    if not exe:
        raise AssertionError("node is missing: run `make deps`")
    need_file(os.path.join(NODE_MODULES, "ws"))
    return exe


def node_env():
    env = dict(os.environ)
    env["NODE_PATH"] = NODE_MODULES
    return env


def in_thread(fn, *args):
    """Runs fn in a thread; returns a join() that re-raises its exception."""
    box = {}

    def run():
        try:
            box["value"] = fn(*args)
        except BaseException as e:  # noqa: BLE001 - re-raised in join()
            box["error"] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()

    def join(timeout=20):
        t.join(timeout)
        if t.is_alive():
            raise AssertionError("thread did not finish")
        if "error" in box:
            raise box["error"]
        return box.get("value")
    return join


def loopback_server():
    srv = socket.create_server(("127.0.0.1", 0))
    return srv, srv.getsockname()[1]


class Listener:
    """TestCase mixin: self.srv, a loopback listening socket (10 s accept
    timeout), and self.port, for each test."""

    def setUp(self):
        self.srv, self.port = loopback_server()
        self.srv.settimeout(10)

    def tearDown(self):
        self.srv.close()


def read_head(sock):
    """Reads an HTTP head from a raw socket, a byte at a time so nothing
    past its end is consumed; EOFError (with what came) if the peer
    closes first."""
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            raise EOFError(head)
        head += chunk
    return head


def wait_eof(conn, timeout=10):
    """What the peer sends until it closes its end (a reset ends it too);
    socket.timeout if that takes over ``timeout`` seconds."""
    conn.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = conn.recv(4096)
            if not chunk:
                return data
            data += chunk
    except ConnectionResetError:
        return data


def dribble(port, delay=0.1, path="/slow"):
    """Sends an upgrade request one byte per ``delay`` seconds until the
    server answers or closes. Returns (seconds until then, its answer)."""
    req = lightws.codec.build_request(f"127.0.0.1:{port}", path)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        t0 = time.monotonic()
        try:
            for b in req:
                s.send(bytes([b]))
                if select.select([s], [], [], delay)[0]:
                    break
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - t0, b""
        elapsed = time.monotonic() - t0
        return elapsed, wait_eof(s)
