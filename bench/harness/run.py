#!/usr/bin/env python3
"""Rosetta vs other vector stores: one command, the same data, the same run, tables and plots.

    python3 bench/harness/run.py --quick              # < 15 min on 2 cores
    python3 bench/harness/run.py --scale large        # 1M x 128 and 200k x 768 synthetic
    python3 bench/harness/run.py --scale 500000       # vec128 500k, embed768 100k
    python3 bench/harness/run.py --smoke              # SIFT10K, Rosetta + faiss only, < 1 min;
                                                      # exits 1 if any figure is missing

Writes bench/results/<YYYY-MM-DD>-<machine>/ (--out-dir overrides): results.md (summary and
tables), results.json (every figure), <dataset>_<T>t.png / _1t.png (recall@10 vs QPS, log-scale
QPS, Pareto front per system) and run.log. See bench/harness/README.md for what is measured
and how.

The first run creates bench/.venv-harness and installs bench/harness/requirements.txt into it
(package by package when the whole set fails, so one peer that does not install is reported as
such and the others still run), then re-executes itself inside it.
"""

import argparse
import datetime
import importlib
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from common import (ROOT, TARGETS, at_target, default_m, default_nlist, dumps, git_info,  # noqa: E402
                    log, machine_info, machine_slug, pareto, rss_bytes, run_cmd, set_log_file)

VENV = os.environ.get("ROSETTA_HARNESS_VENV") or os.path.join(ROOT, "bench", ".venv-harness")
REQUIREMENTS = os.path.join(HERE, "requirements.txt")
INSTALL_STATUS = os.path.join(VENV, ".install-status.json")
SMOKE_PACKAGES = ("numpy", "faiss-cpu")
ALL_PEERS = ("faiss", "hnswlib", "usearch", "milvus-lite", "lancedb")


GIT_AT_START = None  # git_info() when main() started.


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small synthetic sets (default)")
    mode.add_argument("--smoke", action="store_true",
                      help="SIFT10K, Rosetta embedded + server and faiss only; exit 1 if any "
                           "figure is missing")
    mode.add_argument("--scale", default=None,
                      help="quick | medium | large, or N = vec128 of N rows and embed768 of N/5")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="T for every system (default: all cores)")
    p.add_argument("--datasets", default="",
                   help="comma-separated subset (sift10k, fashion-mnist, word2vec, flickr8k, "
                        "synthetic-vec128, synthetic-embed768)")
    p.add_argument("--systems", default="",
                   help="comma-separated subset of families: rosetta, faiss, hnswlib, usearch, "
                        "milvus-lite, lancedb")
    p.add_argument("--out-dir", default=None)
    p.add_argument("--build-dir", default=None,
                   help="where bench/rosetta_driver and tools/rosettad are (default: build, "
                        "then build-harness)")
    p.add_argument("--min-s", type=float, default=None,
                   help="seconds per timed measurement (default: quick 0.12, smoke 0.05, "
                        "medium/large 0.4)")
    p.add_argument("--budget-s", type=float, default=None,
                   help="seconds each system's recall/QPS sweep may take per data set, builds "
                        "excluded (default: quick 20, smoke 8, medium/large 240); a sweep cut "
                        "by it is marked in the results")
    p.add_argument("--no-crossmodal", action="store_true")
    p.add_argument("--crossmodal-timeout", type=float, default=None,
                   help="seconds the cross-modal section may take (default: quick 420, else "
                        "7200); past it the section is reported as timed out")
    p.add_argument("--rerender", metavar="RESULTS_JSON", default=None,
                   help="only rewrite results.md (and the summary in results.json) beside "
                        "RESULTS_JSON from it; no measurement")
    p.add_argument("--work-dir", default=None, help="scratch (default: a temporary directory)")
    p.add_argument("--data-dir", default=os.path.join(ROOT, "bench", ".data"),
                   help="cache of generated synthetic sets")
    return p.parse_args(argv)


# ---------------------------------------------------------------------------------------------
# Virtual environment.
# ---------------------------------------------------------------------------------------------

