#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Soak: N concurrent websocket connections (default 10,000) over loopback
to build/lightws-echo; all are opened and held at once, each sends one
masked message and checks its echo, then all close (close handshake, the
server closes TCP). Reports the server's RSS per connection (VmRSS from
/proc/PID/status, open minus idle), errors (must be 0) and descriptors
leaked (/proc/PID/fd before vs after, must be 0). Exit 1 on errors/leaks.

  soak.py [--connections 10000] [--echo build/lightws-echo] [--size 64]"""
import argparse
import asyncio
import base64
import os
import re
import resource
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "conformance"))
from wsproto_min import BINARY, CLOSE, TEXT, accept_for, encode_frame  # noqa: E402


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def nfds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


async def read_frame(reader):
    h = await reader.readexactly(2)
    n = h[1] & 0x7F
    if n == 126:
        n = int.from_bytes(await reader.readexactly(2), "big")
    elif n == 127:
        n = int.from_bytes(await reader.readexactly(8), "big")
    if h[1] & 0x80:
        raise ValueError("server frame masked")
    return h[0] & 0x0F, h[0] >> 7, await reader.readexactly(n)


class Conn:
    __slots__ = ("i", "reader", "writer")


async def open_one(i, port, sem, errors):
    async with sem:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 30)
            key = base64.b64encode(os.urandom(16)).decode()
            writer.write(("GET /soak/%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
                          % (i, port, key)).encode())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            if not head.startswith(b"HTTP/1.1 101") or accept_for(key).encode() not in head:
                raise ValueError("bad handshake response %r" % head[:40])
            c = Conn()
            c.i, c.reader, c.writer = i, reader, writer
            return c
        except Exception as e:
            errors.append("open %d: %r" % (i, e))
            return None


async def echo_one(c, size, errors):
    try:
        payload = (b"soak %d " % c.i).ljust(size, b".")
        c.writer.write(encode_frame(TEXT, payload, mask=os.urandom(4)))
        op, fin, data = await asyncio.wait_for(read_frame(c.reader), 60)
        if op != TEXT or not fin or data != payload:
            raise ValueError("echo differs (opcode %d, %d bytes)" % (op, len(data)))
    except Exception as e:
        errors.append("echo %d: %r" % (c.i, e))


async def close_one(c, errors):
    try:
        c.writer.write(encode_frame(CLOSE, (1000).to_bytes(2, "big"), mask=os.urandom(4)))
        op, fin, data = await asyncio.wait_for(read_frame(c.reader), 60)
        if op != CLOSE or data[:2] != (1000).to_bytes(2, "big"):
            raise ValueError("close reply opcode %d payload %r" % (op, data[:4]))
        rest = await asyncio.wait_for(c.reader.read(), 30)  # the server closes TCP
        if rest:
            raise ValueError("data after the close handshake")
    except Exception as e:
        errors.append("close %d: %r" % (c.i, e))
    finally:
        c.writer.close()


async def soak(port, pid, n, size):
    errors = []
    sem = asyncio.Semaphore(256)  # connects in flight (listen backlog)
    base_rss, base_fds = rss_kib(pid), nfds(pid)
    t0 = time.monotonic()
    conns = await asyncio.gather(*(open_one(i, port, sem, errors) for i in range(n)))
    conns = [c for c in conns if c is not None]
    t_open = time.monotonic() - t0
    await asyncio.sleep(0.5)
    open_rss, open_fds = rss_kib(pid), nfds(pid)
    t1 = time.monotonic()
    await asyncio.gather(*(echo_one(c, size, errors) for c in conns))
    t_echo = time.monotonic() - t1
    peak_rss = rss_kib(pid)
    t2 = time.monotonic()
    await asyncio.gather(*(close_one(c, errors) for c in conns))
    t_close = time.monotonic() - t2
    # Give the server a moment to reap, then compare descriptors.
    end_fds = nfds(pid)
    for _ in range(50):
        if end_fds <= base_fds:
            break
        await asyncio.sleep(0.1)
        end_fds = nfds(pid)
    end_rss = rss_kib(pid)
    return {
        "connections": n, "opened": len(conns), "errors": errors,
        "base_rss_kib": base_rss, "open_rss_kib": open_rss, "peak_rss_kib": peak_rss, "end_rss_kib": end_rss,
        "base_fds": base_fds, "open_fds": open_fds, "end_fds": end_fds,
        "t_open": t_open, "t_echo": t_echo, "t_close": t_close,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--connections", type=int, default=10000)
    ap.add_argument("--echo", default=os.path.join(ROOT, "build", "lightws-echo"))
    ap.add_argument("--size", type=int, default=64, help="message size in bytes")
    a = ap.parse_args()

    want = a.connections + 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
        except ValueError:
            pass
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft < want:
        print("soak: RLIMIT_NOFILE is %d, need %d (hard limit %d)" % (soft, want, hard))
        return 1
    server = subprocess.Popen(["bash", "-c", 'ulimit -n %d && exec "$0" --host 127.0.0.1 --port 0 --quiet'
                               % want, a.echo], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        line = server.stdout.readline().decode()
        m = re.search(r"listening on [^:]+:(\d+)", line)
        if not m:
            print("soak: lightws-echo did not print its port (%r)" % line)
            return 1
        r = asyncio.run(soak(int(m.group(1)), server.pid, a.connections, a.size))
        alive = server.poll() is None
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
        server.wait()
    per_conn = (r["open_rss_kib"] - r["base_rss_kib"]) * 1024.0 / max(1, r["opened"])
    leaked = r["end_fds"] - r["base_fds"]
    print("soak: %d connections held at once, %d-byte message each" % (r["connections"], a.size))
    print("soak: opened %d in %.1f s, echoed in %.1f s, closed in %.1f s"
          % (r["opened"], r["t_open"], r["t_echo"], r["t_close"]))
    print("soak: server RSS idle %d KiB, all open %d KiB, after echo %d KiB, after close %d KiB"
          % (r["base_rss_kib"], r["open_rss_kib"], r["peak_rss_kib"], r["end_rss_kib"]))
    print("soak: RSS per connection %.0f bytes (%.1f KiB)" % (per_conn, per_conn / 1024))
    print("soak: server fds idle %d, all open %d, after close %d: leaked %d"
          % (r["base_fds"], r["open_fds"], r["end_fds"], leaked))
    print("soak: errors %d" % len(r["errors"]))
    for e in r["errors"][:10]:
        print("  " + e)
    if not alive:
        print("soak: server exited during the run")
    ok = not r["errors"] and leaked == 0 and alive and r["opened"] == r["connections"]
    print("soak: %s" % ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
