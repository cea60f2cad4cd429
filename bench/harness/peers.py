"""The peers, each behind the same small interface as rosetta_systems.RosettaSystem:

  name, family, kind ('flat' | 'ivf' | 'graph'), how (how QPS and latency were measured),
  build (dict of build figures), memory (dict), thread_counts(T) (the thread counts it can be
  measured at), rows() (the sweep: lists of points, each list ordered from cheap to expensive),
  measure(point, threads, min_s, ids_needed) -> {qps, p50_us, p99_us, ids?, ...}, close().

Every peer is built with the same thread count T and searched through its batch API (the whole
query matrix per call) after one excluded warm-up call; QPS = queries / wall time of repeated
calls over at least min_s seconds. Latency: one query per call, at 1 thread, over up to
`latency_queries` queries (p50 / p99 of those calls), measured after the batch timing.
"""

import gc
import os
import shutil
import sys
import threading
import time

from common import ROOT, dir_bytes, percentile, rss_bytes

sys.path.insert(0, os.path.join(ROOT, "bench", "peers"))


def timed_batch(fn, nq, min_s, timed_fn=None, timed_nq=None):
    """fn() -> ids of every query. Returns (ids of the excluded warm-up call, qps). timed_fn /
    timed_nq: what the timed loop calls instead (a slice of the queries, for the slow peers)."""
    ids = fn()
    if timed_fn is None:
        timed_fn, timed_nq = fn, nq
    reps, t0 = 0, time.perf_counter()
    while True:
        timed_fn()
        reps += 1
        el = time.perf_counter() - t0
        if el >= min_s:
            break
    return ids, timed_nq * reps / el


def latencies(fn_one, nq, count):
    """fn_one(i) searches query i alone; returns (p50_us, p99_us) over min(nq, count) calls."""
    lat = []
    for i in range(min(nq, count)):
        t0 = time.perf_counter()
        fn_one(i)
        lat.append(1e6 * (time.perf_counter() - t0))
    return percentile(lat, 0.50), percentile(lat, 0.99)


class Peer:
    family = ""
    kind = ""
    how = ("batch API, whole query matrix per call, 1 and T library threads; latency: one query "
           "per call at 1 thread")

    def __init__(self, name, ctx):
        self.name, self.ctx = name, ctx
        self.build = {}
        self.memory = {}
        self.q = ctx["queries"]
        self.nq = self.q.shape[0]
        self.k = ctx["k_search"]

    def thread_counts(self, T):
        return sorted({1, T}, reverse=True)

    def rows(self):
        return [[{}]]

    def close(self):
        pass

    def _result(self, ids, qps, lat, ids_needed):
        out = {"qps": qps, "p50_us": lat[0] if lat else None, "p99_us": lat[1] if lat else None}
        if ids_needed:
            out["ids"] = ids
        return out


def ivf_rows(nlist, nprobes, refines):
    ps = sorted({p for p in nprobes if p <= nlist} | ({nlist} if nlist <= max(nprobes) else set()))
    return [[{"nprobe": p, "refine": r} for p in ps] for r in refines]


# ---------------------------------------------------------------------------------------------
# FAISS.
# ---------------------------------------------------------------------------------------------

