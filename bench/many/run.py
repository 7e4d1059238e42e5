#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Many-connection benchmark (issue 18), stdlib only.

Starts each echo server pinned to CPU 0 (taskset), drives it with
build/loadgen pinned to CPU 1, and runs the cases for every server, rounds
interleaved (server order rotated each round) so machine noise hits all
alike. The generator measures the server's process tree itself
(--server-pid): CPU seconds (utime+stime, forked children included) over the
window, and PSS before the first connection and at the end of the window.
Prints one table of medians: msgs/s, msgs per server CPU-second, server KiB
per connection, each also as the median of its per-round ratio to
lightws-echo, plus frames per echo, server and generator CPU, and how busy CPU 0
and CPU 1 were (every process: other work on the machine shows there).

  python3 bench/many/run.py [--rounds 3] [--duration 3] [--warmup 1]
      [--only lightws-echo,wslay] [--cases C1,C4] [--idle 10000]
      [--record bench/RESULTS.md] [--json FILE]
"""
import argparse
import datetime
import json
import os
import platform
import select
import signal
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.path.join(ROOT, "build")
PY = "/usr/bin/python3"
HOST = "127.0.0.1"
LOADGEN = os.path.join(BUILD, "loadgen")
BASE = "lightws-echo"


def servers_for(lwroot, lwecho):
    """The server list; the lightws servers come from the tree `lwroot`
    (default: this one), lightws-echo from `lwecho` (default: its build/)."""
    lwecho = lwecho or os.path.join(lwroot, "build", "lightws-echo")
    return [
    dict(name="lightws-echo", what="lightws-echo (epoll, C): %s" % os.path.relpath(lwecho, ROOT),
         cmd=[lwecho, "--host", HOST, "--quiet"]),
    dict(name="libwebsockets", what="libwebsockets 4.1 (Debian), bench/many/lws_echo.c, default settings",
         cmd=[os.path.join(BUILD, "lws-echo-many"), "--host", HOST]),
    dict(name="wslay", what="wslay 1.1 event API (Debian), bench/many/wslay_echo.c, epoll",
         cmd=[os.path.join(BUILD, "wslay-echo-many"), "--host", HOST]),
    dict(name="node-ws", what="node ws 8, bench/many/ws_echo.js",
         cmd=["node", os.path.join(HERE, "ws_echo.js"), "--host", HOST]),
    dict(name="websockets", what="python3-websockets 10.4 asyncio (+C speedups if built), bench/many/websockets_echo.py",
         cmd=[PY, os.path.join(HERE, "websockets_echo.py"), "--host", HOST]),
    dict(name="lightws-py", what="lightws Python asyncio server, python3 -m lightws.echo (%s)" %
         os.path.relpath(os.path.join(lwroot, "bindings", "python"), ROOT),
         cmd=[PY, "-m", "lightws.echo", "--host", HOST, "--quiet"],
         env={"PYTHONPATH": os.path.join(lwroot, "bindings", "python")}),
    dict(name="lightws-lua", what="%s, Lua 5.4, one forked process per connection" %
         os.path.relpath(os.path.join(lwroot, "examples", "echo.lua"), ROOT),
         cmd=["lua5.4", os.path.join(lwroot, "examples", "echo.lua"), "--host", HOST, "--quiet",
              "--ping-interval", "0"]),
    ]


SERVER_NAMES = [s["name"] for s in servers_for(ROOT, None)]

# name, label, loadgen arguments
CASES = [
    ("C1", "100 x 20 B", dict(conns=100, size=20, inflight=8, batch=4)),
    ("C2", "200 x 16 KiB", dict(conns=200, size=16384, inflight=1, batch=1)),
    ("C3", "500 x 16 KiB", dict(conns=500, size=16384, inflight=1, batch=1)),
    ("C4", "10,000 idle + 10 active x 20 B", dict(conns=10, idle=10000, size=20, inflight=8, batch=4)),
]


def free_port():
    s = socket.socket()
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def raise_nofile():
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def start_server(srv, port, deadline_s=20.0):
    env = dict(os.environ)
    env.update(srv.get("env", {}))
    cmd = ["taskset", "-c", "0"] + srv["cmd"] + ["--port", str(port)]
    # own session: a forking server's children are stopped with its group
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         preexec_fn=raise_nofile, start_new_session=True)
    deadline = time.monotonic() + deadline_s
    out = b""
    while time.monotonic() < deadline:
        if p.poll() is not None:
            raise RuntimeError("%s exited %s: %s" % (srv["name"], p.returncode,
                                                     (out + p.stderr.read()).decode(errors="replace")[-400:]))
        r, _, _ = select.select([p.stdout], [], [], 0.1)
        if r:
            chunk = os.read(p.stdout.fileno(), 4096)
            out += chunk
            if b"listening on" in out:
                break
    else:
        stop_server(p)
        raise RuntimeError("%s: no 'listening on' within %.0f s" % (srv["name"], deadline_s))
    # a short settle so the baseline memory is taken after start-up
    time.sleep(0.2)
    return p


def stop_server(p):
    try:
        os.killpg(p.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait(timeout=10)
    # reap the rest of the group (forked children): wait, bounded
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(p.pid, 0)
        except ProcessLookupError:
            break
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    for f in (p.stdout, p.stderr):
        if f:
            f.close()


def run_one(srv, case, args):
    port = free_port()
    p = start_server(srv, port)
    try:
        c = dict(case[2])
        if "idle" in c and args.idle is not None:
            c["idle"] = args.idle
        cmd = ["taskset", "-c", "1", LOADGEN, "--host", HOST, "--port", str(port),
               "--conns", str(c["conns"]), "--size", str(c["size"]),
               "--inflight", str(c["inflight"]), "--batch", str(c["batch"]),
               "--idle", str(c.get("idle", 0)), "--warmup", str(args.warmup),
               "--duration", str(args.duration), "--server-pid", str(p.pid),
               "--label", "%s/%s" % (srv["name"], case[0])]
        if args.text:
            cmd.append("--text")
        limit = 180 + args.warmup + args.duration
        try:
            g = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=limit,
                               preexec_fn=raise_nofile)
        except subprocess.TimeoutExpired:
            return dict(error="loadgen did not finish within %.0f s" % limit)
        line = g.stdout.decode(errors="replace").strip().splitlines()
        try:
            d = json.loads(line[-1])
        except (ValueError, IndexError):
            return dict(error="loadgen exit %d: %s" % (g.returncode, g.stderr.decode(errors="replace")[-300:]))
        if g.returncode != 0 and "error" not in d:
            d["error"] = "loadgen exit %d" % g.returncode
        if p.poll() is not None:
            d.setdefault("error", "server exited %s during the run" % p.returncode)
        return d
    finally:
        stop_server(p)


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, nd=0):
    if x is None:
        return "-"
    if nd == 0:
        return "{:,.0f}".format(x)
    return "{:,.{}f}".format(x, nd)


def ratio(x):
    return "-" if x is None else "x%.2f" % x


def table(results, servers, cases, rounds):
    """results[(server, case)] = list (per round) of dicts"""
    lines = []
    for cname, clabel, cargs in cases:
        idle = cargs.get("idle", 0)
        lines.append("")
        lines.append("**%s: %s** (inflight %d, refill %d)" % (cname, clabel, cargs["inflight"], cargs["batch"]))
        lines.append("")
        lines.append("| server | msgs/s | ratio | msgs/server-CPU-s | ratio | server KiB/conn | ratio "
                     "| frames/echo | server CPU | gen CPU | CPU 0/1 busy (all) | errors |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        base = results.get((BASE, cname), [])
        for s in servers:
            runs = results.get((s["name"], cname), [])
            ok = [r for r in runs if "error" not in r]
            errs = [r["error"] for r in runs if "error" in r]
            rr = {"mps": [], "cpu": [], "kib": []}
            for i, r in enumerate(runs):
                b = base[i] if i < len(base) else None
                if "error" in r or not b or "error" in b:
                    continue
                rr["mps"].append(r["msgs_per_s"] / b["msgs_per_s"] if b["msgs_per_s"] else None)
                rr["cpu"].append(r["msgs_per_server_cpu_s"] / b["msgs_per_server_cpu_s"]
                                 if b["msgs_per_server_cpu_s"] else None)
                rr["kib"].append(r["server_kib_per_conn"] / b["server_kib_per_conn"]
                                 if b["server_kib_per_conn"] > 0 else None)
            if not ok:
                lines.append("| %s | - | - | - | - | - | - | - | - | - | - | %s |" %
                             (s["name"], ("; ".join(sorted(set(errs))) or "not run")[:200]))
                continue
            busy = [r.get("cpu_busy_pct") or [None, None] for r in ok]
            lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s%% | %s%% | %s%%/%s%% | %s |" % (
                s["name"], fmt(med([r["msgs_per_s"] for r in ok])), ratio(med(rr["mps"])),
                fmt(med([r["msgs_per_server_cpu_s"] for r in ok])), ratio(med(rr["cpu"])),
                fmt(med([r["server_kib_per_conn"] for r in ok]), 1), ratio(med(rr["kib"])),
                fmt(med([r["frames_per_echo"] for r in ok]), 2),
                fmt(med([r["server_cpu_pct"] for r in ok])), fmt(med([r["gen_cpu_pct"] for r in ok])),
                fmt(med([b[0] for b in busy if len(b) > 1])), fmt(med([b[1] for b in busy if len(b) > 1])),
                "%d of %d runs failed: %s" % (len(errs), len(runs), "; ".join(sorted(set(errs)))[:160])
                if errs else "0"))
        if idle:
            totals = []
            for s in servers:
                ok = [r for r in results.get((s["name"], cname), []) if "error" not in r]
                if ok:
                    kib = med([r["server_kib_after"] - r["server_kib_before"] for r in ok])
                    totals.append("%s %.1f MiB" % (s["name"], kib / 1024))
            lines.append("")
            lines.append("Server memory growth for %s connections (PSS, median): %s." %
                         ("{:,}".format(idle + cargs["conns"]), "; ".join(totals)))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--only", help="comma-separated server names")
    ap.add_argument("--cases", help="comma-separated case names (C1..C4)")
    ap.add_argument("--idle", type=int, help="idle connections in C4 (default 10000)")
    ap.add_argument("--text", action="store_true", help="text messages instead of binary")
    ap.add_argument("--record", help="append the table to this file (e.g. bench/RESULTS.md)")
    ap.add_argument("--json", help="write every run's loadgen JSON here")
    ap.add_argument("--lightws-root", default=ROOT,
                    help="tree whose lightws servers run (lightws-echo, Python, Lua), e.g. an "
                         "export of a commit built with `make lib build/lightws-echo lua python`")
    ap.add_argument("--lightws-echo", help="lightws-echo binary (default: LIGHTWS_ROOT/build/lightws-echo)")
    args = ap.parse_args()

    all_servers = servers_for(os.path.abspath(args.lightws_root),
                              args.lightws_echo and os.path.abspath(args.lightws_echo))
    servers = all_servers
    if args.only:
        want = args.only.split(",")
        unknown = set(want) - set(SERVER_NAMES)
        if unknown:
            sys.exit("unknown server(s): %s" % ", ".join(sorted(unknown)))
        servers = [s for s in all_servers if s["name"] in want]
        if BASE not in want:
            print("note: without %s there are no ratios" % BASE, file=sys.stderr)
    cases = CASES
    if args.cases:
        cases = [c for c in CASES if c[0] in args.cases.split(",")]
    if args.idle is not None:
        cases = [(n, l.replace("10,000", "{:,}".format(args.idle)) if "idle" in a else l,
                  dict(a, idle=args.idle) if "idle" in a else a) for n, l, a in cases]
    if not os.path.exists(LOADGEN):
        sys.exit("no %s: run `make bench-many-build` first" % LOADGEN)
    if (os.cpu_count() or 1) < 2:
        print("warning: fewer than 2 CPUs; server and generator share one", file=sys.stderr)

    results = {}
    t0 = time.monotonic()
    for rnd in range(args.rounds):
        order = servers[rnd % len(servers):] + servers[:rnd % len(servers)]
        for case in cases:
            for s in order:
                try:
                    d = run_one(s, case, args)
                except (RuntimeError, OSError) as e:
                    d = dict(error=str(e).strip().replace("\n", " ")[:300])
                results.setdefault((s["name"], case[0]), []).append(d)
                if "error" in d:
                    print("round %d %s %s: ERROR %s" % (rnd + 1, case[0], s["name"], d["error"]),
                          file=sys.stderr, flush=True)
                else:
                    print("round %d %s %-14s %9.0f msg/s %9.0f msg/cpu-s %7.2f KiB/conn "
                          "fr/echo %.2f srv %3.0f%% gen %3.0f%%" % (
                              rnd + 1, case[0], s["name"], d["msgs_per_s"], d["msgs_per_server_cpu_s"],
                              d["server_kib_per_conn"], d["frames_per_echo"], d["server_cpu_pct"],
                              d["gen_cpu_pct"]), file=sys.stderr, flush=True)
    # results keyed by position in each round: runs[i] is round i for every server
    elapsed = time.monotonic() - t0

    head = ("%d rounds, warm-up %.1f s, window %.1f s per run, a fresh server per run; "
            "server on CPU 0, build/loadgen on CPU 1; %s messages; %s, %d CPUs; took %.0f s." % (
                args.rounds, args.warmup, args.duration, "text" if args.text else "binary",
                platform.platform(), os.cpu_count() or 0, elapsed))
    servers_txt = "\n".join("- %s: %s" % (s["name"], s["what"]) for s in servers)
    out = table(results, servers, cases, args.rounds)
    print(head)
    print(servers_txt)
    print(out)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"%s/%s" % k: v for k, v in results.items()}, f, indent=1)
    if args.record:
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        with open(args.record, "a") as f:
            f.write("\n## Many connections (issue 18): run of %s\n\n" % stamp)
            f.write("`python3 bench/many/run.py %s`: %s\n\n" % (" ".join(sys.argv[1:]), head))
            f.write("Servers:\n%s\n%s\n" % (servers_txt, out))
        print("appended to %s" % args.record, file=sys.stderr)
    failed = sum(1 for v in results.values() for r in v if "error" in r)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
