#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""lightws.resty in nginx under many connections (issue 15), stdlib only.

nginx (Debian nginx-light + libnginx-mod-http-lua, LuaJIT) with one worker
pinned to CPU 0 (master under taskset -c 0, worker_cpu_affinity 0001) runs
bench/resty/resty_bench_echo.lua's echo loop (lightws.resty server:
recv_frame -> send_frame of the same type, close answered); build/loadgen
(bench/many) on CPU 1 drives it and measures the nginx *worker's* CPU
(schedstat, --server-pid = the worker pid) over the window. build/lightws-echo
runs the same cases in the same rounds (rotated order) as the reference:
ratios are per round, medians printed. lightws-resty-buf64k is the same nginx
with lua_socket_buffer_size 64k (the default 4k/8k caps what one receiveany
returns: a 16 KiB frame takes several reads).

Cases: R1 100 x 20 B (8 in flight, refill 4, as bench/many C1), R2 200 x 16 KiB
(1 in flight), W3 1 connection x 64 B round trips (1 in flight).

Then the allocation probe: nginx with echo_alloc(), one connection per
payload size, GC stopped over windows of N frames, collectgarbage("count")
deltas logged to the error log; bytes per frame beyond the payload bytes
and beyond the payload string object (its LuaJIT head calibrated in the
worker) are printed.

  python3 bench/resty/run.py [--rounds 3] [--duration 3] [--warmup 1]
      [--cases R1,R2,W3] [--no-alloc] [--record bench/RESULTS.md] [--json FILE]
