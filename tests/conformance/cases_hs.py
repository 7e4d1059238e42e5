# SPDX-License-Identifier: MIT
"""Opening handshake cases (RFC 6455 §4) for both roles, and fault cases
for servers (resets, half-written frames, SIGPIPE, slowloris): after each
fault the server must still be running and serve a normal echo."""
import base64
import os
import socket
import struct
import threading
import time

from cases import case, close_normal, echo_case, expect_events
import pmd
from wsproto_min import (BINARY, TEXT, Conn, Fail, PeerEOF, accept_for,
                         encode_frame)

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


# -- HTTP helpers ----------------------------------------------------------

def read_head(sock, deadline, limit=65536):
    """Reads an HTTP head. Returns (start line, [(name, value)], leftover).
    Raises PeerEOF if the connection ends first."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Fail("timeout waiting for an HTTP head")
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except socket.timeout:
            raise Fail("timeout waiting for an HTTP head")
        except ConnectionResetError:
            data = b""
        if not data:
            raise PeerEOF()
        buf += data
        if len(buf) > limit:
            raise Fail("HTTP head over %d bytes" % limit)
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = []
    for ln in lines[1:]:
        name, sep, value = ln.partition(":")
        if not sep:
            raise Fail("malformed header line %r" % ln)
        headers.append((name.strip(), value.strip()))
    return lines[0], headers, rest


def hget(headers, name):
    vals = [v for n, v in headers if n.lower() == name.lower()]
    return vals[0] if vals else None


def has_token(headers, name, token):
    for n, v in headers:
        if n.lower() == name.lower():
            if token.lower() in [x.strip().lower() for x in v.split(",")]:
                return True
    return False


def request(host, port, path="/", key=KEY, omit=(), extra=(), version="13", method="GET", proto="HTTP/1.1"):
    hs = [("Host", "%s:%d" % (host, port)), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
          ("Sec-WebSocket-Key", key), ("Sec-WebSocket-Version", version)]
    hs = [(n, v) for n, v in hs if n not in omit] + list(extra)
    return ("%s %s %s\r\n" % (method, path, proto) + "".join("%s: %s\r\n" % h for h in hs) + "\r\n").encode()


def check_101(status, headers, key, offered_protocols=(), offered_ext=None):
    """Checks a 101 (§4.1). With `offered_ext` (the request's
    Sec-WebSocket-Extensions), a permessage-deflate answer is checked as
    RFC 7692 §7.1 requires and the agreed parameters are returned (None:
    no extension)."""
    parts = status.split(" ", 2)
    if len(parts) < 2 or parts[0] != "HTTP/1.1" or parts[1] != "101":
        raise Fail("expected 101, got %r" % status)
    if not has_token(headers, "Upgrade", "websocket"):
        raise Fail("101 without Upgrade: websocket")
    if not has_token(headers, "Connection", "upgrade"):
        raise Fail("101 without Connection: Upgrade")
    acc = hget(headers, "Sec-WebSocket-Accept")
    if acc != accept_for(key):
        raise Fail("Sec-WebSocket-Accept %r, expected %r" % (acc, accept_for(key)))
    answers = [v for n, v in headers if n.lower() == "sec-websocket-extensions"]
    agreed = None
    if answers:
        if not offered_ext:
            raise Fail("server negotiated an extension (%s) that was not offered" % ", ".join(answers))
        agreed = pmd_agreed(offered_ext, ", ".join(answers))
    p = hget(headers, "Sec-WebSocket-Protocol")
    if p is not None and p not in offered_protocols:
        raise Fail("server chose subprotocol %r that was not offered" % p)
    return agreed


def pmd_agreed(offered, answer):
    """The answer must accept one of our valid offers (§7.1)."""
    offers = pmd.parse_offers(offered)
    if not offers:
        raise Fail("server answered %r to offers it had to decline (%r)" % (answer, offered))
    errors = []
    for o in offers:
        try:
            return pmd.check_answer(o, answer)
        except Fail as e:
            errors.append(str(e))
    raise Fail("; ".join(errors))


def request_ext(req):
    """The Sec-WebSocket-Extensions values of a request we send, joined."""
    vals = []
    for line in req.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep and name.strip().lower() == b"sec-websocket-extensions":
            vals.append(value.strip().decode("latin-1"))
    return ", ".join(vals) or None


def connect(t):
    s = socket.create_connection((t.host, t.port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def open_ws(t, req=None, key=KEY, chop=None, protocols=(), tail=b""):
    """Client handshake against the server peer; returns a Conn."""
    s = connect(t)
    data = (req or request(t.host, t.port, key=key)) + tail
    if chop:
        for i in range(0, len(data), chop):
            s.sendall(data[i:i + chop])
            time.sleep(0.001)
    else:
        s.sendall(data)
    try:
        status, headers, rest = read_head(s, time.monotonic() + 5)
    except PeerEOF:
        s.close()
        raise Fail("server closed the connection instead of answering the upgrade")
    agreed = check_101(status, headers, key, protocols, request_ext(data.split(b"\r\n\r\n")[0]))
    c = Conn(s, True, rest)
    if agreed is not None:
        c.pmd = pmd.Codec("client", agreed)
    return c


def expect_reject(t, req, statuses, need_version_header=False):
    """The server answers with an error status in `statuses`, then closes."""
    s = connect(t)
    try:
        s.sendall(req)
    except OSError:
        pass
    try:
        status, headers, rest = read_head(s, time.monotonic() + 5)
    except PeerEOF:
        s.close()
        raise Fail("connection closed without an HTTP error response")
    parts = status.split(" ", 2)
    code = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    if code not in statuses:
        s.close()
        raise Fail("status %r, expected %s" % (status, "/".join(map(str, sorted(statuses)))))
    if need_version_header and "13" not in [x.strip() for x in (hget(headers, "Sec-WebSocket-Version") or "").split(",")]:
        s.close()
        raise Fail("%d without Sec-WebSocket-Version: 13 (§4.4 MUST)" % code)
    # Body (Content-Length) then the server closes; no 101 and no frames.
    deadline = time.monotonic() + 3
    while True:
        s.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            d = s.recv(65536)
        except socket.timeout:
            s.close()
            raise Fail("server kept the connection open after %d" % code)
        except ConnectionResetError:
            break
        if not d:
            break
    s.close()


def sanity(t):
    """A normal echo on a new connection; the server process must be alive."""
    if t.proc is not None and t.proc.poll() is not None:
        raise Fail("server process exited (status %s)" % t.proc.returncode)
    t.conn = open_ws(t)
    echo_case(t, [(TEXT, b"still alive"), (BINARY, b"\x00\xff")], timeout=5)
    t.conn.shutdown()
    t.conn = None
    if t.proc is not None and t.proc.poll() is not None:
        raise Fail("server process exited (status %s)" % t.proc.returncode)


def rst_close(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def browser_head(name, host, port, key):
    hp = "%s:%d" % (host, port)
    if name == "chromium":
        return ("GET /?encoding=text HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nPragma: no-cache\r\n"
                "Cache-Control: no-cache\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 "
                "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36\r\nUpgrade: websocket\r\n"
                "Origin: http://%s\r\nSec-WebSocket-Version: 13\r\nAccept-Encoding: gzip, deflate, br\r\n"
                "Accept-Language: en-US,en;q=0.9\r\nSec-WebSocket-Key: %s\r\n"
                "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n" % (hp, hp, key)).encode()
    if name == "firefox":
        return ("GET /socket HTTP/1.1\r\nHost: %s\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:121.0) "
                "Gecko/20100101 Firefox/121.0\r\nAccept: */*\r\nAccept-Language: en-US,en;q=0.5\r\n"
                "Accept-Encoding: gzip, deflate, br\r\nSec-WebSocket-Version: 13\r\nOrigin: http://%s\r\n"
                "Sec-WebSocket-Extensions: permessage-deflate\r\nSec-WebSocket-Key: %s\r\n"
                "Connection: keep-alive, Upgrade\r\nSec-Fetch-Dest: empty\r\nSec-Fetch-Mode: websocket\r\n"
                "Sec-Fetch-Site: same-origin\r\nPragma: no-cache\r\nCache-Control: no-cache\r\n"
                "Upgrade: websocket\r\n\r\n" % (hp, hp, key)).encode()
    if name == "safari":
        return ("GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nHost: %s\r\n"
                "Origin: http://%s\r\nPragma: no-cache\r\nCache-Control: no-cache\r\n"
                "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                "Sec-WebSocket-Extensions: permessage-deflate\r\nUser-Agent: Mozilla/5.0 (Macintosh; "
                "Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 "
                "Safari/605.1.15\r\n\r\n" % (hp, hp, key)).encode()
    if name == "lowercase":
        return ("GET /lower HTTP/1.1\r\nhost: %s\r\nupgrade: WebSocket\r\nconnection: keep-alive,upgrade\r\n"
                "sec-websocket-key: %s\r\nsec-websocket-version: 13\r\n"
                "sec-websocket-protocol: chat, superchat\r\n\r\n" % (hp, key)).encode()
    raise ValueError(name)


# == 9 Opening handshake, server peer =====================================
for _i, _b in enumerate(["chromium", "firefox", "safari", "lowercase"]):
    def _mk(b=_b):
        def fn(t):
            key = base64.b64encode(os.urandom(16)).decode()
            t.conn = open_ws(t, browser_head(b, t.host, t.port, key), key=key, protocols=("chat", "superchat"))
            echo_case(t, [(TEXT, b"hello " + b.encode())])
        return fn
    case("9.%d" % (_i + 1), "%s request head -> 101 with the right accept" % _b,
         roles=("server",), raw=True)(_mk())


@case("9.5", "missing Host -> 400", roles=("server",), raw=True)
def _(t):
    expect_reject(t, request(t.host, t.port, omit=("Host",)), {400})
    sanity(t)


@case("9.6", "missing Upgrade -> 400 (or 426)", roles=("server",), raw=True)
def _(t):
    expect_reject(t, request(t.host, t.port, omit=("Upgrade",)), {400, 426})


@case("9.7", "missing Connection -> 400 (or 426)", roles=("server",), raw=True)
def _(t):
    expect_reject(t, request(t.host, t.port, omit=("Connection",)), {400, 426})


@case("9.8", "missing Sec-WebSocket-Key -> 400", roles=("server",), raw=True)
def _(t):
    expect_reject(t, request(t.host, t.port, omit=("Sec-WebSocket-Key",)), {400})


@case("9.9", "Sec-WebSocket-Key not 16 bytes -> 400", roles=("server",), raw=True)
def _(t):
    expect_reject(t, request(t.host, t.port, key=base64.b64encode(b"short").decode()), {400})


@case("9.10", "Sec-WebSocket-Version 8 -> 426 with Sec-WebSocket-Version: 13", roles=("server",), raw=True)
def _(t):
    # §4.2.2/§4.4: an error code "such as 426" and the MUST header.
    expect_reject(t, request(t.host, t.port, version="8"), {426, 400}, need_version_header=True)


@case("9.11", "missing Sec-WebSocket-Version -> 426 or 400", roles=("server",), raw=True)
def _(t):
    expect_reject(t, request(t.host, t.port, omit=("Sec-WebSocket-Version",)), {426, 400})


@case("9.12", "POST instead of GET -> 4xx", roles=("server",), raw=True)
def _(t):
    expect_reject(t, request(t.host, t.port, method="POST"), {400, 405})


@case("9.13", "HTTP/1.0 -> 4xx", roles=("server",), raw=True)
def _(t):
    expect_reject(t, request(t.host, t.port, proto="HTTP/1.0"), {400, 505})


@case("9.14", "oversized head (16 KiB header) -> 431/400 or closed", roles=("server",), raw=True)
def _(t):
    req = request(t.host, t.port, extra=[("X-Big", "b" * 16384)])
    s = connect(t)
    try:
        s.sendall(req)
    except OSError:
        pass
    try:
        status, headers, rest = read_head(s, time.monotonic() + 5)
        parts = status.split(" ", 2)
        if len(parts) < 2 or parts[1] not in ("431", "400"):
            raise Fail("status %r, expected 431/400 or a closed connection" % status)
    except PeerEOF:
        pass
    finally:
        s.close()
    sanity(t)


@case("9.15", "frame pipelined in the request's packet -> echoed", roles=("server",), raw=True)
def _(t):
    first = encode_frame(TEXT, b"pipelined", mask=os.urandom(4))
    t.conn = open_ws(t, tail=first)
    expect_events(t, [("msg", TEXT, b"pipelined")])
    close_normal(t)


@case("9.16", "request sent 1 byte per send -> 101", roles=("server",), raw=True)
def _(t):
    t.conn = open_ws(t, chop=1)
    echo_case(t, [(TEXT, b"slow handshake")])


# == 10 Faults, server peer ===============================================
@case("10.1", "peer resets mid-frame (SO_LINGER 0)", roles=("server",), raw=True)
def _(t):
    c = open_ws(t)
    c.sock.sendall(encode_frame(BINARY, b"x" * 1000, mask=os.urandom(4))[:500])
    time.sleep(0.05)
    rst_close(c.sock)
    time.sleep(0.05)
    sanity(t)


@case("10.2", "half-written frame (head and part of payload), then FIN", roles=("server",), raw=True)
def _(t):
    c = open_ws(t)
    c.sock.sendall(encode_frame(TEXT, b"y" * 300, mask=os.urandom(4))[:100])
    time.sleep(0.05)
    c.sock.shutdown(socket.SHUT_WR)
    # The server sees EOF without a close frame; it may answer with a close
    # (1006 is never sent) or just close; either way the TCP ends.
    c.sock.settimeout(3)
    try:
        while c.sock.recv(65536):
            pass
    except (socket.timeout, ConnectionResetError):
        pass
    c.sock.close()
    sanity(t)


@case("10.3", "half-written frame head (1 byte), then FIN", roles=("server",), raw=True)
def _(t):
    c = open_ws(t)
    c.sock.sendall(b"\x82")
    time.sleep(0.05)
    c.sock.close()
    sanity(t)


@case("10.4", "peer closes during the handshake (FIN)", roles=("server",), raw=True)
def _(t):
    s = connect(t)
    s.sendall(request(t.host, t.port)[:40])
    time.sleep(0.05)
    s.close()
    s = connect(t)
    s.close()
    sanity(t)


@case("10.5", "peer resets during the handshake", roles=("server",), raw=True)
def _(t):
    s = connect(t)
    s.sendall(request(t.host, t.port)[:40])
    time.sleep(0.05)
    rst_close(s)
    sanity(t)


@case("10.6", "SIGPIPE: 10 MiB sent, echo not read, then reset", roles=("server",), raw=True, timeout=30)
def _(t):
    c = open_ws(t)
    big = encode_frame(BINARY, b"z" * (256 * 1024), mask=os.urandom(4))
    c.sock.settimeout(5)
    try:
        for _ in range(40):
            c.sock.sendall(big)
    except (socket.timeout, OSError):
        pass  # the server stops reading once its echo backs up: fine
    time.sleep(0.2)
    rst_close(c.sock)
    time.sleep(0.2)
    sanity(t)


@case("10.7", "slowloris handshakes do not block other connections", roles=("server",), raw=True, timeout=30)
def _(t):
    stop = threading.Event()
    dripped_out = threading.Event()
    socks = []
    req = request(t.host, t.port)
    for _ in range(20):
        s = connect(t)
        s.sendall(req[:20])
        socks.append(s)

    def drip():
        i = 20
        while not stop.is_set() and i < len(req) - 4:
            for s in socks:
                try:
                    s.sendall(req[i:i + 1])
                except OSError:
                    pass
            i += 1
            stop.wait(0.05)
        if i >= len(req) - 4:
            dripped_out.set()
    th = threading.Thread(target=drip, daemon=True)
    th.start()
    try:
        start = time.monotonic()
        sanity(t)
        took = time.monotonic() - start
        # Not blocked means served while all 20 heads are still incomplete
        # (the drip lasts >= 6 s: 130 more bytes, 50 ms apart), whatever
        # the machine's speed. A fixed 2 s limit was arbitrary and could
        # fail on a loaded machine (valgrind peer, busy CI).
        if dripped_out.is_set():
            raise Fail("normal echo took %.1f s: served only after the 20 dripped handshakes "
                       "had all been sent" % took)
    finally:
        stop.set()
        th.join()
        for s in socks:
            s.close()


@case("10.8", "50 connections opened and dropped at once", roles=("server",), raw=True)
def _(t):
    socks = [connect(t) for _ in range(50)]
    for i, s in enumerate(socks):
        if i % 2:
            rst_close(s)
        else:
            s.close()
    time.sleep(0.1)
    sanity(t)


@case("10.9", "close frame then reset at once", roles=("server",), raw=True)
def _(t):
    c = open_ws(t)
    c.sock.sendall(encode_frame(0x8, struct.pack("!H", 1000), mask=os.urandom(4)))
    rst_close(c.sock)
    time.sleep(0.05)
    sanity(t)


# == 11 Opening handshake, client peer ====================================
def accept_client(t):
    """Accepts the client's connection and checks its request (§4.1)."""
    sock = t.accept()
    status, headers, rest = read_head(sock, time.monotonic() + 10)
    parts = status.split(" ")
    if len(parts) != 3 or parts[0] != "GET" or parts[2] != "HTTP/1.1":
        raise Fail("request line %r" % status)
    if parts[1] != t.path:
        raise Fail("request target %r, expected %r" % (parts[1], t.path))
    host = hget(headers, "Host")
    if host not in ("127.0.0.1:%d" % t.port, "127.0.0.1"):
        raise Fail("Host %r" % host)
    if not has_token(headers, "Upgrade", "websocket") or not has_token(headers, "Connection", "upgrade"):
        raise Fail("request lacks Upgrade: websocket / Connection: Upgrade")
    key = hget(headers, "Sec-WebSocket-Key")
    try:
        if key is None or len(base64.b64decode(key, validate=True)) != 16:
            raise ValueError
    except ValueError:
        raise Fail("Sec-WebSocket-Key %r is not 16 bytes of base64" % key)
    if hget(headers, "Sec-WebSocket-Version") != "13":
        raise Fail("Sec-WebSocket-Version %r" % hget(headers, "Sec-WebSocket-Version"))
    t.request_headers = headers
    return sock, key, rest


