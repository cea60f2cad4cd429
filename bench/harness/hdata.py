"""The harness's data sets: every set in ../shared/data and synthetic sets from
bench/peers/synthetic.py (fixed seed).

A data set is a dict:
  name, source, metric (l2 | cosine | ip), n, d, nq,
  base, queries (float32 arrays; cosine sets are L2-normalised here so that every system sees the
    same unit vectors and inner product ranks them), gt (int64 [nq, >= k] exact neighbours),
  exclude_self (bool: the queries are the base rows themselves and the ground truth excludes the
    query's own row: every system searches k + 1 and drops the query's own id),
  pairs (optional int64 [nq]: the paired base row of each query, for recall@1/5/10 of a pairing),
  files: base / queries .npy paths for the Rosetta driver (written to the work dir when the
    in-memory arrays differ from the files).
"""

import os
import sys

from common import ROOT, log

SHARED = os.path.abspath(os.path.join(ROOT, "..", "shared", "data"))
SEED = 20261125

# Synthetic sizes: (vec128 n, embed768 n, queries).
SCALES = {
    "smoke": None,
    "quick": (30_000, 10_000, 300),
    "medium": (300_000, 50_000, 500),
    "large": (1_000_000, 200_000, 1000),
}


def _normalise(np, x):
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(norms, 1e-30), dtype=np.float32)


def _save(np, work_dir, name, arr):
    path = os.path.join(work_dir, name)
    np.save(path, arr)
    return path


def shared_sets(np, work_dir, only=None):
    """Returns (datasets, skipped) for the folders of ../shared/data; skipped: (name, why)."""
    out, skipped = [], []
    os.makedirs(work_dir, exist_ok=True)

    def want(name):
        return only is None or name in only

    folder = os.path.join(SHARED, "sift10k_siftsmall")
    if want("sift10k"):
        if not os.path.isdir(folder):
            skipped.append(("sift10k", f"{folder} is absent"))
        else:
            base = np.load(os.path.join(folder, "base.npy"))
            q = np.load(os.path.join(folder, "query.npy"))
            gt = np.load(os.path.join(folder, "gt_l2_top100.npy")).astype(np.int64)
            out.append({"name": "sift10k", "source": os.path.relpath(folder, ROOT), "metric": "l2",
                        "base": base, "queries": q, "gt": gt, "exclude_self": False,
                        "files": {"base": os.path.join(folder, "base.npy"),
                                  "queries": os.path.join(folder, "query.npy")},
                        "note": "SIFT10K (TEXMEX siftsmall), official exact 100-NN"})
    folder = os.path.join(SHARED, "fashion-mnist_1k")
    if want("fashion-mnist"):
        if not os.path.isdir(folder):
            skipped.append(("fashion-mnist", f"{folder} is absent"))
        else:
            base = np.load(os.path.join(folder, "base.npy"))
            q = np.load(os.path.join(folder, "query.npy"))
            gt = np.load(os.path.join(folder, "gt_l2_top100.npy")).astype(np.int64)
            out.append({"name": "fashion-mnist", "source": os.path.relpath(folder, ROOT),
                        "metric": "l2", "base": base, "queries": q, "gt": gt,
                        "exclude_self": False,
                        "files": {"base": os.path.join(folder, "base.npy"),
                                  "queries": os.path.join(folder, "query.npy")},
                        "note": "Fashion-MNIST 1000 x 784 base, 500 queries, exact 100-NN"})
    folder = os.path.join(SHARED, "word2vec-googlenews_1k")
    if want("word2vec"):
        if not os.path.isdir(folder):
            skipped.append(("word2vec", f"{folder} is absent"))
        else:
            v = _normalise(np, np.load(os.path.join(folder, "vectors.npy")))
            gt = np.load(os.path.join(folder, "gt_self_ip_top100_excl_self.npy")).astype(np.int64)
            path = _save(np, work_dir, "word2vec_unit.npy", v)
            out.append({"name": "word2vec", "source": os.path.relpath(folder, ROOT),
                        "metric": "cosine", "base": v, "queries": v, "gt": gt,
                        "exclude_self": True, "files": {"base": path, "queries": path},
                        "note": "word2vec GoogleNews, 1000 words x 300; every word queries the "
                                "others (ground truth excludes self: k + 1 searched, self dropped)"})
    folder = os.path.join(SHARED, "flickr8k_tinyclip-vit40m_1k")
    if want("flickr8k"):
        if not os.path.isdir(folder):
            skipped.append(("flickr8k", f"{folder} is absent"))
        else:
            img = _normalise(np, np.load(os.path.join(folder, "image_emb.npy")))
            txt = _normalise(np, np.load(os.path.join(folder, "text_emb.npy")))
            gt = np.load(os.path.join(folder, "gt_text2image_ip_top100.npy")).astype(np.int64)
            out.append({"name": "flickr8k-text2image", "source": os.path.relpath(folder, ROOT),
                        "metric": "cosine", "base": img, "queries": txt, "gt": gt,
                        "exclude_self": False, "pairs": np.arange(txt.shape[0], dtype=np.int64),
                        "files": {"base": _save(np, work_dir, "flickr_img_unit.npy", img),
                                  "queries": _save(np, work_dir, "flickr_txt_unit.npy", txt)},
                        "note": "Flickr8k TinyCLIP: base = 1000 image embeddings, queries = their "
                                "1000 captions; recall@10 vs exact neighbours, and recall@1/5/10 of "
                                "the paired image"})
    for ds in out:
        ds["n"], ds["d"] = ds["base"].shape
        ds["nq"] = ds["queries"].shape[0]
    return out, skipped


def synthetic_sets(np, faiss, scale, data_dir, only=None):
    sys.path.insert(0, os.path.join(ROOT, "bench", "peers"))
    import synthetic
    n128, n768, nq = SCALES[scale]
    out = []
    for kind, n in (("vec128", n128), ("embed768", n768)):
        name = f"synthetic-{kind}"
        if only is not None and name not in only and kind not in only:
            continue
        meta = synthetic.ensure(np, faiss, kind, n, nq, SEED, data_dir, log=log)
        base = np.load(meta["base"], mmap_mode=None)
        q = np.load(meta["queries"])
        gt = np.load(meta["gt"]).astype(np.int64)
        out.append({"name": name, "source": f"bench/peers/synthetic.py {meta['tag']}",
                    "metric": "l2" if meta["metric"] == "l2" else "cosine",
                    "base": base, "queries": q, "gt": gt, "exclude_self": False,
                    "files": {"base": meta["base"], "queries": meta["queries"]},
                    "n": n, "d": meta["d"], "nq": q.shape[0],
                    "note": f"synthetic {kind}: clustered ({meta['clusters']} clusters), latent "
                            f"dim {meta['latent_dim']}, LID(MLE, k=20) {meta['lid_mle_k20']:.1f}, "
                            f"seed {meta['seed']}; queries are fresh draws, not base rows"
                            + ("; unit vectors compared by inner product (= cosine)"
                               if meta["metric"] == "ip" else "")})
    return out