def requirement_lines():
    out = []
    for line in open(REQUIREMENTS):
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(line)
    return out


def in_venv():
    return os.path.realpath(sys.prefix) == os.path.realpath(VENV)


def ensure_venv(smoke):
    """Creates/updates the venv; returns nothing (the status lands in INSTALL_STATUS)."""
    python = os.path.join(VENV, "bin", "python")
    want = requirement_lines()
    if smoke:
        want = [r for r in want if r.split("==")[0].lower() in SMOKE_PACKAGES]
    status = {}
    if os.path.exists(INSTALL_STATUS):
        try:
            status = json.load(open(INSTALL_STATUS))
        except (OSError, ValueError):
            status = {}
    missing = [r for r in want if status.get(r, {}).get("ok") is not True]
    if os.path.exists(python) and not missing:
        return
    if not os.path.exists(python):
        print(f"[setup] creating {VENV}", file=sys.stderr)
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
    print(f"[setup] installing {' '.join(missing)}", file=sys.stderr)
    pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    r = subprocess.run(pip + missing, capture_output=True, text=True)
    if r.returncode == 0:
        for req in missing:
            status[req] = {"ok": True}
    else:
        for req in missing:  # one by one, so one failure does not hide the others
            rr = subprocess.run(pip + [req], capture_output=True, text=True)
            status[req] = {"ok": rr.returncode == 0}
            if rr.returncode != 0:
                err = (rr.stderr or rr.stdout).strip().splitlines()
                status[req]["error"] = " | ".join(err[-3:])[-600:]
                print(f"[setup] {req} failed to install: {status[req]['error']}",
                      file=sys.stderr)
    with open(INSTALL_STATUS, "w") as f:
        json.dump(status, f, indent=1)


def reexec_in_venv(args):
    ensure_venv(args.smoke)
    python = os.path.join(VENV, "bin", "python")
    env = dict(os.environ)
    # OpenMP threads (FAISS) spin while they wait by default; on a shared or loaded machine that
    # spinning steals the cores from the other thread and makes FAISS several times slower
    # (measured here: IVFPQ build 24.9 s -> 11.2 s, search 11k -> 30k QPS at load 6 on 2 cores),
    # so the harness runs FAISS with the passive policy unless the caller set one.
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env.setdefault("GRPC_VERBOSITY", "NONE")  # milvus-lite's client: keepalive chatter on stderr
    env.setdefault("LANCE_LOG", "error")
    env["ROSETTA_HARNESS_COMMAND"] = " ".join(shlex.quote(a) for a in ["python3"] + sys.argv)
    os.execve(python, [python, os.path.abspath(__file__)] + sys.argv[1:], env)


def install_status():
    try:
        return json.load(open(INSTALL_STATUS))
    except (OSError, ValueError):
        return {}


def package_version(name):
    try:
        from importlib import metadata
        return metadata.version(name)
    except Exception:  # noqa: BLE001
        return None


# ---------------------------------------------------------------------------------------------
# Binaries.
# ---------------------------------------------------------------------------------------------

def find_binaries(build_dir):
    dirs = [build_dir] if build_dir else [os.path.join(ROOT, "build"),
                                          os.path.join(ROOT, "build-harness")]
    driver = rosettad = None
    for d in dirs:
        dv = os.path.join(d, "bench", "rosetta_driver")
        rd = os.path.join(d, "tools", "rosettad")
        if driver is None and os.access(dv, os.X_OK):
            driver = dv
        if rosettad is None and os.access(rd, os.X_OK):
            rosettad = rd
    return driver, rosettad


def binary_info(path):
    if not path:
        return None
    return {"path": os.path.relpath(path, ROOT),
            "built_utc": datetime.datetime.fromtimestamp(
                os.path.getmtime(path), datetime.timezone.utc).isoformat(timespec="seconds")}


# ---------------------------------------------------------------------------------------------
# Sweeps.
# ---------------------------------------------------------------------------------------------