"""
import argparse
import datetime
import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.path.join(ROOT, "build")
PREFIX = os.path.join(BUILD, "bench-resty")
HOST = "127.0.0.1"
LOADGEN = os.path.join(BUILD, "loadgen")
ECHO = os.path.join(BUILD, "lightws-echo")

_spec = importlib.util.spec_from_file_location("bench_many_run", os.path.join(ROOT, "bench", "many", "run.py"))
many = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(many)

CASES = [
    ("R1", "100 x 20 B", dict(conns=100, size=20, inflight=8, batch=4)),
    ("R2", "200 x 16 KiB", dict(conns=200, size=16384, inflight=1, batch=1)),
    ("W3", "1 x 64 B round trips", dict(conns=1, size=64, inflight=1, batch=1)),
]
# allocation probe: payload size, in flight, refill
ALLOC_CASES = [(20, 8, 4, None), (64, 1, 1, None), (16384, 1, 1, None), (16384, 1, 1, "64k")]
ALLOC_WARM, ALLOC_FRAMES, ALLOC_WINDOWS = 5000, 2000, 3   # frames < --pool 4096: payloads distinct


def module(name):
    for d in ("/usr/lib/nginx/modules", "/usr/share/nginx/modules"):
        p = os.path.join(d, name)
        if os.path.exists(p):
            return p
    raise RuntimeError("nginx module %s not found" % name)


class Nginx:
    def __init__(self, handler, sockbuf=None):
        self.handler = handler
        self.port = many.free_port()
        shutil.rmtree(PREFIX, ignore_errors=True)
        for d in ("logs", "tmp", "conf"):
            os.makedirs(os.path.join(PREFIX, d))
        conf = open(os.path.join(HERE, "nginx.conf.in")).read()
        for k, v in {"@NDK_MODULE@": module("ndk_http_module.so"),
                     "@LUA_MODULE@": module("ngx_http_lua_module.so"),
                     "@PREFIX@": PREFIX, "@SRC@": ROOT, "@PORT@": str(self.port),
                     "@HANDLER@": handler,
                     "@SOCKBUF@": "lua_socket_buffer_size %s;" % sockbuf if sockbuf else "",
                     "@CPATH@": os.environ.get("LIGHTWS_LUAJIT_CPATH", BUILD + "/luajit/?.so")}.items():
            conf = conf.replace(k, v)
        self.conf = os.path.join(PREFIX, "conf", "nginx.conf")
        open(self.conf, "w").write(conf)
        self.errlog = os.path.join(PREFIX, "logs", "error.log")
        self.p = subprocess.Popen(["taskset", "-c", "0", "nginx", "-p", PREFIX, "-c", self.conf,
                                   "-e", self.errlog], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  preexec_fn=many.raise_nofile, start_new_session=True)
        self.worker = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.p.poll() is not None:
                raise RuntimeError("nginx exited %s: %s" % (self.p.returncode, self.log()[-400:]))
            kids = self.children()
            if kids:
                try:
                    s = socket.create_connection((HOST, self.port), timeout=0.2)
                    ok = s.getsockname() != s.getpeername()
                    s.close()
                    if ok:
                        self.worker = kids[0]
                        break
                except OSError:
                    pass
            time.sleep(0.05)
        if self.worker is None:
            self.stop()
            raise RuntimeError("nginx did not start: %s" % self.log()[-400:])
        time.sleep(0.2)

    def children(self):
        try:
            with open("/proc/%d/task/%d/children" % (self.p.pid, self.p.pid)) as f:
                return [int(x) for x in f.read().split()]
        except OSError:
            return []

    def log(self):
        try:
            return open(self.errlog).read()
        except OSError:
            return ""

    def stop(self):
        try:
            self.p.send_signal(signal.SIGQUIT)
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.p.pid, signal.SIGKILL)
            self.p.wait(timeout=10)
        except ProcessLookupError:
            pass
        if self.p.stderr:
            self.p.stderr.close()


def loadgen(port, pid, c, args, label, extra=()):
    cmd = ["taskset", "-c", "1", LOADGEN, "--host", HOST, "--port", str(port),
           "--conns", str(c["conns"]), "--size", str(c["size"]),
           "--inflight", str(c["inflight"]), "--batch", str(c["batch"]),
           "--warmup", str(args.warmup), "--duration", str(args.duration),
           "--server-pid", str(pid), "--label", label] + list(extra)
    limit = 180 + args.warmup + args.duration
    try:
        g = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=limit,
                           preexec_fn=many.raise_nofile)
    except subprocess.TimeoutExpired:
        return dict(error="loadgen did not finish within %.0f s" % limit)
    lines = g.stdout.decode(errors="replace").strip().splitlines()
    try:
        d = json.loads(lines[-1])
    except (ValueError, IndexError):
        return dict(error="loadgen exit %d: %s" % (g.returncode, g.stderr.decode(errors="replace")[-300:]))
    if g.returncode != 0 and "error" not in d:
        d["error"] = "loadgen exit %d" % g.returncode
    return d


def run_resty(case, args, sockbuf=None):
    ngx = Nginx("echo()", sockbuf)
    try:
        d = loadgen(ngx.port, ngx.worker, case[2], args, "lightws-resty/" + case[0])
        if ngx.p.poll() is not None or not os.path.exists("/proc/%d" % ngx.worker):
            d.setdefault("error", "nginx or its worker exited during the run")
        d["nginx_errors"] = len(re.findall(r"\[(?:error|crit|alert|emerg)\]", ngx.log()))
        return d
    finally:
        ngx.stop()


def run_echo(case, args):
    srv = dict(name="lightws-echo", cmd=[ECHO, "--host", HOST, "--quiet"])
    port = many.free_port()
    p = many.start_server(srv, port)
    try:
        d = loadgen(port, p.pid, case[2], args, "lightws-echo/" + case[0])
        if p.poll() is not None:
            d.setdefault("error", "server exited %s during the run" % p.returncode)
        return d
    finally:
        many.stop_server(p)


RUNNERS = [("lightws-resty", run_resty), ("lightws-echo", run_echo),
           ("lightws-resty-buf64k", lambda case, args: run_resty(case, args, "64k"))]


def alloc_probe(args):
    """-> list of dicts per payload size (and socket buffer)"""
    out = []
    for size, inflight, batch, sockbuf in ALLOC_CASES:
        ngx = Nginx("echo_alloc(%d, %d, %d)" % (ALLOC_WARM, ALLOC_FRAMES, ALLOC_WINDOWS), sockbuf)
        try:
            a = argparse.Namespace(warmup=1.0, duration=max(args.duration, 4.0))
            d = loadgen(ngx.port, ngx.worker, dict(conns=1, size=size, inflight=inflight, batch=batch),
                        a, "alloc/%d" % size, ["--pool", "4096"])
            time.sleep(0.3)
            wins = [dict(frames=int(m.group(1)), bytes=float(m.group(2)), payload=int(m.group(3)),
                         str_over=float(m.group(4)), reads=int(m.group(5)), read_bytes=int(m.group(6)),
                         read_gc=float(m.group(7)))
                    for m in re.finditer(r"lightws-bench-alloc frames=(\d+) bytes=(-?[\d.]+) payload=(\d+) "
                                         r"str_overhead=([\d.]+) reads=(\d+) read_bytes=(\d+) read_gc=(-?[\d.]+)",
                                         ngx.log())]
        finally:
            ngx.stop()
        r = dict(size=size, inflight=inflight, sockbuf=sockbuf, windows=len(wins), loadgen_msgs=d.get("msgs"),
                 error=d.get("error"))
        if wins:
            per = [(w["bytes"] - w["payload"]) / w["frames"] for w in wins]
            so = wins[0]["str_over"]
            r.update(total_per_frame=[w["bytes"] / w["frames"] for w in wins],
                     beyond_payload=per, str_overhead=so,
                     beyond_string=[x - so for x in per],
                     reads_per_frame=[w["reads"] / w["frames"] for w in wins],
                     read_str_per_frame=[(w["read_bytes"] + w["reads"] * so) / w["frames"] for w in wins],
                     residual=[x - so - (w["read_bytes"] + w["reads"] * so) / w["frames"]
                               for x, w in zip(per, wins)],
                     read_gc_per_frame=[w["read_gc"] / w["frames"] for w in wins],
                     outside_reads=[(w["bytes"] - w["payload"] - w["read_gc"]) / w["frames"] - so
                                    for w in wins])
        out.append(r)
        print("alloc %6d B: %s" % (size, json.dumps(r)), file=sys.stderr, flush=True)
    return out


def loadavg():
    try:
        return " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        return "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--cases", help="comma-separated: R1,R2,W3")
    ap.add_argument("--no-alloc", action="store_true", help="skip the allocation probe")
    ap.add_argument("--record", help="append the tables to this file (e.g. bench/RESULTS.md)")
    ap.add_argument("--json", help="write every run's loadgen JSON here")
    args = ap.parse_args()
    for f in (LOADGEN, ECHO, os.path.join(BUILD, "luajit", "lightws", "core.so")):
        if not os.path.exists(f):
            sys.exit("no %s: run `make bench-resty` (builds loadgen, lightws-echo, lua)" % f)
    cases = CASES if not args.cases else [c for c in CASES if c[0] in args.cases.split(",")]

    load0 = loadavg()
    t0 = time.monotonic()
    results = {}
    for rnd in range(args.rounds):
        order = RUNNERS[rnd % len(RUNNERS):] + RUNNERS[:rnd % len(RUNNERS)]
        for case in cases:
            for name, fn in order:
                try:
                    d = fn(case, args)
                except (RuntimeError, OSError) as e:
                    d = dict(error=str(e).strip().replace("\n", " ")[:300])
                results.setdefault((name, case[0]), []).append(d)
                if "error" in d:
                    print("round %d %s %s: ERROR %s" % (rnd + 1, case[0], name, d["error"]),
                          file=sys.stderr, flush=True)
                else:
                    print("round %d %s %-13s %9.0f msg/s %9.0f msg/cpu-s srv %3.0f%% gen %3.0f%% busy %s"
                          % (rnd + 1, case[0], name, d["msgs_per_s"], d["msgs_per_server_cpu_s"],
                             d["server_cpu_pct"], d["gen_cpu_pct"], d.get("cpu_busy_pct")),
                          file=sys.stderr, flush=True)
    alloc = [] if args.no_alloc else alloc_probe(args)
    elapsed = time.monotonic() - t0
    load1 = loadavg()

    med = many.med
    fmt = many.fmt
    lines = ["| case | server | msgs/s | ratio | msgs/worker-CPU-s | ratio | server CPU | gen CPU "
             "| CPU 0/1 busy (all) | frames/echo | errors |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for cname, clabel, cargs in cases:
        base = results.get(("lightws-echo", cname), [])
        for name, _ in RUNNERS:
            runs = results.get((name, cname), [])
            ok = [r for r in runs if "error" not in r]
            errs = [r["error"] for r in runs if "error" in r]
            rm, rc = [], []
            for i, r in enumerate(runs):
                b = base[i] if i < len(base) else None
                if "error" in r or not b or "error" in b:
                    continue
                rm.append(r["msgs_per_s"] / b["msgs_per_s"])
                rc.append(r["msgs_per_server_cpu_s"] / b["msgs_per_server_cpu_s"])
            label = "%s: %s (inflight %d, refill %d)" % (cname, clabel, cargs["inflight"], cargs["batch"])
            if not ok:
                lines.append("| %s | %s | - | - | - | - | - | - | - | - | %s |" % (
                    label, name, ("; ".join(sorted(set(errs))) or "not run")[:200]))
                continue
            busy = [r.get("cpu_busy_pct") or [None, None] for r in ok]
            lines.append("| %s | %s | %s | %s | %s | %s | %s%% | %s%% | %s%%/%s%% | %s | %s |" % (
                label, name, fmt(med([r["msgs_per_s"] for r in ok])), many.ratio(med(rm)),
                fmt(med([r["msgs_per_server_cpu_s"] for r in ok])), many.ratio(med(rc)),
                fmt(med([r["server_cpu_pct"] for r in ok])), fmt(med([r["gen_cpu_pct"] for r in ok])),
                fmt(med([b[0] for b in busy if len(b) > 1])), fmt(med([b[1] for b in busy if len(b) > 1])),
                fmt(med([r["frames_per_echo"] for r in ok]), 2),
                "%d of %d runs failed: %s" % (len(errs), len(runs), "; ".join(sorted(set(errs)))[:160])
                if errs else "0"))
    table = "\n".join(lines)
    atab = ""
    if alloc:
        al = ["| payload | in flight | windows x frames | Lua GC bytes/frame (all) | beyond the payload bytes "
              "| beyond the payload string (+%s B a string) | of which receiveany strings (reads/frame) "
              "| rest | GC bytes inside receiveany calls | outside them, beyond the payload string |" %
              fmt(med([a.get("str_overhead") for a in alloc if a.get("str_overhead") is not None]), 0),
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for a in alloc:
            if not a.get("windows"):
                al.append("| %d B | %d | 0 | - | - | - | - | - | - | - (%s) |" % (a["size"], a["inflight"], a.get("error")))
                continue
            rng = lambda xs: "%s (%s..%s)" % (fmt(med(xs), 1), fmt(min(xs), 1), fmt(max(xs), 1))
            al.append("| %s B%s | %d | %d x %d | %s | %s | %s | %s (%s) | %s | %s | %s |" % (
                "{:,}".format(a["size"]), " (buf64k)" if a["sockbuf"] else "", a["inflight"], a["windows"], ALLOC_FRAMES,
                rng(a["total_per_frame"]), rng(a["beyond_payload"]), rng(a["beyond_string"]),
                fmt(med(a["read_str_per_frame"]), 1), fmt(med(a["reads_per_frame"]), 3), rng(a["residual"]),
                fmt(med(a["read_gc_per_frame"]), 1), rng(a["outside_reads"])))
        atab = "\n".join(al)
    head = ("%d rounds, warm-up %.1f s, window %.1f s per run, a fresh server per run; nginx %s, 1 worker "
            "on CPU 0, build/loadgen on CPU 1; binary messages; %s, %d CPUs; load average %s before, %s "
            "after; took %.0f s." % (args.rounds, args.warmup, args.duration, nginx_version(),
                                     platform.platform(), os.cpu_count() or 0, load0, load1, elapsed))
    print(head)
    print(table)
    if atab:
        print()
        print(atab)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(runs={"%s/%s" % k: v for k, v in results.items()}, alloc=alloc), f, indent=1)
    if args.record:
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        with open(args.record, "a") as f:
            f.write("\n## lightws.resty in nginx (issue 15): run of %s\n\n" % stamp)
            f.write("`python3 bench/resty/run.py %s`: %s\n\n%s\n" % (" ".join(sys.argv[1:]), head, table))
            if atab:
                f.write("\nAllocation in the echo loop (one connection, GC stopped over each window, "
                        "collectgarbage(\"count\") deltas; medians (min..max) over the windows):\n\n%s\n" % atab)
        print("appended to %s" % args.record, file=sys.stderr)
    failed = sum(1 for v in results.values() for r in v if "error" in r)
    return 1 if failed else 0


def nginx_version():
    try:
        r = subprocess.run(["nginx", "-v"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        return r.stdout.decode().strip().split("/")[-1]
    except OSError:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
