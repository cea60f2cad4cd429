"""VectorDBBench configuration classes for Rosetta: the connection (``RosettaConfig``) and the
per-case index / search parameters (``RosettaIVFPQConfig``, ``RosettaFlatConfig``).

Laid out as VectorDBBench's own clients (vectordb_bench/backend/clients/<db>/config.py). Without
VectorDBBench installed, the base classes come from ``_compat`` (see there).
"""

from __future__ import annotations

from typing import Any, Optional

try:
    from pydantic import BaseModel, SecretStr
    from vectordb_bench.backend.clients.api import DBCaseConfig, DBConfig, IndexType, MetricType
except ImportError:
    from ._compat import BaseModel, DBCaseConfig, DBConfig, IndexType, MetricType
    SecretStr = str  # type: ignore[misc,assignment]


class RosettaConfig(DBConfig):
    """Where the rosettad server is. ``token``: a bearer token with the admin role (the adapter
    creates and drops collections), or None when the server runs without tokens."""

    host: str = "127.0.0.1"
    port: int = 7700
    token: Optional[SecretStr] = None
    timeout: float = 300.0

    def to_dict(self) -> dict:
        token: Any = self.token
        if token is not None and hasattr(token, "get_secret_value"):
            token = token.get_secret_value()
        return {"host": self.host, "port": int(self.port), "token": token or None,
                "timeout": float(self.timeout)}


def _rosetta_metric(metric_type: Any) -> str:
    """VectorDBBench's metric -> the schema's: L2 -> l2, COSINE -> cosine, IP/DP -> ip."""
    value = getattr(metric_type, "value", metric_type)
    table = {"L2": "l2", "COSINE": "cosine", "IP": "ip", "DP": "ip"}
    if value not in table:
        raise ValueError(f"Rosetta: metric_type {value!r} is not supported (L2, COSINE, IP)")
    return table[value]


class RosettaIVFPQConfig(BaseModel, DBCaseConfig):
    """An ``ivf_pq`` index on the vector field, built by ``optimize()``; searched with exact
    re-scoring of the candidates (docs/query-semantics.md). 0 means the server's default:
    nlist round(4 * sqrt(n)) per segment, m about dim / 4, nprobe and refine as documented."""

    index: IndexType = IndexType.IVFPQ
    metric_type: Optional[MetricType] = None  # VectorDBBench sets it from the dataset.
    nlist: int = 0
    m: int = 0
    nbits: int = 8  # 8 (float lookup tables) or 4 (fast-scan).
    nprobe: int = 0
    refine: int = 0

    def index_param(self) -> dict:
        index: dict = {"type": "ivf_pq", "nbits": int(self.nbits)}
        if self.nlist > 0:
            index["nlist"] = int(self.nlist)
        if self.m > 0:
            index["m"] = int(self.m)
        return {"metric": _rosetta_metric(self.metric_type), "index": index}

    def search_param(self) -> dict:
        return {"exact": False, "nprobe": int(self.nprobe), "refine": int(self.refine)}


class RosettaFlatConfig(BaseModel, DBCaseConfig):
    """No index: every search is exhaustive (``exact=True``)."""

    index: IndexType = IndexType.Flat
    metric_type: Optional[MetricType] = None

    def index_param(self) -> dict:
        return {"metric": _rosetta_metric(self.metric_type), "index": "flat"}

    def search_param(self) -> dict:
        return {"exact": True, "nprobe": 0, "refine": 0}


# What DB.Rosetta.case_config_cls(index_type) returns (see README: registering the client).
_rosetta_case_config = {
    IndexType.IVFPQ: RosettaIVFPQConfig,
    IndexType.Flat: RosettaFlatConfig,
    IndexType.NONE: RosettaFlatConfig,
    None: RosettaIVFPQConfig,
}
