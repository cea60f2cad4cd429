"""Rosetta as a VectorDBBench client (the ``VectorDB`` interface), over rosettad's wire protocol
with the ``rosetta`` Python client (clients/python).

The collection has one space ``s`` (the dataset's dimension and metric), one vector field ``v``
(with an ``ivf_pq`` index or none, from the case config) and an int attribute ``id`` (plus a
string attribute ``label`` for label-filter cases). VectorDBBench's integer ids are the record ids
(as strings) and also the ``id`` attribute, which the ``NumGE`` filter (``id >= value``) uses;
``search_embedding`` maps hits back with ``int()``.

Lifecycle, as VectorDBBench drives it: ``__init__`` (once; creates the collection, dropping an
old one with ``drop_old``) -> the object is copied to worker processes / threads -> in each,
``with db.init():`` opens a connection -> ``insert_embeddings`` batches, ``optimize()`` (builds
the index and waits), ``prepare_filter`` + ``search_embedding``. No connection is held outside
``init()``, so copies are cheap and safe. Inside ``init()`` every thread that calls the adapter
gets its own connection (the server answers one request per connection at a time), so
VectorDBBench's threaded insert and rate runners, which share one instance across threads
(``thread_safe = True``), really run in parallel.
"""

from __future__ import annotations

import copy
import logging
import threading
from contextlib import contextmanager
from typing import Any, Iterator, List, Optional, Tuple

import numpy as np

import rosetta

try:
    from vectordb_bench.backend.clients.api import VectorDB
    from vectordb_bench.backend.filter import Filter, FilterOp
except ImportError:
    from ._compat import FilterOp, VectorDB
    Filter = Any  # type: ignore[misc,assignment]

from .config import RosettaFlatConfig, RosettaIVFPQConfig

log = logging.getLogger(__name__)

_SPACE = "s"
_FIELD = "v"


