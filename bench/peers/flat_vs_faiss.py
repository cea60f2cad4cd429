#!/usr/bin/env python3
"""Side-by-side exact search: Rosetta FlatSearch vs faiss-cpu IndexFlatIP, in one run.

    python3 bench/peers/flat_vs_faiss.py [--build-dir build] [--rounds 7] [--out-dir DIR]

What it does, in order:
  1. Creates bench/.venv (gitignored) with the pinned bench/peers/requirements.txt on first use, and
     re-runs itself inside it with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed from the
     environment (when set they pin OpenBLAS, the BLAS that faiss-cpu's search uses, to a slower
     kernel); what was removed is recorded in the results.
  2. Generates the data with a fixed seed: nb base and nq query vectors of dimension d, clustered
     like real embeddings (points around `clusters` Gaussian centres) and L2-normalised, saved as
     .npy under --data-dir (reused when the parameters match).
  3. Starts build/bench/flat_search_bench in serve mode on the same files, builds a FAISS
     IndexFlatIP, and times both at batch 1 (queries searched one at a time) and batch B (one
     search of B queries), k results, with the same thread count (faiss.omp_set_num_threads).
     One warm-up round per side and batch is excluded. Rounds alternate which side goes first, so
     that slow drifts in machine load hit both alike; QPS is reported per round, as median and
     best.
  4. Checks that both return the same neighbours (top-k agreement), and writes results.md and
     results.json (machine, date, git commit, command, versions, every round) to --out-dir
     (default bench/results/<UTC date>-flat-vs-faiss/).

The machine may be shared: the load average before and after is recorded, the best round is the
least disturbed estimate of each side's speed, and the CPU time per query (process CPU time, all
threads, OpenMP spinning included) shows the work each side does independently of how much of the
machine it got.
"""

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
VENV = os.path.join(ROOT, "bench", ".venv")
REQUIREMENTS = os.path.join(ROOT, "bench", "peers", "requirements.txt")
UNSET_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--build-dir", default=os.path.join(ROOT, "build"),
                   help="CMake build dir holding bench/flat_search_bench (default: build)")
    p.add_argument("--nb", type=int, default=100_000)
    p.add_argument("--d", type=int, default=768)
    p.add_argument("--nq", type=int, default=256, help="query vectors generated")
    p.add_argument("--clusters", type=int, default=100)
    p.add_argument("--seed", type=int, default=20260101)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=256, help="the large batch size")
    p.add_argument("--batch1-queries", type=int, default=64,
                   help="queries per batch-1 round (searched one at a time)")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--faiss-reference-threads", type=int, default=1,
                   help="also time FAISS with this many threads, for reference (0: skip)")
    p.add_argument("--data-dir", default="/tmp/rosetta-flat-vs-faiss")
    p.add_argument("--out-dir", default=None)
    return p.parse_args()


def in_venv():
    return os.path.realpath(sys.prefix) == os.path.realpath(VENV)


def reexec_in_venv():
    """Creates the venv if needed and re-runs this script inside it with a cleaned environment."""
    python = os.path.join(VENV, "bin", "python")
    stamp = os.path.join(VENV, ".requirements.txt")
    want = open(REQUIREMENTS).read()
    if not os.path.exists(python) or not os.path.exists(stamp) or open(stamp).read() != want:
        print(f"[setup] creating {VENV} with {REQUIREMENTS}", file=sys.stderr)
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
        subprocess.check_call([python, "-m", "pip", "install", "--quiet", "-r", REQUIREMENTS])
        with open(stamp, "w") as f:
            f.write(want)
    env = dict(os.environ)
    removed = {v: env.pop(v) for v in UNSET_VARS if v in env}
    env["ROSETTA_BENCH_UNSET"] = json.dumps(removed)
    env["ROSETTA_BENCH_COMMAND"] = " ".join(shlex.quote(a) for a in ["python3"] + sys.argv)
    os.execve(python, [python, os.path.abspath(__file__)] + sys.argv[1:], env)


