"""Rosetta through bench/rosetta_driver: embedded (the engine inside the driver process) and
through a rosettad server over loopback, on the same on-disk database.

Per data set: the embedded driver creates two collections (`c8`: one field with an 8-bit IVF-PQ
index, `c4`: the same with 4 bits, nlist and m as given, i.e. the same as FAISS's), imports the
base (ingest rate), builds the indexes (build time, waits), and reads the process's resident
memory and the index's bytes per vector (Describe). Flat = exact search ("exact": true) on `c8`.
Then the driver quits, a rosettad is started on the same directory (the indexes load from disk
without retraining), a second driver connects to it, and the same searches run again through the
wire protocol. Server ingest is measured by importing the base into a third, unindexed
collection through the server (then dropped).

Searches: one query per request (BATCH = 1), CLIENTS = 1 and CLIENTS = T client threads, each
after the driver's own warm-up pass over every query (excluded from the timing; its hit ids give
the recall); latency percentiles are per request, i.e. per query.
"""

import json
import os
import shutil
import signal
import subprocess
import time

from common import log, rss_bytes


class DriverError(RuntimeError):
    pass


class Driver:
    def __init__(self, exe, stderr_path):
        self.stderr = open(stderr_path, "a")
        self.proc = subprocess.Popen([exe], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, text=True)

    def cmd(self, text):
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise DriverError(f"rosetta_driver exited (status {self.proc.poll()}) on: {text}")
        reply = json.loads(line)
        if "error" in reply:
            raise DriverError(f"{text.split()[0]}: {reply['error']}")
        return reply

    def close(self):
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=120)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        self.stderr.close()