def response_101(key, extra=""):
    return ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: %s\r\n%s\r\n" % (accept_for(key), extra)).encode()


def expect_client_gives_up(t, sock, after=b""):
    """§4.1: on a bad response the client fails the connection: it sends
    nothing more (no frame: the connection is not established) and closes."""
    if after:
        sock.sendall(after)
    deadline = time.monotonic() + 5
    while True:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            d = sock.recv(65536)
        except socket.timeout:
            raise Fail("client did not close the connection within 5 s")
        except ConnectionResetError:
            return
        if not d:
            return
        raise Fail("client sent %r after a bad handshake response" % d[:20])


@case("11.1", "client request: GET path?query, Host, Upgrade, key, version", roles=("client",), raw=True)
def _(t):
    sock, key, rest = accept_client(t)
    sock.sendall(response_101(key))
    t.conn = Conn(sock, False, rest)
    echo_case(t, [(TEXT, b"request ok")])


@case("11.2", "wrong Sec-WebSocket-Accept -> client fails", roles=("client",), raw=True)
def _(t):
    sock, key, rest = accept_client(t)
    # Change one character of the right answer, so the value is always
    # wrong (deriving it from a changed key was right whenever the key
    # already began with that character: 1 run in 64).
    good = accept_for(key)
    wrong = ("B" if good[0] == "A" else "A") + good[1:]
    bad = ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Accept: %s\r\n\r\n" % wrong).encode()
    sock.sendall(bad)
    expect_client_gives_up(t, sock, encode_frame(TEXT, b"must not be echoed"))
    t.expect_exit = "nonzero"


