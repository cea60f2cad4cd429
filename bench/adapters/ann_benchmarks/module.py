"""Rosetta for ann-benchmarks: the ``BaseANN`` interface over a Rosetta server.

ann-benchmarks (https://github.com/erikbern/ann-benchmarks) loads an algorithm as
``ann_benchmarks/algorithms/<name>/module.py`` and builds it from ``config.yml`` as
``Constructor(*base_args, *args)``; then it calls ``fit(X_train)``, for every query-argument group
``set_query_arguments(*query_args)``, then ``query(q, n)`` per test vector (or, with ``--batch``,
``batch_query(X_test, n)`` and ``get_batch_results()``), and finally ``done()``. ``query`` returns
row numbers of ``X_train``; ``str(algo)`` names the result.

Two constructors:

- ``RosettaFlat(metric)``: exhaustive (exact) search; no query arguments.
- ``RosettaIVFPQ(metric, nlist, m, nbits)``: the field carries an ``ivf_pq`` index (0 for nlist or
  m means the server's default: round(4 * sqrt(n)) lists, about 4 dimensions per sub-quantizer),
  built by ``fit``; ``set_query_arguments(nprobe, refine)`` (0 = the server's default).

``metric`` is ann-benchmarks' name: ``euclidean`` -> ``l2``, ``angular`` -> ``cosine``,
``ip``/``dot`` -> ``ip``. Other metrics (hamming, jaccard) raise ``ValueError``.

Where the server is:

- ``ROSETTA_ADDRESS=host:port`` (and ``ROSETTA_TOKEN`` when the server has tokens): an existing
  server. The adapter creates its collection there (``ROSETTA_COLLECTION``, default
  ``annb``, dropped first if it exists) and drops it in ``done()``.
- otherwise the adapter starts a throwaway ``rosettad`` (the binary in ``$ROSETTAD`` or on
  ``PATH``) with a temporary data directory and stops it in ``done()``. This is the mode for
  ann-benchmarks' Docker containers, which get no environment from the host.

Record ids are the row numbers as strings (``import``-style ids with an empty prefix), so a hit's
id maps back to a row with ``int()``.

The module imports without ann-benchmarks installed: it then derives from a minimal local
``BaseANN`` with the same method names (used by bench/adapters/smoke_test.py).
"""

from __future__ import annotations

import os
import resource
from typing import Any, List, Optional

import numpy as np

import rosetta

try:  # Inside ann-benchmarks.
    from ann_benchmarks.algorithms.base.module import BaseANN
except ImportError:  # Standalone (the smoke test, CI): the same method names, no psutil.

    class BaseANN:  # type: ignore[no-redef]
        """Stand-in for ann_benchmarks.algorithms.base.module.BaseANN."""

        name = "BaseANN"

        def done(self) -> None:
            pass

        def get_memory_usage(self) -> Optional[float]:
            return _rss_kb(os.getpid())

        def fit(self, X: np.ndarray) -> None:
            pass

        def query(self, q: np.ndarray, n: int) -> Any:
            return []

        def batch_query(self, X: np.ndarray, n: int) -> None:
            self.res = [self.query(q, n) for q in X]

        def get_batch_results(self) -> Any:
            return self.res

        def get_additional(self) -> dict:
            return {}

        def __str__(self) -> str:
            return self.name

_METRICS = {"euclidean": "l2", "l2": "l2", "angular": "cosine", "cosine": "cosine",
            "ip": "ip", "dot": "ip"}

# Queries per batch request: 1,000 queries of 960 floats and their hits stay far below the
# server's default frame limit.
_BATCH_QUERIES = 1000