def generate(np, args):
    """Base and query vectors: Gaussian clusters, L2-normalised (like text/image embeddings)."""
    os.makedirs(args.data_dir, exist_ok=True)
    tag = f"nb{args.nb}_d{args.d}_nq{args.nq}_c{args.clusters}_seed{args.seed}"
    base_path = os.path.join(args.data_dir, f"base_{tag}.npy")
    query_path = os.path.join(args.data_dir, f"queries_{tag}.npy")
    if os.path.exists(base_path) and os.path.exists(query_path):
        return base_path, query_path
    rng = np.random.default_rng(args.seed)
    centres = rng.standard_normal((args.clusters, args.d), dtype=np.float32)

    def draw(n):
        x = centres[rng.integers(0, args.clusters, n)]
        x += 0.5 * rng.standard_normal((n, args.d), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return np.ascontiguousarray(x, dtype=np.float32)

    np.save(base_path + ".tmp.npy", draw(args.nb))
    np.save(query_path + ".tmp.npy", draw(args.nq))
    os.replace(base_path + ".tmp.npy", base_path)
    os.replace(query_path + ".tmp.npy", query_path)
    return base_path, query_path


class Ours:
    """flat_search_bench in serve mode."""

    def __init__(self, driver, base_path, query_path, k, threads):
        self.proc = subprocess.Popen(
            [driver, "--serve", "--base", base_path, "--queries", query_path, "--k", str(k),
             "--threads", str(threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.info = self._read()
        if not self.info.get("ready"):
            raise RuntimeError(f"driver failed to start: {self.info}")

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("driver exited unexpectedly")
        return json.loads(line)

    def _cmd(self, text):
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        reply = self._read()
        if "error" in reply:
            raise RuntimeError(f"driver: {reply['error']}")
        return reply

    def time(self, batch, n):
        """(wall seconds, CPU seconds of the driver process) for one round."""
        reply = self._cmd(f"time {batch} {n} 1")
        return reply["seconds"][0], reply["cpu_seconds"][0]

    def ids(self, np, batch, n, k, path):
        self._cmd(f"dump {batch} {n} {path}")
        return np.fromfile(path, dtype=np.int64).reshape(n, k)

    def close(self):
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        self.proc.wait(timeout=60)


def faiss_time(faiss, index, queries, batch, n, k, threads):
    """(wall seconds, CPU seconds of this process, OpenMP threads included) for one round."""
    faiss.omp_set_num_threads(threads)
    cpu = time.process_time()
    start = time.perf_counter()
    for i in range(0, n, batch):
        index.search(queries[i:i + batch], k)
    return time.perf_counter() - start, time.process_time() - cpu


def run_cmd(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def machine_info(build_dir):
    lscpu = {}
    for line in run_cmd(["lscpu"]).splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            lscpu[key.strip()] = value.strip()
    cache = {}
    try:
        for line in open(os.path.join(build_dir, "CMakeCache.txt")):
            for key in ("CMAKE_BUILD_TYPE:", "CMAKE_CXX_COMPILER:"):
                if line.startswith(key):
                    cache[key.rstrip(":")] = line.split("=", 1)[1].strip()
    except OSError:
        pass
    compiler = cache.get("CMAKE_CXX_COMPILER", "c++")
    return {
        "cpu_model": lscpu.get("Model name", ""),
        "cpu_flags": lscpu.get("Flags", ""),
        "cpus": os.cpu_count(),
        "caches": {k: lscpu[k] for k in ("L1d cache", "L2 cache", "L3 cache") if k in lscpu},
        "kernel": platform.release(),
        "build_type": cache.get("CMAKE_BUILD_TYPE", ""),
        "compiler": run_cmd([compiler, "--version"]).splitlines()[0:1],
    }


def summary(rounds, queries):
    """rounds: [(wall seconds, cpu seconds)] per round."""
    qps = [queries / wall for wall, _ in rounds]
    cpu_ms = [1e3 * cpu / queries for _, cpu in rounds]
    return {"qps_median": statistics.median(qps), "qps_best": max(qps),
            "cpu_ms_per_query_median": statistics.median(cpu_ms),
            "cpu_ms_per_query_best": min(cpu_ms),
            "qps_rounds": qps, "cpu_ms_per_query_rounds": cpu_ms,
            "seconds_rounds": [wall for wall, _ in rounds]}


def main():
    args = parse_args()
    if not in_venv():
        reexec_in_venv()  # does not return
    import numpy as np
    import faiss

    driver = os.path.join(args.build_dir, "bench", "flat_search_bench")
    if not os.path.exists(driver):
        sys.exit(f"{driver} not found: build it first, e.g.\n"
                 f"  cmake -S {ROOT} -B {args.build_dir} -DCMAKE_BUILD_TYPE=RelWithDebInfo && "
                 f"cmake --build {args.build_dir} --target flat_search_bench")
    if args.nq < args.batch or args.nq < args.batch1_queries:
        sys.exit("--nq must be at least --batch and --batch1-queries")

    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = os.getloadavg()
    print(f"[data] generating/reusing nb={args.nb} d={args.d} seed={args.seed}", file=sys.stderr)
    base_path, query_path = generate(np, args)
    base = np.load(base_path)
    queries = np.load(query_path)

    ours = Ours(driver, base_path, query_path, args.k, args.threads)
    index = faiss.IndexFlatIP(args.d)
    index.add(base)

    configs = [("ours", args.threads), ("faiss", args.threads)]
    if args.faiss_reference_threads and args.faiss_reference_threads != args.threads:
        configs.append(("faiss", args.faiss_reference_threads))
    batches = [(1, args.batch1_queries), (args.batch, args.batch)]

    def measure(side, threads, batch, n):
        if side == "ours":
            return ours.time(batch, n)
        return faiss_time(faiss, index, queries, batch, n, args.k, threads)

    # Warm-up (excluded): one round per configuration and batch.
    for side, threads in configs:
        for batch, n in batches:
            measure(side, threads, batch, n)

    times = {(side, t, b): [] for side, t in configs for b, _ in batches}
    for r in range(args.rounds):
        order = configs if r % 2 == 0 else list(reversed(configs))
        for batch, n in batches:
            for side, threads in order:
                times[(side, threads, batch)].append(measure(side, threads, batch, n))
        print(f"[round {r + 1}/{args.rounds}] done", file=sys.stderr)

    # Agreement of the returned neighbours (FAISS and ours both exact; ties may order differently).
    ids_path = os.path.join(args.data_dir, "ours_ids.bin")
    agreement = {}
    faiss.omp_set_num_threads(args.threads)
    for batch, n in batches:
        ours_ids = ours.ids(np, batch, n, args.k, ids_path)
        _, faiss_ids = index.search(queries[:n], args.k)
        same_sets = sum(set(a) == set(b) for a, b in zip(ours_ids.tolist(), faiss_ids.tolist()))
        overlap = np.mean([len(set(a) & set(b)) / args.k
                           for a, b in zip(ours_ids.tolist(), faiss_ids.tolist())])
        agreement[f"batch{batch}"] = {"queries": n, "identical_topk_sets": int(same_sets),
                                      "mean_topk_overlap": float(overlap)}
    ours.close()
    load_after = os.getloadavg()

    results = []
    for (side, threads, batch), secs in times.items():
        n = dict(batches)[batch]
        results.append({"engine": side, "threads": threads, "batch": batch, "queries_per_round": n,
                        **summary(secs, n)})

    def get(side, threads, batch):
        return next(x for x in results
                    if x["engine"] == side and x["threads"] == threads and x["batch"] == batch)

    ratios = {}
    for batch, _ in batches:
        o, f = get("ours", args.threads, batch), get("faiss", args.threads, batch)
        # Also against FAISS's faster configuration (on a loaded machine, OpenMP with as many
        # threads as cores can be slower than one thread).
        fb = max((x for x in results if x["engine"] == "faiss" and x["batch"] == batch),
                 key=lambda x: x["qps_median"])
        ratios[f"batch{batch}"] = {"median": o["qps_median"] / f["qps_median"],
                                   "best": o["qps_best"] / f["qps_best"],
                                   "median_vs_fastest_faiss": o["qps_median"] / fb["qps_median"],
                                   "fastest_faiss_threads": fb["threads"]}

    commit = run_cmd(["git", "-C", ROOT, "rev-parse", "HEAD"])
    dirty = bool(run_cmd(["git", "-C", ROOT, "status", "--porcelain", "--", "kernels", "bench"]))
    report = {
        "benchmark": "exact k-NN, inner product: Rosetta FlatSearch vs faiss-cpu IndexFlatIP",
        "date_utc": started.isoformat(timespec="seconds"),
        "git_commit": commit + (" (kernels/ or bench/ modified)" if dirty else ""),
        "command": os.environ.get("ROSETTA_BENCH_COMMAND", " ".join(sys.argv)),
        "env_removed": json.loads(os.environ.get("ROSETTA_BENCH_UNSET", "{}")),
        "env_removed_note": "OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are removed for this run only "
                            "(listed with their values when they were set)",
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
        "machine": machine_info(args.build_dir),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "versions": {"python": platform.python_version(), "numpy": np.__version__,
                     "faiss": faiss.__version__,
                     "faiss_compile_options": faiss.get_compile_options().strip()},
        "ours": {"simd": ours.info["simd"], "driver": os.path.relpath(driver, ROOT)},
        "data": {"nb": args.nb, "d": args.d, "nq": args.nq, "clusters": args.clusters,
                 "seed": args.seed, "normalised": True, "dtype": "float32"},
        "params": {"k": args.k, "threads": args.threads, "rounds": args.rounds,
                   "warmup_rounds_excluded": 1, "batch1_queries_per_round": args.batch1_queries,
                   "large_batch": args.batch},
        "results": results,
        "ratio_ours_over_faiss": ratios,
        "agreement": agreement,
    }

    out_dir = args.out_dir or os.path.join(
        ROOT, "bench", "results", started.strftime("%Y-%m-%d") + "-flat-vs-faiss")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    md = markdown(report, args)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(md)
    print(md)
    print(f"[written] {out_dir}", file=sys.stderr)


def markdown(r, args):
    m = r["machine"]
    lines = [
        "# Exact k-NN (inner product): Rosetta FlatSearch vs faiss-cpu IndexFlatIP",
        "",
        f"- Date (UTC): {r['date_utc']}; git commit: `{r['git_commit']}`",
        f"- Command: `{r['command']}`",
        f"- Machine: {m['cpu_model']}, {m['cpus']} CPUs, caches {m['caches']}; "
        f"load average before {tuple(round(x, 2) for x in r['load_average_before'])}, "
        f"after {tuple(round(x, 2) for x in r['load_average_after'])}",
        f"- Versions: faiss-cpu {r['versions']['faiss']} ({r['versions']['faiss_compile_options']}),"
        f" numpy {r['versions']['numpy']}, Python {r['versions']['python']}; ours: "
        f"{' '.join(m['compiler'])}, {m['build_type']}, SIMD level `{r['ours']['simd']}`",
        f"- Environment: OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset for this run ("
        f"{('removed: ' + json.dumps(r['env_removed'])) if r['env_removed'] else 'neither was set'}"
        f"); OMP_WAIT_POLICY {r['omp_wait_policy']}",
        f"- Data: {args.nb} x {args.d} float32 base, {args.nq} queries, {args.clusters} Gaussian "
        f"clusters, L2-normalised, seed {args.seed}; k = {args.k}",
        f"- Protocol: {args.rounds} rounds after one excluded warm-up round; batch 1 = "
        f"{args.batch1_queries} queries searched one at a time per round; batch {args.batch} = one "
        f"search of {args.batch} queries per round; the two engines alternate going first.",
        "",
        "| engine | threads | batch | QPS (median) | QPS (best) | ours / FAISS (median) | ours / FAISS (best) | CPU ms per query (median) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for x in sorted(r["results"], key=lambda x: (x["batch"], x["engine"] != "ours", -x["threads"])):
        ratio = r["ratio_ours_over_faiss"][f"batch{x['batch']}"]
        is_main = x["engine"] == "ours" and x["threads"] == args.threads
        note = "" if x["engine"] == "ours" or x["threads"] == args.threads else " (reference)"
        lines.append(
            f"| {x['engine']}{note} | {x['threads']} | {x['batch']} | {x['qps_median']:.1f} | "
            f"{x['qps_best']:.1f} | {ratio['median']:.2f}x | {ratio['best']:.2f}x | "
            f"{x['cpu_ms_per_query_median']:.2f} |"
            if is_main else
            f"| {x['engine']}{note} | {x['threads']} | {x['batch']} | {x['qps_median']:.1f} | "
            f"{x['qps_best']:.1f} | | | {x['cpu_ms_per_query_median']:.2f} |")
    lines += [""] + [
        f"Batch {b[5:]}: ours / FAISS's fastest configuration here ({v['fastest_faiss_threads']} "
        f"thread(s)), median: {v['median_vs_fastest_faiss']:.2f}x."
        for b, v in r["ratio_ours_over_faiss"].items()]
    lines += ["", "Neighbour agreement (ours vs FAISS, same queries): " + ", ".join(
        f"{k}: {v['identical_topk_sets']}/{v['queries']} identical top-{args.k} sets, mean overlap "
        f"{v['mean_topk_overlap']:.4f}" for k, v in r["agreement"].items()), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
