"""The blocking client: one persistent TCP connection to a rosettad, shared by threads."""

from __future__ import annotations

import math
import select
import socket
import threading
import time
from typing import Any, List, Optional

from . import _codec as codec
from . import errors
from ._base import (GetInfo, Gen, Op, Sleep, ClientBase, is_connection_error, retry_delays)
from .types import ServerInfo
from .wire.Message import Message

__all__ = ["Client", "DEFAULT_PORT", "DEFAULT_TIMEOUT", "DEFAULT_CONNECT_TIMEOUT"]

DEFAULT_PORT = 7700
DEFAULT_TIMEOUT = 300.0  # one call (an import batch is committed durably before its reply).
DEFAULT_CONNECT_TIMEOUT = 10.0  # resolving, connecting and the Hello together.
_CLIENT_NAME = "rosetta-python"
# Replies before the Hello completes: a HelloReply or an Error (messages up to 16 KiB).
_MAX_PRE_HELLO_REPLY_BYTES = 64 << 10
# Bodies up to this size are sent with their length prefix in one send call.
_COALESCE_BYTES = 64 << 10


def host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _Connection:
    """One session: a connected socket after a successful Hello. Not thread-safe (the Client
    serialises on its lock)."""

    def __init__(self, host: str, port: int, token: Optional[str], connect_timeout: float,
                 client_name: str, protocol_version: int) -> None:
        self.peer = host_port(host, port)
        deadline = time.monotonic() + connect_timeout
        try:
            self.sock = socket.create_connection((host, port), timeout=connect_timeout)
        except socket.timeout as e:
            raise errors.DeadlineExceededError(
                f"cannot connect to {self.peer}: timed out after {connect_timeout:g} s") from e
        except OSError as e:
            raise errors.UnavailableError(f"cannot connect to {self.peer}: "
                                          f"{e.strerror or e}") from e
        self.closed = False
        try:
            # Requests are small and latency-bound: no Nagle delay.
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            enc = codec.encode(codec.hello(protocol_version, token, client_name))
            if enc.nbytes > codec.MAX_PRE_HELLO_FRAME_BYTES:
                raise errors.InvalidArgumentError(
                    f"Hello frame of {enc.nbytes} bytes exceeds the {codec.MAX_PRE_HELLO_FRAME_BYTES}"
                    " bytes a server accepts before the Hello")
            self.info: ServerInfo = self.round_trip(
                enc, 1, deadline, _MAX_PRE_HELLO_REPLY_BYTES, Message.HelloReply,
                codec.parse_hello_reply)
        except BaseException:
            self.close()
            raise
        if self.info.protocol_version != codec.PROTOCOL_VERSION:
            self.close()
            raise errors.FailedPreconditionError(
                f"protocol version mismatch: this client speaks version {codec.PROTOCOL_VERSION}"
                f", the server answered with version {self.info.protocol_version}")
        self.max_frame_bytes = min(self.info.max_frame_bytes, codec.MAX_FRAME_BYTES_CEILING)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()

    def idle_ok(self) -> bool:
        """False when the server closed the connection or said something unasked for (its
        idle-timeout Error): the connection must not be used for a request."""
        if self.closed:
            return False
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            readable = [self.sock]
        if readable:
            self.close()
            return False
        return True

    # ---- I/O -----------------------------------------------------------------------------------

    def _remaining(self, deadline: float, what: str) -> Optional[float]:
        if deadline == math.inf:
            return None  # no timeout.
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout(what)
        return left

    def _send(self, parts: List[memoryview], deadline: float) -> None:
        if len(parts[1]) <= _COALESCE_BYTES:
            parts = [memoryview(b"".join(parts))]
        for p in parts:
            while len(p):
                self.sock.settimeout(self._remaining(deadline, "send"))
                n = self.sock.send(p)
                p = p[n:]

    def _recv_exact(self, n: int, deadline: float) -> bytearray:
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            self.sock.settimeout(self._remaining(deadline, "receive"))
            k = self.sock.recv_into(view[got:], n - got)
            if k == 0:
                raise ConnectionResetError("EOF")
            got += k
        return buf

    def _read_frame(self, deadline: float, max_reply: int) -> bytearray:
        (length,) = codec.HEADER.unpack(self._recv_exact(4, deadline))
        if length == 0 or length > max_reply:
            raise errors.InternalError(f"malformed reply from {self.peer}: frame of {length} "
                                       f"bytes (limit {max_reply})")
        return self._recv_exact(length, deadline)

    def round_trip(self, enc: codec.Encoded, request_id: int, deadline: float, max_reply: int,
                   want: int, parse: Any) -> Any:
        """Sends one request and returns its parsed reply. Raises the server's error for an
        Error reply; on any connection failure closes the connection and raises
        UnavailableError / DeadlineExceededError / InternalError with ``sent`` set on the
        exception (whether the whole request left this process)."""
        sent = False
        try:
            try:
                self._send(enc.framed(request_id), deadline)
                sent = True
            except OSError as e:
                # The server may have refused the request early and closed (e.g. a frame over its
                # limit): its answer, if readable, is the better error.
                err = self._early_answer()
                if err is not None:
                    raise err from e
                raise
            buf = self._read_frame(deadline, max_reply)
            _, value = codec.decode_reply(buf, request_id, parse, want, self.peer)
            return value
        except errors.RosettaError as e:
            if e.request_id is None or e.request_id == 0:
                self.close()  # connection-level: the stream cannot be trusted any more.
            e.sent = sent  # type: ignore[attr-defined]
            raise
        except socket.timeout as e:
            self.close()
            err = errors.DeadlineExceededError(
                f"no reply from {self.peer} within the timeout" if sent
                else f"could not send the request to {self.peer} within the timeout")
            err.sent = sent  # type: ignore[attr-defined]
            raise err from e
        except OSError as e:
            self.close()
            if isinstance(e, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
                err = errors.UnavailableError(f"the server closed the connection ({self.peer})")
            else:
                err = errors.UnavailableError(f"connection to {self.peer} failed: "
                                              f"{e.strerror or e}")
            err.sent = sent  # type: ignore[attr-defined]
            raise err from e
        except BaseException:
            # Interrupted mid-exchange (KeyboardInterrupt, ...): the stream is out of step.
            self.close()
            raise

    def _early_answer(self) -> Optional[errors.RosettaError]:
        try:
            buf = self._read_frame(time.monotonic() + 1.0, _MAX_PRE_HELLO_REPLY_BYTES)
            codec.decode_reply(buf, None, None, None, self.peer)
        except errors.RosettaError as e:
            return e
        except Exception:  # noqa: BLE001 - nothing readable: report the send failure.
            return None
        return None


class Client(ClientBase):
    """A blocking client of a rosettad server (docs/PROTOCOL.md).

    ::

        with rosetta.Client("127.0.0.1", 7700, token="...") as db:
            db.create_collection({...})
            hits = db.search("photos", text_vec, space="clip", fields=["image", "caption"])

    Connects (and performs the Hello) when constructed; ``server_info`` then holds the
    server's version, kernel backend, the session's role and the frame limit. One persistent
    connection is reused for every call and reopened transparently when the server closed it
    (idle timeout, restart). Calls may come from any thread; they are serialised on the
    connection (one request in flight), so use one Client per thread for parallel requests,
    or :class:`rosetta.AsyncClient`.

    Errors raise :class:`rosetta.RosettaError` subclasses carrying the server's code
    (``NotFoundError``, ``InvalidArgumentError``, ...). Retries after a failure of the
    connection (never after an error reply of the server): idempotent writes with
    client-chosen ids (``upsert``, ``import_vectors``, ``delete``) up to ``retries`` times with
    exponential backoff from ``backoff`` seconds; reads and searches once; ``create_collection``,
    ``drop_collection`` and ``build_index`` only when the request certainly did not reach the
    server.

    Args:
        host, port: the server.
        token: access token (None for an open server).
        timeout: seconds for one request (sending it and receiving the whole reply); None: no
            limit.
        connect_timeout: seconds for connecting and the Hello.
        retries: retries of idempotent writes after connection errors (0: none at all).
        backoff: the first retry's wait in seconds (doubling, at most 2 s, with jitter).
        client_name: sent in the Hello for the server's logs.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 token: Optional[str] = None, timeout: Optional[float] = DEFAULT_TIMEOUT, *,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT, retries: int = 3,
                 backoff: float = 0.1, client_name: str = _CLIENT_NAME,
                 _protocol_version: int = codec.PROTOCOL_VERSION) -> None:
        if not host:
            raise errors.InvalidArgumentError("server address: empty host")
        if token is not None and len(token.encode("utf-8")) > codec.MAX_TOKEN_BYTES:
            raise errors.InvalidArgumentError(
                f"token of {len(token.encode('utf-8'))} bytes; at most {codec.MAX_TOKEN_BYTES}")
        self.host = host
        self.port = int(port)
        self.timeout = None if timeout is None else float(timeout)
        self.connect_timeout = float(connect_timeout)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self._token = token
        self._client_name = client_name
        self._protocol_version = _protocol_version
        self._lock = threading.Lock()
        self._next_id = 2  # 1 is each connection's Hello.
        self._closed = False
        self._conn: Optional[_Connection] = self._connect()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<rosetta.Client {host_port(self.host, self.port)} {state}>"

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Closes the connection; later calls raise UnavailableError."""
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @property
    def server_info(self) -> ServerInfo:
        """What the server said in its HelloReply (of the current connection)."""
        with self._lock:
            return self._connection().info

    # ---- the driver ----------------------------------------------------------------------------

    def _connect(self) -> _Connection:
        return _Connection(self.host, self.port, self._token, self.connect_timeout,
                           self._client_name, self._protocol_version)

    def _connection(self) -> _Connection:
        """The live connection (reconnecting if the server closed it). Caller holds the lock."""
        if self._closed:
            raise errors.UnavailableError(
                f"the client for {host_port(self.host, self.port)} is closed")
        if self._conn is None or not self._conn.idle_ok():
            self._conn = None
            self._conn = self._connect()
        return self._conn

    def _run(self, gen: Gen) -> Any:
        result: Any = None
        exc: Optional[BaseException] = None
        try:
            while True:
                try:
                    step = gen.send(result) if exc is None else gen.throw(exc)
                except StopIteration as stop:
                    return stop.value
                result, exc = None, None
                try:
                    result = self._step(step)
                except errors.RosettaError as e:
                    exc = e
        finally:
            gen.close()

    def _step(self, step: Any) -> Any:
        if isinstance(step, Op):
            return self._execute(step)
        if isinstance(step, Sleep):
            time.sleep(step.seconds)
            return None
        if isinstance(step, GetInfo):
            with self._lock:
                return self._connection().info
        raise TypeError(f"unknown step {step!r}")

    def _execute(self, op: Op) -> Any:
        delays: Optional[List[float]] = None
        while True:
            try:
                with self._lock:
                    conn = self._connection()
                    if op.encoded.nbytes > conn.max_frame_bytes:
                        raise errors.ResourceExhaustedError(
                            f"{codec.message_name(op.encoded.message_type)} frame of "
                            f"{op.encoded.nbytes} bytes exceeds the maximum frame size of "
                            f"{conn.max_frame_bytes} bytes")
                    request_id = self._next_id
                    self._next_id += 1
                    try:
                        deadline = (math.inf if self.timeout is None
                                    else time.monotonic() + self.timeout)
                        return conn.round_trip(op.encoded, request_id, deadline,
                                               conn.max_frame_bytes, op.want, op.parse)
                    finally:
                        if conn.closed and self._conn is conn:
                            self._conn = None
            except errors.RosettaError as e:
                if not is_connection_error(e) or self._closed:
                    raise
                if delays is None:
                    delays = retry_delays(op.retry, getattr(e, "sent", True), self.retries,
                                          self.backoff)
                if not delays:
                    raise
                time.sleep(delays.pop(0))
