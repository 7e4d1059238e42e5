#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Side-by-side benchmark harness for lightws (stdlib only).

Runs every implementation over loopback TCP (server and client in separate
processes), rounds interleaved so machine noise hits all alike, and prints one
table of medians, each figure also as a ratio to raw TCP measured in the same
round. See docs in bench/RESULTS.md.
"""
import argparse
import datetime
import json
import math
import os
import platform
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")
PY = "/usr/bin/python3"

GiB, MiB = 1 << 30, 1 << 20
# name, mode, total (bytes or round trips), size, what the figure is
WORKLOADS = [
    ("W1", "bulk", 1 * GiB, 16384, "1 GiB in 16 KiB frames, MB/s"),
    ("W2", "bulk", 256 * MiB, 1024, "256 MiB in 1 KiB frames, MB/s"),
    ("W3", "pingpong", 100000, 64, "100k round trips of 64 B, rtt/s"),
]

TARGETS = {  # ratios to raw TCP in the same round
    "lightws-c": {"W1": 0.95, "W2": 1.0, "W3": 1.0},
    "lightws-py": {"W1": 0.8, "W2": 0.5, "W3": 0.5},
    "lightws-lua54": {"W1": 0.8, "W2": 0.5, "W3": 0.6},
}


def impls():
    lua_path = os.path.join(ROOT, "bindings", "lua", "?.lua") + ";;"
    return [
        dict(name="raw", what="raw TCP, C, one write per frame (the limit)",
             cmd=[os.path.join(BUILD, "raw-bench")], alloc=True),
        dict(name="lightws-c", what="lightws C (build/lightws-bench)",
             cmd=[os.path.join(BUILD, "lightws-bench")], alloc=True),
        dict(name="lightws-c-base", what="lightws C built from another checkout (LIGHTWS_BENCH_BASE=path to its lightws-bench): a version against this one",
             cmd=[os.environ.get("LIGHTWS_BENCH_BASE", "/nonexistent/lightws-bench")], default=False, micro=False),
        dict(name="lightws-c-zero", what="lightws C with LIGHTWS_MASK_ZERO (no masking work; the ceiling)",
             cmd=[os.path.join(BUILD, "lightws-bench")], env={"LIGHTWS_BENCH_MASK": "zero"},
             default=False, micro=False),
        dict(name="lightws-c-read", what="lightws C, server reads with lightws_stream_read (bypass)",
             cmd=[os.path.join(BUILD, "lightws-bench")], env={"LIGHTWS_BENCH_READ": "read"},
             default=False, micro=False),
        dict(name="lightws-c-bytes", what="lightws C, server reads with lightws_stream_read_bytes",
             cmd=[os.path.join(BUILD, "lightws-bench")], env={"LIGHTWS_BENCH_READ": "bytes"},
             default=False, micro=False),
        dict(name="wslay", what="wslay 1.1 event API (Debian libwslay)",
             cmd=[os.path.join(BUILD, "wslay-bench")], alloc=True),
        dict(name="websockets", what="python3-websockets 10.4, asyncio, C speedups",
             cmd=[PY, os.path.join(ROOT, "bench", "websockets_bench.py")],
             probe=[PY, "-c", "import os, sys, websockets; sys.exit(0 if os.path.exists(%r) else "
                    "'Error: no %s (built by make bench)')" % ((os.path.join(BUILD, "pyws", "speedups.so"),) * 2)]),
        dict(name="node-ws", what="node ws 8 (+bufferutil if installed)",
             cmd=["node", os.path.join(ROOT, "bench", "ws_bench.js")],
             probe=["node", "-e", "require(%r)" % os.path.join(BUILD, "node", "node_modules", "ws")]),
        dict(name="lightws-py", what="lightws Python binding (cffi)",
             cmd=[PY, os.path.join(ROOT, "bench", "lightws_bench.py")],
             env={"PYTHONPATH": os.path.join(ROOT, "bindings", "python")},
             probe=[PY, "-c", "import lightws"]),
        dict(name="lightws-py-sendv", what="lightws Python, bulk via CStream.sendv (not public API)",
             cmd=[PY, os.path.join(ROOT, "bench", "lightws_bench.py")],
             env={"PYTHONPATH": os.path.join(ROOT, "bindings", "python"), "LIGHTWS_PY_SENDV": "1"},
             probe=[PY, "-c", "import lightws"], default=False, micro=False),
        dict(name="lightws-py-direct", what="lightws Python, bulk via CStream.send per frame (not public API)",
             cmd=[PY, os.path.join(ROOT, "bench", "lightws_bench.py")],
             env={"PYTHONPATH": os.path.join(ROOT, "bindings", "python"), "LIGHTWS_PY_DIRECT": "1"},
             probe=[PY, "-c", "import lightws"], default=False, micro=False),
        dict(name="lightws-py-inplace", what="as lightws-py-direct, with SEND_MASK_IN_PLACE",
             cmd=[PY, os.path.join(ROOT, "bench", "lightws_bench.py")],
             env={"PYTHONPATH": os.path.join(ROOT, "bindings", "python"), "LIGHTWS_PY_DIRECT": "inplace"},
             probe=[PY, "-c", "import lightws"], default=False, micro=False),
        dict(name="lightws-lua54", what="lightws Lua 5.4 binding",
             cmd=["lua5.4", os.path.join(ROOT, "bench", "lightws_bench.lua")],
             env={"LUA_CPATH": os.path.join(BUILD, "lua54", "?.so") + ";;", "LUA_PATH": lua_path},
             probe=["lua5.4", "-e", "require('lightws')"]),
        dict(name="lightws-luajit", what="lightws LuaJIT binding",
             cmd=["luajit", os.path.join(ROOT, "bench", "lightws_bench.lua")],
             env={"LUA_CPATH": os.path.join(BUILD, "luajit", "?.so") + ";;", "LUA_PATH": lua_path},
             probe=["luajit", "-e", "require('lightws')"]),
    ]


def available(impl):
    """Returns None if the implementation can run, else why not."""
    exe = impl["cmd"][0]
    if os.path.sep in exe:
        if not os.path.exists(exe):
            return "missing " + os.path.relpath(exe, ROOT)
    elif shutil.which(exe) is None:
        return "no " + exe
    for arg in impl["cmd"][1:]:
        if arg.startswith(ROOT) and not os.path.exists(arg):
            return "missing " + os.path.relpath(arg, ROOT)
    if impl.get("probe"):
        p = subprocess.run(impl["probe"], env=env_for(impl), capture_output=True, text=True,
                           cwd=ROOT, timeout=60)
        if p.returncode != 0:
            lines = p.stderr.strip().splitlines() or ["?"]
            why = next((l for l in lines if "rror" in l), lines[-1]).strip()
            return "cannot load (try `make deps`): " + why[:90]
    return None


def env_for(impl, extra=None):
    env = dict(os.environ)
    for k, v in impl.get("env", {}).items():
        env[k] = v
    if extra:
        env.update(extra)
    return env


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def parse_kv(line):
    return {k: v for k, v in re.findall(r"(\w+)=(\S+)", line)}


def run_pair(impl, mode, total, size, timeout, extra_env=None):
    """Runs server and client; returns (client dict, server dict, stderr text) or raises."""
    port = free_port()
    env = env_for(impl, extra_env)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    args = [mode, str(port), str(total), str(size)]
    srv = subprocess.Popen(impl["cmd"] + ["server"] + args, env=env, cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cli = subprocess.Popen(impl["cmd"] + ["client"] + args, env=env, cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        cout, cerr = cli.communicate(timeout=timeout)
        sout, serr = srv.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        for p in (cli, srv):
            p.kill()
        for p in (cli, srv):
            p.communicate()
        raise RuntimeError("timeout after %ds" % timeout)
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    res = [parse_kv(l) for l in cout.splitlines() if l.startswith("RESULT")]
    sres = [parse_kv(l) for l in sout.splitlines() if l.startswith("SERVER")]
    if cli.returncode != 0 or srv.returncode != 0 or not res:
        msg = (cerr + serr).strip().splitlines()
        raise RuntimeError("exit %s/%s: %s" % (cli.returncode, srv.returncode,
                                                (msg[-1] if msg else "no RESULT")[:120]))
    res[0]["cpu"] = cpu  # user + system seconds of both processes
    return res[0], (sres[0] if sres else {}), cerr + serr


def scaled(w, scale):
    name, mode, total, size, _ = w
    if mode == "bulk":
        frames = max(1, int(total * scale) // size)
        return frames * size
    return max(1, int(total * scale))


def figure(mode, res):
    return float(res["MBps"]) if mode == "bulk" else float(res["rtps"])


def run_micro(extra_env, impl=None):
    """`PROG micro` of one implementation (lightws C by default): {name: value}."""
    cmd = impl["cmd"] if impl else [os.path.join(BUILD, "lightws-bench")]
    env = env_for(impl, extra_env) if impl else dict(os.environ, **extra_env)
    p = subprocess.run(cmd + ["micro"], capture_output=True, text=True, cwd=ROOT, timeout=300,
                       env=env)
    out = {}
    for line in p.stdout.splitlines():
        if line.startswith("MICRO"):
            kv = parse_kv(line)
            out[kv["name"]] = float(kv["value"])
    if p.returncode != 0 and not out:
        raise RuntimeError((p.stderr.strip().splitlines() or ["micro failed"])[-1])
    return out


def alloc_counts(impl, mode, size, n1, n2):
    """Heap allocations per frame (client, server): the difference between runs of
    n1 and n2 frames, so setup allocations cancel out."""
    so = os.path.join(BUILD, "alloc-count.so")
    counts = []
    for n in (n1, n2):
        total = n * size if mode == "bulk" else n
        _, _, err = run_pair(impl, mode, total, size, 120, {"LD_PRELOAD": so})
        vals = [int(x) for x in re.findall(r"ALLOCS count=(\d+)", err)]
        if len(vals) != 2:
            raise RuntimeError("alloc counter output missing")
        counts.append(vals)
    # stderr order of the two processes is not known: report the larger as the total
    d = [(counts[1][i] - counts[0][i]) / float(n2 - n1) for i in range(2)]
    return sum(d)


def fmt_num(v):
    if v is None:
        return "-"
    if v >= 100:
        return "%.0f" % v
    if v >= 10:
        return "%.1f" % v
    return "%.2f" % v


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--only", default="", help="comma-separated implementation names")
    ap.add_argument("--workloads", default="",
                    help="comma-separated, e.g. W1,W3; W4 is the codec micro of every program")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per client run")
    ap.add_argument("--record", default="", help="append the table with the date to this file")
    ap.add_argument("--json", default=os.path.join(BUILD, "bench", "results.json"))
    ap.add_argument("--no-micro", action="store_true", help="leave out W4")
    a = ap.parse_args()

    all_impls = impls()
    only = [x for x in a.only.split(",") if x]
    chosen = [i for i in all_impls
              if i["name"] == "raw" or (i["name"] in only if only else i.get("default", True))]
    workloads = [w for w in WORKLOADS if not a.workloads or w[0] in a.workloads.split(",")]
    do_micro = not a.no_micro and (not a.workloads or "W4" in a.workloads.split(","))
    skipped = {}
    for impl in chosen:
        why = available(impl)
        if why:
            skipped[impl["name"]] = why
    runnable = [i for i in chosen if i["name"] not in skipped]
    if "raw" in skipped:
        sys.exit("bench: raw TCP program missing (%s); run `make bench`" % skipped["raw"])

    print("lightws bench: %d rounds, scale %.3g, %s, %d CPUs, %s" % (
        a.rounds, a.scale, platform.node(), os.cpu_count(),
        datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC")), flush=True)
    for name, why in skipped.items():
        print("  skipped %s: %s" % (name, why), flush=True)

    # results[impl][workload] = list of (figure, fps or None, ratio)
    results = {i["name"]: {w[0]: [] for w in workloads} for i in runnable}
    errors = {}
    micro_rounds = []
    micro_all = {}  # implementation -> list of {name: value}, one per round
    t_start = time.time()
    for r in range(a.rounds):
        for w in workloads:
            name, mode, _, size, _ = w
            total = scaled(w, a.scale)

            def one(impl):
                """One run: (figure, frames/s, CPU per unit of work) or None."""
                key = (impl["name"], name)
                if errors.get(key, 0) >= 2:
                    return None  # failed twice: stop wasting rounds on it
                try:
                    res, srv, _ = run_pair(impl, mode, total, size, a.timeout)
                    if srv and mode == "bulk" and int(srv.get("bytes", -1)) != total:
                        raise RuntimeError("server got %s bytes, expected %d" % (srv.get("bytes"), total))
                    if srv and mode == "pingpong" and int(srv.get("frames", -1)) != total:
                        raise RuntimeError("server echoed %s messages, expected %d" % (srv.get("frames"), total))
                except Exception as e:  # noqa: BLE001 (a failed run is reported, not fatal)
                    errors[key] = errors.get(key, 0) + 1
                    print("  round %d %s %s: FAILED %s" % (r + 1, name, impl["name"], e), flush=True)
                    return None
                # CPU per unit of work (both processes), less noisy than wall time
                cpu_unit = res["cpu"] / (total if mode == "pingpong" else total / float(GiB))
                return (figure(mode, res), float(res["fps"]) if mode == "bulk" else None, cpu_unit)

            def show(impl, run, ratio, cpu_ratio):
                print("  round %d %s %-15s %10.1f %s  x%.3f   cpu x%.2f" % (
                    r + 1, name, impl["name"], run[0], "MB/s" if mode == "bulk" else "rtt/s",
                    ratio or 0, cpu_ratio or 0), flush=True)

            # raw X1 raw X2 raw ... Xn raw: each implementation is compared with
            # the raw TCP runs right before and after it (geometric mean), so a
            # change of machine load during the round hits its baseline too.
            raw_impl = runnable[0]
            prev = one(raw_impl)
            if prev:
                results["raw"][name].append((prev[0], prev[1], 1.0, prev[2], 1.0))
                show(raw_impl, prev, 1.0, 1.0)
            for impl in runnable[1:]:
                run = one(impl)
                nxt = one(raw_impl)
                if nxt:
                    results["raw"][name].append((nxt[0], nxt[1], 1.0, nxt[2], 1.0))
                if run:
                    bases = [x for x in (prev, nxt) if x]
                    base = math.exp(sum(math.log(x[0]) for x in bases) / len(bases)) if bases else None
                    base_cpu = math.exp(sum(math.log(x[2]) for x in bases) / len(bases)) if bases else None
                    ratio = run[0] / base if base else None
                    cpu_ratio = run[2] / base_cpu if base_cpu else None
                    results[impl["name"]][name].append((run[0], run[1], ratio, run[2], cpu_ratio))
                    show(impl, run, ratio, cpu_ratio)
                prev = nxt or prev
        if not do_micro:
            continue
        # W4: each program's `micro` (lightws C without the idle part: once below).
        for impl in runnable:
            if not impl.get("micro", True):
                continue
            c = impl["name"] == "lightws-c"
            try:
                m = run_micro({"BENCH_IDLE_CONNS": "0"} if c else {}, impl)
            except Exception as e:  # noqa: BLE001
                print("  round %d W4 %s: micro FAILED %s" % (r + 1, impl["name"], e), flush=True)
                continue
            micro_all.setdefault(impl["name"], []).append(m)
            if c:
                micro_rounds.append(m)
            print("  round %d W4 %-15s %s" % (r + 1, impl["name"], " ".join(
                "%s=%s" % (k, fmt_num(v)) for k, v in m.items())), flush=True)

    # Once: idle RSS and allocations per frame.
    idle = {}
    idle_min = {}
    if do_micro and os.path.exists(os.path.join(BUILD, "lightws-bench")):
        try:
            idle = run_micro({"BENCH_IDLE_CONNS": "10000", "BENCH_MICRO": "idle"})
            idle_min = run_micro({"BENCH_IDLE_CONNS": "10000", "BENCH_MICRO": "idle",
                                  "BENCH_IDLE_RBUF": "256"})
        except Exception as e:  # noqa: BLE001
            print("  idle RSS FAILED: %s" % e, flush=True)
    if idle_min.get("idle_conns"):
        idle["min_rss_kib"] = idle_min["idle_rss_kib"]
        idle["min_bytes_per_conn"] = idle_min["idle_bytes_per_conn"]
    allocs = {}
    if os.path.exists(os.path.join(BUILD, "alloc-count.so")):
        for impl in runnable:
            if not impl.get("alloc"):
                continue
            for w in workloads:
                name, mode, _, size, _ = w
                try:
                    allocs[(impl["name"], name)] = alloc_counts(impl, mode, size, 2000, 4000)
                except Exception as e:  # noqa: BLE001
                    print("  allocs %s %s FAILED: %s" % (impl["name"], name, e), flush=True)

    lines = render(a, runnable, skipped, workloads, results, errors, micro_rounds, idle, allocs,
                   time.time() - t_start, micro_all)
    print()
    print("\n".join(lines))
    os.makedirs(os.path.dirname(a.json), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump(dict(results=results, micro=micro_rounds, micro_all=micro_all, idle=idle,
                       allocs={"%s/%s" % k: v for k, v in allocs.items()},
                       errors={"%s/%s" % k: v for k, v in errors.items()}), f, indent=1)
    if a.record:
        with open(a.record, "a") as f:
            f.write("\n## %s\n\n```\n%s\n```\n" % (
                datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"), "\n".join(lines)))
    return 0


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


# W4 table: which MICRO figure of each program goes in which column. A
# program prints only what its public API can do; the first name present wins.
MICRO_MASK = ["mask_GBps"]  # masking in place
MICRO_MASK_COPY = [("mask_copy_GBps", ""), ("send_mask_copy_GBps", " send")]
MICRO_COPY = [("memcpy_GBps", "memcpy"), ("slice_copy_GBps", "b[:]=a"),
              ("buffer_copy_GBps", "Buffer.copy"), ("string_copy_GBps", "s:sub()"),
              ("bytes_copy_GBps", "bytes()")]
MICRO_NOTES = [
    "head dec/enc: one frame head per call through the public codec, from the program's language",
    "  (C: lightws_frame_decode over mixed 6/8/14-byte masked heads; encode: lightws_frame_encode_unchecked).",
    "frame16: one whole masked client frame with a 16-byte payload decoded from memory, head and unmask:",
    "  wslay_frame_recv fed by a memory recv callback; node ws Receiver.write ('message' per frame);",
    "  websockets Frame.parse over its StreamReader; lightws Python/Lua decode_head + mask into new bytes.",
    "mask: 64 KiB in place (lightws_mask, codec.mask_into, bufferutil.unmask); mask copy: into another",
    "  buffer or a new object (wslay: a masked wslay_frame_send into a memory callback, wslay's 4 KiB",
    "  byte loop; websockets: speedups.apply_mask). copy: the same 64 KiB copied the nearest plain way.",
    "mask/copy: the mask figure (in place if there is one, else mask copy) over the copy, median of rounds.",
]


def render_w4(runnable, micro_all):
    """The W4 table: every implementation's `micro`, medians over rounds."""
    L = ["", "W4 codec micro, every implementation (each figure best of short runs; median over rounds):"]
    head = "%-17s | %11s | %11s | %10s | %9s | %16s | %20s | %s" % (
        "implementation", "head dec ns", "head enc ns", "frame16 ns", "mask GB/s", "mask copy GB/s",
        "copy GB/s", "mask/copy")
    L.append(head)
    L.append("-" * len(head))

    def num(v):
        return "-" if v is None else fmt_num(v)

    for impl in runnable:
        n = impl["name"]
        rounds = micro_all.get(n)
        if not rounds:
            if impl.get("micro", True):
                L.append("%-17s | micro FAILED or not run" % n)
            continue
        m = {k: med([r.get(k) for r in rounds]) for k in rounds[0]}

        def pick(r):
            """(mask, (mask copy, tag), (copy, tag)) of one round's figures."""
            mask = next((r[k] for k in MICRO_MASK if r.get(k) is not None), None)
            mc = next(((r[k], tag) for k, tag in MICRO_MASK_COPY if r.get(k) is not None), (None, ""))
            cp = next(((r[k], tag) for k, tag in MICRO_COPY if r.get(k) is not None), (None, ""))
            return mask, mc, cp

        mask, mc, cp = pick(m)

        def round_ratio(r):
            rm, rmc, rcp = pick(r)
            best = rm if rm is not None else rmc[0]
            return best / rcp[0] if best is not None and rcp[0] else None

        # the median of the per-round ratios: masking and copying were timed in the same run
        rr = med([round_ratio(r) for r in rounds])
        ratio = "x%.2f" % rr if rr is not None else "-"
        L.append("%-17s | %11s | %11s | %10s | %9s | %16s | %20s | %s" % (
            n, num(m.get("head_decode_ns")), num(m.get("head_encode_ns")), num(m.get("frame16_decode_ns")),
            num(mask), num(mc[0]) + mc[1], "-" if cp[0] is None else "%s %s" % (fmt_num(cp[0]), cp[1]),
            ratio))
    L.extend("  " + x for x in MICRO_NOTES)
    return L


