"""The asyncio client: the same methods, and many concurrent requests pipelined on one or
several connections, each answer matched to its caller."""

from __future__ import annotations

import asyncio
import socket
import time

import numpy as np
import pytest

import rosetta
from rosetta.wire.Message import Message
from conftest import photos_schema, unit_rows
from fakes import DroppingProxy, FakeServer, hello_reply, read_frame, send_frame


def run(coro):
    return asyncio.run(coro)


def test_async_methods(server, rng) -> None:
    x = unit_rows(rng, 40, 8)

    async def main() -> None:
        async with server.async_client() as db:
            assert db.server_info is not None and db.server_info.role == "admin"
            await db.create_collection(photos_schema("async_all"))
            assert "async_all" in await db.list_collections()
            assert (await db.upsert("async_all", [{"id": "u", "attributes": {"lang": "en"}}])
                    ).created == 1
            r = await db.import_vectors("async_all", "image", x, id_prefix="a", batch_rows=16)
            assert (r.written, r.batches) == (40, 3)
            got = await db.get("async_all", ["a0", "a39", "nope"], with_vectors=True)
            assert got.ids() == ["a0", "a39"] and got.not_found == ["nope"]
            np.testing.assert_allclose(got.vectors("image"), x[[0, 39]], atol=1e-6)
            one = await db.search("async_all", x[5], k=3, space="clip", fields="image",
                                  exact=True)
            assert one.ids()[0] == "a5"
            many = await db.search("async_all", x[:4], k=3, space="clip", fields="image")
            assert [m.ids()[0] for m in many] == ["a0", "a1", "a2", "a3"]
            ev = await db.evaluate("async_all", x, space="clip", fields="image", id_prefix="a",
                                   exact=True)
            assert ev.recall[1] == 1.0
            assert (await db.delete("async_all", ["a0", "zz"])).not_found == 1
            assert (await db.describe("async_all")).records == 40
            assert (await db.index_progress("async_all")).segments == 0
            assert any(r.operation == "request.search" for r in (await db.stats()).requests)
            with pytest.raises(rosetta.NotFoundError):
                await db.describe("no_such_collection")
            with pytest.raises(rosetta.InvalidArgumentError, match="k must be"):
                await db.search("async_all", x[0], k=0, space="clip")
            await db.drop_collection("async_all")
        with pytest.raises(rosetta.UnavailableError, match="closed"):
            await db.list_collections()

    run(main())


@pytest.mark.parametrize("connections", [1, 4])
def test_async_concurrent_searches_and_upserts(server, db, rng, connections) -> None:
    base = unit_rows(rng, 500, 8)
    name = f"async_conc{connections}"
    db.create_collection(photos_schema(name))
    db.create_collection(photos_schema(name + "_w"))
    try:
        db.import_vectors(name, "image", base, id_prefix="b")
        db.import_vectors(name, "caption", base[::-1].copy(), id_prefix="b")
        queries = unit_rows(rng, 32, 8)
        expected = [db.search(name, q, k=10, space="clip", modality="text") for q in queries]
        writes = unit_rows(rng, 32 * 8, 8).reshape(32, 8, 8)

        async def main() -> None:
            async with server.async_client(connections=connections) as adb:
                searches = [adb.search(name, q, k=10, space="clip", modality="text")
                            for q in queries]
                upserts = [adb.upsert(name + "_w", [{"id": f"w{i}_{j}",
                                                      "vectors": {"image": writes[i, j]}}
                                                     for j in range(8)]) for i in range(32)]
                # Interleave them so that writes and reads are in flight together.
                calls = [c for pair in zip(searches, upserts) for c in pair]
                results = await asyncio.gather(*calls)
                found = results[0::2]
                written = results[1::2]
                assert found == expected  # each reply went to the right caller.
                assert all(w.written == 8 and w.created == 8 for w in written)
                # They were pipelined: many requests in flight on a connection at once.
                assert max(c.peak_pending for c in adb._slots if c is not None) > 1
                # Batch searches in flight together as well.
                batches = await asyncio.gather(*(adb.search(name, queries[i:i + 4], k=10,
                                                            space="clip", modality="text")
                                                 for i in range(0, 32, 4)))
                assert [r for b in batches for r in b] == expected

        run(main())
        got = db.get(name + "_w", [f"w{i}_{j}" for i in range(32) for j in range(8)],
                     with_vectors=True)
        assert got.not_found == []
        np.testing.assert_allclose(got.vectors("image"), writes.reshape(-1, 8), atol=1e-6)
    finally:
        db.drop_collection(name)
        db.drop_collection(name + "_w")


