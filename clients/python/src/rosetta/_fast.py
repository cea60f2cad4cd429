"""Hand-written readers and writers for the two bulk paths: the records of a GetResult and the
hits of SearchResults (decoding), and long id lists (encoding).

The flatc-generated Python accessors look every field up through several Python calls (about
80 µs per record with one vector); these read a table's vtable once with ``struct`` and the
vectors with ``np.frombuffer`` (about 10x faster). They follow schema/protocol.fbs's field ids;
tests/test_codec.py decodes real server replies both ways and requires identical results, so a
schema change that they miss fails there.
"""

from __future__ import annotations

import struct
from typing import Any, Dict, List, Optional, Sequence, Tuple

import flatbuffers
import numpy as np

from .types import (FieldExplanation, FieldPlan, GetResult, Hit, Provenance, Record,
                    SearchResult)

_U8 = struct.Struct("<B").unpack_from
_U16 = struct.Struct("<H").unpack_from
_U32 = struct.Struct("<I").unpack_from
_I32 = struct.Struct("<i").unpack_from
_I64 = struct.Struct("<q").unpack_from
_F32 = struct.Struct("<f").unpack_from
_F64 = struct.Struct("<d").unpack_from
_VT: Dict[int, Any] = {}
_F32_DTYPE = np.dtype("<f4")


def _fields(buf: Any, pos: int) -> Tuple[int, ...]:
    """The field offsets of the table at ``pos`` (relative to it; 0 = absent)."""
    vt = pos - _I32(buf, pos)[0]
    n = (_U16(buf, vt)[0] - 4) >> 1
    s = _VT.get(n)
    if s is None:
        s = _VT[n] = struct.Struct(f"<{n}H").unpack_from
    return s(buf, vt + 4)


def _get(f: Tuple[int, ...], i: int) -> int:
    return f[i] if i < len(f) else 0


def _str_at(buf: Any, p: int) -> str:
    s = p + _U32(buf, p)[0]
    n = _U32(buf, s)[0]
    return buf[s + 4:s + 4 + n].decode("utf-8")


def _str(buf: Any, pos: int, f: Tuple[int, ...], i: int) -> Optional[str]:
    o = _get(f, i)
    return _str_at(buf, pos + o) if o else None


def _req_str(buf: Any, pos: int, f: Tuple[int, ...], i: int, what: str) -> str:
    o = _get(f, i)
    if not o:
        raise ValueError(f"{what}: missing")
    return _str_at(buf, pos + o)


def _tables(buf: Any, pos: int, f: Tuple[int, ...], i: int) -> List[int]:
    """The positions of the tables of a vector-of-tables field."""
    o = _get(f, i)
    if not o:
        return []
    v = pos + o + _U32(buf, pos + o)[0]
    n = _U32(buf, v)[0]
    return [e + _U32(buf, e)[0] for e in range(v + 4, v + 4 + 4 * n, 4)]


def _scalar(buf: Any, pos: int, f: Tuple[int, ...], i: int, unpack: Any, default: Any) -> Any:
    o = _get(f, i)
    return unpack(buf, pos + o)[0] if o else default


def _string_items(buf: Any, pos: int, f: Tuple[int, ...], i: int) -> List[str]:
    out = []
    for t in _tables(buf, pos, f, i):
        out.append(_req_str(buf, t, _fields(buf, t), 0, "StringItem.value"))
    return out


def _value(buf: Any, t: int) -> Any:
    f = _fields(buf, t)
    kind = _scalar(buf, t, f, 0, _U8, 0)
    if kind == 0:
        return _str(buf, t, f, 1) or ""
    if kind == 1:
        return _scalar(buf, t, f, 2, _I64, 0)
    if kind == 2:
        return _scalar(buf, t, f, 3, _F64, 0.0)
    if kind == 3:
        return bool(_scalar(buf, t, f, 4, _U8, 0))
    if kind == 4:
        return _string_items(buf, t, f, 5)
    raise ValueError(f"unknown value type {kind}")


def _attributes(buf: Any, pos: int, f: Tuple[int, ...], i: int) -> Dict[str, Any]:
    out = {}
    for t in _tables(buf, pos, f, i):
        g = _fields(buf, t)
        name = _req_str(buf, t, g, 0, "Attribute.name")
        o = _get(g, 1)
        if not o:
            raise ValueError("Attribute.value: missing")
        out[name] = _value(buf, t + o + _U32(buf, t + o)[0])
    return out


def _provenance(buf: Any, pos: int, f: Tuple[int, ...], i: int) -> Optional[Provenance]:
    o = _get(f, i)
    if not o:
        return None
    t = pos + o + _U32(buf, pos + o)[0]
    g = _fields(buf, t)
    return Provenance(source=_str(buf, t, g, 0), collected_at=_str(buf, t, g, 1),
                      steps=_string_items(buf, t, g, 2) if _get(g, 2) else None,
                      dataset_version=_str(buf, t, g, 3), encoder=_str(buf, t, g, 4))


def _record(buf: Any, t: int) -> Record:
    f = _fields(buf, t)
    rid = _req_str(buf, t, f, 0, "Record.id")
    vectors = {}
    for v in _tables(buf, t, f, 1):
        g = _fields(buf, v)
        name = _req_str(buf, v, g, 0, "VectorEntry.field")
        o = _get(g, 1)
        if not o:
            raise ValueError("VectorEntry.values: missing")
        p = v + o + _U32(buf, v + o)[0]
        vectors[name] = np.frombuffer(buf, _F32_DTYPE, _U32(buf, p)[0], p + 4)
    weights = {}
    for w in _tables(buf, t, f, 2):
        g = _fields(buf, w)
        weights[_req_str(buf, w, g, 0, "WeightEntry.field")] = _scalar(buf, w, g, 1, _F32, 0.0)
    return Record(id=rid, vectors=vectors, weights=weights,
                  attributes=_attributes(buf, t, f, 3) if _get(f, 3) else {},
                  provenance=_provenance(buf, t, f, 4))


