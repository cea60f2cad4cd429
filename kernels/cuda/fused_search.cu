// The fused path (small batches, memory-bound): one pass over the base computes every query's
// scores and k-selects them without writing a score matrix.
//
// Each block owns a contiguous range of base rows (a multiple of kStripe) and walks it stripe by
// stripe: its 8 warps score 32 rows each for all the pass's queries into a shared-memory tile
// (NQ x kStripe floats), then each warp streams its queries' tile rows through their selection
// queues (shared memory; warp w owns queries w, w + 8). At the end every block writes its queues
// to global memory and LaunchMerge combines the blocks' first k entries per query.
//
// Scoring layout (both storages): lane = 4 * g + t with g = lane / 4 the row within a group of 8
// rows and t = lane % 4 the part of a 64-byte chunk of the row the lane loads (16 bytes). Because
// a dot product does not depend on the order of its terms, every lane may treat its 16 bytes as
// whichever k indices suit the arithmetic, as long as rows and queries use the same mapping:
//   - fp16: mma.sync m16n8k8 (sm_75+), A = 16 base rows (rows g and g + 8 of the m-tile), B = 8
//     queries (query g); each lane's 8 halves of row g, of row g + 8 and of query g, read at the
//     same offsets, feed four mma steps, half2 by half2, i.e. the fragment's k pair of lane t in
//     step j is the chunk's elements 8t + 2j, 8t + 2j + 1. fp32 accumulators.
//   - fp32: CUDA-core FMAs over 4 floats per lane per chunk, partial sums reduced over the 4
//     lanes of a row with two shuffles.
// Rows past the block's range and skipped rows score NaN, which never passes the selection.
#include <algorithm>

#include "kernels/cuda/search_internal.cuh"

namespace rosetta::kernels::gpu {
namespace {

constexpr int kFusedWarps = 8;
constexpr int kFusedThreads = kFusedWarps * 32;
constexpr int kRowsPerWarp = 32;
constexpr int kStripe = kFusedWarps * kRowsPerWarp;  // rows per block iteration

struct FusedParams {
  const void* base;
  const void* queries;     // the pass's first query row; NQ rows readable
  size_t n;
  size_t dp;
  int nq;                  // real queries in this pass (<= NQ)
  size_t rows_per_block;   // multiple of kStripe
  const float* query_norms;  // the pass's first query; null = inner product
  const float* base_norms;
  const uint64_t* skip;
  SelEntry* queues;        // [nq][gridDim.x][queue_cap]
  uint32_t queue_cap, cand_cap, k;
};

__device__ inline float FinishScore(const FusedParams& p, float dot, int q, size_t row,
                                    size_t row_end) {
  if (row >= row_end) return __int_as_float(0x7fc00000);  // NaN: never selected
  if (Skipped(p.skip, static_cast<int32_t>(row))) return __int_as_float(0x7fc00000);
  if (p.query_norms != nullptr) {
    const float s = 2.f * dot - p.base_norms[row] - p.query_norms[q];
    return s > 0.f ? 0.f : s;  // keeps NaN
  }
  return dot;
}

__device__ inline uint32_t Word(const uint4& v, int j) {
  return j == 0 ? v.x : j == 1 ? v.y : j == 2 ? v.z : v.w;
}

__device__ inline void MmaM16N8K8(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t b0) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(b0));
}

// Scores the warp's 32 rows (2 m-tiles of 16) for NQ queries (NQ / 8 n-tiles) into the tile.
template <int NQ, int kUnroll>
__device__ inline void ScoreRowsHalf(const FusedParams& p, size_t r0, size_t row_end,
                                     float* tile, int warp_row0, uint32_t lane) {
  constexpr int kNT = NQ / 8;
  const int g = static_cast<int>(lane >> 2), t = static_cast<int>(lane & 3);
  const __half* base = static_cast<const __half*>(p.base);
  const __half* queries = static_cast<const __half*>(p.queries);
  const uint4* rows[2][2];
#pragma unroll
  for (int mt = 0; mt < 2; ++mt) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const size_t row = min(r0 + mt * 16 + h * 8 + g, p.n - 1);  // clamped; masked later
      rows[mt][h] = reinterpret_cast<const uint4*>(base + row * p.dp + t * 8);
    }
  }
  const uint4* qrow[kNT];