def clean_ids(ids, ds, qi, k):
    row = [int(x) for x in ids]
    if ds["exclude_self"]:
        row = [x for x in row if x != qi]
    return row[:k]


def score(ids, ds, k):
    rows = [clean_ids(r, ds, i, k) for i, r in enumerate(ids)]
    gt = ds["gt"]
    hits = 0
    for r, g in zip(rows, gt):
        hits += len(set(r) & set(int(x) for x in g[:k]))
    out = {"recall": hits / (k * len(rows))}
    if ds.get("pairs") is not None:
        pairs = ds["pairs"]
        for r in (1, 5, 10):
            out[f"pair_recall@{r}"] = sum(1 for i, row in enumerate(rows)
                                         if int(pairs[i]) in row[:r]) / len(rows)
    return out


def sweep(system, cfg, ds, thread_counts):
    """Measures every point of every row (a row stops at stop_recall, when recall stops
    improving, or when the system's time budget is spent); returns the points."""
    points = []
    t_start = time.perf_counter()
    for row in system.rows():
        prev = None
        for point in row:
            rec = {"point": point, "threads": {}}
            for i, th in enumerate(thread_counts):
                m = system.measure(point, th, cfg["min_s"], ids_needed=(i == 0))
                if i == 0:
                    rec.update(score(m.pop("ids"), ds, cfg["k"]))
                rec["threads"][str(th)] = m
            points.append(rec)
            recall = rec["recall"]
            t1 = rec["threads"][str(thread_counts[0])]
            log(f"      {system.name} {json.dumps(point)}: recall {recall:.3f}, "
                + ", ".join(f"{th}t {rec['threads'][str(th)]['qps']:,.0f} qps"
                            for th in thread_counts)
                + (f", p50 {t1['p50_us']:.0f} us" if t1.get("p50_us") else ""))
            if recall >= cfg["stop_recall"] or (prev is not None and recall - prev < 0.001):
                break
            prev = recall
            if time.perf_counter() - t_start > cfg["system_budget_s"]:
                log(f"      {system.name}: sweep budget {cfg['system_budget_s']} s spent")
                return points, True
    return points, False


def summarise(points, thread_counts):
    out = {}
    for th in thread_counts:
        pts = [{"recall": p["recall"], "qps": p["threads"][str(th)]["qps"], "point": p["point"]}
               for p in points if str(th) in p["threads"]]
        front = pareto(pts)
        out[str(th)] = {f"{t:.2f}": at_target(front, t) for t in TARGETS}
        out[str(th)]["pareto"] = [{"recall": p["recall"], "qps": p["qps"], "point": p["point"]}
                                  for p in front]
    return out


def run_system(system, cfg, ds, thread_counts, results):
    entry = {"family": system.family, "kind": system.kind, "how": system.how,
             "build": system.build, "memory": system.memory, "status": "ok"}
    try:
        t0 = time.perf_counter()
        pts, cut = sweep(system, cfg, ds, thread_counts)
        entry["points"] = pts
        entry["sweep_cut_by_budget"] = cut
        entry["sweep_s"] = time.perf_counter() - t0
        entry["thread_counts"] = thread_counts
        entry["at_recall"] = summarise(pts, thread_counts)
    except Exception as e:  # noqa: BLE001 - a failing system is reported, the run goes on
        entry["status"] = "error"
        entry["error"] = f"search: {type(e).__name__}: {e}"
        entry["traceback"] = traceback.format_exc()[-3000:]
        log(f"    {system.name} FAILED: {entry['error']}")
    results[system.name] = entry


def failed(results, name, family, stage, exc):
    results[name] = {"family": family, "status": "error",
                     "error": f"{stage}: {type(exc).__name__}: {exc}"[:1500],
                     "traceback": traceback.format_exc()[-3000:]}
    log(f"    {name} FAILED ({stage}): {exc}")


def _ok(s):
    return bool(s) and s.get("status") == "ok"


def operating_point(s, target):
    """The first point of the 1-thread Pareto front at or above target (else the best)."""
    try:
        front = s["at_recall"]["1"]["pareto"]
    except (KeyError, TypeError):
        return None
    above = [p for p in front if p["recall"] >= target]
    p = above[0] if above else (front[-1] if front else None)
    return None if p is None else p["point"]


