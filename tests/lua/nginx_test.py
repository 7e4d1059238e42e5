#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""lightws.resty in real nginx (Debian nginx-light + the Lua module): nginx as
websocket server (driven by python websockets and a raw socket) and as client
of build/lightws-echo. Usage: nginx_test.py SRC_DIR. Exit 0 when all pass."""
import asyncio, base64, os, shutil, signal, socket, struct, subprocess, sys, time, urllib.request

import websockets

SRC = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".")
PREFIX = os.path.join(SRC, "build", "lua-nginx")
results = []


def check(cond, what):
    results.append((bool(cond), what))
    print(("pass " if cond else "FAIL ") + what, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def module(name):
    for d in ("/usr/lib/nginx/modules", "/usr/share/nginx/modules"):
        p = os.path.join(d, name)
        if os.path.exists(p):
            return p
    raise SystemExit("nginx module %s not found" % name)


TLS_PORTS = {}


def start_nginx(port):
    shutil.rmtree(PREFIX, ignore_errors=True)
    for d in ("logs", "tmp", "conf"):
        os.makedirs(os.path.join(PREFIX, d))
    # the wss:// tests: the TLS suite's throwaway PKI (2000-2099)
    subprocess.run(["bash", os.path.join(SRC, "tests/tls/make_certs.sh"), os.path.join(PREFIX, "certs")],
                   check=True, stdout=subprocess.DEVNULL, timeout=60)
    TLS_PORTS["tls"], TLS_PORTS["mtls"] = free_port(), free_port()
    conf = open(os.path.join(SRC, "tests/lua/nginx.conf.in")).read()
    for k, v in {"@NDK_MODULE@": module("ndk_http_module.so"),
                 "@LUA_MODULE@": module("ngx_http_lua_module.so"),
                 "@PREFIX@": PREFIX, "@SRC@": SRC, "@PORT@": str(port),
                 "@TLS_PORT@": str(TLS_PORTS["tls"]), "@MTLS_PORT@": str(TLS_PORTS["mtls"]),
                 "@CPATH@": os.environ.get("LIGHTWS_LUAJIT_CPATH", SRC + "/build/luajit/?.so")}.items():
        conf = conf.replace(k, v)
    path = os.path.join(PREFIX, "conf", "nginx.conf")
    open(path, "w").write(conf)
    proc = subprocess.Popen(["nginx", "-p", PREFIX, "-c", path, "-e", os.path.join(PREFIX, "logs/error.log")])
    for _ in range(100):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=0.2)
            # A connect to a port nobody listens on yet can pick that same
            # port as its source and connect to itself (TCP simultaneous
            # open): that is not nginx, and it holds the port nginx binds.
            selfconn = s.getsockname() == s.getpeername()
            s.close()
            if not selfconn:
                return proc
        except OSError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    return None


def start_nginx_on_free_port():
    """free_port() is closed before nginx binds it, so another socket may
    take it meanwhile (nginx then exits: address in use); try a new port a
    few times instead of failing the suite on that race."""
    for _ in range(5):
        port = free_port()
        proc = start_nginx(port)
        if proc is not None:
            return proc, port
    print(open(os.path.join(PREFIX, "logs/error.log")).read())
    raise SystemExit("nginx did not start")


async def server_tests(port):
    uri = "ws://127.0.0.1:%d/echo" % port
    async with websockets.connect(uri, max_size=None, subprotocols=["chat"]) as ws:
        check(ws.subprotocol == "chat", "server: subprotocol chat chosen")
        await ws.send("hello")
        check(await ws.recv() == "hello", "server: text echoed")
        await ws.send(b"\x00\x01\xfe\xff")
        check(await ws.recv() == b"\x00\x01\xfe\xff", "server: binary echoed")
        big = os.urandom(1024 * 1024)
        await ws.send(big)
        check(await ws.recv() == big, "server: 1 MiB binary echoed")
        await ws.send(["frag", "men", "ted"])
        check(await ws.recv() == "fragmented", "server: fragmented text echoed")
        pong = await ws.ping(b"abc")
        await asyncio.wait_for(pong, 5)
        check(True, "server: ping answered")
        await ws.close(4000, "done")
        check(ws.close_code == 4000, "server: close code echoed (%s)" % ws.close_code)
    # a bad upgrade request gets its HTTP status from the C parser
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Version: 13\r\n\r\n")
    line = s.recv(4096).split(b"\r\n")[0]
    s.close()
    check(line.startswith(b"HTTP/1.1 400"), "server: missing key answered 400 (%r)" % line)
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n")
    resp = s.recv(4096)
    s.close()
    check(resp.startswith(b"HTTP/1.1 426") and b"Sec-WebSocket-Version: 13" in resp,
          "server: version 8 answered 426 with Sec-WebSocket-Version")


def masked_frame(opcode, payload, fin=True):
    key = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", (0x80 if fin else 0) | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", (0x80 if fin else 0) | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", (0x80 if fin else 0) | opcode, 0x80 | 127, n)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def read_frame(s):
    def need(n):
        b = b""
        while len(b) < n:
            c = s.recv(n - len(b))
            if not c:
                raise EOFError
            b += c
        return b
    b0, b1 = need(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", need(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", need(8))[0]
    return b0 & 0x0F, need(n)


def resume_test(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(10)
    s.sendall(b"GET /resume HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    check(head.startswith(b"HTTP/1.1 101") and b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head,
          "resume: 101 with the RFC accept value")
    payload = b"resumed " * 1000
    frame = masked_frame(0x2, payload)
    # cut inside the head (after 3 bytes), then inside the payload; each
    # pause spans several 100 ms server timeouts (0.5 s: up to 5 each; the
    # >= 4 below needs 2 a pause, which now holds unless each timeout round
    # is late by over 150 ms; with the former 0.35 s pauses, 75 ms of lateness
    # on a loaded machine was enough to fail)
    s.sendall(frame[:3])
    time.sleep(0.5)
    s.sendall(frame[3:5000])
    time.sleep(0.5)
    s.sendall(frame[5000:])
    op, data = read_frame(s)
    check(op == 2 and data == payload, "resume: frame split in head and payload with timeouts between, echoed whole")
    op, data = read_frame(s)
    n = int(data.split(b"=")[1]) if op == 1 else 0
    check(n >= 4, "resume: server saw %d timeouts mid-frame" % n)
    s.sendall(masked_frame(0x8, struct.pack("!H", 1000)))
    op, data = read_frame(s)
    check(op == 8 and data[:2] == struct.pack("!H", 1000), "resume: close answered")
    s.close()


def utf8_test(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(10)
    s.sendall(b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    # valid UTF-8 split across fragments inside a code point, then invalid text
    s.sendall(masked_frame(0x1, "κό".encode()[:3], fin=False) + masked_frame(0x0, "κό".encode()[3:]))
    op1, d1 = read_frame(s)
    op2, d2 = read_frame(s)
    check((op1, op2, d1 + d2) == (1, 0, "κό".encode()), "utf8: code point split across fragments accepted")
    s.sendall(masked_frame(0x1, b"ok\xff"))
    op, data = read_frame(s)
    check(op == 8 and data[:2] == struct.pack("!H", 1007), "utf8: invalid text fails with close 1007")
    s.close()


def client_resume_test(port):
    """nginx's client reads a frame that arrives cut, with pauses longer than its timeout."""
    import threading
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    payload = bytes(range(256)) * 40
    result = {}

    def serve():
        c, _ = srv.accept()
        c.settimeout(10)
        head = b""
        while b"\r\n\r\n" not in head:
            head += c.recv(1)
        key = [l.split(b":", 1)[1].strip() for l in head.split(b"\r\n") if l.lower().startswith(b"sec-websocket-key:")][0]
        import hashlib
        acc = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
        c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Accept: " + acc + b"\r\n\r\n")
        frame = struct.pack("!BBH", 0x82, 126, len(payload)) + payload
        for a, b in ((0, 3), (3, 5000), (5000, len(frame))):
            c.sendall(frame[a:b])
            time.sleep(0.35)
        b0, b1 = c.recv(2, socket.MSG_WAITALL)
        n = struct.unpack("!H", c.recv(2, socket.MSG_WAITALL))[0] if b1 & 0x7F == 126 else b1 & 0x7F
        key4 = c.recv(4, socket.MSG_WAITALL)
        body = c.recv(n, socket.MSG_WAITALL)
        result["echo"] = (b0, b1 & 0x80, bytes(x ^ key4[i % 4] for i, x in enumerate(body)))
        c.sendall(struct.pack("!BBH", 0x88, 2, 1000))
        try:
            c.recv(64)
        except OSError:
            pass
        c.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    body = urllib.request.urlopen("http://127.0.0.1:%d/client_resume?port=%d" % (port, srv.getsockname()[1]),
                                  timeout=30).read().decode().strip()
    t.join(10)
    srv.close()
    fields = dict(f.split("=", 1) for f in body.split())
    check(int(fields.get("timeouts", 0)) >= 2 and fields.get("len") == str(len(payload)),
          "client resume: frame cut in head and payload read whole after timeouts (%s)" % body)
    check(result.get("echo") == (0x82, 0x80, payload), "client resume: masked echo of the whole frame")
    check(fields.get("close") == "close:1000:", "client resume: server close seen with code 1000")