class FaissPeer(Peer):
    family = "faiss"

    def __init__(self, name, ctx, faiss, variant):
        super().__init__(name, ctx)
        self.faiss, self.variant = faiss, variant
        self.kind = "flat" if variant == "flat" else "ivf"

    def do_build(self, base, metric, nlist, m, threads):
        faiss = self.faiss
        d = base.shape[1]
        ip = metric != "l2"
        mt = faiss.METRIC_INNER_PRODUCT if ip else faiss.METRIC_L2
        faiss.omp_set_num_threads(threads)
        rss0 = rss_bytes()
        t0, c0 = time.perf_counter(), time.process_time()
        if self.variant == "flat":
            self.index = faiss.IndexFlatIP(d) if ip else faiss.IndexFlatL2(d)
            self.index.add(base)
            el = time.perf_counter() - t0
            self.build = {"build_s": None, "ingest_rows_per_s": base.shape[0] / el,
                          "note": "IndexFlat add (a copy of the vectors)"}
            self.memory = {"bytes_per_vector": 4 * d, "rss_delta_bytes": rss_bytes() - rss0,
                           "accounting": "raw float32 vectors"}
            return
        self.quantizer = faiss.IndexFlatIP(d) if ip else faiss.IndexFlatL2(d)
        if self.variant == "ivfpq8":
            ivf = faiss.IndexIVFPQ(self.quantizer, d, nlist, m, 8, mt)
        else:
            ivf = faiss.IndexIVFPQFastScan(self.quantizer, d, nlist, m, 4, mt)
            ivf.by_residual = True  # as Rosetta's 4-bit layout (codes of residuals)
        ivf.train(base)
        t1 = time.perf_counter()
        ivf.add(base)
        t2 = time.perf_counter()
        self.ivf = ivf
        self.index = faiss.IndexRefineFlat(ivf, faiss.swig_ptr(base))
        self.base_ref = base
        self.build = {"build_s": t2 - t0, "train_s": t1 - t0, "add_s": t2 - t1,
                      "build_cpu_s": time.process_time() - c0,
                      "ingest_rows_per_s": base.shape[0] / (t2 - t1),
                      "by_residual": bool(ivf.by_residual),
                      "note": "train + add of the IVF index; the IndexRefineFlat copy of the raw "
                              "vectors is not counted (as Rosetta's raw vectors)"}
        import ivf_vs_peers
        mem = ivf_vs_peers.faiss_memory(faiss, ivf)
        mem["rss_delta_bytes"] = rss_bytes() - rss0
        self.memory = mem

    def rows(self):
        if self.variant == "flat":
            return [[{"exact": True}]]
        c = self.ctx
        return ivf_rows(self.ivf.nlist, c["nprobes"], c["refines"])

    def measure(self, point, threads, min_s, ids_needed):
        faiss = self.faiss
        faiss.omp_set_num_threads(threads)
        if self.variant != "flat":
            self.ivf.nprobe = point["nprobe"]
            self.index.k_factor = point["refine"] / self.k
        ids, qps = timed_batch(lambda: self.index.search(self.q, self.k)[1], self.nq, min_s)
        lat = None
        if threads == 1:
            lat = latencies(lambda i: self.index.search(self.q[i:i + 1], self.k), self.nq,
                            self.ctx["latency_queries"])
        return self._result(ids, qps, lat, ids_needed)

    def close(self):
        self.index = self.ivf = self.quantizer = None
        gc.collect()


# ---------------------------------------------------------------------------------------------
# Graph indexes.
# ---------------------------------------------------------------------------------------------

EFS = [10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512]


class HnswlibPeer(Peer):
    family = "hnswlib"
    kind = "graph"

    def __init__(self, name, ctx, hnswlib, M=16, efc=200):
        super().__init__(name, ctx)
        self.hnswlib, self.M, self.efc = hnswlib, M, efc

    def do_build(self, base, metric, threads):
        n, d = base.shape
        rss0 = rss_bytes()
        idx = self.hnswlib.Index(space="l2" if metric == "l2" else "ip", dim=d)
        idx.init_index(max_elements=n, ef_construction=self.efc, M=self.M, random_seed=100)
        t0 = time.perf_counter()
        idx.add_items(base, num_threads=threads)
        el = time.perf_counter() - t0
        self.index = idx
        size = idx.index_file_size()
        self.build = {"build_s": el, "ingest_rows_per_s": n / el, "M": self.M,
                      "ef_construction": self.efc}
        self.memory = {"bytes_per_vector": size / n, "rss_delta_bytes": rss_bytes() - rss0,
                       "accounting": "index_file_size() / n (graph + raw vectors + labels)"}

    def rows(self):
        return [[{"ef": e} for e in EFS]]

    def measure(self, point, threads, min_s, ids_needed):
        self.index.set_ef(max(point["ef"], self.k))
        ids, qps = timed_batch(lambda: self.index.knn_query(self.q, k=self.k,
                                                            num_threads=threads)[0], self.nq, min_s)
        lat = None
        if threads == 1:
            lat = latencies(lambda i: self.index.knn_query(self.q[i:i + 1], k=self.k,
                                                           num_threads=1), self.nq,
                            self.ctx["latency_queries"])
        return self._result(ids, qps, lat, ids_needed)

    def close(self):
        self.index = None
        gc.collect()