def run_dataset(ds, cfg, mods):
    import numpy as np
    T = cfg["threads"]
    k = cfg["k"]
    n, d = ds["n"], ds["d"]
    nlist, m = default_nlist(n), default_m(d)
    k_search = k + 1 if ds["exclude_self"] else k
    work = os.path.join(cfg["work"], ds["name"])
    os.makedirs(work, exist_ok=True)
    res = {"dataset": {key: v for key, v in ds.items()
                       if key not in ("base", "queries", "gt", "pairs", "files")},
           "params": {"n": n, "d": d, "nq": ds["nq"], "metric": ds["metric"], "k": k,
                      "k_searched": k_search, "threads": T, "nlist": nlist, "m": m,
                      "nprobes": cfg["nprobes"], "refines": cfg["refines"],
                      "min_s": cfg["min_s"]},
           "load_average": {"start": os.getloadavg()}, "systems": {}}
    log(f"{ds['name']}: n={n} d={d} nq={ds['nq']} metric={ds['metric']} nlist={nlist} m={m}")
    systems = res["systems"]
    want = cfg["families"]
    t_ds = time.perf_counter()

    # --- Rosetta: embedded, then the server on the same database. ---
    if "rosetta" in want:
        import rosetta_systems
        variants = ["flat", "ivfpq8", "ivfpq4"]
        # Embedded only: exact search in batches of queries per request (the peers' batch calls).
        emb_variants = variants + ["flatbatch"]
        dep = None
        if not cfg["driver"] or not cfg["rosettad"]:
            err = RuntimeError(f"rosetta_driver ({cfg['driver']}) or rosettad "
                               f"({cfg['rosettad']}) not built")
            for mode, vs in (("embedded", emb_variants), ("server", variants)):
                for v in vs:
                    failed(systems, f"rosetta-{mode}-{v}", "rosetta", "binaries", err)
        else:
            try:
                dep = rosetta_systems.RosettaDeployment(cfg["driver"], cfg["rosettad"], ds, work, T,
                                                nlist, m, k_search, cfg["nprobes"],
                                                cfg["refines"])
                log("  rosetta embedded: import + build")
                dep.open_embedded()
                for s in dep.embedded_systems(emb_variants):
                    log(f"  {s.name}")
                    run_system(s, cfg, ds, [1, T] if T != 1 else [1], systems)
                dep.close_embedded()
            except Exception as e:  # noqa: BLE001
                for v in emb_variants:
                    if f"rosetta-embedded-{v}" not in systems:
                        failed(systems, f"rosetta-embedded-{v}", "rosetta", "embedded", e)
            if dep is not None and "embedded" in dep.info:
                try:
                    log("  rosetta server: rosettad on the same database")
                    dep.open_server()
                    for s in dep.server_systems(variants):
                        emb = systems.get(s.name.replace("server", "embedded"))
                        if cfg["server_pareto_only"] and s.variant != "flat" and _ok(emb):
                            # Only the points on the embedded run's Pareto fronts (1 and T
                            # threads): the server's cost is measured where it matters, in
                            # half the time.
                            pts = {}
                            for th, at in emb["at_recall"].items():
                                for p in at["pareto"]:
                                    pts[json.dumps(p["point"], sort_keys=True)] = p
                            s.only_points = [p["point"] for p in
                                             sorted(pts.values(), key=lambda p: p["recall"])]
                            s.how += ("; swept over the embedded run's Pareto points only "
                                      "(quick mode)")
                        log(f"  {s.name}")
                        run_system(s, cfg, ds, [1, T] if T != 1 else [1], systems)
                    rss = dep.server_rss()
                    for v in variants:
                        systems[f"rosetta-server-{v}"].setdefault("memory", {})["rss_bytes"] = rss
                    # Server overhead: alternating rounds at each variant's operating point.
                    pts = []
                    for v in variants:
                        emb = systems.get(f"rosetta-embedded-{v}")
                        if not _ok(emb):
                            continue
                        op = operating_point(emb, 0.95)
                        if op is not None:
                            pts.append((v, "c4" if v == "ivfpq4" else "c8", op))
                    res["server_overhead"] = dep.overhead_rounds(pts, cfg["overhead_rounds"],
                                                                 cfg["overhead_min_s"])
                except Exception as e:  # noqa: BLE001
                    for v in variants:
                        if f"rosetta-server-{v}" not in systems:
                            failed(systems, f"rosetta-server-{v}", "rosetta", "server", e)
            elif dep is not None:
                for v in variants:
                    failed(systems, f"rosetta-server-{v}", "rosetta", "server",
                           RuntimeError("the embedded build failed, nothing to serve"))
            if dep is not None:
                dep.cleanup()
        res["rosetta"] = dep.info if dep is not None else None

    # --- Peers. ---
    import peers
    base = np.ascontiguousarray(ds["base"], dtype=np.float32)
    pctx = {"queries": np.ascontiguousarray(ds["queries"], dtype=np.float32),
            "k_search": k_search, "nprobes": cfg["nprobes"], "refines": cfg["refines"],
            "latency_queries": cfg["latency_queries"], "slow_nprobes": cfg.get("slow_nprobes"),
            "slow_efs": cfg.get("slow_efs"), "slow_batch": cfg.get("slow_batch"),
            "slow_latency_queries": cfg.get("slow_latency_queries")}
    metric = ds["metric"]
    thread_counts = sorted({1, T})

    def peer(name, family, make, build):
        if family not in want:
            return
        if mods.get(family) is None or isinstance(mods.get(family), Exception):
            failed(systems, name, family, "import", mods.get(family) or
                   RuntimeError("not installed"))
            return
        log(f"  {name}: build")
        try:
            s = make()
            build(s)
        except Exception as e:  # noqa: BLE001
            failed(systems, name, family, "build", e)
            return
        try:
            run_system(s, cfg, ds, s.thread_counts(T), systems)
        finally:
            try:
                s.close()
            except Exception:  # noqa: BLE001
                pass

    faiss = mods.get("faiss")
    peer("faiss-flat", "faiss", lambda: peers.FaissPeer("faiss-flat", pctx, faiss, "flat"),
         lambda s: s.do_build(base, metric, nlist, m, T))
    peer("faiss-ivfpq8-refine", "faiss",
         lambda: peers.FaissPeer("faiss-ivfpq8-refine", pctx, faiss, "ivfpq8"),
         lambda s: s.do_build(base, metric, nlist, m, T))
    peer("faiss-ivfpqfs4-refine", "faiss",
         lambda: peers.FaissPeer("faiss-ivfpqfs4-refine", pctx, faiss, "fs4"),
         lambda s: s.do_build(base, metric, nlist, m, T))
    peer("hnswlib-hnsw-M16", "hnswlib",
         lambda: peers.HnswlibPeer("hnswlib-hnsw-M16", pctx, mods.get("hnswlib")),
         lambda s: s.do_build(base, metric, T))
    peer("usearch-hnsw-M16", "usearch",
         lambda: peers.UsearchPeer("usearch-hnsw-M16", pctx, mods.get("usearch")),
         lambda s: s.do_build(base, metric, T))
    for it in cfg["milvus_indexes"]:
        name = f"milvus-lite-{it.lower().replace('_', '-')}"
        peer(name, "milvus-lite", lambda it=it, name=name: peers.MilvusPeer(name, pctx, it),
             lambda s: s.do_build(base, metric, nlist, work))
    peer("lancedb-ivf-pq", "lancedb", lambda: peers.LancePeer("lancedb-ivf-pq", pctx),
         lambda s: s.do_build(base, metric, nlist, m, work))
    for s in systems.values():  # the order of the tables: as run
        s.setdefault("thread_counts", thread_counts)
    res["seconds"] = time.perf_counter() - t_ds
    res["load_average"]["end"] = os.getloadavg()
    shutil.rmtree(work, ignore_errors=True)
    return res


