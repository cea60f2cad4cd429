#!/usr/bin/env python3
"""Import throughput and batch-search QPS through the Python client versus the C++ CLI, against
one rosettad (started here, on loopback, with a temporary data dir).

    clients/python/.venv/bin/python clients/python/bench_client.py [--rows 100000] [--dim 768]

Measured, each --repeat times on a fresh collection (median and spread printed):
  import  vectors/s: Client.import_vectors(array) vs `rosetta --server ... import --vectors
          x.npy` (the CLI's time includes its process start and reading the .npy; the Python
          time includes converting and checking the array);
  search  queries/s of one batch request of --batch queries (exhaustive, k=10): Client.search
          (2-D array) vs `rosetta --server ... search --query batch.json` (a JSON array; the
          CLI's time includes parsing it), plus the server's own search time (took_us).
Results go to stdout only (a table, then one JSON line); nothing is written elsewhere.
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
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal((args.rows, args.dim)).astype(np.float32)
    queries = rng.standard_normal((args.batch, args.dim)).astype(np.float32)
    schema = lambda name: {"name": name,  # noqa: E731
                           "spaces": {"s": {"dim": args.dim, "metric": "cosine"}},
                           "fields": {"v": {"space": "s", "modality": "image"}}}
    results: dict = {"rows": args.rows, "dim": args.dim, "batch": args.batch,
                     "repeat": args.repeat, "sync": args.sync, "seed": args.seed,
                     "python": sys.version.split()[0], "numpy": np.__version__}
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
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
