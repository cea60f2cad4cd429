"""The client's methods, written once for the blocking and the asyncio client.

Every public method is a generator of *steps* (:class:`Op`: one request and its reply;
:class:`Sleep`; :class:`GetInfo`) run by a driver: :class:`rosetta.Client` executes each step
blocking, :class:`rosetta.AsyncClient` awaits it. So batching, validation, retries of each
request and result assembly are the same code in both clients, and only the I/O differs.
"""

from __future__ import annotations

import math
import random
import sys
import time
from typing import (Any, Callable, Dict, Generator, Iterable, List, Mapping, Optional, Sequence,
                    Tuple, Union)

import numpy as np

from . import _codec as codec
from . import errors
from .types import (CollectionInfo, CollectionSchema, EvalResult, GetResult, IndexProgress,
                    Provenance, QueryInput, Record, SearchResult, ServerInfo, Space,
                    WriteResult)
from .wire.Message import Message

# Retry policies of a request (docs in Client): NEVER is retried only when the request was
# certainly not delivered (sending failed, or the connection was found closed before sending);
# ONCE after a connection error (reads, searches); IDEMPOTENT up to `retries` times with
# exponential backoff (writes of client-chosen ids: upsert, import, delete).
NEVER, ONCE, IDEMPOTENT = "never", "once", "idempotent"

# Vectors per Import frame at most (as the CLI: one batch fits a frame whatever the dimension).
MAX_IMPORT_BATCH_BYTES = 64 << 20
# Largest magnitude of a vector component the engine accepts (schema/validate.h).
MAX_COMPONENT_MAGNITUDE = 1e16

ProgressArg = Union[None, bool, Callable[[int, int], Any]]


class Op:
    """One request: the encoded frame, the reply type it expects, how to parse it, and its
    retry policy."""

    __slots__ = ("encoded", "want", "parse", "retry", "name")

    def __init__(self, name: str, build: codec.BuildFn, want: int, parse: Callable[[Any], Any],
                 retry: str, size_hint: int = 256) -> None:
        self.name = name
        self.encoded = codec.encode(build, size_hint)
        self.want = want
        self.parse = parse
        self.retry = retry


class Sleep:
    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


class GetInfo:
    """Asks the driver for the connection's ServerInfo (connecting if needed)."""


Step = Union[Op, Sleep, GetInfo]
Gen = Generator[Step, Any, Any]


def retry_delays(policy: str, sent: bool, retries: int, backoff: float) -> List[float]:
    """The waits before each retry a failed attempt may get (empty: no retry)."""
    if policy == IDEMPOTENT:
        n = retries
    elif policy == ONCE:
        n = min(1, retries)
    else:
        n = 0 if sent else min(1, retries)
    return [min(2.0, backoff * (2 ** i)) * (0.5 + random.random() / 2) for i in range(n)]


def is_connection_error(e: BaseException) -> bool:
    """A failure of the connection (not an answer of the server to the request): retryable."""
    return isinstance(e, errors.UnavailableError) and e.request_id in (None, 0)


def annotate(e: errors.RosettaError, prefix: str) -> errors.RosettaError:
    """The same error (class, code, request id) with ``prefix: `` before its message."""
    out = type(e)(f"{prefix}: {e.message}", code_value=e.code_value, request_id=e.request_id)
    return out


def _row_problem(arr: np.ndarray, metric: str) -> Optional[Tuple[int, str]]:
    """The first row of ``arr`` the engine would refuse, as (row, reason), else None."""
    finite = np.isfinite(arr)
    if not finite.all():
        i, j = (int(x) for x in np.argwhere(~finite)[0])
        x = arr[i, j]
        return i, f"component {j} is " + ("NaN" if np.isnan(x) else "+inf" if x > 0 else "-inf")
    big = np.abs(arr) > MAX_COMPONENT_MAGNITUDE
    if big.any():
        i, j = (int(x) for x in np.argwhere(big)[0])
        return i, (f"component {j} is {float(arr[i, j]):g}, beyond the largest magnitude allowed "
                   f"({MAX_COMPONENT_MAGNITUDE:g})")
    if metric == "cosine":
        zero = ~arr.any(axis=1)
        if zero.any():
            i = int(np.argmax(zero))
            return i, "is a zero vector (cosine needs a non-zero vector)"
    return None


