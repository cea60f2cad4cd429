// The interface between the public GPU search API (kernels/gpu_search.h, C++20, implemented in
// kernels/gpu_search_cuda.cc) and the CUDA code (kernels/cuda/*.cu, compiled as C++17 by nvcc).
// Plain C++17 with no CUDA and no Abseil header: errors travel as gpu::Error (absl status code
// numbers plus a message) and are turned into absl::Status on the C++20 side. Arguments are
// validated by the caller (gpu_search_cuda.cc); these functions assume valid sizes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "kernels/cuda/select_network.h"

namespace rosetta::kernels::gpu {

// Status codes (the numbers of absl::StatusCode).
enum ErrorCode : int {
  kOk = 0,
  kInvalidArgument = 3,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kInternal = 13,
  kUnavailable = 14,
};

struct Error {
  int code = kOk;
  std::string message;
  bool ok() const { return code == kOk; }
};

struct DeviceMatrix;  // defined in kernels/cuda/search_internal.cuh

// Uploads n x d row-major floats (n may be 0) as fp32 or fp16 rows padded to 64 bytes, with
// squared norms of the stored values.
Error CreateDeviceMatrix(const float* vectors, size_t n, size_t d, bool fp16, int device,
                         DeviceMatrix** out);
void DestroyDeviceMatrix(DeviceMatrix* m);
size_t DeviceMatrixBytes(const DeviceMatrix* m);

enum class PathChoice : int { kAuto = 0, kFused = 1, kTiled = 2 };

struct SearchRequest {
  const float* queries = nullptr;  // nq x d host floats
  size_t nq = 0;
  uint32_t k = 10;  // 1..kMaxQueue
  bool l2 = false;
  const uint64_t* skip = nullptr;  // host bitmap (may be null)
  size_t skip_words = 0;
  PathChoice path = PathChoice::kAuto;
  size_t fused_max_batch = 16;
  size_t scratch_bytes = 64u << 20;
  size_t tile_rows = 0;
  bool want_stats = false;
};

struct SearchStats {
  bool fused = false;
  double device_ms = 0;
  size_t passes = 0;
  size_t tiles = 0;
};

// Writes nq x k entries to `out` (host): per query the k best, best first, padded with
// sentinel entries (id == kSentinelId) when fewer rows are eligible.
// `stats` (may be null) is filled when request.want_stats.
Error Search(DeviceMatrix* m, const SearchRequest& request, SelEntry* out, SearchStats* stats);

struct DeviceInfo {
  std::string name;
  int compute_major = 0, compute_minor = 0, multiprocessors = 0;
  size_t total_bytes = 0, free_bytes = 0, shared_bytes_per_block = 0, l2_bytes = 0;
  int driver_version = 0, runtime_version = 0;
};
Error QueryDeviceInfo(int device, DeviceInfo* out);

Error TimeDeviceCopy(int device, size_t bytes, int reps, double* seconds);
Error TimeGemmOnly(DeviceMatrix* m, size_t nq, int reps, double* seconds);

}  // namespace rosetta::kernels::gpu
