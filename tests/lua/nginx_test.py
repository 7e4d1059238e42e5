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


def start_nginx(port):
    shutil.rmtree(PREFIX, ignore_errors=True)
    for d in ("logs", "tmp", "conf"):
        os.makedirs(os.path.join(PREFIX, d))
    conf = open(os.path.join(SRC, "tests/lua/nginx.conf.in")).read()
    for k, v in {"@NDK_MODULE@": module("ndk_http_module.so"),
                 "@LUA_MODULE@": module("ngx_http_lua_module.so"),
                 "@PREFIX@": PREFIX, "@SRC@": SRC, "@PORT@": str(port),
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
