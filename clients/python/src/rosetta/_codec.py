"""Encoding requests and decoding replies: the data model <-> FlatBuffers frames.

Uses the code flatc generated from schema/protocol.fbs (``rosetta.wire``). Vectors go in and
out as NumPy float32 buffers (``Builder.CreateNumpyVector`` on the way out, ``np.frombuffer``
views of the reply on the way in): no per-float Python object is made on either path.

Python's FlatBuffers runtime has no verifier, so every decoding step runs inside
:func:`decode_reply`, which turns any exception of a malformed buffer (out-of-range offsets,
bad UTF-8, ...) into an InternalError "malformed reply".
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import flatbuffers
import numpy as np

from . import _fast, errors
from .types import (ATTRIBUTE_TYPES, FILTER_OPS, FUSIONS, INDEX_TYPES, METRICS, MISSINGS,
                    NORMALIZES, ROLES, CalibrationStats, CollectionInfo,
                    CollectionSchema, DeviceStats, Field, FieldExplanation, FieldPlan, GetResult, Hit,
                    IndexProgress, IndexSpec, LatencyStats, Provenance, Record, SearchResult,
                    SegmentFieldIndex, SegmentInfo, ServerInfo, Space, Stats, WriteResult)
from .wire import Attribute as W_Attribute
from .wire import AttributeDecl as W_AttributeDecl
from .wire import BuildIndex as W_BuildIndex
from .wire import CollectionInfo as W_CollectionInfo
from .wire import CollectionList as W_CollectionList
from .wire import CollectionSchema as W_CollectionSchema
from .wire import CreateCollection as W_CreateCollection
from .wire import Delete as W_Delete
from .wire import Describe as W_Describe
from .wire import DropCollection as W_DropCollection
from .wire import Error as W_Error
from .wire import Field as W_Field
from .wire import Filter as W_Filter
from .wire import Frame as W_Frame
from .wire import Get as W_Get
from .wire import GetResult as W_GetResult
from .wire import Hello as W_Hello
from .wire import HelloReply as W_HelloReply
from .wire import Import as W_Import
from .wire import IndexProgress as W_IndexProgress
from .wire import IndexProgressReply as W_IndexProgressReply
from .wire import IndexSpec as W_IndexSpec
from .wire import ListCollections as W_ListCollections
from .wire import Predicate as W_Predicate
from .wire import Provenance as W_Provenance
from .wire import QueryInput as W_QueryInput
from .wire import Record as W_Record
from .wire import Search as W_Search
from .wire import SearchRequest as W_SearchRequest
from .wire import SearchResults as W_SearchResults
from .wire import Space as W_Space
from .wire import Stats as W_Stats
from .wire import StatsReply as W_StatsReply
from .wire import StringItem as W_StringItem
from .wire import Upsert as W_Upsert
from .wire import Value as W_Value
from .wire import VectorEntry as W_VectorEntry
from .wire import WeightEntry as W_WeightEntry
from .wire import WriteResult as W_WriteResult
from .wire.Message import Message

PROTOCOL_VERSION = 1
FILE_IDENTIFIER = b"RSTA"
HEADER = struct.Struct("<I")
# Frames of at most this size before the Hello completes (docs/PROTOCOL.md "Limits").
MAX_PRE_HELLO_FRAME_BYTES = 4 << 10
# The format's ceiling: FlatBuffers buffers are < 2 GiB.
MAX_FRAME_BYTES_CEILING = (2 << 30) - (1 << 20)
# Engine batch limit: records per Upsert, rows per Import.
MAX_BATCH_RECORDS = 65536
MAX_TOKEN_BYTES = 1024
MAX_CLIENT_NAME_BYTES = 256

MESSAGE_NAMES = {v: k for k, v in vars(Message).items() if not k.startswith("_")}

_F32 = np.dtype("<f4")
_VALUE_STRING, _VALUE_INT, _VALUE_FLOAT, _VALUE_BOOL, _VALUE_STRING_LIST = range(5)


def message_name(body_type: int) -> str:
    return MESSAGE_NAMES.get(body_type, f"message type {body_type}")


# ================================================================================================
# Frames
# ================================================================================================


class Encoded:
    """One encoded request frame body, built once; the request id is patched in at send time
    (so a retry does not rebuild a large Import)."""

    __slots__ = ("buf", "start", "id_pos", "message_type")

    def __init__(self, buf: bytearray, start: int, id_pos: int, message_type: int) -> None:
        self.buf = buf
        self.start = start
        self.id_pos = id_pos
        self.message_type = message_type

    @property
    def nbytes(self) -> int:
        return len(self.buf) - self.start

    def with_id(self, request_id: int) -> memoryview:
        struct.pack_into("<Q", self.buf, self.id_pos, request_id)
        return memoryview(self.buf)[self.start:]

    def framed(self, request_id: int) -> List[memoryview]:
        """The length prefix and the body, ready for the socket."""
        body = self.with_id(request_id)
        return [memoryview(HEADER.pack(len(body))), body]


BuildFn = Callable[[flatbuffers.Builder], Tuple[int, int]]


def encode(build: BuildFn, size_hint: int = 256) -> Encoded:
    """Runs ``build(builder) -> (message type, offset of its table)`` and wraps it in a Frame."""
    b = flatbuffers.Builder(max(256, min(size_hint + 256, MAX_FRAME_BYTES_CEILING)))
    message_type, body = build(b)
    W_Frame.FrameStart(b)
    # A non-zero placeholder, so the slot is written (0 is the default) and can be patched.
    W_Frame.FrameAddRequestId(b, 0xFFFFFFFFFFFFFFFF)
    id_from_end = b.Offset()
    W_Frame.FrameAddBodyType(b, message_type)
    W_Frame.FrameAddBody(b, body)
    frame = W_Frame.FrameEnd(b)
    b.Finish(frame, FILE_IDENTIFIER)
    buf = b.Bytes
    return Encoded(buf, b.Head(), len(buf) - id_from_end, message_type)


@dataclass
class Reply:
    request_id: int
    message_type: int
    table: Any  # a flatbuffers.table.Table of the body, or None.


def decode_frame(buf: Any) -> Reply:
    """The frame's request id, message type and body table (no typed parsing yet)."""
    if len(buf) < 16:
        raise ValueError(f"frame of {len(buf)} bytes (at least 16)")
    if bytes(buf[4:8]) != FILE_IDENTIFIER:
        raise ValueError(f"wrong file identifier {bytes(buf[4:8])!r} (expected b'RSTA')")
    frame = W_Frame.Frame.GetRootAs(buf, 0)
    return Reply(frame.RequestId(), frame.BodyType(), frame.Body())


