// k-means clustering (Lloyd iterations) for the IVF coarse quantizer and the PQ codebooks.
//
// Distances are squared L2. Assignment scores every training point against every centroid: with
// the blocked inner-product kernels (||x - c||^2 = ||x||^2 - 2<x, c> + ||c||^2) above 8
// dimensions, directly (sum of squared differences, vectorised over centroids) up to 8, where a
// GEMM has too little depth (PQ sub-spaces); ties go to the smaller centroid index. Centroid
// updates sum members in double precision, in point order.
//
// Determinism: for the same input, parameters (seed included) and SIMD level, the centroids are
// bit-identical whatever the pool and its thread count (points are scored in fixed-size chunks
// whose results do not depend on which thread runs them, and every reduction runs in a fixed
// order). Different SIMD levels may round differently and so may end in different local optima.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/simd.h"

namespace rosetta::kernels {

class ThreadPool;

enum class KMeansInit {
  // k distinct training points drawn uniformly at random (seeded). FAISS's default; O(k d).
  kRandom,
  // k-means++ (D^2 sampling, seeded): better starts, at the cost of k sequential passes over the
  // training points before the first iteration (the flops of one Lloyd iteration, without its
  // blocking): affordable for small k (PQ codebooks), slow for a large coarse quantizer.
  kKMeansPlusPlus,
};

struct KMeansParams {
  size_t k = 256;            // Number of centroids (>= 1).
  size_t iterations = 25;    // Lloyd iterations at most (stops early once no assignment changes).
  uint64_t seed = 1234;      // Seeds sampling, initialisation and empty-cluster splitting.
  KMeansInit init = KMeansInit::kRandom;
  // Training points are subsampled (seeded, uniformly without replacement) to at most
  // max_points_per_centroid * k; 0 = no cap (every point is used).
  size_t max_points_per_centroid = 256;
  // Kernels to use; nullptr = ActiveKernels().
  const KernelTable* kernels = nullptr;
};

struct KMeansResult {
  std::vector<float> centroids;    // k x d, row-major.
  // Objective (sum over the training points of the squared distance to their assigned centroid)
  // at each assignment step: objective[i] is measured with the centroids after i updates, so
  // objective[0] is that of the initial centroids. In exact arithmetic it never increases, except
  // possibly right after an empty cluster was split (see empty_cluster_splits).
  std::vector<double> objective;
  size_t iterations = 0;           // Lloyd updates performed (<= params.iterations).
  size_t training_points = 0;      // Points actually used after subsampling.
  size_t empty_cluster_splits = 0; // Times an empty cluster was re-seeded by splitting a big one.
};

// Clusters the n row-major d-dimensional points `x` into params.k centroids.
//
// Empty clusters (after an assignment step) are re-seeded by splitting a cluster chosen at random
// with probability proportional to (size - 1): the two centroids are moved apart by a small
// symmetric perturbation and share the members' count for the remaining splits of that step.
//
// Errors (InvalidArgument, with the numbers): d == 0, k == 0, n < k (k-means needs at least one
// point per centroid), a non-finite coordinate in the training points.
// Memory: the subsample (when n exceeds the cap: training_points x d floats), per-point
// assignments, and per thread one score tile of at most 128 x 512 floats.
// Threading: `pool` may be nullptr (calling thread only). Increments KMeansRunCount() once.
absl::StatusOr<KMeansResult> KMeans(const float* x, size_t n, size_t d,
                                    const KMeansParams& params, ThreadPool* pool);

// Number of KMeans calls in this process so far (successful or not). Thread-safe. The engine's
// reopen test uses it to prove that loading an index ran no training.
uint64_t KMeansRunCount();

// For each of the n points (row-major, n x d), the index of the nearest of the k centroids
// (squared L2; ties to the smaller index) into assign[i], and when `distances` is non-null the
// squared distance into distances[i] (d > 8: ||x||^2 - 2<x, c> + ||c||^2 clamped at 0, within
// float rounding of the direct difference; d <= 8: the direct sum of squared differences).
// Deterministic like KMeans. `centroid_sqnorms` (k entries, used when d > 8) may be null (then
// computed here). Nothing happens when n, k or d is 0.
void NearestCentroids(const float* x, size_t n, size_t d, const float* centroids, size_t k,
                      const float* centroid_sqnorms, uint32_t* assign, float* distances,
                      ThreadPool* pool, const KernelTable* kernels = nullptr);

}  // namespace rosetta::kernels
