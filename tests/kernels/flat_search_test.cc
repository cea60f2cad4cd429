// FlatSearch against brute force (IP and L2, with and without a pool, skip bitmaps, k > nb) for
// every supported SIMD level, and against the official SIFT10K ground truth.
#include "kernels/flat_search.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/parallel.h"
#include "kernels/simd.h"
#include "tests/testing/testing.h"

namespace rosetta::kernels {
namespace {

using ::rosetta::testing::SeedTrace;
using ::rosetta::testing::TestSeed;

// Small integers: every score is exact in float, so the result (ids and scores, ties broken by
// id) must equal the brute-force reference exactly.
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

// Brute force in double precision, sorted by (score desc, id asc).
std::vector<std::vector<Scored>> BruteForce(const std::vector<float>& q, size_t nq,
                                            const std::vector<float>& b, size_t nb, size_t d,
                                            size_t k, FlatMetric metric,
                                            const std::vector<uint64_t>& skip) {
  std::vector<std::vector<Scored>> out(nq);
  for (size_t i = 0; i < nq; ++i) {
    std::vector<std::pair<double, int64_t>> all;
    for (size_t j = 0; j < nb; ++j) {
      if (IsSkipped(skip, j)) continue;
      double s = 0;
      for (size_t t = 0; t < d; ++t) {
        const double x = q[i * d + t], y = b[j * d + t];
        s += metric == FlatMetric::kL2 ? -(x - y) * (x - y) : x * y;
      }
      all.emplace_back(s, static_cast<int64_t>(j));
    }
    std::sort(all.begin(), all.end(), [](const auto& x, const auto& y) {
      return x.first != y.first ? x.first > y.first : x.second < y.second;
    });
    for (size_t r = 0; r < std::min(k, all.size()); ++r) {
      out[i].push_back({static_cast<float>(all[r].first), all[r].second});
    }
  }
  return out;
}

void ExpectExactlyEqual(const std::vector<std::vector<Scored>>& got,
                        const std::vector<std::vector<Scored>>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i].size(), want[i].size()) << "query " << i;
    for (size_t r = 0; r < got[i].size(); ++r) {
      ASSERT_EQ(got[i][r].id, want[i][r].id) << "query " << i << " rank " << r;
      ASSERT_EQ(got[i][r].score, want[i][r].score) << "query " << i << " rank " << r;
    }
  }
}

class FlatSearchLevelTest : public ::testing::TestWithParam<SimdLevel> {};

INSTANTIATE_TEST_SUITE_P(AllSupported, FlatSearchLevelTest,
                         ::testing::ValuesIn(SupportedSimdLevels()),
                         [](const ::testing::TestParamInfo<SimdLevel>& info) {
                           return std::string(SimdLevelName(info.param));
                         });

TEST_P(FlatSearchLevelTest, MatchesBruteForceExactly) {
  const uint64_t seed = TestSeed(301);
  SCOPED_TRACE(SeedTrace(seed));
  ThreadPool pool2(2), pool3(3);
  struct Shape {
    size_t nq, nb, d;
  };
  // nb spans several base blocks for the larger d (a block is ~512 KiB of base rows, >= 64 rows);
  // nq spans several 64-query tiles and the few-query path.
  const Shape shapes[] = {{1, 1, 3},     {1, 2500, 300}, {3, 700, 17},  {17, 130, 64},
                          {64, 1000, 200}, {70, 513, 128}, {130, 90, 33}, {5, 9000, 16}};
  for (const Shape& s : shapes) {
    const std::vector<float> q = IntegerVectors(s.nq, s.d, 3, seed + s.nq);
    const std::vector<float> b = IntegerVectors(s.nb, s.d, 3, seed + s.nb + 7);
    std::vector<uint64_t> skip((s.nb + 63) / 64, 0);
    std::mt19937_64 rng(seed + 11);
    std::bernoulli_distribution coin(0.3);
    for (size_t j = 0; j < s.nb; ++j) {
      if (coin(rng)) skip[j / 64] |= uint64_t{1} << (j % 64);
    }
    for (FlatMetric metric : {FlatMetric::kInnerProduct, FlatMetric::kL2}) {
      for (bool use_skip : {false, true}) {
        // The full reference ranking once; each k takes its prefix.
        const auto full = BruteForce(q, s.nq, b, s.nb, s.d, s.nb, metric,
                                     use_skip ? skip : std::vector<uint64_t>{});
        for (size_t k : {size_t{1}, size_t{10}, s.nb, s.nb + 5}) {
          auto want = full;
          for (auto& w : want) w.resize(std::min(k, w.size()));
          for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), &pool2, &pool3}) {
            SCOPED_TRACE("nq=" + std::to_string(s.nq) + " nb=" + std::to_string(s.nb) +
                         " d=" + std::to_string(s.d) + " k=" + std::to_string(k) +
                         " l2=" + std::to_string(metric == FlatMetric::kL2) +
                         " threads=" + std::to_string(pool ? pool->threads() : 1) +
                         " skip=" + std::to_string(use_skip));
            FlatSearchParams p;
            p.k = k;
            p.metric = metric;
            p.pool = pool;
            p.kernels = &GetKernelTable(GetParam());
            if (use_skip) p.skip = skip;
            const auto got = FlatSearch(q.data(), s.nq, b.data(), s.nb, s.d, p);
            ASSERT_NO_FATAL_FAILURE(ExpectExactlyEqual(got, want));
          }
        }
      }
    }
  }
}

