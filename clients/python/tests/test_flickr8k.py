"""The Flickr8k cross-modal recall (docs: /work/shared/data/README.md) reproduced through
Python: text -> image recall@1/5/10 with exact search equals the brute-force figures 0.520 /
0.785 / 0.863, and the CLI's `rosetta eval` agrees through the same server."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

import rosetta
from conftest import SHARED_DATA

FLICKR = SHARED_DATA / "flickr8k_tinyclip-vit40m_1k"


@pytest.fixture(scope="module")
def flickr(server):
    if not (FLICKR / "text_emb.npy").is_file():
        pytest.skip(f"shared data not found: {FLICKR} (the Flickr8k TinyCLIP set of "
                    "../shared/data; see its README)")
    images = np.load(FLICKR / "image_emb.npy")
    texts = np.load(FLICKR / "text_emb.npy")
    with server.client() as db:
        db.create_collection({
            "name": "flickr8k",
            "spaces": {"clip": {"dim": 512, "metric": "cosine",
                                "encoder": "tinyclip-vit40m-32@laion400m"}},
            "fields": {"image": {"space": "clip", "modality": "image"},
                       "caption": {"space": "clip", "modality": "text"}}})
        prov = {"source": "flickr8k", "dataset_version": "val-1k"}
        assert db.import_vectors("flickr8k", "image", images, id_prefix="p",
                                 provenance=prov).written == 1000
        db.import_vectors("flickr8k", "caption", texts, id_prefix="p")
        yield db, images, texts
        db.drop_collection("flickr8k")


def test_text_to_image_recall_matches_brute_force(flickr) -> None:
    db, images, texts = flickr
    res = db.evaluate("flickr8k", texts, space="clip", modality="text", fields=["image"],
                      truth="pairs", id_prefix="p", k=10, exact=True)
    assert res.queries == 1000
    # The figures of shared/data/README.md...
    assert res.recall[1] == pytest.approx(0.520, abs=5e-4)
    assert res.recall[5] == pytest.approx(0.785, abs=5e-4)
    assert res.recall[10] == pytest.approx(0.863, abs=5e-4)
    # ...and of a NumPy brute force over the same arrays.
    sims = texts @ images.T
    rank = (sims > sims[np.arange(1000), np.arange(1000)][:, None]).sum(axis=1)
    for k in (1, 5, 10):
        assert res.recall[k] == pytest.approx(float(np.mean(rank < k)), abs=1e-12)


def test_recall_against_the_exact_top_100(flickr) -> None:
    db, _, texts = flickr
    truth = np.load(FLICKR / "gt_text2image_ip_top100.npy")
    res = db.evaluate("flickr8k", texts, space="clip", modality="text", fields="image",
                      truth=truth, id_prefix="p", k=100, exact=True, batch_size=100)
    # Exact search reproduces the exact neighbours (float32 rounding may swap a near-tie).
    assert res.recall[10] >= 0.999 and res.recall[100] >= 0.999


def test_cross_modal_query_with_explain(flickr) -> None:
    """A caption's vector against the image and caption fields: both contribute, and the
    caption field finds its own pair first."""
    db, images, texts = flickr
    hits = db.search("flickr8k", texts[7], k=5, space="clip", modality="text",
                     fields=["image", "caption"], exact=True)
    assert hits.ids()[0] == "p7"
    top = hits[0]
    assert set(top.fields) == {"image", "caption"}
    assert top.fields["caption"].rank == 1 and top.fields["caption"].raw == pytest.approx(1.0,
                                                                                         abs=1e-5)
    assert top.score == pytest.approx(sum(f.contribution for f in top.fields.values()), abs=1e-5)
    assert top.provenance == rosetta.Provenance(source="flickr8k", dataset_version="val-1k")


def test_cli_eval_agrees(flickr, server, cli, tmp_path) -> None:
    db, _, texts = flickr
    q = tmp_path / "q.json"
    q.write_text(json.dumps({"exact": True}))
    out = subprocess.run(
        [cli, "--server", server.address, "--json", "eval", "flickr8k", "--queries",
         str(FLICKR / "text_emb.npy"), "--space", "clip", "--modality", "text", "--fields",
         "image", "--truth", "pairs", "--id-prefix", "p", "--query-file", str(q)],
        check=True, capture_output=True, text=True).stdout
    cli_res = json.loads(out)
    py = db.evaluate("flickr8k", texts, space="clip", modality="text", fields="image",
                     id_prefix="p", exact=True)
    for k in (1, 5, 10):
        assert py.recall[k] == cli_res[f"recall@{k}"]
    assert cli_res["queries"] == py.queries == 1000
