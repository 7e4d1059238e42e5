#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""W1/W3 over TLS 1.3 (TLS_AES_128_GCM_SHA256): lightws C (lightws-tls) against
node ws (https.createServer / wss client) and python3-websockets (ssl), the
three in the same round, as ratios.

The workloads, the run of one server/client pair, the CPU accounting and the
result lines are bench/run.py's (loaded from there, not copied): W1 is 1 GiB in
16 KiB binary frames client -> server, W3 100,000 round trips of a 64-byte
message, both times --scale. The node and python rows are bench/ws_bench.js and
bench/websockets_bench.py themselves with TLS put under them
(bench/tls/ws_tls_preload.js, bench/tls/websockets_tls.py). Every server prints
the negotiated suite; a run that did not get TLS 1.3 with AES-128-GCM fails.
`make bench-tls-peers` runs this; see bench/tls/RESULTS.md.
"""
import argparse
import datetime
import importlib.util
import os
import platform
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.path.join(ROOT, "build")
PY = "/usr/bin/python3"
SUITE = "CIPHER TLSv1.3 TLS_AES_128_GCM_SHA256"

_spec = importlib.util.spec_from_file_location("bench_run", os.path.join(ROOT, "bench", "run.py"))
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

TARGET = 1.5  # issue 14: lightws C over TLS >= 1.5x node ws


def impls():
    certs = os.environ.get("BENCH_TLS_CERTS", os.path.join(BUILD, "tls", "certs"))
    common = {"BENCH_TLS_CERTS": certs}
    return [
        dict(name="lightws-c", what="lightws C over lightws-tls (build/tls/lightws-tls-bench)",
             cmd=[os.path.join(BUILD, "tls", "lightws-tls-bench")], env=common),
        dict(name="node-ws", what="bench/ws_bench.js over https.createServer / wss (node -r ws_tls_preload.js)",
             cmd=["node", "-r", os.path.join(HERE, "ws_tls_preload.js"), os.path.join(ROOT, "bench", "ws_bench.js")],
             env=common,
             probe=["node", "-e", "require(%r)" % os.path.join(BUILD, "node", "node_modules", "ws")]),
        dict(name="websockets", what="bench/websockets_bench.py with ssl (websockets_tls.py, OPENSSL_CONF for the suite)",
             cmd=[PY, os.path.join(HERE, "websockets_tls.py")],
             env=dict(common, OPENSSL_CONF=os.path.join(HERE, "openssl-aes128.cnf")),
             probe=[PY, "-c", "import websockets, ssl"]),
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--scale", type=float, default=0.25)
    ap.add_argument("--timeout", type=int, default=600, help="seconds per client run")
    ap.add_argument("--record", default="", help="append the summary with the date to this file")
    ap.add_argument("--pin", default="", metavar="CPU",
                    help="run server and client of every pair on this one CPU (taskset): on a VM a "
                         "round trip between two CPUs costs an inter-processor wake-up that dwarfs "
                         "the websocket work, and the scheduler picks one or two CPUs run by run")
    a = ap.parse_args()

    rows = impls()
    for impl in rows:
        why = bench.available(impl)
        if why:
            sys.exit("bench-tls-peers: %s: %s" % (impl["name"], why))
        if a.pin:
            impl["cmd"] = ["taskset", "-c", a.pin] + impl["cmd"]
    works = [w for w in bench.WORKLOADS if w[0] in ("W1", "W3")]
    head = "bench-tls-peers: %d rounds, scale %.3g, %s, %d CPUs, %s, %s" % (
        a.rounds, a.scale, platform.node(), os.cpu_count(),
        datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"),
        "both processes on CPU %s" % a.pin if a.pin else "processes where the scheduler puts them")
    print(head, flush=True)
    # runs[impl][workload] = [(figure, cpu per unit)], one per round
    runs = {i["name"]: {w[0]: [] for w in works} for i in rows}
    ratios = {(o, w[0]): [] for o in ("node-ws", "websockets") for w in works}
    cpu_ratios = {k: [] for k in ratios}
    loads = []
    t0 = time.time()
    for r in range(a.rounds):
        for w in works:
            name, mode, _, size, _ = w
            total = bench.scaled(w, a.scale)
            got = {}
            # the order turns each round, so a busy moment does not always
            # hit the same implementation
            order = rows[r % len(rows):] + rows[:r % len(rows)]
            for impl in order:
                load = os.getloadavg()[0]
                loads.append(load)
                res, srv, err = bench.run_pair(impl, mode, total, size, a.timeout)
                if SUITE not in err:
                    sys.exit("bench-tls-peers: %s did not negotiate TLS 1.3 AES-128-GCM: %s"
                             % (impl["name"], err.strip()[:200]))
                want = "bytes" if mode == "bulk" else "frames"
                if int(srv.get(want, -1)) != total:
                    sys.exit("bench-tls-peers: %s %s server saw %s=%s, expected %d"
                             % (impl["name"], name, want, srv.get(want), total))
                unit = total / float(bench.GiB) if mode == "bulk" else total / 1000.0
                got[impl["name"]] = (bench.figure(mode, res), res["cpu"] / unit)
                runs[impl["name"]][name].append(got[impl["name"]])
                print("  round %d %s %-11s %9.1f %s  cpu %.3f s/%s  load %.1f" % (
                    r + 1, name, impl["name"], got[impl["name"]][0],
                    "MB/s " if mode == "bulk" else "rtt/s", got[impl["name"]][1],
                    "GiB" if mode == "bulk" else "1000 rt", load), flush=True)
            me = got["lightws-c"]
            for other in ("node-ws", "websockets"):
                ratios[(other, name)].append(me[0] / got[other][0])
                cpu_ratios[(other, name)].append(got[other][1] / me[1])
    loads.append(os.getloadavg()[0])
    secs = time.time() - t0

    lines = ["", head, "TLS 1.3 TLS_AES_128_GCM_SHA256, loopback TCP; W1 %s MiB in 16 KiB frames, W3 %d round trips "
             "of 64 B; load average (1 min) during the run %.1f..%.1f (median %.1f) on %d CPUs; %.0f s" % (
                 bench.scaled(works[0], a.scale) >> 20, bench.scaled(works[1], a.scale),
                 min(loads), max(loads), statistics.median(loads), os.cpu_count(), secs), ""]
    lines.append("| row | W1 MB/s | W1 CPU s/GiB | W3 rtt/s | W3 CPU s/1000 rt |")
    lines.append("|---|---|---|---|---|")
    for impl in rows:
        cell = []
        for w in works:
            xs = runs[impl["name"]][w[0]]
            cell.append("%.1f" % statistics.median(x[0] for x in xs))
            cell.append("%.3f" % statistics.median(x[1] for x in xs))
        lines.append("| %s | %s |" % (impl["name"], " | ".join(cell)))
    lines.append("")
    lines.append("lightws C over the others, median of the per-round ratios (time: its figure over theirs; "
                 "CPU: their CPU time over its own), per round in brackets:")
    for other in ("node-ws", "websockets"):
        for w in works:
            k = (other, w[0])
            ok = "" if other != "node-ws" else (
                "  target >= %.1f: %s" % (TARGET, "ok" if statistics.median(ratios[k]) >= TARGET else "MISS"))
            lines.append("  vs %-10s %s time x%.2f [%s]  cpu x%.2f [%s]%s" % (
                other, w[0], statistics.median(ratios[k]), " ".join("%.2f" % x for x in ratios[k]),
                statistics.median(cpu_ratios[k]), " ".join("%.2f" % x for x in cpu_ratios[k]), ok))
    text = "\n".join(lines)
    print(text, flush=True)
    if a.record:
        with open(a.record, "a") as f:
            f.write("\n```\n" + text.strip() + "\n```\n")


if __name__ == "__main__":
    main()
