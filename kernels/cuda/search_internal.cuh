// Internals shared by the CUDA translation units of the GPU search: error conversion, device
// buffers, the matrix and search-context structures, the warp-level streaming selection, and the
// launchers of each path.
#pragma once

#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "kernels/cuda/gpu_backend.h"
#include "kernels/cuda/select_network.h"

namespace rosetta::kernels::gpu {

// --- Errors ---

// A CUDA runtime error as an Error naming `what`: allocation failures are kResourceExhausted, a
// missing device or driver kUnavailable, a bad device ordinal kInvalidArgument, anything else
// kInternal. Clears the thread's last (non-sticky) error so that later launch checks do not see it.
Error CudaError(cudaError_t e, const char* what);
Error CublasError(cublasStatus_t s, const char* what);

#define ROSETTA_GPU_CUDA(call, what)                                          \
  do {                                                                        \
    const cudaError_t rosetta_gpu_e_ = (call);                                \
    if (rosetta_gpu_e_ != cudaSuccess) {                                      \
      return ::rosetta::kernels::gpu::CudaError(rosetta_gpu_e_, what);        \
    }                                                                         \
  } while (0)
#define ROSETTA_GPU_CUBLAS(call, what)                                        \
  do {                                                                        \
    const cublasStatus_t rosetta_gpu_s_ = (call);                             \
    if (rosetta_gpu_s_ != CUBLAS_STATUS_SUCCESS) {                            \
      return ::rosetta::kernels::gpu::CublasError(rosetta_gpu_s_, what);      \
    }                                                                         \
  } while (0)
#define ROSETTA_GPU_RETURN_IF_ERROR(expr)                       \
  do {                                                          \
    ::rosetta::kernels::gpu::Error rosetta_gpu_err_ = (expr);   \
    if (!rosetta_gpu_err_.ok()) return rosetta_gpu_err_;        \
  } while (0)
// After a kernel launch: launch-configuration errors (and earlier sticky faults).
#define ROSETTA_GPU_LAUNCHED(what) ROSETTA_GPU_CUDA(cudaGetLastError(), what)

// Makes `device` current for the scope and restores the previous device afterwards.
class DeviceGuard {
 public:
  DeviceGuard() = default;
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;
  Error Set(int device);

 private:
  int previous_ = -1;
};

// --- Buffers ---

// A device allocation that only grows (contents are not preserved when it does).
struct DeviceBuffer {
  void* ptr = nullptr;
  size_t capacity = 0;

  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { Free(); }

  // Ensures at least `bytes`; a new allocation is zero-filled (so that reads of padding never see
  // uninitialised memory).
  Error Reserve(size_t bytes, const char* what);
  void Free();
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr);
  }
};

// --- Matrix and contexts ---

struct SearchContext {
  cudaStream_t stream[2] = {nullptr, nullptr};
  cudaEvent_t gemm_done[2] = {nullptr, nullptr};
  cudaEvent_t select_done[2] = {nullptr, nullptr};
  cudaEvent_t done = nullptr;
  cudaEvent_t timing[2] = {nullptr, nullptr};  // stats: search start / result ready
  cublasHandle_t cublas = nullptr;
  DeviceBuffer raw_queries;     // nq x d fp32 as uploaded
  DeviceBuffer packed_queries;  // rows x dp, storage type, zero-padded
  DeviceBuffer query_norms;     // rows floats
  DeviceBuffer skip;            // ceil(n / 64) words
  DeviceBuffer tiles;           // tiled path: 2 score tiles
  DeviceBuffer queues;          // per (query, segment/block) queues
  DeviceBuffer final_queues;    // nq x queue_cap
  DeviceBuffer merge_scratch;   // first level of two-level merges

  ~SearchContext();
};

Error CreateSearchContext(SearchContext** out);

struct DeviceMatrix {
  int device = 0;
  size_t n = 0;   // rows
  size_t d = 0;   // dimension
  size_t dp = 0;  // padded dimension (row stride in elements)
  bool fp16 = false;
  void* data = nullptr;     // n x dp elements
  float* norms = nullptr;   // n squared norms of the stored rows
  size_t bytes = 0;
  int multiprocessors = 0;
  size_t smem_optin = 0;    // max dynamic shared memory per block

  std::mutex mu;
  std::vector<SearchContext*> idle_contexts;  // guarded by mu

  ~DeviceMatrix();
};

// The padded dimension for a storage: rows of 64 bytes' multiples.
inline size_t PaddedDim(size_t d, bool fp16) {
  const size_t unit = fp16 ? 32 : 16;
  return (d + unit - 1) / unit * unit;
}

// --- Warp-level streaming selection (policy: select_network.h) ---

constexpr unsigned kFullMask = 0xffffffffu;

struct WarpExec {
  uint32_t lane;
  __device__ uint32_t first() const { return lane; }
  __device__ uint32_t step() const { return 32; }
  __device__ void sync() const { __syncwarp(); }
};

