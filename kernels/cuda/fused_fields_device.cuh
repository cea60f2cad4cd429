// The device field set of fused scoring (kernels/gpu_fused.h), shared by the kernels that read it:
// kernels/cuda/fused_fields.cu (creation, the fused top-k) and kernels/cuda/rank_counts.cu (the
// per-field rank counts). CUDA code: included by .cu files only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/cuda/fused_fields_backend.cuh"
#include "kernels/cuda/fused_fields_math.cuh"
#include "kernels/cuda/search_internal.cuh"

namespace rosetta::kernels::gpu {

struct FieldDevice {
  size_t dim = 0, dp = 0;
  DeviceBuffer data;     // rows x dp floats, zero-padded
  DeviceBuffer present;  // words, empty = every row
  DeviceBuffer weights;  // rows floats, empty = 1
};

struct FieldSetDevice {
  int device = 0;
  size_t rows = 0;
  std::vector<std::unique_ptr<FieldDevice>> fields;
  size_t bytes = 0;
  int multiprocessors = 0;
  size_t smem_optin = 0;

  ~FieldSetDevice() {
    DeviceGuard guard;
    guard.Set(device);
    fields.clear();
  }
};

// Whether row r has a field (bit r of its presence bitmap; null = every row).
__device__ inline bool FieldHas(const uint64_t* bits, size_t r) {
  return bits == nullptr || ((bits[r >> 6] >> (r & 63)) & 1u) != 0;
}

// A call's own stream (and timing events), synchronised and destroyed on every return.
struct FieldStreamOwner {
  cudaStream_t stream = nullptr;
  cudaEvent_t timing[2] = {nullptr, nullptr};
  ~FieldStreamOwner() {
    for (cudaEvent_t e : timing) {
      if (e != nullptr) cudaEventDestroy(e);
    }
    if (stream != nullptr) {
      cudaStreamSynchronize(stream);
      cudaStreamDestroy(stream);
    }
  }
};

// The raw scores of one row for up to NQ queries (the first nq of them): acc[q] = the fp32
// FusedRawStep chain over the row's dp floats (dp a multiple of 4, zero-padded), in element order.
// `qbase` holds the queries, q_stride float4s apart. Shared by the fused search and the rank
// counts, so both score a row with the same instructions.
template <int NQ>
__device__ __forceinline__ void RowRawScores(const float4* row, const float4* qbase,
                                             size_t q_stride, uint32_t dp, int nq, bool l2,
                                             float (&acc)[NQ]) {
#pragma unroll
  for (int q = 0; q < NQ; ++q) acc[q] = 0.f;
  for (uint32_t c = 0; c < dp / 4; ++c) {
    const float4 v = row[c];
#pragma unroll
    for (int q = 0; q < NQ; ++q) {
      if (q < nq) {
        const float4 x = __ldg(qbase + q * q_stride + c);
        float a = acc[q];
        a = FusedRawStep(l2, x.x, v.x, a);
        a = FusedRawStep(l2, x.y, v.y, a);
        a = FusedRawStep(l2, x.z, v.z, a);
        a = FusedRawStep(l2, x.w, v.w, a);
        acc[q] = a;
      }
    }
  }
}

}  // namespace rosetta::kernels::gpu
