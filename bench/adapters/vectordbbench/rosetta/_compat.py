"""Stand-ins for the VectorDBBench names the adapter uses, when VectorDBBench is not installed.

Inside VectorDBBench (the folder copied to vectordb_bench/backend/clients/rosetta/) the real
classes are imported instead; these exist so that the adapter imports and runs in the smoke test
and in CI without VectorDBBench and its dependencies (pydantic, streamlit, ...). They keep the
real names and the members the adapter and its callers use, nothing more.
"""

from __future__ import annotations

import contextlib
import enum
from abc import ABC, abstractmethod
from typing import Any, Dict


class MetricType(str, enum.Enum):
    L2 = "L2"
    COSINE = "COSINE"
    IP = "IP"
    DP = "DP"


class IndexType(str, enum.Enum):
    IVFPQ = "IVF_PQ"
    Flat = "FLAT"
    NONE = "NONE"


class FilterOp(str, enum.Enum):
    NumGE = "NumGE"
    StrEqual = "Label"
    NonFilter = "NonFilter"


class BaseModel:
    """A pydantic-like model: class annotations with defaults, keyword construction, unknown or
    missing fields rejected."""

    def __init__(self, **kwargs: Any) -> None:
        fields: Dict[str, Any] = {}
        for klass in reversed(type(self).__mro__):
            for name in getattr(klass, "__annotations__", {}):
                if not name.startswith("_"):
                    fields[name] = getattr(klass, name, _MISSING)
        unknown = sorted(set(kwargs) - set(fields))
        if unknown:
            raise ValueError(f"{type(self).__name__}: unknown field(s) {', '.join(unknown)}")
        for name, default in fields.items():
            value = kwargs.get(name, default)
            if value is _MISSING:
                raise ValueError(f"{type(self).__name__}: field {name} is required")
            setattr(self, name, value)


_MISSING = object()


class DBConfig(ABC, BaseModel):
    db_label: str = ""
    version: str = ""
    note: str = ""

    @abstractmethod
    def to_dict(self) -> dict:
        raise NotImplementedError


class DBCaseConfig(ABC):
    @abstractmethod
    def index_param(self) -> dict:
        raise NotImplementedError

    @abstractmethod
    def search_param(self) -> dict:
        raise NotImplementedError


class VectorDB(ABC):
    supported_filter_types = [FilterOp.NonFilter]
    name = ""
    thread_safe = True

    @classmethod
    def filter_supported(cls, filters: Any) -> bool:
        return filters.type in cls.supported_filter_types

    def prepare_filter(self, filters: Any) -> None:
        return None

    @abstractmethod
    @contextlib.contextmanager
    def init(self) -> Any:
        raise NotImplementedError

    def need_normalize_cosine(self) -> bool:
        return False