def _progress(progress: ProgressArg, total: int, desc: str
              ) -> Tuple[Optional[Callable[[int, int], Any]], Optional[Callable[[], Any]]]:
    """(callback(done, total), close) for a progress argument: a callable is called as is;
    None draws a tqdm bar when tqdm is installed and stderr is a terminal; True draws one
    whenever tqdm is installed; False nothing."""
    if callable(progress):
        return progress, None
    if progress is False or (progress is None and not _stderr_is_tty()):
        return None, None
    try:
        from tqdm import tqdm  # type: ignore[import-not-found]
    except ImportError:
        return None, None
    bar = tqdm(total=total, desc=desc, unit="vec", unit_scale=True, file=sys.stderr)

    def update(done: int, _total: int) -> None:
        bar.update(done - bar.n)
    return update, bar.close


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _coerce_schema(schema: Union[CollectionSchema, Mapping[str, Any]]) -> CollectionSchema:
    if isinstance(schema, CollectionSchema):
        return schema
    if isinstance(schema, Mapping):
        return CollectionSchema.from_dict(schema)
    raise TypeError(f"schema: expected a CollectionSchema or a dict, got {type(schema).__name__}")


def _coerce_provenance(p: Union[None, Provenance, Mapping[str, Any]]) -> Optional[Provenance]:
    return Provenance.from_dict(p)


def _coerce_ids(ids: Union[str, Iterable[str]], what: str) -> List[str]:
    if isinstance(ids, str):
        return [ids]
    out = list(ids)
    for i, x in enumerate(out):
        if not isinstance(x, str):
            raise TypeError(f"{what}[{i}]: expected a str id, got {type(x).__name__}")
    return out


# ------------------------------------------------------------------------------------------------
# Search inputs
# ------------------------------------------------------------------------------------------------


def _input_spec(x: Any, i: int) -> QueryInput:
    if isinstance(x, QueryInput):
        return x
    if isinstance(x, Mapping):
        allowed = ("vector", "space", "modality", "fields", "field", "weight")
        for k in x:
            if k not in allowed:
                raise ValueError(f"inputs[{i}]: unknown key {k!r} (expected one of: "
                                 f"{', '.join(allowed)})")
        if "vector" not in x:
            raise ValueError(f"inputs[{i}]: missing key 'vector'")
        if "field" in x and "fields" in x:
            raise ValueError(f"inputs[{i}]: 'field' and 'fields' are exclusive")
        fields = [x["field"]] if "field" in x else x.get("fields")
        return QueryInput(vector=x["vector"], space=x.get("space", ""),
                          modality=x.get("modality", ""), fields=fields,
                          weight=float(x.get("weight", 1.0)))
    raise TypeError(f"inputs[{i}]: expected a dict or QueryInput, got {type(x).__name__}")


def build_queries(inputs: Any, *, space: Optional[str], modality: Optional[str],
                  fields: Optional[Sequence[str]], options: Dict[str, Any]
                  ) -> Tuple[List[codec.WireQuery], bool]:
    """(queries, is_batch) from search's ``inputs`` argument (see Client.search)."""
    if isinstance(inputs, (QueryInput, Mapping)):
        specs = [_input_spec(inputs, 0)]
    elif (isinstance(inputs, (list, tuple)) and inputs
          and all(isinstance(x, (QueryInput, Mapping)) for x in inputs)):
        specs = [_input_spec(x, i) for i, x in enumerate(inputs)]
    else:
        if space is None:
            raise ValueError("search: a bare vector or array of vectors needs space=... (or "
                             "pass inputs as dicts {'vector', 'space', 'fields', ...})")
        specs = [QueryInput(vector=inputs, space=space)]
    arrays = []
    for i, s in enumerate(specs):
        if space is not None and not s.space:
            s.space = space
        if modality is not None and not s.modality:
            s.modality = modality
        if fields is not None and not s.fields:
            s.fields = [fields] if isinstance(fields, str) else list(fields)
        if isinstance(s.fields, str):
            s.fields = [s.fields]
        arr = codec.as_float32(s.vector, f"inputs[{i}].vector")
        if arr.ndim not in (1, 2):
            raise ValueError(f"inputs[{i}].vector: expected a vector (1-D) or one row per query "
                             f"(2-D), got shape {arr.shape}")
        arrays.append(arr)
    ndims = {a.ndim for a in arrays}
    if len(ndims) != 1:
        raise ValueError("search: mix of 1-D and 2-D input vectors (2-D = one row per query of "
                         "a batch: give every input 2-D with the same number of rows)")
    batch = ndims == {2}
    n = arrays[0].shape[0] if batch else 1
    if batch and any(a.shape[0] != n for a in arrays):
        raise ValueError("search: batch inputs have different numbers of rows: "
                         + ", ".join(str(a.shape[0]) for a in arrays))
    queries = []
    for row in range(n):
        wire_inputs = [codec.WireInput(vector=a[row] if batch else a, space=s.space,
                                       modality=s.modality or "", fields=list(s.fields or []),
                                       weight=s.weight)
                       for s, a in zip(specs, arrays)]
        queries.append(codec.WireQuery(inputs=wire_inputs, **options))
    return queries, batch