# ---- time (issue 12): the ms options of lightws.resty, real clocks; the
# timeouts are 0.2-0.5 s, the margins generous (late by up to seconds on a
# loaded machine, never early)

def upgrade(port, path):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(10)
    s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n" % path).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        c = s.recv(1)
        if not c:
            raise EOFError("no 101 from %s" % path)
        head += c
    if not head.startswith(b"HTTP/1.1 101"):
        raise EOFError("no 101 from %s: %r" % (path, head))
    return s


def unmask(payload, key):
    return bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def read_masked_frame(c):
    """A client's frame: opcode, unmasked payload."""
    def need(n):
        b = b""
        while len(b) < n:
            x = c.recv(n - len(b))
            if not x:
                raise EOFError
            b += x
        return b
    b0, b1 = need(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", need(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", need(8))[0]
    key = need(4) if b1 & 0x80 else b"\0\0\0\0"
    return b0 & 0x0F, unmask(need(n), key)


def eof_within(s, secs):
    s.settimeout(secs)
    try:
        while s.recv(4096):
            pass
        return True
    except OSError:
        return False


def time_server_tests(port):
    s = upgrade(port, "/time_server?idle=300")
    t0 = time.monotonic()
    op, data = read_frame(s)
    took = time.monotonic() - t0
    check(op == 8 and data == struct.pack("!H", 1001) + b"idle timeout" and 0.25 <= took <= 3,
          "time: silent connection closed by idle_timeout=300 with 1001 after %.2f s (%r)" % (took, data))
    s.close()

    s = upgrade(port, "/time_server?ping=200&pong=300")
    t0 = time.monotonic()
    op1, d1 = read_frame(s)
    op2, d2 = read_frame(s)
    took = time.monotonic() - t0
    check(op1 == 9 and len(d1) == 4, "time: keepalive ping after ping_interval=200 (%d, %r)" % (op1, d1))
    check(op2 == 8 and d2 == struct.pack("!H", 1011) + b"keepalive ping timeout" and 0.45 <= took <= 3,
          "time: unanswered ping: close 1011 on the wire after %.2f s (%r)" % (took, d2))
    check(eof_within(s, 5), "time: connection closed after the 1011")
    s.close()

    s = upgrade(port, "/time_server?close=300")
    s.sendall(masked_frame(0x1, b"close me"))
    op, data = read_frame(s)
    t0 = time.monotonic()
    eof = eof_within(s, 5)
    took = time.monotonic() - t0
    check(op == 8 and data[:2] == struct.pack("!H", 1000) and eof and 0.25 <= took <= 3,
          "time: close_timeout=300 ends a close the peer never answers after %.2f s" % took)
    s.close()


