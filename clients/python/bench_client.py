#!/usr/bin/env python3
"""Import throughput and batch-search QPS through the Python client versus the C++ CLI, against
one rosettad (started here, on loopback, with a temporary data dir).

    clients/python/.venv-bench/bin/python clients/python/bench_client.py [--rows 100000] [--dim 768]

Measured, each --repeat times on a fresh collection (median and spread printed):
  import  vectors/s: Client.import_vectors(array) vs `rosetta --server ... import --vectors
          x.npy` (the CLI's time includes its process start and reading the .npy; the Python
          time includes converting and checking the array);
  search  queries/s of one batch request of --batch queries (exhaustive, k=10): Client.search
          (2-D array) vs `rosetta --server ... search --query batch.json` (a JSON array; the
          CLI's time includes parsing it), plus the server's own search time (took_us).
  milvus-lite, on the same vectors and queries, in the same run (after rosettad is stopped):
          pymilvus MilvusClient on a local milvus-lite file (a fresh file in the temporary dir),
          one FLOAT_VECTOR field with a FLAT index (exact search; COSINE, as Rosetta's space):
          insert vectors/s = MilvusClient.insert() of rows {"id": int, "v": float32 row} in
          batches of --milvus-batch rows (the time includes building the row dicts); flush()
          seals the segment (the index is built on sealed segments) and is timed and reported
          separately, and also as insert + flush vectors/s; search QPS = one
          MilvusClient.search() call with the same --batch queries, limit 10, output_fields
          ["id"] (an empty list would return the stored vectors too).
  recall@10 of each system's batch answer against NumPy brute force (cosine) on the first
          --recall-queries queries (exact search everywhere, so all should be ~1.0).
Results go to stdout only (a table, then one JSON line); nothing is written elsewhere. Needs
numpy, flatbuffers and this package; pymilvus and milvus-lite for the milvus-lite side
(--skip-milvus leaves it out), e.g. in clients/python/.venv-bench.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from rosetta.testing import start_rosettad

REPO = pathlib.Path(__file__).resolve().parents[2]


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def summary(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def brute_force_top(x, queries, k):
    """Row indices of the k best cosines of each query, best first (NumPy, float32)."""
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    sims = qn @ xn.T
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1)
    return np.take_along_axis(top, order, axis=1)


def recall_at(answers, truth):
    """Mean |answer's top k ∩ true top k| / k; answers are lists of row numbers (any int-like)."""
    k = truth.shape[1]
    return statistics.mean(len(set(int(i) for i in a[:k]) & set(t.tolist())) / k
                           for a, t in zip(answers, truth))