def _query_options(k: int, weights: Optional[Mapping[str, float]], fusion: str, normalize: str,
                   missing: str, filter: Optional[Mapping[str, Any]], exact: bool, explain: bool,
                   with_attributes: bool, nprobe: int, refine: int) -> Dict[str, Any]:
    from .types import FUSIONS, MISSINGS, NORMALIZES
    for what, v, names in (("fusion", fusion, FUSIONS), ("normalize", normalize, NORMALIZES),
                           ("missing", missing, MISSINGS)):
        if v not in names:
            raise ValueError(f"{what}: unknown value {v!r} (expected one of: {', '.join(names)})")
    preds, has = codec.parse_filter(filter)
    return dict(k=int(k), weights=dict(weights) if weights else None, fusion=fusion,
                normalize=normalize, missing=missing, predicates=preds, has_fields=has,
                exact=bool(exact), explain=bool(explain), with_attributes=bool(with_attributes),
                nprobe=int(nprobe), refine=int(refine))


def _search_reply_hint(q: codec.WireQuery) -> int:
    fields = sum(max(1, len(i.fields)) for i in q.inputs)
    return q.k * (96 + (40 * fields if q.explain else 0) + (256 if q.with_attributes else 0))


# ------------------------------------------------------------------------------------------------
# Evaluation measures (as tools/cli/eval.cc)
# ------------------------------------------------------------------------------------------------


def pair_recall(ids: Sequence[str], relevant: str, k: int) -> float:
    """1 if ``relevant`` is among the first k ids, else 0."""
    return 1.0 if relevant in ids[:k] else 0.0


def row_of_id(id_: str, prefix: str) -> Optional[int]:
    """The base row an id stands for (prefix + canonical decimal), else None."""
    if len(id_) <= len(prefix) or not id_.startswith(prefix):
        return None
    digits = id_[len(prefix):]
    if len(digits) > 18 or (len(digits) > 1 and digits[0] == "0"):
        return None
    if not all("0" <= c <= "9" for c in digits):
        return None
    return int(digits)


