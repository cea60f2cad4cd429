"""Shared helpers of the benchmark harness: logging, machine facts, recall, Pareto fronts.

Nothing here imports numpy at module level, so run.py can import it before the virtual
environment exists.
"""

import json
import math
import os
import platform
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
TARGETS = (0.90, 0.95)

_LOG_FILE = None


def set_log_file(path):
    global _LOG_FILE
    _LOG_FILE = open(path, "a")


def log(msg):
    line = f"[{time.strftime('%H:%M:%S')}] {msg}"
    print(line, file=sys.stderr, flush=True)
    if _LOG_FILE:
        _LOG_FILE.write(line + "\n")
        _LOG_FILE.flush()


def run_cmd(cmd, cwd=None):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=cwd,
                              timeout=60).stdout.strip()
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return ""


def machine_info():
    lscpu = {}
    for line in run_cmd(["lscpu"]).splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            lscpu[key.strip()] = value.strip()
    mem = ""
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = line.split(":", 1)[1].strip()
    except OSError:
        pass
    flags = lscpu.get("Flags", "").split()
    simd = [f for f in flags if re.match(r"^(sse4_2|avx|avx2|fma|f16c|avx512\w*|amx\w*|"
                                         r"avx_vnni|vnni)$", f)]
    return {
        "cpu_model": lscpu.get("Model name", ""),
        "cpu_flags": lscpu.get("Flags", ""),
        "simd_flags": simd,
        "cpus": os.cpu_count(),
        "caches": {k: lscpu[k] for k in ("L1d cache", "L2 cache", "L3 cache") if k in lscpu},
        "memory": mem,
        "kernel": platform.release(),
        "os": run_cmd(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "compiler": (run_cmd(["c++", "--version"]).splitlines() or [""])[0],
    }


def machine_slug(info):
    """A short folder-name slug: CPU vendor/model words and the core count, e.g.
    'xeon-8488c-2c'."""
    model = info.get("cpu_model", "").lower()
    model = re.sub(r"\(r\)|\(tm\)|cpu|processor|@.*$|\d+(\.\d+)?\s*ghz", " ", model)
    words = [w for w in re.split(r"[^a-z0-9]+", model) if w and w not in
             ("intel", "amd", "core", "with", "radeon", "graphics", "gen", "platinum", "gold",
              "silver", "bronze", "th")]
    slug = "-".join(words[:3]) or "machine"
    return f"{slug}-{info.get('cpus') or 0}c"


def git_info():
    commit = run_cmd(["git", "-C", ROOT, "rev-parse", "HEAD"])
    dirty = run_cmd(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no", "--",
                     "engine", "kernels", "net", "storage", "schema", "bench/rosetta_driver.cc",
                     "bench/harness"])
    return {"commit": commit, "dirty_paths": dirty.splitlines()}


def rss_bytes(pid="self"):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def children_pids(pid):
    """Direct and indirect children of pid (from /proc/*/stat)."""
    parent = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = open(f"/proc/{entry}/stat").read()
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            parent[int(entry)] = ppid
        except (OSError, ValueError, IndexError):
            continue
    out, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out += kids
        frontier += kids
    return out


def dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


def recall_at_k(ids, gt, k):
    """Mean |ids[:k] & gt[:k]| / k over the queries (ids: list of lists or array)."""
    hits = 0
    for a, b in zip(ids, gt):
        hits += len(set(int(x) for x in list(a)[:k]) & set(int(x) for x in list(b)[:k]))
    return hits / (k * len(gt))


def percentile(values, p):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(p * len(v)))]


def pareto(points, key="qps"):
    """Points (dicts with recall and `key`) not dominated (another point with recall >= and a
    higher key), sorted by recall."""
    best = []
    for p in sorted((p for p in points if p.get(key)), key=lambda p: (-p["recall"], -p[key])):
        if not best or p[key] > best[-1][key]:
            best.append(p)
    return sorted(best, key=lambda p: p["recall"])


def at_target(frontier, target, key="qps"):
    """`key` at a recall target on a Pareto frontier: log-linear interpolation between the
    frontier points around the target (the first point at or above it when nothing is below)."""
    below = [p for p in frontier if p["recall"] < target]
    above = [p for p in frontier if p["recall"] >= target]
    if not above:
        return {"qps": None, "method": "not reached",
                "max_recall": max((p["recall"] for p in frontier), default=None)}
    hi = above[0]
    out = {"first_point": hi.get("point"), "first_point_recall": hi["recall"],
           "qps_first_at_or_above": hi[key]}
    if not below or hi["recall"] == below[-1]["recall"]:
        return {"qps": hi[key], "method": "first frontier point at or above", **out}
    lo = below[-1]
    f = (target - lo["recall"]) / (hi["recall"] - lo["recall"])
    q = math.exp(math.log(lo[key]) + f * (math.log(hi[key]) - math.log(lo[key])))
    return {"qps": q, "method": "log-linear interpolation on the Pareto front",
            "below_point": lo.get("point"), "below_recall": lo["recall"], **out}


def default_nlist(n):
    """Rosetta's default (docs/query-semantics.md): round(4 sqrt(n)), capped at n."""
    return max(1, min(n, int(round(4 * math.sqrt(n)))))


def default_m(d):
    """Rosetta's default: the divisor of d closest to d / 4 (ties: the smaller)."""
    divisors = [x for x in range(1, d + 1) if d % x == 0]
    return min(divisors, key=lambda x: (abs(x - d / 4), x))


def dumps(obj):
    return json.dumps(obj, indent=1, default=lambda o: repr(o))
