"""Rosetta: the Python client of the Rosetta cross-modal vector database.

A pure-Python client of ``rosettad``'s wire protocol (docs/PROTOCOL.md), using FlatBuffers code
generated from schema/protocol.fbs and NumPy for vectors::

    import numpy as np
    import rosetta

    with rosetta.Client("127.0.0.1", 7700) as db:
        db.create_collection({
            "name": "photos",
            "spaces": {"clip": {"dim": 512, "metric": "cosine"}},
            "fields": {"image": {"space": "clip", "modality": "image"},
                       "caption": {"space": "clip", "modality": "text"}}})
        db.import_vectors("photos", "image", image_emb, id_prefix="p")
        hits = db.search("photos", text_vec, space="clip", modality="text",
                         fields=["image", "caption"])
        for h in hits:
            print(h.id, h.score, {f: e.contribution for f, e in h.fields.items()})

See :class:`Client` (blocking), :class:`AsyncClient` (asyncio), :mod:`rosetta.errors` (typed
exceptions with the server's code) and :mod:`rosetta.testing` (a throwaway server for tests).
"""

from .aio import AsyncClient
from .client import DEFAULT_PORT, Client
from .errors import (AbortedError, AlreadyExistsError, CancelledError, DataLossError,
                     DeadlineExceededError, FailedPreconditionError, InternalError,
                     InvalidArgumentError, NotFoundError, OutOfRangeError, PermissionDeniedError,
                     ResourceExhaustedError, RosettaError, UnauthenticatedError,
                     UnavailableError, UnimplementedError, UnknownError)
from .types import (CalibrationStats, CollectionInfo, CollectionSchema, DeviceStats, EvalResult,
                    Field,
                    FieldExplanation, FieldPlan, GetResult, Hit, IndexProgress, IndexSpec,
                    LatencyStats, Provenance, QueryInput, Record, SearchResult, SegmentFieldIndex,
                    SegmentInfo, ServerInfo, Space, Stats, WriteResult)

__version__ = "0.1.0"
PROTOCOL_VERSION = 1

__all__ = [
    "AsyncClient", "Client", "DEFAULT_PORT", "PROTOCOL_VERSION", "__version__",
    # errors
    "RosettaError", "AbortedError", "AlreadyExistsError", "CancelledError", "DataLossError",
    "DeadlineExceededError", "FailedPreconditionError", "InternalError", "InvalidArgumentError",
    "NotFoundError", "OutOfRangeError", "PermissionDeniedError", "ResourceExhaustedError",
    "UnauthenticatedError", "UnavailableError", "UnimplementedError", "UnknownError",
    # data model
    "CalibrationStats", "CollectionInfo", "CollectionSchema", "DeviceStats", "EvalResult", "Field",
    "FieldExplanation", "FieldPlan", "GetResult", "Hit", "IndexProgress", "IndexSpec",
    "LatencyStats", "Provenance", "QueryInput", "Record", "SearchResult", "SegmentFieldIndex",
    "SegmentInfo", "ServerInfo", "Space", "Stats", "WriteResult",
]
