// The interface between the public fused-scoring API (kernels/gpu_fused.h, implemented in
// kernels/gpu_fused_cuda.cc) and its CUDA code (kernels/cuda/fused_fields.cu). Despite the suffix
// this header is plain C++17 with no CUDA and no Abseil header: the C++20 side includes it too.
// Arguments are validated by the caller.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/gpu_backend.h"
#include "kernels/cuda/select_network.h"

namespace rosetta::kernels::gpu {

struct FieldSetDevice;  // defined in kernels/cuda/fused_fields.cu

struct FieldHostData {
  const float* vectors = nullptr;        // rows x dim
  size_t dim = 0;
  const uint64_t* present = nullptr;     // >= ceil(rows / 64) words, or null (every row)
  const float* record_weights = nullptr; // rows, or null (1)
};

Error CreateFieldSetDevice(size_t rows, const FieldHostData* fields, size_t count, int device,
                           FieldSetDevice** out);
void DestroyFieldSetDevice(FieldSetDevice* set);
size_t FieldSetDeviceBytes(const FieldSetDevice* set);

struct FusedTermRequest {
  size_t field = 0;
  bool l2 = false;
  double weight = 1;
  const float* queries = nullptr;  // nq x dim(field), host
  const double* scale = nullptr;   // nq or null (1)
  const double* offset = nullptr;  // nq or null (0)
};

struct FusedRequest {
  size_t nq = 0;
  uint32_t k = 10;
  const FusedTermRequest* terms = nullptr;
  size_t term_count = 0;
  int missing = 0;  // FusedMissingCode (fused_fields_math.cuh)
  const uint64_t* skip = nullptr;  // host bitmap (may be null)
  size_t skip_words = 0;
  bool want_stats = false;
};

struct FusedStats {
  double device_ms = 0;
  size_t passes = 0;
};

// Writes nq x k entries to `out` (host), best first, sentinel-padded.
Error FusedSearch(FieldSetDevice* set, const FusedRequest& request, SelEntry* out,
                  FusedStats* stats);

// Per-field rank counts (GpuRankCounts; kernels/cuda/rank_counts.cu). The host has prepared the
// thresholds (internal::PrepareRankBins): per query `width` distinct values ascending, padded with
// +infinity.
struct RankCountRequest {
  size_t field = 0;
  bool l2 = false;
  size_t nq = 0;
  const float* queries = nullptr;  // nq x dim(field), host
  const float* sorted = nullptr;   // nq x width, host
  uint32_t width = 0;              // 1..1024
  const uint64_t* skip = nullptr;  // host bitmap (may be null)
  size_t skip_words = 0;
};

// Writes `counters` (host, nq x (2 x width + 1)) per query: at [b] (b > 0) the number of
// counted rows whose raw score s has below(s) = b (RankBinBelow), at [width + 1 + b] those
// whose s equals sorted[b]; [0] stays 0 (it feeds no count). Rows lacking the field, skipped rows
// and NaN scores are not counted.
Error RankCounts(FieldSetDevice* set, const RankCountRequest& request, uint64_t* counters);

}  // namespace rosetta::kernels::gpu
