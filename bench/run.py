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
                    help="comma-separated, e.g. W1,W3; W4 is the codec micro of every program; "
                         "W5 (or W5a, W5b: permessage-deflate) only when named")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per client run")
    ap.add_argument("--record", default="", help="append the table with the date to this file")
    ap.add_argument("--json", default=os.path.join(BUILD, "bench", "results.json"))
    ap.add_argument("--no-micro", action="store_true", help="leave out W4")
    ap.add_argument("--w5-parts", default="run,wire,idle",
                    help="W5: which parts (run: the timed rounds, wire: bytes on the wire, idle: memory)")
    a = ap.parse_args()

    all_impls = impls()
    only = [x for x in a.only.split(",") if x]
    chosen = [i for i in all_impls
              if i["name"] == "raw" or (i["name"] in only if only else i.get("default", True))]
    workloads = [w for w in WORKLOADS if not a.workloads or w[0] in a.workloads.split(",")]
    w5_names = [x for x in a.workloads.split(",") if x.startswith("W5")]
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

    if workloads or do_micro or not w5_names:
        lines = render(a, runnable, skipped, workloads, results, errors, micro_rounds, idle, allocs,
                       time.time() - t_start, micro_all)
    else:
        lines = ["lightws bench, %s, %s CPUs, load average %s" % (
            datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"), os.cpu_count(),
            " ".join("%.1f" % x for x in os.getloadavg()))]
    if w5_names:
        lines += run_w5(a, w5_names, only)
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


# ---- W5: permessage-deflate (issue 11) ----------------------------------------
#
# `--workloads W5` (or W5a, W5b; not in the default set: it is long). Every
# implementation with compression runs `PROG server|client zbulk PORT TOTAL
# SIZE`: the client sends the text messages of a corpus file (written here,
# deterministic: the same bytes for every program) in order, cycling, with
# permessage-deflate; the server inflates and counts. Rounds interleave
# lightws C with every other implementation (lightws-c X1 lightws-c X2 ...)
# and each is compared with the lightws C runs right before and after it.
# Once per implementation and workload a shorter run goes through a counting
# proxy here (bytes on the wire, client to server, after the handshake),
# compared with zlib's own output for the same messages at the same
# settings. Then idle compressed connections against each echo server: RSS.

W5_WORKLOADS = [
    ("W5a", "zbulk", 256 * MiB, 1024, "256 MiB of 1 KiB JSON-like text messages, permessage-deflate, MB/s"),
    ("W5b", "zbulk", 256 * MiB, 16384, "256 MiB of 16 KiB JSON-like text messages, permessage-deflate, MB/s"),
]
W5_CORPUS_BYTES = 4 * MiB  # per message size: 4096 messages of 1 KiB, 256 of 16 KiB
W5_WIRE_BYTES = 16 * MiB   # payload of the counted (proxy) run
W5_IDLE_CONNS = 200
# (window bits, memLevel, level) each row uses; the zlib reference is made for each.
W5_LIGHTWS = (12, 5, 6)
W5_TARGETS = {"node-ws": 1.5, "websockets": 3.0}  # lightws C's throughput over theirs
W5_RATIO_TOL = 0.02  # wire bytes within 2 % of zlib's at the same settings