#pragma unroll
  for (int nt = 0; nt < kNT; ++nt) {
    qrow[nt] = reinterpret_cast<const uint4*>(queries + size_t(nt * 8 + g) * p.dp + t * 8);
  }
  float acc[2][kNT][4];
#pragma unroll
  for (int mt = 0; mt < 2; ++mt)
#pragma unroll
    for (int nt = 0; nt < kNT; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[mt][nt][i] = 0.f;

  const size_t chunks = p.dp / 32;  // 32 halves = 64 bytes = 4 lanes x 16 bytes
#pragma unroll kUnroll
  for (size_t c = 0; c < chunks; ++c) {
    uint4 a[2][2];
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
#pragma unroll
      for (int h = 0; h < 2; ++h) a[mt][h] = __ldcs(rows[mt][h] + c * 4);
    uint4 b[kNT];
#pragma unroll
    for (int nt = 0; nt < kNT; ++nt) b[nt] = __ldg(qrow[nt] + c * 4);
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
#pragma unroll
      for (int nt = 0; nt < kNT; ++nt)
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          MmaM16N8K8(acc[mt][nt], Word(a[mt][0], j), Word(a[mt][1], j), Word(b[nt], j));
        }
  }
  // Accumulator fragment: c[0], c[1] = row g, queries 2t, 2t + 1; c[2], c[3] = row g + 8.
#pragma unroll
  for (int mt = 0; mt < 2; ++mt)
#pragma unroll
    for (int nt = 0; nt < kNT; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int local = warp_row0 + mt * 16 + g + (i >= 2 ? 8 : 0);
        const int q = nt * 8 + 2 * t + (i & 1);
        tile[q * kStripe + local] =
            FinishScore(p, acc[mt][nt][i], q, r0 - warp_row0 + local, row_end);
      }
}

template <int NQ>
__device__ inline void ScoreRowsFloat(const FusedParams& p, size_t r0, size_t row_end,
                                      float* tile, int warp_row0, uint32_t lane) {
  const int g = static_cast<int>(lane >> 2), t = static_cast<int>(lane & 3);
  const float* base = static_cast<const float*>(p.base);
  const float* queries = static_cast<const float*>(p.queries);
  const float4* rows[4];
#pragma unroll
  for (int rg = 0; rg < 4; ++rg) {
    const size_t row = min(r0 + rg * 8 + g, p.n - 1);
    rows[rg] = reinterpret_cast<const float4*>(base + row * p.dp + t * 4);
  }
  const float4* qbase = reinterpret_cast<const float4*>(queries + t * 4);
  const size_t q_stride = p.dp / 4;  // in float4
  float acc[4][NQ];
#pragma unroll
  for (int rg = 0; rg < 4; ++rg)
#pragma unroll
    for (int q = 0; q < NQ; ++q) acc[rg][q] = 0.f;

  const size_t chunks = p.dp / 16;  // 16 floats = 64 bytes = 4 lanes x 16 bytes
  // Not unrolled: 4 x NQ accumulators already take most registers, and occupancy (2 blocks per
  // multiprocessor, see the launch bounds) keeps enough loads in flight.
#pragma unroll 1
  for (size_t c = 0; c < chunks; ++c) {
    float4 b[4];
#pragma unroll
    for (int rg = 0; rg < 4; ++rg) b[rg] = __ldcs(rows[rg] + c * 4);
#pragma unroll
    for (int q = 0; q < NQ; ++q) {
      const float4 v = __ldg(qbase + q * q_stride + c * 4);
#pragma unroll
      for (int rg = 0; rg < 4; ++rg) {
        float s = acc[rg][q];
        s = fmaf(b[rg].x, v.x, s);
        s = fmaf(b[rg].y, v.y, s);
        s = fmaf(b[rg].z, v.z, s);
        s = fmaf(b[rg].w, v.w, s);
        acc[rg][q] = s;
      }
    }
  }
#pragma unroll
  for (int rg = 0; rg < 4; ++rg)
#pragma unroll
    for (int q = 0; q < NQ; ++q) {
      float s = acc[rg][q];
      s += __shfl_xor_sync(kFullMask, s, 1);
      s += __shfl_xor_sync(kFullMask, s, 2);
      if ((q & 3) == t) {
        const int local = warp_row0 + rg * 8 + g;
        tile[q * kStripe + local] = FinishScore(p, s, q, r0 - warp_row0 + local, row_end);
      }
    }
}

