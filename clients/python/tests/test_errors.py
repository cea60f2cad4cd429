"""Error mapping: every status code to its class, and each class the server can send, from a
real server reply; plus the client's own connection errors."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest

import rosetta
from rosetta import _codec as codec
from rosetta import errors
from conftest import photos_schema, unit_rows
from fakes import FakeServer, error_reply, hello_reply, read_frame, send_frame

ALL = [
    (1, "CANCELLED", errors.CancelledError, None),
    (2, "UNKNOWN", errors.UnknownError, None),
    (3, "INVALID_ARGUMENT", errors.InvalidArgumentError, ValueError),
    (4, "DEADLINE_EXCEEDED", errors.DeadlineExceededError, TimeoutError),
    (5, "NOT_FOUND", errors.NotFoundError, LookupError),
    (6, "ALREADY_EXISTS", errors.AlreadyExistsError, None),
    (7, "PERMISSION_DENIED", errors.PermissionDeniedError, None),
    (8, "RESOURCE_EXHAUSTED", errors.ResourceExhaustedError, None),
    (9, "FAILED_PRECONDITION", errors.FailedPreconditionError, None),
    (10, "ABORTED", errors.AbortedError, None),
    (11, "OUT_OF_RANGE", errors.OutOfRangeError, None),
    (12, "UNIMPLEMENTED", errors.UnimplementedError, None),
    (13, "INTERNAL", errors.InternalError, None),
    (14, "UNAVAILABLE", errors.UnavailableError, ConnectionError),
    (15, "DATA_LOSS", errors.DataLossError, None),
    (16, "UNAUTHENTICATED", errors.UnauthenticatedError, None),
]


@pytest.mark.parametrize("value,name,cls,builtin", ALL, ids=[a[1] for a in ALL])
def test_every_code_maps_to_its_class(value, name, cls, builtin) -> None:
    e = errors.error_from_code(value, "the message", request_id=7)
    assert type(e) is cls
    assert isinstance(e, rosetta.RosettaError)
    assert (e.code, e.code_value, str(e), e.request_id) == (name, value, "the message", 7)
    assert getattr(rosetta, cls.__name__) is cls
    if builtin is not None:
        assert isinstance(e, builtin)
    assert name in repr(e)


def test_unknown_code_is_a_plain_rosetta_error() -> None:
    e = errors.error_from_code(99, "future")
    assert type(e) is rosetta.RosettaError and e.code == "CODE_99" and e.code_value == 99


def test_errors_from_server_replies(db: rosetta.Client, collection: str) -> None:
    cases = [
        (lambda: db.search(collection, np.ones(8), k=0, space="clip"),
         rosetta.InvalidArgumentError, "k must be"),
        (lambda: db.describe("does_not_exist"), rosetta.NotFoundError, "does_not_exist"),
        (lambda: db.create_collection(photos_schema(collection)), rosetta.AlreadyExistsError,
         collection),
    ]
    for call, cls, text in cases:
        with pytest.raises(cls) as e:
            call()
        assert text in str(e.value)
        assert e.value.request_id not in (None, 0)  # the answer to that request...
    db.list_collections()  # ...and the connection stays usable.


def test_permission_denied_and_unauthenticated(make_server) -> None:
    s = make_server(tokens={"r-token": "read", "w-token": "write", "a-token": "admin"})
    with s.client("a-token") as admin:
        admin.create_collection(photos_schema("auth"))
    with s.client("r-token") as reader:
        with pytest.raises(rosetta.PermissionDeniedError) as e:
            reader.upsert("auth", [{"id": "x"}])
        assert e.value.code == "PERMISSION_DENIED" and "read" in str(e.value)
        assert reader.get("auth", ["x"]).not_found == ["x"]  # still connected.
    with pytest.raises(rosetta.UnauthenticatedError, match="invalid token"):
        rosetta.Client(s.host, s.port, token="wrong")
    with pytest.raises(rosetta.UnauthenticatedError, match="requires a token"):
        rosetta.Client(s.host, s.port)


def test_resource_exhausted_reply_too_large_and_frame_checked_before_sending(
        make_server, rng) -> None:
    s = make_server(args=["--max-frame-bytes", "65536"])
    with s.client() as c:
        assert c.server_info.max_frame_bytes == 65536
        c.create_collection(photos_schema("big", dim=512))
        c.import_vectors("big", "image", unit_rows(rng, 100, 512))  # several batches.
        with pytest.raises(rosetta.ResourceExhaustedError, match="reply too large"):
            # 100 records x 2 KiB: the reply exceeds the server's 64 KiB frame limit (the
            # client splits long id lists, but 100 ids are one request).
            c.get("big", [str(i) for i in range(100)], with_vectors=True)
        with pytest.raises(rosetta.ResourceExhaustedError, match="exceeds the maximum frame"):
            c.upsert("big", [{"id": "x" * 70000}])  # refused locally, nothing sent...
        assert c.describe("big").records == 100  # ...and the connection is fine.


def test_resource_exhausted_too_many_connections(make_server) -> None:
    s = make_server(args=["--max-connections", "1"])
    with s.client() as first:
        with pytest.raises(rosetta.ResourceExhaustedError, match="too many connections") as e:
            rosetta.Client(s.host, s.port, retries=0)
        assert e.value.request_id == 0  # a connection-level error.
        first.list_collections()


def test_failed_precondition_protocol_version(server) -> None:
    with pytest.raises(rosetta.FailedPreconditionError, match="protocol version mismatch"):
        rosetta.Client(server.host, server.port, _protocol_version=2)


def _raw_session(server) -> socket.socket:
    sock = socket.create_connection((server.host, server.port))
    send_frame(sock, bytes(codec.encode(codec.hello(1, None, "raw")).with_id(1)))
    body = read_frame(sock)
    assert body is not None
    codec.decode_reply(body, 1, codec.parse_hello_reply, codec.Message.HelloReply, "raw")
    return sock


def _connection_error(sock: socket.socket) -> rosetta.RosettaError:
    body = read_frame(sock)
    assert body is not None, "the server closed without an Error frame"
    with pytest.raises(rosetta.RosettaError) as e:
        codec.decode_reply(body, None, None, None, "raw")
    assert read_frame(sock) is None  # the server closes the connection after it.
    return e.value


def test_deadline_exceeded_from_the_frame_deadline(make_server) -> None:
    s = make_server(args=["--frame-deadline-ms", "200"])
    sock = _raw_session(s)
    sock.sendall(b"\x40\x00\x00\x00" + b"\x00" * 10)  # a 64-byte frame that never completes.
    e = _connection_error(sock)
    assert isinstance(e, rosetta.DeadlineExceededError) and e.request_id == 0
    assert "frame not received" in str(e)
    sock.close()


def test_unavailable_from_the_idle_timeout(make_server) -> None:
    s = make_server(args=["--idle-timeout-ms", "200"])
    sock = _raw_session(s)
    e = _connection_error(sock)
    assert isinstance(e, rosetta.UnavailableError) and e.request_id == 0
    assert "idle" in str(e)
    sock.close()


def test_cannot_connect_is_unavailable() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    with pytest.raises(rosetta.UnavailableError, match="cannot connect") as e:
        rosetta.Client("127.0.0.1", port, retries=0)
    assert isinstance(e.value, ConnectionError) and e.value.request_id is None


def test_silent_server_times_out() -> None:
    # Accepts, reads, never answers: the Hello times out.
    with FakeServer(lambda conn: read_frame(conn) and time.sleep(5)) as fake:
        with pytest.raises(rosetta.DeadlineExceededError) as e:
            rosetta.Client("127.0.0.1", fake.port, connect_timeout=0.3)
        assert isinstance(e.value, TimeoutError)

    # Answers the Hello, then never replies to the request.
    def hello_then_silence(conn: socket.socket) -> None:
        read_frame(conn)
        send_frame(conn, hello_reply())
        read_frame(conn)
        time.sleep(5)

    with FakeServer(hello_then_silence) as fake:
        c = rosetta.Client("127.0.0.1", fake.port, timeout=0.3)
        with pytest.raises(rosetta.DeadlineExceededError, match="no reply"):
            c.list_collections()
        c.close()


def test_malformed_replies_are_internal_errors() -> None:
    def script(reply_for: str):
        def handler(conn: socket.socket) -> None:
            read_frame(conn)
            send_frame(conn, hello_reply())
            body = read_frame(conn)
            rid = codec.decode_frame(body).request_id
            if reply_for == "wrong id":
                send_frame(conn, error_reply(rid + 5, 5, "x"))
            elif reply_for == "wrong type":
                send_frame(conn, hello_reply(request_id=rid))
            elif reply_for == "garbage":
                send_frame(conn, b"\x10\x00\x00\x00RSTA" + b"\xff" * 24)
            elif reply_for == "identifier":
                send_frame(conn, error_reply(rid, 5, "x")[:4] + b"XXXX" +
                           error_reply(rid, 5, "x")[8:])
            time.sleep(1)
        return handler

    for case, text in [("wrong id", "reply to request"), ("wrong type", "expected CollectionList"),
                       ("garbage", "malformed reply"), ("identifier", "file identifier")]:
        with FakeServer(script(case)) as fake:
            c = rosetta.Client("127.0.0.1", fake.port, timeout=5)
            with pytest.raises(rosetta.InternalError, match=text):
                c.list_collections()
            c.close()


def test_server_error_replies_are_never_retried() -> None:
    """An UNAVAILABLE answered to a request (e.g. storage unavailable) is the server's reply,
    not a connection failure: raised at once, even for idempotent writes."""
    requests = []

    def handler(conn: socket.socket) -> None:
        read_frame(conn)
        send_frame(conn, hello_reply())
        while True:
            body = read_frame(conn)
            if body is None:
                return
            rid = codec.decode_frame(body).request_id
            requests.append(rid)
            send_frame(conn, error_reply(rid, 14, "storage unavailable"))

    with FakeServer(handler) as fake:
        with rosetta.Client("127.0.0.1", fake.port, backoff=0.001) as c:
            with pytest.raises(rosetta.UnavailableError, match="storage unavailable") as e:
                c.delete("x", ["a"])
            assert e.value.request_id == requests[0]
            assert len(requests) == 1