def w5_impls():
    """Rows of W5: (impl dict from impls(), settings, echo server command or None)."""
    by = {i["name"]: i for i in impls()}
    node = by["node-ws"]
    lua_env = by["lightws-lua54"]["env"]
    lj_env = by["lightws-luajit"]["env"]
    rows = [
        dict(by["lightws-c"], settings=W5_LIGHTWS,
             echo=[os.path.join(BUILD, "lightws-echo"), "--quiet", "--port", "{port}"]),
        dict(by["websockets"], settings=W5_LIGHTWS,
             what="python3-websockets 10.4 (its defaults: window 12, memLevel 5, zlib's level 6)",
             echo=by["websockets"]["cmd"] + ["server", "echo", "{port}", "0", "0"]),
        dict(node, settings=W5_LIGHTWS, what="node ws 8, set to lightws's settings (threshold 32)",
             echo=node["cmd"] + ["server", "echo", "{port}", "0", "0"]),
        dict(node, name="node-ws-defaults", settings=(15, 8, 6), env={"BENCH_PMD": "defaults"},
             what="node ws 8 at its defaults (perMessageDeflate: true: window 15, memLevel 8, threshold 1024)",
             echo=node["cmd"] + ["server", "echo", "{port}", "0", "0"]),
        dict(by["lightws-c"], name="lightws-c-15", settings=(15, 8, 6),
             env={"LIGHTWS_BENCH_WBITS": "15", "LIGHTWS_BENCH_MEMLEVEL": "8"},
             what="lightws C at node ws's defaults (window 15, memLevel 8)", echo=None),
        dict(by["lightws-py"], settings=W5_LIGHTWS,
             echo=by["lightws-py"]["cmd"] + ["server", "echo", "{port}", "0", "0"]),
        dict(by["lightws-lua54"], settings=W5_LIGHTWS, env=lua_env, echo=None),
        dict(by["lightws-luajit"], settings=W5_LIGHTWS, env=lj_env, echo=None),
        # idle memory only: the library without the echo tool's buffers
        # (`lightws-bench server echo`: stream + 4 KiB rbuf + deflate block per
        # connection), and with the client's window limited to 12 bits as
        # websockets' server does (lightws's default lets the client use 15)
        dict(by["lightws-c"], name="lightws-c-lib", settings=W5_LIGHTWS, idle_only=True,
             echo=by["lightws-c"]["cmd"] + ["server", "echo", "{port}", "0", "0"]),
        dict(by["lightws-c"], name="lightws-c-lib-p12", settings=W5_LIGHTWS, idle_only=True,
             env={"LIGHTWS_BENCH_PEER_WBITS": "12"},
             echo=by["lightws-c"]["cmd"] + ["server", "echo", "{port}", "0", "0"]),
        dict(by["lightws-py"], name="lightws-py-p12", settings=W5_LIGHTWS, idle_only=True,
             env=dict(by["lightws-py"]["env"], BENCH_PEER_WBITS="12"),
             echo=by["lightws-py"]["cmd"] + ["server", "echo", "{port}", "0", "0"]),
    ]
    return rows


