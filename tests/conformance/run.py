#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""RFC 6455 conformance runner: plays the case matrix (cases.py,
cases_hs.py) against echo peers in both roles.

  run.py --peer CMD [--peer CMD ...] [--role server|client|both] [-k PATTERN]

CMD is a command prefix taking the shared echo command line: CMD --host
127.0.0.1 --port 0 starts an echo server that prints "listening on
HOST:PORT"; CMD --client ws://HOST:PORT/PATH?QUERY starts an echo client.
"NAME=CMD" names a peer. --tls CERTDIR runs every case over TLS (wss): the
server gets --tls-cert/--tls-key (CERTDIR/server.pem, .key of
tests/tls/make_certs.sh), the client --cafile CERTDIR/ca.pem and a
wss://127.0.0.1 URL; each connection is relayed between a plain socket the case uses and
Python's ssl in one thread (an SSLSocket must not be used by two threads). Prints "PASS id title" / "FAIL id title: reason"
per case and a final "C cases, ... skipped ...; N passed, M failed" line (what
a -k pattern left out is named there); exits 1 on any failure."""
import argparse
import fnmatch
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import selectors
import ssl
import struct
import tempfile
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import cases  # noqa: E402
import cases_hs  # noqa: E402,F401  (registers its cases)
import cases_pmd  # noqa: E402,F401  (registers its cases)
from wsproto_min import Conn, Fail, PeerEOF, Skip  # noqa: E402


TLS = {}  # --tls: {"client": SSLContext, "server": SSLContext, "dir": CERTDIR}
PLAIN_CONNECT = socket.create_connection  # before tls_setup() patches it


def tcp_pair():
    """Two connected loopback TCP sockets (the cases set TCP options)."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    a = PLAIN_CONNECT(ls.getsockname())
    b, _ = ls.accept()
    ls.close()
    return a, b


def rst_close(s):
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    s.close()


def tls_pipe(plain, tls):
    """Relays bytes between `plain` (the case's socket's other end) and
    `tls` (an SSLSocket, handshake done) in one thread, so that OpenSSL's
    object is never used by two threads (the cases' Conn sends from its own
    thread). An EOF is passed on as a FIN (on the TLS side: a TCP FIN
    without close_notify, as for a plain socket), an error as a reset."""
    plain.setblocking(False)
    tls.setblocking(False)
    sel = selectors.DefaultSelector()
    to_tls, to_plain = bytearray(), bytearray()
    plain_eof = tls_eof = fin_tls = fin_plain = False
    try:
        while True:
            if plain_eof and not to_tls and not fin_tls:
                raw = socket.socket(fileno=os.dup(tls.fileno()))
                try:
                    raw.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                raw.close()
                fin_tls = True
            if tls_eof and not to_plain and not fin_plain:
                try:
                    plain.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                fin_plain = True
            if fin_tls and fin_plain:
                break
            ev_p = (0 if plain_eof else selectors.EVENT_READ) | (selectors.EVENT_WRITE if to_plain else 0)
            ev_t = (0 if tls_eof else selectors.EVENT_READ) | (selectors.EVENT_WRITE if to_tls else 0)
            sel_map = {}
            for sk, ev in ((plain, ev_p), (tls, ev_t)):
                if ev:
                    sel.register(sk, ev)
                    sel_map[sk] = ev
            ready = sel.select(0 if tls.pending() else 30) if sel_map else []
            for sk in sel_map:
                sel.unregister(sk)
            if not ready and not tls.pending() and sel_map:
                break  # 30 s without traffic: the case is long over
            if not plain_eof:
                try:
                    d = plain.recv(65536)
                    if d:
                        to_tls += d
                    else:
                        plain_eof = True
                except BlockingIOError:
                    pass
            if to_tls:
                try:
                    n = tls.send(to_tls)
                    del to_tls[:n]
                except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                    pass
            if not tls_eof:
                while True:
                    try:
                        d = tls.recv(65536)
                    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                        break
                    if not d:
                        tls_eof = True
                        break
                    to_plain += d
            if to_plain:
                try:
                    n = plain.send(to_plain)
                    del to_plain[:n]
                except BlockingIOError:
                    pass
        plain.close()
        tls.close()
    except (OSError, ValueError):  # a reset on one side resets the other
        rst_close(plain)
        rst_close(tls)
    finally:
        sel.close()