class UsearchPeer(Peer):
    family = "usearch"
    kind = "graph"

    def __init__(self, name, ctx, usearch_index, M=16, efc=128):
        super().__init__(name, ctx)
        self.ui, self.M, self.efc = usearch_index, M, efc

    def do_build(self, base, metric, threads):
        import numpy as np
        n, d = base.shape
        rss0 = rss_bytes()
        idx = self.ui.Index(ndim=d, metric="l2sq" if metric == "l2" else "ip", dtype="f32",
                            connectivity=self.M, expansion_add=self.efc)
        t0 = time.perf_counter()
        idx.add(np.arange(n, dtype=np.uint64), base, threads=threads)
        el = time.perf_counter() - t0
        self.index = idx
        self.build = {"build_s": el, "ingest_rows_per_s": n / el, "connectivity": self.M,
                      "expansion_add": self.efc, "dtype": "f32"}
        self.memory = {"bytes_per_vector": idx.memory_usage / n,
                       "rss_delta_bytes": rss_bytes() - rss0,
                       "accounting": "Index.memory_usage / n (graph + f32 vectors + arena)"}

    def rows(self):
        return [[{"ef": e} for e in EFS]]

    def measure(self, point, threads, min_s, ids_needed):
        self.index.expansion_search = max(point["ef"], self.k)
        ids, qps = timed_batch(lambda: self.index.search(self.q, self.k, threads=threads).keys,
                               self.nq, min_s)
        lat = None
        if threads == 1:
            lat = latencies(lambda i: self.index.search(self.q[i], self.k, threads=1), self.nq,
                            self.ctx["latency_queries"])
        return self._result(ids, qps, lat, ids_needed)

    def close(self):
        self.index = None
        gc.collect()


# ---------------------------------------------------------------------------------------------
# Milvus Lite.
# ---------------------------------------------------------------------------------------------

# Found by trying every index type on milvus-lite 3.2.2: creating any type succeeds, but loading a
# flushed (sealed) segment answers "index_type='IVF_PQ' is reserved for a future phase; supported:
# HNSW, HNSW_SQ, IVF_FLAT, IVF_SQ8, BRUTE_FORCE"; before a flush the growing segment is searched
# exhaustively whatever the index (recall 1.0 at nprobe 1), so the harness flushes and reloads.
MILVUS_SUPPORTED = ("HNSW", "HNSW_SQ", "IVF_FLAT", "IVF_SQ8", "BRUTE_FORCE")