def render(a, runnable, skipped, workloads, results, errors, micro_rounds, idle, allocs, secs,
           micro_all=None):
    L = []
    L.append("lightws bench, %s, %d rounds (medians), scale %.3g, %d CPUs, %.0f s" % (
        datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"), a.rounds, a.scale,
        os.cpu_count(), secs))
    if workloads:
        L.append("Loopback TCP, TCP_NODELAY, server and client in separate processes; "
                 "x = ratio to raw TCP in the same round")
        L.append("(raw runs before and after each implementation, geometric mean; the table shows medians "
                 "of the figures and of the per-round ratios).")
    for w in workloads:
        L.append("  %s: %s" % (w[0], w[4]))
    if micro_all:
        L.append("  W4: codec micro of each program (`PROG micro`)")
    if workloads:
        L.extend(render_runs(a, runnable, skipped, workloads, results, errors, allocs))
    else:
        for n, why in skipped.items():
            L.append("%-17s | not run: %s" % (n, why))
    if micro_all:
        L.extend(render_w4(runnable, micro_all))
    L.extend(render_micro_c(micro_rounds, idle))
    L.extend(render_targets(results, workloads, micro_rounds, allocs))
    return L


def render_runs(a, runnable, skipped, workloads, results, errors, allocs):
    """The W1-W3 table and the CPU lines."""
    L = []
    head = "%-17s" % "implementation"
    for w in workloads:
        head += " | %-20s" % (w[0] + (" MB/s" if w[1] == "bulk" else " rtt/s"))
        if w[0] == "W2":
            head += " | %-9s" % "W2 kfps"
    head += " | allocs/frame W1 W2 W3"
    L.append("")
    L.append(head)
    L.append("-" * len(head))
    for impl in runnable:
        n = impl["name"]
        row = "%-17s" % n
        for w in workloads:
            runs = results[n][w[0]]
            if not runs:
                cell = "FAILED" if errors.get((n, w[0])) else "-"
            else:
                fig = med([x[0] for x in runs])
                ratio = med([x[2] for x in runs])
                cell = "%s x%.2f" % (fmt_num(fig), ratio) if ratio is not None else fmt_num(fig)
                if len(runs) < a.rounds:
                    cell += " (%d)" % len(runs)
            row += " | %-20s" % cell
            if w[0] == "W2":
                row += " | %-9s" % (fmt_num(med([x[1] for x in runs]) / 1000.0) if runs else "-")
        al = [allocs.get((n, w[0])) for w in workloads]
        row += " | " + " ".join("-" if x is None else "%.2f" % x for x in al)
        L.append(row)
    for n, why in skipped.items():
        L.append("%-17s | not run: %s" % (n, why))
    L.append("")
    L.append("CPU time of server + client (user + system) per GiB (W1, W2) or per 1000 round trips (W3),")
    L.append("median, and as a ratio to raw TCP in the same round (lower is better; less noisy than wall time):")
    for impl in runnable:
        n = impl["name"]
        cells = []
        for w in workloads:
            runs = results[n][w[0]]
            if not runs:
                cells.append("%s -" % w[0])
                continue
            unit = med([x[3] for x in runs]) * (1000.0 if w[1] == "pingpong" else 1.0)
            cells.append("%s %.3fs x%.2f" % (w[0], unit, med([x[4] for x in runs]) or 0))
        L.append("  %-17s %s" % (n, "   ".join(cells)))
    return L