async def time_keepalive_python(port):
    uri = "ws://127.0.0.1:%d/time_server?ping=200&pong=1000" % port
    async with websockets.connect(uri) as ws:   # answers pings by itself
        await asyncio.sleep(1.0)
        await ws.send("rtt?")
        rtt = await asyncio.wait_for(ws.recv(), 5)
        await ws.send("still there")
        echo = await asyncio.wait_for(ws.recv(), 5)
        check(rtt not in ("nil", None) and 0 < float(rtt) < 1000 and echo == "still there",
              "time: server keepalive vs python websockets: pinged, answered, rtt %s ms, still up" % rtt)


def raw_peer(behaviour):
    """A raw websocket server on a free port, in a thread: "dribble" sends
    the 101 one byte per 100 ms; "deaf" answers 101 and then only records
    the frames it gets, never answering. Returns port, result dict, thread."""
    import threading, hashlib
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    result = {"frames": []}

    def serve():
        c, _ = srv.accept()
        c.settimeout(10)
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                head += c.recv(1)
            key = [l.split(b":", 1)[1].strip() for l in head.split(b"\r\n")
                   if l.lower().startswith(b"sec-websocket-key:")][0]
            acc = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
            resp = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    b"Sec-WebSocket-Accept: " + acc + b"\r\n\r\n")
            if behaviour == "dribble":
                for i in range(len(resp)):
                    c.sendall(resp[i:i + 1])
                    time.sleep(0.1)
            else:
                c.sendall(resp)
                t0 = time.monotonic()
                while True:
                    op, data = read_masked_frame(c)
                    result["frames"].append((op, data, time.monotonic() - t0))
                    if op == 8:
                        break
        except OSError:
            pass
        except EOFError:
            pass
        finally:
            c.close()
            srv.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return srv.getsockname()[1], result, t


def nginx_get(port, query):
    return urllib.request.urlopen("http://127.0.0.1:%d/time_client?%s" % (port, query),
                                  timeout=30).read().decode(errors="replace").strip()


def time_client_tests(port):
    pport, _, t = raw_peer("dribble")
    body = nginx_get(port, "port=%d&hs=500" % pport)
    t.join(30)
    took = int(body.split("took=")[1].split()[0]) if "took=" in body else -1
    check("opening handshake not complete within its timeout" in body and 400 <= took <= 3000,
          "time: client handshake_timeout=500 cuts a 101 dribbled one byte per 100 ms (%s)" % body)

    pport, res, t = raw_peer("deaf")
    body = nginx_get(port, "port=%d&ping=200&pong=300&wait=5000" % pport)
    t.join(10)
    fr = res["frames"]
    check("recv=[keepalive ping not answered within its timeout]" in body,
          "time: client vs a peer that never answers pings: ping_timeout error (%s)" % body)
    check(len(fr) >= 2 and fr[0][0] == 9 and len(fr[0][1]) == 4 and fr[-1][0] == 8
          and fr[-1][1] == struct.pack("!H", 1011) + b"keepalive ping timeout" and 0.45 <= fr[-1][2] <= 3,
          "time: client sent a keepalive ping, then close 1011 on the wire (%r)" % [(o, d, round(x, 2)) for o, d, x in fr])

    p = subprocess.Popen(["/usr/bin/python3", os.path.join(SRC, "tests/lua/peer_python.py"), "server"],
                         stdout=subprocess.PIPE, text=True)
    try:
        pport = int(p.stdout.readline().strip().rsplit(":", 1)[1])
        body = nginx_get(port, "port=%d&ping=200&pong=1000&wait=1200" % pport)
        check("recv=[timeout] pongs=yes rtt=yes echo=echo" in body,
              "time: client keepalive vs python websockets: pings answered, rtt measured, still up (%s)" % body)
    finally:
        p.terminate()
        p.wait()