def _rss_kb(pid: int) -> Optional[float]:
    """Resident set size of process ``pid`` in KiB (Linux /proc), None when unreadable."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return float(line.split()[1])
    except OSError:
        pass
    if pid == os.getpid():  # Not Linux: the peak, which is what getrusage offers.
        return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return None


class _Rosetta(BaseANN):
    """Shared part of the two constructors: connection, collection, queries."""

    def __init__(self, metric: str, index: Any) -> None:
        if metric not in _METRICS:
            raise ValueError(f"Rosetta: metric {metric!r} is not supported (supported: "
                             f"{', '.join(sorted(_METRICS))})")
        self._metric = _METRICS[metric]
        self._index = index  # "flat" or the ivf_pq object of the schema.
        self._collection = os.environ.get("ROSETTA_COLLECTION", "annb")
        self._server = None  # A RosettadServer context we started, if any.
        self._server_cm = None
        self._client: Optional[rosetta.Client] = None
        self._exact = index == "flat"
        self._nprobe = 0
        self._refine = 0
        self.res: List[np.ndarray] = []

    # ---- connection ----------------------------------------------------------------------------

    def _connect(self) -> rosetta.Client:
        if self._client is not None:
            return self._client
        address = os.environ.get("ROSETTA_ADDRESS")
        token = os.environ.get("ROSETTA_TOKEN") or None
        if address:
            host, _, port = address.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"ROSETTA_ADDRESS must be host:port, got {address!r}")
            self._client = rosetta.Client(host, int(port), token=token)
        else:
            from rosetta.testing import start_rosettad
            self._server_cm = start_rosettad()
            self._server = self._server_cm.__enter__()
            self._client = self._server.client()
        return self._client

    def get_memory_usage(self) -> Optional[float]:
        """KiB resident: the server's when this adapter started it (that is where the index
        lives), else this process's (the server is elsewhere; ann-benchmarks' index_size is then
        only the client's share). Connects first, so the figure before ``fit`` is the idle
        server's and ann-benchmarks' difference is the collection's."""
        self._connect()
        if self._server is not None:
            rss = _rss_kb(self._server.process.pid)
            if rss is not None:
                return rss
        return _rss_kb(os.getpid())

    # ---- build ---------------------------------------------------------------------------------

    def fit(self, X: np.ndarray) -> None:
        X = np.ascontiguousarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[0] == 0:
            raise ValueError(f"Rosetta.fit: X must be a non-empty 2-D array, got shape {X.shape}")
        db = self._connect()
        if self._collection in db.list_collections():
            db.drop_collection(self._collection)
        field: dict = {"space": "s", "modality": "vector"}
        if self._index != "flat":
            field["index"] = self._index
        db.create_collection({"name": self._collection,
                              "spaces": {"s": {"dim": int(X.shape[1]), "metric": self._metric}},
                              "fields": {"v": field}})
        db.import_vectors(self._collection, "v", X, id_prefix="", progress=False)
        if self._index != "flat":
            db.build_index(self._collection, wait=True)

    # ---- search --------------------------------------------------------------------------------

    def _search(self, q: np.ndarray, n: int) -> Any:
        return self._client.search(self._collection, q, k=n, space="s", fields="v",
                                   exact=self._exact, nprobe=self._nprobe, refine=self._refine,
                                   explain=False, with_attributes=False)

    def query(self, q: np.ndarray, n: int) -> np.ndarray:
        hits = self._search(np.asarray(q, dtype=np.float32), n)
        return np.fromiter((int(h.id) for h in hits), dtype=np.int64, count=len(hits))

    def batch_query(self, X: np.ndarray, n: int) -> None:
        """All queries in requests of up to 1,000 (one snapshot per request); results in
        ``get_batch_results()``."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        res: List[np.ndarray] = []
        for off in range(0, X.shape[0], _BATCH_QUERIES):
            chunk = X[off:off + _BATCH_QUERIES]
            out = self._search(chunk, n)
            if isinstance(out, rosetta.SearchResult):  # Defensive: a 2-D input is a batch.
                out = [out]
            res.extend(np.fromiter((int(h.id) for h in r), dtype=np.int64, count=len(r))
                       for r in out)
        self.res = res

    def get_batch_results(self) -> List[np.ndarray]:
        return self.res

    def get_additional(self) -> dict:
        """Stored with every result: which server answered (index_size is the server's RSS
        growth only with the adapter's own server)."""
        return {"rosetta_server": os.environ.get("ROSETTA_ADDRESS") or "throwaway"}

    # ---- teardown ------------------------------------------------------------------------------

    def done(self) -> None:
        try:
            if self._client is not None:
                if self._server is None:  # A shared server: leave it as we found it.
                    try:
                        self._client.drop_collection(self._collection)
                    except rosetta.NotFoundError:
                        pass
                self._client.close()
        finally:
            self._client = None
            if self._server_cm is not None:
                self._server_cm.__exit__(None, None, None)
                self._server_cm = None
                self._server = None


class RosettaFlat(_Rosetta):
    """Exhaustive search (``exact=True``): recall 1 by construction, the baseline."""

    def __init__(self, metric: str) -> None:
        super().__init__(metric, "flat")
        self.name = f"Rosetta(flat, metric={self._metric})"

    def set_query_arguments(self) -> None:
        pass


class RosettaIVFPQ(_Rosetta):
    """IVF-PQ per sealed segment, exact re-scoring of the candidates (docs/query-semantics.md)."""

    def __init__(self, metric: str, nlist: int = 0, m: int = 0, nbits: int = 8) -> None:
        index: dict = {"type": "ivf_pq", "nbits": int(nbits)}
        if int(nlist) > 0:
            index["nlist"] = int(nlist)
        if int(m) > 0:
            index["m"] = int(m)
        super().__init__(metric, index)
        self._build = f"nlist={nlist or 'auto'}, m={m or 'auto'}, nbits={nbits}"
        self.set_query_arguments()

    def set_query_arguments(self, nprobe: int = 0, refine: int = 0) -> None:
        """``nprobe``: IVF lists probed per segment; ``refine``: candidates re-scored exactly per
        field. 0 = the server's default for either."""
        self._nprobe = int(nprobe)
        self._refine = int(refine)
        self.name = (f"Rosetta(ivf_pq, {self._build}, nprobe={nprobe or 'auto'}, "
                     f"refine={refine or 'auto'})")
