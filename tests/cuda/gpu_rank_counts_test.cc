// GPU per-field rank counts (GpuRankCounts, kernels/gpu_fused.h) against the CPU reference
// (RankCountsReference, itself checked against a brute-force count in
// tests/kernels/rank_counts_test.cc); CTest label `cuda`. The device and the reference compute the
// same fp32 fmaf chains, so every count must be equal exactly. Tests that need a device skip with
// a message where there is none (CI).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/device.h"
#include "kernels/gpu_fused.h"
#include "tests/testing/testing.h"

namespace rosetta::kernels {
namespace {

using ::rosetta::testing::SeedTrace;
using ::rosetta::testing::TestSeed;

#define ROSETTA_REQUIRE_CUDA_DEVICE()                                                         \
  if (CudaDeviceCount() == 0) {                                                               \
    GTEST_SKIP() << "no usable CUDA device (built with CUDA: "                                \
                 << (BuiltWithCuda() ? "yes" : "no") << "); GPU test skipped";                \
  }

// Three fields over one row space: field 0 (dim 3) everywhere, field 1 (dim 1..) on about 70% of
// the rows, field 2 (the widest) on about half. A quarter of the rows copy an earlier row, so
// equal scores occur; integer data gives many more.
struct RankData {
  size_t rows = 0;
  std::vector<size_t> dims;
  std::vector<std::vector<float>> vectors;
  std::vector<std::vector<uint64_t>> present;
  std::vector<FusedFieldData> fields;
};

RankData MakeData(size_t rows, std::vector<size_t> dims, bool integer, uint64_t seed) {
  RankData d;
  d.rows = rows;
  d.dims = dims;
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> small(-2, 2);
  std::normal_distribution<float> g(0.f, 1.f);
  for (size_t f = 0; f < dims.size(); ++f) {
    const size_t dim = dims[f];
    std::vector<float> v(rows * dim);
    for (size_t r = 0; r < rows; ++r) {
      if (r > 0 && rng() % 4 == 0) {
        const size_t from = rng() % r;
        for (size_t i = 0; i < dim; ++i) v[r * dim + i] = v[from * dim + i];
      } else {
        for (size_t i = 0; i < dim; ++i) {
          v[r * dim + i] = integer ? static_cast<float>(small(rng)) : g(rng);
        }
      }
    }
    d.vectors.push_back(std::move(v));
    std::vector<uint64_t> bits;
    if (f > 0) {
      bits.assign((rows + 63) / 64, 0);
      const unsigned percent = f == 1 ? 70 : 50;
      for (size_t r = 0; r < rows; ++r) {
        if (rng() % 100 < percent) bits[r / 64] |= uint64_t{1} << (r % 64);
      }
    }
    d.present.push_back(std::move(bits));
  }
  for (size_t f = 0; f < dims.size(); ++f) {
    d.fields.push_back(FusedFieldData{d.vectors[f].data(), dims[f], d.present[f], {}});
  }
  return d;
}

struct Request {
  std::vector<float> queries, thresholds;
  std::vector<uint64_t> skip;
};

// Thresholds: rows' own raw scores (present or not), repeats, values below / above every score
// (every counted row lands in the top bin: the atomics' worst case), zeros and random values.
Request MakeRequest(const RankData& d, size_t field, FlatMetric metric, size_t nq,
                    size_t per_query, bool integer, bool with_skip, uint64_t seed) {
  Request req;
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> small(-2, 2);
  std::normal_distribution<float> g(0.f, 1.f);
  const size_t dim = d.dims[field];
  req.queries.resize(nq * dim);
  for (float& v : req.queries) v = integer ? static_cast<float>(small(rng)) : g(rng);
  for (size_t q = 0; q < nq; ++q) {
    for (size_t j = 0; j < per_query; ++j) {
      const int kind = static_cast<int>(rng() % 8);
      float t;
      if (kind < 4 && d.rows > 0) {
        const size_t r = rng() % d.rows;
        t = FusedRawScore(metric, req.queries.data() + q * dim,
                          d.vectors[field].data() + r * dim, dim);
      } else if (kind == 4 && j > 0) {
        t = req.thresholds[q * per_query + rng() % j];
      } else if (kind == 5) {
        t = (rng() % 2 == 0 ? 1 : -1) * 1e30f;
      } else if (kind == 6) {
        t = rng() % 2 == 0 ? 0.f : -0.f;
      } else {
        t = g(rng) * static_cast<float>(dim);
      }
      req.thresholds.push_back(t);
    }
  }
  if (with_skip) {
    // Covers about two thirds of the rows: those beyond are counted.
    req.skip.assign(d.rows * 2 / 3 / 64 + 1, 0);
    for (uint64_t& w : req.skip) w = rng() & rng();
  }
  return req;
}

RankCountParams Params(const Request& req, size_t field, FlatMetric metric) {
  RankCountParams p;
  p.field = field;
  p.metric = metric;
  p.queries = req.queries.data();
  p.thresholds = req.thresholds;
  p.skip = req.skip;
  return p;
}

// Runs reference and GPU; returns how many (query, threshold) counts differ (reported as failures)
// and adds the number of counts with equal > 1 to *ties.
void Compare(const RankData& d, const GpuFieldSet& set, size_t field, FlatMetric metric, size_t nq,
             size_t per_query, bool integer, bool with_skip, uint64_t seed, size_t* ties) {
  SCOPED_TRACE(::testing::Message()
               << "rows " << d.rows << " field " << field << " metric "
               << static_cast<int>(metric) << " nq " << nq << " per_query " << per_query
               << " integer " << integer << " skip " << with_skip);
  const Request req = MakeRequest(d, field, metric, nq, per_query, integer, with_skip, seed);
  const RankCountParams p = Params(req, field, metric);
  ASSERT_OK_AND_ASSIGN(const auto want, RankCountsReference(d.rows, d.fields, nq, p));
  ASSERT_OK_AND_ASSIGN(const auto got, GpuRankCounts(set, nq, p));
  ASSERT_EQ(got.size(), want.size());
  size_t mismatches = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    *ties += want[i].equal > 1;
    if (got[i].greater != want[i].greater || got[i].equal != want[i].equal) {
      if (++mismatches <= 5) {
        ADD_FAILURE() << "query " << i / per_query << " threshold " << i % per_query << " ("
                      << req.thresholds[i] << "): gpu greater=" << got[i].greater
                      << " equal=" << got[i].equal << ", reference greater=" << want[i].greater
                      << " equal=" << want[i].equal;
      }
    }
  }
  EXPECT_EQ(mismatches, 0u);
}

TEST(GpuRankCounts, MatchesReferenceExactly) {
  ROSETTA_REQUIRE_CUDA_DEVICE();
  const uint64_t seed = TestSeed(6006);
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  size_t ties = 0;
  // Row counts around the block size (256) and larger; dims below, at and above multiples of 4.
  for (size_t rows : {size_t{1}, size_t{255}, size_t{256}, size_t{257}, size_t{1000},
                      size_t{20011}, size_t{100003}}) {
    for (bool integer : {false, true}) {
      const RankData d = MakeData(rows, {3, 4, 129}, integer, rng());
      ASSERT_OK_AND_ASSIGN(const auto set, GpuFieldSet::Upload(d.rows, d.fields));
      for (size_t field = 0; field < 3; ++field) {
        for (FlatMetric metric : {FlatMetric::kInnerProduct, FlatMetric::kL2}) {
          for (const auto& [nq, per_query] :
               {std::pair<size_t, size_t>{1, 1}, {3, 10}, {5, 1024}, {9, 100}, {17, 7}}) {
            Compare(d, *set, field, metric, nq, per_query, integer, /*with_skip=*/rng() % 2 == 0,
                    rng(), &ties);
          }
        }
      }
    }
  }
  EXPECT_GT(ties, 0u) << "the cases never produced tied rows";
  std::printf("[ rank-gpu ] counts with equal > 1: %zu\n", ties);
}

TEST(GpuRankCounts, ZeroRowsAndZeroQueries) {
  ROSETTA_REQUIRE_CUDA_DEVICE();
  const RankData d = MakeData(0, {5}, false, 1);
  ASSERT_OK_AND_ASSIGN(const auto set, GpuFieldSet::Upload(0, d.fields));
  const std::vector<float> queries(2 * 5, 1.f);
  const std::vector<float> thresholds = {0.f, -1.f, 3.f, 3.f};
  RankCountParams p;
  p.queries = queries.data();
  p.thresholds = thresholds;
  ASSERT_OK_AND_ASSIGN(const auto got, GpuRankCounts(*set, 2, p));
  ASSERT_EQ(got.size(), 4u);
  for (const RankCount& c : got) {
    EXPECT_EQ(c.greater, 0);
    EXPECT_EQ(c.equal, 0);
  }
  p.thresholds = {};
  ASSERT_OK_AND_ASSIGN(const auto none, GpuRankCounts(*set, 0, p));
  EXPECT_TRUE(none.empty());
}

TEST(GpuRankCounts, ArgumentErrors) {
  ROSETTA_REQUIRE_CUDA_DEVICE();
  const RankData d = MakeData(100, {4, 2}, false, 2);
  ASSERT_OK_AND_ASSIGN(const auto set, GpuFieldSet::Upload(d.rows, d.fields));
  const Request req = MakeRequest(d, 0, FlatMetric::kL2, 2, 3, false, false, 3);
  const absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;
  RankCountParams p = Params(req, 0, FlatMetric::kL2);
  ASSERT_OK(GpuRankCounts(*set, 2, p).status());
  p.field = 2;
  EXPECT_STATUS(GpuRankCounts(*set, 2, p).status(), kInvalid, "field 2 of 2");
  p = Params(req, 0, static_cast<FlatMetric>(9));
  EXPECT_STATUS(GpuRankCounts(*set, 2, p).status(), kInvalid, "metric");
  p = Params(req, 0, FlatMetric::kL2);
  p.queries = nullptr;
  EXPECT_STATUS(GpuRankCounts(*set, 2, p).status(), kInvalid, "null queries");
  p = Params(req, 0, FlatMetric::kL2);
  EXPECT_STATUS(GpuRankCounts(*set, 4, p).status(), kInvalid, "not a multiple");
  std::vector<float> t = req.thresholds;
  t[0] = std::numeric_limits<float>::quiet_NaN();
  p.thresholds = t;
  EXPECT_STATUS(GpuRankCounts(*set, 2, p).status(), kInvalid, "threshold 0 of query 0");
  const std::vector<float> too_many(kGpuMaxK + 1, 0.f);
  p.thresholds = too_many;
  EXPECT_STATUS(GpuRankCounts(*set, 1, p).status(), kInvalid, "per query");
}

}  // namespace
}  // namespace rosetta::kernels