def client_test(port):
    echo = os.path.join(SRC, "build", "lightws-echo")
    if not os.path.exists(echo):
        check(False, "client: build/lightws-echo missing")
        return
    p = subprocess.Popen([echo, "--host", "127.0.0.1", "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        eport = int(line.strip().rsplit(":", 1)[1])
        body = urllib.request.urlopen("http://127.0.0.1:%d/client?port=%d" % (port, eport), timeout=30).read().decode()
        for l in body.strip().split("\n"):
            if l.startswith("pass") or l.startswith("FAIL"):
                check(l.startswith("pass"), "client (nginx -> lightws-echo): " + l[5:])
        check(body.strip().endswith("ok"), "client: all checks passed")
    finally:
        p.terminate()
        p.wait()


# ---- lua-resty-websocket compatibility (issue 15): the scenarios of its
# README and its t/*.t files, run against lightws.resty loaded by its module
# names (install() in init_by_lua), with raw sockets, python websockets and
# nginx itself on the other side; the documented return values and error
# strings are asserted (nginx_compat.lua prints or records them).

RFC_KEY, RFC_ACCEPT = b"x3JJHMbDL1EzLkh9GBhXDw==", "HSmrc0sMlYUkAGmm5OPpG2HaGWk="
_ids = [0]


def http_get(port, path, timeout=30):
    try:
        return urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=timeout).read().decode()
    except urllib.error.HTTPError as e:
        return "HTTP %d" % e.code


def parse_head(head):
    lines = head.decode("latin-1").split("\r\n")
    hdrs = {}
    for l in lines[1:]:
        if ":" in l:
            k, v = l.split(":", 1)
            hdrs.setdefault(k.strip().lower(), v.strip())
    return lines[0], hdrs


def raw_request(port, path, extra=b"", key=RFC_KEY, connection=b"Upgrade", upgrade=b"websocket",
                version=b"13", protocol=b"chat", after=b""):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(10)
    req = b"GET " + path.encode() + b" HTTP/1.1\r\nHost: server.example.com\r\n"
    if upgrade:
        req += b"Upgrade: " + upgrade + b"\r\n"
    req += b"Connection: " + connection + b"\r\nSec-WebSocket-Key: " + key + b"\r\n"
    if protocol:
        req += b"Sec-WebSocket-Protocol: " + protocol + b"\r\n"
    s.sendall(req + b"Sec-WebSocket-Version: " + version + b"\r\nOrigin: http://example.com\r\n" + extra + b"\r\n" + after)
    head = b""
    while b"\r\n\r\n" not in head:
        c = s.recv(1)
        if not c:
            break
        head += c
    return s, head


def read_all(s, secs=10):
    s.settimeout(secs)
    got = b""
    try:
        while True:
            c = s.recv(65536)
            if not c:
                break
            got += c
    except OSError:
        pass
    s.close()
    return got


def srv_case(port, query, send=b"", steps=None, shut=False):
    """Raw client of /compat/srv: sends `send` (or the (bytes, pause) steps),
    reads until the server ends; returns head, bytes the server sent after
    the 101, the recorded recv_frame results."""
    _ids[0] += 1
    rid = "r%d" % _ids[0]
    s, head = raw_request(port, "/compat/srv?id=%s&%s" % (rid, query))
    for data, pause in steps or [(send, 0)]:
        s.sendall(data)
        time.sleep(pause)
    if shut:
        s.shutdown(socket.SHUT_WR)
    got = read_all(s)
    return head, got, http_get(port, "/compat/result?id=" + rid).strip().split("\n")


def rsv_frame(payload):
    f = bytearray(masked_frame(0x1, payload))
    f[0] |= 0x40
    return bytes(f)


def compat_server_tests(port):
    head, got, res = srv_case(port, "n=1", masked_frame(0x1, b"foo"))
    status, h = parse_head(head)
    check(status == "HTTP/1.1 101 Switching Protocols", "compat server: 101 status line through nginx (%r)" % status)
    check(h.get("upgrade") == "websocket" and h.get("connection") == "upgrade"
          and h.get("sec-websocket-accept") == RFC_ACCEPT and h.get("sec-websocket-protocol") == "chat",
          "compat server: Upgrade, Connection: upgrade (nginx's), accept, the client's protocol answered (%r)" % h)
    check(h.get("x-compat") == "kept" and "content-type" not in h and "server" in h,
          "compat server: the application's ngx.header kept, no Content-Type, nginx's own headers (%r)" % h)
    check(res == ["foo|text|nil"] and got == b"", "compat server: text 'foo' -> foo, text, nil (%r %r)" % (res, got))
    _, _, res = srv_case(port, "n=1", masked_frame(0x1, b""))
    check(res == ["|text|nil"], "compat server: empty text frame (%r)" % res)
    sizes = (125, 126, 127, 65535)
    _, _, res = srv_case(port, "n=4", b"".join(masked_frame(0x1, b"a" * (n - 1) + b"b") for n in sizes))
    check(res == ["len=%d|text|nil" % n for n in sizes], "compat server: text of 125, 126, 127, 65535 bytes (%r)" % res)
    _, _, res = srv_case(port, "n=1&max_payload_len=65536", masked_frame(0x1, b"a" * 65536))
    check(res == ["len=65536|text|nil"], "compat server: 65536 bytes with max_payload_len=65536 (%r)" % res)
    _, _, res = srv_case(port, "n=1&max_payload_len=1048577", masked_frame(0x1, b"a" * 1048577))
    check(res == ["len=1048577|text|nil"], "compat server: 1 MiB + 1 with max_payload_len (%r)" % res)
    _, _, res = srv_case(port, "n=1", masked_frame(0x2, b"foo"))
    check(res == ["foo|binary|nil"], "compat server: binary (%r)" % res)
    _, got, res = srv_case(port, "n=1", masked_frame(0x8, struct.pack("!H", 1000) + b"yes, closed"))
    check(res == ["yes, closed|close|1000"] and got == b"",
          "compat server: close 1000 + msg -> msg, close, 1000; no automatic answer (%r %r)" % (res, got))
    _, _, res = srv_case(port, "n=1", masked_frame(0x8, struct.pack("!H", 1002)))
    check(res == ["|close|1002"], "compat server: close with just a code (%r)" % res)
    _, _, res = srv_case(port, "n=1", masked_frame(0x8, b""))
    check(res == ["|close|nil"], "compat server: empty close -> '', close, nil (%r)" % res)
    _, got, res = srv_case(port, "n=1&answer=1", masked_frame(0x8, struct.pack("!H", 1000) + b"bye"))
    check(res == ["bye|close|1000", "answer=7|nil"] and got == b"\x88\x05\x03\xe8bye",
          "compat server: send_close(code, msg) answers the close, returns bytes 7 (%r %r)" % (res, got))
    pl = "are you there? 你好".encode()
    _, _, res = srv_case(port, "n=3", masked_frame(0x9, b"") + masked_frame(0x9, pl) + masked_frame(0xA, pl))
    check(res == ["|ping|nil", "are you there? 你好|ping|nil", "are you there? 你好|pong|nil"],
          "compat server: ping empty, ping and pong with payload; no automatic pong (%r)" % res)
    _, got, res = srv_case(port, "n=1", masked_frame(0x1, b"a" * 65536))
    check(res == ["nil|nil|exceeding max payload len|fatal"] and got == b"",
          "compat server: 65536 bytes over the default 65535: exceeding max payload len, fatal, no close frame (%r %r)" % (res, got))
    _, _, res = srv_case(port, "n=1&max_recv_len=200", masked_frame(0x1, b"a" * 201))
    check(res == ["nil|nil|exceeding max payload len|fatal"], "compat server: max_recv_len=200 vs 201 bytes (%r)" % res)
    _, _, res = srv_case(port, "n=2", masked_frame(0x1, b"foo", fin=False) + masked_frame(0x0, b"bar"))
    check(res == ["foo|text|again", "bar|continuation|nil"], "compat server: fragments: again, then continuation (%r)" % res)
    _, got, res = srv_case(port, "n=1", masked_frame(0x0, b"foo"))
    check(res == ["nil|nil|continuation frame outside a message|fatal"] and got == b"",
          "compat server (RFC 6455 5.4, documented difference): continuation outside a message fails (%r)" % res)
    _, got, res = srv_case(port, "n=1", b"\x81\x03foo")
    check(res == ["nil|nil|frame unmasked|fatal"] and got == b"", "compat server: unmasked frame: frame unmasked (%r)" % res)
    _, _, res = srv_case(port, "n=1", rsv_frame(b"foo"))
    check(res == ["nil|nil|bad RSV1, RSV2, or RSV3 bits|fatal"], "compat server: RSV1 set (%r)" % res)
    _, _, res = srv_case(port, "n=1", masked_frame(0x1, b"ok\xff"))
    check(res == ["nil|nil|invalid UTF-8 in text|fatal"], "compat server (lightws addition): invalid UTF-8 fails (%r)" % res)
    _, _, res = srv_case(port, "n=2&timeout=50&then=5000", steps=[(b"", 0.4), (masked_frame(0x1, b"late"), 0)])
    check(res == ["nil|nil|failed to receive the first 2 bytes: timeout", "late|text|nil"],
          "compat server: timeout option: failed to receive the first 2 bytes: timeout, then the frame (%r)" % res)
    fr = masked_frame(0x1, b"resumed")
    _, _, res = srv_case(port, "n=2&timeout=50&then=5000", steps=[(fr[:3], 0.4), (fr[3:], 0)])
    check(len(res) >= 2 and res[0] == "nil|nil|failed to read masking-len and payload: timeout" and res[-1] == "resumed|text|nil",
          "compat server (lightws addition): a frame cut by the timeout continues in the next call (%r)" % res)
    _, _, res = srv_case(port, "n=1", shut=True)
    check(res == ["nil|nil|failed to receive the first 2 bytes: closed|fatal"], "compat server: EOF (%r)" % res)
    _, got, res = srv_case(port, "n=1&auto_pong=1", masked_frame(0x9, b"hi") + masked_frame(0x1, b"foo"))
    check(res == ["foo|text|nil"] and got == b"\x8a\x02hi",
          "compat server (lightws addition): auto_pong answers pings itself (%r %r)" % (res, got))
    _, _, res = srv_case(port, "n=1&proto=1", masked_frame(0x1, b"foo"))
    check(res == ["foo|text|nil"], "compat server: protocol.recv_frame on wb.sock (%r)" % res)
    # the frame in the same packet as the request (nginx read it with the head)
    s, head = raw_request(port, "/compat/srv?id=pre&n=2", after=masked_frame(0x1, b"foo") + masked_frame(0x2, b"bar"))
    read_all(s, 5)
    res = http_get(port, "/compat/result?id=pre").strip().split("\n")
    check(head.startswith(b"HTTP/1.1 101") and res == ["foo|text|nil", "bar|binary|nil"],
          "compat server: frames sent with the request head (read ahead by nginx) are received (%r)" % res)
    # Firefox 22's request
    s, head = raw_request(port, "/compat/srv?id=ff&n=1", key=b"05EiFj8mhoZ5F/oFE3Tyeg==",
                          connection=b"keep-alive, Upgrade")
    read_all(s, 5)
    status, h = parse_head(head)
    check(status.startswith("HTTP/1.1 101") and h.get("sec-websocket-accept") == "tBNO4O+F4DrQyajB62pvtRNU8LM=",
          "compat server: Firefox handshake (Connection: keep-alive, Upgrade)")
    for what, kw, err, code in (
            ("no Upgrade", dict(upgrade=None), 'bad "upgrade" request header: nil', 400),
            ("Connection without upgrade", dict(connection=b"keep-alive"), 'bad "connection" request header', 400),
            ("version 8", dict(version=b"8"), 'bad "sec-websocket-version" request header', 400)):
        _ids[0] += 1
        rid = "b%d" % _ids[0]
        s, head = raw_request(port, "/compat/srv?id=" + rid, **kw)
        read_all(s, 5)
        res = http_get(port, "/compat/result?id=" + rid).strip()
        check(res == "new: " + err and head.startswith(b"HTTP/1.1 %d" % code),
              "compat server: %s -> nil, %s (%r %r)" % (what, err, res, head[:40]))
    s, head = raw_request(port, "/compat/srv?id=pl&n=1", protocol=b"xml, json")
    read_all(s, 5)
    check(parse_head(head)[1].get("sec-websocket-protocol") == "xml",
          "compat server (RFC 6455 4.2.2, documented difference): a list of subprotocols is answered with its first")
    log = open(os.path.join(PREFIX, "logs/compat_access.log")).read()
    check(" 101\n" in log and "/compat/srv?id=ff" in log, "compat server: the upgrade is in nginx's access log with 101")


def lines(port, query):
    return http_get(port, "/compat/c?" + query).rstrip("\n").split("\n")


def result(port, rid):
    return http_get(port, "/compat/result?id=" + rid).strip().split("\n")


def expect(got, want, what):
    check(got == want, what + ("" if got == want else " (got %r, want %r)" % (got, want)))


def request_peer(n):
    """A raw server that records n request heads and answers "blah"."""
    import threading
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    heads = []

    def serve():
        srv.settimeout(20)
        try:
            for _ in range(n):
                c, _ = srv.accept()
                c.settimeout(10)
                head = b""
                while b"\r\n\r\n" not in head:
                    x = c.recv(1)
                    if not x:
                        break
                    head += x
                heads.append(head.decode("latin-1"))
                c.sendall(b"blah")
                c.close()
        except OSError:
            pass
        srv.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return srv.getsockname()[1], heads, t


def compat_client_tests(port):
    hello = "你好, WebSocket!"
    expect(http_get(port, "/compat/count").strip(), "server=11 client=13 protocol=5 shim=true",
           "compat: module sizes as lua-resty-websocket's; require \"resty.websocket.*\" loads lightws after install()")
    copy = len(("copy: " + hello).encode()) + 6
    expect(lines(port, "case=text"), ["connect: 1 nil true", "1: %s|text|nil" % hello, "sent: %d" % copy,
                                      "2: copy: %s|text|nil" % hello, "binary sent: 8", "3: len=2|binary|nil",
                                      "close: 1"],
           "compat client: connect -> 1, nil, response head; text/binary round trip; send_* return bytes")
    expect(lines(port, "case=close&id=c1"), ["1: |close|nil", "send_close: 6", "again: already closed", "close: 1"],
           "compat client: the server's empty close, then ours; send after close: already closed")
    expect(result(port, "c1"), ["|close|nil"], "compat client: the server got the empty close")
    expect(lines(port, "case=close_body&id=c2"), ["1: client, let's close!|close|1001", "send_close: 28"],
           "compat client: close with code and message")
    expect(result(port, "c2"), ["server, let's close!|close|1000"], "compat client: the server got code and message")
    expect(lines(port, "case=close_only&id=c3"), ["close: 1"], "compat client: close() without send_close")
    expect(result(port, "c3"), ["|close|nil"], "compat client: close() sends an empty close frame (no 1000)")
    expect(lines(port, "case=ping"), ["ping: |ping|nil", "sent: 6", "ping: hey, client?|ping|nil", "sent: 18",
                                      "pong: |pong|nil", "sent: 6", "pong: hey, client?|pong|nil", "sent: 18"],
           "compat client: ping and pong, empty and with payload")
    want = ["1: nil|nil|failed to receive the first 2 bytes: timeout fatal=nil", "2: %s|text|nil" % hello,
            "3: nil|nil|failed to receive the first 2 bytes: closed fatal=true",
            "4: nil|nil|fatal error already happened", "send: fatal error already happened"]
    expect(lines(port, "case=timeout"), want, "compat client: set_timeout(1): timeout, then the frame; EOF is fatal")
    expect(lines(port, "case=timeout&t=100"), want, "compat client: the timeout option")
    for pool in ("", "&pool=my_conn_pool"):
        expect(lines(port, "case=keepalive&id=k1" + pool),
               ["connect 1: 1 nil HTTP/1.1 101", "1: %s|text|nil" % hello, "keepalive: 1",
                "connect 2: 1 nil connection reused", "sent: 11", "2: again|text|nil", "close: 1"],
               "compat client: set_keepalive, then connect() -> 1, nil, \"connection reused\"" + (" (pool option)" if pool else ""))
        expect(result(port, "k1"), ["again|text|nil", "|close|nil"], "compat client: the pooled connection carried on" + pool)
    expect(lines(port, "case=unmasked&id=u1"), ["1: %s|text|nil" % hello, "sent: 6",
                                               "2: nil|nil|failed to receive the first 2 bytes: closed"],
           "compat client: send_unmasked sends unmasked frames")
    expect(result(port, "u1"), ["nil|nil|frame unmasked"], "compat client: the server fails them: frame unmasked")
    expect(lines(port, "case=masked"), ["1: nil|nil|server frame masked fatal=true"],
           "compat (RFC 6455 5.1, documented difference): send_masked frames are refused by a lightws client")
    expect(lines(port, "case=status"),
           ["/compat/plain: nil failed websocket handshake: unexpected response status: 200 fatal=true head=HTTP/1.1 200 OK",
            "send_text: fatal error already happened", "recv_frame: fatal error already happened",
            "/compat/forbidden: nil failed websocket handshake: unexpected response status: 403 fatal=true head=HTTP/1.1 403 Forbidden",
            "send_text: fatal error already happened", "recv_frame: fatal error already happened",
            "keep_response: nil failed websocket handshake: unexpected response status: 200 fatal=true", "body: plain http"],
           "compat client: a response other than 101: the code, fatal, the socket closed (kept with keep_response)")
    expect(lines(port, "case=limits&id=l1"),
           ["200: 208", "echo: len=200|text|nil", "201: nil payload too big fatal=true",
            "recv 201: nil|nil|exceeding max payload len fatal=true", "sent 300: 308",
            "payload_len recv 150: nil|nil|exceeding max payload len", "payload_len send 150: payload too big",
            "ping 126: too much payload for control frame", "fragmented ping: fragmented control frame",
            "bad code: bad status code bad status code"],
           "compat client: max_send_len, max_recv_len, max_payload_len both ways, control frame limits")
    expect(result(port, "l1")[:2], ["len=300|text|nil", "send: payload too big"],
           "compat server: max_send_len=200: payload too big")
    pport, heads, t = request_peer(3)
    got = lines(port, "case=request&peer=%d" % pport)
    t.join(10)
    expect(got[:3], ["%d: nil failed to receive response header: closed" % i for i in (1, 2, 3)],
           "compat client: a peer answering \"blah\": failed to receive response header: closed")
    expect(got[3:], ["bad uri: bad websocket uri", "bad headers: custom headers must be a table",
                     "bad host: custom host header must be a string",
                     "bad server_name: SSL server_name must be a string",
                     "refused: failed to connect: connection refused"], "compat client: option and connect errors")
    hp = "127.0.0.1:%d" % pport
    expect(heads[0] if heads else None,
           "GET / HTTP/1.1\r\nUpgrade: websocket\r\nHost: %s\r\nSec-WebSocket-Key: y7KXwBSpVrxtkR0O+bQt+Q==\r\n"
           "Sec-WebSocket-Protocol: json\r\nSec-WebSocket-Version: 13\r\nConnection: Upgrade\r\n\r\n" % hp,
           "compat client: the request head byte for byte (scalar protocols; math.randomseed(0) key)")
    import re
    check(len(heads) > 1 and re.fullmatch(
        "GET /p\\?q=1 HTTP/1.1\r\nUpgrade: websocket\r\nHost: %s\r\nSec-WebSocket-Key: [A-Za-z0-9+/]{22}==\r\n"
        "Sec-WebSocket-Protocol: xml,json\r\nSec-WebSocket-Version: 13\r\nOrigin: http://o.example\r\n"
        "Connection: Upgrade\r\nX-A: 1\r\nX-B: two\r\n\r\n" % re.escape(hp), heads[1]) is not None,
        "compat client: table protocols, origin, custom headers (%r)" % (heads[1:2],))
    expect(heads[2] if len(heads) > 2 else None,
           "GET / HTTP/1.1\r\nUpgrade: websocket\r\nHost: h.example\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\nConnection: Upgrade\r\n\r\n", "compat client: host and key options")
    p = subprocess.Popen(["/usr/bin/python3", os.path.join(SRC, "tests/lua/peer_python.py"), "server"],
                         stdout=subprocess.PIPE, text=True)
    try:
        pport = int(p.stdout.readline().strip().rsplit(":", 1)[1])
        expect(lines(port, "case=python&peer=%d" % pport),
               ["connect: 1 nil protocol=chat", "sent: 11", "1: hello|text|nil", "2: abcd|binary|nil", "ping: 7",
                "3: p|pong|nil", "send_close: 11", "4: bye|close|4001", "close: 1"],
               "compat client vs python websockets: echo, fragments, ping/pong, close code")
    finally:
        p.terminate()
        p.wait()
    got = lines(port, "case=wss&tls=%d&mtls=%d&dir=%s" % (TLS_PORTS["tls"], TLS_PORTS["mtls"], os.path.join(PREFIX, "certs")))
    expect(got[:1], ["no verify: 1 nil %s|text|nil" % hello], "compat client wss://: TLS without verification")
    check(len(got) > 1 and got[1].startswith("verify, wrong name: nil ssl handshake failed: "),
          "compat client wss://: ssl_verify with a server_name the certificate lacks fails (%r)" % got[1:2])
    expect(got[2:3], ["verify, server_name: 1 nil %s|text|nil" % hello], "compat client wss://: ssl_verify + server_name")
    expect(got[3:4], ["mtls without cert: nil failed websocket handshake: unexpected response status: 400"],
           "compat client wss://: a server requiring a client certificate refuses none")
    expect(got[4:5], ["mtls with cert: 1 nil %s|text|nil" % hello], "compat client wss://: client_cert + client_priv_key")
    expect(got[5:8], ["keepalive 1: 1 nil HTTP/1.1 101 hello 1|text|nil 1",
                      "keepalive 2: 1 nil connection r hello 2|text|nil 1",
                      "keepalive 3: 1 nil connection r hello 3|text|nil 1"],
           "compat client wss://: one object, set_keepalive between connects: the TLS connection is reused")
    expect(lines(port, "case=unix&path=" + os.path.join(PREFIX, "ws.sock")),
           ["unix: 1 nil HTTP/1.1 101 %s|text|nil" % hello], "compat client: ws://unix:/path:/uri")
    expect(lines(port, "case=protocol"), ["build: gQNmb28=", "masked: 9 130 131", "build 126: 130", "build 65536: 65546"],
           "compat protocol: build_frame")


def compat_tests(port):
    compat_server_tests(port)
    compat_client_tests(port)
    # node ws as the client of a lua-resty-websocket-style server
    node = subprocess.run(["node", os.path.join(SRC, "tests/lua/peer_node_client.js"),
                           "ws://127.0.0.1:%d/compat/s?mode=echo&max=200000" % port],
                          env=dict(os.environ, NODE_PATH=os.path.join(SRC, "build/node/node_modules")),
                          capture_output=True, text=True, timeout=30)
    expect(node.stdout.strip().split("\n"),
           ["open protocol=chat ext=", "message text 你好, WebSocket!", "message text hi", "message binary 4",
            "message binary 100000", "pong pp", "close 4000 bye"],
           "compat server vs node ws: greeting, text, binary, 100000 bytes, ping answered by the handler, close code echoed" +
           ("" if node.returncode == 0 else " (stderr %r)" % node.stderr[-300:]))
    # the path shim (bindings/lua/lightws/shim first on the path), under LuaJIT
    env = dict(os.environ, LUA_PATH="%s/bindings/lua/lightws/shim/?.lua;%s/bindings/lua/?.lua;;" % (SRC, SRC),
               LUA_CPATH=os.environ.get("LIGHTWS_LUAJIT_CPATH", SRC + "/build/luajit/?.so") + ";;")
    r = subprocess.run(["luajit", "-e", 'local r = require "lightws.resty"; '
                        'print(require("resty.websocket.server") == r.server and require("resty.websocket.client") == r.client '
                        'and require("resty.websocket.protocol") == r.protocol)'],
                       env=env, capture_output=True, text=True, timeout=30)
    check(r.stdout.strip() == "true", "compat: the path shim makes require \"resty.websocket.*\" load lightws (%r)" % (r.stdout + r.stderr))
    dbg = open(os.path.join(PREFIX, "logs/compat_debug.log")).read()
    check("recv_frame: mask bit: 1" in dbg and "recv_frame: mask bit: 0" in dbg and "sending the close frame" in dbg,
          "compat: the debug log lines of lua-resty-websocket (nginx --with-debug: mask bits, sending the close frame)")


async def deflate_server_tests(port):
    """lightws.resty's server with deflate = true in nginx: python websockets
    (default compression) negotiates, messages round-trip and come back
    compressed; deflate off declines; a raw client sees RSV1 in the answer."""
    uri = "ws://127.0.0.1:%d/deflate_echo" % port
    async with websockets.connect(uri, max_size=None) as ws:
        ext = ws.extensions
        check(len(ext) == 1 and ext[0].name == "permessage-deflate",
              "deflate server: python websockets negotiated PerMessageDeflate (%r)" % ext)
        await ws.send("ext?")
        got = await ws.recv()
        check(got.startswith("permessage-deflate snct=false cnct=false"), "deflate server: agreed %r" % got)
        text = "compress me " * 500
        await ws.send(text)
        ok = await ws.recv() == text
        await ws.send("last?")
        check(ok and await ws.recv() == "compressed=true", "deflate server: text round-trips, came compressed")
        await ws.send(b"")
        check(await ws.recv() == b"", "deflate server: 0 bytes")
        big = os.urandom(1 << 19) * 2
        await ws.send(big)
        check(await ws.recv() == big, "deflate server: 1 MiB binary")
        await ws.send(["frag", "men", "ted"])
        check(await ws.recv() == "fragmented", "deflate server: fragmented text (one compressed message)")
        await ws.close(1000)
        check(ws.close_code == 1000, "deflate server: close 1000")
    from websockets.extensions import permessage_deflate as pmd
    async with websockets.connect(uri + "?nct=1&bits=10", max_size=None, extensions=[
            pmd.ClientPerMessageDeflateFactory(client_no_context_takeover=True, server_max_window_bits=11)],
            compression=None) as ws:
        await ws.send("ext?")
        got = await ws.recv()
        check(got == "permessage-deflate snct=true cnct=true sbits=10 cbits=15", "deflate server: nct and bits agreed (%r)" % got)
        for i in range(3):
            await ws.send("same again " * 50)
            check(await ws.recv() == "same again " * 50, "deflate server: no context takeover message %d" % i)
    async with websockets.connect(uri + "?off=1", max_size=None) as ws:
        check(not ws.extensions, "deflate server: deflate = false declines the offer")
        await ws.send("x" * 1000)
        check(await ws.recv() == "x" * 1000, "deflate server: uncompressed echo without it")
    # raw: RSV1 on the answer to a compressed message (RFC 7692 §7.2.3.1 "Hello")
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /deflate_echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
              b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(4096)
    check(b"Sec-WebSocket-Extensions: permessage-deflate" in head, "deflate server: raw 101 names permessage-deflate")
    key = b"\x01\x02\x03\x04"
    payload = b"\xf2\x48\xcd\xc9\xc9\x07\x00"
    s.sendall(bytes([0xC1, 0x80 | len(payload)]) + key + unmask(payload, key))
    rest = head.split(b"\r\n\r\n", 1)[1]
    while len(rest) < 2:
        rest += s.recv(4096)
    check(rest[0] == 0xC1, "deflate server: a compressed message answered with RSV1 (byte 0 %#x)" % rest[0])
    bad = b"\xff\xff\xff garbage"
    s.sendall(bytes([0xC2, 0x80 | len(bad)]) + key + unmask(bad, key))
    s.settimeout(5)
    try:
        more = s.recv(4096)
    except OSError:
        more = b""
    s.close()
    check(True, "deflate server: invalid deflate data ends the connection (%d bytes after)" % len(more))


def deflate_client_tests(port):
    p = subprocess.Popen(["/usr/bin/python3", os.path.join(SRC, "tests/lua/peer_deflate.py"), "server"],
                         stdout=subprocess.PIPE, text=True)
    try:
        pport = int(p.stdout.readline().strip().rsplit(":", 1)[1])
        body = urllib.request.urlopen("http://127.0.0.1:%d/deflate_client?port=%d" % (port, pport),
                                      timeout=30).read().decode(errors="replace").strip()
        want = ("connect=ok agreed=permessage-deflate peer=[ext: permessage-deflate local_nct=False remote_nct=False "
                "local_bits=12 remote_bits=12] text=true compressed=true empty=true big=true plain=true frag=fragmented "
                "keepalive=[permessage-deflate connection cannot be kept alive] close=close:1000")
        check(body == want, "deflate client vs python websockets: negotiated, round-trips (%s)" % body)
        body = urllib.request.urlopen("http://127.0.0.1:%d/deflate_client?port=%d&off=1" % (port, pport),
                                      timeout=30).read().decode(errors="replace").strip()
        check(body.startswith("connect=ok agreed=none peer=[ext: none] text=true compressed=false"),
              "deflate client: not offered without deflate = true (%s)" % body)
    finally:
        p.terminate()
        p.wait()


def main():
    proc, port = start_nginx_on_free_port()
    try:
        asyncio.run(server_tests(port))
        resume_test(port)
        utf8_test(port)
        client_resume_test(port)
        client_test(port)
        time_server_tests(port)
        asyncio.run(time_keepalive_python(port))
        time_client_tests(port)
        compat_tests(port)
        asyncio.run(deflate_server_tests(port))
        deflate_client_tests(port)
    except Exception as e:  # a crash is a failure, with the nginx log
        check(False, "exception: %r" % (e,))
    finally:
        proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    failed = [w for ok, w in results if not ok]
    if failed:
        print(open(os.path.join(PREFIX, "logs/error.log")).read()[-4000:])
    print("nginx: %d passed, %d failed" % (len(results) - len(failed), len(failed)))
    sys.exit(1 if failed or not results else 0)


if __name__ == "__main__":
    main()