@case("11.3", "status 400 -> client fails", roles=("client",), raw=True)
def _(t):
    sock, key, rest = accept_client(t)
    sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    expect_client_gives_up(t, sock)
    t.expect_exit = "nonzero"


@case("11.4", "101 without Upgrade -> client fails", roles=("client",), raw=True)
def _(t):
    sock, key, rest = accept_client(t)
    sock.sendall(("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Accept: %s\r\n\r\n" % accept_for(key)).encode())
    expect_client_gives_up(t, sock)
    t.expect_exit = "nonzero"


@case("11.5", "101 with an extension not offered -> client fails", roles=("client",), raw=True)
def _(t):
    sock, key, rest = accept_client(t)
    sock.sendall(response_101(key, "Sec-WebSocket-Extensions: x-unknown\r\n"))
    expect_client_gives_up(t, sock)
    t.expect_exit = "nonzero"


@case("11.6", "101 with a subprotocol not offered -> client fails", roles=("client",), raw=True)
def _(t):
    sock, key, rest = accept_client(t)
    sock.sendall(response_101(key, "Sec-WebSocket-Protocol: unoffered\r\n"))
    expect_client_gives_up(t, sock)
    t.expect_exit = "nonzero"


@case("11.7", "frame in the same packet as the 101 -> echoed", roles=("client",), raw=True)
def _(t):
    sock, key, rest = accept_client(t)
    sock.sendall(response_101(key) + encode_frame(TEXT, b"right after 101"))
    t.conn = Conn(sock, False, rest)
    expect_events(t, [("msg", TEXT, b"right after 101")])
    close_normal(t)