class Rosetta(VectorDB):
    supported_filter_types: list = [FilterOp.NonFilter, FilterOp.NumGE, FilterOp.StrEqual]
    # Shared across threads safely: each thread opens its own connection (see _db()).
    thread_safe: bool = True

    def __init__(self, dim: int, db_config: dict,
                 db_case_config: Optional[Any], collection_name: str = "vdbbench",
                 drop_old: bool = False, with_scalar_labels: bool = False, **kwargs: Any) -> None:
        self.name = "Rosetta"
        self.dim = int(dim)
        self.db_config = dict(db_config)
        self.case_config = db_case_config if db_case_config is not None else RosettaIVFPQConfig()
        self.collection_name = collection_name
        self.with_scalar_labels = with_scalar_labels
        index_param = self.case_config.index_param()
        self._indexed = index_param["index"] != "flat"
        self._search_param = self.case_config.search_param()
        self._filter: Optional[dict] = None
        self._clients: Optional[dict] = None  # Thread id -> rosetta.Client, inside init().
        self._lock: Optional[threading.Lock] = None

        with self._connect() as db:
            exists = collection_name in db.list_collections()
            if exists and drop_old:
                log.info("Rosetta: dropping collection %s", collection_name)
                db.drop_collection(collection_name)
                exists = False
            if not exists:
                field: dict = {"space": _SPACE, "modality": "vector"}
                if self._indexed:
                    field["index"] = index_param["index"]
                attributes = {"id": "int"}
                if with_scalar_labels:
                    attributes["label"] = "string"
                db.create_collection({
                    "name": collection_name,
                    "spaces": {_SPACE: {"dim": self.dim, "metric": index_param["metric"]}},
                    "fields": {_FIELD: field},
                    "attributes": attributes})
                log.info("Rosetta: created collection %s (dim %d, %s)", collection_name,
                         self.dim, index_param)

    def _connect(self) -> rosetta.Client:
        c = self.db_config
        return rosetta.Client(c.get("host", "127.0.0.1"), int(c.get("port", 7700)),
                              token=c.get("token"), timeout=float(c.get("timeout", 300.0)))

    @contextmanager
    def init(self) -> Iterator[None]:
        self._lock = threading.Lock()
        self._clients = {threading.get_ident(): self._connect()}
        try:
            yield
        finally:
            clients, self._clients = self._clients, None
            for c in clients.values():
                c.close()

    def _db(self) -> rosetta.Client:
        """This thread's connection (opened on first use inside ``init()``)."""
        clients = self._clients
        assert clients is not None, "call the adapter inside `with db.init():`"
        tid = threading.get_ident()
        client = clients.get(tid)
        if client is None:
            client = self._connect()
            with self._lock:
                clients[tid] = client
        return client

    def copy_for_thread(self) -> "Rosetta":
        return copy.deepcopy(self)

    def __deepcopy__(self, memo: dict) -> "Rosetta":
        # A live connection (inside init()) is not copied: the copy opens its own in init().
        new = self.__class__.__new__(self.__class__)
        memo[id(self)] = new
        for key, value in self.__dict__.items():
            new.__dict__[key] = (None if key in ("_clients", "_lock")
                                 else copy.deepcopy(value, memo))
        return new

    def __getstate__(self) -> dict:  # Pickled into worker processes: no socket, no lock.
        state = dict(self.__dict__)
        state["_clients"] = None
        state["_lock"] = None
        return state

    def need_normalize_cosine(self) -> bool:
        return False  # The server normalises for cosine itself.

    def insert_embeddings(self, embeddings: Any, metadata: List[int],
                          labels_data: Optional[List[str]] = None,
                          **kwargs: Any) -> Tuple[int, Optional[Exception]]:
        """Upserts one batch: record ``str(metadata[i])`` gets vector ``embeddings[i]`` and
        attribute ``id = metadata[i]`` (and ``label``). Atomic per request; returns
        (rows written, None) or (0, the error)."""
        try:
            vectors = np.asarray(embeddings, dtype=np.float32)
            if vectors.ndim != 2 or vectors.shape[1] != self.dim:
                raise ValueError(f"Rosetta.insert_embeddings: embeddings must be n x {self.dim}, "
                                 f"got shape {vectors.shape}")
            if len(metadata) != vectors.shape[0]:
                raise ValueError(f"Rosetta.insert_embeddings: {vectors.shape[0]} embeddings but "
                                 f"{len(metadata)} ids")
            records = []
            for i, row in enumerate(vectors):
                ident = int(metadata[i])
                attrs: dict = {"id": ident}
                if self.with_scalar_labels and labels_data is not None:
                    attrs["label"] = str(labels_data[i])
                records.append({"id": str(ident), "vectors": {_FIELD: row}, "attributes": attrs})
            result = self._db().upsert(self.collection_name, records)
            return int(result.written), None
        except Exception as e:  # VectorDBBench retries on a returned error.
            log.warning("Rosetta: insert into %s failed: %s", self.collection_name, e)
            return 0, e

    def optimize(self, data_size: Optional[int] = None) -> None:
        """Seals what was inserted and builds its IVF-PQ index, waiting until it is ready
        (nothing to do without an index)."""
        if not self._indexed:
            return
        if self._clients is not None:
            self._db().build_index(self.collection_name, wait=True)
        else:
            with self._connect() as db:
                db.build_index(self.collection_name, wait=True)

    def prepare_filter(self, filters: Filter) -> None:
        kind = getattr(filters, "type", FilterOp.NonFilter)
        if kind == FilterOp.NonFilter:
            self._filter = None
        elif kind == FilterOp.NumGE:
            self._filter = {"attributes": {"id": {"gte": int(filters.int_value)}}}
        elif kind == FilterOp.StrEqual:
            self._filter = {"attributes": {"label": str(filters.label_value)}}
        else:
            raise ValueError(f"Rosetta: unsupported filter {filters!r}")

    def search_embedding(self, query: Any, k: int = 100, **kwargs: Any) -> List[int]:
        """The ids of the k best records (best first)."""
        hits = self._db().search(self.collection_name, np.asarray(query, dtype=np.float32),
                                   k=k, space=_SPACE, fields=_FIELD, filter=self._filter,
                                   explain=False, with_attributes=False, **self._search_param)
        return [int(h.id) for h in hits]


__all__ = ["Rosetta", "RosettaFlatConfig", "RosettaIVFPQConfig"]
