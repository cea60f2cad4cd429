// k-means (Lloyd) with deterministic parallelism.
//
// Why the result does not depend on the thread count: the only floating-point work whose result
// could depend on how it is split is (a) scoring points against centroids and (b) summing members
// into new centroids. (a) runs over fixed chunks of kChunk points, each packed and scored by the
// same kernel calls whatever thread claims it (the kernels' products depend only on the level and
// on the chunk's row count, which is fixed by n); ties go to the smaller centroid index. (b) sums
// each centroid's members in increasing point order in double precision, one centroid per task.
// Every random choice comes from one seeded generator consumed serially.
#include "kernels/kmeans.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/cpu/pq_kernels.h"
#include "kernels/parallel.h"

namespace rosetta::kernels {
namespace {

std::atomic<uint64_t> g_kmeans_runs{0};

// Points scored per task, and centroids per score tile (tile = kChunk x kCentroidBlock floats).
constexpr size_t kChunk = 128;
constexpr size_t kCentroidBlock = 512;
// Up to this dimension, points are scored against centroids directly rather than through a GEMM
// (measured on SIFT sub-vectors: see NearestCentroids).
constexpr size_t kDirectMaxDim = 8;

// splitmix64: small, fast, and fully specified (std:: distributions are implementation-defined,
// which would make the clustering differ between standard libraries).
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n), n >= 1 (multiply-high; the bias is below 2^-40 for any n we use).
  size_t Below(size_t n) {
    return static_cast<size_t>((static_cast<unsigned __int128>(Next()) * n) >> 64);
  }
  double Uniform01() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t state_;
};

// `count` distinct indices of [0, n), uniformly (partial Fisher-Yates), in draw order.
std::vector<size_t> SampleIndices(size_t n, size_t count, Rng& rng) {
  std::vector<size_t> idx(n);
  std::iota(idx.begin(), idx.end(), size_t{0});
  for (size_t i = 0; i < count; ++i) std::swap(idx[i], idx[i + rng.Below(n - i)]);
  idx.resize(count);
  return idx;
}

void RunChunks(ThreadPool* pool, size_t n, const std::function<void(size_t, size_t)>& fn) {
  if (pool != nullptr && pool->threads() > 1 && n > 1) {
    pool->ParallelFor(n, 1, fn);
  } else {
    fn(0, n);
  }
}

void ComputeSqNorms(const float* v, size_t n, size_t d, const KernelTable& kt, float* out) {
  for (size_t i = 0; i < n; ++i) out[i] = kt.dot(v + i * d, v + i * d, d);
}

// Re-seeds every empty cluster by splitting a non-singleton cluster chosen with probability
// proportional to (size - 1): both centroids move by +-delta along a random sign pattern, delta
// being 1/1024 of the centroid's RMS coordinate (or 1/1024 for a zero centroid), so the members
// of the split cluster divide between them on the next assignment.
size_t SplitEmptyClusters(std::vector<float>& centroids, std::vector<size_t>& counts, size_t d,
                          Rng& rng) {
  const size_t k = counts.size();
  size_t splits = 0;
  for (size_t ci = 0; ci < k; ++ci) {
    if (counts[ci] != 0) continue;
    size_t total = 0;
    for (size_t j = 0; j < k; ++j) total += counts[j] > 1 ? counts[j] - 1 : 0;
    if (total == 0) break;  // every point already has its own centroid.
    size_t r = rng.Below(total);
    size_t cj = 0;
    for (; cj < k; ++cj) {
      const size_t w = counts[cj] > 1 ? counts[cj] - 1 : 0;
      if (r < w) break;
      r -= w;
    }
    float* a = centroids.data() + ci * d;
    float* b = centroids.data() + cj * d;
    double ss = 0;
    for (size_t t = 0; t < d; ++t) ss += static_cast<double>(b[t]) * b[t];
    const double rms = std::sqrt(ss / static_cast<double>(d));
    const float delta = static_cast<float>((rms > 0 ? rms : 1.0) / 1024.0);
    for (size_t t = 0; t < d; ++t) {
      const float s = (rng.Next() & 1) ? delta : -delta;
      a[t] = b[t] + s;
      b[t] = b[t] - s;
    }
    counts[ci] = counts[cj] / 2;
    counts[cj] -= counts[ci];
    ++splits;
  }
  return splits;
}

}  // namespace

uint64_t KMeansRunCount() { return g_kmeans_runs.load(std::memory_order_relaxed); }