template <typename T, int NQ, int kMinBlocks, int kUnroll>
__global__ void __launch_bounds__(kFusedThreads, kMinBlocks) FusedKernel(FusedParams p) {
  extern __shared__ __align__(16) unsigned char fused_smem[];
  float* tile = reinterpret_cast<float*>(fused_smem);  // [NQ][kStripe]
  SelEntry* state = reinterpret_cast<SelEntry*>(tile + NQ * kStripe);  // per query: queue, cand
  const int warp = static_cast<int>(threadIdx.x / 32);
  const WarpExec ex{threadIdx.x % 32};
  const size_t row_begin = blockIdx.x * p.rows_per_block;
  const size_t row_end = min(p.n, row_begin + p.rows_per_block);
  const uint32_t per_query = p.queue_cap + p.cand_cap;

  for (size_t i = threadIdx.x; i < size_t(p.nq) * per_query; i += kFusedThreads) {
    if (i % per_query < p.queue_cap) state[i] = SentinelEntry();
  }
  __syncthreads();

  constexpr int kOwned = (NQ + kFusedWarps - 1) / kFusedWarps;
  WarpStream streams[kOwned];
#pragma unroll
  for (int j = 0; j < kOwned; ++j) {
    SelEntry* q_state = state + size_t(warp + j * kFusedWarps) * per_query;
    streams[j] = WarpStream{q_state,     q_state + p.queue_cap, p.queue_cap, p.cand_cap,
                            p.k,         0,                     -INFINITY};
  }

  for (size_t stripe = row_begin; stripe < row_end; stripe += kStripe) {
    const int warp_row0 = warp * kRowsPerWarp;
    const size_t r0 = stripe + warp_row0;
    if (r0 < row_end) {
      if constexpr (sizeof(T) == 2) {
        ScoreRowsHalf<NQ, kUnroll>(p, r0, row_end, tile, warp_row0, ex.lane);
      } else {
        ScoreRowsFloat<NQ>(p, r0, row_end, tile, warp_row0, ex.lane);
      }
    } else {
      for (int i = static_cast<int>(ex.lane); i < NQ * kRowsPerWarp; i += 32) {
        tile[(i / kRowsPerWarp) * kStripe + warp_row0 + i % kRowsPerWarp] =
            __int_as_float(0x7fc00000);
      }
    }
    __syncthreads();
#pragma unroll
    for (int j = 0; j < kOwned; ++j) {
      const int q = warp + j * kFusedWarps;
      if (q >= p.nq) continue;  // warp-uniform
      const float4* row = reinterpret_cast<const float4*>(tile + q * kStripe);
#pragma unroll
      for (int c = 0; c < kStripe / static_cast<int>(kScanChunk); ++c) {
        const float4 v = row[c * 32 + ex.lane];
        const float score[4] = {v.x, v.y, v.z, v.w};
        int32_t id[4];
        bool valid[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          id[i] = static_cast<int32_t>(stripe + c * kScanChunk + ex.lane * 4 + i);
          valid[i] = true;  // rows past the range scored NaN
        }
        WarpOfferChunk(streams[j], score, id, valid, nullptr, ex);
      }
    }
    __syncthreads();
  }

#pragma unroll
  for (int j = 0; j < kOwned; ++j) {
    const int q = warp + j * kFusedWarps;
    if (q >= p.nq) continue;
    WarpFlush(streams[j], ex);
    WarpStoreQueue(streams[j],
                   p.queues + (size_t(q) * gridDim.x + blockIdx.x) * p.queue_cap, ex);
  }
}

size_t TileBytes(int nq_template) { return size_t(nq_template) * kStripe * sizeof(float); }

int TemplateQueries(bool fp16, size_t nq) {
  if (fp16) return nq <= 8 ? 8 : 16;
  return nq <= 4 ? 4 : 16;
}

using FusedFn = void (*)(FusedParams);

