"""Reconnection and retries: a frame-aware proxy between client and server loses replies (the
request ran, the client never hears back) or drops every connection."""

from __future__ import annotations

import time

import numpy as np
import pytest

import rosetta
from rosetta.wire.Message import Message
from conftest import photos_schema, unit_rows
from fakes import DroppingProxy


@pytest.fixture
def proxy(server):
    with DroppingProxy(server.port) as p:
        yield p


def _client(proxy: DroppingProxy, **kw) -> rosetta.Client:
    return rosetta.Client("127.0.0.1", proxy.port, backoff=0.001, **kw)


def test_reconnects_when_the_server_closed_the_connection(proxy, db) -> None:
    with _client(proxy) as c:
        c.list_collections()
        proxy.kill_all()
        time.sleep(0.05)
        # Even a non-idempotent request goes out: the closed connection is noticed before
        # sending, so nothing was lost.
        c.create_collection(photos_schema("reconnect"))
        assert proxy.requests_by_type[Message.CreateCollection] == 1
        proxy.kill_all()
        time.sleep(0.05)
        c.drop_collection("reconnect")
    assert "reconnect" not in db.list_collections()


def test_reconnects_after_the_idle_timeout(make_server) -> None:
    s = make_server(args=["--idle-timeout-ms", "150"])
    with s.client() as c:
        c.create_collection(photos_schema("idle1"))
        time.sleep(0.5)  # the server closes the idle connection (and says so).
        c.create_collection(photos_schema("idle2"))
        assert c.list_collections() == ["idle1", "idle2"]


def test_idempotent_writes_retry_with_backoff(proxy, db, collection, rng) -> None:
    v = unit_rows(rng, 3, 8)
    with _client(proxy) as c:
        proxy.drop_replies = 3  # three lost replies: the fourth attempt gets through.
        r = c.upsert(collection, [{"id": f"u{i}", "vectors": {"image": v[i]}} for i in range(3)])
        assert proxy.requests_by_type[Message.Upsert] == 4
        assert r.written == 3 and r.created == 0  # the last attempt replaced what the first wrote.
        proxy.drop_replies = 1
        assert c.delete(collection, ["u0"]).deleted == 0  # ran twice: gone before the retry.
        assert proxy.requests_by_type[Message.Delete] == 2
        proxy.drop_replies = 4  # more than `retries`: the error surfaces.
        with pytest.raises(rosetta.UnavailableError):
            c.upsert(collection, [{"id": "u9"}])
        assert proxy.requests_by_type[Message.Upsert] == 8
    assert db.get(collection, ["u0", "u1", "u2", "u9"]).ids() == ["u1", "u2", "u9"]


def test_import_batches_retry_individually(proxy, db, collection, rng) -> None:
    x = unit_rows(rng, 30, 8)
    with _client(proxy) as c:
        # The describe (the check before the first write) and the first and last batches.
        proxy.drop_by_type = {Message.Describe: 1, Message.Import: 1}
        proxy.drop_replies = 0
        r = c.import_vectors(collection, "image", x, id_prefix="b", batch_rows=10)
        assert (r.written, r.batches) == (30, 3)
        assert proxy.requests_by_type[Message.Describe] == 2
        assert proxy.requests_by_type[Message.Import] == 4
        proxy.drop_by_type = {Message.Import: 3}
        r = c.import_vectors(collection, "image", x[::-1].copy(), id_prefix="b", batch_rows=10)
        assert (r.written, r.batches) == (30, 3)
        assert proxy.requests_by_type[Message.Import] == 4 + 6
        x = x[::-1]
    got = db.get(collection, [f"b{i}" for i in range(30)], with_vectors=True)
    np.testing.assert_allclose(got.vectors("image"), x, atol=1e-6)


def test_searches_and_reads_retry_once(proxy, collection, rng) -> None:
    q = unit_rows(rng, 1, 8)[0]
    with _client(proxy) as c:
        proxy.drop_replies = 1
        assert c.search(collection, q, space="clip") == []
        assert proxy.requests_by_type[Message.Search] == 2
        proxy.drop_replies = 2
        with pytest.raises(rosetta.UnavailableError):
            c.search(collection, q, space="clip")
        assert proxy.requests_by_type[Message.Search] == 4
        proxy.drop_replies = 1
        assert c.describe(collection).name == collection
        assert c.search(collection, q, space="clip") == []  # and the client goes on.


def test_non_idempotent_requests_are_not_retried(proxy, db) -> None:
    with _client(proxy) as c:
        proxy.drop_replies = 1
        with pytest.raises(rosetta.UnavailableError):
            c.create_collection(photos_schema("lost_reply"))
        assert proxy.requests_by_type[Message.CreateCollection] == 1
        # It did run: a retry would have failed with ALREADY_EXISTS.
        assert "lost_reply" in c.list_collections()
        c.drop_collection("lost_reply")


def test_retries_zero_disables_retries(proxy, collection) -> None:
    with _client(proxy, retries=0) as c:
        proxy.drop_replies = 1
        with pytest.raises(rosetta.UnavailableError):
            c.upsert(collection, [{"id": "z"}])
        assert proxy.requests_by_type[Message.Upsert] == 1
