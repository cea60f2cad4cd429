#!/usr/bin/env python3
"""Torch baseline for bench/gpu_bench.cc (issue 6 "Speed"): matmul + topk on the same shapes.

Base: rows x dim fp16 on the GPU (uniform [-1, 1)). Per batch: end to end (host fp32 queries ->
GPU fp16 -> scores = q @ base.T (fp16 output, cuBLAS with fp32 accumulation) -> torch.topk ->
values and indices on the host), median wall time over --reps calls after 3 warm-ups; and the
matmul alone on device-resident queries (CUDA events, median). Writes CSV lines
`batch,torch_e2e_ms,torch_matmul_ms` to --out (read by gpu_bench --torch=FILE) and prints a table.
"""
import argparse
import statistics
import sys
import time

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--batches", default="1,4,16,1024,4096")
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--out", default="torch_baseline.csv")
    a = ap.parse_args()
    if not torch.cuda.is_available():
        print("gpu_torch_baseline: no CUDA device; nothing to measure")
        return 0
    dev = torch.device("cuda")
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}", flush=True)
    g = torch.Generator(device=dev)
    g.manual_seed(1)
    base = (torch.rand(a.rows, a.dim, device=dev, generator=g) * 2 - 1).half()
    rows = []
    for batch in [int(x) for x in a.batches.split(",")]:
        reps = a.reps if batch < 1024 else max(5, a.reps // 4)
        q_host = torch.rand(batch, a.dim) * 2 - 1

        def end_to_end():
            q = q_host.to(dev).half()
            scores = q @ base.T
            v, i = torch.topk(scores, a.k, dim=1)
            return v.cpu(), i.cpu()

        for _ in range(3):
            end_to_end()
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            end_to_end()
            times.append(time.perf_counter() - t0)
        e2e = statistics.median(times) * 1e3

        q = q_host.to(dev).half()
        for _ in range(3):
            q @ base.T
        mm = []
        for _ in range(reps):
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            q @ base.T
            e.record()
            e.synchronize()
            mm.append(s.elapsed_time(e))
        rows.append((batch, e2e, statistics.median(mm)))
        torch.cuda.empty_cache()
        print(f"batch {batch}: e2e {e2e:.3f} ms, matmul {statistics.median(mm):.3f} ms", flush=True)
    with open(a.out, "w") as f:
        for r in rows:
            f.write(f"{r[0]},{r[1]:.4f},{r[2]:.4f}\n")
    print("\n| batch | torch matmul+topk e2e (ms) | torch matmul alone (ms) |")
    print("|---:|---:|---:|")
    for r in rows:
        print(f"| {r[0]} | {r[1]:.3f} | {r[2]:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