// Register budget of the fp16 kernel: one block of 8 warps per multiprocessor with 8 chunks
// (32 x 16-byte loads per lane) unrolled measured faster on an H100 at batch 1 and 4 than two
// blocks with 4 chunks (0.648 vs 0.675 ms device time for 1M x 768, 2026-11-25) and equal at
// batch 16 (0.855 vs 0.845) without the latter's register spills; three blocks with 2 chunks
// were slower (0.741).
FusedFn FusedKernelFor(bool fp16, int nq_template) {
  if (fp16) return nq_template == 8 ? FusedKernel<__half, 8, 1, 8> : FusedKernel<__half, 16, 1, 8>;
  return nq_template == 4 ? FusedKernel<float, 4, 2, 1> : FusedKernel<float, 16, 2, 1>;
}

}  // namespace

size_t FusedSharedBytes(const DeviceMatrix& m, size_t nq, uint32_t queue_cap, uint32_t cand_cap) {
  return TileBytes(TemplateQueries(m.fp16, nq)) +
         nq * size_t{queue_cap + cand_cap} * sizeof(SelEntry);
}

size_t FusedMaxQueriesPerPass(const DeviceMatrix& m, uint32_t queue_cap, uint32_t cand_cap) {
  size_t best = 0;
  for (size_t nq = 1; nq <= 16; ++nq) {
    if (FusedSharedBytes(m, nq, queue_cap, cand_cap) <= m.smem_optin) best = nq;
  }
  return best;
}

Error RunFused(const PathArgs& a) {
  const DeviceMatrix& m = *a.m;
  SearchContext* ctx = a.ctx;
  cudaStream_t stream = ctx->stream[0];
  const size_t per_pass = FusedMaxQueriesPerPass(m, a.queue_cap, a.cand_cap);
  if (per_pass == 0) {
    return Error{kResourceExhausted, "fused search: one query's selection state does not fit the "
                                     "device's shared memory"};
  }
  const size_t elem = m.fp16 ? 2 : 4;
  if (a.stats != nullptr) a.stats->passes = (a.nq + per_pass - 1) / per_pass;
  for (size_t q0 = 0; q0 < a.nq; q0 += per_pass) {
    const size_t nq = std::min(per_pass, a.nq - q0);
    const int nq_template = TemplateQueries(m.fp16, nq);
    const FusedFn kernel = FusedKernelFor(m.fp16, nq_template);
    const size_t smem = FusedSharedBytes(m, nq, a.queue_cap, a.cand_cap);
    ROSETTA_GPU_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          static_cast<int>(smem)),
                     "cudaFuncSetAttribute(FusedKernel)");
    int per_sm = 0;
    ROSETTA_GPU_CUDA(
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kFusedThreads, smem),
        "cudaOccupancyMaxActiveBlocksPerMultiprocessor(FusedKernel)");
    per_sm = std::max(per_sm, 1);
    // One wave of resident blocks, each owning an equal share of the rows (whole stripes).
    const size_t stripes = (m.n + kStripe - 1) / kStripe;
    size_t blocks = std::min(stripes, size_t(per_sm) * m.multiprocessors);
    const size_t stripes_per_block = (stripes + blocks - 1) / blocks;
    blocks = (stripes + stripes_per_block - 1) / stripes_per_block;

    ROSETTA_GPU_RETURN_IF_ERROR(ctx->queues.Reserve(nq * blocks * a.queue_cap * sizeof(SelEntry),
                                                    "cudaMalloc(fused queues)"));
    FusedParams p;
    p.base = m.data;
    p.queries = static_cast<const char*>(ctx->packed_queries.ptr) + q0 * m.dp * elem;
    p.n = m.n;
    p.dp = m.dp;
    p.nq = static_cast<int>(nq);
    p.rows_per_block = stripes_per_block * kStripe;
    p.query_norms = a.query_norms != nullptr ? a.query_norms + q0 : nullptr;
    p.base_norms = m.norms;
    p.skip = a.skip;
    p.queues = ctx->queues.as<SelEntry>();
    p.queue_cap = a.queue_cap;
    p.cand_cap = a.cand_cap;
    p.k = a.k;
    kernel<<<static_cast<unsigned>(blocks), kFusedThreads, smem, stream>>>(p);
    ROSETTA_GPU_LAUNCHED("FusedKernel launch");
    ROSETTA_GPU_RETURN_IF_ERROR(LaunchMerge(ctx->queues.as<SelEntry>(), nq, blocks, a.queue_cap,
                                            a.k, a.final_queues + q0 * a.queue_cap, a.queue_cap,
                                            a.k, m.smem_optin, &ctx->merge_scratch, stream));
  }
  return Error{};
}

}  // namespace rosetta::kernels::gpu