def row_recall(ids: Sequence[str], prefix: str, truth: Sequence[int], k: int) -> float:
    """|first k ids (as rows) ∩ T| / |T|, T = the first min(k, len(truth)) truth rows (negative
    entries ignored); 0 when T is empty."""
    relevant = {int(t) for t in truth[:k] if t >= 0}
    if not relevant:
        return 0.0
    counted = set()
    for id_ in ids[:k]:
        row = row_of_id(id_, prefix)
        if row is not None and row in relevant:
            counted.add(row)
    return len(counted) / len(relevant)


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile, p in (0, 100]; 0 for no values."""
    if not values:
        return 0.0
    s = sorted(values)
    rank = math.ceil(p / 100.0 * len(s))
    return s[min(max(rank, 1) - 1, len(s) - 1)]


# ================================================================================================
# The API
# ================================================================================================


class ClientBase:
    """The methods of both clients. See :class:`rosetta.Client` for the documentation."""

    def _run(self, gen: Gen) -> Any:  # pragma: no cover - implemented by the drivers.
        raise NotImplementedError

    def _op(self, name: str, build: codec.BuildFn, want: int, parse: Callable[[Any], Any],
            retry: str, size_hint: int = 256) -> Op:
        return Op(name, build, want, parse, retry, size_hint)

    # ---- collections ---------------------------------------------------------------------------

    def create_collection(self, schema: Union[CollectionSchema, Mapping[str, Any]]) -> Any:
        """Creates a collection (admin). ``schema``: a :class:`CollectionSchema` or its JSON
        form as a dict. Raises AlreadyExistsError, InvalidArgumentError."""
        return self._run(self._g_create_collection(schema))

    def _g_create_collection(self, schema: Any) -> Gen:
        s = _coerce_schema(schema)
        yield self._op("create_collection", codec.create_collection(s), Message.Ok,
                       codec.parse_ok, NEVER)
        return None

    def list_collections(self) -> Any:
        """The collection names, sorted."""
        return self._run(self._single("list_collections", codec.list_collections(),
                                      Message.CollectionList, codec.parse_collection_list, ONCE))

    def describe(self, name: str) -> Any:
        """The collection's :class:`CollectionInfo` (schema, counts, calibration, segments).
        Raises NotFoundError."""
        return self._run(self._single("describe", codec.describe(name), Message.CollectionInfo,
                                      codec.parse_collection_info, ONCE))

    def drop_collection(self, name: str) -> Any:
        """Deletes a collection and all its records (admin). Raises NotFoundError."""
        return self._run(self._single("drop_collection", codec.drop_collection(name),
                                      Message.Ok, codec.parse_ok, NEVER))

    def _single(self, name: str, build: codec.BuildFn, want: int, parse: Callable[[Any], Any],
                retry: str) -> Gen:
        result = yield self._op(name, build, want, parse, retry)
        return result

    # ---- writes --------------------------------------------------------------------------------

    def upsert(self, name: str, records: Iterable[Union[Record, Mapping[str, Any]]]) -> Any:
        """Inserts or replaces whole records; returns a :class:`WriteResult`.

        ``records``: :class:`Record` objects or dicts in the JSON Lines form of ``rosetta
        upsert`` (``{"id", "vectors": {field: array}, "weights", "attributes",
        "provenance"}``). Up to 65536 records (and 64 MiB) go in one atomic request; more are
        sent as several atomic batches in order, after every record was checked against the
        schema (so bad input anywhere writes nothing, as with the CLI)."""
        return self._run(self._g_upsert(name, records))

    def _g_upsert(self, name: str, records: Iterable[Any]) -> Gen:
        recs = [Record.from_dict(r) for r in records]
        seen: Dict[str, int] = {}
        for i, r in enumerate(recs):
            if not isinstance(r.id, str):
                raise TypeError(f"records[{i}].id: expected a str, got {type(r.id).__name__}")
            j = seen.setdefault(r.id, i)
            if j != i:
                raise errors.InvalidArgumentError(
                    f"records[{i}]: duplicate id {r.id!r} (first at records[{j}])")
        if not recs:
            return WriteResult(batches=0)
        info = yield GetInfo()
        budget = min(info.max_frame_bytes, MAX_IMPORT_BATCH_BYTES) - 4096
        batches: List[Tuple[int, int, int]] = []  # (begin, end, size hint)
        begin, size = 0, 0
        for i, r in enumerate(recs):
            n = codec.record_size_hint(r)
            if i > begin and (i - begin >= codec.MAX_BATCH_RECORDS or size + n > budget):
                batches.append((begin, i, size))
                begin, size = i, 0
            size += n
        batches.append((begin, len(recs), size))
        if len(batches) > 1:
            info_c = yield self._op("describe", codec.describe(name), Message.CollectionInfo,
                                    codec.parse_collection_info, ONCE)
            _validate_records(info_c.schema, recs)
        total = WriteResult(batches=len(batches))
        for b, (lo, hi, hint) in enumerate(batches):
            try:
                r = yield self._op("upsert", codec.upsert(name, recs[lo:hi]), Message.WriteResult,
                                   codec.parse_write_result, IDEMPOTENT, hint)
            except errors.RosettaError as e:
                if len(batches) == 1:
                    raise
                raise annotate(e, f"batch {b + 1} of {len(batches)} (records {lo}..{hi - 1}; the "
                                  f"{total.written} records of the previous {b} batch(es) were "
                                  "written)") from e
            total.written += r.written
            total.created += r.created
        return total

    def import_vectors(self, name: str, field: str, array: Any, *, id_prefix: str = "",
                       id_offset: int = 0,
                       provenance: Union[None, Provenance, Mapping[str, Any]] = None,
                       batch_rows: Optional[int] = None, progress: ProgressArg = None) -> Any:
        """Sets field ``field`` of records ``id_prefix + str(id_offset + i)`` from row i of
        ``array`` (rows x dim, converted to float32); records that do not exist are created,
        existing ones keep their other fields (and get ``provenance`` when given).

        The rows are streamed in atomic batches of at most 65536 rows and 64 MiB that fit the
        server's frame limit (``batch_rows`` caps them further). With more than one batch, every
        row is checked first (the field's dimension, finite components, non-zero for cosine),
        so bad input writes nothing, as with ``rosetta import``. ``progress``: a callable
        ``(rows_done, rows_total)`` called after each batch; None (default) draws a tqdm bar
        when tqdm is installed and stderr is a terminal; False: nothing.

        Returns a :class:`WriteResult` (written, created, batches)."""
        return self._run(self._g_import(name, field, array, id_prefix, id_offset, provenance,
                                        batch_rows, progress))

    def _g_import(self, name: str, field: str, array: Any, id_prefix: str, id_offset: int,
                  provenance: Any, batch_rows: Optional[int], progress: ProgressArg) -> Gen:
        arr = codec.as_float32(array, "import_vectors: array")
        if arr.ndim == 1:
            raise ValueError("import_vectors: array is 1-D; give one row per record "
                             "(e.g. array.reshape(1, -1) for a single vector)")
        if arr.ndim != 2:
            raise ValueError(f"import_vectors: array must be 2-D (rows x dim), got shape "
                             f"{arr.shape}")
        rows, dim = arr.shape
        if rows == 0:
            raise errors.InvalidArgumentError("import_vectors: no rows")
        if dim == 0:
            raise errors.InvalidArgumentError("import_vectors: rows have 0 components")
        if not isinstance(id_offset, (int, np.integer)) or id_offset < 0:
            raise ValueError(f"import_vectors: id_offset must be an int >= 0, got {id_offset!r}")
        prov = _coerce_provenance(provenance)
        info: ServerInfo = yield GetInfo()
        overhead = 4096 + len(name.encode()) + len(field.encode()) + len(id_prefix.encode())
        if prov is not None:
            overhead += codec.record_size_hint(Record(id="", provenance=prov))
        row_bytes = 4 * dim
        if row_bytes + overhead > info.max_frame_bytes:
            raise errors.ResourceExhaustedError(
                f"import_vectors: one row of {dim} components ({row_bytes} bytes) does not fit "
                f"the server's maximum frame size of {info.max_frame_bytes} bytes")
        # As the CLI: at most 64 MiB of vectors a batch; and the frame must fit the server.
        per_batch = max(1, min(codec.MAX_BATCH_RECORDS, MAX_IMPORT_BATCH_BYTES // row_bytes,
                               (info.max_frame_bytes - overhead) // row_bytes))
        if batch_rows is not None:
            if batch_rows < 1:
                raise ValueError(f"import_vectors: batch_rows must be >= 1, got {batch_rows}")
            per_batch = min(per_batch, int(batch_rows))
        n_batches = (rows + per_batch - 1) // per_batch
        if n_batches > 1:
            # Check everything before the first write, as `rosetta import` does.
            ci = yield self._op("describe", codec.describe(name), Message.CollectionInfo,
                                codec.parse_collection_info, ONCE)
            fdef = ci.schema.fields.get(field)
            if fdef is None:
                raise errors.NotFoundError(f'collection "{name}" has no field "{field}"')
            space: Space = ci.schema.spaces[fdef.space]
            if dim != space.dim:
                raise errors.InvalidArgumentError(
                    f'import_vectors: rows have {dim} components; field "{field}" (space '
                    f'"{fdef.space}") expects {space.dim}')
            bad = _row_problem(arr, space.metric)
            if bad is not None:
                i, why = bad
                raise errors.InvalidArgumentError(
                    f'import_vectors: row {i} (id "{id_prefix}{id_offset + i}"): {why}')
        update, close = _progress(progress, rows, f"import {name}.{field}")
        total = WriteResult(batches=n_batches)
        try:
            for b in range(n_batches):
                lo = b * per_batch
                hi = min(rows, lo + per_batch)
                op = self._op("import", codec.import_rows(name, field, arr[lo:hi], id_prefix,
                                                          int(id_offset) + lo, prov),
                              Message.WriteResult, codec.parse_write_result, IDEMPOTENT,
                              (hi - lo) * row_bytes + overhead)
                try:
                    r = yield op
                except errors.RosettaError as e:
                    if n_batches == 1:
                        raise
                    raise annotate(e, f"batch {b + 1} of {n_batches} (rows {lo}..{hi - 1}; the "
                                      f"{total.written} records of the previous {b} batch(es) "
                                      "were written)") from e
                total.written += r.written
                total.created += r.created
                if update is not None:
                    update(hi, rows)
        finally:
            if close is not None:
                close()
        return total

    def get(self, name: str, ids: Union[str, Iterable[str]], *,
            with_vectors: bool = False) -> Any:
        """Point lookups: a :class:`GetResult` with the records found, in the order asked
        (vectors only ``with_vectors``: float32 arrays viewing the reply's buffer, no copy), and
        the ids not found. Long id lists are split into requests whose replies fit the frame
        limit."""
        return self._run(self._g_get(name, ids, with_vectors))

    def _g_get(self, name: str, ids: Any, with_vectors: bool) -> Gen:
        id_list = _coerce_ids(ids, "ids")
        info: ServerInfo = yield GetInfo()
        budget = max(1 << 20, min(info.max_frame_bytes, codec.MAX_FRAME_BYTES_CEILING) // 2)
        per_record = 1024
        if with_vectors and len(id_list) > 256:
            ci = yield self._op("describe", codec.describe(name), Message.CollectionInfo,
                                codec.parse_collection_info, ONCE)
            dims = sum(ci.schema.spaces[f.space].dim for f in ci.schema.fields.values()
                       if f.space in ci.schema.spaces)
            per_record += 4 * dims + 64 * len(ci.schema.fields)
        out = GetResult()
        i = 0
        while i < len(id_list) or (i == 0 and not id_list):
            size, j = 0, i
            while j < len(id_list) and (j == i or size + per_record + len(id_list[j]) < budget):
                size += per_record + len(id_list[j])
                j += 1
            part = id_list[i:j]
            r = yield self._op("get", codec.get(name, part, with_vectors), Message.GetResult,
                               codec.parse_get_result, ONCE, 64 + sum(len(x) + 8 for x in part))
            out.records.extend(r.records)
            out.not_found.extend(r.not_found)
            if not id_list:
                break
            i = j
        return out

    def delete(self, name: str, ids: Union[str, Iterable[str]]) -> Any:
        """Deletes records; a :class:`WriteResult` whose ``written`` (alias ``deleted``) counts
        the records deleted and ``not_found`` the ids that did not exist. Up to 65536 ids are
        one atomic request; more are sent as several in order."""
        return self._run(self._g_delete(name, ids))

    def _g_delete(self, name: str, ids: Any) -> Gen:
        id_list = _coerce_ids(ids, "ids")
        n = max(1, (len(id_list) + codec.MAX_BATCH_RECORDS - 1) // codec.MAX_BATCH_RECORDS)
        total = WriteResult(batches=n)
        for b in range(n):
            part = id_list[b * codec.MAX_BATCH_RECORDS:(b + 1) * codec.MAX_BATCH_RECORDS]
            try:
                r = yield self._op("delete", codec.delete(name, part), Message.WriteResult,
                                   codec.parse_write_result, IDEMPOTENT,
                                   64 + sum(len(x) + 8 for x in part))
            except errors.RosettaError as e:
                if n == 1:
                    raise
                raise annotate(e, f"batch {b + 1} of {n} (the {total.written} records of the "
                                  f"previous {b} batch(es) were deleted)") from e
            total.written += r.written
            total.created += r.created
            total.not_found += r.not_found
        return total

    # ---- search --------------------------------------------------------------------------------

    def search(self, name: str, inputs: Any, k: int = 10, *, space: Optional[str] = None,
               fields: Optional[Union[str, Sequence[str]]] = None,
               modality: Optional[str] = None, weights: Optional[Mapping[str, float]] = None,
               fusion: str = "weighted", normalize: str = "calibrated",
               missing: str = "renormalize", filter: Optional[Mapping[str, Any]] = None,
               exact: bool = False, explain: bool = True, with_attributes: bool = True,
               nprobe: int = 0, refine: int = 0) -> Any:
        """Searches; see docs/query-semantics.md for what every option does.

        ``inputs`` is one of:

        - a vector (1-D array or list) with ``space=`` (and optionally ``fields=``,
          ``modality=``): one query;
        - a 2-D array with ``space=``: a batch, one query per row;
        - a dict ``{"vector", "space", "modality"?, "fields"? | "field"?, "weight"?}`` or a
          :class:`QueryInput`, or a list of them (a multi-input query, e.g. a text vector
          against the image and caption fields plus an image vector). If their vectors are
          2-D (same number of rows) it is a batch: row i of every input makes query i.

        ``space``, ``fields`` and ``modality`` fill in what the inputs leave unset.

        Returns a :class:`SearchResult` (a list of :class:`Hit`, best first, with ``took_us``,
        ``exact`` and ``plan``) for one query, or a list of them for a batch. A batch runs on
        one snapshot of the collection in one request (very large batches are split into
        several requests). Raises InvalidArgumentError naming the failing query (``query 3:
        ...``)."""
        return self._run(self._g_search(name, inputs, space, fields, modality, _query_options(
            k, weights, fusion, normalize, missing, filter, exact, explain, with_attributes,
            nprobe, refine)))

    def _g_search(self, name: str, inputs: Any, space: Optional[str], fields: Any,
                  modality: Optional[str], options: Dict[str, Any]) -> Gen:
        queries, batch = build_queries(inputs, space=space, modality=modality, fields=fields,
                                       options=options)
        results = yield from self._g_search_queries(name, queries)
        return results if batch else results[0]

    def _g_search_queries(self, name: str, queries: List[codec.WireQuery]) -> Gen:
        info: ServerInfo = yield GetInfo()
        budget = min(info.max_frame_bytes, codec.MAX_FRAME_BYTES_CEILING) // 4
        out: List[SearchResult] = []
        i = 0
        while i < len(queries):
            req, rep, j = 0, 0, i
            while j < len(queries):
                q = queries[j]
                qr = 256 + sum(4 * i_.vector.size + 128 for i_ in q.inputs)
                qp = _search_reply_hint(q)
                if j > i and (req + qr > budget or rep + qp > budget or j - i >= 16384):
                    break
                req += qr
                rep += qp
                j += 1
            part = queries[i:j]
            res = yield self._op("search", codec.search(name, part), Message.SearchResults,
                                 codec.parse_search_results, ONCE, req)
            if len(res) != len(part):
                raise errors.InternalError(f"malformed reply: {len(res)} search responses for "
                                           f"{len(part)} queries")
            out.extend(res)
            i = j
        return out

    def evaluate(self, name: str, queries: Any, *, space: str, truth: Any = "pairs",
                 fields: Optional[Union[str, Sequence[str]]] = None,
                 modality: Optional[str] = None, id_prefix: str = "", k: int = 10,
                 weights: Optional[Mapping[str, float]] = None, fusion: str = "weighted",
                 normalize: str = "calibrated", missing: str = "renormalize",
                 filter: Optional[Mapping[str, Any]] = None, exact: bool = False,
                 nprobe: int = 0, refine: int = 0, batch_size: int = 1) -> Any:
        """Recall, throughput and latency for a set of query vectors, as ``rosetta eval``.

        Row i of ``queries`` (n x dim) becomes the single input ``{vector, space, modality,
        fields}`` of a query searched with k = max(k, 10), without explanations or attributes.
        ``truth``: ``"pairs"`` (the relevant record of query i is ``id_prefix + str(i)``:
        recall@k is the fraction of queries whose relevant record is in the top k), or an
        (n, c) integer array whose row i lists the base rows of query i's true neighbours,
        best first (result ids map back to rows by stripping ``id_prefix``; recall@k =
        |top-k ∩ true top-k| / min(k, c), negative entries ignored).

        Queries run one at a time (``batch_size=1``, the CLI's way: every latency is one
        query's round trip); a larger ``batch_size`` sends batches and each latency is then a
        batch's. Returns :class:`EvalResult` with recall at 1, 5, 10 and k."""
        return self._run(self._g_evaluate(name, queries, space, truth, fields, modality,
                                          id_prefix, k, weights, fusion, normalize, missing,
                                          filter, exact, nprobe, refine, batch_size))

    def _g_evaluate(self, name: str, queries: Any, space: str, truth: Any, fields: Any,
                    modality: Optional[str], id_prefix: str, k: int, weights: Any, fusion: str,
                    normalize: str, missing: str, filter: Any, exact: bool, nprobe: int,
                    refine: int, batch_size: int) -> Gen:
        q = codec.as_float32(queries, "evaluate: queries")
        if q.ndim != 2:
            raise ValueError(f"evaluate: queries must be 2-D (one query per row), got shape "
                             f"{q.shape}")
        n = q.shape[0]
        if n == 0:
            raise errors.InvalidArgumentError("evaluate: no queries")
        if not 1 <= k <= 10000:
            raise ValueError(f"evaluate: k must be in 1..10000, got {k}")
        pairs = isinstance(truth, str)
        if pairs and truth != "pairs":
            raise ValueError(f"evaluate: truth must be 'pairs' or an integer array, got {truth!r}")
        t = None
        if not pairs:
            t = np.asarray(truth)
            if t.ndim != 2 or t.dtype.kind not in "iu":
                raise ValueError(f"evaluate: truth must be a 2-D integer array, got shape "
                                 f"{t.shape} dtype {t.dtype}")
            if t.shape[0] != n:
                raise errors.InvalidArgumentError(
                    f"evaluate: truth has {t.shape[0]} rows for {n} queries")
            if t.shape[1] == 0:
                raise errors.InvalidArgumentError("evaluate: truth has no columns")
        if batch_size < 1:
            raise ValueError(f"evaluate: batch_size must be >= 1, got {batch_size}")
        ci = yield self._op("describe", codec.describe(name), Message.CollectionInfo,
                            codec.parse_collection_info, ONCE)
        sp = ci.schema.spaces.get(space)
        if sp is None:
            raise errors.NotFoundError(f'collection "{name}" has no space "{space}"')
        if q.shape[1] != sp.dim:
            raise errors.InvalidArgumentError(
                f'evaluate: queries have {q.shape[1]} components; space "{space}" expects '
                f"{sp.dim}")
        bad = _row_problem(q, sp.metric)
        if bad is not None:
            raise errors.InvalidArgumentError(f"evaluate: queries row {bad[0]}: {bad[1]}")
        options = _query_options(max(k, 10), weights, fusion, normalize, missing, filter, exact,
                                 False, False, nprobe, refine)
        field_list = [fields] if isinstance(fields, str) else list(fields or [])
        ks = sorted({1, 5, 10, int(k)})
        sums = dict.fromkeys(ks, 0.0)
        latencies: List[float] = []
        start = time.perf_counter()
        for lo in range(0, n, batch_size):
            hi = min(n, lo + batch_size)
            batch = [codec.WireQuery(inputs=[codec.WireInput(
                vector=q[i], space=space, modality=modality or "", fields=field_list,
                weight=1.0)], **options) for i in range(lo, hi)]
            t0 = time.perf_counter()
            try:
                res = yield from self._g_search_queries(name, batch)
            except errors.RosettaError as e:
                raise annotate(e, f"query row {lo}" if hi - lo == 1
                               else f"query rows {lo}..{hi - 1}") from e
            latencies.append((time.perf_counter() - t0) * 1e6)
            for i, r in zip(range(lo, hi), res):
                ids = [h.id for h in r]
                for kk in ks:
                    sums[kk] += (pair_recall(ids, f"{id_prefix}{i}", kk) if pairs
                                 else row_recall(ids, id_prefix, t[i], kk))  # type: ignore
        total = time.perf_counter() - start
        return EvalResult(queries=n, recall={kk: sums[kk] / n for kk in ks},
                          qps=n / total if total > 0 else 0.0,
                          latency_p50_us=percentile(latencies, 50),
                          latency_p99_us=percentile(latencies, 99))

    # ---- indexes and telemetry -----------------------------------------------------------------

    def build_index(self, name: str, field: str = "", *, wait: bool = False,
                    poll_interval: float = 0.25, timeout: Optional[float] = None,
                    progress: Optional[Callable[[IndexProgress], Any]] = None) -> Any:
        """Seals the rows not yet in a sealed segment and queues their IVF-PQ index builds
        (write role); returns the :class:`IndexProgress`. With ``wait``, polls every
        ``poll_interval`` seconds until no build is queued or running (``progress`` is called
        with each poll's IndexProgress); raises AbortedError naming the failed segments if a
        build failed, DeadlineExceededError after ``timeout`` seconds."""
        return self._run(self._g_build_index(name, field, wait, poll_interval, timeout,
                                             progress))

    def _g_build_index(self, name: str, field: str, wait: bool, poll: float,
                       timeout: Optional[float], progress: Any) -> Gen:
        p = yield self._op("build_index", codec.build_index(name, field),
                           Message.IndexProgressReply, codec.parse_index_progress, NEVER)
        if not wait:
            return p
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if progress is not None:
                progress(p)
            if p.done:
                break
            if deadline is not None and time.monotonic() >= deadline:
                raise errors.DeadlineExceededError(
                    f"build_index: {p.building} segment(s) still building after {timeout} s")
            yield Sleep(poll)
            p = yield self._op("index_progress", codec.index_progress(name),
                               Message.IndexProgressReply, codec.parse_index_progress, ONCE)
        if p.failed > 0:
            ci: CollectionInfo = yield self._op("describe", codec.describe(name),
                                                Message.CollectionInfo,
                                                codec.parse_collection_info, ONCE)
            failures = []
            for si in ci.segment_list:
                reasons = [f"{f.field}: {f.state}" for f in si.fields
                           if f.state.startswith("failed")]
                if si.state == "failed" or reasons:
                    failures.append(f"segment {si.id}" +
                                    (f" ({'; '.join(reasons)})" if reasons else ""))
            detail = "; ".join(failures) or "describe lists no failed segment"
            raise errors.AbortedError(
                f"build-index: the index build failed in {p.failed} "
                f"{'segment' if p.failed == 1 else 'segments'}: {detail}; run build-index again "
                "to retry")
        return p

    def index_progress(self, name: str) -> Any:
        """The :class:`IndexProgress` of the collection's index builds."""
        return self._run(self._single("index_progress", codec.index_progress(name),
                                      Message.IndexProgressReply, codec.parse_index_progress,
                                      ONCE))

    def stats(self) -> Any:
        """The server's telemetry (:class:`Stats`)."""
        return self._run(self._single("stats", codec.stats(), Message.StatsReply,
                                      codec.parse_stats, ONCE))


def _validate_records(schema: CollectionSchema, recs: Sequence[Record]) -> None:
    """The schema checks of every record before a multi-batch upsert writes anything (the
    server repeats them per batch)."""
    kinds = {"string": (str,), "int": (int,), "float": (int, float), "bool": (bool,),
             "string[]": (list, tuple)}
    for i, r in enumerate(recs):
        where = f"records[{i}] (id {r.id!r})"
        for fname, v in r.vectors.items():
            f = schema.fields.get(fname)
            if f is None:
                raise errors.InvalidArgumentError(f"{where}: unknown field {fname!r}")
            sp = schema.spaces[f.space]
            arr = codec.as_float32(v, f"{where}: vectors.{fname}")
            if arr.ndim != 1 or arr.shape[0] != sp.dim:
                raise errors.InvalidArgumentError(
                    f'{where}: field "{fname}": expected {sp.dim} components (space '
                    f'"{f.space}"), got {arr.size}')
            bad = _row_problem(arr.reshape(1, -1), sp.metric)
            if bad is not None:
                raise errors.InvalidArgumentError(f'{where}: field "{fname}": {bad[1]}')
        for aname, v in r.attributes.items():
            t = schema.attributes.get(aname)
            if t is None:
                raise errors.InvalidArgumentError(f"{where}: undeclared attribute {aname!r}")
            v = v.item() if isinstance(v, np.generic) else v
            ok = isinstance(v, kinds[t]) and (t == "bool" or not isinstance(v, bool))
            if not ok:
                raise errors.InvalidArgumentError(
                    f"{where}: attribute {aname!r} is declared {t}, got {type(v).__name__}")
