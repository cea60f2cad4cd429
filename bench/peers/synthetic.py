#!/usr/bin/env python3
"""Synthetic embedding-like data sets for the IVF-PQ peer benchmark, with exact ground truth.

    python3 bench/peers/synthetic.py --kind embed768 --n 200000 [--nq 1000] [--seed 20261125]

Uniform Gaussian noise in high dimension has no neighbours worth finding (every ANN method scores
near zero recall on it), so these sets imitate what real embeddings look like instead:

  * Low intrinsic dimension: points are generated in a `latent`-dimensional space (48 by default)
    and mapped to `d` dimensions by one fixed random linear map, plus small isotropic noise in all
    `d` dimensions (so that the data is not exactly rank-deficient, as real embeddings are not).
  * A decaying spectrum: latent axis i has scale (1 + i)^-0.5, like the PCA spectra of real
    embeddings (a few strong directions, a long tail).
  * Clustered, with varied cluster sizes and spreads: `clusters` Gaussian clusters (a few thousand)
    with log-normal weights (sizes vary by ~50x between the 5th and 95th percentile), log-normal
    per-cluster spreads and per-axis anisotropy, and centres drawn from the same spectrum, so that
    clusters overlap in their tails and neighbourhoods cross cluster boundaries.
  * Queries are fresh draws from the same mixture, never base points.
  * kind "embed768": d = 768, L2-normalised, compared by inner product (= cosine), like text or
    image embeddings. kind "vec128": d = 128, raw (not normalised), compared by L2, like SIFT.

Exact ground truth (the 100 best base ids per query, faiss IndexFlatL2 / IndexFlatIP, which are
exact) is computed here. Everything is cached under --data-dir (default bench/.data, gitignored)
by a tag naming every parameter; a meta.json beside it records the parameters and a local
intrinsic dimension estimate (the Levina-Bickel MLE over the 20 nearest neighbours of each
query), so that a reader can compare the set's difficulty with real data (SIFT10K: see the
results of bench/peers/ivf_vs_peers.py, which estimates it for every data set it runs).

Deterministic: the same parameters give bit-identical files (numpy's PCG64 generator, float32
arithmetic in a fixed order, generated in fixed-size chunks).
"""

import argparse
import json
import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_DATA_DIR = os.path.join(ROOT, "bench", ".data")

KINDS = {
    # d, metric, normalise, default clusters
    "vec128": {"d": 128, "metric": "l2", "normalise": False},
    "embed768": {"d": 768, "metric": "ip", "normalise": True},
}
GT_K = 100
CHUNK = 65536


