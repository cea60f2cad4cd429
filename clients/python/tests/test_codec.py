"""The codec without and with a server: frames, the documented example, the hand-written bulk
readers against the generated ones, and the argument forms of search and filters."""

from __future__ import annotations

import flatbuffers
import numpy as np
import pytest

import rosetta
from rosetta import _base, _codec as codec, _fast
from rosetta.wire import Get as W_Get
from rosetta.wire import Hello as W_Hello
from rosetta.wire.Message import Message
from conftest import photos_schema, unit_rows

# docs/PROTOCOL.md "Writing a client": the Hello frame body as laid out by `flatc -b`.
DOC_HELLO = bytes.fromhex(
    "14000000 52535441 00000a00 1a000c00 07000800 0a000000 00000001 1c000000"
    "01000000 00000000 00000000 00000a00 10000400 08000c00 0a000000 01000000"
    "10000000 04000000 02000000 70790000 03000000 746f6b00".replace(" ", ""))


def test_decodes_the_documented_hello() -> None:
    assert len(DOC_HELLO) == 88
    reply = codec.decode_frame(DOC_HELLO)
    assert (reply.request_id, reply.message_type) == (1, Message.Hello)
    h = W_Hello.Hello()
    h.Init(reply.table.Bytes, reply.table.Pos)
    assert (h.ProtocolVersion(), h.Token(), h.Client()) == (1, b"tok", b"py")


def test_encoded_frames_carry_the_patched_request_id() -> None:
    enc = codec.encode(codec.hello(1, "tok", "py"))
    for rid in (1, 2, 2 ** 64 - 1, 77):
        body = bytes(enc.with_id(rid))
        assert body[4:8] == b"RSTA"
        reply = codec.decode_frame(body)
        assert (reply.request_id, reply.message_type) == (rid, Message.Hello)
    header, body = enc.framed(5)
    assert int.from_bytes(bytes(header), "little") == len(body) == enc.nbytes


@pytest.mark.parametrize("ids", [[], ["a"], ["", "x" * 1000, "ünï ✓", "p1", "p22", "p333"],
                                 [f"id{i}" for i in range(5000)]])
def test_bulk_string_vector_reads_back_with_generated_code(ids) -> None:
    b = flatbuffers.Builder(64)
    name = b.CreateString("coll")
    vec = _fast.create_string_vector(b, ids)
    W_Get.GetStart(b)
    W_Get.GetAddCollection(b, name)
    W_Get.GetAddIds(b, vec)
    b.Finish(W_Get.GetEnd(b))
    g = W_Get.Get.GetRootAs(bytes(b.Output()), 0)
    assert g.Collection() == b"coll"
    assert [g.Ids(i).decode() for i in range(g.IdsLength())] == ids


def _both(db: rosetta.Client, name: str, build, want, fast, generated):
    """Runs one request, decoding its reply with both readers."""
    return db._execute(_base.Op(name, build, want, lambda t: (fast(t), generated(t)),
                                _base.NEVER))


def test_fast_readers_equal_generated_readers(db: rosetta.Client, rng) -> None:
    db.create_collection(photos_schema("readers", dim=16, index={"type": "ivf_pq", "nlist": 4}))
    try:
        v = unit_rows(rng, 1200, 16)
        db.import_vectors("readers", "image", v, id_prefix="r")
        db.upsert("readers", [
            {"id": "r1", "vectors": {"image": v[1], "caption": v[2]}, "weights": {"image": 0.5},
             "attributes": {"lang": "en", "year": -3, "score": 2.5, "ok": True,
                            "tags": ["x", "ÿ"]},
             "provenance": {"source": "s", "steps": [], "encoder": "e"}},
            {"id": "r2", "vectors": {"caption": v[3]}, "attributes": {"tags": []},
             "provenance": {"collected_at": "2025-01-01T00:00:00Z", "steps": ["a", "b"],
                            "dataset_version": "v"}}])
        ids = ["r1", "r2", "nope", "r3", "r1199", "zz"]
        fast, gen = _both(db, "get", codec.get("readers", ids, True), Message.GetResult,
                          codec.parse_get_result, codec.parse_get_result_generated)
        assert fast.ids() == gen.ids() == ["r1", "r2", "r3", "r1199"]
        assert fast.not_found == gen.not_found == ["nope", "zz"]
        for a, b in zip(fast.records, gen.records):
            assert (a.id, a.weights, a.attributes, a.provenance) == (b.id, b.weights,
                                                                     b.attributes, b.provenance)
            assert a.vectors.keys() == b.vectors.keys()
            for k in a.vectors:
                assert a.vectors[k].tobytes() == b.vectors[k].tobytes()
        assert fast.records[1].provenance.steps == ["a", "b"]
        # The data model does not tell empty steps from none: an empty list comes back absent.
        assert fast.records[0].provenance.steps is None
        db.build_index("readers", wait=True, poll_interval=0.05)
        queries, _ = _base.build_queries(
            [{"vector": v[:3], "space": "clip", "fields": ["image", "caption"]}], space=None,
            modality=None, fields=None, options=_base._query_options(
                5, None, "weighted", "calibrated", "renormalize",
                {"has_fields": ["image"]}, False, True, True, 0, 0))
        queries.append(codec.WireQuery(inputs=[codec.WireInput(v[4], "clip", "", ["caption"],
                                                               1.0)], exact=True))
        fast_s, gen_s = _both(db, "search", codec.search("readers", queries),
                              Message.SearchResults, codec.parse_search_results,
                              codec.parse_search_results_generated)
        assert fast_s == gen_s
        assert [(r.exact, r.took_us, r.plan) for r in fast_s] == [
            (r.exact, r.took_us, r.plan) for r in gen_s]
        assert not fast_s[0].exact and fast_s[0].plan and fast_s[3].exact
        assert any(h.provenance for r in fast_s for h in r)
    finally:
        db.drop_collection("readers")


