// FlatSearch: exact search by tiles.
//
// Work is split into items = (group of query tiles) x (block of base rows). Each item scores its
// query tiles against its base block with the packed inner-product kernel into a per-thread
// scratch of q_tile x block floats, and feeds the scores of each query row to that thread's
// TopK for the query; a thread merges its selectors into the shared ones (under a mutex) when it
// moves to another query group and when no item is left. Results do not depend on the
// thread count or the schedule: selection is exact and its order total (score, then id).
//
// Parallelism goes over base blocks first (the only parallelism there is at batch 1); queries are
// split into groups only when there are too few base blocks to keep the threads busy. The
// queries are packed once per call; every base block is read from memory once per item and then
// served from cache to all the query tiles of the item.
#include "kernels/flat_search.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <new>

#include "kernels/parallel.h"

namespace rosetta::kernels {
namespace {

// Queries scored together against a base block: enough rows for the GEMM kernel to reuse each
// base row many times from L1, few enough that the packed tile (kQueryTile x d floats) stays in L2.
constexpr size_t kQueryTile = 64;

// Base rows per block: about 512 KiB of base (L2-resident while its norms and scores are computed),
// a multiple of 8 rows, and at least 64 rows so that tiny d does not make blocks trivially small.
size_t BaseBlockRows(size_t d) {
  size_t rows = (512 * 1024) / (d * sizeof(float));
  rows = std::clamp<size_t>(rows, 64, 4096);
  return rows / 8 * 8;
}

struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};

std::unique_ptr<float, FreeDeleter> AlignedFloats(size_t n) {
  const size_t rounded = (std::max<size_t>(n, 1) + 15) / 16 * 16;
  float* p = static_cast<float*>(std::aligned_alloc(64, rounded * sizeof(float)));
  if (p == nullptr) throw std::bad_alloc();
  return std::unique_ptr<float, FreeDeleter>(p);
}

inline bool Skipped(std::span<const uint64_t> skip, size_t i) {
  return i / 64 < skip.size() && ((skip[i / 64] >> (i % 64)) & 1u) != 0;
}

// Offers scores[0..n) (ids id0 + j) to `top`. For kL2, scores are inner products turned into
// -||q - b||^2 = 2<q,b> - ||b||^2 - ||q||^2 (clamped to <= 0, which it is exactly).
void Feed(const float* scores, size_t n, size_t id0, const float* base_sqnorms, float query_sqnorm,
          std::span<const uint64_t> skip, TopK& top) {
  float threshold = top.Threshold();
  if (base_sqnorms == nullptr) {
    for (size_t j = 0; j < n; ++j) {
      const float s = scores[j];
      if (!(s >= threshold)) continue;  // also drops NaN
      if (!skip.empty() && Skipped(skip, id0 + j)) continue;
      top.Push(s, static_cast<int64_t>(id0 + j));
      threshold = top.Threshold();
    }
    return;
  }
  for (size_t j = 0; j < n; ++j) {
    float s = 2.0f * scores[j] - base_sqnorms[j] - query_sqnorm;
    if (s > 0.0f) s = 0.0f;
    if (!(s >= threshold)) continue;
    if (!skip.empty() && Skipped(skip, id0 + j)) continue;
    top.Push(s, static_cast<int64_t>(id0 + j));
    threshold = top.Threshold();
  }
}

}  // namespace

void SquaredNorms(const float* vectors, size_t n, size_t d, float* out,
                  const KernelTable* kernels) {
  const KernelTable& kt = kernels != nullptr ? *kernels : ActiveKernels();
  for (size_t i = 0; i < n; ++i) out[i] = kt.dot(vectors + i * d, vectors + i * d, d);
}

