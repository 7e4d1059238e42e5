#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Real-browser check: headless Chromium runs tests/browser/index.html
against build/lightws-echo (permessage-deflate negotiated; text, ArrayBuffer,
1 MiB, 0-byte messages, burst, close 4001),
and against a small ping server built on the lightws Python binding (a
server-initiated ping must come back as a pong with the same payload).
The page POSTs its results to this driver's HTTP server; we print one line
per check and "N passed, M failed", and exit 1 on any failure.

The same echo checks run over wss:// against `lightws-echo --tls-cert` (the
test CA's localhost certificate, tests/tls/make_certs.sh) when the tools
have TLS. Chromium trusts that certificate through
--ignore-certificate-errors-spki-list=<SHA-256 of its public key> (only
that key is accepted, not any certificate: no NSS tools here to add the
test CA to a profile's database).

  run.py [--echo build/lightws-echo] [--chromium chromium] [--timeout 60] [--certs DIR]"""
import argparse
import base64
import hashlib
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]
PING_PAYLOAD = b"lightws-server-ping \x00\xff"


class Report:
    def __init__(self):
        self.data = None
        self.event = threading.Event()


def http_server(report):
    page = open(os.path.join(HERE, "index.html"), "rb").read()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            if self.path.split("?")[0] in ("/", "/index.html"):
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)
            else:
                self.send_error(404)

        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(n)
            self.send_response(204)
            self.end_headers()
            if self.path == "/report":
                try:
                    report.data = json.loads(body)
                except ValueError:
                    report.data = {"results": [{"name": "report", "ok": False, "detail": "bad JSON"}]}
                report.event.set()

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def ping_server(result):
    """A lightws (Python binding) server: pings, says "pinged", reads the
    page's "ack" (the pong arrives before it), checks the pong payload and
    tells the page. Returns the port, or None if the binding is missing."""
    sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
    try:
        import lightws
    except ImportError as e:
        result["skip"] = "lightws Python binding not importable (%s); run `make python`" % e
        return None
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(4)

    def serve():
        try:
            ls.settimeout(60)
            sock, _ = ls.accept()
            ws = lightws.accept(sock, timeout=20)
            ws.ping(PING_PAYLOAD)
            ws.send("pinged")
            msg = ws.recv()
            pong = ws.last_pong
            ok = msg == "ack" and pong == PING_PAYLOAD
            result["ok"] = ok
            result["detail"] = "ack=%r pong=%r" % (msg, pong)
            ws.send("ping-ok" if ok else "ping-bad")
            try:
                ws.recv()
            except lightws.ConnectionClosed:
                pass
            ws.close()
        except Exception as e:  # reported as a failed check
            result["ok"] = False
            result["detail"] = "ping server: %r" % e
        finally:
            ls.close()

    threading.Thread(target=serve, daemon=True).start()
    return ls.getsockname()[1]


def spki_hash(pem):
    """base64 SHA-256 of the certificate's SubjectPublicKeyInfo (Chromium's
    --ignore-certificate-errors-spki-list format)."""
    pub = subprocess.run(["openssl", "x509", "-pubkey", "-noout", "-in", pem], check=True,
                         capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub, check=True,
                         capture_output=True).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def wss_ready(echo, certs):
    """The cert directory if the echo has TLS (made if missing), else None."""
    r = subprocess.run([echo, "--client", "wss://127.0.0.1:1/"], capture_output=True, timeout=10)
    if b"needs a build with TLS" in r.stderr:
        return None
    if not os.path.exists(os.path.join(certs, "server.pem")):
        subprocess.run(["bash", os.path.join(ROOT, "tests", "tls", "make_certs.sh"), certs],
                       check=True, stdout=subprocess.DEVNULL)
    return certs


def start_echo(path, *args):
    proc = subprocess.Popen([path, "--host", "127.0.0.1", "--port", "0", *args], stdout=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    line = proc.stdout.readline().decode()
    m = re.search(r"listening on [^:]+:(\d+)", line)
    if not m:
        proc.kill()
        raise SystemExit("lightws-echo did not print its port (%r)" % line)
    return proc, int(m.group(1))


def stop(proc):
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--echo", default=os.path.join(ROOT, "build", "lightws-echo"))
    ap.add_argument("--chromium", default="chromium")
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--certs", default=os.environ.get("LIGHTWS_TLS_CERTS")
                    or os.path.join(ROOT, "build", "tls", "certs"))
    a = ap.parse_args()

    if not shutil.which(a.chromium):
        print("FAIL chromium not found (scripts/deps.sh installs it)")
        print("0 passed, 1 failed")
        return 1
    report = Report()
    srv = http_server(report)
    echo, echo_port = start_echo(a.echo)
    certs = wss_ready(a.echo, a.certs)
    tls_flags = []
    wss_echo, wss_port = None, 0
    if certs:
        server_pem = os.path.join(certs, "server.pem")
        wss_echo, wss_port = start_echo(a.echo, "--tls-cert", server_pem,
                                        "--tls-key", os.path.join(certs, "server.key"))
        tls_flags = ["--ignore-certificate-errors-spki-list=" + spki_hash(server_pem)]
    ping_result = {}
    ping_port = ping_server(ping_result)
    url = "http://127.0.0.1:%d/index.html?ws=%d&ping=%d&wss=%d" % (srv.server_address[1], echo_port,
                                                                  ping_port or 0, wss_port)
    profile = tempfile.mkdtemp(prefix="lightws-chromium-")
    chrome = subprocess.Popen([a.chromium] + FLAGS + tls_flags + ["--user-data-dir=" + profile, url],
                              stdout=subprocess.DEVNULL, stderr=open(os.path.join(profile, "chromium.log"), "wb"),
                              stdin=subprocess.DEVNULL, start_new_session=True)
    passed = failed = 0
    try:
        got = report.event.wait(a.timeout)
        if not got:
            print("FAIL no report from the page within %.0f s (chromium %s)"
                  % (a.timeout, "exited %s" % chrome.returncode if chrome.poll() is not None else "running"))
            failed += 1
        else:
            print("browser: %s" % report.data.get("userAgent", "?"))
            for r in report.data.get("results", []):
                if r["name"].startswith("ping by") and ping_port is None:
                    continue
                ok = r["ok"]
                passed += ok
                failed += not ok
                print("%s %s%s" % ("PASS" if ok else "FAIL", r["name"], (": " + r["detail"]) if r["detail"] else ""))
            if ping_port is None:
                print("SKIP ping by the server: %s" % ping_result.get("skip"))
            else:
                deadline = time.monotonic() + 10
                while "ok" not in ping_result and time.monotonic() < deadline:
                    time.sleep(0.05)
                ok = ping_result.get("ok", False)
                passed += ok
                failed += not ok
                print("%s server side of the ping: pong payload matched%s"
                      % ("PASS" if ok else "FAIL", ": " + ping_result.get("detail", "no result")))
        if echo.poll() is not None:
            print("FAIL lightws-echo exited (status %s)" % echo.returncode)
            failed += 1
        if wss_echo is None:
            print("SKIP wss: the tools were built with TLS=0")
        elif wss_echo.poll() is not None:
            print("FAIL lightws-echo --tls-cert exited (status %s)" % wss_echo.returncode)
            failed += 1
    finally:
        stop(chrome)
        stop(echo)
        if wss_echo is not None:
            stop(wss_echo)
        srv.shutdown()
        shutil.rmtree(profile, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
