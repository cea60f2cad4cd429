"""The data model as Python dataclasses (the wire protocol's tables, schema/types.h in C++).

Names and defaults follow the JSON forms of the CLI and of docs/query-semantics.md, so a schema
or record written for ``rosetta create-collection`` / ``rosetta upsert`` is accepted as a dict
too (:meth:`CollectionSchema.from_dict`, :meth:`Record.from_dict`), and ``to_dict()`` gives that
JSON form back. Vectors are NumPy ``float32`` arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Union

import numpy as np

__all__ = [
    "METRICS",
    "ATTRIBUTE_TYPES",
    "FUSIONS",
    "NORMALIZES",
    "MISSINGS",
    "ROLES",
    "Space",
    "IndexSpec",
    "Field",
    "CollectionSchema",
    "Provenance",
    "Record",
    "WriteResult",
    "GetResult",
    "QueryInput",
    "FieldExplanation",
    "Hit",
    "FieldPlan",
    "SearchResult",
    "CalibrationStats",
    "SegmentFieldIndex",
    "SegmentInfo",
    "CollectionInfo",
    "IndexProgress",
    "LatencyStats",
    "Stats",
    "ServerInfo",
    "EvalResult",
]

# Enum spellings of the JSON forms, in wire order (the index is the wire value).
METRICS = ("cosine", "ip", "l2")
ATTRIBUTE_TYPES = ("string", "int", "float", "bool", "string[]")
FUSIONS = ("weighted", "rrf", "max")
NORMALIZES = ("none", "minmax", "zscore", "calibrated")
MISSINGS = ("renormalize", "zero", "require")
FILTER_OPS = ("eq", "ne", "in", "gt", "gte", "lt", "lte")
ROLES = ("read", "write", "admin")
INDEX_TYPES = ("flat", "ivf_pq")
PROVENANCE_MEMBERS = ("source", "collected_at", "steps", "dataset_version", "encoder")


def _check_keys(what: str, d: Mapping[str, Any], allowed: Sequence[str]) -> None:
    if not isinstance(d, Mapping):
        raise TypeError(f"{what}: expected a dict, got {type(d).__name__}")
    for k in d:
        if k not in allowed:
            raise ValueError(f"{what}: unknown key {k!r} (expected one of: {', '.join(allowed)})")


def _enum(what: str, value: str, names: Sequence[str]) -> str:
    if value not in names:
        raise ValueError(f"{what}: unknown value {value!r} (expected one of: {', '.join(names)})")
    return value


# ------------------------------------------------------------------------------------------------
# Schemas
# ------------------------------------------------------------------------------------------------


@dataclass
class Space:
    """An embedding space: every field of a space holds vectors of ``dim`` float32 components."""

    dim: int
    metric: str = "cosine"  # "cosine" | "ip" | "l2"
    encoder: str = ""  # "name@version" of the encoder, informational.

    def __post_init__(self) -> None:
        _enum("metric", self.metric, METRICS)


@dataclass
class IndexSpec:
    """How a field is indexed in sealed segments: ``"flat"`` (exhaustive) or ``"ivf_pq"``.

    ``nlist``, ``m`` and ``nbits`` are IVF-PQ parameters (0 = the server's default, see
    docs/query-semantics.md "Indexes").
    """

    type: str = "flat"
    nlist: int = 0
    m: int = 0
    nbits: int = 0

    def __post_init__(self) -> None:
        _enum("index type", self.type, INDEX_TYPES)

    @staticmethod
    def from_json(value: Union[None, str, Mapping[str, Any], "IndexSpec"]) -> "IndexSpec":
        """``None``, ``"flat"``, ``"ivf_pq"`` or ``{"type": "ivf_pq", "nlist"?, "m"?, "nbits"?}``."""
        if value is None:
            return IndexSpec()
        if isinstance(value, IndexSpec):
            return value
        if isinstance(value, str):
            return IndexSpec(type=value)
        _check_keys("index", value, ("type", "nlist", "m", "nbits"))
        return IndexSpec(type=value.get("type", "flat"), nlist=int(value.get("nlist", 0)),
                         m=int(value.get("m", 0)), nbits=int(value.get("nbits", 0)))

    def to_json(self) -> Optional[Dict[str, Any]]:
        """The JSON form as the server writes it (None for the default, flat)."""
        if self.type == "flat":
            return None
        out: Dict[str, Any] = {"type": self.type}
        for k in ("nlist", "m", "nbits"):
            if getattr(self, k):
                out[k] = getattr(self, k)
        return out


@dataclass
class Field:
    """A vector field: which space its vectors live in, their modality and fusion weight."""

    space: str
    modality: str
    weight: float = 1.0
    index: IndexSpec = field(default_factory=IndexSpec)


@dataclass
class CollectionSchema:
    """A collection's schema.

    ``attributes`` maps a declared attribute name to its type: ``"string"``, ``"int"``,
    ``"float"``, ``"bool"`` or ``"string[]"``.
    """

    name: str
    spaces: Dict[str, Space] = field(default_factory=dict)
    fields: Dict[str, Field] = field(default_factory=dict)
    attributes: Dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for n, t in self.attributes.items():
            _enum(f"attribute {n!r}", t, ATTRIBUTE_TYPES)

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> "CollectionSchema":
        """The JSON form of ``rosetta create-collection --schema``::

            {"name": "photos",
             "spaces": {"clip": {"dim": 512, "metric": "cosine", "encoder": "clip@1"}},
             "fields": {"image": {"space": "clip", "modality": "image", "weight": 1.0,
                                  "index": "ivf_pq"}},
             "attributes": {"lang": "string", "year": "int"}}
        """
        _check_keys("schema", d, ("name", "spaces", "fields", "attributes"))
        spaces = {}
        for n, s in (d.get("spaces") or {}).items():
            if isinstance(s, Space):
                spaces[n] = s
                continue
            _check_keys(f"schema: spaces.{n}", s, ("dim", "metric", "encoder"))
            spaces[n] = Space(dim=int(s["dim"]), metric=s.get("metric", "cosine"),
                              encoder=s.get("encoder", ""))
        fields = {}
        for n, f in (d.get("fields") or {}).items():
            if isinstance(f, Field):
                fields[n] = f
                continue
            _check_keys(f"schema: fields.{n}", f, ("space", "modality", "weight", "index"))
            fields[n] = Field(space=f["space"], modality=f["modality"],
                              weight=float(f.get("weight", 1.0)),
                              index=IndexSpec.from_json(f.get("index")))
        return CollectionSchema(name=d["name"], spaces=spaces, fields=fields,
                                attributes=dict(d.get("attributes") or {}))

    def to_dict(self) -> Dict[str, Any]:
        """The JSON form (as ``rosetta describe --json`` prints it)."""
        fields: Dict[str, Any] = {}
        for n, f in self.fields.items():
            fj: Dict[str, Any] = {"space": f.space, "modality": f.modality, "weight": f.weight}
            ix = f.index.to_json()
            if ix is not None:
                fj["index"] = ix
            fields[n] = fj
        return {
            "name": self.name,
            "spaces": {n: {"dim": s.dim, "metric": s.metric, "encoder": s.encoder}
                       for n, s in self.spaces.items()},
            "fields": fields,
            "attributes": dict(self.attributes),
        }


# ------------------------------------------------------------------------------------------------
# Records
# ------------------------------------------------------------------------------------------------


@dataclass
class Provenance:
    """Where a sample came from; every member optional (None = not given; the server stores ""
    and [] as not given, so they come back as None)."""

    source: Optional[str] = None
    collected_at: Optional[str] = None  # RFC 3339, e.g. "2025-08-09T10:00:00Z".
    steps: Optional[List[str]] = None  # preprocessing steps, in order.
    dataset_version: Optional[str] = None
    encoder: Optional[str] = None

    @staticmethod
    def from_dict(d: Union[None, Mapping[str, Any], "Provenance"]) -> Optional["Provenance"]:
        if d is None or isinstance(d, Provenance):
            return d
        _check_keys("provenance", d, PROVENANCE_MEMBERS)
        steps = d.get("steps")
        return Provenance(source=d.get("source"), collected_at=d.get("collected_at"),
                          steps=list(steps) if steps is not None else None,
                          dataset_version=d.get("dataset_version"), encoder=d.get("encoder"))

    def to_dict(self) -> Dict[str, Any]:
        """Only the members that are set."""
        return {k: (list(v) if k == "steps" else v)
                for k in PROVENANCE_MEMBERS if (v := getattr(self, k)) is not None}

    def empty(self) -> bool:
        """True when no member is set (the server treats "" and [] as not set)."""
        return all(not getattr(self, k) for k in PROVENANCE_MEMBERS)


AttributeValue = Union[str, int, float, bool, List[str]]


@dataclass
class Record:
    """One record: vectors per field (any subset of the schema's fields; a missing field is a
    missing modality), per-record fusion weights, attributes and provenance."""

    id: str
    vectors: Dict[str, np.ndarray] = field(default_factory=dict)
    weights: Dict[str, float] = field(default_factory=dict)
    attributes: Dict[str, AttributeValue] = field(default_factory=dict)
    provenance: Optional[Provenance] = None

    @staticmethod
    def from_dict(d: Union[Mapping[str, Any], "Record"]) -> "Record":
        """The JSON Lines form of ``rosetta upsert``: ``{"id", "vectors"?, "weights"?,
        "attributes"?, "provenance"?}``; vectors may be lists or NumPy arrays."""
        if isinstance(d, Record):
            return d
        _check_keys("record", d, ("id", "vectors", "weights", "attributes", "provenance"))
        if "id" not in d:
            raise ValueError("record: missing key 'id'")
        return Record(id=d["id"], vectors=dict(d.get("vectors") or {}),
                      weights=dict(d.get("weights") or {}),
                      attributes=dict(d.get("attributes") or {}),
                      provenance=Provenance.from_dict(d.get("provenance")))

    def to_dict(self, with_vectors: bool = True) -> Dict[str, Any]:
        """The JSON form (vectors as lists of floats)."""
        out: Dict[str, Any] = {"id": self.id}
        if with_vectors:
            out["vectors"] = {k: np.asarray(v).tolist() for k, v in self.vectors.items()}
        if self.weights:
            out["weights"] = dict(self.weights)
        out["attributes"] = dict(self.attributes)
        if self.provenance is not None and not self.provenance.empty():
            out["provenance"] = self.provenance.to_dict()
        return out


@dataclass
class WriteResult:
    """The answer to a write.

    ``written``: records written (upsert), vectors set (import) or records deleted (delete);
    ``created``: records that did not exist before; ``not_found``: delete's ids that did not
    exist; ``batches``: atomic batches the call was sent as.
    """

    written: int = 0
    created: int = 0
    not_found: int = 0
    batches: int = 0

    @property
    def deleted(self) -> int:
        return self.written


@dataclass
class GetResult:
    """Found records in the order asked (vectors only when asked for) and the ids not found."""

    records: List[Record] = field(default_factory=list)
    not_found: List[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def ids(self) -> List[str]:
        return [r.id for r in self.records]

    def vectors(self, field_name: str) -> np.ndarray:
        """The field's vectors of the found records as one (n, dim) float32 array, in record
        order; raises KeyError naming the first record that lacks the field."""
        if not self.records:
            return np.zeros((0, 0), dtype=np.float32)
        for r in self.records:
            if field_name not in r.vectors:
                raise KeyError(f"record {r.id!r} has no vector for field {field_name!r}")
        return np.stack([r.vectors[field_name] for r in self.records]).astype(np.float32,
                                                                              copy=False)


# ------------------------------------------------------------------------------------------------
# Queries and results
# ------------------------------------------------------------------------------------------------


@dataclass
class QueryInput:
    """One input of a query: a vector of ``space``, targeting ``fields`` of that space (None or
    empty = every field of the space). ``vector`` may be 2-D (one row per query of a batch)."""

    vector: Any
    space: str
    modality: str = ""
    fields: Optional[List[str]] = None
    weight: float = 1.0


@dataclass
class FieldExplanation:
    """How one targeted field contributed to a hit (docs/query-semantics.md)."""

    field: str
    missing: bool = False  # the record has no vector for the field (the rest are 0).
    raw: float = 0.0  # the metric's score.
    normalized: float = 0.0
    weight: float = 0.0  # effective weight after the missing policy.
    contribution: float = 0.0  # part of the fused score.
    rank: int = 0  # 1-based rank in this field alone.


@dataclass
class Hit:
    """One search result. ``fields`` maps each targeted field to its explanation (empty unless
    ``explain``); ``attributes`` / ``provenance`` are set when ``with_attributes``."""

    id: str
    score: float
    fields: Dict[str, FieldExplanation] = field(default_factory=dict)
    attributes: Dict[str, AttributeValue] = field(default_factory=dict)
    provenance: Optional[Provenance] = None


@dataclass
class FieldPlan:
    """How one targeted field produced its candidates when an index was used."""

    field: str
    index: str  # "ivf_pq" or "flat".
    nprobe: int = 0
    indexed_segments: int = 0
    scanned_rows: int = 0
    candidates: int = 0


class SearchResult(List[Hit]):
    """The hits of one query, best first (a ``list`` of :class:`Hit`), with the response's
    metadata: ``took_us`` (the server's search time), ``exact`` (False when indexes narrowed the
    candidates) and ``plan`` (one :class:`FieldPlan` per targeted field when an index was used)."""

    took_us: int
    exact: bool
    plan: List[FieldPlan]

    def __init__(self, hits: Sequence[Hit] = (), took_us: int = 0, exact: bool = True,
                 plan: Optional[List[FieldPlan]] = None) -> None:
        super().__init__(hits)
        self.took_us = took_us
        self.exact = exact
        self.plan = plan or []

    def ids(self) -> List[str]:
        return [h.id for h in self]

    def __repr__(self) -> str:
        return (f"SearchResult({list.__repr__(self)}, took_us={self.took_us}, "
                f"exact={self.exact}, plan={self.plan!r})")


# ------------------------------------------------------------------------------------------------
# Collection information, indexes, telemetry
# ------------------------------------------------------------------------------------------------


@dataclass
class CalibrationStats:
    modality: str
    field: str
    samples: int = 0
    at_vectors: int = 0
    mean: float = 0.0
    stddev: float = 0.0
    top1_mean: float = 0.0


@dataclass
class SegmentFieldIndex:
    field: str
    index: str
    state: str
    vectors: int = 0
    nlist: int = 0
    m: int = 0
    nbits: int = 0
    bytes_per_vector: float = 0.0


@dataclass
class SegmentInfo:
    id: int
    state: str
    rows: int = 0
    live: int = 0
    fields: List[SegmentFieldIndex] = field(default_factory=list)


@dataclass
class CollectionInfo:
    """The answer to ``describe``."""

    name: str
    schema: CollectionSchema
    records: int = 0
    field_vectors: Dict[str, int] = field(default_factory=dict)
    segments: int = 0
    storage: str = ""
    kernel_backend: str = ""
    calibration: List[CalibrationStats] = field(default_factory=list)
    segment_list: List[SegmentInfo] = field(default_factory=list)
    #: The database's search device: ``"cpu"``, or e.g. ``"cuda:0 NVIDIA H100 80GB HBM3"``;
    #: ``""`` from a server that does not report it.
    device: str = ""
    #: Rows of this collection mirrored to the device, and the device bytes they take (0 on the
    #: CPU).
    device_rows: int = 0
    device_bytes: int = 0


@dataclass
class IndexProgress:
    """Progress of a collection's index builds (done when ``building`` is 0)."""

    segments: int = 0
    ready: int = 0
    building: int = 0
    failed: int = 0
    growing_rows: int = 0

    @property
    def done(self) -> bool:
        return self.building == 0


