# SPDX-License-Identifier: MIT
"""lightws-tls against real TLS peers, both roles (run by tests/tls/run.sh):
python websockets with ssl, node ws over https.createServer, openssl
s_server (handshake, bad certificates), and a strict raw Python TLS peer
for close_notify and truncation. Usage: interop.py TLS_PEER CERTDIR."""

import asyncio
import base64
import hashlib
import os
import socket
import ssl
import subprocess
import sys
import threading
import time

PEER, CERTS = sys.argv[1], sys.argv[2]
HERE = os.path.dirname(os.path.abspath(__file__))
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
results = []


def c(name):
    return os.path.join(CERTS, name)


def record(name, ok, detail=""):
    results.append((name, ok))
    print("%s %s %s" % ("PASS" if ok else "FAIL", name, detail.strip()), flush=True)


def run(args, timeout=30):
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace").strip()


def start_server(args):
    """A peer that prints "port N" first."""
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    line = p.stdout.readline().decode()
    if not line.startswith("port "):
        p.kill()
        raise RuntimeError("peer did not start: %r" % line)
    return p, int(line.split()[1])


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def client_ctx():
    ctx = ssl.create_default_context(cafile=c("ca.pem"))
    return ctx


def server_ctx(name="server"):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(c(name + ".pem"), c(name + ".key"))
    return ctx


# ---- python websockets ------------------------------------------------------

def py_server_case():
    import websockets

    async def echo(ws, path=None):
        async for m in ws:
            await ws.send(m)

    async def main():
        async with websockets.serve(echo, "127.0.0.1", 0, ssl=server_ctx(),
                                    max_size=None) as srv:
            port = srv.sockets[0].getsockname()[1]
            out = []
            for extra in ([], ["--nonblock"]):
                proc = await asyncio.create_subprocess_exec(
                    PEER, "client", "localhost", str(port), "--cafile", c("ca.pem"),
                    "--count", "12", *extra, stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT)
                data, _ = await asyncio.wait_for(proc.communicate(), 30)
                out.append((proc.returncode, data.decode().strip(), extra))
            return out

    for rc, text, extra in asyncio.run(main()):
        record("python-websockets-server <- lightws client%s" % (" nonblocking" if extra else ""),
               rc == 0 and text.startswith("ok"), text)


def py_client_case():
    import websockets

    srv, port = start_server([PEER, "server", "0", "--cert", c("server.pem"),
                              "--key", c("server.key"), "--conns", "2"])

    async def one(uri):
        async with websockets.connect(uri, ssl=client_ctx(), max_size=None) as ws:
            for i in range(12):
                msg = bytes((k * 7 + i) & 255 for k in range(i * 6000))
                await ws.send(msg)
                back = await ws.recv()
                assert back == msg, "echo %d" % i
            await ws.send("text é")
            assert await ws.recv() == "text é"
        return ws.close_code

    try:
        codes = [asyncio.run(one("wss://localhost:%d/" % port)),
                 asyncio.run(one("wss://127.0.0.1:%d/" % port))]
        out, _ = srv.communicate(timeout=10)
        text = out.decode().strip()
        record("lightws server <- python-websockets client (localhost, 127.0.0.1)",
               codes == [1000, 1000] and srv.returncode == 0, text)
    except Exception as e:  # noqa: BLE001
        srv.kill()
        record("lightws server <- python-websockets client", False, repr(e))


# ---- node ws ------------------------------------------------------------------

def node_cases():
    node = ["node", os.path.join(HERE, "peer_node.js")]
    try:
        srv, port = start_server(node + ["server", c("server.pem"), c("server.key")])
    except Exception as e:  # noqa: BLE001
        record("node-ws-https-server <- lightws client", False, repr(e))
        return
    try:
        rc, text = run([PEER, "client", "localhost", str(port), "--cafile", c("ca.pem"),
                        "--count", "12"])
        record("node-ws-https-server <- lightws client", rc == 0 and text.startswith("ok"), text)
        rc, text = run([PEER, "client", "localhost", str(port), "--cafile", c("ca.pem"),
                        "--count", "12", "--nonblock"])
        record("node-ws-https-server <- lightws client nonblocking",
               rc == 0 and text.startswith("ok"), text)
    finally:
        srv.kill()
        srv.wait()
    srv, port = start_server([PEER, "server", "0", "--cert", c("server.pem"),
                              "--key", c("server.key"), "--nonblock"])
    rc, text = run(node + ["client", "wss://localhost:%d/" % port, c("ca.pem"), "12"])
    out, _ = srv.communicate(timeout=10)
    record("lightws server (nonblocking) <- node-ws client",
           rc == 0 and srv.returncode == 0, text + " / " + out.decode().strip())


# ---- openssl s_server: handshake, bad certificates ----------------------------

