"""The Python client and the C++ CLI (`rosetta --server`) see the same server the same way:
what one writes the other reads, and searches, describe and get give the same answers."""

from __future__ import annotations

import json
import subprocess

import numpy as np

import rosetta
from conftest import unit_rows


def run_cli(cli: str, server, *args: str, stdin: str = None) -> dict:
    p = subprocess.run([cli, "--server", server.address, "--json", *args], input=stdin,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_cli_import_python_get_bit_equal(db, server, cli, tmp_path, rng) -> None:
    db.create_collection({"name": "cli_ip", "spaces": {"s": {"dim": 24, "metric": "ip"}},
                          "fields": {"v": {"space": "s", "modality": "m"}}})
    try:
        x = rng.standard_normal((300, 24)).astype(np.float32)
        np.save(tmp_path / "x.npy", x)
        out = run_cli(cli, server, "import", "cli_ip", "--field", "v", "--vectors",
                      str(tmp_path / "x.npy"), "--id-prefix", "c", "--id-offset", "10")
        assert (out["written"], out["created"]) == (300, 300)
        got = db.get("cli_ip", [f"c{i + 10}" for i in range(300)], with_vectors=True)
        assert got.vectors("v").tobytes() == x.tobytes()
        # And the other way: Python writes, the CLI reads.
        y = rng.standard_normal((5, 24)).astype(np.float32)
        db.import_vectors("cli_ip", "v", y, id_prefix="py")
        cli_get = run_cli(cli, server, "get", "cli_ip", "py0", "py4", "nope", "--with-vectors")
        assert [r["id"] for r in cli_get["records"]] == ["py0", "py4"]
        assert cli_get["not_found"] == ["nope"]
        np.testing.assert_array_equal(np.array(cli_get["records"][1]["vectors"]["v"],
                                               dtype=np.float32), y[4])
    finally:
        db.drop_collection("cli_ip")


def test_upsert_file_describe_and_search_parity(db, server, cli, collection, tmp_path,
                                                rng) -> None:
    v = unit_rows(rng, 40, 8)
    records = [rosetta.Record(id=f"r{i}", vectors={"image": v[i]} if i % 4 else
                              {"image": v[i], "caption": v[(i + 1) % 40]},
                              attributes={"lang": "en" if i % 2 else "de", "year": 1990 + i},
                              provenance=rosetta.Provenance(source="cli", steps=["s1"]))
               for i in range(40)]
    lines = "\n".join(json.dumps(r.to_dict()) for r in records) + "\n"
    (tmp_path / "r.jsonl").write_text(lines)
    out = run_cli(cli, server, "upsert", collection, "--file", str(tmp_path / "r.jsonl"))
    assert (out["written"], out["created"]) == (40, 40)
    got = db.get(collection, [r.id for r in records])
    assert [g.attributes for g in got] == [r.attributes for r in records]
    assert all(g.provenance == r.provenance for g, r in zip(got, records))

    desc = run_cli(cli, server, "describe", collection)
    info = db.describe(collection)
    assert desc["schema"] == info.schema.to_dict()
    assert desc["records"] == info.records == 40
    assert desc["field_vectors"] == info.field_vectors
    assert desc["device"] == info.device != ""
    assert (desc["device_rows"], desc["device_bytes"]) == (info.device_rows, info.device_bytes)

    q = unit_rows(rng, 1, 8)[0]
    query = {"k": 6, "inputs": [{"vector": q.tolist(), "space": "clip", "modality": "text",
                                 "fields": ["image", "caption"]}],
             "weights": {"image": 0.8}, "filter": {"attributes": {"year": {"gte": 1995}}},
             "exact": True}
    cli_res = run_cli(cli, server, "search", collection, "--query", "-",
                      stdin=json.dumps(query))
    py = db.search(collection, q, k=6, space="clip", modality="text",
                   fields=["image", "caption"], weights={"image": 0.8},
                   filter={"attributes": {"year": {"gte": 1995}}}, exact=True)
    assert [h["id"] for h in cli_res["results"]] == py.ids()
    for ch, ph in zip(cli_res["results"], py):
        assert np.float32(ch["score"]) == np.float32(ph.score)
        assert ch["attributes"] == ph.attributes
        for name, fe in ch["fields"].items():
            pf = ph.fields[name]
            if fe.get("missing"):
                assert pf.missing
                continue
            assert (np.float32(fe["raw"]), np.float32(fe["contribution"]), fe["rank"]) == (
                np.float32(pf.raw), np.float32(pf.contribution), pf.rank)
