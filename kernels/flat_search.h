// Exact (brute-force) batched k-nearest-neighbour search over one contiguous set of vectors.
//
// Tiles queries x base so that the full nq x nb score matrix is never materialised: each worker
// scores a tile into a small scratch buffer with the blocked inner-product kernel and feeds the
// per-query top-k selectors; the selectors of the workers are merged at the end.
//
// Scores follow rosetta::Metric: kIp/kCosine score = <q, b>; kL2 score = -||q - b||^2, computed
// as 2<q,b> - ||b||^2 - ||q||^2 from precomputed base norms (exact for integer-valued data such
// as SIFT, whose partial sums stay below 2^24).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "kernels/simd.h"
#include "kernels/topk.h"

namespace rosetta::kernels {

class ThreadPool;

enum class FlatMetric { kInnerProduct, kL2 };

struct FlatSearchParams {
  size_t k = 10;
  FlatMetric metric = FlatMetric::kInnerProduct;
  // Worker pool; nullptr = run on the calling thread only.
  ThreadPool* pool = nullptr;
  // Kernels to use; nullptr = ActiveKernels().
  const KernelTable* kernels = nullptr;
  // Optional: bit i of skip[i / 64] set = base vector i is excluded (deleted or filtered out).
  // Base vectors beyond the bitmap (i / 64 >= skip.size()) are not excluded.
  std::span<const uint64_t> skip = {};
  // Optional: squared norms of the base vectors (kL2 only), as SquaredNorms computes them. Used
  // only when it has exactly nb entries; otherwise the norms are computed on the fly, block by
  // block (an extra pass over each base block while it is in cache).
  std::span<const float> base_sqnorms = {};
};

// For each of the nq queries (row-major, nq x d), the k best base vectors (row-major, nb x d),
// best first, ids being base row indices. Result: nq vectors of min(k, non-excluded base vectors)
// entries each (empty when k, nb or d is 0). kL2 scores are clamped to <= 0 (rounding could
// otherwise make a near-duplicate score slightly above 0).
//
// Exact and deterministic: the result does not depend on the pool or its thread count (selection
// is exact and ties are broken by id). Work is split over blocks of base vectors first (the only
// parallelism at batch 1), and over groups of queries when there are few blocks. Memory beyond
// the result: the packed queries (~nq x d floats) plus per thread a 64 x block score tile and
// nq x k candidates.
std::vector<std::vector<Scored>> FlatSearch(const float* queries, size_t nq, const float* base,
                                            size_t nb, size_t d, const FlatSearchParams& params);

// Squared L2 norms of n row-major vectors.
void SquaredNorms(const float* vectors, size_t n, size_t d, float* out,
                  const KernelTable* kernels = nullptr);

}  // namespace rosetta::kernels