def test_filter_forms() -> None:
    preds, has = codec.parse_filter({
        "attributes": {"lang": "en", "year": {"gte": 2020, "lt": 2024},
                       "tags": [{"ne": "a"}, {"ne": "b"}], "k": {"in": ["x", "y"]}},
        "provenance": {"dataset_version": "v1"}, "has_fields": ["caption"]})
    got = [(p.target, p.key, p.op, p.values) for p in preds]
    assert got == [(0, "lang", 0, ["en"]), (0, "year", 4, [2020]), (0, "year", 5, [2024]),
                   (0, "tags", 1, ["a"]), (0, "tags", 1, ["b"]), (0, "k", 2, ["x", "y"]),
                   (1, "dataset_version", 0, ["v1"])]
    assert has == ["caption"]
    assert codec.parse_filter(None) == ([], [])
    for bad, err in [({"attrs": {}}, ValueError), ({"attributes": {"a": ["x", "y"]}}, ValueError),
                     ({"attributes": {"a": {"like": 1}}}, ValueError),
                     ({"attributes": {"a": {"in": 3}}}, ValueError),
                     ({"has_fields": "caption"}, TypeError), ("x", TypeError)]:
        with pytest.raises(err):
            codec.parse_filter(bad)


def test_search_input_forms() -> None:
    opts = _base._query_options(3, None, "weighted", "calibrated", "renormalize", None, False,
                                True, True, 0, 0)
    q, batch = _base.build_queries([0.5, 1, 2], space="s", modality="text", fields="f",
                                   options=opts)
    assert not batch and len(q) == 1
    assert q[0].inputs[0].vector.dtype == np.float32
    assert (q[0].inputs[0].space, q[0].inputs[0].modality, q[0].inputs[0].fields) == (
        "s", "text", ["f"])
    q, batch = _base.build_queries(np.ones((4, 3)), space="s", modality=None, fields=None,
                                   options=opts)
    assert batch and len(q) == 4 and q[0].inputs[0].fields == []
    q, batch = _base.build_queries({"vector": [[1, 2]], "space": "a", "field": "x"},
                                   space=None, modality=None, fields=None, options=opts)
    assert batch and len(q) == 1 and q[0].inputs[0].fields == ["x"]
    with pytest.raises(ValueError, match="exclusive"):
        _base.build_queries({"vector": [1], "space": "a", "field": "x", "fields": ["y"]},
                            space=None, modality=None, fields=None, options=opts)
    with pytest.raises(ValueError, match="unknown key"):
        _base.build_queries({"vector": [1], "spaec": "a"}, space=None, modality=None,
                            fields=None, options=opts)
    with pytest.raises(ValueError, match="shape"):
        _base.build_queries(np.ones((2, 2, 2)), space="s", modality=None, fields=None,
                            options=opts)
    with pytest.raises(TypeError):
        _base.build_queries(["a", "b"], space="s", modality=None, fields=None, options=opts)


