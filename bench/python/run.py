#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""lightws.asyncio (used through python websockets' API) against python
websockets (asyncio) in the same rounds (issue 16):

- many: build/loadgen's 100 x 20 B echo (bench/many's C1: inflight 8,
  refill 4) and 200 x 16 KiB (C2) against bench/python/aio_echo.py and bench/many/websockets_echo.py,
  through bench/many/run.py's run_one() (server on CPU 0, generator on CPU 1);
- W1: 1 GiB in 16 KiB binary messages, client and server of the same
  library in two processes (server CPU 0, client CPU 1):
  bench/python/aio_bulk.py against bench/websockets_bench.py;
- broadcast: lightws.broadcast() of a 20 B text message to 100 open
  connections, in process (frames written per second).

Rounds are interleaved (each round runs every server), medians reported,
with the median of per-round ratios lightws / websockets.

  python3 bench/python/run.py [--rounds 3] [--duration 3] [--total 1073741824]
      [--record bench/python/RESULTS.md]
"""
import argparse
import asyncio
import datetime
import importlib.util
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PY = "/usr/bin/python3"


def load_many():
    spec = importlib.util.spec_from_file_location("bench_many_run",
                                                  os.path.join(ROOT, "bench", "many", "run.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


MANY_SERVERS = [
    dict(name="lightws.asyncio", cmd=[PY, os.path.join(HERE, "aio_echo.py"), "--host", "127.0.0.1"]),
    dict(name="websockets", cmd=[PY, os.path.join(ROOT, "bench", "many", "websockets_echo.py"),
                                 "--host", "127.0.0.1"]),
]
W1_PROGRAMS = [
    ("lightws.asyncio", os.path.join(HERE, "aio_bulk.py")),
    ("websockets", os.path.join(ROOT, "bench", "websockets_bench.py")),
]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def w1(prog, total, size=16384):
    port = free_port()
    srv = subprocess.Popen(["taskset", "-c", "0", PY, prog, "server", "bulk", str(port),
                            str(total), str(size)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        cli = subprocess.run(["taskset", "-c", "1", PY, prog, "client", "bulk", str(port),
                              str(total), str(size)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, timeout=300)
        m = re.search(rb"MBps=([\d.]+)", cli.stdout)
        if not m:
            raise RuntimeError("%s: %s" % (prog, (cli.stdout + cli.stderr)[-300:]))
        srv.wait(timeout=60)
        return float(m.group(1))
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait()


def broadcast_rate(n=100, rounds=2000):
    sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
    import lightws
    import lightws.asyncio as lwa

    async def main():
        async with lwa.serve(lambda ws: ws.wait_closed(), "127.0.0.1", 0,
                             compression=None) as server:
            uri = "ws://127.0.0.1:%d/" % server.port
            clients = [await lwa.connect(uri, compression=None) for _ in range(n)]
            while len(server.connections) < n:
                await asyncio.sleep(0.01)
            conns = list(server.connections)
            got = [0]

            async def drain(c):
                try:
                    while True:
                        await c.recv()
                        got[0] += 1
                except lightws.ConnectionClosed:
                    pass
            tasks = [asyncio.create_task(drain(c)) for c in clients]
            busy = 0.0
            for _ in range(rounds):
                t = time.perf_counter()
                lightws.broadcast(conns, "x" * 20)
                busy += time.perf_counter() - t
                await asyncio.sleep(0)      # let the clients read
            deadline = time.monotonic() + 10
            while got[0] < n * rounds and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            for c in clients:
                await c.close()
            for t in tasks:
                t.cancel()
            return n * rounds / busy, got[0] / (n * rounds)
    return asyncio.run(main())


def ws_broadcast_rate(n=100, rounds=2000):
    """The same with python websockets' broadcast() (its legacy API here)."""
    spec = importlib.util.spec_from_file_location(
        "wsb", os.path.join(ROOT, "bench", "websockets_bench.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)            # loads the C speedups first
    websockets = mod.websockets

    async def main():
        conns = set()

        async def handler(ws):
            conns.add(ws)
            await ws.wait_closed()

        async with websockets.serve(handler, "127.0.0.1", 0, compression=None) as srv:
            port = srv.sockets[0].getsockname()[1]
            clients = [await websockets.connect("ws://127.0.0.1:%d/" % port, compression=None)
                       for _ in range(n)]
            while len(conns) < n:
                await asyncio.sleep(0.01)
            got = [0]

            async def drain(c):
                try:
                    while True:
                        await c.recv()
                        got[0] += 1
                except websockets.ConnectionClosed:
                    pass
            tasks = [asyncio.create_task(drain(c)) for c in clients]
            busy = 0.0
            for _ in range(rounds):
                t = time.perf_counter()
                websockets.broadcast(conns, "x" * 20)
                busy += time.perf_counter() - t
                await asyncio.sleep(0)
            deadline = time.monotonic() + 10
            while got[0] < n * rounds and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            for c in clients:
                await c.close()
            for t in tasks:
                t.cancel()
            return n * rounds / busy, got[0] / (n * rounds)
    return asyncio.run(main())


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--total", type=int, default=1 << 30)
    ap.add_argument("--record", help="write the report to this file")
    a = ap.parse_args()
    many = load_many()
    case = ("C1", "100 x 20 B", dict(conns=100, size=20, inflight=8, batch=4))
    case2 = ("C2", "200 x 16 KiB", dict(conns=200, size=16384, inflight=1, batch=1))

    class Args:
        idle = None
        warmup = a.warmup
        duration = a.duration
        text = False

    mps = {s["name"]: [] for s in MANY_SERVERS}
    cpu = {s["name"]: [] for s in MANY_SERVERS}
    mps2 = {s["name"]: [] for s in MANY_SERVERS}
    mbps = {n: [] for n, _ in W1_PROGRAMS}
    for r in range(a.rounds):
        order = MANY_SERVERS[r % 2:] + MANY_SERVERS[:r % 2]
        for s in order:
            d = many.run_one(s, case, Args)
            if "error" in d:
                sys.exit("%s: %s" % (s["name"], d["error"]))
            mps[s["name"]].append(d["msgs_per_s"])
            cpu[s["name"]].append(d["msgs_per_server_cpu_s"])
            print("round %d many %s: %.0f msgs/s" % (r + 1, s["name"], d["msgs_per_s"]),
                  file=sys.stderr)
            d = many.run_one(s, case2, Args)
            if "error" in d:
                sys.exit("%s: %s" % (s["name"], d["error"]))
            mps2[s["name"]].append(d["msgs_per_s"])
        progs = W1_PROGRAMS[r % 2:] + W1_PROGRAMS[:r % 2]
        for name, prog in progs:
            mbps[name].append(w1(prog, a.total))
            print("round %d W1 %s: %.1f MB/s" % (r + 1, name, mbps[name][-1]), file=sys.stderr)
    bc, wbc = [], []
    for _ in range(a.rounds):
        bc.append(broadcast_rate())
        wbc.append(ws_broadcast_rate())

    def ratio(d):
        return med([x / y for x, y in zip(d["lightws.asyncio"], d["websockets"])])

    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                         stdout=subprocess.PIPE).stdout.decode().strip()
    L = ["# bench/python: lightws.asyncio against python websockets", "",
         "Run %s at %s, `python3 bench/python/run.py --rounds %d --duration %g` on %s, "
         "Python %s, python3-websockets %s with its C speedups (build/pyws/speedups.so)." % (
             datetime.date.today().isoformat(), rev, a.rounds, a.duration, platform.machine(),
             platform.python_version(), _ws_version()), "",
         "Both servers: no compression, no keepalive ping, no size limit; lightws through",
         "websockets' API (`lightws.asyncio.serve`, `async for msg in ws`, `await ws.send`).",
         "", "| case | lightws.asyncio | websockets | ratio (median per round) | target |",
         "|---|---:|---:|---:|---:|",
         "| many-connection echo, 100 x 20 B, msgs/s | %s | %s | x%.2f | x3 |" % (
             _f(med(mps["lightws.asyncio"])), _f(med(mps["websockets"])), ratio(mps)),
         "| the same, msgs per server CPU-second | %s | %s | x%.2f | |" % (
             _f(med(cpu["lightws.asyncio"])), _f(med(cpu["websockets"])), ratio(cpu)),
         "| many-connection echo, 200 x 16 KiB, msgs/s | %s | %s | x%.2f | |" % (
             _f(med(mps2["lightws.asyncio"])), _f(med(mps2["websockets"])), ratio(mps2)),
         "| W1: 1 GiB in 16 KiB messages, MB/s | %.1f | %.1f | x%.2f | x2 |" % (
             med(mbps["lightws.asyncio"]), med(mbps["websockets"]), ratio(mbps)),
         "", "broadcast() of 20 B to 100 connections, frames written per second of time "
         "inside broadcast() (in process, the clients on the same loop): lightws %s "
         "(%.1f%% of the frames reached the clients), websockets %s (%.1f%%), x%.2f." % (
             _f(med([b[0] for b in bc])), 100 * med([b[1] for b in bc]),
             _f(med([b[0] for b in wbc])), 100 * med([b[1] for b in wbc]),
             med([x[0] / y[0] for x, y in zip(bc, wbc)])),
         "", "Per round (many msgs/s lightws / websockets; W1 MB/s lightws / websockets):", ""]
    for r in range(a.rounds):
        L.append("- round %d: %s / %s; %.1f / %.1f" % (
            r + 1, _f(mps["lightws.asyncio"][r]), _f(mps["websockets"][r]),
            mbps["lightws.asyncio"][r], mbps["websockets"][r]))
    out = "\n".join(L) + "\n"
    print(out)
    if a.record:
        with open(a.record, "w") as f:
            f.write(out)


def _f(x):
    return "{:,.0f}".format(x)


def _ws_version():
    r = subprocess.run([PY, "-c", "import websockets; print(websockets.__version__)"],
                       stdout=subprocess.PIPE)
    return r.stdout.decode().strip()


if __name__ == "__main__":
    main()