class MilvusPeer(Peer):
    family = "milvus-lite"
    how = ("pymilvus MilvusClient on a local milvus-lite file (milvus-lite 3.2.2 runs its "
           "engine inside the Python process; pymilvus talks to it over a loopback gRPC "
           "channel): search() with a query matrix per call (recall: every query in one "
           "call; timed calls: slices of at most slow_batch queries in quick mode); "
           "'1 thread' = one "
           "client thread calling, 'T threads' = T client threads calling concurrently (the "
           "server's own threads are not configurable); latency: one query per call. Index "
           "types: milvus-lite 3.2.2 accepts any index type at create time, but loading a "
           "sealed segment refuses all but HNSW, HNSW_SQ, IVF_FLAT, IVF_SQ8 and BRUTE_FORCE "
           "('IVF_PQ is reserved for a future phase'), and before a flush the growing segment "
           "is searched exhaustively whatever the index; the harness flushes, reloads, and "
           "runs HNSW (M 16, efConstruction 200) and IVF_FLAT (same nlist as the others)")

    def __init__(self, name, ctx, index_type):
        super().__init__(name, ctx)
        self.index_type = index_type
        self.kind = "graph" if index_type.startswith("HNSW") else "ivf"

    def do_build(self, base, metric, nlist, work):
        from pymilvus import DataType, MilvusClient
        n, d = base.shape
        self.dir = os.path.join(work, f"milvus-{self.index_type.lower()}")
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        rss0 = rss_bytes()
        self.client = MilvusClient(os.path.join(self.dir, "milvus.db"))
        self.mt = "L2" if metric == "l2" else "IP"
        schema = self.client.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("v", DataType.FLOAT_VECTOR, dim=d)
        ip = self.client.prepare_index_params()
        params = ({"M": 16, "efConstruction": 200} if self.index_type.startswith("HNSW")
                  else {"nlist": nlist} if self.index_type.startswith("IVF") else {})
        ip.add_index(field_name="v", index_type=self.index_type, metric_type=self.mt,
                     params=params)
        self.coll = "bench"
        self.client.create_collection(self.coll, schema=schema, index_params=ip)
        self.nlist = nlist
        t0 = time.perf_counter()
        step = 10000
        for s in range(0, n, step):
            rows = [{"id": i, "v": base[i].tolist()} for i in range(s, min(n, s + step))]
            self.client.insert(self.coll, rows)
        t1 = time.perf_counter()
        self.client.flush(self.coll)
        self.client.release_collection(self.coll)
        self.client.load_collection(self.coll)
        t2 = time.perf_counter()
        desc = self.client.describe_index(self.coll, "v")
        self.build = {"build_s": t2 - t1, "ingest_rows_per_s": n / (t1 - t0),
                      "index_params": params, "describe_index": desc,
                      "note": "build = flush + release + load (the index is built when the "
                              "segment is sealed); ingest = insert() of rows in batches of 10k"}
        self.memory = {"bytes_per_vector": dir_bytes(self.dir) / n,
                       "rss_delta_bytes": rss_bytes() - rss0,
                       "accounting": "on-disk size of the milvus-lite directory / n; "
                                     "rss_delta = growth of the Python process's VmRSS from "
                                     "opening the client to the loaded index (milvus-lite "
                                     "runs in-process)"}

    def rows(self):
        if self.index_type.startswith("HNSW"):
            return [[{"ef": e} for e in self.ctx.get("slow_efs") or EFS]]
        if self.index_type.startswith("IVF"):
            ps = [p for p in self.ctx.get("slow_nprobes") or self.ctx["nprobes"] if p <= self.nlist]
            return [[{"nprobe": p} for p in ps]]
        return [[{}]]

    def _search(self, q):
        sp = {"metric_type": self.mt, "params": {}}
        if "ef" in self.point:
            sp["params"]["ef"] = max(self.point["ef"], self.k)
        if "nprobe" in self.point:
            sp["params"]["nprobe"] = self.point["nprobe"]
        r = self.client.search(self.coll, data=q, limit=self.k, search_params=sp,
                               output_fields=[])
        return [[h["id"] for h in hits] for hits in r]

    def measure(self, point, threads, min_s, ids_needed):
        self.point = point
        qlist = self.q.tolist()
        # Recall from every query (the first call, excluded from the timing); the timed calls
        # then send slices of at most `slow_batch` queries (one call per batch is ~1 ms per
        # query through pymilvus, so whole-matrix calls would take seconds each).
        sub = qlist[:self.ctx.get("slow_batch") or self.nq]
        ids = self._search(qlist) if ids_needed else self._search(sub)
        if threads == 1:
            _, qps = timed_batch(lambda: self._search(sub), len(sub), min_s)
        else:
            qps = concurrent_qps(lambda: self._search(sub), len(sub), threads, min_s)
        lat = None
        if threads == 1:
            lat = latencies(lambda i: self._search(qlist[i:i + 1]), self.nq,
                            self.ctx.get("slow_latency_queries") or self.ctx["latency_queries"])
        return self._result(ids, qps, lat, ids_needed)

    def close(self):
        try:
            self.client.drop_collection(self.coll)
            self.client.close()
        except Exception:  # noqa: BLE001 - closing a peer must not stop the run
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


def concurrent_qps(fn, nq, threads, min_s):
    """T Python threads each calling fn() (a whole batch) until min_s has passed."""
    counts = [0] * threads
    stop = time.perf_counter() + min_s
    errors = []

    def worker(t):
        try:
            while True:
                fn()
                counts[t] += 1
                if time.perf_counter() >= stop:
                    break
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    t0 = time.perf_counter()
    ths = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    el = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return nq * sum(counts) / el