def error_of(table: Any, request_id: int) -> errors.RosettaError:
    e = W_Error.Error()
    e.Init(table.Bytes, table.Pos)
    message = e.Message()
    text = message.decode("utf-8", errors="replace") if message is not None else ""
    return errors.error_from_code(e.Code(), text, request_id)


def decode_reply(buf: Any, expect_id: Optional[int], parse: Optional[Callable[[Any], Any]],
                 want_type: Optional[int], peer: str) -> Tuple[Reply, Any]:
    """Decodes a reply frame; an Error body is raised as its exception (with ``request_id`` 0
    for connection-level errors). Any decoding failure is an InternalError."""
    try:
        reply = decode_frame(buf)
        is_error = reply.message_type == Message.Error and reply.table is not None
        # Request id 0: the server's error about the connection as a whole (it closes after it).
        if expect_id is not None and reply.request_id != expect_id and not (
                is_error and reply.request_id == 0):
            raise errors.InternalError(f"malformed reply from {peer}: reply to request "
                                       f"{reply.request_id}, expected {expect_id}")
        if is_error:
            raise error_of(reply.table, reply.request_id)
        if want_type is not None and reply.message_type != want_type:
            raise errors.InternalError(
                f"malformed reply from {peer}: expected {message_name(want_type)}, got "
                f"{message_name(reply.message_type)}")
        if reply.table is None:
            raise errors.InternalError(f"malformed reply from {peer}: no message body")
        value = parse(reply.table) if parse is not None else None
        return reply, value
    except errors.RosettaError:
        raise
    except Exception as e:  # noqa: BLE001 - any failure of a malformed buffer.
        raise errors.InternalError(f"malformed reply from {peer}: {type(e).__name__}: {e}") \
            from e


def _as(cls: type, table: Any) -> Any:
    obj = cls()
    obj.Init(table.Bytes, table.Pos)
    return obj


# ================================================================================================
# Encoding helpers
# ================================================================================================


def _offsets_vector(b: flatbuffers.Builder, offsets: Sequence[int]) -> int:
    b.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()


def _strings(b: flatbuffers.Builder, values: Sequence[str]) -> int:
    for v in values:
        _text(v, "string")
    return _fast.create_string_vector(b, values)


def _string_items(b: flatbuffers.Builder, values: Sequence[str]) -> int:
    offs = []
    for v in values:
        s = b.CreateString(_text(v, "string"))
        W_StringItem.StringItemStart(b)
        W_StringItem.StringItemAddValue(b, s)
        offs.append(W_StringItem.StringItemEnd(b))
    return _offsets_vector(b, offs)


def _text(v: Any, what: str) -> str:
    if not isinstance(v, str):
        raise TypeError(f"{what}: expected a str, got {type(v).__name__}")
    return v


def as_float32(v: Any, what: str) -> np.ndarray:
    """A C-contiguous little-endian float32 array (no copy when it already is one)."""
    try:
        arr = np.asarray(v)
    except Exception as e:  # noqa: BLE001
        raise TypeError(f"{what}: not an array of numbers ({e})") from e
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{what}: expected numbers, got an array of dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=_F32)


def _float_vector(b: flatbuffers.Builder, v: Any, what: str) -> int:
    arr = as_float32(v, what)
    if arr.ndim != 1:
        raise ValueError(f"{what}: expected a 1-D vector, got shape {arr.shape}")
    return b.CreateNumpyVector(arr)