def default_clusters(n):
    """A few thousand clusters at 1M (n / 400), at least 200."""
    return max(200, n // 400)


def tag_of(kind, n, nq, latent, clusters, noise, seed):
    return f"{kind}_n{n}_q{nq}_L{latent}_c{clusters}_noise{noise:g}_seed{seed}"


def generate(np, kind, n, nq, latent, clusters, noise, seed):
    """Returns (base, queries) as float32 C-order arrays."""
    spec = KINDS[kind]
    d = spec["d"]
    rng = np.random.default_rng(seed)
    spectrum = (1.0 + np.arange(latent, dtype=np.float64)) ** -0.5
    weights = rng.lognormal(0.0, 1.0, clusters)
    weights /= weights.sum()
    centres = rng.standard_normal((clusters, latent)) * spectrum
    spread = rng.lognormal(np.log(0.7), 0.35, clusters)
    axes = rng.lognormal(0.0, 0.3, (clusters, latent)) * spectrum
    mapping = rng.standard_normal((latent, d)) / np.sqrt(latent)
    # Noise relative to the typical per-dimension scale of the mapped signal.
    signal_std = float(np.sqrt((spectrum ** 2).sum() * (1.0 + 0.7 ** 2) / latent))
    noise_std = noise * signal_std

    def draw(count):
        out = np.empty((count, d), dtype=np.float32)
        for start in range(0, count, CHUNK):
            m = min(CHUNK, count - start)
            c = rng.choice(clusters, size=m, p=weights)
            z = centres[c] + rng.standard_normal((m, latent)) * (spread[c, None] * axes[c])
            x = z @ mapping + noise_std * rng.standard_normal((m, d))
            if spec["normalise"]:
                x /= np.linalg.norm(x, axis=1, keepdims=True)
            out[start:start + m] = x
        return out

    base = draw(n)
    queries = draw(nq)
    return np.ascontiguousarray(base), np.ascontiguousarray(queries)


def ground_truth(np, faiss, base, queries, metric, k=GT_K):
    index = faiss.IndexFlatIP(base.shape[1]) if metric == "ip" else faiss.IndexFlatL2(base.shape[1])
    index.add(base)
    dist, ids = index.search(queries, min(k, base.shape[0]))
    return dist, ids.astype(np.int64)


def lid_mle(np, dist, metric, k=20):
    """Levina-Bickel MLE of the local intrinsic dimension from each query's k nearest distances
    (L2 distances; for inner product on unit vectors ||q - x|| = sqrt(2 - 2 <q, x>)); the mean of
    the per-query inverses, inverted (MacKay and Ghahramani's correction)."""
    if metric == "ip":
        r = np.sqrt(np.maximum(2.0 - 2.0 * dist[:, :k].astype(np.float64), 1e-12))
    else:
        r = np.sqrt(np.maximum(dist[:, :k].astype(np.float64), 1e-12))
    inv = np.mean(np.log(r[:, -1:] / r[:, :-1]), axis=1)
    inv = inv[inv > 0]
    return float(1.0 / np.mean(inv)) if inv.size else float("nan")


def ensure(np, faiss, kind, n, nq, seed, data_dir=DEFAULT_DATA_DIR, latent=48, clusters=None,
           noise=0.1, log=lambda s: None):
    """Generates (or reuses) a data set; returns its description with file paths."""
    clusters = clusters or default_clusters(n)
    tag = tag_of(kind, n, nq, latent, clusters, noise, seed)
    folder = os.path.join(data_dir, tag)
    meta_path = os.path.join(folder, "meta.json")
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            return json.load(f)
    os.makedirs(folder, exist_ok=True)
    spec = KINDS[kind]
    log(f"[data] generating {tag}")
    base, queries = generate(np, kind, n, nq, latent, clusters, noise, seed)
    log(f"[data] exact ground truth for {tag} (faiss flat, {spec['metric']})")
    dist, gt = ground_truth(np, faiss, base, queries, spec["metric"])
    paths = {"base": os.path.join(folder, "base.npy"), "queries": os.path.join(folder, "query.npy"),
             "gt": os.path.join(folder, "gt_top100.npy")}
    for key, arr in (("base", base), ("queries", queries), ("gt", gt)):
        np.save(paths[key] + ".tmp.npy", arr)
        os.replace(paths[key] + ".tmp.npy", paths[key])
    meta = {"name": f"synthetic-{kind}", "tag": tag, "kind": kind, "n": n, "nq": nq, "d": spec["d"],
            "metric": spec["metric"], "normalised": spec["normalise"], "latent_dim": latent,
            "clusters": clusters, "noise": noise, "seed": seed,
            "lid_mle_k20": lid_mle(np, dist, spec["metric"]), **paths}
    with open(meta_path + ".tmp", "w") as f:
        json.dump(meta, f, indent=2)
    os.replace(meta_path + ".tmp", meta_path)
    return meta


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kind", choices=sorted(KINDS), required=True)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--nq", type=int, default=1000)
    p.add_argument("--seed", type=int, default=20261125)
    p.add_argument("--latent", type=int, default=48)
    p.add_argument("--clusters", type=int, default=None, help="default: max(200, n / 400)")
    p.add_argument("--noise", type=float, default=0.1,
                   help="isotropic noise std relative to the signal's per-dimension std")
    p.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    args = p.parse_args()
    import numpy as np
    import faiss
    meta = ensure(np, faiss, args.kind, args.n, args.nq, args.seed, args.data_dir, args.latent,
                  args.clusters, args.noise, log=lambda s: print(s, file=sys.stderr))
    print(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()