@dataclass
class LatencyStats:
    """Latency of one kind of operation in microseconds (percentiles within 6.25 %)."""

    operation: str
    count: int = 0
    errors: int = 0
    mean_us: float = 0.0
    p50_us: float = 0.0
    p90_us: float = 0.0
    p99_us: float = 0.0
    max_us: float = 0.0


@dataclass
class DeviceStats:
    """The search device's counters since the database was opened (all 0 on the CPU)."""

    searches: int = 0  #: queries whose candidates the device produced.
    batches: int = 0  #: device search calls (searches / batches = mean batch size).
    fallbacks: int = 0  #: eligible queries answered on the CPU after a device error...
    boundary_fallbacks: int = 0  #: ...or because of near-ties at the k-th score.
    cpu_queries: int = 0  #: exhaustive queries the device path does not take (their shape).
    mirrored_rows: int = 0  #: rows mirrored, all collections.
    mirror_bytes: int = 0  #: device bytes of the mirrors.
    memory_budget_bytes: int = 0  #: the mirrors' budget.
    unmirrored_rows: int = 0  #: published rows not mirrored (over budget or pending).


@dataclass
class Stats:
    """Telemetry of the server and its database (``rosetta stats``)."""

    uptime_s: float = 0.0
    collections: int = 0
    records: int = 0
    operations: List[LatencyStats] = field(default_factory=list)
    commit_batches: int = 0
    commit_groups: int = 0
    requests: List[LatencyStats] = field(default_factory=list)
    connections_open: int = 0
    connections_accepted: int = 0
    connections_refused: int = 0
    bytes_received: int = 0
    bytes_sent: int = 0
    #: The search device: ``"cpu"`` or ``"cuda:<ordinal> <name>"`` (``""``: not reported).
    device: str = ""
    device_stats: DeviceStats = field(default_factory=DeviceStats)


@dataclass
class ServerInfo:
    """What the server said in its HelloReply."""

    server_version: str
    protocol_version: int
    kernel_backend: str
    data_dir: str  # only for admin sessions, else "".
    collections: int
    max_frame_bytes: int
    role: str  # "read" | "write" | "admin".
    device: str = ""  # the search device ("cpu", "cuda:0 <name>"); "" when not reported.


@dataclass
class EvalResult:
    """The answer to ``evaluate`` (as ``rosetta eval``): recall@k for each k asked, throughput
    and per-call latency."""

    queries: int
    recall: Dict[int, float]
    qps: float
    latency_p50_us: float
    latency_p99_us: float

    def to_dict(self) -> Dict[str, Any]:
        """The JSON form of ``rosetta --json eval``."""
        out: Dict[str, Any] = {"queries": self.queries}
        for k in sorted(self.recall):
            out[f"recall@{k}"] = self.recall[k]
        out["qps"] = self.qps
        out["latency_us"] = {"p50": self.latency_p50_us, "p99": self.latency_p99_us}
        return out