def measure_milvus(args, x, queries, work_dir):
    """Insert, flush and batch search on milvus-lite; see the module docstring."""
    import milvus_lite
    import pymilvus
    from pymilvus import DataType, MilvusClient

    out = {"pymilvus": pymilvus.__version__,
           "milvus_lite": getattr(milvus_lite, "__version__", "unknown"),
           "index": "FLAT", "metric": "COSINE", "insert_batch_rows": args.milvus_batch}
    client = MilvusClient(os.path.join(work_dir, "milvus.db"))
    n, d = x.shape
    insert_rate, flush_s, insert_flush_rate = [], [], []
    try:
        for r in range(args.milvus_repeat):
            name = f"m{r}"
            schema = client.create_schema(auto_id=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("v", DataType.FLOAT_VECTOR, dim=d)
            ip = client.prepare_index_params()
            ip.add_index(field_name="v", index_type="FLAT", metric_type="COSINE")
            client.create_collection(name, schema=schema, index_params=ip)
            t0 = time.perf_counter()
            for s in range(0, n, args.milvus_batch):
                client.insert(name, [{"id": i, "v": x[i]}
                                     for i in range(s, min(n, s + args.milvus_batch))])
            t1 = time.perf_counter()
            # Sealing the segment builds its index. (Releasing and loading the collection
            # right after flush() fails on milvus-lite 3.2.2 with "file seems not fully
            # written", so the collection stays loaded as it is.)
            client.flush(name)
            t2 = time.perf_counter()
            rows = client.get_collection_stats(name)["row_count"]
            assert rows == n, (rows, n)
            insert_rate.append(n / (t1 - t0))
            flush_s.append(t2 - t1)
            insert_flush_rate.append(n / (t2 - t0))
            if r > 0:
                client.drop_collection(name)
        out["describe_index"] = client.describe_index("m0", "v")
        sp = {"metric_type": "COSINE"}
        qps, answers = [], None
        for r in range(args.repeat):
            t, res = timed(lambda: client.search("m0", data=queries, limit=10, search_params=sp,
                                                 output_fields=["id"]))
            assert len(res) == len(queries)
            qps.append(len(queries) / t)
            answers = [[h["id"] for h in hits] for hits in res]
    finally:
        client.close()
    out["insert_vectors_per_s"] = summary(insert_rate)
    out["flush_s"] = summary(flush_s)
    out["insert_flush_vectors_per_s"] = summary(insert_flush_rate)
    out["batch_search_qps"] = summary(qps)
    return out, answers


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--batch", type=int, default=1000, help="queries per batch search")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=20261125)
    ap.add_argument("--sync", default="always", choices=["always", "none"])
    ap.add_argument("--rosettad", default=os.environ.get("ROSETTAD",
                                                         str(REPO / "build/tools/rosettad")))
    ap.add_argument("--cli", default=os.environ.get("ROSETTA_CLI",
                                                    str(REPO / "build/tools/rosetta")))
    ap.add_argument("--milvus-batch", type=int, default=1000,
                    help="rows per MilvusClient.insert() call")
    ap.add_argument("--milvus-repeat", type=int, default=None,
                    help="fresh milvus-lite collections to insert into (default: --repeat); "
                         "its searches are repeated --repeat times")
    ap.add_argument("--skip-milvus", action="store_true", help="leave milvus-lite out")
    ap.add_argument("--recall-queries", type=int, default=100,
                    help="queries whose recall@10 is checked against NumPy brute force")
    args = ap.parse_args()
    if args.milvus_repeat is None:
        args.milvus_repeat = args.repeat

    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal((args.rows, args.dim)).astype(np.float32)
    queries = rng.standard_normal((args.batch, args.dim)).astype(np.float32)
    schema = lambda name: {"name": name,  # noqa: E731
                           "spaces": {"s": {"dim": args.dim, "metric": "cosine"}},
                           "fields": {"v": {"space": "s", "modality": "image"}}}
    results: dict = {"rows": args.rows, "dim": args.dim, "batch": args.batch,
                     "repeat": args.repeat, "sync": args.sync, "seed": args.seed,
                     "python": sys.version.split()[0], "numpy": np.__version__,
                     "loadavg_start": os.getloadavg()}
    nr = min(args.recall_queries, args.batch)
    truth = brute_force_top(x, queries[:nr], 10)
    recall = {}
    with tempfile.TemporaryDirectory(prefix="rosetta-bench-") as tmp, \
            start_rosettad(args.rosettad, sync=args.sync) as server, server.client() as db:
        results["server"] = server.banner
        npy = os.path.join(tmp, "x.npy")
        np.save(npy, x)
        qfile = os.path.join(tmp, "q.json")
        with open(qfile, "w") as f:
            json.dump([{"k": 10, "inputs": [{"vector": q.tolist(), "space": "s"}],
                        "explain": False, "exact": True} for q in queries], f)

        py_import, cli_import = [], []
        for r in range(args.repeat):
            db.create_collection(schema(f"py{r}"))
            t, w = timed(lambda: db.import_vectors(f"py{r}", "v", x, progress=False))
            assert w.written == args.rows
            py_import.append(args.rows / t)
            db.create_collection(schema(f"cli{r}"))
            t, p = timed(lambda: subprocess.run(
                [args.cli, "--server", server.address, "--json", "import", f"cli{r}",
                 "--field", "v", "--vectors", npy], capture_output=True, text=True))
            if p.returncode != 0:
                print(p.stderr, file=sys.stderr)
                return 1
            assert json.loads(p.stdout)["written"] == args.rows
            cli_import.append(args.rows / t)
            if r > 0:  # keep one copy of each for the searches.
                db.drop_collection(f"py{r}")
                db.drop_collection(f"cli{r}")

        py_qps, cli_qps, server_qps = [], [], []
        for r in range(args.repeat):
            t, res = timed(lambda: db.search("py0", queries, k=10, space="s", explain=False,
                                             exact=True))
            py_qps.append(args.batch / t)
            server_qps.append(args.batch / (sum(x_.took_us for x_ in res) / 1e6))
            t, p = timed(lambda: subprocess.run(
                [args.cli, "--server", server.address, "--json", "search", "cli0", "--query",
                 qfile], capture_output=True, text=True))
            if p.returncode != 0:
                print(p.stderr, file=sys.stderr)
                return 1
            cli_res = json.loads(p.stdout)["responses"]
            assert [h["id"] for h in cli_res[0]["results"]] == res[0].ids()
            cli_qps.append(args.batch / t)
        recall["python"] = recall_at([r_.ids() for r_ in res[:nr]], truth)
        recall["cli"] = recall_at([[h["id"] for h in c["results"]] for c in cli_res[:nr]], truth)

    if not args.skip_milvus:
        # After rosettad has stopped, so that it holds no memory or threads meanwhile.
        with tempfile.TemporaryDirectory(prefix="rosetta-bench-milvus-") as mtmp:
            milvus, milvus_answers = measure_milvus(args, x, queries, mtmp)
        recall["milvus_lite"] = recall_at(milvus_answers[:nr], truth)
        results["milvus_lite"] = milvus
    results["recall_at_10"] = {"queries": nr, **recall}
    results["loadavg_end"] = os.getloadavg()

    results["import_vectors_per_s"] = {"python": summary(py_import), "cli": summary(cli_import)}
    results["batch_search_qps"] = {"python": summary(py_qps), "cli": summary(cli_qps),
                                   "server_took_us_basis": summary(server_qps)}
    ratio = statistics.median(py_import) / statistics.median(cli_import)
    results["import_python_over_cli"] = ratio
    results["search_python_over_cli"] = statistics.median(py_qps) / statistics.median(cli_qps)

    print(f"rows {args.rows} x dim {args.dim}, batch {args.batch}, repeat {args.repeat}, "
          f"sync {args.sync}")
    print(f"server: {results['server']}")
    for what, key in (("import vectors/s", "import_vectors_per_s"),
                      ("batch search QPS", "batch_search_qps")):
        for side, s in results[key].items():
            print(f"  {what:17} {side:22} median {s['median']:12,.0f}  "
                  f"(min {s['min']:,.0f}, max {s['max']:,.0f})")
    print(f"  import: Python / CLI = {ratio:.2f} (target: >= {1 / 1.5:.2f}, i.e. within 1.5x)")
    print(f"  search: Python / CLI = {results['search_python_over_cli']:.2f}")
    if "milvus_lite" in results:
        m = results["milvus_lite"]
        print(f"milvus-lite {m['milvus_lite']} / pymilvus {m['pymilvus']}: {m['index']} index, "
              f"{m['metric']}, insert batches of {m['insert_batch_rows']} rows, "
              f"{args.milvus_repeat} fresh collection(s)")
        for what, key, fmt in (("insert vectors/s", "insert_vectors_per_s", ",.0f"),
                               ("flush seconds", "flush_s", ",.2f"),
                               ("insert+flush vec/s", "insert_flush_vectors_per_s", ",.0f"),
                               ("batch search QPS", "batch_search_qps", ",.1f")):
            v = m[key]
            print(f"  {what:19} median {v['median']:12{fmt}}  "
                  f"(min {v['min']:{fmt}}, max {v['max']:{fmt}})")
        py_imp = statistics.median(py_import)
        results["import_python_over_milvus"] = py_imp / m["insert_vectors_per_s"]["median"]
        results["import_python_over_milvus_with_flush"] = (
            py_imp / m["insert_flush_vectors_per_s"]["median"])
        results["search_python_over_milvus"] = (statistics.median(py_qps)
                                                / m["batch_search_qps"]["median"])
        print(f"  import: Rosetta Python / milvus-lite insert = "
              f"{results['import_python_over_milvus']:.2f} "
              f"(/ insert + flush = {results['import_python_over_milvus_with_flush']:.2f})")
        print(f"  search: Rosetta Python / milvus-lite = "
              f"{results['search_python_over_milvus']:.2f}")
    rc = results["recall_at_10"]
    print(f"recall@10 vs NumPy brute force ({rc['queries']} queries): "
          + ", ".join(f"{k_} {v:.4f}" for k_, v in rc.items() if k_ != "queries"))
    print(f"load average: start {results['loadavg_start']}, end {results['loadavg_end']}")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