def test_data_model_dict_forms() -> None:
    s = rosetta.CollectionSchema.from_dict(photos_schema("x"))
    assert rosetta.CollectionSchema.from_dict(s.to_dict()) == s
    with pytest.raises(ValueError, match="metric"):
        rosetta.CollectionSchema.from_dict({"name": "x", "spaces": {"s": {"dim": 2,
                                                                          "metric": "dot"}}})
    with pytest.raises(ValueError, match="attribute"):
        rosetta.CollectionSchema(name="x", attributes={"a": "date"})
    with pytest.raises(ValueError, match="missing key 'id'"):
        rosetta.Record.from_dict({"vectors": {}})
    with pytest.raises(ValueError, match="unknown key"):
        rosetta.Provenance.from_dict({"origin": "x"})
    r = rosetta.Record.from_dict({"id": "a", "vectors": {"f": [1, 2]}, "weights": {"f": 2}})
    assert r.to_dict() == {"id": "a", "vectors": {"f": [1, 2]}, "weights": {"f": 2},
                           "attributes": {}}
    assert rosetta.IndexSpec.from_json("ivf_pq").to_json() == {"type": "ivf_pq"}
    assert rosetta.IndexSpec.from_json(None).to_json() is None


def test_eval_measures_match_the_cli_definitions() -> None:
    assert _base.row_of_id("p12", "p") == 12
    assert _base.row_of_id("p012", "p") is None and _base.row_of_id("p", "p") is None
    assert _base.row_of_id("p0", "p") == 0 and _base.row_of_id("q1", "p") is None
    assert _base.row_recall(["p1", "p2", "x", "p1"], "p", [2, 1, 5], 3) == pytest.approx(2 / 3)
    assert _base.row_recall(["p1"], "p", [-1, -1], 2) == 0.0
    assert _base.row_recall(["p1", "p1"], "p", [1, 2], 2) == 0.5  # a row found twice counts once.
    assert _base.pair_recall(["a", "b"], "b", 1) == 0.0 and _base.pair_recall(["a", "b"], "b", 2)
    assert _base.percentile([5, 1, 3, 2, 4], 50) == 3 and _base.percentile([], 99) == 0
    assert _base.percentile(list(range(1, 101)), 99) == 99


def _stats_frame(device: str, counters: "list[int] | None") -> bytes:
    """A StatsReply frame with only the device members set (counters: the nine DeviceStats
    members in schema order, or None for no DeviceStats table, as a server before them)."""
    from rosetta.wire import DeviceStats as W_DeviceStats
    from rosetta.wire import Frame as W_Frame
    from rosetta.wire import StatsReply as W_StatsReply
    b = flatbuffers.Builder(256)
    dev = b.CreateString(device) if device else None
    ds = None
    if counters is not None:
        W_DeviceStats.Start(b)
        adders = [W_DeviceStats.AddSearches, W_DeviceStats.AddBatches, W_DeviceStats.AddFallbacks,
                  W_DeviceStats.AddBoundaryFallbacks, W_DeviceStats.AddCpuQueries,
                  W_DeviceStats.AddMirroredRows, W_DeviceStats.AddMirrorBytes,
                  W_DeviceStats.AddMemoryBudgetBytes, W_DeviceStats.AddUnmirroredRows]
        for add, v in zip(adders, counters):
            add(b, v)
        ds = W_DeviceStats.End(b)
    W_StatsReply.Start(b)
    W_StatsReply.AddRecords(b, 5)
    if dev is not None:
        W_StatsReply.AddDevice(b, dev)
    if ds is not None:
        W_StatsReply.AddDeviceStats(b, ds)
    body = W_StatsReply.End(b)
    W_Frame.Start(b)
    W_Frame.AddRequestId(b, 9)
    W_Frame.AddBodyType(b, Message.StatsReply)
    W_Frame.AddBody(b, body)
    b.Finish(W_Frame.End(b), file_identifier=b"RSTA")
    return bytes(b.Output())


def test_stats_device_members_decode_by_name() -> None:
    counters = [101, 7, 3, 2, 55, 3_000_000_001, 12_288_000_004_096, 64_424_509_440, 42]
    reply = codec.decode_frame(_stats_frame("cuda:0 NVIDIA H100 80GB HBM3", counters))
    assert reply.message_type == Message.StatsReply
    s = codec.parse_stats(reply.table)
    assert s.records == 5
    assert s.device == "cuda:0 NVIDIA H100 80GB HBM3"
    assert s.device_stats == rosetta.DeviceStats(
        searches=101, batches=7, fallbacks=3, boundary_fallbacks=2, cpu_queries=55,
        mirrored_rows=3_000_000_001, mirror_bytes=12_288_000_004_096,
        memory_budget_bytes=64_424_509_440, unmirrored_rows=42)


def test_stats_without_device_members_mean_unknown_and_zero() -> None:
    s = codec.parse_stats(codec.decode_frame(_stats_frame("", None)).table)
    assert (s.records, s.device, s.device_stats) == (5, "", rosetta.DeviceStats())
