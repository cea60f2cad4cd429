// The device field set of fused scoring (kernels/gpu_fused.h), shared by the kernels that read it:
// kernels/cuda/fused_fields.cu (creation, the fused top-k) and kernels/cuda/rank_counts.cu (the
// per-field rank counts). CUDA code: included by .cu files only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/cuda/fused_fields_backend.cuh"
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

}  // namespace rosetta::kernels::gpu
