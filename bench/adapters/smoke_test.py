"""Smoke test of the ann-benchmarks and VectorDBBench adapters against a real rosettad.

Drives each adapter the way its framework does, on SIFT10K (../shared/data/sift10k_siftsmall from
the repository root), and checks recall@10 against the official ground truth:

- ann-benchmarks: config.yml is parsed and its constructors / argument counts are checked against
  module.py; then RosettaFlat("euclidean") and RosettaIVFPQ("euclidean", 0, 0, 8) are built as
  ann-benchmarks builds them (get_memory_usage, fit, set_query_arguments, query per test vector,
  batch_query + get_batch_results, done). Flat uses the adapter's own throwaway server (its
  Docker mode), IVF-PQ the shared one (ROSETTA_ADDRESS).
- VectorDBBench: Rosetta(dim, RosettaConfig.to_dict(), case config, collection_name, drop_old)
  then, as its runners do, `with db.init():` insert_embeddings in batches of 1,000 with the
  integer ids as metadata from 2 threads sharing the instance, optimize(); `with db.init():`
  prepare_filter(no filter) and search_embedding(k=100) per query; plus a NumGE filter
  (id >= 5000) checked against brute force.

Thresholds: exact (flat) recall@10 >= 0.99; IVF-PQ at the server's defaults >= 0.9; batch
answers equal single answers. Exits 0 when all pass, 1 on any failure (every failure listed),
2 when rosettad is missing; prints SKIP and exits 0 when the data folder is absent.

Run it with bench/adapters/run_smoke.sh (makes the venv, takes $ROSETTAD).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from types import SimpleNamespace
from typing import Callable, List

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DATA = os.path.join(REPO, "..", "shared", "data", "sift10k_siftsmall")
K = 10
FLAT_MIN = 0.99
IVF_MIN = 0.90

failures: List[str] = []


def check(ok: bool, what: str) -> None:
    print(f"  [{'ok' if ok else 'FAIL'}] {what}", flush=True)
    if not ok:
        failures.append(what)


def recall_at(results: List[np.ndarray], gt: np.ndarray, k: int = K) -> float:
    """ann-benchmarks' and VectorDBBench's recall@k: |top-k returned ∩ true top-k| / k."""
    hit = sum(len(set(np.asarray(r)[:k].tolist()) & set(gt[i, :k].tolist()))
              for i, r in enumerate(results))
    return hit / (k * len(results))


def load_ann_module():
    # Loaded from its path (ann-benchmarks imports it as ann_benchmarks.algorithms.rosetta).
    spec = importlib.util.spec_from_file_location(
        "rosetta_annb_module", os.path.join(HERE, "ann_benchmarks", "module.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def check_ann_config(mod) -> None:
    import yaml
    with open(os.path.join(HERE, "ann_benchmarks", "config.yml"), encoding="utf-8") as f:
        cfg = yaml.safe_load(f)
    entries = cfg["float"]["any"]
    check(len(entries) == 2, f"config.yml: 2 float/any entries (got {len(entries)})")
    import inspect
    for e in entries:
        ctor = getattr(mod, e["constructor"], None)
        check(ctor is not None, f"config.yml: constructor {e['constructor']} exists in module.py")
        if ctor is None:
            continue
        n_init = len(inspect.signature(ctor.__init__).parameters) - 1
        n_query = len(inspect.signature(ctor.set_query_arguments).parameters) - 1
        for group, g in e["run_groups"].items():
            n_args = len(e["base_args"]) + len(g.get("args", []))
            check(n_args == n_init, f"config.yml: {e['name']}/{group}: {n_args} constructor "
                                    f"arguments, {ctor.__name__} takes {n_init}")
            if "query_args" in g:
                check(len(g["query_args"]) == n_query,
                      f"config.yml: {e['name']}/{group}: {len(g['query_args'])} query "
                      f"arguments, set_query_arguments takes {n_query}")


def drive_ann(mod, ctor: Callable, args: list, query_args: list, X, Q, gt, min_recall: float):
    """What ann-benchmarks' runner does with one definition."""
    algo = ctor("euclidean", *args)
    t0 = time.time()
    mem0 = algo.get_memory_usage()
    algo.fit(X)
    build = time.time() - t0
    index_kb = algo.get_memory_usage() - mem0
    check(algo.get_additional().get("rosetta_server") is not None,
          f"{algo}: get_additional names the server")
    try:
        for qa in query_args or [[]]:
            if qa:
                algo.set_query_arguments(*qa)
            t0 = time.time()
            single = [algo.query(q, K) for q in Q]
            t_single = time.time() - t0
            algo.batch_query(Q, K)
            batch = algo.get_batch_results()
            r = recall_at(single, gt)
            print(f"  {algo}: fit {build:.2f} s, index ~{index_kb / 1024:.1f} MiB, "
                  f"{len(Q) / t_single:.0f} q/s single, recall@10 {r:.3f}", flush=True)
            check(all(len(s) == K for s in single), f"{algo}: every query returns {K} rows")
            check(all(np.issubdtype(np.asarray(s).dtype, np.integer) for s in single),
                  f"{algo}: query returns integer row numbers")
            check(r >= min_recall, f"{algo}: recall@10 {r:.3f} >= {min_recall}")
            check(len(batch) == len(Q) and all(np.array_equal(a, b)
                                               for a, b in zip(single, batch)),
                  f"{algo}: batch_query answers equal the single queries")
    finally:
        algo.done()