def micro_c(micro_rounds):
    micro = {}
    if micro_rounds:
        for k in micro_rounds[0]:
            micro[k] = med([m.get(k) for m in micro_rounds])
    return micro


def render_micro_c(micro_rounds, idle):
    """lightws C's own W4 lines (its micro and idle RSS)."""
    L = []
    micro = micro_c(micro_rounds)
    if micro or idle:
        L.append("")
        L.append("W4 codec micro (lightws C, median of rounds):")
        if micro:
            L.append("  head decode %.2f ns (mixed 6/8/14-byte masked heads), %.2f ns (6-byte head); "
                     "encode %.2f ns" % (micro.get("head_decode_ns", 0), micro.get("head_decode_small_ns", 0),
                                         micro.get("head_encode_ns", 0)))
            L.append("  mask in place %.1f GB/s, masked copy %.1f GB/s, memcpy %.1f GB/s (64 KiB): "
                     "mask/memcpy x%.2f" % (micro.get("mask_GBps", 0), micro.get("mask_copy_GBps", 0),
                                           micro.get("memcpy_GBps", 0), micro.get("mask_vs_memcpy", 0)))
            L.append("  sizeof(struct lightws_stream) = %d bytes" % micro.get("sizeof_stream", 0))
        if idle.get("idle_conns"):
            L.append("  %d idle server connections (stream + %d B rbuf each, one frame read): "
                     "RSS +%.1f MiB = %.0f B per connection" % (
                         idle["idle_conns"], idle["idle_rbuf_bytes"], idle["idle_rss_kib"] / 1024.0,
                         idle["idle_bytes_per_conn"]))
        if idle.get("min_rss_kib") is not None:
            L.append("  the same with a %d B rbuf (LIGHTWS_RBUF_MIN): RSS +%.1f MiB = %.0f B per connection" % (
                256, idle["min_rss_kib"] / 1024.0, idle["min_bytes_per_conn"]))

    return L