class Server:
    def __init__(self, exe, data_dir, threads, stderr_path):
        self.stderr = open(stderr_path, "a")
        self.proc = subprocess.Popen(
            [exe, "--data", data_dir, "--listen", "127.0.0.1:0", "--threads", str(threads),
             "--sync", "none"], stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        line = self.proc.stdout.readline()
        if " listening on " not in line:
            self.proc.kill()
            raise DriverError(f"rosettad did not start (banner {line!r}, status "
                              f"{self.proc.poll()}); see {stderr_path}")
        self.banner = line.strip()
        addr = line.split(" listening on ")[1].split()[0]
        self.host, port = addr.rsplit(":", 1)
        self.port = int(port)

    def rss(self):
        return rss_bytes(self.proc.pid)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()


def schema(name, d, metric, nlist, m, nbits):
    field = {"space": "s", "modality": "vector"}
    if nbits:
        field["index"] = {"type": "ivf_pq", "nlist": nlist, "m": m, "nbits": nbits}
    return {"name": name, "spaces": {"s": {"dim": d, "metric": metric}},
            "fields": {"v": field}}


def request(first_query, k, point):
    r = {"k": k, "inputs": [{"vector": [float(x) for x in first_query], "space": "s",
                             "field": "v"}],
         "normalize": "none", "explain": False}
    if point.get("exact"):
        r["exact"] = True
    else:
        r["exact"] = False
        r["nprobe"] = point["nprobe"]
        r["refine"] = point["refine"]
    return r


FLAT_BATCH = 64


class RosettaSystem:
    """One Rosetta configuration (mode embedded|server, variant flat|ivfpq8|ivfpq4)."""
    family = "rosetta"

    def __init__(self, mode, variant, ctx):
        self.mode, self.variant, self.ctx = mode, variant, ctx
        self.name = f"rosetta-{mode}-{variant}"
        self.collection = "c4" if variant == "ivfpq4" else "c8"
        self.kind = "flat" if variant in ("flat", "flatbatch") else "ivf"
        # flatbatch: exact search with FLAT_BATCH queries per request (Database::SearchBatch:
        # single-field queries are scored 8 at a time in one pass over the vectors), the
        # counterpart of a peer's batch call.
        self.batch = FLAT_BATCH if variant == "flatbatch" else 1
        self.build = {}
        self.memory = {}
        self.only_points = None
        self.how = (f"{self.batch} quer{'y' if self.batch == 1 else 'ies'} per request "
                    f"(BATCH={self.batch}); 1 thread = CLIENTS 1, T threads = CLIENTS T "
                    "concurrent client threads" +
                    (" each with its own loopback connection to rosettad --threads T"
                     if mode == "server" else " on the embedded engine (search pool of T threads)")
                    + "; warm-up pass excluded; latency per request" +
                    (" = per query" if self.batch == 1 else f" (of {self.batch} queries)"))

    def rows(self):
        if self.kind == "flat":
            return [[{"exact": True}]]
        if self.only_points is not None:
            # Each point its own row: no early stop (they are the embedded run's Pareto points).
            return [[p] for p in self.only_points]
        nlist = self.ctx["nlist"]
        nprobes = self.ctx["nprobes"]
        ps = sorted({p for p in nprobes if p <= nlist} | ({nlist} if nlist <= max(nprobes)
                                                          else set()))
        return [[{"nprobe": p, "refine": r} for p in ps] for r in self.ctx["refines"]]

    def measure(self, point, threads, min_s, ids_needed):
        ctx = self.ctx
        req_path = os.path.join(ctx["work"], f"req_{self.name}.json")
        with open(req_path, "w") as f:
            json.dump(request(ctx["first_query"], ctx["k_search"], point), f)
        ids_path = os.path.join(ctx["work"], f"ids_{self.name}.txt")
        r = ctx["driver"].cmd(f"search {self.collection} {req_path} {ctx['query_file']} "
                              f"{threads} {self.batch} {min_s} {ids_path}")
        out = {"qps": r["qps"], "p50_us": r["p50_us"], "p99_us": r["p99_us"],
               "cpu_ms_per_query": 1e3 * r["cpu_s"] / max(1.0, r["queries"]),
               "queries_timed": r["queries"], "seconds": r["seconds"]}
        if "plan" in r:
            out["plan"] = r["plan"]
        if "exact" in r:
            out["exact"] = r["exact"]
        if ids_needed:
            ids = []
            with open(ids_path) as f:
                for line in f:
                    ids.append([int(t[1:]) for t in line.split()])
            out["ids"] = ids
        return out


class RosettaDeployment:
    """Builds the embedded database for one data set and hands out its systems."""

    def __init__(self, driver_exe, rosettad_exe, ds, work, threads, nlist, m, k_search, nprobes,
                 refines):
        self.driver_exe, self.rosettad_exe = driver_exe, rosettad_exe
        self.ds, self.work, self.threads = ds, work, threads
        self.nlist, self.m, self.k_search = nlist, m, k_search
        self.db_dir = os.path.join(work, "rosetta-db")
        shutil.rmtree(self.db_dir, ignore_errors=True)
        self.ctx = {"work": work, "first_query": ds["queries"][0], "k_search": k_search,
                    "query_file": ds["files"]["queries"], "driver": None, "nlist": nlist,
                    "nprobes": nprobes, "refines": refines}
        self.server = None
        self.info = {}

    def open_embedded(self):
        metric = self.ds["metric"]
        d = self.ds["d"]
        drv = Driver(self.driver_exe, os.path.join(self.work, "driver.stderr"))
        self.ctx["driver"] = drv
        rss0 = rss_bytes(drv.proc.pid)
        drv.cmd(f"open_embedded {self.db_dir} {self.threads} none")
        rss_open = drv.cmd("memory")["rss_bytes"]
        builds = {}
        for coll, nbits in (("c8", 8), ("c4", 4)):
            path = os.path.join(self.work, f"schema_{coll}.json")
            with open(path, "w") as f:
                json.dump(schema(coll, d, metric, self.nlist, self.m, nbits), f)
            drv.cmd(f"create {path}")
            imp = drv.cmd(f"import {coll} v {self.ds['files']['base']} r")
            rss_imp = drv.cmd("memory")["rss_bytes"]
            b = drv.cmd(f"build {coll}")
            rss_built = drv.cmd("memory")["rss_bytes"]
            desc = drv.cmd(f"describe {coll}")
            bpv = None
            segs = desc.get("segment_list") or []
            vectors = 0
            resolved = {}
            for s in segs:
                for fld in s.get("fields", []):
                    if fld.get("bytes_per_vector") is not None and fld.get("vectors"):
                        vectors += fld["vectors"]
                        bpv = (bpv or 0) + fld["bytes_per_vector"] * fld["vectors"]
                        resolved = {k: fld.get(k) for k in ("index", "state", "nlist", "m",
                                                             "nbits")}
            builds[coll] = {"ingest_rows_per_s": imp["rows_per_s"], "ingest_s": imp["seconds"],
                            "build_s": b["seconds"], "ready": b.get("ready"),
                            "failed": b.get("failed"),
                            "bytes_per_vector": bpv / vectors if vectors else None,
                            "indexed_vectors": vectors, "segments": len(segs),
                            "index": resolved,
                            "rss_after_import": rss_imp, "rss_after_build": rss_built,
                            "index_rss_delta_bytes": rss_built - rss_imp}
            log(f"    rosetta {coll}: ingest {imp['rows_per_s']:,.0f} rows/s, build "
                f"{b['seconds']:.2f} s, index {resolved}, "
                f"{builds[coll]['bytes_per_vector']} B/vector")
        rss_end = drv.cmd("memory")["rss_bytes"]
        self.info["embedded"] = {"rss_before_open": rss0, "rss_after_open": rss_open,
                                 "rss_after_builds": rss_end, "collections": builds}
        return builds

    def embedded_systems(self, variants):
        builds = self.info["embedded"]["collections"]
        out = []
        for v in variants:
            s = RosettaSystem("embedded", v, self.ctx)
            c = builds["c4" if v == "ivfpq4" else "c8"]
            s.build = {"ingest_rows_per_s": c["ingest_rows_per_s"],
                       "build_s": None if v in ("flat", "flatbatch") else c["build_s"],
                       "index": None if v in ("flat", "flatbatch") else c["index"]}
            s.memory = {"rss_bytes": self.info["embedded"]["rss_after_builds"],
                        "bytes_per_vector": (4 * self.ds["d"] if v in ("flat", "flatbatch")
                                             else c["bytes_per_vector"]),
                        "accounting": ("raw float32 vectors (4 d bytes)"
                                       if v in ("flat", "flatbatch") else
                                       "Describe(): the segment's IvfPqIndex bytes per vector "
                                       "(codes, ids, list overhead; raw vectors excluded)") +
                        "; rss = the driver process's VmRSS holding both collections (8-bit and "
                        "4-bit indexes + raw vectors)"}
            out.append(s)
        return out

    def close_embedded(self):
        if self.ctx["driver"]:
            self.ctx["driver"].close()
            self.ctx["driver"] = None

    def open_server(self):
        # The server serves a copy of the database (the embedded driver has quit, so the copy
        # is consistent), so that the embedded engine can be reopened on the original beside it
        # for the interleaved overhead rounds (a RocksDB directory has one owner at a time).
        self.served_dir = self.db_dir + "-served"
        shutil.rmtree(self.served_dir, ignore_errors=True)
        shutil.copytree(self.db_dir, self.served_dir)
        self.server = Server(self.rosettad_exe, self.served_dir, self.threads,
                             os.path.join(self.work, "rosettad.stderr"))
        rss_loaded = self.server.rss()
        drv = Driver(self.driver_exe, os.path.join(self.work, "driver.stderr"))
        self.ctx["driver"] = drv
        drv.cmd(f"connect {self.server.host} {self.server.port}")
        # Ingest through the server: a third, unindexed collection, then dropped.
        path = os.path.join(self.work, "schema_ingest.json")
        with open(path, "w") as f:
            json.dump(schema("ingest_probe", self.ds["d"], self.ds["metric"], 0, 0, 0), f)
        drv.cmd(f"create {path}")
        imp = drv.cmd(f"import ingest_probe v {self.ds['files']['base']} r")
        drv.cmd("drop ingest_probe")
        self.info["server"] = {"banner": self.server.banner, "rss_after_open": rss_loaded,
                               "ingest_rows_per_s": imp["rows_per_s"], "ingest_s": imp["seconds"]}
        log(f"    rosettad: {self.server.banner}; ingest over loopback "
            f"{imp['rows_per_s']:,.0f} rows/s")

    def server_systems(self, variants):
        out = []
        emb = self.info["embedded"]["collections"]
        for v in variants:
            s = RosettaSystem("server", v, self.ctx)
            c = emb["c4" if v == "ivfpq4" else "c8"]
            s.build = {"ingest_rows_per_s": self.info["server"]["ingest_rows_per_s"],
                       "build_s": None, "index": None if v == "flat" else c["index"],
                       "note": "indexes built by the embedded run, loaded by rosettad from disk"}
            s.memory = {"rss_bytes": None,
                        "bytes_per_vector": (4 * self.ds["d"] if v == "flat"
                                             else c["bytes_per_vector"]),
                        "accounting": "as embedded; rss = rosettad's VmRSS after the searches"}
            out.append(s)
        return out

    def server_rss(self):
        return self.server.rss() if self.server else None

    def close_server(self):
        if self.ctx["driver"]:
            self.ctx["driver"].close()
            self.ctx["driver"] = None
        if self.server:
            self.server.stop()
            self.server = None

    def overhead_rounds(self, points, rounds, min_s):
        """Server minus embedded latency per query, measured in alternating rounds (embedded
        reopened on the original directory beside the server on its copy): for each
        (collection, point), `rounds` pairs of CLIENTS = 1 runs of >= min_s each, the order
        flipping every round. Returns one entry per point with the rounds and the medians of
        the per-round differences (robust to load changing during the run)."""
        import statistics
        emb = Driver(self.driver_exe, os.path.join(self.work, "driver.stderr"))
        try:
            emb.cmd(f"open_embedded {self.db_dir} {self.threads} none")
            srv = self.ctx["driver"]
            out = []
            for label, coll, point in points:
                req = os.path.join(self.work, f"req_overhead_{label}.json")
                with open(req, "w") as f:
                    json.dump(request(self.ctx["first_query"], self.ctx["k_search"], point), f)
                ids = os.path.join(self.work, "ids_overhead.txt")
                rs = []
                for r in range(rounds):
                    pair = {}
                    order = (("embedded", emb), ("server", srv))
                    for mode, drv in (order if r % 2 == 0 else order[::-1]):
                        x = drv.cmd(f"search {coll} {req} {self.ctx['query_file']} 1 1 {min_s} "
                                    f"{ids}")
                        pair[mode] = {"p50_us": x["p50_us"], "p99_us": x["p99_us"],
                                      "qps": x["qps"], "requests": x["requests"]}
                    pair["p50_diff_us"] = pair["server"]["p50_us"] - pair["embedded"]["p50_us"]
                    pair["p99_diff_us"] = pair["server"]["p99_us"] - pair["embedded"]["p99_us"]
                    rs.append(pair)
                out.append({"variant": label, "collection": coll, "point": point, "rounds": rs,
                            "median_p50_us": statistics.median(p["p50_diff_us"] for p in rs),
                            "median_p99_us": statistics.median(p["p99_diff_us"] for p in rs),
                            "embedded_p50_us": statistics.median(p["embedded"]["p50_us"]
                                                                 for p in rs),
                            "server_p50_us": statistics.median(p["server"]["p50_us"] for p in rs),
                            "embedded_p99_us": statistics.median(p["embedded"]["p99_us"]
                                                                 for p in rs),
                            "server_p99_us": statistics.median(p["server"]["p99_us"] for p in rs)})
                log(f"    overhead {label} {point}: p50 {out[-1]['median_p50_us']:+.0f} us, p99 "
                    f"{out[-1]['median_p99_us']:+.0f} us (median of {rounds} alternating rounds)")
            return out
        finally:
            emb.close()

    def cleanup(self):
        self.close_embedded()
        self.close_server()
        shutil.rmtree(self.db_dir, ignore_errors=True)
        shutil.rmtree(self.db_dir + "-served", ignore_errors=True)