def tls_relay(tls):
    """The plain socket a case uses for the TLS connection `tls`."""
    a, b = tcp_pair()
    threading.Thread(target=tls_pipe, args=(b, tls), daemon=True).start()
    return a


def tls_setup(certdir):
    """Runs the cases over TLS through a relay per connection: the one
    place that connects (cases_hs.connect, through socket.create_connection)
    and Ctx.accept hand the cases a plain socket relayed to the peer."""
    cctx = ssl.create_default_context(cafile=os.path.join(certdir, "ca.pem"))
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(os.path.join(certdir, "server.pem"), os.path.join(certdir, "server.key"))
    TLS.update(client=cctx, server=sctx, dir=certdir)
    def create_connection(addr, *a, **kw):
        s = PLAIN_CONNECT(addr, *a, **kw)
        try:
            s.settimeout(10)
            t = cctx.wrap_socket(s, server_hostname="localhost")
        except Exception:
            s.close()
            raise
        return tls_relay(t)
    cases_hs.socket.create_connection = create_connection


class Ctx:
    """What a case sees: the role, an open Conn (unless raw), and for a
    server peer its address and process, for a client peer the listener."""

    def __init__(self, role):
        self.role = role
        self.conn = None
        self.clean = False
        self.expect_exit = None
        self.proc = None
        self.host = "127.0.0.1"
        self.port = 0
        self.path = "/"
        self.listener = None
        self.client_proc = None

    def accept(self):
        """The echo client's connection (fails at once if it exited)."""
        deadline = time.monotonic() + 10
        self.listener.settimeout(0.2)
        while True:
            try:
                s, _ = self.listener.accept()
                break
            except socket.timeout:
                if self.client_proc is not None and self.client_proc.poll() is not None:
                    raise Fail("the client exited (status %s) without connecting" % self.client_proc.returncode)
                if time.monotonic() > deadline:
                    raise Fail("the client did not connect within 10 s")
        s.settimeout(None)
        if TLS:
            s.settimeout(10)
            try:
                s = tls_relay(TLS["server"].wrap_socket(s, server_side=True))
            except (ssl.SSLError, OSError) as e:
                s.close()
                raise Fail("TLS handshake with the client failed: %s" % e)
        return s