void NearestCentroids(const float* x, size_t n, size_t d, const float* centroids, size_t k,
                      const float* centroid_sqnorms, uint32_t* assign, float* distances,
                      ThreadPool* pool, const KernelTable* kernels) {
  if (n == 0 || k == 0 || d == 0) return;
  const KernelTable& kt = kernels != nullptr ? *kernels : ActiveKernels();
  const internal::PqKernelTable& pk = internal::GetPqKernelTable(kt.level);
  const size_t nchunks = (n + kChunk - 1) / kChunk;

  if (d <= kDirectMaxDim) {
    // Few dimensions (PQ sub-spaces): a GEMM has too little depth to pay off; each point is
    // scored against all centroids directly, vectorised over centroids (transposed, padded).
    const size_t kpad = (k + 15) / 16 * 16;
    std::vector<float> ct(d * kpad, 0.0f);
    for (size_t c = 0; c < k; ++c) {
      for (size_t t = 0; t < d; ++t) ct[t * kpad + c] = centroids[c * d + t];
    }
    RunChunks(pool, nchunks, [&](size_t c_begin, size_t c_end) {
      for (size_t i = c_begin * kChunk; i < std::min(n, c_end * kChunk); ++i) {
        float best;
        assign[i] = pk.nearest_transposed(x + i * d, ct.data(), d, kpad, k, &best);
        if (distances != nullptr) distances[i] = best;
      }
    });
    return;
  }

  std::vector<float> own_norms;
  if (centroid_sqnorms == nullptr) {
    own_norms.resize(k);
    ComputeSqNorms(centroids, k, d, kt, own_norms.data());
    centroid_sqnorms = own_norms.data();
  }
  const size_t block = std::min(k, kCentroidBlock);
  RunChunks(pool, nchunks, [&](size_t c_begin, size_t c_end) {
    std::vector<float> packed(kt.packed_queries_floats(kChunk, d));
    std::vector<float> tile(kChunk * block);
    float best[kChunk];
    uint32_t best_idx[kChunk];
    for (size_t c = c_begin; c < c_end; ++c) {
      const size_t p0 = c * kChunk;
      const size_t rows = std::min(kChunk, n - p0);
      if (packed.size() < kt.packed_queries_floats(rows, d)) {
        packed.resize(kt.packed_queries_floats(rows, d));
      }
      kt.pack_queries(x + p0 * d, rows, d, packed.data());
      for (size_t c0 = 0; c0 < k; c0 += block) {
        const size_t cb = std::min(block, k - c0);
        kt.inner_products_packed(packed.data(), rows, centroids + c0 * d, cb, d, tile.data(),
                                 block);
        for (size_t r = 0; r < rows; ++r) {
          float v;
          const uint32_t j = pk.argmin_norm_ip(centroid_sqnorms + c0, tile.data() + r * block, cb, &v);
          // Strictly smaller only: on a tie the earlier block (smaller index) keeps its place.
          if (c0 == 0 || v < best[r]) {
            best[r] = v;
            best_idx[r] = static_cast<uint32_t>(c0 + j);
          }
        }
      }
      for (size_t r = 0; r < rows; ++r) {
        assign[p0 + r] = best_idx[r];
        if (distances != nullptr) {
          const float* xr = x + (p0 + r) * d;
          const float dist = kt.dot(xr, xr, d) + best[r];
          distances[p0 + r] = dist > 0.0f ? dist : 0.0f;
        }
      }
    }
  });
}

