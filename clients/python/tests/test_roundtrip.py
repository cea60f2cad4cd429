"""A round trip of 100k x 512 vectors through import_vectors and get: bit-equal."""

from __future__ import annotations

import time

import numpy as np

import rosetta


def test_100k_x_512_import_get_round_trip(db: rosetta.Client, rng) -> None:
    n, dim = 100_000, 512
    # An ip space: vectors are stored as given (cosine would normalise them), so what comes
    # back must be bit-equal to what went in. Values of every magnitude, signs, -0.0 and
    # subnormals included.
    x = (rng.standard_normal((n, dim)) * np.exp(rng.uniform(-20, 20, (n, 1)))).astype(np.float32)
    x[0, :4] = [-0.0, 1e-42, -3.4e38 / 1e23, 0.0]
    schema = {"name": "rt100k", "spaces": {"s": {"dim": dim, "metric": "ip"}},
              "fields": {"v": {"space": "s", "modality": "image"}}}
    db.create_collection(schema)
    try:
        calls = []
        t0 = time.perf_counter()
        r = db.import_vectors("rt100k", "v", x, id_prefix="row", progress=lambda d, t:
                              calls.append((d, t)))
        t1 = time.perf_counter()
        # 512 floats = 2 KiB a row: 64 MiB batches hold 32768 rows -> 4 batches.
        assert (r.written, r.created, r.batches) == (n, n, 4)
        assert calls == [(32768, n), (65536, n), (98304, n), (n, n)]
        ids = [f"row{i}" for i in range(n)]
        got = db.get("rt100k", ids, with_vectors=True)
        t2 = time.perf_counter()
        assert got.not_found == [] and len(got.records) == n
        assert got.ids() == ids
        back = got.vectors("v")
        assert back.shape == (n, dim) and back.dtype == np.float32
        assert back.tobytes() == x.tobytes()  # bit-equal, -0.0 and subnormals included.
        print(f"import {n / (t1 - t0):,.0f} vectors/s, get {n / (t2 - t1):,.0f} vectors/s")
        assert db.describe("rt100k").records == n
    finally:
        db.drop_collection("rt100k")