def start_server(cmd, log):
    try:
        tls = ["--tls-cert", os.path.join(TLS["dir"], "server.pem"),
               "--tls-key", os.path.join(TLS["dir"], "server.key")] if TLS else []
        proc = subprocess.Popen(cmd + tls + ["--host", "127.0.0.1", "--port", "0"], stdout=subprocess.PIPE,
                                stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    except OSError as e:
        raise RuntimeError("cannot start server %r: %s" % (cmd, e))
    deadline = time.monotonic() + 15
    line = b""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        m = re.search(rb"listening on \[?([0-9a-fA-F.:]+?)\]?:(\d+)", line)
        if m:
            return proc, m.group(1).decode(), int(m.group(2))
    stop(proc)
    raise RuntimeError("server %r did not print 'listening on HOST:PORT' (got %r)" % (cmd, line))


def stop(proc):
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(3)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def tail(path, n=6):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").strip().splitlines()
        return " | ".join(lines[-n:])
    except OSError:
        return ""


def run_case_server(peer, state, cid, title, timeout, raw, fn):
    """One case against the server peer (restarted if it died)."""
    if state["proc"] is None or state["proc"].poll() is not None:
        if state.get("start_failures", 0) >= 2:
            return "server could not be started (see the earlier failures)"
        try:
            state["proc"], state["host"], state["port"] = start_server(peer["cmd"], state["log"])
        except RuntimeError:
            state["start_failures"] = state.get("start_failures", 0) + 1
            raise
    t = Ctx("server")
    t.proc, t.host, t.port = state["proc"], state["host"], state["port"]
    try:
        if not raw:
            t.conn = cases_hs.open_ws(t, cases_hs.request(t.host, t.port, path="/case/%s?peer=x" % cid))
        fn(t)
        err = None
        if t.proc.poll() is not None:
            err = "server process exited (status %s)" % t.proc.returncode
    except Skip as e:
        err = ("skip", str(e))
    except (Fail, PeerEOF, OSError) as e:
        err = str(e) or type(e).__name__
        if t.proc.poll() is not None:
            err += "; server process exited (status %s)" % t.proc.returncode
    except Exception as e:  # a bug in the suite itself
        err = "suite error: %s\n%s" % (e, traceback.format_exc())
    finally:
        if t.conn is not None:
            t.conn.shutdown()
    return err


def run_case_client(peer, state, cid, title, timeout, raw, fn):
    """One case with the echo client: we listen, it connects to /case/ID."""
    t = Ctx("client")
    t.listener = state["listener"]
    t.port = state["port"]
    t.path = "/case/%s?agent=lightws&n=1" % cid
    url = "ws://127.0.0.1:%d%s" % (t.port, t.path)
    tls = []
    if TLS:
        url = "wss://127.0.0.1:%d%s" % (t.port, t.path)  # the certificate names 127.0.0.1
        tls = ["--cafile", os.path.join(TLS["dir"], "ca.pem")]
    log = state["log"]
    try:
        proc = subprocess.Popen(peer["cmd"] + tls + ["--client", url], stdout=log, stderr=log,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    except OSError as e:
        return "cannot start client %r: %s" % (peer["cmd"], e)
    t.client_proc = proc
    err = None
    skip = None
    try:
        if not raw:
            sock, key, rest = cases_hs.accept_client(t)
            sock.sendall(cases_hs.response_101(key))
            t.conn = Conn(sock, False, rest)
        fn(t)
    except Skip as e:
        skip = ("skip", str(e))
    except (Fail, PeerEOF, OSError) as e:
        err = str(e) or type(e).__name__
    except Exception as e:
        err = "suite error: %s\n%s" % (e, traceback.format_exc())
    finally:
        if t.conn is not None:
            t.conn.wait_sent(2)
            t.conn.shutdown()
    # We closed TCP (the server's part, §7.1.1): the client must exit.
    try:
        rc = proc.wait(5)
    except subprocess.TimeoutExpired:
        stop(proc)
        rc = None
        if err is None:
            err = "client did not exit within 5 s after the connection ended"
    if err is None and rc is not None:
        if t.clean and rc != 0:
            err = "client exited with status %d after a clean close" % rc
        elif t.expect_exit == "nonzero" and rc == 0:
            err = "client exited 0 after a failed handshake"
    if err is None and rc is not None and rc < 0:
        err = "client killed by signal %d" % -rc
    return err or skip


def selection_summary(pattern):
    """'175 cases, 170 run, 5 skipped (-k ...: category 8, 8.1-8.5)': what
    a -k pattern left out, so a partial run never looks like a full one."""
    total = len(cases.CASES)
    skipped = [c[0] for c in cases.CASES
               if pattern and not fnmatch.fnmatch(c[0], pattern)]
    if not skipped:
        return "%d cases, all run" % total
    cats = {}
    for cid in skipped:
        cats.setdefault(cid.split(".")[0], []).append(cid)
    full = {}
    for c in cases.CASES:
        full.setdefault(c[0].split(".")[0], []).append(c[0])
    parts = []
    for cat in sorted(cats, key=lambda x: int(x) if x.isdigit() else 0):
        ids = cats[cat]
        if len(ids) == len(full[cat]):
            parts.append("category %s (%s-%s)" % (cat, ids[0], ids[-1]) if len(ids) > 1
                         else "category %s (%s)" % (cat, ids[0]))
        else:
            parts.append(", ".join(ids))
    return "%d cases, %d run, %d skipped by -k '%s': %s" % (
        total, total - len(skipped), len(skipped), pattern, "; ".join(parts))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peer", action="append", required=True, help="[NAME=]command prefix of an echo peer")
    ap.add_argument("--role", choices=("server", "client", "both"), default="both")
    ap.add_argument("-k", dest="pattern", default=None, help="only case ids matching this glob")
    ap.add_argument("--logdir", default=None, help="peer stderr logs (default: a temp dir)")
    ap.add_argument("--no-exit-status", action="store_true",
                    help="do not require exit status 0/non-zero of echo clients (only that they exit)")
    ap.add_argument("--tls", metavar="CERTDIR", default=None,
                    help="run over TLS (wss) with the certificates of tests/tls/make_certs.sh")
    args = ap.parse_args()
    if args.tls:
        tls_setup(args.tls)

    logdir = args.logdir or tempfile.mkdtemp(prefix="lightws-conf-")
    os.makedirs(logdir, exist_ok=True)
    passed = failed = skipped = 0
    t0 = time.monotonic()
    for spec in args.peer:
        name, sep, cmd = spec.partition("=")
        if not sep or " " in name:
            name, cmd = os.path.basename(shlex.split(spec)[-1]), spec
        peer = {"name": name, "cmd": shlex.split(cmd)}
        roles = ("server", "client") if args.role == "both" else (args.role,)
        for role in roles:
            logpath = os.path.join(logdir, "%s-%s.log" % (re.sub(r"[^\w.-]", "_", name), role))
            log = open(logpath, "ab")
            state = {"proc": None, "log": log}
            if role == "client":
                ls = socket.socket()
                ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                ls.bind(("127.0.0.1", 0))
                ls.listen(16)
                state["listener"], state["port"] = ls, ls.getsockname()[1]
            print("== %s as %s (%s)" % (name, role, cmd), flush=True)
            rstart = time.monotonic()
            for cid, title, case_roles, timeout, raw, fn in cases.CASES:
                if role not in case_roles:
                    continue
                if args.pattern and not fnmatch.fnmatch(cid, args.pattern):
                    continue
                start = time.monotonic()
                try:
                    if role == "server":
                        err = run_case_server(peer, state, cid, title, timeout, raw, fn)
                    else:
                        err = run_case_client(peer, state, cid, title, timeout, raw, fn)
                except RuntimeError as e:
                    err = str(e)
                if err and args.no_exit_status and ("exited with status" in err or "exited 0" in err):
                    err = None
                took = time.monotonic() - start
                label = "%s [%s %s] %s" % (cid, name, role, title)
                if isinstance(err, tuple):
                    skipped += 1
                    print("SKIP %s: %s" % (label, err[1]), flush=True)
                elif err is None:
                    passed += 1
                    print("PASS %s%s" % (label, " (%.1f s)" % took if took > 1 else ""), flush=True)
                else:
                    failed += 1
                    extra = tail(logpath)
                    print("FAIL %s: %s%s" % (label, err, ("  [peer log: %s]" % extra) if extra else ""), flush=True)
            if state["proc"] is not None:
                if state["proc"].poll() is not None:
                    failed += 1
                    print("FAIL %s as server: process exited (status %s) by the end of the run"
                          % (name, state["proc"].returncode))
                stop(state["proc"])
            if role == "client":
                state["listener"].close()
            log.close()
            print("-- %s as %s: %.1f s" % (name, role, time.monotonic() - rstart), flush=True)
    print("(%.1f s; peer logs in %s)" % (time.monotonic() - t0, logdir))
    print("%s; %s%d passed, %d failed" % (
        selection_summary(args.pattern),
        "%d skipped (the peer offers or accepts no permessage-deflate); " % skipped if skipped else "",
        passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
