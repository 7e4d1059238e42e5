#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""lightws-tunnel against direct TCP and a plain two-hop TCP relay (issue 17).

Paths, all on loopback, to one sink (tunnel_load sink):
  direct   load -> sink
  relay    load -> tcp_relay -> tcp_relay -> sink      (two hops, read/write)
  tunnel   load -> lightws-tunnel client -> server -> sink  (ws, mask fresh|zero)
For 1 and 100 connections: throughput (bytes counted by the receiver) and
the CPU time of the two middle processes per GiB moved (utime + stime from
/proc). Then the memory of idle tunnelled connections: RSS growth of the
client and the server per connection, N connections open.

usage: run.py --build build [--seconds 3] [--rounds 3] [--idle 2000]
"""
import argparse
import os
import resource
import subprocess
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")


PIN = {}   # role -> CPU set (--pin): the middle processes on one core,
           # the load generator and the sink on the other


def pinned(role):
    cpus = PIN.get(role)
    return (lambda: os.sched_setaffinity(0, cpus)) if cpus else None


def start(args, role="middle"):
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         stdin=subprocess.PIPE, text=True, preexec_fn=pinned(role))
    line = p.stdout.readline().strip()
    if not line.startswith("listening on"):
        p.kill()
        raise RuntimeError("%s: %r" % (args, line))
    return p, int(line.rsplit(":", 1)[1])


def cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        v = f.read().rsplit(")", 1)[1].split()
    return (int(v[11]) + int(v[12])) / TICK


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for l in f:
            if l.startswith("VmRSS:"):
                return int(l.split()[1])
    return 0


def stop(procs):
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()


def path(kind, build, sink_port, mask="random"):
    tool = os.path.join(build, "lightws-tunnel")
    relay = os.path.join(build, "bench", "tcp_relay")
    if kind == "direct":
        return [], sink_port
    if kind == "relay":
        r2, p2 = start([relay, "0", str(sink_port)])
        r1, p1 = start([relay, "0", str(p2)])
        return [r1, r2], p1
    s, sp = start([tool, "server", "--quiet", "--listen", "127.0.0.1:0",
                   "--target", "127.0.0.1:%d" % sink_port])
    c, cp = start([tool, "client", "--quiet", "--listen", "127.0.0.1:0",
                   "--remote", "ws://127.0.0.1:%d/" % sp, "--mask", mask])
    return [c, s], cp


def measure(load, port, conns, secs, mode, procs):
    c0 = sum(cpu(p.pid) for p in procs)
    out = subprocess.run([load, "run", str(port), str(conns), str(secs), mode],
                         capture_output=True, text=True, timeout=secs + 60,
                         preexec_fn=pinned("load")).stdout
    c1 = sum(cpu(p.pid) for p in procs)
    f = out.split()
    nbytes, t = int(f[1]), float(f[3])
    gib = nbytes / (1 << 30)
    return nbytes / t / 1e6 * 8 / 1000, (c1 - c0) / gib if gib and procs else 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--idle", type=int, default=2000)
    ap.add_argument("--pin", type=int, default=1,
                    help="1: the two middle processes share CPU 1, load and sink CPU 0")
    ap.add_argument("--rounds", type=int, default=3,
                    help="runs per cell; the median is shown (a shared 2-core "
                         "box is noisy)")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    load = os.path.join(a.build, "bench", "tunnel_load")
    if a.pin and os.cpu_count() >= 2:
        # throughput then says what the middle pair can do on one core
        PIN["middle"], PIN["load"] = {1}, {0}
    sink, sport = start([load, "sink"], "load")
    print("load average before: %s; pinning: %s" % (
        open("/proc/loadavg").read().split()[:3],
        "middle processes on CPU 1, load and sink on CPU 0" if PIN else "none"))
    print("%-16s %5s %4s %10s %12s" % ("path", "conns", "dir", "Gbit/s", "CPU s/GiB"))
    rows = {}
    try:
        for conns in (1, 100):
            for mode in ("U", "D"):
                for kind, mask in (("direct", None), ("relay", None),
                                   ("tunnel", "random"), ("tunnel", "zero")):
                    runs = []
                    for _ in range(a.rounds):
                        procs, port = path(kind, a.build, sport, mask or "random")
                        try:
                            runs.append(measure(load, port, conns, a.seconds, mode, procs))
                        finally:
                            stop(procs)
                    gbps = sorted(r[0] for r in runs)[len(runs) // 2]
                    cpg = sorted(r[1] for r in runs)[len(runs) // 2]
                    name = kind if not mask else "tunnel-%s" % mask
                    rows[(name, conns, mode)] = (gbps, cpg)
                    print("%-16s %5d %4s %10.2f %12.3f" % (
                        name, conns, "up" if mode == "U" else "down", gbps, cpg),
                        flush=True)
        print()
        for conns in (1, 100):
            for mode in ("U", "D"):
                rg, rc = rows[("relay", conns, mode)]
                for m in ("random", "zero"):
                    g, c = rows[("tunnel-" + m, conns, mode)]
                    print("tunnel-%-6s %3d conns %-4s: %.2fx relay throughput, %.2fx relay CPU/GiB"
                          % (m, conns, "up" if mode == "U" else "down",
                             g / rg if rg else 0, c / rc if rc else 0))
        # idle connections
        procs, port = path("tunnel", a.build, sport)
        try:
            time.sleep(0.2)
            r0 = [rss_kib(p.pid) for p in procs]
            idle = subprocess.Popen([load, "idle", str(port), str(a.idle)],
                                    stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True)
            line = idle.stdout.readline()
            time.sleep(0.3)
            r1 = [rss_kib(p.pid) for p in procs]
            idle.stdin.close()
            idle.wait(10)
            print()
            print("idle: %s; RSS per connection: client %.2f KiB, server %.2f KiB "
                  "(RSS %d -> %d KiB, %d -> %d KiB)" % (
                      line.strip(), (r1[0] - r0[0]) / a.idle, (r1[1] - r0[1]) / a.idle,
                      r0[0], r1[0], r0[1], r1[1]))
        finally:
            stop(procs)
    finally:
        stop([sink])
    print("load average after: %s" % open("/proc/loadavg").read().split()[:3])


if __name__ == "__main__":
    main()