def s_server_cases():
    cases = [("server", [], 0, "ok"),
             ("expired", [], 2, "error TLS_CERT_EXPIRED"),
             ("wronghost", [], 2, "error TLS_CERT_HOSTNAME"),
             ("unknown", [], 2, "error TLS_CERT_UNTRUSTED"),
             ("expired", ["--insecure"], 0, "ok"),
             ("wronghost", ["--insecure"], 0, "ok"),
             ("unknown", ["--insecure"], 0, "ok")]
    for name, extra, want_rc, want in cases:
        port = free_port()
        srv = subprocess.Popen(["openssl", "s_server", "-accept", "127.0.0.1:%d" % port,
                                "-cert", c(name + ".pem"), "-key", c(name + ".key"),
                                "-naccept", "1"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
        while True:  # ready once it says ACCEPT
            line = srv.stdout.readline()
            if not line or line.startswith(b"ACCEPT"):
                break
        rc, text = run([PEER, "client", "localhost", str(port), "--cafile", c("ca.pem"),
                        "--handshake-only", *extra])
        srv.kill()
        srv.wait()
        record("openssl s_server %s%s" % (name, " --insecure" if extra else ""),
               rc == want_rc and text.startswith(want), text)


# ---- strict raw TLS peers: close_notify, truncation ---------------------------

def strict(ctx):
    ctx.options &= ~getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
    return ctx


def read_exact(t, n):
    out = b""
    while len(out) < n:
        d = t.recv(n - len(out))
        if not d:
            raise AssertionError("EOF after %r" % out)
        out += d
    return out


def read_head(t):
    out = b""
    while not out.endswith(b"\r\n\r\n"):
        d = t.recv(1)
        if not d:
            raise AssertionError("EOF in head")
        out += d
    return out.decode("latin-1")


def close_notify_from_lightws_server():
    srv, port = start_server([PEER, "server", "0", "--cert", c("server.pem"),
                              "--key", c("server.key")])
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        t = strict(client_ctx()).wrap_socket(sock, server_hostname="localhost",
                                             suppress_ragged_eofs=False)
        key = base64.b64encode(os.urandom(16)).decode()
        t.sendall(("GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n" % key).encode())
        head = read_head(t)
        assert head.startswith("HTTP/1.1 101"), head
        mk = os.urandom(4)
        t.sendall(b"\x88\x82" + mk + bytes(b ^ mk[i] for i, b in enumerate(b"\x03\xe8")))
        assert read_exact(t, 4) == b"\x88\x02\x03\xe8"
        try:
            ok = t.recv(4096) == b""
            detail = "close_notify received"
        except ssl.SSLError as e:
            ok, detail = False, "no close_notify: %s" % e
        t.close()
        srv.communicate(timeout=10)
        record("lightws server sends close_notify after the close handshake", ok, detail)
    except Exception as e:  # noqa: BLE001
        srv.kill()
        record("lightws server sends close_notify after the close handshake", False, repr(e))


def raw_server(handler):
    """A strict one-connection TLS server in a thread; returns (port, thread, box)."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    port = ls.getsockname()[1]
    box = {}

    def main():
        try:
            conn, _ = ls.accept()
            conn.settimeout(10)
            t = strict(server_ctx()).wrap_socket(conn, server_side=True,
                                                 suppress_ragged_eofs=False)
            req = read_head(t)
            key = [l.split(":", 1)[1].strip() for l in req.split("\r\n")
                   if l.lower().startswith("sec-websocket-key:")][0]
            acc = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
            t.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n" % acc).encode())
            box["result"] = handler(t)
        except Exception as e:  # noqa: BLE001
            box["result"] = (False, repr(e))
        finally:
            ls.close()

    th = threading.Thread(target=main)
    th.start()
    return port, th, box


def close_notify_from_lightws_client():
    def handler(t):
        head = read_exact(t, 2)
        assert head[0] == 0x88, head
        rest = read_exact(t, 4 + (head[1] & 0x7F))
        t.sendall(b"\x88\x02\x03\xe8")
        try:
            return (t.recv(4096) == b"", "close_notify received")
        except ssl.SSLError as e:
            return (False, "no close_notify: %s" % e)

    port, th, box = raw_server(handler)
    rc, text = run([PEER, "client", "localhost", str(port), "--cafile", c("ca.pem"),
                    "--count", "0"])
    th.join(15)
    ok, detail = box.get("result", (False, "no result"))
    record("lightws client sends close_notify after the close handshake",
           ok and rc == 0, detail + " / " + text)


def truncation_case():
    def handler(t):
        t.sendall(b"\x81\x02hi")
        time.sleep(0.2)
        socket.socket.shutdown(t, socket.SHUT_RDWR)  # TCP end, no close_notify
        return (True, "")

    port, th, box = raw_server(handler)
    rc, text = run([PEER, "client", "localhost", str(port), "--cafile", c("ca.pem"),
                    "--expect-eof"])
    th.join(15)
    record("truncation without close_notify -> EOF 1006", rc == 0 and "1006" in text, text)


def main():
    t0 = time.time()
    for case in (py_server_case, py_client_case, node_cases, s_server_cases,
                 close_notify_from_lightws_server, close_notify_from_lightws_client,
                 truncation_case):
        try:
            case()
        except Exception as e:  # noqa: BLE001
            record(case.__name__, False, repr(e))
    bad = [n for n, ok in results if not ok]
    print("tls interop: %d passed, %d failed (%.1f s)" % (len(results) - len(bad), len(bad),
                                                          time.time() - t0))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
