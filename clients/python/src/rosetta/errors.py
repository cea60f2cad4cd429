"""Typed exceptions carrying the server's status code.

Every error the server answers with (an ``Error`` frame, docs/PROTOCOL.md "Errors") is raised as
the subclass of :class:`RosettaError` for its code; ``.code`` is the code's name (for example
``"NOT_FOUND"``), ``.code_value`` its number (an Abseil status code, 1..16) and ``str(error)`` the
server's message unchanged. Errors of the connection itself (cannot connect, the server closed
the connection, a reply that does not decode) are raised as the same classes with the codes the
C++ client uses: ``UNAVAILABLE``, ``DEADLINE_EXCEEDED``, ``INTERNAL``.

Some classes also derive from the matching Python built-in, so generic handlers work:
``InvalidArgumentError`` is a ``ValueError``, ``NotFoundError`` a ``LookupError``,
``UnavailableError`` a ``ConnectionError`` and ``DeadlineExceededError`` a ``TimeoutError``.
"""

from __future__ import annotations

import builtins
from typing import Dict, Optional, Type

__all__ = [
    "RosettaError",
    "CancelledError",
    "UnknownError",
    "InvalidArgumentError",
    "DeadlineExceededError",
    "NotFoundError",
    "AlreadyExistsError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "FailedPreconditionError",
    "AbortedError",
    "OutOfRangeError",
    "UnimplementedError",
    "InternalError",
    "UnavailableError",
    "DataLossError",
    "UnauthenticatedError",
    "CODE_NAMES",
    "error_from_code",
]

# Abseil status codes (absl/status/status.h), the values of Error.code on the wire.
CODE_NAMES: Dict[int, str] = {
    1: "CANCELLED",
    2: "UNKNOWN",
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND",
    6: "ALREADY_EXISTS",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    10: "ABORTED",
    11: "OUT_OF_RANGE",
    12: "UNIMPLEMENTED",
    13: "INTERNAL",
    14: "UNAVAILABLE",
    15: "DATA_LOSS",
    16: "UNAUTHENTICATED",
}


class RosettaError(Exception):
    """Base class of every error raised by the client.

    Attributes:
        code: the status code's name, e.g. ``"INVALID_ARGUMENT"``.
        code_value: the numeric code (1..16), as sent by the server.
        message: the message (the server's, unchanged, for errors it sent).
        request_id: the id of the request the server answered with this error; 0 for errors the
            server sent on the connection as a whole (it closes the connection after them), None
            for errors raised by the client itself.
    """

    code: str = "UNKNOWN"
    code_value: int = 2

    def __init__(self, message: str, *, code_value: Optional[int] = None,
                 request_id: Optional[int] = None) -> None:
        super().__init__(message)
        self.message = message
        if code_value is not None:
            self.code_value = code_value
            self.code = CODE_NAMES.get(code_value, f"CODE_{code_value}")
        self.request_id = request_id

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code}: {self.message!r})"


class CancelledError(RosettaError):
    """CANCELLED."""

    code = "CANCELLED"
    code_value = 1


class UnknownError(RosettaError):
    """UNKNOWN."""

    code = "UNKNOWN"
    code_value = 2


class InvalidArgumentError(RosettaError, ValueError):
    """INVALID_ARGUMENT: a request the server (or the client's own checks) refused as invalid."""

    code = "INVALID_ARGUMENT"
    code_value = 3


class DeadlineExceededError(RosettaError, builtins.TimeoutError):
    """DEADLINE_EXCEEDED: no reply within the client's timeout, or the server's frame deadline."""

    code = "DEADLINE_EXCEEDED"
    code_value = 4


class NotFoundError(RosettaError, LookupError):
    """NOT_FOUND: unknown collection or field."""

    code = "NOT_FOUND"
    code_value = 5


class AlreadyExistsError(RosettaError):
    """ALREADY_EXISTS: collection name taken."""

    code = "ALREADY_EXISTS"
    code_value = 6


class PermissionDeniedError(RosettaError):
    """PERMISSION_DENIED: the token's role may not make this request."""

    code = "PERMISSION_DENIED"
    code_value = 7


class ResourceExhaustedError(RosettaError):
    """RESOURCE_EXHAUSTED: too many connections, or a frame or reply over a limit."""

    code = "RESOURCE_EXHAUSTED"
    code_value = 8


class FailedPreconditionError(RosettaError):
    """FAILED_PRECONDITION: e.g. a protocol version mismatch, a request before Hello."""

    code = "FAILED_PRECONDITION"
    code_value = 9


class AbortedError(RosettaError):
    """ABORTED: e.g. an index build failed."""

    code = "ABORTED"
    code_value = 10


class OutOfRangeError(RosettaError):
    """OUT_OF_RANGE."""

    code = "OUT_OF_RANGE"
    code_value = 11


class UnimplementedError(RosettaError):
    """UNIMPLEMENTED."""

    code = "UNIMPLEMENTED"
    code_value = 12


class InternalError(RosettaError):
    """INTERNAL: a server bug, or a reply the client cannot decode."""

    code = "INTERNAL"
    code_value = 13


class UnavailableError(RosettaError, builtins.ConnectionError):
    """UNAVAILABLE: cannot connect, connection closed, idle timeout, storage unavailable."""

    code = "UNAVAILABLE"
    code_value = 14


class DataLossError(RosettaError):
    """DATA_LOSS: corrupt stored data."""

    code = "DATA_LOSS"
    code_value = 15


class UnauthenticatedError(RosettaError):
    """UNAUTHENTICATED: missing or unknown token."""

    code = "UNAUTHENTICATED"
    code_value = 16


_BY_CODE: Dict[int, Type[RosettaError]] = {
    cls.code_value: cls
    for cls in (CancelledError, UnknownError, InvalidArgumentError, DeadlineExceededError,
                NotFoundError, AlreadyExistsError, PermissionDeniedError, ResourceExhaustedError,
                FailedPreconditionError, AbortedError, OutOfRangeError, UnimplementedError,
                InternalError, UnavailableError, DataLossError, UnauthenticatedError)
}


def error_from_code(code_value: int, message: str,
                    request_id: Optional[int] = None) -> RosettaError:
    """The exception for a numeric status code (an unknown code gives a plain RosettaError)."""
    cls = _BY_CODE.get(code_value)
    if cls is None:
        return RosettaError(message, code_value=code_value, request_id=request_id)
    return cls(message, code_value=code_value, request_id=request_id)
