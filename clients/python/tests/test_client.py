"""Every method of the blocking client against a real rosettad, results checked against
independent NumPy computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

import rosetta
from conftest import photos_schema, unit_rows


def brute_force(base: np.ndarray, ids: list, q: np.ndarray, k: int) -> list:
    """(id, cosine) of the top k, ties by id ascending (as the engine)."""
    qn = q / np.linalg.norm(q)
    bn = base / np.linalg.norm(base, axis=1, keepdims=True)
    scores = (bn @ qn).astype(np.float32)
    order = sorted(range(len(ids)), key=lambda i: (-scores[i], ids[i]))
    return [(ids[i], float(scores[i])) for i in order[:k]]


def test_server_info(db: rosetta.Client) -> None:
    info = db.server_info
    assert info.protocol_version == 1
    assert info.role == "admin"
    assert info.server_version
    assert info.kernel_backend in ("avx512", "avx2", "scalar")
    assert info.max_frame_bytes == 256 << 20
    assert info.data_dir  # admin sessions see it.


def test_create_list_describe_drop(db: rosetta.Client) -> None:
    schema = photos_schema("cldd", dim=16)
    db.create_collection(schema)
    assert "cldd" in db.list_collections()
    assert db.list_collections() == sorted(db.list_collections())
    info = db.describe("cldd")
    assert info.name == "cldd"
    assert info.records == 0
    assert info.field_vectors == {"image": 0, "caption": 0}
    assert info.storage.startswith("rocksdb")
    expected = rosetta.CollectionSchema.from_dict(schema)
    assert info.schema == expected
    assert info.schema.to_dict() == expected.to_dict()
    with pytest.raises(rosetta.AlreadyExistsError):
        db.create_collection(schema)
    db.drop_collection("cldd")
    assert "cldd" not in db.list_collections()
    with pytest.raises(rosetta.NotFoundError):
        db.describe("cldd")
    with pytest.raises(rosetta.NotFoundError):
        db.drop_collection("cldd")


def test_schema_dataclass_and_index_spec_round_trip(db: rosetta.Client) -> None:
    schema = rosetta.CollectionSchema(
        name="dc_schema",
        spaces={"a": rosetta.Space(dim=32, metric="ip"), "b": rosetta.Space(dim=4, metric="l2",
                                                                             encoder="e@2")},
        fields={"x": rosetta.Field(space="a", modality="image", weight=0.25,
                                   index=rosetta.IndexSpec("ivf_pq", nlist=16, m=8, nbits=4)),
                "y": rosetta.Field(space="b", modality="text")},
        attributes={"t": "string[]"})
    db.create_collection(schema)
    try:
        got = db.describe("dc_schema").schema
        assert got == schema
        assert got.to_dict()["fields"]["x"]["index"] == {"type": "ivf_pq", "nlist": 16, "m": 8,
                                                         "nbits": 4}
        assert "index" not in got.to_dict()["fields"]["y"]
    finally:
        db.drop_collection("dc_schema")


def test_invalid_schema_is_invalid_argument(db: rosetta.Client) -> None:
    bad = photos_schema("badschema")
    bad["fields"]["image"]["space"] = "nospace"
    with pytest.raises(rosetta.InvalidArgumentError) as e:
        db.create_collection(bad)
    assert "nospace" in str(e.value)
    assert "badschema" not in db.list_collections()
    with pytest.raises(ValueError, match="unknown key"):
        db.create_collection({"name": "x", "spaces": {}, "fields": {}, "bogus": 1})


def test_upsert_get_round_trip(db: rosetta.Client, collection: str, rng) -> None:
    v = unit_rows(rng, 3, 8)
    records = [
        {"id": "p1", "vectors": {"image": v[0], "caption": v[1].tolist()},
         "weights": {"caption": 0.25},
         "attributes": {"lang": "en", "year": 2020, "score": 0.5, "ok": True,
                        "tags": ["a", "b"]},
         "provenance": {"source": "flickr8k", "collected_at": "2025-08-09T10:00:00Z",
                        "steps": ["resize 224", "crop"], "dataset_version": "v1",
                        "encoder": "clip@1"}},
        rosetta.Record(id="p2", vectors={"image": v[2]},
                       attributes={"lang": "de", "year": np.int64(1999), "ok": np.bool_(False),
                                   "tags": []}),
        {"id": "ünïcode ✓", "attributes": {"score": 3}},  # an int for a float attribute.
    ]
    r = db.upsert(collection, records)
    assert (r.written, r.created, r.batches) == (3, 3, 1)
    got = db.get(collection, ["p2", "missing", "p1", "ünïcode ✓"], with_vectors=True)
    assert got.ids() == ["p2", "p1", "ünïcode ✓"]
    assert got.not_found == ["missing"]
    p2, p1, uni = got.records
    # Cosine vectors are stored normalised; these already are (float32 rounding aside).
    np.testing.assert_allclose(p1.vectors["image"], v[0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(p1.vectors["caption"], v[1], rtol=0, atol=1e-6)
    assert p1.vectors["image"].dtype == np.float32
    assert p1.weights == {"caption": 0.25}
    assert p1.attributes == {"lang": "en", "year": 2020, "score": 0.5, "ok": True,
                             "tags": ["a", "b"]}
    assert isinstance(p1.attributes["year"], int) and isinstance(p1.attributes["ok"], bool)
    assert p1.provenance == rosetta.Provenance(source="flickr8k",
                                               collected_at="2025-08-09T10:00:00Z",
                                               steps=["resize 224", "crop"],
                                               dataset_version="v1", encoder="clip@1")
    assert p2.attributes == {"lang": "de", "year": 1999, "ok": False, "tags": []}
    assert set(p2.vectors) == {"image"}
    assert p2.provenance is None
    assert uni.attributes == {"score": 3.0} and isinstance(uni.attributes["score"], float)
    assert uni.vectors == {}
    # Without vectors.
    plain = db.get(collection, "p1")
    assert plain.records[0].vectors == {} and plain.records[0].attributes["lang"] == "en"
    # to_dict gives the JSON Lines form back.
    d = p1.to_dict(with_vectors=False)
    assert d["provenance"]["steps"] == ["resize 224", "crop"] and "vectors" not in d


def test_upsert_replaces_whole_records(db: rosetta.Client, collection: str, rng) -> None:
    v = unit_rows(rng, 2, 8)
    db.upsert(collection, [{"id": "a", "vectors": {"image": v[0], "caption": v[1]},
                            "attributes": {"lang": "en"}}])
    r = db.upsert(collection, [{"id": "a", "vectors": {"image": v[1]}}, {"id": "b"}])
    assert (r.written, r.created) == (2, 1)
    a = db.get(collection, ["a"], with_vectors=True).records[0]
    assert set(a.vectors) == {"image"} and a.attributes == {}
    info = db.describe(collection)
    assert info.records == 2 and info.field_vectors == {"image": 1, "caption": 0}


def test_upsert_errors(db: rosetta.Client, collection: str) -> None:
    with pytest.raises(rosetta.InvalidArgumentError, match="duplicate id 'x'"):
        db.upsert(collection, [{"id": "x"}, {"id": "y"}, {"id": "x"}])
    with pytest.raises(rosetta.InvalidArgumentError) as e:
        db.upsert(collection, [{"id": "ok"}, {"id": "p7", "vectors": {"image": [1.0] * 7}}])
    assert "p7" in str(e.value) and "8" in str(e.value)
    with pytest.raises(rosetta.InvalidArgumentError):
        db.upsert(collection, [{"id": "n", "vectors": {"image": [float("nan")] + [0.5] * 7}}])
    with pytest.raises(rosetta.NotFoundError):
        db.upsert("no_such_collection", [{"id": "x"}])
    with pytest.raises(TypeError):
        db.upsert(collection, [{"id": "x", "attributes": {"lang": {"nested": 1}}}])
    assert db.describe(collection).records == 0  # every failed call wrote nothing.
    assert db.upsert(collection, []) == rosetta.WriteResult(batches=0)


def test_import_vectors_then_get(db: rosetta.Client, collection: str, rng) -> None:
    x = unit_rows(rng, 50, 8)
    db.upsert(collection, [{"id": "p10", "vectors": {"caption": x[0]},
                            "attributes": {"lang": "en"}}])
    r = db.import_vectors(collection, "image", x, id_prefix="p", id_offset=5,
                          provenance={"source": "synthetic", "dataset_version": "v2"})
    assert (r.written, r.created, r.batches) == (50, 49, 1)
    got = db.get(collection, ["p5", "p10", "p54", "p55"], with_vectors=True)
    assert got.ids() == ["p5", "p10", "p54"] and got.not_found == ["p55"]
    np.testing.assert_allclose(got.records[0].vectors["image"], x[0], atol=1e-6)
    np.testing.assert_allclose(got.records[2].vectors["image"], x[49], atol=1e-6)
    p10 = got.records[1]
    assert set(p10.vectors) == {"image", "caption"}  # kept its other field...
    assert p10.attributes == {"lang": "en"}  # ...and attributes,
    assert p10.provenance == rosetta.Provenance(source="synthetic", dataset_version="v2")
    # float64 / C-order / non-contiguous inputs are converted.
    r2 = db.import_vectors(collection, "caption", x.astype(np.float64)[::2], id_prefix="p",
                           id_offset=5)
    assert (r2.written, r2.created) == (25, 0)
    with pytest.raises(ValueError, match="1-D"):
        db.import_vectors(collection, "image", x[0])
    with pytest.raises(rosetta.InvalidArgumentError):
        db.import_vectors(collection, "image", np.ones((3, 7), np.float32))
    with pytest.raises(rosetta.NotFoundError):
        db.import_vectors(collection, "nofield", x)


def test_delete(db: rosetta.Client, collection: str, rng) -> None:
    db.import_vectors(collection, "image", unit_rows(rng, 10, 8), id_prefix="d")
    r = db.delete(collection, ["d1", "d2", "d2", "zzz"])
    assert (r.deleted, r.not_found) == (2, 1)
    assert db.get(collection, ["d1", "d3"]).not_found == ["d1"]
    assert db.describe(collection).records == 8
    assert db.delete(collection, "d3").deleted == 1
    with pytest.raises(rosetta.NotFoundError):
        db.delete("no_such_collection", ["x"])


def test_search_matches_brute_force(db: rosetta.Client, collection: str, rng) -> None:
    base = unit_rows(rng, 200, 8)
    ids = [f"r{i}" for i in range(200)]
    db.import_vectors(collection, "image", base, id_prefix="r")
    for qi in range(5):
        q = rng.standard_normal(8).astype(np.float32)
        hits = db.search(collection, q, k=7, space="clip", fields="image", normalize="none",
                         exact=True)
        assert isinstance(hits, rosetta.SearchResult) and hits.exact and hits.plan == []
        assert hits.took_us >= 0
        want = brute_force(base, ids, q, 7)
        assert hits.ids() == [i for i, _ in want]
        for h, (_, s) in zip(hits, want):
            assert h.score == pytest.approx(s, abs=1e-5)
            f = h.fields["image"]
            assert f.raw == pytest.approx(s, abs=1e-5) and not f.missing
            assert f.contribution == pytest.approx(h.score, abs=1e-6)
        assert [h.fields["image"].rank for h in hits] == list(range(1, 8))


def test_batch_search_equals_single_searches(db: rosetta.Client, collection: str, rng) -> None:
    base = unit_rows(rng, 300, 8)
    db.import_vectors(collection, "image", base, id_prefix="i")
    db.import_vectors(collection, "caption", unit_rows(rng, 150, 8), id_prefix="i")
    db.upsert(collection, [{"id": f"i{i}", "vectors": {"image": base[i]},
                            "attributes": {"year": 2000 + i % 30}} for i in range(0, 300, 3)])
    queries = unit_rows(rng, 40, 8)
    opts = dict(k=12, space="clip", modality="text", filter={"attributes": {"year": {"gte": 2010}}})
    batch = db.search(collection, queries, **opts)
    assert isinstance(batch, list) and len(batch) == 40
    for i, q in enumerate(queries):
        single = db.search(collection, q, **opts)
        assert single == batch[i]  # ids, scores, explanations, attributes.
        assert all(h.attributes["year"] >= 2010 for h in single)
    # A multi-input batch: row i of every input makes query i.
    multi = db.search(collection, [{"vector": queries, "space": "clip", "field": "image"},
                                   {"vector": queries[::-1].copy(), "space": "clip",
                                    "fields": ["caption"], "weight": 2.0}], k=5)
    for i in range(40):
        one = db.search(collection, [
            rosetta.QueryInput(queries[i], "clip", fields=["image"]),
            rosetta.QueryInput(queries[39 - i], "clip", fields=["caption"], weight=2.0)], k=5)
        assert one == multi[i]
    with pytest.raises(ValueError, match="mix of 1-D and 2-D"):
        db.search(collection, [{"vector": queries, "space": "clip", "field": "image"},
                               {"vector": queries[0], "space": "clip", "field": "caption"}])
    with pytest.raises(ValueError, match="different numbers of rows"):
        db.search(collection, [{"vector": queries, "space": "clip", "field": "image"},
                               {"vector": queries[:3], "space": "clip", "field": "caption"}])
    with pytest.raises(ValueError, match="space="):
        db.search(collection, queries[0])


def test_search_explain_fusion_and_options(db: rosetta.Client, collection: str, rng) -> None:
    v = unit_rows(rng, 60, 8)
    db.import_vectors(collection, "image", v[:40], id_prefix="e")
    db.import_vectors(collection, "caption", v[20:], id_prefix="e", id_offset=20)
    q = unit_rows(rng, 1, 8)[0]
    hits = db.search(collection, q, k=10, space="clip", modality="text",
                     weights={"image": 0.7, "caption": 0.3})
    assert len(hits) == 10
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    for h in hits:
        assert set(h.fields) == {"image", "caption"}
        # weighted fusion: the score is the sum of the contributions (float32 of a double sum).
        assert h.score == pytest.approx(sum(f.contribution for f in h.fields.values()), abs=1e-5)
        n = int(h.id[1:])
        assert h.fields["image"].missing == (n >= 40)
        assert h.fields["caption"].missing == (n < 20)
    rrf = db.search(collection, q, k=5, space="clip", fusion="rrf", missing="require")
    for h in rrf:
        assert not any(f.missing for f in h.fields.values())
        assert 20 <= int(h.id[1:]) < 40
        assert h.score == pytest.approx(sum(f.weight / (60 + f.rank)
                                            for f in h.fields.values()), rel=1e-5)
    bare = db.search(collection, q, k=3, space="clip", explain=False, with_attributes=False)
    assert all(h.fields == {} and h.attributes == {} for h in bare)
    assert len(db.search(collection, q, k=1, space="clip", fusion="max", normalize="minmax",
                         missing="zero")) == 1
    with pytest.raises(ValueError, match="fusion"):
        db.search(collection, q, space="clip", fusion="sum")


def test_search_filters(db: rosetta.Client, collection: str, rng) -> None:
    v = unit_rows(rng, 30, 8)
    recs = [{"id": f"f{i}", "vectors": {"image": v[i]} if i % 5 else {"caption": v[i]},
             "attributes": {"lang": ["en", "de", "fr"][i % 3], "year": 2000 + i,
                            "tags": ["odd" if i % 2 else "even"]},
             "provenance": {"dataset_version": "v1" if i < 15 else "v2",
                            "collected_at": f"2025-01-{i + 1:02d}T00:00:00Z"}}
            for i in range(30)]
    db.upsert(collection, recs)
    q = v[0]

    def ids(flt: dict) -> set:
        return set(db.search(collection, q, k=100, space="clip", filter=flt).ids())

    assert ids({"attributes": {"lang": "en"}}) == {f"f{i}" for i in range(0, 30, 3)}
    assert ids({"attributes": {"year": {"gte": 2010, "lt": 2013}}}) == {"f10", "f11", "f12"}
    assert ids({"attributes": {"lang": {"in": ["de", "fr"]}, "tags": "odd"}}) == {
        f"f{i}" for i in range(30) if i % 3 and i % 2}
    assert ids({"attributes": {"lang": [{"ne": "en"}, {"ne": "de"}]}}) == {
        f"f{i}" for i in range(30) if i % 3 == 2}
    assert ids({"provenance": {"dataset_version": "v2",
                               "collected_at": {"lte": "2025-01-17T00:00:00Z"}}}) == {"f15",
                                                                                    "f16"}
    assert ids({"has_fields": ["caption"]}) == {f"f{i}" for i in range(0, 30, 5)}
    with pytest.raises(rosetta.InvalidArgumentError):
        ids({"attributes": {"nosuch": 1}})
    with pytest.raises(ValueError, match="operator"):
        ids({"attributes": {"year": {"between": [1, 2]}}})


def test_search_errors_name_the_query(db: rosetta.Client, collection: str, rng) -> None:
    db.import_vectors(collection, "image", unit_rows(rng, 5, 8))
    q = unit_rows(rng, 3, 8)
    with pytest.raises(rosetta.InvalidArgumentError) as e:
        db.search(collection, q[0], k=0, space="clip")
    assert str(e.value).startswith("query: k must be in 1..10000")
    bad = [{"vector": q, "space": "clip", "field": "image"}]
    q2 = q.copy()
    q2[1] = 0  # a zero vector in a cosine space.
    with pytest.raises(rosetta.InvalidArgumentError, match=r"^query 1: "):
        db.search(collection, [{"vector": q2, "space": "clip", "field": "image"}])
    assert len(db.search(collection, bad)) == 3
    with pytest.raises(rosetta.InvalidArgumentError, match="space"):
        db.search(collection, q[0], space="nospace")
    with pytest.raises(rosetta.NotFoundError):
        db.search("no_such_collection", q[0], space="clip")


def test_evaluate_pairs_and_truth(db: rosetta.Client, collection: str, rng) -> None:
    base = unit_rows(rng, 100, 8)
    db.import_vectors(collection, "image", base, id_prefix="p")
    queries = base + 0.35 * rng.standard_normal(base.shape).astype(np.float32)
    ids = [f"p{i}" for i in range(100)]
    ranked = [[i for i, _ in brute_force(base, ids, q, 10)] for q in queries]
    want = {k: sum(f"p{i}" in r[:k] for i, r in enumerate(ranked)) / 100 for k in (1, 5, 10)}
    res = db.evaluate(collection, queries, space="clip", fields=["image"], id_prefix="p",
                      exact=True)
    assert res.queries == 100
    assert res.recall == pytest.approx(want, abs=1e-12)
    assert 0 < want[1] < 1  # the data is neither trivial nor hopeless.
    assert res.qps > 0 and res.latency_p99_us >= res.latency_p50_us > 0
    assert set(res.to_dict()) == {"queries", "recall@1", "recall@5", "recall@10", "qps",
                                  "latency_us"}
    # Row truth: the exact top-10 is its own truth; a shuffled truth is not.
    truth = np.array([[int(x[1:]) for x in r] for r in ranked], dtype=np.int64)
    exact = db.evaluate(collection, queries, space="clip", fields="image", id_prefix="p",
                        truth=truth, k=7, batch_size=16, exact=True)
    assert exact.recall == {1: 1.0, 5: 1.0, 7: 1.0, 10: 1.0}
    wrong = db.evaluate(collection, queries, space="clip", id_prefix="p",
                        truth=np.roll(truth, 1, axis=0), exact=True)
    assert wrong.recall[10] < 0.5
    with pytest.raises(rosetta.NotFoundError, match="space"):
        db.evaluate(collection, queries, space="nope")
    with pytest.raises(rosetta.InvalidArgumentError, match="rows"):
        db.evaluate(collection, queries, space="clip", truth=truth[:5])


def test_build_index_progress_and_plans(db: rosetta.Client, rng) -> None:
    name = "indexed"
    db.create_collection(photos_schema(name, dim=16, index={"type": "ivf_pq", "nlist": 8}))
    try:
        base = unit_rows(rng, 1500, 16)
        db.import_vectors(name, "image", base, id_prefix="x")
        p0 = db.index_progress(name)
        assert (p0.segments, p0.growing_rows) == (0, 1500)
        polls = []
        done = db.build_index(name, wait=True, poll_interval=0.05, progress=polls.append)
        assert done.done and done.ready == 1 and done.failed == 0 and done.growing_rows == 0
        assert polls and polls[-1] == done
        info = db.describe(name)
        seg = [s for s in info.segment_list if s.state != "growing"]
        assert len(seg) == 1 and seg[0].rows == 1500
        img = [f for f in seg[0].fields if f.field == "image"][0]
        assert (img.index, img.state, img.nlist) == ("ivf_pq", "ready", 8)
        q = base[3]
        approx = db.search(name, q, k=5, space="clip", fields="image")
        assert not approx.exact and approx.plan[0].field == "image"
        assert approx.plan[0].index == "ivf_pq" and approx.plan[0].indexed_segments == 1
        exact = db.search(name, q, k=5, space="clip", fields="image", exact=True)
        assert exact.exact and exact.plan == [] and exact.ids()[0] == "x3"
        assert db.search(name, q, k=5, space="clip", fields="image", nprobe=8,
                         refine=1500).ids() == exact.ids()
        with pytest.raises(rosetta.NotFoundError):
            db.build_index(name, "nofield")
    finally:
        db.drop_collection(name)


def test_build_index_without_ivf_pq_is_invalid(db: rosetta.Client, collection: str) -> None:
    with pytest.raises(rosetta.InvalidArgumentError):
        db.build_index(collection)


def test_stats(db: rosetta.Client, collection: str, rng) -> None:
    db.import_vectors(collection, "image", unit_rows(rng, 4, 8))
    before = {r.operation: r.count for r in db.stats().requests}
    for _ in range(3):
        db.search(collection, unit_rows(rng, 1, 8)[0], space="clip")
    s = db.stats()
    after = {r.operation: r.count for r in s.requests}
    assert after["request.search"] == before.get("request.search", 0) + 3
    assert s.collections >= 1 and s.uptime_s > 0 and s.connections_open >= 1
    assert s.bytes_received > 0 and s.bytes_sent > 0
    assert [o.operation for o in s.operations][:2] == ["search", "search_batch"]
    assert all(math.isfinite(o.p99_us) for o in s.operations)


def test_device_is_reported_consistently(db: rosetta.Client, collection: str) -> None:
    """The session server runs with the default --device auto: whatever it resolved to, the
    HelloReply, describe and stats name the same device."""
    device = db.stats().device
    assert device == "cpu" or device.startswith("cuda:"), device
    assert db.server_info.device == device
    assert db.describe(collection).device == device


def test_cpu_device_reports_cpu_and_zero_counters(make_server, rng) -> None:
    s = make_server(args=["--device", "cpu"])
    with s.client() as c:
        assert c.server_info.device == "cpu"
        c.create_collection(photos_schema("devcpu"))
        c.import_vectors("devcpu", "image", unit_rows(rng, 16, 8))
        for _ in range(2):
            c.search("devcpu", unit_rows(rng, 1, 8)[0], space="clip", exact=True)
        info = c.describe("devcpu")
        assert (info.device, info.device_rows, info.device_bytes) == ("cpu", 0, 0)
        st = c.stats()
        assert st.device == "cpu"
        assert st.device_stats == rosetta.DeviceStats()
        assert st.operations[0].operation == "search" and st.operations[0].count == 2


def test_closed_client_raises_unavailable(server) -> None:
    c = server.client()
    c.close()
    with pytest.raises(rosetta.UnavailableError, match="closed"):
        c.list_collections()
    with pytest.raises(ConnectionError):  # UnavailableError is a ConnectionError.
        c.list_collections()


def test_one_client_shared_by_threads(db: rosetta.Client, collection: str, rng) -> None:
    import threading
    base = unit_rows(rng, 100, 8)
    db.import_vectors(collection, "image", base, id_prefix="t")
    queries = unit_rows(rng, 40, 8)
    expected = [db.search(collection, q, k=5, space="clip") for q in queries]
    got: dict = {}
    failures: list = []

    def worker(w: int) -> None:
        try:
            for i in range(w, 40, 8):
                got[i] = db.search(collection, queries[i], k=5, space="clip")
                db.upsert(collection, [{"id": f"w{w}_{i}"}])
        except Exception as e:  # noqa: BLE001 - reported below.
            failures.append(e)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert [got[i] for i in range(40)] == expected
    assert db.describe(collection).records == 140


def test_import_progress_bar_on_a_terminal(db: rosetta.Client, collection: str, rng,
                                           monkeypatch) -> None:
    """progress=None draws a tqdm bar when stderr is a terminal and tqdm is installed."""
    import sys
    import types
    from rosetta import _base
    bars = []

    class FakeTqdm:
        def __init__(self, total, **kw):
            self.total, self.n, self.closed, self.kw = total, 0, False, kw
            bars.append(self)

        def update(self, k):
            self.n += k

        def close(self):
            self.closed = True

    monkeypatch.setitem(sys.modules, "tqdm", types.SimpleNamespace(tqdm=FakeTqdm))
    x = unit_rows(rng, 25, 8)
    monkeypatch.setattr(_base, "_stderr_is_tty", lambda: False)
    db.import_vectors(collection, "image", x, batch_rows=10)
    assert bars == []  # not a terminal: no bar.
    monkeypatch.setattr(_base, "_stderr_is_tty", lambda: True)
    db.import_vectors(collection, "image", x, batch_rows=10)
    assert len(bars) == 1 and bars[0].total == 25 and bars[0].n == 25 and bars[0].closed
    db.import_vectors(collection, "image", x, batch_rows=10, progress=False)
    assert len(bars) == 1


def test_timeout_none_means_no_limit(server) -> None:
    import asyncio
    with rosetta.Client(server.host, server.port, timeout=None) as c:
        assert isinstance(c.list_collections(), list)

    async def main() -> None:
        async with rosetta.AsyncClient(server.host, server.port, timeout=None) as a:
            assert isinstance(await a.list_collections(), list)

    asyncio.run(main())