# ---------------------------------------------------------------------------------------------
# Main.
# ---------------------------------------------------------------------------------------------

def import_peers(families):
    mods = {}
    names = {"faiss": "faiss", "hnswlib": "hnswlib", "usearch": "usearch.index",
             "milvus-lite": "pymilvus", "lancedb": "lancedb"}
    for fam in families:
        if fam == "rosetta":
            continue
        try:
            if fam == "milvus-lite":
                importlib.import_module("milvus_lite")
            mods[fam] = importlib.import_module(names[fam])
        except Exception as e:  # noqa: BLE001 - reported in the tables
            mods[fam] = e
    return mods


def versions(mods):
    v = {"python": platform.python_version()}
    for pkg in ("numpy", "faiss-cpu", "hnswlib", "usearch", "pymilvus", "milvus-lite", "lancedb",
                "pylance", "pyarrow", "matplotlib"):
        v[pkg] = package_version(pkg)
    faiss = mods.get("faiss")
    if faiss is not None and not isinstance(faiss, Exception):
        try:
            v["faiss_compile_options"] = faiss.get_compile_options().strip()
        except Exception:  # noqa: BLE001
            pass
    return v


def config_for(args):
    T = max(1, args.threads)
    if args.smoke:
        scale = "smoke"
    elif args.scale:
        scale = args.scale
    else:
        scale = "quick"
    cfg = {"threads": T, "k": 10, "scale": scale, "stop_recall": 0.995,
           "latency_queries": 100, "milvus_indexes": ["HNSW", "IVF_FLAT"],
           "server_pareto_only": False, "overhead_rounds": 5, "overhead_min_s": 0.5}
    if scale == "smoke":
        cfg.update(min_s=0.05, nprobes=[2, 8, 32], refines=[40], system_budget_s=8,
                   overhead_rounds=2, overhead_min_s=0.1,
                   latency_queries=20, families=["rosetta", "faiss"], datasets=["sift10k"])
    elif scale == "quick":
        cfg.update(min_s=0.12, nprobes=[1, 2, 4, 8, 16, 32, 64, 128], refines=[20, 100],
                   overhead_rounds=3, overhead_min_s=0.3,
                   system_budget_s=20, stop_recall=0.99, latency_queries=50,
                   server_pareto_only=True,
                   # milvus-lite and lancedb answer ~1k queries/s through Python: a coarser grid
                   slow_nprobes=[2, 8, 32, 128], slow_efs=[10, 24, 64, 192], slow_batch=100,
                   slow_latency_queries=20)
    else:
        cfg.update(min_s=0.4, nprobes=[1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
                   refines=[20, 40, 100, 200], system_budget_s=240,
                   milvus_indexes=["HNSW", "IVF_FLAT", "IVF_SQ8"])
    if args.min_s:
        cfg["min_s"] = args.min_s
    if args.budget_s:
        cfg["system_budget_s"] = args.budget_s
    if args.systems:
        cfg["families"] = [s for s in args.systems.split(",") if s]
    cfg.setdefault("families", ["rosetta"] + list(ALL_PEERS))
    if args.datasets:
        cfg["datasets"] = [s for s in args.datasets.split(",") if s]
    return cfg


def synthetic_scale(scale):
    import hdata as datasets
    if scale in datasets.SCALES:
        return scale
    n = int(scale)
    datasets.SCALES["custom"] = (n, max(1000, n // 5), 1000 if n >= 500_000 else 500)
    return "custom"


def main():
    args = parse_args()
    if args.rerender:
        import report as rep
        path = os.path.abspath(args.rerender)
        with open(path) as f:
            report = json.load(f)
        report["summary"] = rep.summary(report)
        with open(path, "w") as f:
            f.write(dumps(report) + "\n")
        with open(os.path.join(os.path.dirname(path), "results.md"), "w") as f:
            f.write(rep.markdown(report))
        print(f"rewrote {os.path.join(os.path.dirname(path), 'results.md')}")
        return
    if not in_venv():
        reexec_in_venv(args)  # does not return
    cfg = config_for(args)
    global GIT_AT_START
    GIT_AT_START = git_info()
    started = datetime.datetime.now(datetime.timezone.utc)
    info = machine_info()
    if args.out_dir:
        out_dir = args.out_dir
    elif args.smoke:  # a check, not a result to keep: outside the source tree
        out_dir = tempfile.mkdtemp(prefix="rosetta-harness-smoke-")
    else:
        out_dir = os.path.join(ROOT, "bench", "results",
                               started.strftime("%Y-%m-%d") + "-" + machine_slug(info))
    os.makedirs(out_dir, exist_ok=True)
    set_log_file(os.path.join(out_dir, "run.log"))
    log(f"writing {out_dir}; threads T = {cfg['threads']}; scale {cfg['scale']}")
    work = args.work_dir or tempfile.mkdtemp(prefix="rosetta-harness-")
    os.makedirs(work, exist_ok=True)
    cfg["work"] = work
    cfg["driver"], cfg["rosettad"] = find_binaries(args.build_dir)
    if "rosetta" in cfg["families"] and not cfg["driver"]:
        log("rosetta_driver not found in build/ or build-harness/: build it with "
            "`cmake --build build --target rosetta_driver rosettad`")

    import numpy as np
    import hdata as datasets
    mods = import_peers(cfg["families"])
    for fam, mod in mods.items():
        if isinstance(mod, Exception):
            log(f"peer {fam} does not import: {mod}")
    load_before = os.getloadavg()

    only = set(cfg["datasets"]) if cfg.get("datasets") else None
    sets, skipped = datasets.shared_sets(np, os.path.join(work, "data"), only)
    if cfg["scale"] != "smoke":
        faiss = mods.get("faiss")
        if faiss is None:
            faiss = import_peers(["faiss"])["faiss"]
        if isinstance(faiss, Exception):
            skipped.append(("synthetic", "faiss (needed for exact ground truth) does not import"))
        else:
            sets += datasets.synthetic_sets(np, faiss, synthetic_scale(cfg["scale"]),
                                            args.data_dir, only)
    for name, why in skipped:
        log(f"skipping {name}: {why}")

    results = []
    for ds in sets:
        results.append(run_dataset(ds, cfg, mods))
        write_all(out_dir, cfg, args, info, started, load_before, mods, results, skipped, None,
                  partial=True)

    cross = None
    if not args.smoke and not args.no_crossmodal:
        limit = args.crossmodal_timeout
        if limit is None:
            limit = 420.0 if cfg["scale"] == "quick" else 7200.0
        cross = run_crossmodal(cfg, out_dir, work, limit)
    report = write_all(out_dir, cfg, args, info, started, load_before, mods, results, skipped,
                       cross, partial=False)
    if not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)
    log(f"written {out_dir}")
    if args.smoke:
        import report as rep
        missing = rep.missing_figures(report)
        if missing:
            print("smoke: missing figures:\n  " + "\n  ".join(missing), file=sys.stderr)
            sys.exit(1)
        print(f"smoke: every figure present ({len(report['datasets'])} data set(s), "
              f"{sum(len(r['systems']) for r in report['datasets'])} systems)")
        if not args.out_dir:  # a passing check leaves nothing behind (a failing one its files)
            shutil.rmtree(out_dir, ignore_errors=True)


def run_crossmodal(cfg, out_dir, work, timeout_s):
    """crossmodal.run(ctx) in a thread, so that a section that overruns `timeout_s` is reported
    (and its processes, children of this one, are stopped) instead of stalling the run."""
    import threading
    log(f"cross-modal section (bench/harness/crossmodal.py), time limit {timeout_s:.0f} s")
    out = {"status": "ok"}
    t0 = time.perf_counter()
    try:
        import crossmodal
        ctx = {"driver": cfg["driver"], "rosettad": cfg["rosettad"],
               "data_dir": os.path.abspath(os.path.join(ROOT, "..", "shared", "data")),
               "work_dir": os.path.join(work, "crossmodal"), "out_dir": out_dir,
               "threads": cfg["threads"], "quick": cfg["scale"] in ("quick", "smoke"),
               "python": sys.executable, "log": log, "time_limit_s": timeout_s}
        os.makedirs(ctx["work_dir"], exist_ok=True)
        box = {}

        def target():
            try:
                box["result"] = crossmodal.run(ctx)
            except BaseException as e:  # noqa: BLE001 - re-raised below, in this thread
                box["error"] = e
                box["traceback"] = traceback.format_exc()
        th = threading.Thread(target=target, daemon=True)
        th.start()
        th.join(timeout_s)
        if th.is_alive():
            import signal
            from common import children_pids
            for pid in children_pids(os.getpid()):
                try:
                    os.kill(pid, signal.SIGTERM)
                except OSError:
                    pass
            th.join(30)
            raise TimeoutError(f"crossmodal.run did not return within {timeout_s:.0f} s "
                               "(its processes were stopped)")
        if "error" in box:
            out = {"status": "error", "error": f"{type(box['error']).__name__}: {box['error']}",
                   "traceback": box["traceback"][-3000:]}
            log(f"cross-modal section failed: {out['error']}")
            out["seconds"] = time.perf_counter() - t0
            return out
        result = box["result"]
        out["result"] = result
        try:
            out["markdown"] = list(crossmodal.render_markdown(result))
        except Exception as e:  # noqa: BLE001
            out["markdown_error"] = f"{type(e).__name__}: {e}"
            out["traceback"] = traceback.format_exc()[-3000:]
    except Exception as e:  # noqa: BLE001 - reported in results.md, the run goes on
        out = {"status": "error", "error": f"{type(e).__name__}: {e}",
               "traceback": traceback.format_exc()[-3000:]}
        log(f"cross-modal section failed: {out['error']}")
    out["seconds"] = time.perf_counter() - t0
    return out


def write_all(out_dir, cfg, args, info, started, load_before, mods, results, skipped, cross,
              partial):
    import report as rep
    import plots
    inst = install_status()
    peer_status = {}
    for fam, mod in mods.items():
        peer_status[fam] = ({"ok": False, "error": f"{type(mod).__name__}: {mod}"}
                            if isinstance(mod, Exception) else {"ok": True})
    report = {
        "title": "Rosetta vs other vector stores",
        "date_utc": started.isoformat(timespec="seconds"),
        "finished_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "partial": partial,
        "command": os.environ.get("ROSETTA_HARNESS_COMMAND", " ".join(sys.argv)),
        # The tree the run started from (the binaries were built from it): HEAD can move
        # while a long run goes on.
        "git": GIT_AT_START or git_info(),
        "machine": info,
        "load_average": {"before": load_before, "now": os.getloadavg()},
        "uptime": run_cmd(["uptime"]),
        "environment": {k: os.environ.get(k) for k in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS",
                                                       "OPENBLAS_NUM_THREADS")},
        "versions": versions(mods),
        "install": inst,
        "peers_import": peer_status,
        "binaries": {"rosetta_driver": binary_info(cfg["driver"]),
                     "rosettad": binary_info(cfg["rosettad"])},
        "config": {k: v for k, v in cfg.items() if k not in ("work",)},
        "skipped_datasets": [{"name": n, "why": w} for n, w in skipped],
        "datasets": results,
        "crossmodal": cross,
    }
    report["summary"] = rep.summary(report)
    plots_made = {}
    if not partial and cfg["scale"] != "smoke":  # smoke installs no matplotlib
        for res in results:
            for th in sorted({1, cfg["threads"]}):
                try:
                    name = plots.plot_dataset(res, th, out_dir)
                    if name:
                        plots_made.setdefault(res["dataset"]["name"], []).append(name)
                except Exception as e:  # noqa: BLE001
                    log(f"plot {res['dataset']['name']} {th}t failed: {e}")
    report["plots"] = plots_made
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        f.write(dumps(report) + "\n")
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(rep.markdown(report))
    return report


if __name__ == "__main__":
    main()
