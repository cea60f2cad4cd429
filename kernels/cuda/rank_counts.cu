// Per-field rank counts on the GPU (GpuRankCounts, kernels/gpu_fused.h): for each query and each of
// its thresholds, the rows of one field of a device field set whose raw score is above / equal.
//
// One pass over the rows per group of up to 8 queries (as many as shared memory holds). One
// thread per row (grid-stride loop): the thread reads its row once as float4 (rows are padded to 4
// floats with zeros, as are the uploaded queries) and runs FusedRawStep's fmaf chain for every
// query of the group, the fused kernel's arithmetic (fused_fields.cu), so the raw scores are those
// of FusedRawScore bit for bit. Each score is then binned against the query's distinct thresholds
// (sorted on the host, kept in shared memory) by RankBinBelow, the binary search the CPU reference
// runs too: shared-memory atomics on 32-bit bins (a block counts fewer than 2^31 rows). Bin 0
// (scores at or below every threshold, usually almost all rows) feeds no count and is never
// touched, so the common case costs no atomic at all. At the end each block adds its non-zero
// bins to the 64-bit global counters with atomicAdd; integer sums, so the counts do not depend on
// the order of the blocks.
#include <algorithm>
#include <vector>

#include "kernels/cuda/fused_fields_backend.cuh"
#include "kernels/cuda/fused_fields_device.cuh"
#include "kernels/cuda/fused_fields_math.cuh"
#include "kernels/cuda/search_internal.cuh"

