// GPU exact top-k search (kernels/gpu_search.h) against the CPU's FlatSearch (CTest label
// `cuda`). Tests that need a device skip with a message where there is none (CI); the no-device
// test runs there instead.
//
// Comparison rule (random data): per query the same number of results; results strictly ordered
// (score descending, id ascending); rank by rank the GPU's score equals the reference's within a
// tolerance; ids equal the reference's except where the scores tie within that tolerance (an id
// only on one side must score, in double precision, within twice the tolerance of the other
// side's k-th score). Integer-valued data (exact sums) must give exactly FlatSearch's result. For
// fp16 storage the reference runs on the fp16-rounded base and queries (GpuRoundToHalf).
#include "kernels/gpu_search.h"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cmath>
#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/device.h"
#include "kernels/flat_search.h"
#include "kernels/parallel.h"
#include "tests/testing/testing.h"

namespace rosetta::kernels {
namespace {

using ::rosetta::testing::RandomVectors;
using ::rosetta::testing::SeedTrace;
using ::rosetta::testing::TestSeed;

#define ROSETTA_REQUIRE_CUDA_DEVICE()                                                         \
  if (CudaDeviceCount() == 0) {                                                               \
    GTEST_SKIP() << "no usable CUDA device (built with CUDA: "                                \
                 << (BuiltWithCuda() ? "yes" : "no") << "); GPU test skipped";                \
  }

const char* StorageName(GpuStorage s) { return s == GpuStorage::kFloat16 ? "fp16" : "fp32"; }

std::vector<float> Rounded(const std::vector<float>& v, GpuStorage storage) {
  if (storage == GpuStorage::kFloat32) return v;
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = GpuRoundToHalf(v[i]);
  return out;
}

std::vector<float> IntegerVectors(size_t n, size_t d, int range, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> v(-range, range);
  std::vector<float> out(n * d);
  for (float& x : out) x = static_cast<float>(v(rng));
  return out;
}

bool IsSkipped(const std::vector<uint64_t>& skip, size_t i) {
  return i / 64 < skip.size() && ((skip[i / 64] >> (i % 64)) & 1u);
}

double ExactScore(const float* q, const float* b, size_t d, FlatMetric metric) {
  double s = 0;
  for (size_t t = 0; t < d; ++t) {
    const double x = q[t], y = b[t];
    s += metric == FlatMetric::kL2 ? -(x - y) * (x - y) : x * y;
  }
  return s;
}

// The data one case searches, as the device sees it (rounded for fp16), and its reference.
struct Case {
  size_t nq = 0, nb = 0, d = 0;
  GpuStorage storage = GpuStorage::kFloat32;
  FlatMetric metric = FlatMetric::kInnerProduct;
  std::vector<float> queries, base;        // as given to the GPU
  std::vector<float> ref_queries, ref_base;  // as the GPU stores them
  std::vector<uint64_t> skip;
  std::vector<std::vector<Scored>> reference;  // FlatSearch, k = max_k
  std::vector<double> tolerance;               // per query
  std::string name;
};

// Worst-case bound of fp32 summation-order differences, doubled: (d + 4) 2^-22 x the sum of the
// terms' magnitudes (bounded through norms).
std::vector<double> Tolerances(const Case& c) {
  double max_b2 = 0;
  for (size_t j = 0; j < c.nb; ++j) {
    double s = 0;
    for (size_t t = 0; t < c.d; ++t) s += double(c.ref_base[j * c.d + t]) * c.ref_base[j * c.d + t];
    max_b2 = std::max(max_b2, s);
  }
  std::vector<double> tol(c.nq);
  const double unit = (double(c.d) + 4) * std::ldexp(1.0, -22);
  for (size_t i = 0; i < c.nq; ++i) {
    double q2 = 0;
    for (size_t t = 0; t < c.d; ++t) q2 += double(c.ref_queries[i * c.d + t]) * c.ref_queries[i * c.d + t];
    const double cross = std::sqrt(q2 * max_b2);
    tol[i] = unit * (c.metric == FlatMetric::kL2 ? 2 * cross + q2 + max_b2 : cross) + 1e-30;
  }
  return tol;
}

Case MakeCase(size_t nq, size_t nb, size_t d, GpuStorage storage, FlatMetric metric,
              bool with_skip, size_t max_k, uint64_t seed) {
  Case c;
  c.nq = nq;
  c.nb = nb;
  c.d = d;
  c.storage = storage;
  c.metric = metric;
  c.queries = RandomVectors(nq, d, seed);
  c.base = RandomVectors(nb, d, seed + 1);
  // Exact duplicates: equal scores that must come out ordered by id.
  for (size_t j = 17; j < nb; j += 17) {
    std::copy(c.base.begin() + (j - 1) * d, c.base.begin() + j * d, c.base.begin() + j * d);
  }
  c.ref_queries = Rounded(c.queries, storage);
  c.ref_base = Rounded(c.base, storage);
  if (with_skip) {
    std::mt19937_64 rng(seed + 2);
    std::bernoulli_distribution coin(0.3);
    const size_t words = (nb + 63) / 64;
    // Shorter than the rows (rows past it are not excluded) or longer (extra words ignored).
    c.skip.assign(words > 2 ? words / 2 + 1 : words + 2, 0);
    for (size_t j = 0; j < c.skip.size() * 64; ++j) {
      if (coin(rng)) c.skip[j / 64] |= uint64_t{1} << (j % 64);
    }
  }
  FlatSearchParams p;
  p.k = max_k;
  p.metric = metric;
  p.pool = &DefaultThreadPool();
  p.skip = c.skip;
  c.reference = FlatSearch(c.ref_queries.data(), nq, c.ref_base.data(), nb, d, p);
  c.tolerance = Tolerances(c);
  std::ostringstream name;
  name << "nq=" << nq << " nb=" << nb << " d=" << d << " " << StorageName(storage)
       << (metric == FlatMetric::kL2 ? " L2" : " IP") << (with_skip ? " skip" : "");
  c.name = name.str();
  return c;
}

::testing::AssertionResult MatchesReference(const Case& c, size_t k,
                                            const std::vector<std::vector<Scored>>& got) {
  if (got.size() != c.nq) {
    return ::testing::AssertionFailure() << "got " << got.size() << " result lists";
  }
  for (size_t i = 0; i < c.nq; ++i) {
    const std::vector<Scored>& g = got[i];
    const std::vector<Scored>& full = c.reference[i];
    const size_t want_n = std::min(k, full.size());
    const double tol = c.tolerance[i];
    auto fail = [&]() {
      return ::testing::AssertionFailure() << "query " << i << " (k=" << k << ", tol=" << tol
                                           << "): ";
    };
    if (g.size() != want_n) return fail() << g.size() << " results, want " << want_n;
    std::set<int64_t> ids;
    for (size_t r = 0; r < g.size(); ++r) {
      const int64_t id = g[r].id;
      if (id < 0 || static_cast<size_t>(id) >= c.nb) return fail() << "rank " << r << " id " << id;
      if (IsSkipped(c.skip, id)) return fail() << "rank " << r << " id " << id << " is skipped";
      if (!ids.insert(id).second) return fail() << "id " << id << " twice";
      if (r > 0 && !RanksBefore(g[r - 1], g[r])) {
        return fail() << "ranks " << r - 1 << ", " << r << " out of order: (" << g[r - 1].score
                      << ", " << g[r - 1].id << ") (" << g[r].score << ", " << g[r].id << ")";
      }
      if (!(std::fabs(double(g[r].score) - full[r].score) <= tol)) {
        return fail() << "rank " << r << " score " << g[r].score << " (id " << id
                      << ") vs reference " << full[r].score << " (id " << full[r].id << ")";
      }
    }
    if (want_n == 0) continue;
    const double want_kth = full[want_n - 1].score;
    const double got_kth = g.back().score;
    std::set<int64_t> want_ids;
    for (size_t r = 0; r < want_n; ++r) want_ids.insert(full[r].id);
    for (size_t r = 0; r < want_n; ++r) {
      if (want_ids.count(g[r].id) == 0) {
        // Only on the GPU side: must be a near-tie of the reference's k-th.
        const double s = ExactScore(&c.ref_queries[i * c.d], &c.ref_base[g[r].id * c.d], c.d,
                                    c.metric);
        if (std::fabs(s - g[r].score) > tol) {
          return fail() << "id " << g[r].id << " scored " << g[r].score << ", exact " << s;
        }
        if (s < want_kth - 2 * tol) {
          return fail() << "id " << g[r].id << " (exact " << s << ") is not among the best "
                        << want_n << " (k-th " << want_kth << ")";
        }
      }
      if (ids.count(full[r].id) == 0) {
        const double s = ExactScore(&c.ref_queries[i * c.d], &c.ref_base[full[r].id * c.d], c.d,
                                    c.metric);
        if (s > got_kth + 2 * tol) {
          return fail() << "missing id " << full[r].id << " (exact " << s << ") beats the GPU's "
                        << "k-th " << got_kth;
        }
      }
    }
  }
  return ::testing::AssertionSuccess();
}

struct PathConfig {
  const char* name;
  GpuPath path;
  size_t tile_rows;
  size_t scratch_bytes;
};

// fused; tiled with small tiles (several tiles, the last partial, several query blocks); tiled
// with default tiles (one tile split into several segments, merged at the end).
const PathConfig kPaths[] = {
    {"fused", GpuPath::kFused, 0, 0},
    {"tiled-small", GpuPath::kTiled, 1024, 2 * 4 * 1024 * 512},
    {"tiled-default", GpuPath::kTiled, 0, 0},
};

void RunGrid(const std::vector<size_t>& nqs, const std::vector<size_t>& nbs,
             const std::vector<size_t>& ds, const std::vector<size_t>& ks, uint64_t seed) {
  const size_t max_k = *std::max_element(ks.begin(), ks.end());
  int failures = 0;
  size_t searches = 0;
  const auto start = std::chrono::steady_clock::now();
  for (size_t d : ds) {
    for (size_t nb : nbs) {
      std::printf("[ info     ] d=%zu nb=%zu from %.1f s\n", d, nb,
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      std::fflush(stdout);
      for (GpuStorage storage : {GpuStorage::kFloat32, GpuStorage::kFloat16}) {
        for (FlatMetric metric : {FlatMetric::kInnerProduct, FlatMetric::kL2}) {
          for (bool with_skip : {false, true}) {
            for (size_t nq : nqs) {
              // Keep the CPU reference affordable: L2 only below the largest shapes.
              if (metric == FlatMetric::kL2 && nq * nb * d > size_t{200} * 5003 * 768) continue;
              const uint64_t case_seed = seed + nq * 1000003 + nb * 101 + d * 7 + with_skip;
              Case c = MakeCase(nq, nb, d, storage, metric, with_skip, max_k, case_seed);
              GpuMatrixOptions options;
              options.storage = storage;
              auto matrix = GpuMatrix::Upload(c.base.data(), nb, d, options);
              ASSERT_TRUE(matrix.ok()) << c.name << ": " << matrix.status();
              for (const PathConfig& path : kPaths) {
                for (size_t k : ks) {
                  GpuSearchParams p;
                  p.k = k;
                  p.metric = metric;
                  p.skip = c.skip;
                  p.path = path.path;
                  p.tile_rows = path.tile_rows;
                  p.scratch_bytes = path.scratch_bytes;
                  auto got = GpuFlatSearch(**matrix, c.queries.data(), nq, d, p);
                  ++searches;
                  ASSERT_TRUE(got.ok()) << c.name << " " << path.name << " k=" << k << ": "
                                        << got.status();
                  const auto result = MatchesReference(c, k, *got);
                  EXPECT_TRUE(result) << c.name << " path=" << path.name << " k=" << k;
                  if (!result && ++failures >= 10) FAIL() << "stopping after 10 failing cases";
                }
              }
            }
          }
        }
      }
    }
  }
  std::printf("[ info     ] %zu GPU searches compared with FlatSearch\n", searches);
}

TEST(GpuFlatSearch, UploadWithoutDeviceIsUnavailable) {
  if (CudaDeviceCount() > 0) GTEST_SKIP() << "a CUDA device is present; no-device path not run";
  const std::vector<float> v(8, 1.f);
  EXPECT_STATUS(GpuMatrix::Upload(v.data(), 2, 4), absl::StatusCode::kUnavailable, "unavailable");
  EXPECT_STATUS(GetGpuDeviceInfo(0), absl::StatusCode::kUnavailable, "unavailable");
}

// A few cases through every kernel (fused and tiled, both storages and metrics, skip bitmaps,
// the smallest and largest k buckets): the grid compute-sanitizer runs.
TEST(GpuFlatSearchGrid, Tiny) {
  ROSETTA_REQUIRE_CUDA_DEVICE();
  const uint64_t seed = TestSeed(6000);
  SCOPED_TRACE(SeedTrace(seed));
  RunGrid({3, 20}, {1000}, {40}, {10, 1024}, seed);
}

// A reduced grid (small nq and nb, d 7 and 128).
TEST(GpuFlatSearchGrid, Small) {
  ROSETTA_REQUIRE_CUDA_DEVICE();
  const uint64_t seed = TestSeed(6001);
  SCOPED_TRACE(SeedTrace(seed));
  RunGrid({1, 3, 16}, {1, 7, 1000}, {7, 128}, {1, 10, 100, 1024}, seed);
}

// The full grid of issue 6: nq 1, 3, 16, 100, 1500; nb 1, 7 (< k), 1000, 5003 (not a multiple of
// any tile); d 1, 7, 128, 768; k 1, 10, 100, 1024; fp32 and fp16; IP and L2; with and without a
// skip bitmap; every path.
TEST(GpuFlatSearchGrid, Large) {
  ROSETTA_REQUIRE_CUDA_DEVICE();
  const uint64_t seed = TestSeed(6002);
  SCOPED_TRACE(SeedTrace(seed));
  RunGrid({1, 3, 16, 100, 1500}, {1, 7, 1000, 5003}, {1, 7, 128, 768}, {1, 10, 100, 1024}, seed);
}

// Many fused blocks (two-level merge) and many tiled segments on a larger base.
TEST(GpuFlatSearchGrid, LargeBaseManyBlocks) {
  ROSETTA_REQUIRE_CUDA_DEVICE();
  const uint64_t seed = TestSeed(6003);
  SCOPED_TRACE(SeedTrace(seed));
  for (GpuStorage storage : {GpuStorage::kFloat32, GpuStorage::kFloat16}) {
    Case c = MakeCase(20, 300007, 32, storage, FlatMetric::kInnerProduct, true, 1024, seed);
    GpuMatrixOptions options;
    options.storage = storage;
    auto matrix = GpuMatrix::Upload(c.base.data(), c.nb, c.d, options);
    ASSERT_TRUE(matrix.ok()) << matrix.status();
    for (GpuPath path : {GpuPath::kFused, GpuPath::kTiled}) {
      for (size_t k : {1, 10, 100, 1024}) {
        GpuSearchParams p;
        p.k = k;
        p.skip = c.skip;
        p.path = path;
        auto got = GpuFlatSearch(**matrix, c.queries.data(), c.nq, c.d, p);
        ASSERT_TRUE(got.ok()) << got.status();
        EXPECT_TRUE(MatchesReference(c, k, *got))
            << c.name << " path=" << (path == GpuPath::kFused ? "fused" : "tiled") << " k=" << k;
      }
    }
  }
}

// Small integers: every sum is exact in fp32 (and the data exact in fp16), with massive ties, so
// every path must return exactly FlatSearch's ids and scores (ties by ascending id).
TEST(GpuFlatSearch, IntegerDataEqualsFlatSearchExactly) {
  ROSETTA_REQUIRE_CUDA_DEVICE();
  const uint64_t seed = TestSeed(6004);
  SCOPED_TRACE(SeedTrace(seed));
  struct Shape {
    size_t nq, nb, d;
  };
  for (const Shape s : {Shape{1, 3000, 24}, Shape{5, 10007, 7}, Shape{40, 4099, 64},
                        Shape{300, 2000, 33}}) {
    const std::vector<float> q = IntegerVectors(s.nq, s.d, 2, seed + s.nq);
    const std::vector<float> b = IntegerVectors(s.nb, s.d, 2, seed + s.nb);
    for (GpuStorage storage : {GpuStorage::kFloat32, GpuStorage::kFloat16}) {
      GpuMatrixOptions options;
      options.storage = storage;
      auto matrix = GpuMatrix::Upload(b.data(), s.nb, s.d, options);
      ASSERT_TRUE(matrix.ok()) << matrix.status();
      for (FlatMetric metric : {FlatMetric::kInnerProduct, FlatMetric::kL2}) {
        for (size_t k : {1, 10, 100, 1024}) {
          FlatSearchParams fp;
          fp.k = k;
          fp.metric = metric;
          const auto want = FlatSearch(q.data(), s.nq, b.data(), s.nb, s.d, fp);
          for (const PathConfig& path : kPaths) {
            GpuSearchParams p;
            p.k = k;
            p.metric = metric;
            p.path = path.path;
            p.tile_rows = path.tile_rows;
            p.scratch_bytes = path.scratch_bytes;
            auto got = GpuFlatSearch(**matrix, q.data(), s.nq, s.d, p);
            ASSERT_TRUE(got.ok()) << got.status();
            SCOPED_TRACE(std::string(StorageName(storage)) + " " + path.name +
                         " nq=" + std::to_string(s.nq) + " nb=" + std::to_string(s.nb) +
                         " k=" + std::to_string(k) + (metric == FlatMetric::kL2 ? " L2" : " IP"));
            ASSERT_EQ(got->size(), want.size());
            for (size_t i = 0; i < want.size(); ++i) {
              ASSERT_EQ((*got)[i].size(), want[i].size()) << "query " << i;
              for (size_t r = 0; r < want[i].size(); ++r) {
                ASSERT_EQ((*got)[i][r].id, want[i][r].id) << "query " << i << " rank " << r;
                ASSERT_EQ((*got)[i][r].score, want[i][r].score) << "query " << i << " rank " << r;
              }
            }
          }
        }
      }
    }
  }
}

// fp16 storage stores GpuRoundToHalf's values (subnormal halves included) and rounds queries the
// same way: a query c * e_j scores round(c) * round(b[i][j]) exactly.
TEST(GpuFlatSearch, HalfStorageRoundsLikeGpuRoundToHalf) {
  ROSETTA_REQUIRE_CUDA_DEVICE();
  const uint64_t seed = TestSeed(6005);
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> mant(-2.f, 2.f);
  std::uniform_int_distribution<int> expo(-22, 12);
  const size_t n = 300, d = 8;
  std::vector<float> b(n * d);
  for (float& x : b) x = std::ldexp(mant(rng), expo(rng));
  GpuMatrixOptions options;
  options.storage = GpuStorage::kFloat16;
  auto matrix = GpuMatrix::Upload(b.data(), n, d, options);
  ASSERT_TRUE(matrix.ok()) << matrix.status();
  for (GpuPath path : {GpuPath::kFused, GpuPath::kTiled}) {
    for (size_t j = 0; j < d; ++j) {
      std::vector<float> q(d, 0.f);
      q[j] = 1.0f + std::ldexp(1.0f, -13);  // rounds to 1 in fp16
      GpuSearchParams p;
      p.k = n;
      p.path = path;
      auto got = GpuFlatSearch(**matrix, q.data(), 1, d, p);
      ASSERT_TRUE(got.ok()) << got.status();
      ASSERT_EQ((*got)[0].size(), n);
      for (const Scored& s : (*got)[0]) {
        ASSERT_EQ(s.score, GpuRoundToHalf(b[s.id * d + j]))
            << "row " << s.id << " dim " << j << " value " << b[s.id * d + j];
      }
    }
  }
}

// kAuto takes the fused path up to fused_max_batch queries and the tiled path above: its results
// are bitwise those of the forced path (each path is deterministic).
TEST(GpuFlatSearch, AutoPathIsDeterministicAndMatchesForcedPath) {
  ROSETTA_REQUIRE_CUDA_DEVICE();
  const uint64_t seed = TestSeed(6006);
  SCOPED_TRACE(SeedTrace(seed));
  const size_t nb = 20000, d = 96;
  const std::vector<float> b = RandomVectors(nb, d, seed);
  auto matrix = GpuMatrix::Upload(b.data(), nb, d, {GpuStorage::kFloat16, 0});
  ASSERT_TRUE(matrix.ok()) << matrix.status();
  for (size_t nq : {1, 8, 16, 17, 64}) {
    const std::vector<float> q = RandomVectors(nq, d, seed + nq);
    GpuSearchParams p;
    p.k = 50;
    auto a1 = GpuFlatSearch(**matrix, q.data(), nq, d, p);
    auto a2 = GpuFlatSearch(**matrix, q.data(), nq, d, p);
    p.path = nq <= kGpuDefaultFusedMaxBatch ? GpuPath::kFused : GpuPath::kTiled;
    auto forced = GpuFlatSearch(**matrix, q.data(), nq, d, p);
    ASSERT_TRUE(a1.ok() && a2.ok() && forced.ok());
    for (size_t i = 0; i < nq; ++i) {
      ASSERT_EQ((*a1)[i].size(), (*forced)[i].size());
      for (size_t r = 0; r < (*a1)[i].size(); ++r) {
        ASSERT_EQ((*a1)[i][r].id, (*a2)[i][r].id) << "nq=" << nq << " query " << i;
        ASSERT_EQ((*a1)[i][r].score, (*a2)[i][r].score);
        ASSERT_EQ((*a1)[i][r].id, (*forced)[i][r].id) << "nq=" << nq << " query " << i;
        ASSERT_EQ((*a1)[i][r].score, (*forced)[i][r].score);
      }
    }
  }
}

// One matrix searched from 8 threads at once (several contexts, both paths): each result equals
// the same search run alone.
TEST(GpuFlatSearch, ConcurrentSearchesOnOneMatrix) {
  ROSETTA_REQUIRE_CUDA_DEVICE();
  const uint64_t seed = TestSeed(6007);
  SCOPED_TRACE(SeedTrace(seed));
  const size_t nb = 30000, d = 64;
  const std::vector<float> b = RandomVectors(nb, d, seed);
  auto matrix = GpuMatrix::Upload(b.data(), nb, d, {GpuStorage::kFloat32, 0});
  ASSERT_TRUE(matrix.ok()) << matrix.status();
  const size_t kThreads = 8, kRounds = 12;
  std::vector<std::vector<float>> queries;
  std::vector<std::vector<std::vector<Scored>>> alone;
  for (size_t t = 0; t < kThreads; ++t) {
    const size_t nq = 1 + t * 5;  // 1..36: both paths
    queries.push_back(RandomVectors(nq, d, seed + 10 + t));
    GpuSearchParams p;
    p.k = 1 + t * 30;
    auto r = GpuFlatSearch(**matrix, queries[t].data(), nq, d, p);
    ASSERT_TRUE(r.ok()) << r.status();
    alone.push_back(*r);
  }
  std::atomic<int> mismatches{0}, errors{0};
  std::vector<std::thread> threads;
  for (size_t t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t]() {
      GpuSearchParams p;
      p.k = 1 + t * 30;
      for (size_t round = 0; round < kRounds; ++round) {
        auto r = GpuFlatSearch(**matrix, queries[t].data(), queries[t].size() / d, d, p);
        if (!r.ok()) {
          ++errors;
          continue;
        }
        for (size_t i = 0; i < r->size(); ++i) {
          if ((*r)[i].size() != alone[t][i].size()) {
            ++mismatches;
            continue;
          }
          for (size_t j = 0; j < (*r)[i].size(); ++j) {
            if ((*r)[i][j].id != alone[t][i][j].id || (*r)[i][j].score != alone[t][i][j].score) {
              ++mismatches;
            }
          }
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(GpuFlatSearch, EmptyMatrixAndEmptyBatch) {
  ROSETTA_REQUIRE_CUDA_DEVICE();
  auto empty = GpuMatrix::Upload(nullptr, 0, 16);
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ((*empty)->rows(), 0u);
  const std::vector<float> q(3 * 16, 1.f);
  auto r = GpuFlatSearch(**empty, q.data(), 3, 16, GpuSearchParams{});
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), 3u);
  for (const auto& list : *r) EXPECT_TRUE(list.empty());

  const std::vector<float> b = RandomVectors(10, 16, 1);
  auto m = GpuMatrix::Upload(b.data(), 10, 16);
  ASSERT_TRUE(m.ok()) << m.status();
  auto none = GpuFlatSearch(**m, nullptr, 0, 16, GpuSearchParams{});
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_TRUE(none->empty());
  // Every row skipped: empty lists.
  const std::vector<uint64_t> all(1, ~uint64_t{0});
  GpuSearchParams p;
  p.skip = all;
  for (GpuPath path : {GpuPath::kFused, GpuPath::kTiled}) {
    p.path = path;
    auto skipped = GpuFlatSearch(**m, q.data(), 3, 16, p);
    ASSERT_TRUE(skipped.ok()) << skipped.status();
    for (const auto& list : *skipped) EXPECT_TRUE(list.empty());
  }
}

TEST(GpuFlatSearch, InvalidArgumentsAreStatuses) {
  ROSETTA_REQUIRE_CUDA_DEVICE();
  const std::vector<float> b = RandomVectors(100, 8, 3);
  EXPECT_STATUS(GpuMatrix::Upload(b.data(), 100, 0), absl::StatusCode::kInvalidArgument,
                "dimension");
  EXPECT_STATUS(GpuMatrix::Upload(nullptr, 100, 8), absl::StatusCode::kInvalidArgument, "null");
  EXPECT_STATUS(GpuMatrix::Upload(b.data(), 100, 8, {GpuStorage::kFloat32, -1}),
                absl::StatusCode::kInvalidArgument, "device");
  EXPECT_STATUS(GpuMatrix::Upload(b.data(), 100, 8, {GpuStorage::kFloat32, 1000}),
                absl::StatusCode::kInvalidArgument, "device");
  EXPECT_STATUS(GpuMatrix::Upload(b.data(), size_t{1} << 31, 8),
                absl::StatusCode::kInvalidArgument, "rows");
  EXPECT_STATUS(GetGpuDeviceInfo(1000), absl::StatusCode::kInvalidArgument, "device");

  auto m = GpuMatrix::Upload(b.data(), 100, 8);
  ASSERT_TRUE(m.ok()) << m.status();
  const std::vector<float> q(8, 1.f);
  GpuSearchParams p;
  p.k = 0;
  EXPECT_STATUS(GpuFlatSearch(**m, q.data(), 1, 8, p), absl::StatusCode::kInvalidArgument, "k=0");
  p.k = kGpuMaxK + 1;
  EXPECT_STATUS(GpuFlatSearch(**m, q.data(), 1, 8, p), absl::StatusCode::kInvalidArgument,
                "k=1025");
  p.k = 5;
  EXPECT_STATUS(GpuFlatSearch(**m, q.data(), 1, 7, p), absl::StatusCode::kInvalidArgument,
                "dimension d=7");
  EXPECT_STATUS(GpuFlatSearch(**m, nullptr, 1, 8, p), absl::StatusCode::kInvalidArgument, "null");
  // Still usable.
  auto ok = GpuFlatSearch(**m, q.data(), 1, 8, p);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ((*ok)[0].size(), 5u);
}

// A matrix larger than the device: ResourceExhausted, nothing read from the (unbacked) host
// range, and the device stays usable.
TEST(GpuFlatSearch, UploadLargerThanDeviceIsResourceExhausted) {
  ROSETTA_REQUIRE_CUDA_DEVICE();
  auto info = GetGpuDeviceInfo(0);
  ASSERT_TRUE(info.ok()) << info.status();
  const size_t d = 1024;
  const size_t bytes = info->total_bytes + (size_t{4} << 30);
  const size_t n = bytes / (d * 4);
  // Address space only (never touched when the device allocation fails first).
  void* host = mmap(nullptr, n * d * 4, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                    -1, 0);
  ASSERT_NE(host, MAP_FAILED);
  EXPECT_STATUS(GpuMatrix::Upload(static_cast<const float*>(host), n, d),
                absl::StatusCode::kResourceExhausted, "cudaMalloc");
  munmap(host, n * d * 4);

  const std::vector<float> b = RandomVectors(1000, 16, 4);
  auto m = GpuMatrix::Upload(b.data(), 1000, 16);
  ASSERT_TRUE(m.ok()) << m.status();
  GpuSearchParams p;
  p.metric = FlatMetric::kL2;  // each row is its own nearest neighbour
  auto r = GpuFlatSearch(**m, b.data(), 2, 16, p);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)[0][0].id, 0);
  EXPECT_EQ((*r)[1][0].id, 1);
}

// Search scratch larger than the device: ResourceExhausted; the matrix stays usable.
TEST(GpuFlatSearch, ScratchLargerThanDeviceIsResourceExhausted) {
  ROSETTA_REQUIRE_CUDA_DEVICE();
  auto info = GetGpuDeviceInfo(0);
  ASSERT_TRUE(info.ok()) << info.status();
  // Two tiles of 2048 queries x all rows of fp32 scores exceed the device.
  const size_t d = 4;
  const size_t nb = info->total_bytes / (2 * 2048 * 4) + 100000;
  std::vector<float> b(nb * d);
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<float>(i % 7) - 3.f;
  auto m = GpuMatrix::Upload(b.data(), nb, d);
  ASSERT_TRUE(m.ok()) << m.status();
  const std::vector<float> q = RandomVectors(2048, d, 5);
  GpuSearchParams p;
  p.path = GpuPath::kTiled;
  p.scratch_bytes = 2 * info->total_bytes;
  EXPECT_STATUS(GpuFlatSearch(**m, q.data(), 2048, d, p), absl::StatusCode::kResourceExhausted,
                "score tiles");
  p.scratch_bytes = 0;
  auto r = GpuFlatSearch(**m, q.data(), 4, d, p);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)[0].size(), p.k);
}

TEST(GpuFlatSearch, DeviceInfoIsPlausible) {
  ROSETTA_REQUIRE_CUDA_DEVICE();
  auto info = GetGpuDeviceInfo(0);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_FALSE(info->name.empty());
  EXPECT_GE(info->compute_major, 7);
  EXPECT_GT(info->multiprocessors, 0);
  EXPECT_GT(info->total_bytes, info->free_bytes / 2);
  EXPECT_GE(info->shared_bytes_per_block, size_t{48} * 1024);
  std::printf("[ info     ] %s, sm_%d%d, %d SMs, %.1f GiB, driver %d, runtime %d\n",
              info->name.c_str(), info->compute_major, info->compute_minor, info->multiprocessors,
              info->total_bytes / double(1 << 30), info->driver_version, info->runtime_version);
}

}  // namespace
}  // namespace rosetta::kernels