absl::StatusOr<KMeansResult> KMeans(const float* x, size_t n, size_t d,
                                    const KMeansParams& params, ThreadPool* pool) {
  g_kmeans_runs.fetch_add(1, std::memory_order_relaxed);
  const size_t k = params.k;
  if (d == 0) return absl::InvalidArgumentError("k-means: dimension d is 0");
  if (k == 0) return absl::InvalidArgumentError("k-means: k (number of centroids) is 0");
  if (k > std::numeric_limits<uint32_t>::max()) {
    return absl::InvalidArgumentError(absl::StrCat("k-means: k = ", k, " exceeds 2^32 - 1"));
  }
  if (n < k) {
    return absl::InvalidArgumentError(absl::StrCat(
        "k-means: ", n, " training points for k = ", k,
        " centroids; at least one point per centroid is needed"));
  }
  const KernelTable& kt = params.kernels != nullptr ? *params.kernels : ActiveKernels();
  Rng rng(params.seed);

  // Subsample (sorted, so the copy streams through x in order).
  size_t cap = n;
  if (params.max_points_per_centroid > 0 &&
      params.max_points_per_centroid <= std::numeric_limits<size_t>::max() / k) {
    cap = std::min(n, params.max_points_per_centroid * k);
  }
  std::vector<float> sample;
  const float* train = x;
  size_t nt = n;
  if (cap < n) {
    std::vector<size_t> idx = SampleIndices(n, cap, rng);
    std::sort(idx.begin(), idx.end());
    sample.resize(cap * d);
    for (size_t i = 0; i < cap; ++i) {
      std::memcpy(sample.data() + i * d, x + idx[i] * d, d * sizeof(float));
    }
    train = sample.data();
    nt = cap;
  }
  for (size_t i = 0; i < nt * d; ++i) {
    if (!std::isfinite(train[i])) {
      return absl::InvalidArgumentError(absl::StrCat(
          "k-means: training point ", (cap < n ? "(sampled) " : ""), i / d, " has a non-finite ",
          "coordinate at dimension ", i % d));
    }
  }

  KMeansResult result;
  result.training_points = nt;
  std::vector<float>& cent = result.centroids;
  cent.resize(k * d);

  // Initialisation.
  if (params.init == KMeansInit::kRandom) {
    const std::vector<size_t> pick = SampleIndices(nt, k, rng);
    for (size_t c = 0; c < k; ++c) {
      std::memcpy(cent.data() + c * d, train + pick[c] * d, d * sizeof(float));
    }
  } else {
    // k-means++: each next centroid is a point drawn with probability proportional to its squared
    // distance to the nearest centroid chosen so far. Distances are updated per point (no
    // dependence on the split); the draw walks a serial cumulative sum.
    std::vector<float> mind(nt, std::numeric_limits<float>::infinity());
    size_t chosen = rng.Below(nt);
    for (size_t c = 0; c < k; ++c) {
      if (c > 0) {
        double total = 0;
        for (size_t p = 0; p < nt; ++p) total += mind[p];
        if (total > 0) {
          const double r = rng.Uniform01() * total;
          double acc = 0;
          chosen = nt - 1;
          for (size_t p = 0; p < nt; ++p) {
            acc += mind[p];
            if (r < acc) {
              chosen = p;
              break;
            }
          }
        } else {
          chosen = rng.Below(nt);  // every point coincides with a centroid already.
        }
      }
      const float* cp = train + chosen * d;
      std::memcpy(cent.data() + c * d, cp, d * sizeof(float));
      if (c + 1 == k) break;
      const size_t nchunks = (nt + kChunk - 1) / kChunk;
      RunChunks(pool, nchunks, [&](size_t b, size_t e) {
        for (size_t p = b * kChunk; p < std::min(nt, e * kChunk); ++p) {
          mind[p] = std::min(mind[p], kt.l2sqr(train + p * d, cp, d));
        }
      });
    }
  }

  // Lloyd iterations.
  std::vector<uint32_t> assign(nt), prev(nt);
  std::vector<float> dist(nt);
  std::vector<float> norms(k);
  std::vector<size_t> counts(k), offsets(k + 1), order(nt);
  size_t last_splits = 0;
  for (size_t it = 0; it < params.iterations; ++it) {
    ComputeSqNorms(cent.data(), k, d, kt, norms.data());
    NearestCentroids(train, nt, d, cent.data(), k, norms.data(), assign.data(), dist.data(), pool,
                     &kt);
    double objective = 0;
    for (size_t p = 0; p < nt; ++p) objective += dist[p];
    result.objective.push_back(objective);
    if (it > 0 && last_splits == 0 && assign == prev) break;  // converged: the update is a no-op.
    prev = assign;

    // Members of each centroid in increasing point order (counting sort).
    std::fill(counts.begin(), counts.end(), 0);
    for (size_t p = 0; p < nt; ++p) ++counts[assign[p]];
    offsets[0] = 0;
    for (size_t c = 0; c < k; ++c) offsets[c + 1] = offsets[c] + counts[c];
    {
      std::vector<size_t> fill(offsets.begin(), offsets.end() - 1);
      for (size_t p = 0; p < nt; ++p) order[fill[assign[p]]++] = p;
    }
    RunChunks(pool, k, [&](size_t c_begin, size_t c_end) {
      std::vector<double> sum(d);
      for (size_t c = c_begin; c < c_end; ++c) {
        if (counts[c] == 0) continue;
        std::fill(sum.begin(), sum.end(), 0.0);
        for (size_t o = offsets[c]; o < offsets[c + 1]; ++o) {
          const float* xp = train + order[o] * d;
          for (size_t t = 0; t < d; ++t) sum[t] += xp[t];
        }
        const double inv = 1.0 / static_cast<double>(counts[c]);
        float* cc = cent.data() + c * d;
        for (size_t t = 0; t < d; ++t) cc[t] = static_cast<float>(sum[t] * inv);
      }
    });
    last_splits = SplitEmptyClusters(cent, counts, d, rng);
    result.empty_cluster_splits += last_splits;
    result.iterations = it + 1;
  }
  return result;
}

}  // namespace rosetta::kernels