def parse_get_result(table: Any) -> GetResult:
    buf, pos = table.Bytes, table.Pos
    f = _fields(buf, pos)
    records = [_record(buf, t) for t in _tables(buf, pos, f, 0)]
    not_found: List[str] = []
    o = _get(f, 1)
    if o:
        v = pos + o + _U32(buf, pos + o)[0]
        n = _U32(buf, v)[0]
        not_found = [_str_at(buf, e) for e in range(v + 4, v + 4 + 4 * n, 4)]
    return GetResult(records=records, not_found=not_found)


def _hit(buf: Any, t: int) -> Hit:
    f = _fields(buf, t)
    fields = {}
    for e in _tables(buf, t, f, 2):
        g = _fields(buf, e)
        name = _req_str(buf, e, g, 0, "FieldExplanation.field")
        fields[name] = FieldExplanation(
            field=name, missing=bool(_scalar(buf, e, g, 1, _U8, 0)),
            raw=_scalar(buf, e, g, 2, _F32, 0.0), normalized=_scalar(buf, e, g, 3, _F32, 0.0),
            weight=_scalar(buf, e, g, 4, _F32, 0.0),
            contribution=_scalar(buf, e, g, 5, _F32, 0.0), rank=_scalar(buf, e, g, 6, _I64, 0))
    return Hit(id=_req_str(buf, t, f, 0, "Hit.id"), score=_scalar(buf, t, f, 1, _F32, 0.0),
               fields=fields, attributes=_attributes(buf, t, f, 3) if _get(f, 3) else {},
               provenance=_provenance(buf, t, f, 4))


def parse_search_results(table: Any) -> List[SearchResult]:
    buf, pos = table.Bytes, table.Pos
    out = []
    for r in _tables(buf, pos, _fields(buf, pos), 0):
        f = _fields(buf, r)
        hits = [_hit(buf, t) for t in _tables(buf, r, f, 0)]
        plan = []
        for p in _tables(buf, r, f, 3):
            g = _fields(buf, p)
            plan.append(FieldPlan(field=_req_str(buf, p, g, 0, "FieldPlan.field"),
                                  index=_str(buf, p, g, 1) or "",
                                  nprobe=_scalar(buf, p, g, 2, _I64, 0),
                                  indexed_segments=_scalar(buf, p, g, 3, _I64, 0),
                                  scanned_rows=_scalar(buf, p, g, 4, _I64, 0),
                                  candidates=_scalar(buf, p, g, 5, _I64, 0)))
        out.append(SearchResult(hits, took_us=_scalar(buf, r, f, 1, _I64, 0),
                                exact=bool(_scalar(buf, r, f, 2, _U8, 1)), plan=plan))
    return out


# ------------------------------------------------------------------------------------------------
# Encoding a [string] in bulk
# ------------------------------------------------------------------------------------------------


def create_string_vector(b: flatbuffers.Builder, values: Sequence[str]) -> int:
    """``[string]`` of ``values``, laid out as Builder.CreateString + a vector of offsets
    would, but built with one bytes join and one NumPy computation of the offsets."""
    n = len(values)
    encoded = [v.encode("utf-8") for v in values]
    # Each string: u32 length, the bytes, a NUL, padding to 4 bytes.
    lengths = np.fromiter((len(e) for e in encoded), dtype=np.int64, count=n)
    sizes = (4 + lengths + 1 + 3) & ~3
    starts = np.zeros(n, dtype=np.int64)
    if n:
        np.cumsum(sizes[:-1], out=starts[1:])
    total = int(sizes.sum())
    block = bytearray(total)
    for e, s in zip(encoded, starts.tolist()):
        struct.pack_into("<I", block, s, len(e))
        block[s + 4:s + 4 + len(e)] = e
    # Place the strings (the block starts 4-aligned, so every string does).
    b.Prep(4, total)
    b.head = b.head - total
    b.Bytes[b.head:b.head + total] = block
    block_end_from_end = b.Offset()  # the block's first byte, counted from the buffer's end.
    string_from_end = block_end_from_end - starts  # each string's position from the end.
    # The vector of uoffsets: element i sits at from-end position P_i and holds P_i - S_i.
    b.StartVector(4, n, 4)
    vec_first_from_end = b.Offset() + 4 * n  # element 0 (the lowest address).
    p = vec_first_from_end - 4 * np.arange(n, dtype=np.int64)
    rel = (p - string_from_end).astype("<u4")
    b.head = b.head - 4 * n
    b.Bytes[b.head:b.head + 4 * n] = rel.tobytes()
    return b.EndVector()


def create_float_vector(b: flatbuffers.Builder, values: np.ndarray) -> int:
    """``[float]`` of a C-contiguous little-endian float32 array, copied once into the builder
    (Builder.CreateNumpyVector copies twice: through ``tobytes()``)."""
    n = values.size
    b.StartVector(4, n, 4)
    b.head = b.head - 4 * n
    b.Bytes[b.head:b.head + 4 * n] = memoryview(values.reshape(-1)).cast("B")
    return b.EndVector()
