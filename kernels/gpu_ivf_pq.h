// IVF-PQ search on a CUDA GPU (issue 6, kernel 4): a device copy of a trained and filled
// kernels::IvfPqIndex (kernels/ivf_pq.h), searched in batches. Usable from any code: this header
// includes no CUDA header, and the library links whether or not the build compiled the CUDA kernels
// (kernels/gpu_ivf_pq_cuda.cc with kernels/cuda/ivf_pq.cu when nvcc was found;
// kernels/gpu_ivf_pq_nocuda.cc otherwise, whose functions all return Unavailable).
//
// What a search computes (the CPU index is the reference; same conventions as IvfPqIndex::Search):
//   - coarse probe: the nprobe lists whose centroids score best (L2: smallest ||q - c||^2, ranked
//     by 2<q, c> - ||c||^2; inner product: largest <q, c>), ties by smaller list number; the
//     scores come from a true-fp32 cuBLAS GEMM, so a list tied with the nprobe-th within float
//     rounding may be chosen differently from the CPU's FlatSearch;
//   - PQ scores (asymmetric distance) of every stored code of those lists:
//       L2: one table per (query, probed list), T[j][i] = ||(q - c_l)_j - y_j(i)||^2, score =
//           -sum_j T[j][code_j] (= -||q - c_l - y||^2, the CPU's value up to float rounding: the
//           CPU reaches it through precomputed per-code terms);
//       IP: one table per query, T[j][i] = <q_j, y_j(i)>, score = <q, c_l> + sum_j T[j][code_j].
//     4-bit indexes are unpacked to one byte per code at upload and scored with float tables,
//     whereas the CPU's fast-scan quantises its tables to 8 bits: 4-bit GPU scores are the exact
//     ADC values, the CPU's are within its quantisation error of them, so near-ties may order
//     differently (recall is at least as good);
//   - selection: per query the `k` best (score descending, caller id ascending), exact over the
//     scores as computed; NaN scores (non-finite queries) are never returned;
//   - optional exact re-ranking (params.refine > 0, needs refine vectors at upload): the
//     max(refine, k) best PQ candidates are re-scored exactly against the raw vectors (FlatSearch
//     convention: IP <q, x>, L2 -||q - x||^2, fp32) and the k best of those are returned with
//     their exact scores.
// Result: per query min(k, eligible candidates) entries, best first, ids being caller ids.
//
// Limits (InvalidArgument when exceeded): k and the candidate count max(refine, k) in
// [1, kGpuMaxK]; nprobe either <= kGpuMaxK or >= nlist (every list); caller ids below 2^31 - 1
// (ids are int32 on the device); the index trained (d > 0).
//
// Threading: a GpuIvfPqIndex is immutable after Upload; Search may be called concurrently from
// any number of threads (each call takes a search context, with its own CUDA stream, cuBLAS handle
// and scratch, from the index's pool, creating one when all are in use). Calls block until the
// results are on the host. The calling thread's current CUDA device is restored on return.
//
// Memory: the index holds the centroids (nlist x d floats), the codebooks, the list offsets
// (8 bytes per list), the codes (round_up(m, 16) bytes per vector: codes are padded to 16-byte
// rows, and 4-bit codes take a byte per sub-quantizer), the ids (4 bytes per vector) and, when
// given, the refine vectors (rows x d floats). A search context's scratch grows on demand within
// about GpuIvfPqSearchParams::scratch_bytes (queries are processed in blocks that fit it).
//
// Errors: CUDA / cuBLAS failures become a Status (Internal, naming the call; ResourceExhausted for
// device memory); nothing aborts or throws.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernels/flat_search.h"
#include "kernels/gpu_search.h"
#include "kernels/ivf_pq.h"
#include "kernels/topk.h"

namespace rosetta::kernels {

struct GpuIvfPqOptions {
  // CUDA device ordinal.
  int device = 0;
  // Optional raw vectors for exact re-ranking: refine_rows x index.d() row-major floats, row i
  // being the vector of caller id i. Every id stored in the index must be < refine_rows. Copied to
  // the device (fp32) at upload; null = no re-ranking (GpuIvfPqSearchParams::refine must be 0).
  const float* refine_vectors = nullptr;
  size_t refine_rows = 0;
};

// What one search did (optional output).
struct GpuIvfPqStats {
  // Device time of the whole search on its stream (CUDA events): query uploads, kernels and
  // result downloads of every query block; excludes context acquisition and host conversion.
  double device_ms = 0;
  size_t query_blocks = 0;  // query blocks the batch was split into (scratch bound)
  bool shared_lut = false;  // lookup tables in shared memory (else read from global memory)
  size_t nprobe = 0;        // lists probed per query (after defaults and clamping)
};

struct GpuIvfPqSearchParams {
  // Results per query: 1..kGpuMaxK.
  size_t k = 10;
  // Lists probed per query; 0 = DefaultNprobe(nlist); values >= nlist probe every list. Between
  // kGpuMaxK and nlist: InvalidArgument.
  size_t nprobe = 0;
  // 0: return the k best PQ candidates with their approximate scores (IvfPqIndex::Search's
  // contract). > 0: re-rank the max(refine, k) best PQ candidates exactly (needs refine vectors)
  // and return the k best with exact scores. max(refine, k) <= kGpuMaxK.
  size_t refine = 0;
  // Optional: bit id of skip[id / 64] set = caller id `id` is excluded (IvfPqSearchParams::skip's
  // convention); ids beyond the bitmap are not excluded.
  std::span<const uint64_t> skip = {};
  // Scratch bound per call (bytes); 0 = kGpuDefaultScratchBytes.
  size_t scratch_bytes = 0;
  // Optional: filled when the search succeeds.
  GpuIvfPqStats* stats = nullptr;
};

class GpuIvfPqIndex {
 public:
  // Copies a trained index (its lists as they are now; later Adds to `index` are not seen) to the
  // device. Errors: InvalidArgument (untrained index, an id >= 2^31 - 1, refine vectors too few
  // for the largest id or null with rows > 0, bad device ordinal), Unavailable (no CUDA build or
  // device), ResourceExhausted (device or host memory), Internal (other CUDA failures).
  static absl::StatusOr<std::unique_ptr<GpuIvfPqIndex>> Upload(const IvfPqIndex& index,
                                                              const GpuIvfPqOptions& options = {});
  ~GpuIvfPqIndex();
  GpuIvfPqIndex(const GpuIvfPqIndex&) = delete;
  GpuIvfPqIndex& operator=(const GpuIvfPqIndex&) = delete;

  // For each of the nq row-major queries (d floats each), the best candidates (see the top of
  // this file). nq may be 0. Errors: InvalidArgument (d mismatch, k / refine / nprobe outside the
  // limits, refine without refine vectors, null queries with nq > 0), ResourceExhausted,
  // Internal.
  absl::StatusOr<std::vector<std::vector<Scored>>> Search(const float* queries, size_t nq,
                                                          size_t d,
                                                          const GpuIvfPqSearchParams& params) const;

  size_t size() const;
  size_t d() const;
  size_t nlist() const;
  size_t m() const;
  size_t nbits() const;
  FlatMetric metric() const;
  int device() const;
  bool has_refine_vectors() const;
  // Device bytes held by the index itself (excluding search contexts).
  size_t device_bytes() const;

  struct Impl;

 private:
  explicit GpuIvfPqIndex(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rosetta::kernels