TEST_P(FlatSearchLevelTest, L2WithGivenNormsEqualsComputedNorms) {
  const uint64_t seed = TestSeed(302);
  SCOPED_TRACE(SeedTrace(seed));
  const size_t nq = 20, nb = 1500, d = 96;
  const std::vector<float> q = testing::RandomVectors(nq, d, seed);
  const std::vector<float> b = testing::ClusteredVectors(nb, d, 10, seed + 1);
  const KernelTable& t = GetKernelTable(GetParam());
  std::vector<float> norms(nb);
  SquaredNorms(b.data(), nb, d, norms.data(), &t);
  for (size_t j = 0; j < nb; ++j) {
    double ref = 0;
    for (size_t x = 0; x < d; ++x) ref += double(b[j * d + x]) * b[j * d + x];
    ASSERT_NEAR(norms[j], ref, 1e-5 * ref);
  }
  FlatSearchParams p;
  p.k = 15;
  p.metric = FlatMetric::kL2;
  p.kernels = &t;
  const auto computed = FlatSearch(q.data(), nq, b.data(), nb, d, p);
  p.base_sqnorms = norms;
  ThreadPool pool(2);
  p.pool = &pool;
  const auto given = FlatSearch(q.data(), nq, b.data(), nb, d, p);
  ASSERT_NO_FATAL_FAILURE(ExpectExactlyEqual(given, computed));
}

TEST_P(FlatSearchLevelTest, FloatDataMatchesBruteForceWithinRounding) {
  // Real-valued data: the ranking may only differ from the double-precision reference between
  // candidates whose reference scores are within float rounding of each other.
  const uint64_t seed = TestSeed(303);
  SCOPED_TRACE(SeedTrace(seed));
  const size_t nq = 40, nb = 2000, d = 128, k = 20;
  const std::vector<float> q = testing::ClusteredVectors(nq, d, 8, seed);
  const std::vector<float> b = testing::ClusteredVectors(nb, d, 8, seed + 1);
  ThreadPool pool(2);
  for (FlatMetric metric : {FlatMetric::kInnerProduct, FlatMetric::kL2}) {
    FlatSearchParams p;
    p.k = k;
    p.metric = metric;
    p.pool = &pool;
    p.kernels = &GetKernelTable(GetParam());
    const auto got = FlatSearch(q.data(), nq, b.data(), nb, d, p);
    const auto want = BruteForce(q, nq, b, nb, d, k, metric, {});
    for (size_t i = 0; i < nq; ++i) {
      ASSERT_EQ(got[i].size(), k);
      for (size_t r = 0; r < k; ++r) {
        const float tol = 1e-4f * (1.0f + std::fabs(want[i][r].score));
        EXPECT_NEAR(got[i][r].score, want[i][r].score, tol) << "query " << i << " rank " << r;
        if (r > 0) {
          EXPECT_FALSE(RanksBefore(got[i][r], got[i][r - 1])) << "not sorted";
        }
      }
    }
  }
}

TEST(FlatSearch, DegenerateInputsGiveEmptyResults) {
  const std::vector<float> v(32, 1.0f);
  FlatSearchParams p;
  p.k = 0;
  auto r = FlatSearch(v.data(), 2, v.data(), 4, 8, p);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_TRUE(r[0].empty() && r[1].empty());
  p.k = 3;
  r = FlatSearch(v.data(), 2, v.data(), 0, 8, p);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_TRUE(r[0].empty());
  EXPECT_TRUE(FlatSearch(v.data(), 0, v.data(), 4, 8, p).empty());
  // Everything skipped.
  const std::vector<uint64_t> all = {0xF};
  p.skip = all;
  r = FlatSearch(v.data(), 1, v.data(), 4, 8, p);
  EXPECT_TRUE(r[0].empty());
}

TEST(FlatSearch, ResultsDoNotDependOnThreadCount) {
  const uint64_t seed = TestSeed(304);
  SCOPED_TRACE(SeedTrace(seed));
  const size_t nq = 33, nb = 5000, d = 64;
  const std::vector<float> q = testing::RandomVectors(nq, d, seed);
  const std::vector<float> b = testing::RandomVectors(nb, d, seed + 1);
  FlatSearchParams p;
  p.k = 50;
  const auto serial = FlatSearch(q.data(), nq, b.data(), nb, d, p);
  for (size_t threads : {2, 3, 5}) {
    ThreadPool pool(threads);
    p.pool = &pool;
    ExpectExactlyEqual(FlatSearch(q.data(), nq, b.data(), nb, d, p), serial);
  }
}