std::vector<std::vector<Scored>> FlatSearch(const float* queries, size_t nq, const float* base,
                                            size_t nb, size_t d, const FlatSearchParams& params) {
  std::vector<std::vector<Scored>> results(nq);
  if (nq == 0 || nb == 0 || d == 0 || params.k == 0) return results;
  const KernelTable& kt = params.kernels != nullptr ? *params.kernels : ActiveKernels();
  const size_t k = std::min(params.k, nb);
  const bool l2 = params.metric == FlatMetric::kL2;

  std::vector<float> query_sqnorms(l2 ? nq : 0);
  if (l2) SquaredNorms(queries, nq, d, query_sqnorms.data(), &kt);
  // Caller-supplied base norms are used only when they cover every base row.
  const float* given_base_sqnorms =
      l2 && params.base_sqnorms.size() == nb ? params.base_sqnorms.data() : nullptr;

  // Pack every query tile once (offsets rounded to 64 bytes).
  const size_t n_qtiles = (nq + kQueryTile - 1) / kQueryTile;
  std::vector<size_t> pack_offset(n_qtiles + 1, 0);
  for (size_t t = 0; t < n_qtiles; ++t) {
    const size_t rows = std::min(kQueryTile, nq - t * kQueryTile);
    pack_offset[t + 1] = pack_offset[t] + (kt.packed_queries_floats(rows, d) + 15) / 16 * 16;
  }
  auto packed = AlignedFloats(pack_offset.back());
  for (size_t t = 0; t < n_qtiles; ++t) {
    const size_t rows = std::min(kQueryTile, nq - t * kQueryTile);
    kt.pack_queries(queries + t * kQueryTile * d, rows, d, packed.get() + pack_offset[t]);
  }

  const size_t block_rows = BaseBlockRows(d);
  const size_t n_blocks = (nb + block_rows - 1) / block_rows;
  const size_t threads = params.pool != nullptr ? params.pool->threads() : 1;
  size_t groups = 1;
  if (n_blocks < 2 * threads) {
    groups = std::min(n_qtiles, (2 * threads + n_blocks - 1) / n_blocks);
  }
  const size_t tiles_per_group = (n_qtiles + groups - 1) / groups;
  groups = (n_qtiles + tiles_per_group - 1) / tiles_per_group;
  const size_t items = groups * n_blocks;

  std::vector<TopK> best;
  best.reserve(nq);
  for (size_t q = 0; q < nq; ++q) best.emplace_back(k);
  std::mutex best_mu;

  // Items are claimed one at a time from a shared counter by every participant (the caller and
  // the pool's workers), rather than split into fixed chunks up front: on a shared machine a
  // thread may be descheduled at any time, and then it delays the search by at most the one item
  // it holds. A participant that starts after all items are claimed finds nothing to do.
  std::atomic<size_t> next_item{0};
  auto participate = [&](size_t, size_t) {
    const size_t scores_ld = block_rows;
    auto scores = AlignedFloats(kQueryTile * scores_ld);
    std::vector<float> block_sqnorms(l2 && given_base_sqnorms == nullptr ? block_rows : 0);
    std::vector<TopK> local;
    size_t group = static_cast<size_t>(-1);
    size_t q_first = 0;
    auto flush = [&] {
      if (local.empty()) return;
      std::lock_guard<std::mutex> lock(best_mu);
      for (size_t i = 0; i < local.size(); ++i) best[q_first + i].Merge(local[i]);
    };
    for (size_t item = next_item.fetch_add(1, std::memory_order_relaxed); item < items;
         item = next_item.fetch_add(1, std::memory_order_relaxed)) {
      const size_t g = item / n_blocks;
      const size_t blk = item % n_blocks;
      const size_t t_first = g * tiles_per_group;
      const size_t t_last = std::min(n_qtiles, t_first + tiles_per_group);
      if (g != group) {
        flush();
        group = g;
        q_first = t_first * kQueryTile;
        const size_t q_last = std::min(nq, t_last * kQueryTile);
        local.clear();
        local.reserve(q_last - q_first);
        for (size_t q = q_first; q < q_last; ++q) local.emplace_back(k);
      }
      const size_t j0 = blk * block_rows;
      const size_t rows_b = std::min(block_rows, nb - j0);
      const float* b = base + j0 * d;
      const float* bn = nullptr;
      if (l2) {
        if (given_base_sqnorms != nullptr) {
          bn = given_base_sqnorms + j0;
        } else {
          SquaredNorms(b, rows_b, d, block_sqnorms.data(), &kt);
          bn = block_sqnorms.data();
        }
      }
      for (size_t t = t_first; t < t_last; ++t) {
        const size_t qi0 = t * kQueryTile;
        const size_t rows_q = std::min(kQueryTile, nq - qi0);
        kt.inner_products_packed(packed.get() + pack_offset[t], rows_q, b, rows_b, d,
                                 scores.get(), scores_ld);
        for (size_t r = 0; r < rows_q; ++r) {
          Feed(scores.get() + r * scores_ld, rows_b, j0, bn, l2 ? query_sqnorms[qi0 + r] : 0.0f,
               params.skip, local[qi0 + r - q_first]);
        }
      }
    }
    flush();
  };

  const size_t participants = std::min(threads, items);
  if (params.pool != nullptr && participants > 1) {
    params.pool->ParallelFor(participants, 1, participate);
  } else {
    participate(0, 1);
  }
  for (size_t q = 0; q < nq; ++q) results[q] = best[q].TakeSorted();
  return results;
}

}  // namespace rosetta::kernels