@case("11.8", "101 response sent 1 byte per send", roles=("client",), raw=True)
def _(t):
    sock, key, rest = accept_client(t)
    for b in response_101(key):
        sock.sendall(bytes([b]))
        time.sleep(0.001)
    t.conn = Conn(sock, False, rest)
    echo_case(t, [(BINARY, b"\x01slow 101")])


# == 12 Faults, client peer: the client must not hang ======================
@case("12.1", "server resets mid-frame -> client exits", roles=("client",), raw=True)
def _(t):
    sock, key, rest = accept_client(t)
    sock.sendall(response_101(key) + encode_frame(BINARY, b"x" * 1000)[:300])
    time.sleep(0.05)
    rst_close(sock)


@case("12.2", "server sends half a frame head then FIN -> client exits", roles=("client",), raw=True)
def _(t):
    sock, key, rest = accept_client(t)
    sock.sendall(response_101(key) + b"\x81")
    time.sleep(0.05)
    sock.close()


@case("12.3", "server closes TCP without a close frame -> client exits", roles=("client",), raw=True)
def _(t):
    sock, key, rest = accept_client(t)
    sock.sendall(response_101(key) + encode_frame(TEXT, b"then silence"))
    c = Conn(sock, False, rest)
    t.conn = c
    expect_events(t, [("msg", TEXT, b"then silence")])
    c.sock.shutdown(socket.SHUT_RDWR)


@case("12.4", "server closes during the handshake -> client exits", roles=("client",), raw=True)
def _(t):
    sock, key, rest = accept_client(t)
    sock.sendall(response_101(key)[:30])
    time.sleep(0.05)
    sock.close()