def render_targets(results, workloads, micro_rounds, allocs):
    L = []
    micro = micro_c(micro_rounds)
    L.append("")
    L.append("Targets:")
    for n, tg in TARGETS.items():
        if not workloads:
            break
        if n not in results:
            L.append("  %-14s not run" % n)
            continue
        parts = []
        for wn, want in tg.items():
            if wn not in results[n]:
                continue
            got = med([x[2] for x in results[n][wn]])
            parts.append("%s x%s >= %.2f %s" % (wn, "-" if got is None else "%.2f" % got, want,
                                                "ok" if got is not None and got >= want else "MISS"))
        L.append("  %-14s %s" % (n, "; ".join(parts)))
    if micro:
        chk = [("mask/memcpy", micro.get("mask_vs_memcpy"), ">=", 0.9),
               ("head decode ns", micro.get("head_decode_ns"), "<=", 2.0),
               ("sizeof stream", micro.get("sizeof_stream"), "<=", 256)]
        al = [v for (n, _), v in allocs.items() if n == "lightws-c"]
        if al:
            chk.append(("allocs/frame", max(al), "<=", 0.0))
        L.append("  lightws-c      " + "; ".join(
            "%s %s %s %s %s" % (k, fmt_num(v) if v is not None else "-", op, fmt_num(t),
                                "ok" if v is not None and (v >= t if op == ">=" else v <= t) else "MISS")
            for k, v, op, t in chk))
    return L


if __name__ == "__main__":
    sys.exit(main())