def w5_corpus_messages(size, count, seed=11):
    """`count` JSON-like text messages of exactly `size` bytes (ASCII): arrays
    of records shaped like a small API's (ids, names, e-mail addresses, tags
    from a vocabulary, timestamps, numbers, booleans, short sentences of
    made-up words), padded with spaces before the closing bracket (still
    JSON). Deterministic for (size, count, seed) with Python's random."""
    import random
    rnd = random.Random(seed * 1000003 + size)
    syll = ["ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "an", "el", "or", "us", "ve", "di", "zo", "qu"]
    vocab = ["".join(rnd.choice(syll) for _ in range(rnd.randint(1, 4))) for _ in range(400)]
    names = [w.capitalize() + " " + rnd.choice(vocab).capitalize() for w in vocab[:120]]
    status = ["active", "pending", "suspended", "deleted", "archived"]
    out = []
    rid = 100000
    for _ in range(count):
        recs, length = [], 2
        while True:
            rid += rnd.randint(1, 50)
            rec = ('{"id":%d,"user":{"name":"%s","email":"%s@example.%s","age":%d},'
                   '"status":"%s","tags":[%s],"created":"2026-%02d-%02dT%02d:%02d:%02dZ",'
                   '"score":%.3f,"verified":%s,"text":"%s"}') % (
                rid, rnd.choice(names), rnd.choice(vocab), rnd.choice(["com", "org", "net"]),
                rnd.randint(18, 90), rnd.choice(status),
                ",".join('"%s"' % rnd.choice(vocab[:60]) for _ in range(rnd.randint(0, 4))),
                rnd.randint(1, 12), rnd.randint(1, 28), rnd.randint(0, 23), rnd.randint(0, 59),
                rnd.randint(0, 59), rnd.random() * 100, rnd.choice(["true", "false"]),
                " ".join(rnd.choice(vocab) for _ in range(rnd.randint(3, 14))))
            add = len(rec) + (1 if recs else 0)
            if length + add > size:
                break
            recs.append(rec)
            length += add
        msg = "[" + ",".join(recs) + " " * (size - length) + "]"
        out.append(msg.encode("ascii"))
    return out


def w5_corpus(size):
    """Writes build/bench/corpus-SIZE.bin (once) and returns (path, messages)."""
    path = os.path.join(BUILD, "bench", "corpus-%d.bin" % size)
    msgs = w5_corpus_messages(size, W5_CORPUS_BYTES // size)
    data = b"".join(msgs)
    if not os.path.exists(path) or open(path, "rb").read() != data:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".tmp", "wb") as f:
            f.write(data)
        os.replace(path + ".tmp", path)
    return path, msgs


def w5_zlib_wire(msgs, n, settings):
    """zlib's own output for messages 0..n (cycling) at `settings`: one raw
    deflate stream with context takeover, Z_SYNC_FLUSH per message, the
    00 00 ff ff tail removed (RFC 7692 §7.2.1). Returns (compressed payload
    bytes, + client frame heads of one frame per message)."""
    import zlib
    wbits, mem, level = settings
    c = zlib.compressobj(level, zlib.DEFLATED, -wbits, mem)
    payload = heads = 0
    for i in range(n):
        out = c.compress(msgs[i % len(msgs)]) + c.flush(zlib.Z_SYNC_FLUSH)
        k = len(out) - 4
        payload += k
        heads += (2 if k < 126 else 4 if k < 65536 else 10) + 4
    return payload, payload + heads


class CountingProxy:
    """One connection: accepts on `front`, connects to 127.0.0.1:`back`, copies
    both ways and counts bytes after each side's HTTP head."""

    def __init__(self, back):
        import threading
        self.back = back
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(1)
        self.ls.settimeout(60)
        self.front = self.ls.getsockname()[1]
        self.counts = [0, 0]  # client->server, server->client (after the heads)
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def pump(self, src, dst, k):
        head, buf = True, b""
        try:
            while True:
                d = src.recv(262144)
                if not d:
                    break
                dst.sendall(d)
                if head:
                    buf += d
                    i = buf.find(b"\r\n\r\n")
                    if i >= 0:
                        head = False
                        self.counts[k] += len(buf) - i - 4
                        buf = b""
                else:
                    self.counts[k] += len(d)
        except OSError:
            pass
        for s in (dst, src):
            try:
                s.shutdown(socket.SHUT_WR if s is dst else socket.SHUT_RD)
            except OSError:
                pass

    def run(self):
        import threading
        try:
            c, _ = self.ls.accept()
        except OSError:
            return
        self.ls.close()
        for _ in range(2000):
            try:
                s = socket.create_connection(("127.0.0.1", self.back))
                break
            except OSError:
                time.sleep(0.01)
        else:
            c.close()
            return
        for x in (c, s):
            x.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t = threading.Thread(target=self.pump, args=(s, c, 1), daemon=True)
        t.start()
        self.pump(c, s, 0)
        t.join(60)
        c.close()
        s.close()


def w5_run_pair(impl, total, size, corpus, timeout, proxy=False):
    """As run_pair for zbulk, optionally through a CountingProxy: returns the
    client's RESULT dict (with cpu, and wire = client->server bytes)."""
    port = free_port()
    env = env_for(impl, {"BENCH_CORPUS": corpus})
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    args = lambda p: ["zbulk", str(p), str(total), str(size)]  # noqa: E731
    srv = subprocess.Popen(impl["cmd"] + ["server"] + args(port), env=env, cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    px = CountingProxy(port) if proxy else None
    cli = subprocess.Popen(impl["cmd"] + ["client"] + args(px.front if px else port), env=env,
                           cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
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
    res = [parse_kv(l) for l in cout.splitlines() if l.startswith("RESULT")]
    sres = [parse_kv(l) for l in sout.splitlines() if l.startswith("SERVER")]
    if cli.returncode != 0 or srv.returncode != 0 or not res:
        msg = (cerr + serr).strip().splitlines()
        raise RuntimeError("exit %s/%s: %s" % (cli.returncode, srv.returncode,
                                                (msg[-1] if msg else "no RESULT")[:120]))
    if not sres or int(sres[0].get("bytes", -1)) != total:
        raise RuntimeError("server got %s bytes of %d" % (sres[0].get("bytes") if sres else "?", total))
    r = res[0]
    r["cpu"] = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    if px:
        px.thread.join(30)
        r["wire"] = px.counts[0]
        r["wire_back"] = px.counts[1]
    return r


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def ws_frame(payload, opcode=1, rsv1=False):
    """A masked client frame (key 0: masking is the identity)."""
    n = len(payload)
    b0 = 0x80 | (0x40 if rsv1 else 0) | opcode
    if n < 126:
        head = bytes([b0, 0x80 | n])
    elif n < 65536:
        head = bytes([b0, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([b0, 0x80 | 127]) + n.to_bytes(8, "big")
    return head + b"\0\0\0\0" + payload


def read_frame(s, buf):
    """Reads one whole server frame from s (buf: bytes already read); returns the rest."""
    while True:
        if len(buf) >= 2:
            n = buf[1] & 0x7f
            h = 2 + (2 if n == 126 else 8 if n == 127 else 0)
            if len(buf) >= h:
                if n == 126:
                    n = int.from_bytes(buf[2:4], "big")
                elif n == 127:
                    n = int.from_bytes(buf[2:10], "big")
                if len(buf) >= h + n:
                    return buf[h + n:]
        d = s.recv(65536)
        if not d:
            raise RuntimeError("EOF before the echo")
        buf += d


def w5_idle(row, n, msg, compress):
    """Starts the row's echo server, opens one warm-up connection, then `n`
    connections that each offer permessage-deflate (or not), send one
    message (compressed if agreed) and read its echo; returns (RSS growth in
    KiB, connections that agreed on compression)."""
    import base64
    import zlib
    port = free_port()
    cmd = [x.replace("{port}", str(port)) for x in row["echo"]]
    srv = subprocess.Popen(cmd, env=env_for(row), cwd=ROOT, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    socks = []

    def one():
        for _ in range(2000):
            try:
                s = socket.create_connection(("127.0.0.1", port))
                break
            except OSError:
                time.sleep(0.01)
        else:
            raise RuntimeError("cannot connect to the echo server")
        s.settimeout(30)
        key = base64.b64encode(os.urandom(16)).decode()
        ext = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" if compress else ""
        s.sendall(("GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n" % (port, key, ext)).encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = s.recv(4096)
            if not d:
                raise RuntimeError("EOF in the handshake")
            buf += d
        head, rest = buf.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise RuntimeError("handshake: " + head.split(b"\r\n")[0].decode())
        agreed = b"permessage-deflate" in head.lower()
        if agreed:
            c = zlib.compressobj(6, zlib.DEFLATED, -9, 1)  # a window any server allows
            s.sendall(ws_frame((c.compress(msg) + c.flush(zlib.Z_SYNC_FLUSH))[:-4], rsv1=True))
        else:
            s.sendall(ws_frame(msg))
        read_frame(s, rest)
        socks.append(s)
        return agreed

    try:
        one()  # warm-up: imports, first-connection setup
        socks.pop().close()
        time.sleep(0.5)
        before = rss_kib(srv.pid)
        agreed = sum(1 for _ in range(n) if one())
        time.sleep(0.5)
        after = rss_kib(srv.pid)
        return after - before, agreed
    finally:
        for s in socks:
            s.close()
        srv.terminate()
        try:
            srv.wait(10)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait()


def run_w5(a, names, only):
    """Runs W5 and returns the lines of its table."""
    rows = [r for r in w5_impls() if not only or r["name"] in only or r["name"] == "lightws-c"]
    works = [w for w in W5_WORKLOADS if "W5" in names or w[0] in names]
    skipped = {}
    for r in rows:
        why = available(r)
        if why:
            skipped[r["name"]] = why
            print("  W5 skipped %s: %s" % (r["name"], why), flush=True)
    rows = [r for r in rows if r["name"] not in skipped]
    idle_rows = rows
    rows = [r for r in rows if not r.get("idle_only")]
    parts = a.w5_parts.split(",")
    if not rows or rows[0]["name"] != "lightws-c":
        return ["", "W5: lightws C (build/lightws-bench) missing: not run"]
    corpora = {w[0]: w5_corpus(w[3]) for w in works}
    a.w5_load0 = os.getloadavg()
    res = {r["name"]: {w[0]: [] for w in works} for r in rows}
    errors = {}
    t0 = time.time()

    def one(r, w, total):
        key = (r["name"], w[0])
        if errors.get(key, 0) >= 2:
            return None
        try:
            x = w5_run_pair(r, total, w[3], corpora[w[0]][0], a.timeout)
        except Exception as e:  # noqa: BLE001
            errors[key] = errors.get(key, 0) + 1
            print("  W5 %s %s: FAILED %s" % (w[0], r["name"], e), flush=True)
            return None
        return float(x["MBps"]), x["cpu"] / (total / float(GiB))

    for rnd in range(a.rounds if "run" in parts else 0):
        for w in works:
            total = max(1, int(w[2] * a.scale) // w[3]) * w[3]
            base = rows[0]
            prev = one(base, w, total)
            if prev:
                res[base["name"]][w[0]].append((prev[0], 1.0, prev[1], 1.0))
            for r in rows[1:]:
                run = one(r, w, total)
                nxt = one(base, w, total)
                if nxt:
                    res[base["name"]][w[0]].append((nxt[0], 1.0, nxt[1], 1.0))
                if run:
                    bs = [x for x in (prev, nxt) if x]
                    if bs:
                        bf = math.exp(sum(math.log(x[0]) for x in bs) / len(bs))
                        bc = math.exp(sum(math.log(x[1]) for x in bs) / len(bs))
                        res[r["name"]][w[0]].append((run[0], run[0] / bf, run[1], run[1] / bc))
                        print("  round %d %s %-17s %8.1f MB/s  x%.3f of lightws-c   cpu %.2f s/GiB x%.2f" % (
                            rnd + 1, w[0], r["name"], run[0], run[0] / bf, run[1], run[1] / bc), flush=True)
                prev = nxt or prev
    # bytes on the wire, once, and zlib's own output for the same messages
    wire = {}
    zcpu = {}
    for w in works if "wire" in parts else []:
        zcpu[w[0]] = w5_zlib_cpu(corpora[w[0]][1], W5_LIGHTWS)
        print("  W5 zlib %s: compress %.2f s/GiB, decompress %.2f s/GiB (this process, Python zlib)" % (
            w[0], *zcpu[w[0]]), flush=True)
        total = max(1, min(W5_WIRE_BYTES, int(w[2] * a.scale)) // w[3]) * w[3]
        n = total // w[3]
        msgs = corpora[w[0]][1]
        refs = {}
        for r in rows:
            st = r["settings"]
            if st not in refs:
                refs[st] = w5_zlib_wire(msgs, n, st)
            try:
                x = w5_run_pair(r, total, w[3], corpora[w[0]][0], a.timeout, proxy=True)
            except Exception as e:  # noqa: BLE001
                print("  W5 wire %s %s: FAILED %s" % (w[0], r["name"], e), flush=True)
                continue
            # the client's close frame (code 1000: 2 + 4 + 2 bytes) is not payload
            got = x["wire"] - 8
            wire[(r["name"], w[0])] = (got, refs[st][1], refs[st][0], total)
            print("  W5 wire %s %-17s %d bytes for %d (%.3f), zlib %d: x%.4f" % (
                w[0], r["name"], got, total, got / total, refs[st][1], got / refs[st][1]), flush=True)
    # idle compressed connections
    idle = {}
    if works and "idle" in parts:
        msg = corpora[works[0][0]][1][0]
        for r in idle_rows:
            if not r.get("echo"):
                continue
            if os.path.sep in r["echo"][0] and not os.path.exists(r["echo"][0]):
                print("  W5 idle %s: missing %s" % (r["name"], r["echo"][0]), flush=True)
                continue
            try:
                # three times each (allocators make single figures jumpy): medians
                cs = [w5_idle(r, W5_IDLE_CONNS, msg, True) for _ in range(3)]
                kib_c, agreed = statistics.median(x[0] for x in cs), min(x[1] for x in cs)
                kib_p = statistics.median(w5_idle(r, W5_IDLE_CONNS, msg, False)[0] for _ in range(3))
            except Exception as e:  # noqa: BLE001
                print("  W5 idle %s: FAILED %s" % (r["name"], e), flush=True)
                continue
            idle[r["name"]] = (kib_c * 1024.0 / W5_IDLE_CONNS, kib_p * 1024.0 / W5_IDLE_CONNS, agreed)
            print("  W5 idle %-17s %d compressed: %.0f B/conn, plain: %.0f B/conn" % (
                r["name"], agreed, *idle[r["name"]][:2]), flush=True)
    return render_w5(a, rows, skipped, works, res, errors, wire, idle, time.time() - t0, zcpu, idle_rows)


def w5_zlib_cpu(msgs, settings):
    """CPU seconds per GiB of payload of zlib alone (Python's zlib, in this
    process) compressing the corpus once as the programs do (context takeover,
    Z_SYNC_FLUSH per message) and inflating it back: the floor under every row."""
    import zlib
    wbits, mem, level = settings
    c = zlib.compressobj(level, zlib.DEFLATED, -wbits, mem)
    t0 = time.process_time()
    outs = [c.compress(m) + c.flush(zlib.Z_SYNC_FLUSH) for m in msgs]
    t1 = time.process_time()
    d = zlib.decompressobj(-wbits)
    for o in outs:
        d.decompress(o)
    t2 = time.process_time()
    gib = sum(len(m) for m in msgs) / float(GiB)
    return (t1 - t0) / gib, (t2 - t1) / gib


def render_w5(a, rows, skipped, works, res, errors, wire, idle, secs, zcpu=None, idle_rows=None):
    L = ["", "W5 permessage-deflate (issue 11), %d rounds, scale %.3g (%s of payload per run), %.0f s:" % (
        a.rounds, a.scale, ", ".join("%s %.0f MiB" % (w[0], int(w[2] * a.scale) / MiB) for w in works), secs)]
    for w in works:
        L.append("  %s: %s" % (w[0], w[4]))
    L.append("  load average (1/5/15 min) at the start %s, at the end %s, on %d CPUs" % (
        "/".join("%.0f" % x for x in getattr(a, "w5_load0", (0, 0, 0))),
        "/".join("%.0f" % x for x in os.getloadavg()), os.cpu_count()))
    L.append("  corpus: build/bench/corpus-SIZE.bin, %d MiB of messages written by run.py (seeded), read by "
             "every program; text frames, one message per send" % (W5_CORPUS_BYTES // MiB))
    L.append("  x = ratio to lightws C in the same round (its runs right before and after; medians of "
             "per-round ratios). settings = window bits/memLevel/level, both directions")
    head = "%-17s | %-8s" % ("implementation", "settings")
    for w in works:
        head += " | %-18s" % (w[0] + " MB/s")
    for w in works:
        head += " | %-16s" % (w[0] + " CPU s/GiB")
    L.append("")
    L.append(head)
    L.append("-" * len(head))
    for r in rows:
        n = r["name"]
        row = "%-17s | %-8s" % (n, "%d/%d/%d" % r["settings"])
        for k in (0, 2):
            for w in works:
                runs = res[n][w[0]]
                if not runs:
                    cell = "FAILED" if errors.get((n, w[0])) else "-"
                else:
                    fig = med([x[k] for x in runs])
                    ratio = med([x[k + 1] for x in runs])
                    cell = ("%s x%.2f" % (fmt_num(fig), ratio)) if n != "lightws-c" else fmt_num(fig)
                    if len(runs) < a.rounds:
                        cell += " (%d)" % len(runs)
                row += (" | %-18s" if k == 0 else " | %-16s") % cell
        L.append(row)
    for n, why in skipped.items():
        L.append("%-17s | not run: %s" % (n, why))
    if zcpu:
        L.append("  zlib alone at 12/5/6 on the same messages (Python zlib in run.py, CPU): " + "; ".join(
            "%s compress %.1f + inflate %.1f = %.1f s/GiB" % (k, v[0], v[1], v[0] + v[1]) for k, v in zcpu.items()))
    if wire:
        L.append("")
        L.append("Bytes on the wire, client to server after the handshake (compressed payload + frame heads, "
                 "counted by a proxy in run.py; the close frame left out), one run of %d MiB per workload," % (
                     W5_WIRE_BYTES // MiB))
        L.append("against zlib at the same settings (Python zlib.compressobj(level, DEFLATED, -wbits, memLevel), "
                 "Z_SYNC_FLUSH per message, context takeover, tail stripped, one frame head per message):")
        for r in rows:
            cells = []
            for w in works:
                x = wire.get((r["name"], w[0]))
                if x:
                    cells.append("%s %d B = %.2f%% of payload, zlib %d B (payload %d): x%.4f" % (
                        w[0], x[0], 100.0 * x[0] / x[3], x[1], x[2], x[0] / float(x[1])))
                else:
                    cells.append("%s -" % w[0])
            L.append("  %-17s %s" % (r["name"], "; ".join(cells)))
    if idle:
        L.append("")
        L.append("Idle connections: %d per server, each with one message echoed (compressed when agreed), "
                 "server RSS growth / %d (after one warm-up connection), median of 3 servers:" % (
                     W5_IDLE_CONNS, W5_IDLE_CONNS))
        for r in idle_rows or rows:
            x = idle.get(r["name"])
            if x:
                L.append("  %-17s %-34s compressed %6.0f B/conn (%d agreed), plain %6.0f B/conn, "
                         "compression +%.0f B" % (r["name"], " ".join(
                             os.path.basename(c) for c in r["echo"][:3] if "{port}" not in c)[:34],
                             x[0], x[2], x[1], x[0] - x[1]))
        L.append("  lightws Lua: no multi-connection echo server of its own here (not measured)")
    L.append("")
    L.append("W5 targets:")

    def ratio_of(n, w, k):
        runs = res.get(n, {}).get(w[0]) or []
        return med([x[k] for x in runs])

    for other, want in W5_TARGETS.items():
        parts = []
        for w in works:
            t = ratio_of(other, w, 1)
            c = ratio_of(other, w, 3)
            if t is None:
                parts.append("%s -" % w[0])
                continue
            parts.append("%s throughput x%.2f %s, CPU x%.2f %s" % (
                w[0], 1.0 / t, "ok" if 1.0 / t >= want else "MISS", c, "ok" if c >= want else "MISS"))
        L.append("  lightws-c vs %-10s >= %.1f: %s" % (other, want, "; ".join(parts)))
    parts = []
    for w in works:
        x = wire.get(("lightws-c", w[0]))
        if x:
            q = x[0] / float(x[1])
            parts.append("%s x%.4f %s" % (w[0], q, "ok" if abs(q - 1.0) <= W5_RATIO_TOL or q < 1.0 else "MISS"))
    L.append("  lightws-c wire bytes within 2%% of zlib's: %s" % ("; ".join(parts) or "-"))
    ref = idle.get("websockets")
    for n, what in (("lightws-c", "lightws-echo"), ("lightws-c-lib", "the library alone")):
        if n not in idle:
            continue
        mine = idle[n][0]
        L.append("  %s idle compressed connection (%s) %.0f B <= websockets' %s (and <= 64 KiB): %s" % (
            n, what, mine, "%.0f B" % ref[0] if ref else "-",
            "ok" if mine <= 65536 and (not ref or mine <= ref[0]) else "MISS"))
    return L


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
