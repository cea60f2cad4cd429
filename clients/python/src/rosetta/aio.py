"""The asyncio client: the same methods as :class:`rosetta.Client`, as coroutines.

Concurrent calls are pipelined: each is written to a connection as soon as it is made and the
replies, which the server sends in request order (docs/PROTOCOL.md "The session"), are matched
to their callers by a reader task. The server handles one request per connection at a time, so
``connections=N`` opens N connections and spreads calls over them for parallelism.
"""

from __future__ import annotations

import asyncio
import collections
import math
import socket
import time
from typing import Any, Deque, List, Optional, Set, Tuple

from . import _codec as codec
from . import errors
from ._base import ClientBase, Gen, GetInfo, Op, Sleep, is_connection_error, retry_delays
from .client import (DEFAULT_CONNECT_TIMEOUT, DEFAULT_PORT, DEFAULT_TIMEOUT, _CLIENT_NAME,
                     _MAX_PRE_HELLO_REPLY_BYTES, host_port)
from .types import ServerInfo
from .wire.Message import Message

__all__ = ["AsyncClient"]


def _left(deadline: float) -> Optional[float]:
    return None if deadline == math.inf else max(0.001, deadline - time.monotonic())


class _AsyncConnection:
    """One session with pipelined requests: requests are written in order under a lock and
    their futures queued in the same order; the reader task resolves them as replies come."""

    def __init__(self, peer: str) -> None:
        self.peer = peer
        self.reader: Optional[asyncio.StreamReader] = None
        self.writer: Optional[asyncio.StreamWriter] = None
        self.info: Optional[ServerInfo] = None
        self.max_frame_bytes = codec.MAX_PRE_HELLO_FRAME_BYTES
        self.pending: Deque[Tuple[int, asyncio.Future]] = collections.deque()
        self.write_lock = asyncio.Lock()
        self.reader_task: Optional[asyncio.Task] = None
        self.closed = False
        self.error: Optional[errors.RosettaError] = None  # why it closed.
        self.peak_pending = 0  # most requests in flight at once (for tests and curiosity).

    async def open(self, host: str, port: int, token: Optional[str], connect_timeout: float,
                   client_name: str, protocol_version: int) -> None:
        deadline = time.monotonic() + connect_timeout
        try:
            self.reader, self.writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), connect_timeout)
        except asyncio.TimeoutError as e:
            raise errors.DeadlineExceededError(
                f"cannot connect to {self.peer}: timed out after {connect_timeout:g} s") from e
        except OSError as e:
            raise errors.UnavailableError(
                f"cannot connect to {self.peer}: {e.strerror or e}") from e
        try:
            sock = self.writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            enc = codec.encode(codec.hello(protocol_version, token, client_name))
            for part in enc.framed(1):
                self.writer.write(part)
            left = max(0.001, deadline - time.monotonic())
            buf = await asyncio.wait_for(self._read_frame(_MAX_PRE_HELLO_REPLY_BYTES), left)
            _, info = codec.decode_reply(buf, 1, codec.parse_hello_reply, Message.HelloReply,
                                         self.peer)
        except asyncio.TimeoutError as e:
            self._close_transport()
            raise errors.DeadlineExceededError(
                f"cannot connect to {self.peer}: no Hello reply within {connect_timeout:g} s") \
                from e
        except (OSError, asyncio.IncompleteReadError) as e:
            self._close_transport()
            raise errors.UnavailableError(
                f"the server closed the connection ({self.peer}) during the Hello") from e
        except BaseException:
            self._close_transport()
            raise
        if info.protocol_version != codec.PROTOCOL_VERSION:
            self._close_transport()
            raise errors.FailedPreconditionError(
                f"protocol version mismatch: this client speaks version {codec.PROTOCOL_VERSION}"
                f", the server answered with version {info.protocol_version}")
        self.info = info
        self.max_frame_bytes = min(info.max_frame_bytes, codec.MAX_FRAME_BYTES_CEILING)
        self.reader_task = asyncio.get_running_loop().create_task(self._read_loop())

    async def _read_frame(self, max_reply: int) -> bytes:
        assert self.reader is not None
        (length,) = codec.HEADER.unpack(await self.reader.readexactly(4))
        if length == 0 or length > max_reply:
            raise errors.InternalError(f"malformed reply from {self.peer}: frame of {length} "
                                       f"bytes (limit {max_reply})")
        return await self.reader.readexactly(length)

    async def _read_loop(self) -> None:
        try:
            while True:
                buf = await self._read_frame(self.max_frame_bytes)
                try:
                    reply = codec.decode_frame(buf)
                except Exception as e:  # noqa: BLE001
                    raise errors.InternalError(f"malformed reply from {self.peer}: {e}") from e
                if reply.request_id == 0 or not self.pending:
                    # A connection-level error (the server closes after it) or a reply to
                    # nothing: the stream is done.
                    err: errors.RosettaError
                    if reply.message_type == Message.Error and reply.table is not None:
                        err = codec.error_of(reply.table, reply.request_id)
                    else:
                        err = errors.InternalError(
                            f"malformed reply from {self.peer}: unexpected reply to request "
                            f"{reply.request_id}")
                    self.fail(err)
                    return
                request_id, fut = self.pending.popleft()
                if reply.request_id != request_id:
                    self.fail(errors.InternalError(
                        f"malformed reply from {self.peer}: reply to request "
                        f"{reply.request_id}, expected {request_id}"))
                    if not fut.done():
                        fut.set_exception(self.error)  # type: ignore[arg-type]
                    return
                if not fut.done():  # a caller that timed out or was cancelled is gone.
                    fut.set_result(buf)
        except asyncio.CancelledError:
            self.fail(errors.UnavailableError(f"the connection to {self.peer} was closed"))
            raise
        except (asyncio.IncompleteReadError, OSError) as e:
            self.fail(errors.UnavailableError(
                f"the server closed the connection ({self.peer})"
                if isinstance(e, (asyncio.IncompleteReadError, ConnectionResetError))
                else f"connection to {self.peer} failed: {e}"))
        except errors.RosettaError as e:
            self.fail(e)

    def fail(self, err: errors.RosettaError) -> None:
        """Closes the connection and fails every request still waiting for a reply."""
        if self.error is None:
            self.error = err
        self.closed = True
        while self.pending:
            _, fut = self.pending.popleft()
            if not fut.done():
                e = type(err)(err.message, code_value=err.code_value, request_id=err.request_id)
                e.sent = True  # type: ignore[attr-defined]
                fut.set_exception(e)
        self._close_transport()

    def _close_transport(self) -> None:
        self.closed = True
        if self.writer is not None:
            try:
                self.writer.close()
            except Exception:  # noqa: BLE001
                pass

    async def close(self) -> None:
        self.fail(errors.UnavailableError(f"the connection to {self.peer} was closed"))
        if self.reader_task is not None:
            self.reader_task.cancel()
            try:
                await self.reader_task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        if self.writer is not None:
            try:
                await self.writer.wait_closed()
            except Exception:  # noqa: BLE001
                pass

    async def request(self, enc: codec.Encoded, request_id: int,
                      timeout: Optional[float]) -> bytes:
        """Sends one request; the reply frame body. Connection failures raise UnavailableError
        with ``sent`` telling whether the request left whole."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()
        # Failures set on a future whose caller already gave up are not "never retrieved".
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())
        deadline = math.inf if timeout is None else time.monotonic() + timeout
        sent = False
        try:
            async with self.write_lock:
                if self.closed:
                    raise errors.UnavailableError(
                        f"the connection to {self.peer} is closed"
                        + (f" (after: {self.error.code}: {self.error})" if self.error else ""))
                assert self.writer is not None
                self.pending.append((request_id, fut))
                self.peak_pending = max(self.peak_pending, len(self.pending))
                try:
                    for part in enc.framed(request_id):
                        self.writer.write(part)
                    # Wait only while the kernel does not take it all (large frames): a small
                    # request goes out without suspending, so the next one pipelines behind it.
                    if self.writer.transport.get_write_buffer_size() > 0:
                        await asyncio.wait_for(self.writer.drain(), _left(deadline))
                except asyncio.TimeoutError:
                    raise
                except (OSError, RuntimeError) as e:
                    self.fail(errors.UnavailableError(
                        f"the server closed the connection ({self.peer})"))
                    raise errors.UnavailableError(
                        f"the server closed the connection ({self.peer})") from e
                sent = True
            return await asyncio.wait_for(asyncio.shield(fut), _left(deadline))
        except asyncio.TimeoutError as e:
            # A late reply could not be told from the next one by a caller that gave up; the
            # protocol's advice: close the connection.
            self.fail(errors.UnavailableError(
                f"the connection to {self.peer} was closed after a request timed out"))
            err = errors.DeadlineExceededError(
                f"no reply from {self.peer} within {timeout} s" if sent
                else f"could not send the request to {self.peer} within {timeout} s")
            err.sent = sent  # type: ignore[attr-defined]
            raise err from e
        except errors.RosettaError as e:
            if not hasattr(e, "sent"):
                e.sent = sent  # type: ignore[attr-defined]
            raise


class AsyncClient(ClientBase):
    """An asyncio client of a rosettad server, with the methods of :class:`rosetta.Client` as
    coroutines::

        async with rosetta.AsyncClient("127.0.0.1", 7700, connections=4) as db:
            results = await asyncio.gather(*(db.search("photos", v, space="clip") for v in vs))

    Connects lazily (on the first call, or ``await client.connect()`` / ``async with``).
    Concurrent calls are pipelined on the connections (replies come in request order); with
    ``connections`` > 1 each call goes to the connection with the fewest requests in flight.
    Timeouts, retries and errors are those of :class:`rosetta.Client`; a timed-out request
    closes its connection (the protocol's advice), failing the requests pipelined behind it
    with a connection error, which are then retried according to their policy.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 token: Optional[str] = None, timeout: Optional[float] = DEFAULT_TIMEOUT, *,
                 connections: int = 1, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
                 retries: int = 3, backoff: float = 0.1, client_name: str = _CLIENT_NAME,
                 _protocol_version: int = codec.PROTOCOL_VERSION) -> None:
        if not host:
            raise errors.InvalidArgumentError("server address: empty host")
        if connections < 1:
            raise ValueError(f"connections must be >= 1, got {connections}")
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
        self._slots: List[Optional[_AsyncConnection]] = [None] * connections
        self._slot_locks: Optional[List[asyncio.Lock]] = None
        self._opening: Set[int] = set()  # slots being connected.
        self._turn = 0
        self._next_id = 2  # 1 is each connection's Hello.
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (f"<rosetta.AsyncClient {host_port(self.host, self.port)} "
                f"connections={len(self._slots)} {state}>")

    async def __aenter__(self) -> "AsyncClient":
        await self.connect()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def connect(self) -> "AsyncClient":
        """Opens every connection now (performing the Hellos); raises the connection's error."""
        await asyncio.gather(*(self._slot(i) for i in range(len(self._slots))))
        return self

    async def close(self) -> None:
        """Closes the connections; later calls raise UnavailableError."""
        self._closed = True
        slots, self._slots = self._slots, [None] * len(self._slots)
        for c in slots:
            if c is not None:
                await c.close()

    @property
    def server_info(self) -> Optional[ServerInfo]:
        """The HelloReply of a live connection (None before connecting)."""
        for c in self._slots:
            if c is not None and c.info is not None:
                return c.info
        return None

    # ---- connections ---------------------------------------------------------------------------

    async def _slot(self, i: int) -> _AsyncConnection:
        if self._closed:
            raise errors.UnavailableError(
                f"the client for {host_port(self.host, self.port)} is closed")
        if self._slot_locks is None:
            self._slot_locks = [asyncio.Lock() for _ in self._slots]
        c = self._slots[i]
        if c is not None and not c.closed:
            return c
        self._opening.add(i)
        try:
            async with self._slot_locks[i]:
                c = self._slots[i]
                if c is None or c.closed:
                    c = _AsyncConnection(host_port(self.host, self.port))
                    await c.open(self.host, self.port, self._token, self.connect_timeout,
                                 self._client_name, self._protocol_version)
                    if self._closed:
                        await c.close()
                        raise errors.UnavailableError(
                            f"the client for {host_port(self.host, self.port)} is closed")
                    self._slots[i] = c
                return c
        finally:
            self._opening.discard(i)

    async def _pick(self) -> _AsyncConnection:
        """The connection for the next call: an unopened slot is opened (so concurrent first
        calls open every connection), else the open one with the fewest requests in flight;
        while every slot is still opening, calls queue on them in turn."""
        best, load = None, None
        for i, c in enumerate(self._slots):
            if c is None or c.closed:
                if i not in self._opening:
                    return await self._slot(i)
                continue
            n = len(c.pending)
            if load is None or n < load:
                best, load = i, n
        if best is None:
            opening = sorted(self._opening) or [0]
            best = opening[self._turn % len(opening)]
            self._turn += 1
        return await self._slot(best)

    # ---- the driver ----------------------------------------------------------------------------

    async def _run(self, gen: Gen) -> Any:  # type: ignore[override]
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
                    result = await self._step(step)
                except errors.RosettaError as e:
                    exc = e
        finally:
            gen.close()

    async def _step(self, step: Any) -> Any:
        if isinstance(step, Op):
            return await self._execute(step)
        if isinstance(step, Sleep):
            await asyncio.sleep(step.seconds)
            return None
        if isinstance(step, GetInfo):
            return (await self._pick()).info
        raise TypeError(f"unknown step {step!r}")

    async def _execute(self, op: Op) -> Any:
        delays: Optional[List[float]] = None
        while True:
            try:
                conn = await self._pick()
                if op.encoded.nbytes > conn.max_frame_bytes:
                    raise errors.ResourceExhaustedError(
                        f"{codec.message_name(op.encoded.message_type)} frame of "
                        f"{op.encoded.nbytes} bytes exceeds the maximum frame size of "
                        f"{conn.max_frame_bytes} bytes")
                request_id = self._next_id
                self._next_id += 1
                buf = await conn.request(op.encoded, request_id, self.timeout)
                _, value = codec.decode_reply(buf, request_id, op.parse, op.want, conn.peer)
                return value
            except errors.RosettaError as e:
                if not is_connection_error(e) or self._closed:
                    raise
                if delays is None:
                    delays = retry_delays(op.retry, getattr(e, "sent", True), self.retries,
                                          self.backoff)
                if not delays:
                    raise
                await asyncio.sleep(delays.pop(0))