// --- SIFT10K (official ground truth) -------------------------------------------------------

// Minimal .npy reader for the shared data (version 1.0 header, little-endian, C order).
bool ReadNpy(const std::string& path, const std::string& descr, std::vector<size_t>* shape,
             std::vector<char>* bytes) {
  std::ifstream in(path, std::ios::binary);
  char magic[8];
  if (!in.read(magic, 8) || std::memcmp(magic, "\x93NUMPY\x01\x00", 8) != 0) return false;
  unsigned char len[2];
  if (!in.read(reinterpret_cast<char*>(len), 2)) return false;
  std::string header(len[0] | (len[1] << 8), '\0');
  if (!in.read(header.data(), header.size())) return false;
  if (header.find("'descr': '" + descr + "'") == std::string::npos) return false;
  if (header.find("'fortran_order': False") == std::string::npos) return false;
  const size_t open = header.find('(', header.find("'shape'"));
  const size_t close = header.find(')', open);
  shape->clear();
  size_t count = 1;
  for (size_t p = open + 1; p < close;) {
    const size_t v = std::strtoull(header.c_str() + p, nullptr, 10);
    shape->push_back(v);
    count *= v;
    p = header.find(',', p);
    if (p == std::string::npos || p > close) break;
    ++p;
    while (p < close && header[p] == ' ') ++p;
  }
  bytes->resize(count * 4);
  return static_cast<bool>(in.read(bytes->data(), bytes->size()));
}

std::vector<float> AsFloats(const std::vector<char>& bytes) {
  std::vector<float> v(bytes.size() / 4);
  std::memcpy(v.data(), bytes.data(), bytes.size());
  return v;
}

TEST_P(FlatSearchLevelTest, Sift10kMatchesOfficialGroundTruth) {
  ROSETTA_REQUIRE_SHARED_DATA("sift10k_siftsmall", dir);
  std::vector<size_t> bshape, qshape;
  std::vector<char> bbytes, qbytes;
  ASSERT_TRUE(ReadNpy(dir + "/base.npy", "<f4", &bshape, &bbytes));
  ASSERT_TRUE(ReadNpy(dir + "/query.npy", "<f4", &qshape, &qbytes));
  ASSERT_EQ(bshape, (std::vector<size_t>{10000, 128}));
  ASSERT_EQ(qshape, (std::vector<size_t>{100, 128}));
  const std::vector<float> base = AsFloats(bbytes), queries = AsFloats(qbytes);
  // Official ground truth (.ivecs: per row an int32 count, then the ids).
  std::ifstream gt_in(dir + "/siftsmall_groundtruth.ivecs", std::ios::binary);
  std::vector<int32_t> gt_raw(100 * 101);
  ASSERT_TRUE(gt_in.read(reinterpret_cast<char*>(gt_raw.data()), gt_raw.size() * 4));
  const size_t nq = 100, nb = 10000, d = 128, k = 100;

  ThreadPool pool(2);
  FlatSearchParams p;
  p.k = k;
  p.metric = FlatMetric::kL2;
  p.pool = &pool;
  p.kernels = &GetKernelTable(GetParam());
  const auto got = FlatSearch(queries.data(), nq, base.data(), nb, d, p);
  ASSERT_EQ(got.size(), nq);

  auto exact_dist = [&](size_t qi, int64_t id) {
    int64_t s = 0;
    for (size_t x = 0; x < d; ++x) {
      const int64_t t = static_cast<int64_t>(queries[qi * d + x]) - static_cast<int64_t>(base[id * d + x]);
      s += t * t;
    }
    return s;
  };
  size_t tie_permuted_queries = 0;
  for (size_t qi = 0; qi < nq; ++qi) {
    ASSERT_EQ(gt_raw[qi * 101], 100);
    const int32_t* gt = &gt_raw[qi * 101 + 1];
    ASSERT_EQ(got[qi].size(), k);
    bool permuted = false;
    for (size_t r = 0; r < k; ++r) {
      // SIFT is integer-valued: our scores are exact, -||q - b||^2.
      const int64_t dist = exact_dist(qi, gt[r]);
      ASSERT_EQ(got[qi][r].score, -static_cast<float>(dist)) << "query " << qi << " rank " << r;
      if (got[qi][r].id != gt[r]) {
        // Only allowed inside a group of exactly tied distances, which the official file orders
        // differently from our (documented) smaller-id-first rule.
        ASSERT_EQ(exact_dist(qi, got[qi][r].id), dist) << "query " << qi << " rank " << r;
        permuted = true;
      }
    }
    std::set<int64_t> ours, theirs(gt, gt + k);
    for (const Scored& s : got[qi]) ours.insert(s.id);
    ASSERT_EQ(ours, theirs) << "query " << qi;
    tie_permuted_queries += permuted;
  }
  // The official file lists 9 tied pairs with the larger id first; everything else is identical.
  EXPECT_EQ(tie_permuted_queries, 9u);
}

}  // namespace
}  // namespace rosetta::kernels