def test_async_cancelled_callers_do_not_disturb_the_others(server, db, collection, rng) -> None:
    base = unit_rows(rng, 200, 8)
    db.import_vectors(collection, "image", base, id_prefix="c")
    queries = unit_rows(rng, 20, 8)
    expected = [db.search(collection, q, k=5, space="clip") for q in queries]

    async def main() -> None:
        async with server.async_client() as adb:
            tasks = [asyncio.ensure_future(adb.search(collection, q, k=5, space="clip"))
                     for q in queries]
            await asyncio.sleep(0)  # let them send.
            for t in tasks[::2]:
                t.cancel()
            done = await asyncio.gather(*tasks, return_exceptions=True)
            for i, r in enumerate(done):
                if i % 2:
                    assert r == expected[i]
                else:
                    assert isinstance(r, asyncio.CancelledError) or r == expected[i]
            # The replies of the cancelled calls were read and dropped: the stream is in step.
            assert await adb.search(collection, queries[3], k=5, space="clip") == expected[3]

    run(main())


def test_async_retries_lost_replies(server, collection, rng) -> None:
    v = unit_rows(rng, 4, 8)

    async def main(proxy: DroppingProxy) -> None:
        adb = rosetta.AsyncClient("127.0.0.1", proxy.port, backoff=0.001)
        try:
            proxy.drop_by_type = {Message.Upsert: 2, Message.Search: 1}
            r = await adb.upsert(collection, [{"id": f"r{i}", "vectors": {"image": v[i]}}
                                              for i in range(4)])
            assert r.written == 4
            assert (await adb.search(collection, v[2], k=1, space="clip")).ids() == ["r2"]
            assert proxy.requests_by_type[Message.Upsert] == 3
            assert proxy.requests_by_type[Message.Search] == 2
            proxy.drop_by_type = {Message.CreateCollection: 1}
            with pytest.raises(rosetta.UnavailableError):
                await adb.create_collection(photos_schema("async_lost"))
            assert proxy.requests_by_type[Message.CreateCollection] == 1
            await adb.drop_collection("async_lost")
        finally:
            await adb.close()

    with DroppingProxy(server.port) as proxy:
        run(main(proxy))


def test_async_connection_errors_and_timeouts() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]

    async def refused() -> None:
        adb = rosetta.AsyncClient("127.0.0.1", port, retries=0)
        with pytest.raises(rosetta.UnavailableError, match="cannot connect"):
            await adb.list_collections()
        await adb.close()

    run(refused())

    def hello_then_silence(conn: socket.socket) -> None:
        read_frame(conn)
        send_frame(conn, hello_reply())
        read_frame(conn)
        time.sleep(5)

    async def silent(p: int) -> None:
        async with rosetta.AsyncClient("127.0.0.1", p, timeout=0.3) as adb:
            with pytest.raises(rosetta.DeadlineExceededError, match="no reply"):
                await adb.list_collections()

    with FakeServer(hello_then_silence) as fake:
        run(silent(fake.port))

    async def no_hello(p: int) -> None:
        adb = rosetta.AsyncClient("127.0.0.1", p, connect_timeout=0.3)
        with pytest.raises(rosetta.DeadlineExceededError):
            await adb.connect()
        await adb.close()

    with FakeServer(lambda conn: read_frame(conn) and time.sleep(5)) as fake:
        run(no_hello(fake.port))


def test_async_auth(make_server) -> None:
    s = make_server(tokens=["read:r1", "admin:a1"])

    async def main() -> None:
        async with rosetta.AsyncClient(s.host, s.port, token="r1") as r:
            assert r.server_info.role == "read" and r.server_info.data_dir == ""
            with pytest.raises(rosetta.PermissionDeniedError):
                await r.create_collection(photos_schema("nope"))
        with pytest.raises(rosetta.UnauthenticatedError):
            await rosetta.AsyncClient(s.host, s.port, token="bad").connect()

    run(main())


def test_async_lazy_connections_are_all_used(server, db, collection, rng) -> None:
    base = unit_rows(rng, 50, 8)
    db.import_vectors(collection, "image", base, id_prefix="l")
    expected = [db.search(collection, q, k=3, space="clip") for q in base]

    async def main() -> None:
        adb = server.async_client(connections=4)  # not connected yet.
        try:
            got = await asyncio.gather(*(adb.search(collection, q, k=3, space="clip")
                                         for q in base))
            assert got == expected
            opened = [c for c in adb._slots if c is not None]
            assert len(opened) == 4  # the first concurrent calls opened every connection.
        finally:
            await adb.close()

    run(main())
