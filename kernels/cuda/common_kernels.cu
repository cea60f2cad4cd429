// Small kernels shared by both search paths and the upload: sentinel fill, row packing
// (conversion, padding, norms) and the merge of per-block / per-segment queues.
#include <algorithm>

#include "kernels/cuda/search_internal.cuh"

namespace rosetta::kernels::gpu {
namespace {

__global__ void FillSentinelsKernel(SelEntry* out, size_t count) {
  for (size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x; i < count;
       i += size_t{gridDim.x} * blockDim.x) {
    out[i] = SentinelEntry();
  }
}

template <typename T>
__device__ inline T ConvertFromFloat(float v);
template <>
__device__ inline float ConvertFromFloat<float>(float v) {
  return v;
}
template <>
__device__ inline __half ConvertFromFloat<__half>(float v) {
  return __float2half_rn(v);
}
__device__ inline float ToFloat(float v) { return v; }
__device__ inline float ToFloat(__half v) { return __half2float(v); }

constexpr int kPackThreads = 256;
// Candidates per query up to which one warp merges them directly (beyond, two levels: the merge
// is latency-bound, one chunk of 128 per round trip, and sits on the batch-1 critical path).
constexpr size_t kDirectMergeEntries = 1024;

// One block per output row (grid-stride): converts, pads, and reduces the squared norm of the
// stored values.
template <typename T>
__global__ void __launch_bounds__(kPackThreads)
    PackRowsKernel(const float* src, size_t rows, size_t d, size_t dp, size_t rows_out, T* dst,
                   float* norms) {
  __shared__ float partial[kPackThreads / 32];
  for (size_t r = blockIdx.x; r < rows_out; r += gridDim.x) {
    float sum = 0.f;
    for (size_t c = threadIdx.x; c < dp; c += kPackThreads) {
      const float v = (r < rows && c < d) ? src[r * d + c] : 0.f;
      const T stored = ConvertFromFloat<T>(v);
      dst[r * dp + c] = stored;
      const float x = ToFloat(stored);
      sum = fmaf(x, x, sum);
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(kFullMask, sum, o);
    if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = sum;
    __syncthreads();
    if (threadIdx.x == 0) {
      float total = 0.f;
      for (int w = 0; w < kPackThreads / 32; ++w) total += partial[w];
      norms[r] = total;
    }
    __syncthreads();
  }
}

// One warp per virtual query v = q * groups + g: streams the first `take` entries of parts
// [g * parts_per_group, (g + 1) * parts_per_group) of query q's `parts` queues through a fresh
// queue, written to out[v * queue_cap].
__global__ void MergeKernel(const SelEntry* in, size_t virtual_queries, size_t parts,
                            size_t groups, size_t parts_per_group, uint32_t in_cap, uint32_t take,
                            SelEntry* out, uint32_t queue_cap, uint32_t cand_cap, uint32_t k) {
  extern __shared__ __align__(16) unsigned char merge_smem[];
  const uint32_t warp = threadIdx.x / 32;
  const WarpExec ex{threadIdx.x % 32};
  const size_t v = size_t{blockIdx.x} * (blockDim.x / 32) + warp;
  if (v >= virtual_queries) return;  // whole warp; the kernel has no block barrier
  const size_t q = v / groups;
  const size_t first_part = (v % groups) * parts_per_group;
  const size_t part_count = min(parts, first_part + parts_per_group) - first_part;
  SelEntry* smem = reinterpret_cast<SelEntry*>(merge_smem) + size_t{warp} * (queue_cap + cand_cap);
  WarpStream ws = WarpStreamFrom(nullptr, smem, queue_cap, cand_cap, k, ex);
  const SelEntry* src = in + (q * parts + first_part) * in_cap;
  const size_t total = part_count * take;
  for (size_t e0 = 0; e0 < total; e0 += kScanChunk) {
    float score[4];
    int32_t id[4];
    bool valid[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const size_t e = e0 + ex.lane * 4 + i;
      valid[i] = e < total;
      SelEntry entry = SentinelEntry();
      if (valid[i]) entry = src[(e / take) * in_cap + e % take];
      score[i] = entry.score;
      id[i] = entry.id;
    }
    WarpOfferChunk(ws, score, id, valid, nullptr, ex);
  }
  WarpFlush(ws, ex);
  WarpStoreQueue(ws, out + v * queue_cap, ex);
}

Error LaunchMergeLevel(const SelEntry* in, size_t nq, size_t parts, size_t groups,
                       size_t parts_per_group, uint32_t in_cap, uint32_t take, SelEntry* out,
                       uint32_t queue_cap, uint32_t k, size_t smem_optin, cudaStream_t stream) {
  const uint32_t cand_cap = CandCapacity(queue_cap);
  const size_t per_warp = size_t{queue_cap + cand_cap} * sizeof(SelEntry);
  const size_t warps = std::max<size_t>(1, std::min<size_t>(4, smem_optin / per_warp));
  const size_t smem = warps * per_warp;
  if (smem > 48 * 1024) {
    ROSETTA_GPU_CUDA(cudaFuncSetAttribute(MergeKernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          static_cast<int>(smem)),
                     "cudaFuncSetAttribute(MergeKernel)");
  }
  const size_t virtual_queries = nq * groups;
  const size_t blocks = (virtual_queries + warps - 1) / warps;
  MergeKernel<<<static_cast<unsigned>(blocks), static_cast<unsigned>(warps * 32), smem, stream>>>(
      in, virtual_queries, parts, groups, parts_per_group, in_cap, take, out, queue_cap, cand_cap,
      k);
  ROSETTA_GPU_LAUNCHED("MergeKernel launch");
  return Error{};
}

int GridFor(size_t items, int threads, int max_blocks = 65535) {
  const size_t blocks = (items + threads - 1) / threads;
  return static_cast<int>(std::max<size_t>(1, std::min<size_t>(blocks, max_blocks)));
}

}  // namespace

Error LaunchFillSentinels(SelEntry* out, size_t count, cudaStream_t stream) {
  if (count == 0) return Error{};
  FillSentinelsKernel<<<GridFor(count, 256, 4096), 256, 0, stream>>>(out, count);
  ROSETTA_GPU_LAUNCHED("FillSentinelsKernel launch");
  return Error{};
}

Error LaunchPackRows(const float* src, size_t rows, size_t d, size_t dp, size_t rows_out, bool fp16,
                     void* dst, float* norms, cudaStream_t stream) {
  if (rows_out == 0) return Error{};
  const int grid = static_cast<int>(std::min<size_t>(rows_out, 65535));
  if (fp16) {
    PackRowsKernel<__half><<<grid, kPackThreads, 0, stream>>>(src, rows, d, dp, rows_out,
                                                              static_cast<__half*>(dst), norms);
  } else {
    PackRowsKernel<float><<<grid, kPackThreads, 0, stream>>>(src, rows, d, dp, rows_out,
                                                             static_cast<float*>(dst), norms);
  }
  ROSETTA_GPU_LAUNCHED("PackRowsKernel launch");
  return Error{};
}

Error LaunchMerge(const SelEntry* in, size_t nq, size_t parts, uint32_t in_cap, uint32_t take,
                  SelEntry* out, uint32_t queue_cap, uint32_t k, size_t smem_optin,
                  DeviceBuffer* scratch, cudaStream_t stream) {
  if (nq == 0) return Error{};
  // One warp streams every candidate of a query when there are few; otherwise two levels of
  // about sqrt(parts) parts each, so that the latency of the merge stays small at batch 1.
  if (parts <= 2 || parts * take <= kDirectMergeEntries) {
    return LaunchMergeLevel(in, nq, parts, 1, parts, in_cap, take, out, queue_cap, k, smem_optin,
                            stream);
  }
  size_t per_group = 1;
  while (per_group * per_group < parts) ++per_group;
  const size_t groups = (parts + per_group - 1) / per_group;
  ROSETTA_GPU_RETURN_IF_ERROR(scratch->Reserve(nq * groups * queue_cap * sizeof(SelEntry),
                                               "cudaMalloc(merge scratch)"));
  SelEntry* middle = scratch->as<SelEntry>();
  ROSETTA_GPU_RETURN_IF_ERROR(LaunchMergeLevel(in, nq, parts, groups, per_group, in_cap, take,
                                               middle, queue_cap, k, smem_optin, stream));
  return LaunchMergeLevel(middle, nq, groups, 1, groups, queue_cap, k, out, queue_cap, k,
                          smem_optin, stream);
}

}  // namespace rosetta::kernels::gpu
