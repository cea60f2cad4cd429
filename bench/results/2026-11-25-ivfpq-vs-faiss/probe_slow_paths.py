#!/usr/bin/env python3
"""Follow-up probes behind the notes in results.md (run inside bench/.venv, after the main run
generated the data sets under bench/.data):

  A. 8-bit ADC at m = 192 (synthetic embed768, 50k): rosetta-kernel-8bit QPS at one point with the
     scan kernels pinned to each SIMD level (the driver's `simd` command), 1 thread, alternating
     rounds; then `perf record` of the avx512 search.
  B. Engine per-query overhead (synthetic vec128, 200k): `perf record` of Database::Search at
     nprobe 1, refine 10, 1 search thread.

    bench/.venv/bin/python bench/results/2026-11-25-ivfpq-vs-faiss/probe_slow_paths.py BUILD_DIR
"""
import glob, json, os, statistics, subprocess, sys, tempfile, time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "bench", "peers"))
import ivf_vs_peers as P  # noqa: E402

build = sys.argv[1]
exe = os.path.join(build, "bench", "ivf_pq_peers_bench")
scratch = tempfile.mkdtemp(prefix="rosetta-probe-")
out = {}


def data(tag_glob):
    meta = glob.glob(os.path.join(ROOT, "bench", ".data", tag_glob, "meta.json"))[0]
    return json.load(open(meta))


def perf(pid, seconds, label):
    path = os.path.join(scratch, label + ".data")
    rec = subprocess.Popen(["perf", "record", "-F", "999", "-g", "-p", str(pid), "-o", path,
                            "--", "sleep", str(seconds)], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    return rec, path


def report(path, n=25):
    txt = subprocess.run(["perf", "report", "-i", path, "--no-children", "--stdio",
                          "--percent-limit", "1", "-g", "none", "--sort", "symbol"],
                         capture_output=True, text=True).stdout
    return [" ".join(l.split()).rstrip("- ").strip() for l in txt.splitlines()
            if l.strip() and not l.startswith("#")][:n]


# A.
ds = data("embed768_n50000_*")
d = P.Driver(exe, ds["base"], ds["queries"], "ip", 10, scratch)
print("A build", d.cmd(f"build k8 {d.info['default_nlist']} {d.info['default_m']} 8 2"), flush=True)
pt = "8 40"
res = {}
for r in range(3):
    for lvl in (["avx512", "avx2", "scalar"] if r % 2 == 0 else ["scalar", "avx2", "avx512"]):
        d.cmd(f"simd {lvl}")
        d.cmd(f"search k8 {pt} 1 1 -")
        t = d.cmd(f"search k8 {pt} 1 3 -")
        res.setdefault(lvl, []).append(3 * d.info["nq"] / sum(t["seconds"]))
out["A_qps_by_level_nprobe8_refine40_1t"] = {k: statistics.median(v) for k, v in res.items()}
print("A", out["A_qps_by_level_nprobe8_refine40_1t"], flush=True)
d.cmd("simd auto")
rec, path = perf(d.proc.pid, 6, "kernel768")
t0 = time.time()
while time.time() - t0 < 7:
    d.cmd(f"search k8 {pt} 1 1 -")
rec.wait()
out["A_perf_top"] = report(path)
print("\n".join(out["A_perf_top"]), flush=True)
d.close()

# B.
ds = data("vec128_n200000_*")
d = P.Driver(exe, ds["base"], ds["queries"], "l2", 10, scratch)
print("B build", d.cmd(f"engine_build e8 {d.info['default_nlist']} {d.info['default_m']} 8 2 "
                       f"{os.path.join(scratch, 'db')}"), flush=True)
print("B reopen", d.cmd("engine_threads e8 1"), flush=True)
d.cmd("search e8 1 10 1 1 -")
rec, path = perf(d.proc.pid, 6, "engine200k")
t0 = time.time()
while time.time() - t0 < 7:
    d.cmd("search e8 1 10 1 1 -")
rec.wait()
out["B_perf_top"] = report(path)
print("\n".join(out["B_perf_top"]), flush=True)
d.close()
json.dump(out, open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "probe_slow_paths.json"), "w"), indent=1)
subprocess.run(["rm", "-rf", scratch])