def drive_vdbb(X, Q, gt, server, case_config, min_recall: float, filtered: bool) -> None:
    sys.path.insert(0, os.path.join(HERE))  # vectordbbench/ as a package; `rosetta` stays the client.
    from vectordbbench.rosetta.config import RosettaConfig
    from vectordbbench.rosetta.rosetta import Rosetta

    db_config = RosettaConfig(db_label="smoke", host=server.host, port=server.port)
    db = Rosetta(dim=X.shape[1], db_config=db_config.to_dict(), db_case_config=case_config,
                 collection_name="vdbb_smoke", drop_old=True, with_scalar_labels=False)
    ids = list(range(X.shape[0]))
    t0 = time.time()
    # The insert runner: batches with their ids from 2 threads sharing the instance (what
    # VectorDBBench's concurrent insert runner does with a thread_safe client).
    from concurrent.futures import ThreadPoolExecutor
    with db.init(), ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(
            lambda off: (off, *db.insert_embeddings(X[off:off + 1000].tolist(),
                                                    ids[off:off + 1000])),
            range(0, X.shape[0], 1000)))
        inserted = sum(n for _, n, _ in outcomes)
        errors = [f"batch at {off}: {err}" for off, _, err in outcomes if err is not None]
        check(not errors, f"VDBB {type(case_config).__name__}: insert_embeddings returned no "
                          f"error {errors[:3]}")
        db.optimize(data_size=X.shape[0])
    load = time.time() - t0
    check(inserted == X.shape[0], f"VDBB: inserted {inserted} of {X.shape[0]}")

    from vectordbbench.rosetta._compat import FilterOp
    try:  # With VectorDBBench installed the adapter compares against its FilterOp.
        from vectordb_bench.backend.filter import FilterOp  # noqa: F811
    except ImportError:
        pass
    with db.init():  # The search runner.
        db.prepare_filter(SimpleNamespace(type=FilterOp.NonFilter))
        t0 = time.time()
        res = [db.search_embedding(q.tolist(), 100) for q in Q]
        t = time.time() - t0
        r = recall_at([np.array(x) for x in res], gt)
        name = type(case_config).__name__
        print(f"  VDBB {name}: load {load:.2f} s, {len(Q) / t:.0f} q/s, recall@10 {r:.3f}",
              flush=True)
        check(all(len(x) == 100 and all(isinstance(i, int) for i in x) for x in res),
              f"VDBB {name}: search_embedding returns 100 int ids")
        check(r >= min_recall, f"VDBB {name}: recall@10 {r:.3f} >= {min_recall}")
        if filtered:
            db.prepare_filter(SimpleNamespace(type=FilterOp.NumGE, int_value=5000))
            ok_range, rec = True, 0
            for i, q in enumerate(Q[:20]):
                got = db.search_embedding(q.tolist(), K)
                ok_range &= all(x >= 5000 for x in got) and len(got) == K
                d = ((X[5000:] - q) ** 2).sum(axis=1)
                truth = set((np.argsort(d, kind="stable")[:K] + 5000).tolist())
                rec += len(truth & set(got))
            rf = rec / (20 * K)
            check(ok_range, f"VDBB {name}: NumGE filter returns only ids >= 5000")
            check(rf >= min_recall, f"VDBB {name}: filtered recall@10 {rf:.3f} >= {min_recall}")
    with db.init():
        db._db().drop_collection("vdbb_smoke")


def main() -> int:
    t_start = time.time()
    files = [os.path.join(DATA, f) for f in ("base.npy", "query.npy", "gt_l2_top100.npy")]
    if not all(os.path.isfile(f) for f in files):
        print(f"SKIP: SIFT10K not found in {os.path.normpath(DATA)} (needs base.npy, query.npy, "
              "gt_l2_top100.npy)")
        return 0
    from rosetta.testing import RosettadNotFound, find_rosettad, start_rosettad
    try:
        binary = find_rosettad()
    except RosettadNotFound as e:
        print(f"ERROR: {e} (build it: cmake --build build --target rosettad)")
        return 2
    os.environ["ROSETTAD"] = binary
    X, Q, gt = (np.load(f) for f in files)
    print(f"SIFT10K: base {X.shape}, queries {Q.shape}, ground truth {gt.shape}; rosettad "
          f"{binary}", flush=True)

    mod = load_ann_module()
    print("ann-benchmarks adapter (BaseANN):", flush=True)
    check_ann_config(mod)
    os.environ.pop("ROSETTA_ADDRESS", None)  # Flat: the adapter starts its own server.
    drive_ann(mod, mod.RosettaFlat, [], [], X, Q, gt, FLAT_MIN)

    with start_rosettad(binary) as server:
        os.environ["ROSETTA_ADDRESS"] = server.address  # IVF-PQ: an existing server.
        drive_ann(mod, mod.RosettaIVFPQ, [0, 0, 8], [[0, 0], [16, 0]], X, Q, gt, IVF_MIN)
        check("annb" not in server.client().list_collections(),
              "ann-benchmarks done() dropped its collection on the shared server")

        print("VectorDBBench adapter (VectorDB):", flush=True)
        sys.path.insert(0, HERE)
        from vectordbbench.rosetta.config import RosettaFlatConfig, RosettaIVFPQConfig
        from vectordbbench.rosetta._compat import MetricType
        try:
            from vectordb_bench.backend.clients.api import MetricType  # noqa: F811
        except ImportError:
            pass
        drive_vdbb(X, Q, gt, server, RosettaFlatConfig(metric_type=MetricType.L2), FLAT_MIN,
                   filtered=True)
        drive_vdbb(X, Q, gt, server, RosettaIVFPQConfig(metric_type=MetricType.L2), IVF_MIN,
                   filtered=False)

    print(f"{'FAIL' if failures else 'PASS'}: {len(failures)} failure(s) in "
          f"{time.time() - t_start:.1f} s")
    for f in failures:
        print(f"  - {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