// One stream's state; queue and cand live in shared memory; count and threshold are
// warp-uniform registers.
struct WarpStream {
  SelEntry* queue;
  SelEntry* cand;
  uint32_t queue_cap;
  uint32_t cand_cap;
  uint32_t k;
  uint32_t count;
  float threshold;
};

__device__ inline void WarpFlush(WarpStream& w, const WarpExec& ex) {
  if (w.count == 0) return;
  MergeCandidates(w.queue, w.queue_cap, w.cand, w.count, ex);
  w.count = 0;
  w.threshold = w.queue[w.k - 1].score;
}

__device__ inline bool Skipped(const uint64_t* skip, int32_t id) {
  return skip != nullptr && ((skip[id >> 6] >> (id & 63)) & 1u);
}

// Offers one chunk: up to 4 entries per lane (kScanChunk per warp). Must be called by all 32
// lanes. `skip` (may be null) is consulted only for entries that pass the threshold.
__device__ inline void WarpOfferChunk(WarpStream& w, const float (&score)[4], const int32_t (&id)[4],
                                      const bool (&valid)[4], const uint64_t* skip,
                                      const WarpExec& ex) {
  if (NeedsFlush(w.count, w.cand_cap)) WarpFlush(w, ex);
  bool pass[4];
  bool any = false;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    pass[i] = valid[i] && PassesThreshold(score[i], id[i], w.threshold) && !Skipped(skip, id[i]);
    any |= pass[i];
  }
  if (!__any_sync(kFullMask, any)) return;
  const unsigned lower = (1u << ex.lane) - 1u;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const unsigned ballot = __ballot_sync(kFullMask, pass[i]);
    if (pass[i]) w.cand[w.count + __popc(ballot & lower)] = SelEntry{score[i], id[i]};
    w.count += __popc(ballot);
  }
}

// Loads a queue from global memory into shared memory and starts a stream on it.
__device__ inline WarpStream WarpStreamFrom(const SelEntry* global_queue, SelEntry* smem,
                                            uint32_t queue_cap, uint32_t cand_cap, uint32_t k,
                                            const WarpExec& ex) {
  for (uint32_t t = ex.first(); t < queue_cap; t += ex.step()) {
    smem[t] = global_queue != nullptr ? global_queue[t] : SentinelEntry();
  }
  ex.sync();
  return WarpStream{smem, smem + queue_cap, queue_cap, cand_cap, k, 0, smem[k - 1].score};
}

__device__ inline void WarpStoreQueue(const WarpStream& w, SelEntry* global_queue,
                                      const WarpExec& ex) {
  for (uint32_t t = ex.first(); t < w.queue_cap; t += ex.step()) global_queue[t] = w.queue[t];
}

// --- Launchers ---

// Fills `count` entries with sentinels.
Error LaunchFillSentinels(SelEntry* out, size_t count, cudaStream_t stream);

// Packs `rows` fp32 rows of d floats into rows_out rows of dp elements (zero-padded rows and
// columns), converting to fp16 when `fp16`, and writes the squared norms of the stored values.
Error LaunchPackRows(const float* src, size_t rows, size_t d, size_t dp, size_t rows_out, bool fp16,
                     void* dst, float* norms, cudaStream_t stream);

// Merges, per query, the first `take` entries of `parts` queues (in[(q * parts + p) * in_cap]) into
// out[q * queue_cap] (sorted best first, sentinel-padded). Large merges go through `scratch`.
Error LaunchMerge(const SelEntry* in, size_t nq, size_t parts, uint32_t in_cap, uint32_t take,
                  SelEntry* out, uint32_t queue_cap, uint32_t k, size_t smem_optin,
                  DeviceBuffer* scratch, cudaStream_t stream);

struct PathArgs {
  const DeviceMatrix* m;
  SearchContext* ctx;
  size_t nq;
  size_t query_rows;            // rows of ctx->packed_queries
  uint32_t k, queue_cap, cand_cap;
  const float* query_norms;     // null = inner product
  const uint64_t* skip;         // device bitmap or null
  SelEntry* final_queues;       // nq x queue_cap
  SearchStats* stats;           // passes / tiles (may be null)
};

// Shared memory of the fused kernel for a pass of `nq` queries.
size_t FusedSharedBytes(const DeviceMatrix& m, size_t nq, uint32_t queue_cap, uint32_t cand_cap);
// The largest number of queries one fused pass can take (<= 16; 0 if none fits).
size_t FusedMaxQueriesPerPass(const DeviceMatrix& m, uint32_t queue_cap, uint32_t cand_cap);

// The fused path, on ctx->stream[0].
Error RunFused(const PathArgs& a);
// The tiled path; its result is ready on ctx->stream[0] when it returns (ordered by an event).
Error RunTiled(const PathArgs& a, size_t scratch_bytes, size_t tile_rows);

}  // namespace rosetta::kernels::gpu
