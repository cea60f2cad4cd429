// The tiled path (large batches, compute-bound): cuBLAS GEMM of a block of queries against a
// tile of base rows into a bounded score tile, then a selection kernel that streams each
// (query, segment of the tile) through a running queue kept in global memory across tiles, and a
// final merge of the segments' queues. The full nq x nb score matrix never exists.
//
// Two score tiles alternate: GEMMs run on stream 0 and selections on stream 1, so the GEMM of
// tile i + 1 overlaps the selection of tile i; events order a tile's GEMM after the selection that
// last read its buffer, and each selection after its GEMM. Queue updates of one query block are
// all on stream 1, hence in tile order.
#include <algorithm>

#include "kernels/cuda/search_internal.cuh"

namespace rosetta::kernels::gpu {
namespace {

constexpr size_t kMaxQueryBlock = 2048;
constexpr size_t kColumnAlign = 128;  // tile widths and segment lengths: multiples of a chunk
constexpr size_t kMinSegment = 1024;
constexpr size_t kMaxSegments = 64;

struct TileSelectParams {
  const float* tile;      // [qn][ld] scores of the query block vs the tile's base rows
  size_t ld;              // multiple of kColumnAlign
  size_t cols;            // valid columns (base rows in this tile)
  int32_t col0;           // id of column 0
  size_t qn;
  size_t segments;
  size_t segment_len;     // multiple of kColumnAlign
  SelEntry* queues;       // [qn][segments][queue_cap]
  uint32_t queue_cap, cand_cap, k;
  const uint64_t* skip;
  const float* query_norms;  // the block's first query; null = inner product
  const float* base_norms;
};

// One warp per (query, segment): loads the running queue, streams the segment's scores through it
// (4 chunks of 128 loaded ahead), stores it back.
__global__ void TileSelectKernel(TileSelectParams p) {
  extern __shared__ __align__(16) unsigned char select_smem[];
  const uint32_t warp = threadIdx.x / 32;
  const WarpExec ex{threadIdx.x % 32};
  const size_t w = size_t{blockIdx.x} * (blockDim.x / 32) + warp;
  if (w >= p.qn * p.segments) return;  // whole warp; the kernel has no block barrier
  const size_t q = w / p.segments;
  const size_t s = w % p.segments;
  SelEntry* smem =
      reinterpret_cast<SelEntry*>(select_smem) + size_t{warp} * (p.queue_cap + p.cand_cap);
  SelEntry* global_queue = p.queues + w * p.queue_cap;
  const float* row = p.tile + q * p.ld;
  const size_t begin = s * p.segment_len;
  const size_t end = min(p.cols, begin + p.segment_len);
  const float query_norm = p.query_norms != nullptr ? p.query_norms[q] : 0.f;

  // Software-pipelined scan: the loads of the next batch of kAhead chunks are issued before the
  // current batch is processed (and the first batch before the queue is read), so that a warp
  // keeps up to 2 x kAhead loads in flight instead of waiting once per batch.
  constexpr int kAhead = 4;
  constexpr size_t kBatch = kAhead * kScanChunk;
  auto load_batch = [&](float4 (&v)[kAhead], size_t c) {
#pragma unroll
    for (int u = 0; u < kAhead; ++u) {
      const size_t chunk = c + u * kScanChunk;
      // Chunks start below `end` <= ld, and ld is a multiple of the chunk: in bounds.
      v[u] = chunk < end ? __ldcs(reinterpret_cast<const float4*>(row + chunk) + ex.lane)
                         : make_float4(0.f, 0.f, 0.f, 0.f);
    }
  };
  float4 next[kAhead];
  if (begin < end) load_batch(next, begin);
  WarpStream ws = WarpStreamFrom(global_queue, smem, p.queue_cap, p.cand_cap, p.k, ex);

  for (size_t c = begin; c < end; c += kBatch) {
    float4 v[kAhead];
#pragma unroll
    for (int u = 0; u < kAhead; ++u) v[u] = next[u];
    if (c + kBatch < end) load_batch(next, c + kBatch);
#pragma unroll
    for (int u = 0; u < kAhead; ++u) {
      const size_t chunk = c + u * kScanChunk;
      if (chunk >= end) break;  // warp-uniform
      float score[4] = {v[u].x, v[u].y, v[u].z, v[u].w};
      int32_t id[4];
      bool valid[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const size_t col = chunk + ex.lane * 4 + i;
        valid[i] = col < end;
        id[i] = p.col0 + static_cast<int32_t>(col);
        if (p.query_norms != nullptr && valid[i]) {
          const float l2 = 2.f * score[i] - p.base_norms[id[i]] - query_norm;
          score[i] = l2 > 0.f ? 0.f : l2;  // keeps NaN
        }
      }
      WarpOfferChunk(ws, score, id, valid, p.skip, ex);
    }
  }
  WarpFlush(ws, ex);
  WarpStoreQueue(ws, global_queue, ex);
}

size_t RoundUp(size_t x, size_t unit) { return (x + unit - 1) / unit * unit; }

}  // namespace

Error RunTiled(const PathArgs& a, size_t scratch_bytes, size_t tile_rows) {
  const DeviceMatrix& m = *a.m;
  SearchContext* ctx = a.ctx;
  cudaStream_t gemm_stream = ctx->stream[0];
  cudaStream_t select_stream = ctx->stream[1];

  // Shapes: tile floats per buffer, base rows per tile (tile_cols), queries per block.
  const size_t tile_floats = std::max<size_t>(scratch_bytes, 2 * kColumnAlign * 4) / 8;
  const size_t max_cols = std::min<size_t>(RoundUp(m.n, kColumnAlign), size_t{1} << 30);
  size_t tile_cols;
  if (tile_rows > 0) {
    tile_cols = RoundUp(tile_rows, kColumnAlign);
  } else {
    const size_t block0 = std::min(a.nq, kMaxQueryBlock);
    tile_cols = std::max(kColumnAlign, tile_floats / block0 / kColumnAlign * kColumnAlign);
  }
  tile_cols = std::min(tile_cols, max_cols);
  const size_t query_block =
      std::min({a.nq, kMaxQueryBlock, std::max<size_t>(1, tile_floats / tile_cols)});

  // Segments: enough warps to fill the device, each segment at least kMinSegment columns.
  const size_t target_warps = size_t(m.multiprocessors) * 64;
  size_t segments = std::max<size_t>(1, (target_warps + query_block - 1) / query_block);
  segments = std::min({segments, std::max<size_t>(1, tile_cols / kMinSegment), kMaxSegments});
  const size_t segment_len = RoundUp((tile_cols + segments - 1) / segments, kColumnAlign);
  segments = (tile_cols + segment_len - 1) / segment_len;

  const size_t tile_bytes = query_block * tile_cols * sizeof(float);
  ROSETTA_GPU_RETURN_IF_ERROR(ctx->tiles.Reserve(2 * tile_bytes, "cudaMalloc(score tiles)"));
  ROSETTA_GPU_RETURN_IF_ERROR(ctx->queues.Reserve(
      query_block * segments * a.queue_cap * sizeof(SelEntry), "cudaMalloc(tile queues)"));
  float* tiles[2] = {ctx->tiles.as<float>(), ctx->tiles.as<float>() + query_block * tile_cols};

  const uint32_t per_warp_bytes = (a.queue_cap + a.cand_cap) * sizeof(SelEntry);
  const size_t warps_per_block =
      std::max<size_t>(1, std::min<size_t>(4, m.smem_optin / per_warp_bytes));
  const size_t select_smem = warps_per_block * per_warp_bytes;
  if (select_smem > 48 * 1024) {
    ROSETTA_GPU_CUDA(cudaFuncSetAttribute(TileSelectKernel,
                                          cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          static_cast<int>(select_smem)),
                     "cudaFuncSetAttribute(TileSelectKernel)");
  }

  const cudaDataType type = m.fp16 ? CUDA_R_16F : CUDA_R_32F;
  const size_t elem = m.fp16 ? 2 : 4;
  const float one = 1.f, zero = 0.f;
  bool selected_before[2] = {false, false};

  // Stream 1 starts after stream 0's query packing and skip upload.
  ROSETTA_GPU_CUDA(cudaEventRecord(ctx->done, gemm_stream), "cudaEventRecord");
  ROSETTA_GPU_CUDA(cudaStreamWaitEvent(select_stream, ctx->done, 0), "cudaStreamWaitEvent");

  size_t tile_index = 0;
  for (size_t q0 = 0; q0 < a.nq; q0 += query_block) {
    const size_t qn = std::min(query_block, a.nq - q0);
    SelEntry* queues = ctx->queues.as<SelEntry>();
    ROSETTA_GPU_RETURN_IF_ERROR(
        LaunchFillSentinels(queues, qn * segments * a.queue_cap, select_stream));
    const void* queries = static_cast<const char*>(ctx->packed_queries.ptr) + q0 * m.dp * elem;
    for (size_t c0 = 0; c0 < m.n; c0 += tile_cols, ++tile_index) {
      const int buf = static_cast<int>(tile_index & 1);
      const size_t cols = std::min(tile_cols, m.n - c0);
      if (selected_before[buf]) {
        ROSETTA_GPU_CUDA(cudaStreamWaitEvent(gemm_stream, ctx->select_done[buf], 0),
                         "cudaStreamWaitEvent");
      }
      // Column-major view: tile (cols x qn, ld = tile_cols) = base_tile^T (cols x dp) * queries
      // (dp x qn); row-major that is qn rows of tile_cols scores, one per query.
      const void* base_tile = static_cast<const char*>(m.data) + c0 * m.dp * elem;
      ROSETTA_GPU_CUBLAS(
          cublasGemmEx(ctx->cublas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(cols),
                       static_cast<int>(qn), static_cast<int>(m.dp), &one, base_tile, type,
                       static_cast<int>(m.dp), queries, type, static_cast<int>(m.dp), &zero,
                       tiles[buf], CUDA_R_32F, static_cast<int>(tile_cols), CUBLAS_COMPUTE_32F,
                       CUBLAS_GEMM_DEFAULT),
          "cublasGemmEx(score tile)");
      ROSETTA_GPU_CUDA(cudaEventRecord(ctx->gemm_done[buf], gemm_stream), "cudaEventRecord");
      ROSETTA_GPU_CUDA(cudaStreamWaitEvent(select_stream, ctx->gemm_done[buf], 0),
                       "cudaStreamWaitEvent");

      TileSelectParams p;
      p.tile = tiles[buf];
      p.ld = tile_cols;
      p.cols = cols;
      p.col0 = static_cast<int32_t>(c0);
      p.qn = qn;
      p.segments = segments;
      p.segment_len = segment_len;
      p.queues = queues;
      p.queue_cap = a.queue_cap;
      p.cand_cap = a.cand_cap;
      p.k = a.k;
      p.skip = a.skip;
      p.query_norms = a.query_norms != nullptr ? a.query_norms + q0 : nullptr;
      p.base_norms = m.norms;
      const size_t warps = qn * segments;
      const size_t blocks = (warps + warps_per_block - 1) / warps_per_block;
      TileSelectKernel<<<static_cast<unsigned>(blocks), static_cast<unsigned>(warps_per_block * 32),
                         select_smem, select_stream>>>(p);
      ROSETTA_GPU_LAUNCHED("TileSelectKernel launch");
      ROSETTA_GPU_CUDA(cudaEventRecord(ctx->select_done[buf], select_stream), "cudaEventRecord");
      selected_before[buf] = true;
    }
    ROSETTA_GPU_RETURN_IF_ERROR(LaunchMerge(queues, qn, segments, a.queue_cap, a.k,
                                            a.final_queues + q0 * a.queue_cap, a.queue_cap, a.k,
                                            m.smem_optin, &ctx->merge_scratch, select_stream));
  }
  if (a.stats != nullptr) {
    a.stats->passes = (a.nq + query_block - 1) / query_block;
    a.stats->tiles = tile_index;
  }
  // The caller downloads the result on stream 0.
  ROSETTA_GPU_CUDA(cudaEventRecord(ctx->done, select_stream), "cudaEventRecord");
  ROSETTA_GPU_CUDA(cudaStreamWaitEvent(gemm_stream, ctx->done, 0), "cudaStreamWaitEvent");
  return Error{};
}

}  // namespace rosetta::kernels::gpu
