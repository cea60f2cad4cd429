"""recall@10 vs QPS plots, drawn the way ann-benchmarks draws them: QPS on a log scale, recall on
the x axis, one Pareto front per system (the points no other point of the same system beats in
both), every measured point faint behind it."""

import os

from common import pareto

STYLES = {
    "rosetta-embedded": ("tab:red", "-"), "rosetta-server": ("tab:orange", "--"),
    "faiss": ("tab:blue", "-"), "hnswlib": ("tab:green", "-"), "usearch": ("tab:olive", "-"),
    "milvus-lite": ("tab:purple", "-"), "lancedb": ("tab:brown", "-"),
}
MARKERS = {"flat": "s", "ivfpq8": "o", "ivfpq4": "^", "ivfpq8-refine": "o",
           "ivfpqfs4-refine": "^", "hnsw": "D", "ivf-flat": "v", "ivf-pq": "o", "hnsw-M16": "D"}


def plot_dataset(res, threads, out_dir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(9, 6), dpi=110)
    drawn = 0
    for name, s in res["systems"].items():
        if s.get("status") != "ok":
            continue
        pts = [{"recall": p["recall"], "qps": p["threads"][str(threads)]["qps"]}
               for p in s["points"] if str(threads) in p["threads"]]
        if not pts:
            continue
        fam = next((f for f in STYLES if name.startswith(f)), None)
        color, ls = STYLES.get(fam, ("gray", "-"))
        variant = name[len(fam) + 1:] if fam else name
        marker = MARKERS.get(variant, "o")
        ax.scatter([p["recall"] for p in pts], [p["qps"] for p in pts], color=color, alpha=0.2,
                   s=12, marker=marker)
        front = pareto(pts)
        ax.plot([p["recall"] for p in front], [p["qps"] for p in front], color=color,
                linestyle=ls if "ivfpq4" not in name and "fs4" not in name else ":",
                marker=marker, markersize=5, label=name)
        drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.set_yscale("log")
    ax.set_xlabel("recall@10 (vs exact neighbours)")
    ax.set_ylabel("queries per second (log scale)")
    ax.grid(True, which="both", alpha=0.3)
    ax.axvline(0.90, color="gray", lw=0.6, ls=":")
    ax.axvline(0.95, color="gray", lw=0.6, ls=":")
    p = res["params"]
    ax.set_title(f"{res['dataset']['name']}: {p['n']:,} x {p['d']} ({p['metric']}), "
                 f"{threads} thread(s); Pareto front per system")
    ax.legend(fontsize=7, loc="lower left", ncol=2)
    fig.tight_layout()
    name = f"{res['dataset']['name']}_{threads}t.png"
    fig.savefig(os.path.join(out_dir, name))
    plt.close(fig)
    return name