# ---------------------------------------------------------------------------------------------
# LanceDB.
# ---------------------------------------------------------------------------------------------

class LancePeer(Peer):
    family = "lancedb"
    kind = "ivf"
    how = ("lancedb (embedded, Lance format on local disk): table.search(query matrix), one "
           "result table with query_index (recall: every query in one call; timed calls: "
           "slices of at most slow_batch queries in quick mode); Lance's own "
           "thread pool (all cores) serves the call and is not configurable per call, so only "
           "the T-thread figure is reported; latency: one query per call")

    def thread_counts(self, T):
        return [T]

    def do_build(self, base, metric, nlist, m, work):
        import lancedb
        import numpy as np
        import pyarrow as pa
        n, d = base.shape
        self.dir = os.path.join(work, "lancedb")
        shutil.rmtree(self.dir, ignore_errors=True)
        db = lancedb.connect(self.dir)
        self.metric = "l2" if metric == "l2" else "dot"
        t0 = time.perf_counter()
        tbl = db.create_table("bench", pa.table({
            "id": pa.array(np.arange(n, dtype=np.int64)),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(base.ravel()), d)}))
        t1 = time.perf_counter()
        tbl.create_index(metric=self.metric, num_partitions=nlist, num_sub_vectors=m,
                         num_bits=8, index_type="IVF_PQ", vector_column_name="vector")
        t2 = time.perf_counter()
        self.tbl, self.nlist = tbl, nlist
        size = None
        try:
            size = tbl.list_indices()[0].size_bytes
        except Exception:  # noqa: BLE001 - older/newer API: fall back to the directory size
            pass
        self.build = {"build_s": t2 - t1, "ingest_rows_per_s": n / (t1 - t0),
                      "num_partitions": nlist, "num_sub_vectors": m, "num_bits": 8,
                      "distance": self.metric,
                      # Lance trains at most one partition per 256 rows and says so in a
                      # warning ("training 39 of the 400 requested IVF partitions" at 10k rows).
                      "effective_num_partitions": min(nlist, max(1, n // 256)),
                      "note": "Lance trains min(num_partitions, n / 256) partitions, so its nprobe "
                              "is not comparable with the other IVF systems' at small n"}
        self.memory = {"bytes_per_vector": size / n if size else None,
                       "dataset_bytes_per_vector": dir_bytes(self.dir) / n,
                       "accounting": "index size_bytes (list_indices) / n; dataset = the whole "
                                     "Lance directory (raw vectors + index) / n"}

    def rows(self):
        ps = sorted({p for p in self.ctx.get("slow_nprobes") or self.ctx["nprobes"]
                     if p <= self.nlist})
        return [[{"nprobe": p, "refine": r} for p in ps] for r in self.ctx["refines"]]

    def _query(self, q, point):
        s = self.tbl.search(q).distance_type(self.metric).limit(self.k) \
            .nprobes(point["nprobe"]).select(["id", "_distance"])
        rf = max(1, point["refine"] // self.k)
        if rf > 1:
            s = s.refine_factor(rf)
        return s

    def measure(self, point, threads, min_s, ids_needed):
        import numpy as np

        def batch():
            t = self._query(self.q, point).to_arrow()
            qi = t["query_index"].to_numpy()
            idv = t["id"].to_numpy()
            dist = t["_distance"].to_numpy()
            order = np.lexsort((dist, qi))
            out = [[] for _ in range(self.nq)]
            for j in order:
                out[qi[j]].append(int(idv[j]))
            return out
        nsub = min(self.nq, self.ctx.get("slow_batch") or self.nq)
        sub = self.q[:nsub]
        ids, qps = timed_batch(batch, self.nq, min_s,
                               timed_fn=lambda: self._query(sub, point).to_arrow(),
                               timed_nq=nsub)
        lat = latencies(lambda i: self._query(self.q[i], point).to_arrow(), self.nq,
                        self.ctx.get("slow_latency_queries") or self.ctx["latency_queries"])
        return self._result(ids, qps, lat, ids_needed)

    def close(self):
        self.tbl = None
        shutil.rmtree(self.dir, ignore_errors=True)