namespace rosetta::kernels::gpu {
namespace {

constexpr int kRcThreads = 256;
constexpr int kRcMaxGroup = 8;

struct RcParams {
  const float* data;             // rows x dp
  const uint64_t* present;       // null = every row
  const float* queries;          // nq x dp (all queries of the call)
  const float* sorted;           // nq x width (all queries of the call)
  const uint64_t* skip;          // covers every row, or null
  unsigned long long* counters;  // nq x (2 width + 1) (all queries of the call)
  size_t rows;
  size_t q0;  // first query of the group
  int nq;     // queries in the group
  uint32_t dp;
  uint32_t width;
  uint32_t l2;
};

template <int NQ>
__global__ void __launch_bounds__(kRcThreads) RankCountsKernel(RcParams p) {
  extern __shared__ __align__(16) unsigned char rc_smem[];
  const uint32_t w = p.width;
  const uint32_t nb = 2 * w + 1;
  float* thresholds = reinterpret_cast<float*>(rc_smem);  // [nq][width]
  unsigned int* bins =
      reinterpret_cast<unsigned int*>(thresholds + size_t(p.nq) * w);  // [nq][nb]
  for (size_t i = threadIdx.x; i < size_t(p.nq) * w; i += kRcThreads) {
    thresholds[i] = p.sorted[p.q0 * w + i];
  }
  for (size_t i = threadIdx.x; i < size_t(p.nq) * nb; i += kRcThreads) bins[i] = 0;
  __syncthreads();

  const bool l2 = p.l2 != 0;
  const size_t q_stride = p.dp / 4;
  const float4* qbase = reinterpret_cast<const float4*>(p.queries + p.q0 * p.dp);
  const size_t stride = size_t(gridDim.x) * kRcThreads;
  for (size_t r = size_t(blockIdx.x) * kRcThreads + threadIdx.x; r < p.rows; r += stride) {
    if (!FieldHas(p.present, r) || Skipped(p.skip, static_cast<int32_t>(r))) continue;
    const float4* row = reinterpret_cast<const float4*>(p.data + r * p.dp);
    float acc[NQ];
    RowRawScores<NQ>(row, qbase, q_stride, p.dp, p.nq, l2, acc);
#pragma unroll
    for (int q = 0; q < NQ; ++q) {
      if (q >= p.nq) continue;
      const float s = l2 ? -acc[q] : acc[q];
      const float* t = thresholds + size_t(q) * w;
      if (!(s >= t[0])) continue;  // NaN, or below every threshold: bin 0, counted nowhere
      const uint32_t b = RankBinBelow(t, w, s);
      unsigned int* qb = bins + size_t(q) * nb;
      if (b > 0) atomicAdd(qb + b, 1u);
      if (b < w && t[b] == s) atomicAdd(qb + w + 1 + b, 1u);
    }
  }
  __syncthreads();
  unsigned long long* out = p.counters + p.q0 * nb;
  for (size_t i = threadIdx.x; i < size_t(p.nq) * nb; i += kRcThreads) {
    const unsigned int v = bins[i];
    if (v != 0) atomicAdd(out + i, static_cast<unsigned long long>(v));
  }
}

using RcFn = void (*)(RcParams);

int TemplateQueries(size_t nq) { return nq <= 1 ? 1 : nq <= 4 ? 4 : kRcMaxGroup; }

RcFn KernelFor(int nq_template) {
  return nq_template == 1   ? RankCountsKernel<1>
         : nq_template == 4 ? RankCountsKernel<4>
                            : RankCountsKernel<kRcMaxGroup>;
}

size_t SharedBytes(size_t nq, uint32_t width) {
  return nq * (size_t{width} * sizeof(float) + (2 * size_t{width} + 1) * sizeof(unsigned int));
}

}  // namespace

Error RankCounts(FieldSetDevice* set, const RankCountRequest& r, uint64_t* counters) {
  static_assert(sizeof(unsigned long long) == sizeof(uint64_t), "64-bit counters");
  const size_t nb = 2 * size_t{r.width} + 1;
  if (r.nq == 0) return Error{};
  if (set->rows == 0) {
    std::fill(counters, counters + r.nq * nb, uint64_t{0});
    return Error{};
  }
  if (r.field >= set->fields.size() || r.width == 0) {
    return Error{kInvalidArgument, "rank counts: bad field or threshold width"};
  }
  const FieldDevice& fd = *set->fields[r.field];
  DeviceGuard guard;
  ROSETTA_GPU_RETURN_IF_ERROR(guard.Set(set->device));
  // Declared before the stream owner, so that on every return the stream is synchronised (by
  // ~FieldStreamOwner) before these buffers are freed.
  DeviceBuffer queries, sorted, skip, counts;
  FieldStreamOwner so;
  ROSETTA_GPU_CUDA(cudaStreamCreateWithFlags(&so.stream, cudaStreamNonBlocking),
                   "cudaStreamCreateWithFlags");
  cudaStream_t s = so.stream;

  // Fresh buffers are zero-filled (Reserve): the query padding and the counters start at 0.
  ROSETTA_GPU_RETURN_IF_ERROR(
      queries.Reserve(r.nq * fd.dp * sizeof(float), "cudaMalloc(rank count queries)"));
  ROSETTA_GPU_CUDA(cudaMemcpy2DAsync(queries.ptr, fd.dp * sizeof(float), r.queries,
                                     fd.dim * sizeof(float), fd.dim * sizeof(float), r.nq,
                                     cudaMemcpyHostToDevice, s),
                   "cudaMemcpy2DAsync(rank count queries)");
  ROSETTA_GPU_RETURN_IF_ERROR(
      sorted.Reserve(r.nq * r.width * sizeof(float), "cudaMalloc(rank thresholds)"));
  ROSETTA_GPU_CUDA(cudaMemcpyAsync(sorted.ptr, r.sorted, r.nq * r.width * sizeof(float),
                                   cudaMemcpyHostToDevice, s),
                   "cudaMemcpyAsync(rank thresholds)");
  const uint64_t* skip_dev = nullptr;
  if (r.skip != nullptr && r.skip_words > 0) {
    const size_t words = (set->rows + 63) / 64;
    const size_t given = std::min(words, r.skip_words);
    ROSETTA_GPU_RETURN_IF_ERROR(skip.Reserve(words * 8, "cudaMalloc(skip bitmap)"));
    ROSETTA_GPU_CUDA(cudaMemcpyAsync(skip.ptr, r.skip, given * 8, cudaMemcpyHostToDevice, s),
                     "cudaMemcpyAsync(skip bitmap)");
    skip_dev = skip.as<uint64_t>();  // words past `given` stay zero (fresh, zero-filled buffer)
  }
  ROSETTA_GPU_RETURN_IF_ERROR(
      counts.Reserve(r.nq * nb * sizeof(uint64_t), "cudaMalloc(rank bins)"));

  size_t per_pass = 0;
  for (size_t nq = 1; nq <= kRcMaxGroup; ++nq) {
    if (SharedBytes(nq, r.width) <= set->smem_optin) per_pass = nq;
  }
  if (per_pass == 0) {
    return Error{kResourceExhausted, "rank counts: one query's thresholds and bins do not fit "
                                     "shared memory"};
  }
  for (size_t q0 = 0; q0 < r.nq; q0 += per_pass) {
    const size_t nq = std::min(per_pass, r.nq - q0);
    const RcFn kernel = KernelFor(TemplateQueries(nq));
    const size_t smem = SharedBytes(nq, r.width);
    ROSETTA_GPU_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          static_cast<int>(smem)),
                     "cudaFuncSetAttribute(RankCountsKernel)");
    int per_sm = 0;
    ROSETTA_GPU_CUDA(
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kRcThreads, smem),
        "cudaOccupancyMaxActiveBlocksPerMultiprocessor(RankCountsKernel)");
    per_sm = std::max(per_sm, 1);
    const size_t stripes = (set->rows + kRcThreads - 1) / kRcThreads;
    const size_t blocks = std::max<size_t>(
        1, std::min(stripes, size_t(per_sm) * std::max(set->multiprocessors, 1)));
    RcParams p;
    p.data = fd.data.as<float>();
    p.present = fd.present.ptr != nullptr ? fd.present.as<uint64_t>() : nullptr;
    p.queries = queries.as<float>();
    p.sorted = sorted.as<float>();
    p.skip = skip_dev;
    p.counters = counts.as<unsigned long long>();
    p.rows = set->rows;
    p.q0 = q0;
    p.nq = static_cast<int>(nq);
    p.dp = static_cast<uint32_t>(fd.dp);
    p.width = r.width;
    p.l2 = r.l2 ? 1u : 0u;
    kernel<<<static_cast<unsigned>(blocks), kRcThreads, smem, s>>>(p);
    ROSETTA_GPU_LAUNCHED("RankCountsKernel launch");
  }
  ROSETTA_GPU_CUDA(cudaMemcpyAsync(counters, counts.ptr, r.nq * nb * sizeof(uint64_t),
                                   cudaMemcpyDeviceToHost, s),
                   "cudaMemcpyAsync(rank counts)");
  ROSETTA_GPU_CUDA(cudaStreamSynchronize(s), "rank counts (cudaStreamSynchronize)");
  return Error{};
}

}  // namespace rosetta::kernels::gpu