def _scalar(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _value(b: flatbuffers.Builder, v: Any, what: str, allow_list: bool = True) -> int:
    v = _scalar(v)
    if isinstance(v, bool):
        W_Value.ValueStart(b)
        W_Value.ValueAddType(b, _VALUE_BOOL)
        W_Value.ValueAddBoolValue(b, v)
        return W_Value.ValueEnd(b)
    if isinstance(v, int):
        if not -(1 << 63) <= v < (1 << 63):
            raise ValueError(f"{what}: {v} does not fit in a 64-bit integer")
        W_Value.ValueStart(b)
        W_Value.ValueAddType(b, _VALUE_INT)
        W_Value.ValueAddIntValue(b, v)
        return W_Value.ValueEnd(b)
    if isinstance(v, float):
        W_Value.ValueStart(b)
        W_Value.ValueAddType(b, _VALUE_FLOAT)
        W_Value.ValueAddFloatValue(b, v)
        return W_Value.ValueEnd(b)
    if isinstance(v, str):
        s = b.CreateString(v)
        W_Value.ValueStart(b)
        W_Value.ValueAddStringValue(b, s)
        return W_Value.ValueEnd(b)
    if allow_list and isinstance(v, (list, tuple)):
        items = _string_items(b, [_text(x, f"{what}[{i}]") for i, x in enumerate(v)])
        W_Value.ValueStart(b)
        W_Value.ValueAddType(b, _VALUE_STRING_LIST)
        W_Value.ValueAddStringList(b, items)
        return W_Value.ValueEnd(b)
    kinds = "str, int, float, bool" + (" or a list of str" if allow_list else "")
    raise TypeError(f"{what}: expected {kinds}, got {type(v).__name__}")


def _attributes(b: flatbuffers.Builder, attrs: Mapping[str, Any], what: str) -> int:
    offs = []
    for name, v in attrs.items():
        val = _value(b, v, f"{what}.{name}")
        n = b.CreateString(_text(name, f"{what}: attribute name"))
        W_Attribute.AttributeStart(b)
        W_Attribute.AttributeAddName(b, n)
        W_Attribute.AttributeAddValue(b, val)
        offs.append(W_Attribute.AttributeEnd(b))
    return _offsets_vector(b, offs)


def _provenance(b: flatbuffers.Builder, p: Provenance) -> int:
    strs = {}
    for k in ("source", "collected_at", "dataset_version", "encoder"):
        v = getattr(p, k)
        if v is not None:
            strs[k] = b.CreateString(_text(v, f"provenance.{k}"))
    steps = _string_items(b, p.steps) if p.steps is not None else None
    W_Provenance.ProvenanceStart(b)
    if "source" in strs:
        W_Provenance.ProvenanceAddSource(b, strs["source"])
    if "collected_at" in strs:
        W_Provenance.ProvenanceAddCollectedAt(b, strs["collected_at"])
    if steps is not None:
        W_Provenance.ProvenanceAddSteps(b, steps)
    if "dataset_version" in strs:
        W_Provenance.ProvenanceAddDatasetVersion(b, strs["dataset_version"])
    if "encoder" in strs:
        W_Provenance.ProvenanceAddEncoder(b, strs["encoder"])
    return W_Provenance.ProvenanceEnd(b)


def _weights(b: flatbuffers.Builder, weights: Mapping[str, Any], what: str) -> int:
    offs = []
    for name, w in weights.items():
        n = b.CreateString(_text(name, f"{what}: field name"))
        W_WeightEntry.WeightEntryStart(b)
        W_WeightEntry.WeightEntryAddField(b, n)
        W_WeightEntry.WeightEntryAddWeight(b, float(w))
        offs.append(W_WeightEntry.WeightEntryEnd(b))
    return _offsets_vector(b, offs)


def _record(b: flatbuffers.Builder, r: Record) -> int:
    what = f"record {r.id!r}"
    rid = b.CreateString(_text(r.id, "record id"))
    vectors = None
    if r.vectors:
        offs = []
        for name, v in r.vectors.items():
            values = _float_vector(b, v, f"{what}: vectors.{name}")
            n = b.CreateString(_text(name, f"{what}: field name"))
            W_VectorEntry.VectorEntryStart(b)
            W_VectorEntry.VectorEntryAddField(b, n)
            W_VectorEntry.VectorEntryAddValues(b, values)
            offs.append(W_VectorEntry.VectorEntryEnd(b))
        vectors = _offsets_vector(b, offs)
    weights = _weights(b, r.weights, f"{what}: weights") if r.weights else None
    attrs = _attributes(b, r.attributes, f"{what}: attributes") if r.attributes else None
    prov = (_provenance(b, r.provenance)
            if r.provenance is not None and not r.provenance.empty() else None)
    W_Record.RecordStart(b)
    W_Record.RecordAddId(b, rid)
    if vectors is not None:
        W_Record.RecordAddVectors(b, vectors)
    if weights is not None:
        W_Record.RecordAddWeights(b, weights)
    if attrs is not None:
        W_Record.RecordAddAttributes(b, attrs)
    if prov is not None:
        W_Record.RecordAddProvenance(b, prov)
    return W_Record.RecordEnd(b)


def record_size_hint(r: Record) -> int:
    """Roughly the encoded size of a record, to cut upserts into frames under the limit."""
    n = 64 + len(r.id.encode("utf-8"))
    for name, v in r.vectors.items():
        n += 32 + len(name) + 4 * int(np.size(v))
    n += 32 * len(r.weights)
    for name, v in r.attributes.items():
        n += 48 + len(name) + (sum(len(x) + 24 for x in v) if isinstance(v, (list, tuple))
                               else len(v) if isinstance(v, str) else 8)
    if r.provenance is not None:
        n += 64 + sum(len(getattr(r.provenance, k) or "") for k in
                      ("source", "collected_at", "dataset_version", "encoder"))
        n += sum(len(s) + 24 for s in r.provenance.steps or [])
    return n


def _schema(b: flatbuffers.Builder, s: CollectionSchema) -> int:
    name = b.CreateString(_text(s.name, "schema name"))
    space_offs = []
    for n, sp in s.spaces.items():
        sn = b.CreateString(n)
        enc = b.CreateString(sp.encoder) if sp.encoder else None
        W_Space.SpaceStart(b)
        W_Space.SpaceAddName(b, sn)
        W_Space.SpaceAddDim(b, int(sp.dim))
        W_Space.SpaceAddMetric(b, METRICS.index(sp.metric))
        if enc is not None:
            W_Space.SpaceAddEncoder(b, enc)
        space_offs.append(W_Space.SpaceEnd(b))
    field_offs = []
    for n, f in s.fields.items():
        fn = b.CreateString(n)
        fs = b.CreateString(f.space)
        fm = b.CreateString(f.modality)
        ix = None
        if f.index.type != "flat":
            W_IndexSpec.IndexSpecStart(b)
            W_IndexSpec.IndexSpecAddType(b, INDEX_TYPES.index(f.index.type))
            W_IndexSpec.IndexSpecAddNlist(b, int(f.index.nlist))
            W_IndexSpec.IndexSpecAddM(b, int(f.index.m))
            W_IndexSpec.IndexSpecAddNbits(b, int(f.index.nbits))
            ix = W_IndexSpec.IndexSpecEnd(b)
        W_Field.FieldStart(b)
        W_Field.FieldAddName(b, fn)
        W_Field.FieldAddSpace(b, fs)
        W_Field.FieldAddModality(b, fm)
        W_Field.FieldAddWeight(b, float(f.weight))
        if ix is not None:
            W_Field.FieldAddIndex(b, ix)
        field_offs.append(W_Field.FieldEnd(b))
    attr_offs = []
    for n, t in s.attributes.items():
        an = b.CreateString(n)
        W_AttributeDecl.AttributeDeclStart(b)
        W_AttributeDecl.AttributeDeclAddName(b, an)
        W_AttributeDecl.AttributeDeclAddType(b, ATTRIBUTE_TYPES.index(t))
        attr_offs.append(W_AttributeDecl.AttributeDeclEnd(b))
    spaces = _offsets_vector(b, space_offs)
    fields = _offsets_vector(b, field_offs)
    attrs = _offsets_vector(b, attr_offs)
    W_CollectionSchema.CollectionSchemaStart(b)
    W_CollectionSchema.CollectionSchemaAddName(b, name)
    W_CollectionSchema.CollectionSchemaAddSpaces(b, spaces)
    W_CollectionSchema.CollectionSchemaAddFields(b, fields)
    W_CollectionSchema.CollectionSchemaAddAttributes(b, attrs)
    return W_CollectionSchema.CollectionSchemaEnd(b)


# ================================================================================================
# Requests
# ================================================================================================


def hello(protocol_version: int, token: Optional[str], client_name: str) -> BuildFn:
    def build(b: flatbuffers.Builder) -> Tuple[int, int]:
        tok = b.CreateString(token) if token else None
        cl = b.CreateString(client_name.encode("utf-8")[:MAX_CLIENT_NAME_BYTES]
                            .decode("utf-8", errors="ignore"))
        W_Hello.HelloStart(b)
        W_Hello.HelloAddProtocolVersion(b, protocol_version)
        if tok is not None:
            W_Hello.HelloAddToken(b, tok)
        W_Hello.HelloAddClient(b, cl)
        return Message.Hello, W_Hello.HelloEnd(b)
    return build


def create_collection(schema: CollectionSchema) -> BuildFn:
    def build(b: flatbuffers.Builder) -> Tuple[int, int]:
        s = _schema(b, schema)
        W_CreateCollection.CreateCollectionStart(b)
        W_CreateCollection.CreateCollectionAddSchema(b, s)
        return Message.CreateCollection, W_CreateCollection.CreateCollectionEnd(b)
    return build


def list_collections() -> BuildFn:
    def build(b: flatbuffers.Builder) -> Tuple[int, int]:
        W_ListCollections.ListCollectionsStart(b)
        return Message.ListCollections, W_ListCollections.ListCollectionsEnd(b)
    return build


def _collection_only(message_type: int, module: Any, table: str, collection: str) -> BuildFn:
    start = getattr(module, f"{table}Start")
    add = getattr(module, f"{table}AddCollection")
    end = getattr(module, f"{table}End")

    def build(b: flatbuffers.Builder) -> Tuple[int, int]:
        c = b.CreateString(_text(collection, "collection name"))
        start(b)
        add(b, c)
        return message_type, end(b)
    return build


def describe(collection: str) -> BuildFn:
    return _collection_only(Message.Describe, W_Describe, "Describe", collection)


def drop_collection(collection: str) -> BuildFn:
    return _collection_only(Message.DropCollection, W_DropCollection, "DropCollection",
                            collection)


def index_progress(collection: str) -> BuildFn:
    return _collection_only(Message.IndexProgress, W_IndexProgress, "IndexProgress", collection)


def build_index(collection: str, field_name: str) -> BuildFn:
    def build(b: flatbuffers.Builder) -> Tuple[int, int]:
        c = b.CreateString(_text(collection, "collection name"))
        f = b.CreateString(field_name) if field_name else None
        W_BuildIndex.BuildIndexStart(b)
        W_BuildIndex.BuildIndexAddCollection(b, c)
        if f is not None:
            W_BuildIndex.BuildIndexAddField(b, f)
        return Message.BuildIndex, W_BuildIndex.BuildIndexEnd(b)
    return build


def stats() -> BuildFn:
    def build(b: flatbuffers.Builder) -> Tuple[int, int]:
        W_Stats.StatsStart(b)
        return Message.Stats, W_Stats.StatsEnd(b)
    return build


def upsert(collection: str, records: Sequence[Record]) -> BuildFn:
    def build(b: flatbuffers.Builder) -> Tuple[int, int]:
        offs = [_record(b, r) for r in records]
        rec = _offsets_vector(b, offs)
        c = b.CreateString(_text(collection, "collection name"))
        W_Upsert.UpsertStart(b)
        W_Upsert.UpsertAddCollection(b, c)
        W_Upsert.UpsertAddRecords(b, rec)
        return Message.Upsert, W_Upsert.UpsertEnd(b)
    return build


def import_rows(collection: str, field_name: str, rows: np.ndarray, id_prefix: str,
                id_offset: int, provenance: Optional[Provenance]) -> BuildFn:
    """``rows``: a C-contiguous (n, dim) float32 array."""
    def build(b: flatbuffers.Builder) -> Tuple[int, int]:
        data = _fast.create_float_vector(b, rows)
        c = b.CreateString(_text(collection, "collection name"))
        f = b.CreateString(_text(field_name, "field name"))
        p = b.CreateString(id_prefix) if id_prefix else None
        prov = (_provenance(b, provenance)
                if provenance is not None and not provenance.empty() else None)
        W_Import.ImportStart(b)
        W_Import.ImportAddCollection(b, c)
        W_Import.ImportAddField(b, f)
        W_Import.ImportAddRows(b, rows.shape[0])
        W_Import.ImportAddDim(b, rows.shape[1])
        W_Import.ImportAddData(b, data)
        if p is not None:
            W_Import.ImportAddIdPrefix(b, p)
        W_Import.ImportAddIdOffset(b, id_offset)
        if prov is not None:
            W_Import.ImportAddProvenance(b, prov)
        return Message.Import, W_Import.ImportEnd(b)
    return build


def get(collection: str, ids: Sequence[str], with_vectors: bool) -> BuildFn:
    def build(b: flatbuffers.Builder) -> Tuple[int, int]:
        c = b.CreateString(_text(collection, "collection name"))
        i = _strings(b, ids)
        W_Get.GetStart(b)
        W_Get.GetAddCollection(b, c)
        W_Get.GetAddIds(b, i)
        W_Get.GetAddWithVectors(b, bool(with_vectors))
        return Message.Get, W_Get.GetEnd(b)
    return build


def delete(collection: str, ids: Sequence[str]) -> BuildFn:
    def build(b: flatbuffers.Builder) -> Tuple[int, int]:
        c = b.CreateString(_text(collection, "collection name"))
        i = _strings(b, ids)
        W_Delete.DeleteStart(b)
        W_Delete.DeleteAddCollection(b, c)
        W_Delete.DeleteAddIds(b, i)
        return Message.Delete, W_Delete.DeleteEnd(b)
    return build


# ---- search ------------------------------------------------------------------------------------


@dataclass
class WireInput:
    vector: np.ndarray  # 1-D float32.
    space: str
    modality: str
    fields: List[str]
    weight: float


@dataclass
class Predicate:
    target: int  # 0 attribute, 1 provenance.
    key: str
    op: int
    values: List[Any]


@dataclass
class WireQuery:
    inputs: List[WireInput]
    k: int = 10
    weights: Optional[Mapping[str, float]] = None
    fusion: str = "weighted"
    normalize: str = "calibrated"
    missing: str = "renormalize"
    predicates: Optional[List[Predicate]] = None
    has_fields: Optional[List[str]] = None
    exact: bool = False
    explain: bool = True
    with_attributes: bool = True
    nprobe: int = 0
    refine: int = 0


def parse_filter(f: Optional[Mapping[str, Any]]) -> Tuple[List[Predicate], List[str]]:
    """The JSON filter form of docs/query-semantics.md:
    ``{"attributes": {...}, "provenance": {...}, "has_fields": [...]}``, each member mapping a
    key to a scalar (eq), an operator dict (``{"gte": 2020, "in": [..]}``, one predicate per
    operator) or a list of operator dicts."""
    if f is None:
        return [], []
    if not isinstance(f, Mapping):
        raise TypeError(f"filter: expected a dict, got {type(f).__name__}")
    for k in f:
        if k not in ("attributes", "provenance", "has_fields"):
            raise ValueError(f"filter: unknown key {k!r} (expected one of: attributes, "
                             "provenance, has_fields)")
    preds: List[Predicate] = []
    for target, member in ((0, "attributes"), (1, "provenance")):
        group = f.get(member) or {}
        if not isinstance(group, Mapping):
            raise TypeError(f"filter.{member}: expected a dict, got {type(group).__name__}")
        for key, cond in group.items():
            where = f"filter.{member}.{key}"
            if isinstance(cond, Mapping):
                ops = [cond]
            elif isinstance(cond, (list, tuple)):
                if not all(isinstance(c, Mapping) for c in cond):
                    raise ValueError(f"{where}: a list must hold operator dicts (write "
                                     "{'in': [...]} for a set of values)")
                ops = list(cond)
            else:
                preds.append(Predicate(target, key, 0, [cond]))
                continue
            for op_dict in ops:
                for op, value in op_dict.items():
                    if op not in FILTER_OPS:
                        raise ValueError(f"{where}: unknown operator {op!r} (expected one of: "
                                         f"{', '.join(FILTER_OPS)})")
                    if op == "in":
                        if not isinstance(value, (list, tuple)):
                            raise ValueError(f"{where}.in: expected a list of values")
                        preds.append(Predicate(target, key, FILTER_OPS.index(op), list(value)))
                    else:
                        preds.append(Predicate(target, key, FILTER_OPS.index(op), [value]))
    has = f.get("has_fields") or []
    if isinstance(has, str) or not isinstance(has, (list, tuple)):
        raise TypeError("filter.has_fields: expected a list of field names")
    return preds, list(has)


def _search_request(b: flatbuffers.Builder, q: WireQuery, what: str) -> int:
    in_offs = []
    for i, inp in enumerate(q.inputs):
        vec = b.CreateNumpyVector(inp.vector)
        sp = b.CreateString(_text(inp.space, f"{what}: inputs[{i}].space"))
        mod = b.CreateString(inp.modality) if inp.modality else None
        flds = _string_items(b, inp.fields) if inp.fields else None
        W_QueryInput.QueryInputStart(b)
        W_QueryInput.QueryInputAddVector(b, vec)
        W_QueryInput.QueryInputAddSpace(b, sp)
        if mod is not None:
            W_QueryInput.QueryInputAddModality(b, mod)
        if flds is not None:
            W_QueryInput.QueryInputAddFields(b, flds)
        W_QueryInput.QueryInputAddWeight(b, float(inp.weight))
        in_offs.append(W_QueryInput.QueryInputEnd(b))
    inputs = _offsets_vector(b, in_offs)
    weights = _weights(b, q.weights, f"{what}: weights") if q.weights else None
    filt = None
    if q.predicates or q.has_fields:
        pred_offs = []
        for p in q.predicates or []:
            vals = _offsets_vector(b, [_value(b, v, f"{what}: filter {p.key!r}", False)
                                       for v in p.values])
            key = b.CreateString(_text(p.key, f"{what}: filter key"))
            W_Predicate.PredicateStart(b)
            W_Predicate.PredicateAddTarget(b, p.target)
            W_Predicate.PredicateAddKey(b, key)
            W_Predicate.PredicateAddOp(b, p.op)
            W_Predicate.PredicateAddValues(b, vals)
            pred_offs.append(W_Predicate.PredicateEnd(b))
        preds = _offsets_vector(b, pred_offs)
        has = _string_items(b, q.has_fields) if q.has_fields else None
        W_Filter.FilterStart(b)
        W_Filter.FilterAddPredicates(b, preds)
        if has is not None:
            W_Filter.FilterAddHasFields(b, has)
        filt = W_Filter.FilterEnd(b)
    W_SearchRequest.SearchRequestStart(b)
    W_SearchRequest.SearchRequestAddK(b, int(q.k))
    W_SearchRequest.SearchRequestAddInputs(b, inputs)
    if weights is not None:
        W_SearchRequest.SearchRequestAddWeights(b, weights)
    W_SearchRequest.SearchRequestAddFusion(b, FUSIONS.index(q.fusion))
    W_SearchRequest.SearchRequestAddNormalize(b, NORMALIZES.index(q.normalize))
    W_SearchRequest.SearchRequestAddMissing(b, MISSINGS.index(q.missing))
    if filt is not None:
        W_SearchRequest.SearchRequestAddFilter(b, filt)
    W_SearchRequest.SearchRequestAddExact(b, bool(q.exact))
    W_SearchRequest.SearchRequestAddExplain(b, bool(q.explain))
    W_SearchRequest.SearchRequestAddWithAttributes(b, bool(q.with_attributes))
    W_SearchRequest.SearchRequestAddNprobe(b, int(q.nprobe))
    W_SearchRequest.SearchRequestAddRefine(b, int(q.refine))
    return W_SearchRequest.SearchRequestEnd(b)


def search(collection: str, queries: Sequence[WireQuery]) -> BuildFn:
    def build(b: flatbuffers.Builder) -> Tuple[int, int]:
        offs = [_search_request(b, q, f"query {i}" if len(queries) > 1 else "query")
                for i, q in enumerate(queries)]
        reqs = _offsets_vector(b, offs)
        c = b.CreateString(_text(collection, "collection name"))
        W_Search.SearchStart(b)
        W_Search.SearchAddCollection(b, c)
        W_Search.SearchAddRequests(b, reqs)
        return Message.Search, W_Search.SearchEnd(b)
    return build


# ================================================================================================
# Replies
# ================================================================================================


def _s(v: Optional[bytes]) -> str:
    return v.decode("utf-8") if v is not None else ""


def _os(v: Optional[bytes]) -> Optional[str]:
    return v.decode("utf-8") if v is not None else None


def _value_of(v: Any) -> Any:
    t = v.Type()
    if t == _VALUE_STRING:
        return _s(v.StringValue())
    if t == _VALUE_INT:
        return v.IntValue()
    if t == _VALUE_FLOAT:
        return v.FloatValue()
    if t == _VALUE_BOOL:
        return bool(v.BoolValue())
    if t == _VALUE_STRING_LIST:
        return [_s(v.StringList(i).Value()) for i in range(v.StringListLength())]
    raise ValueError(f"unknown value type {t}")


def _attributes_of(obj: Any) -> Dict[str, Any]:
    out = {}
    for i in range(obj.AttributesLength()):
        a = obj.Attributes(i)
        out[_s(a.Name())] = _value_of(a.Value())
    return out


def _provenance_of(p: Any) -> Optional[Provenance]:
    if p is None:
        return None
    steps = None
    if not p.StepsIsNone():
        steps = [_s(p.Steps(i).Value()) for i in range(p.StepsLength())]
    return Provenance(source=_os(p.Source()), collected_at=_os(p.CollectedAt()), steps=steps,
                      dataset_version=_os(p.DatasetVersion()), encoder=_os(p.Encoder()))


def parse_hello_reply(t: Any) -> ServerInfo:
    h = _as(W_HelloReply.HelloReply, t)
    role = h.Role()
    return ServerInfo(server_version=_s(h.ServerVersion()), protocol_version=h.ProtocolVersion(),
                      kernel_backend=_s(h.KernelBackend()), data_dir=_s(h.DataDir()),
                      collections=h.Collections(), max_frame_bytes=h.MaxFrameBytes(),
                      role=ROLES[role] if 0 <= role < len(ROLES) else f"role {role}",
                      device=_s(h.Device()))


def parse_ok(t: Any) -> None:
    return None


def parse_write_result(t: Any) -> WriteResult:
    w = _as(W_WriteResult.WriteResult, t)
    return WriteResult(written=w.Written(), created=w.Created(), not_found=w.NotFound(),
                       batches=1)


def parse_collection_list(t: Any) -> List[str]:
    c = _as(W_CollectionList.CollectionList, t)
    return [_s(c.Names(i)) for i in range(c.NamesLength())]


def _schema_of(s: Any) -> CollectionSchema:
    spaces = {}
    for i in range(s.SpacesLength()):
        sp = s.Spaces(i)
        spaces[_s(sp.Name())] = Space(dim=sp.Dim(), metric=METRICS[sp.Metric()],
                                      encoder=_s(sp.Encoder()))
    fields = {}
    for i in range(s.FieldsLength()):
        f = s.Fields(i)
        ix = f.Index()
        spec = IndexSpec() if ix is None else IndexSpec(
            type=INDEX_TYPES[ix.Type()], nlist=ix.Nlist(), m=ix.M(), nbits=ix.Nbits())
        fields[_s(f.Name())] = Field(space=_s(f.Space()), modality=_s(f.Modality()),
                                     weight=f.Weight(), index=spec)
    attrs = {}
    for i in range(s.AttributesLength()):
        a = s.Attributes(i)
        attrs[_s(a.Name())] = ATTRIBUTE_TYPES[a.Type()]
    return CollectionSchema(name=_s(s.Name()), spaces=spaces, fields=fields, attributes=attrs)


def parse_collection_info(t: Any) -> CollectionInfo:
    c = _as(W_CollectionInfo.CollectionInfo, t)
    schema = _schema_of(c.Schema())
    fv = {}
    for i in range(c.FieldVectorsLength()):
        x = c.FieldVectors(i)
        fv[_s(x.Field())] = x.Count()
    cal = []
    for i in range(c.CalibrationLength()):
        x = c.Calibration(i)
        cal.append(CalibrationStats(modality=_s(x.Modality()), field=_s(x.Field()),
                                    samples=x.Samples(), at_vectors=x.AtVectors(), mean=x.Mean(),
                                    stddev=x.Stddev(), top1_mean=x.Top1Mean()))
    segs = []
    for i in range(c.SegmentListLength()):
        x = c.SegmentList(i)
        sf = []
        for j in range(x.FieldsLength()):
            y = x.Fields(j)
            sf.append(SegmentFieldIndex(field=_s(y.Field()), index=_s(y.Index()),
                                        state=_s(y.State()), vectors=y.Vectors(), nlist=y.Nlist(),
                                        m=y.M(), nbits=y.Nbits(),
                                        bytes_per_vector=y.BytesPerVector()))
        segs.append(SegmentInfo(id=x.Id(), state=_s(x.State()), rows=x.Rows(), live=x.Live(),
                                fields=sf))
    return CollectionInfo(name=schema.name, schema=schema, records=c.Records(), field_vectors=fv,
                          segments=c.Segments(), storage=_s(c.Storage()),
                          kernel_backend=_s(c.KernelBackend()), calibration=cal,
                          segment_list=segs, device=_s(c.Device()), device_rows=c.DeviceRows(),
                          device_bytes=c.DeviceBytes())


def _record_of(r: Any) -> Record:
    vectors = {}
    for j in range(r.VectorsLength()):
        v = r.Vectors(j)
        vectors[_s(v.Field())] = v.ValuesAsNumpy()
    weights = {}
    for j in range(r.WeightsLength()):
        w = r.Weights(j)
        weights[_s(w.Field())] = w.Weight()
    return Record(id=_s(r.Id()), vectors=vectors, weights=weights,
                  attributes=_attributes_of(r), provenance=_provenance_of(r.Provenance()))


def parse_get_result_generated(t: Any) -> GetResult:
    """GetResult through the generated accessors (the reference for _fast's reader)."""
    g = _as(W_GetResult.GetResult, t)
    records = [_record_of(g.Records(i)) for i in range(g.RecordsLength())]
    return GetResult(records=records, not_found=[_s(g.NotFound(i))
                                                 for i in range(g.NotFoundLength())])


def _hit_of(h: Any) -> Hit:
    fields = {}
    for j in range(h.FieldsLength()):
        f = h.Fields(j)
        name = _s(f.Field())
        fields[name] = FieldExplanation(field=name, missing=bool(f.Missing()), raw=f.Raw(),
                                        normalized=f.Normalized(), weight=f.Weight(),
                                        contribution=f.Contribution(), rank=f.Rank())
    return Hit(id=_s(h.Id()), score=h.Score(), fields=fields, attributes=_attributes_of(h),
               provenance=_provenance_of(h.Provenance()))


def parse_search_results_generated(t: Any) -> List[SearchResult]:
    """SearchResults through the generated accessors (the reference for _fast's reader)."""
    s = _as(W_SearchResults.SearchResults, t)
    out = []
    for i in range(s.ResponsesLength()):
        r = s.Responses(i)
        hits = [_hit_of(r.Results(j)) for j in range(r.ResultsLength())]
        plan = []
        for j in range(r.PlanLength()):
            p = r.Plan(j)
            plan.append(FieldPlan(field=_s(p.Field()), index=_s(p.Index()), nprobe=p.Nprobe(),
                                  indexed_segments=p.IndexedSegments(),
                                  scanned_rows=p.ScannedRows(), candidates=p.Candidates()))
        out.append(SearchResult(hits, took_us=r.TookUs(), exact=bool(r.Exact()), plan=plan))
    return out


def parse_index_progress(t: Any) -> IndexProgress:
    p = _as(W_IndexProgressReply.IndexProgressReply, t)
    return IndexProgress(segments=p.Segments(), ready=p.Ready(), building=p.Building(),
                         failed=p.Failed(), growing_rows=p.GrowingRows())


def _latency_of(x: Any) -> LatencyStats:
    return LatencyStats(operation=_s(x.Operation()), count=x.Count(), errors=x.Errors(),
                        mean_us=x.MeanUs(), p50_us=x.P50Us(), p90_us=x.P90Us(),
                        p99_us=x.P99Us(), max_us=x.MaxUs())


def _device_stats_of(d: Any) -> DeviceStats:
    if d is None:  # a server from before the device: nothing to report.
        return DeviceStats()
    return DeviceStats(searches=d.Searches(), batches=d.Batches(), fallbacks=d.Fallbacks(),
                       boundary_fallbacks=d.BoundaryFallbacks(), cpu_queries=d.CpuQueries(),
                       mirrored_rows=d.MirroredRows(), mirror_bytes=d.MirrorBytes(),
                       memory_budget_bytes=d.MemoryBudgetBytes(),
                       unmirrored_rows=d.UnmirroredRows())


def parse_stats(t: Any) -> Stats:
    s = _as(W_StatsReply.StatsReply, t)
    return Stats(uptime_s=s.UptimeS(), collections=s.Collections(), records=s.Records(),
                 operations=[_latency_of(s.Operations(i)) for i in range(s.OperationsLength())],
                 commit_batches=s.CommitBatches(), commit_groups=s.CommitGroups(),
                 requests=[_latency_of(s.Requests(i)) for i in range(s.RequestsLength())],
                 connections_open=s.ConnectionsOpen(),
                 connections_accepted=s.ConnectionsAccepted(),
                 connections_refused=s.ConnectionsRefused(), bytes_received=s.BytesReceived(),
                 bytes_sent=s.BytesSent(), device=_s(s.Device()),
                 device_stats=_device_stats_of(s.DeviceStats()))


# The bulk replies are read by the hand-written readers (see _fast.py).
parse_get_result = _fast.parse_get_result
parse_search_results = _fast.parse_search_results
