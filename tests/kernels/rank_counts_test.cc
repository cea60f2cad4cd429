// Per-field rank counts (RankCountsReference) and the host raw score (FusedRawScore) of
// kernels/gpu_fused.h (label `kernels`, runs in CI without a GPU): the reference against a
// brute-force count written here (every row compared with every threshold, no binning) on
// randomised fields with presence and skip bitmaps, both metrics, duplicate rows and thresholds
// taken from actual rows' raw scores (so `equal` counts above 1 occur); FusedRawScore against
// hand-computed values and against the raw scores the fused reference search reports for a
// single unweighted term; argument errors.
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/gpu_fused.h"
#include "tests/testing/testing.h"

namespace rosetta::kernels {
namespace {

using ::rosetta::testing::SeedTrace;
using ::rosetta::testing::TestSeed;

bool Bit(const std::vector<uint64_t>& bits, size_t r) {
  return r / 64 < bits.size() && ((bits[r / 64] >> (r % 64)) & 1u) != 0;
}

// One field over `rows` rows with its queries and thresholds.
struct RankCase {
  size_t rows = 0, dim = 0, nq = 0, per_query = 0;
  FlatMetric metric = FlatMetric::kInnerProduct;
  std::vector<float> vectors, queries, thresholds;
  std::vector<uint64_t> present, skip;
  std::vector<FusedFieldData> Fields() const {
    // A second field so that params.field = 1 is exercised; it is never counted.
    return {FusedFieldData{other.data(), 2, {}, {}},
            FusedFieldData{vectors.data(), dim, present, {}}};
  }
  std::vector<float> other;
  RankCountParams Params() const {
    RankCountParams p;
    p.field = 1;
    p.metric = metric;
    p.queries = queries.data();
    p.thresholds = thresholds;
    p.skip = skip;
    return p;
  }
};

// Integer-valued data (many exactly equal scores) or Gaussian data; about a quarter of the rows
// copy an earlier row (equal scores whatever the data); thresholds mix rows' own raw scores,
// repeats, values beyond every score and random values.
RankCase MakeRankCase(size_t rows, size_t dim, size_t nq, size_t per_query, FlatMetric metric,
                      bool integer, bool with_present, bool with_skip, uint64_t seed) {
  RankCase c;
  c.rows = rows;
  c.dim = dim;
  c.nq = nq;
  c.per_query = per_query;
  c.metric = metric;
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> small(-2, 2);
  std::normal_distribution<float> g(0.f, 1.f);
  auto value = [&] { return integer ? static_cast<float>(small(rng)) : g(rng); };
  c.other.resize(rows * 2, 1.f);
  c.vectors.resize(rows * dim);
  for (size_t r = 0; r < rows; ++r) {
    if (r > 0 && rng() % 4 == 0) {
      const size_t from = rng() % r;
      for (size_t i = 0; i < dim; ++i) c.vectors[r * dim + i] = c.vectors[from * dim + i];
    } else {
      for (size_t i = 0; i < dim; ++i) c.vectors[r * dim + i] = value();
    }
  }
  c.queries.resize(nq * dim);
  for (float& v : c.queries) v = value();
  if (with_present) {
    c.present.assign((rows + 63) / 64 + rng() % 2, 0);  // sometimes a spare word
    for (size_t r = 0; r < rows; ++r) {
      if (rng() % 10 < 7) c.present[r / 64] |= uint64_t{1} << (r % 64);
    }
  }
  if (with_skip) {
    // Sometimes shorter than the rows: rows beyond the bitmap are counted.
    c.skip.assign(rows == 0 ? 1 : (rows + 63) / 64 - rng() % 2, 0);
    for (size_t r = 0; r < c.skip.size() * 64; ++r) {
      if (rng() % 5 == 0) c.skip[r / 64] |= uint64_t{1} << (r % 64);
    }
  }
  for (size_t q = 0; q < nq; ++q) {
    for (size_t j = 0; j < per_query; ++j) {
      const int kind = static_cast<int>(rng() % 8);
      float t;
      if (kind < 4 && rows > 0) {
        const size_t r = rng() % rows;  // present or not, skipped or not
        t = FusedRawScore(metric, c.queries.data() + q * dim, c.vectors.data() + r * dim, dim);
      } else if (kind == 4 && j > 0) {
        t = c.thresholds[q * per_query + rng() % j];  // a repeat within the query
      } else if (kind == 5) {
        t = (rng() % 2 == 0 ? 1 : -1) * 1e30f;
      } else if (kind == 6) {
        t = rng() % 2 == 0 ? 0.f : -0.f;
      } else {
        t = g(rng) * static_cast<float>(dim);
      }
      c.thresholds.push_back(t);
    }
  }
  return c;
}

// Every row against every threshold, straight from the definition in kernels/gpu_fused.h.
std::vector<RankCount> BruteForce(const RankCase& c) {
  std::vector<RankCount> out(c.nq * c.per_query);
  for (size_t q = 0; q < c.nq; ++q) {
    for (size_t r = 0; r < c.rows; ++r) {
      if (!c.present.empty() && !Bit(c.present, r)) continue;
      if (Bit(c.skip, r)) continue;
      const float s = FusedRawScore(c.metric, c.queries.data() + q * c.dim,
                                    c.vectors.data() + r * c.dim, c.dim);
      for (size_t j = 0; j < c.per_query; ++j) {
        const float t = c.thresholds[q * c.per_query + j];
        if (s > t) ++out[q * c.per_query + j].greater;
        if (s == t) ++out[q * c.per_query + j].equal;
      }
    }
  }
  return out;
}

void ExpectSameCounts(const std::vector<RankCount>& got, const std::vector<RankCount>& want,
                      size_t per_query) {
  ASSERT_EQ(got.size(), want.size());
  size_t mismatches = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i].greater != want[i].greater || got[i].equal != want[i].equal) {
      if (++mismatches <= 5) {
        ADD_FAILURE() << "query " << i / per_query << " threshold " << i % per_query
                      << ": got greater=" << got[i].greater << " equal=" << got[i].equal
                      << ", want greater=" << want[i].greater << " equal=" << want[i].equal;
      }
    }
  }
  EXPECT_EQ(mismatches, 0u);
}

TEST(FusedRawScoreTest, HandComputedValues) {
  const float a[] = {1, 2, 3}, b[] = {4, 5, 6};
  EXPECT_EQ(FusedRawScore(FlatMetric::kInnerProduct, a, b, 3), 32.f);
  EXPECT_EQ(FusedRawScore(FlatMetric::kL2, a, b, 3), -27.f);
  EXPECT_EQ(FusedRawScore(FlatMetric::kL2, a, a, 3), 0.f);
  EXPECT_EQ(FusedRawScore(FlatMetric::kInnerProduct, a, b, 0), 0.f);
  // The chain is fused: (1 + 2^-12)^2 - (1 + 2^-11) = 2^-24 exactly with one rounding, while a
  // rounded product (1 + 2^-11) would cancel to 0.
  const float e = std::ldexp(1.f, -12);
  const float q[] = {1.f, 1.f + e}, v[] = {-(1.f + 2 * e), 1.f + e};
  EXPECT_EQ(FusedRawScore(FlatMetric::kInnerProduct, q, v, 2), std::ldexp(1.f, -24));
  // Element order: 1e8 + 1 - 1e8 in fp32 is 0 in this order (1 is lost), 1 in another.
  const float ones[] = {1, 1, 1}, big[] = {1e8f, 1.f, -1e8f};
  EXPECT_EQ(FusedRawScore(FlatMetric::kInnerProduct, ones, big, 3), 0.f);
}

// The fused score of one term with weight 1, record weight 1, normalisation none and factor 1 is
// float(double(raw)) = raw: the fused reference search reports FusedRawScore's values exactly.
TEST(FusedRawScoreTest, MatchesFusedReferenceRawScores) {
  const uint64_t seed = TestSeed(6061);
  SCOPED_TRACE(SeedTrace(seed));
  for (FlatMetric metric : {FlatMetric::kInnerProduct, FlatMetric::kL2}) {
    for (size_t dim : {1u, 5u, 64u, 131u}) {
      SCOPED_TRACE(::testing::Message() << "metric " << static_cast<int>(metric) << " dim "
                                        << dim);
      const RankCase c = MakeRankCase(300, dim, 3, 1, metric, /*integer=*/false,
                                      /*with_present=*/true, /*with_skip=*/true,
                                      seed + dim * 2 + static_cast<int>(metric));
      const std::vector<FusedFieldData> fields = c.Fields();
      FusedTerm term;
      term.field = 1;
      term.metric = metric;
      term.weight = 1.0;
      term.queries = c.queries.data();
      FusedParams params;
      params.k = c.rows;
      params.terms = {&term, 1};
      params.missing = FusedMissing::kRenormalize;
      params.skip = c.skip;
      ASSERT_OK_AND_ASSIGN(auto results, FusedReferenceSearch(c.rows, fields, c.nq, params));
      size_t counted = 0;
      for (size_t r = 0; r < c.rows; ++r) counted += Bit(c.present, r) && !Bit(c.skip, r);
      for (size_t q = 0; q < c.nq; ++q) {
        ASSERT_EQ(results[q].size(), counted) << "query " << q;
        for (const Scored& s : results[q]) {
          const float raw = FusedRawScore(metric, c.queries.data() + q * dim,
                                          c.vectors.data() + s.id * dim, dim);
          EXPECT_EQ(std::bit_cast<uint32_t>(s.score), std::bit_cast<uint32_t>(raw))
              << "query " << q << " row " << s.id << ": fused " << s.score << " raw " << raw;
        }
      }
    }
  }
}

TEST(RankCountsReferenceTest, HandComputedCounts) {
  // One field of dimension 1, inner product with query [1]: raw = the values; row 4 lacks the
  // field, row 5 is skipped, row 6 is NaN.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> v = {3, 1, 3, 2, 9, 9, nan, 3};
  const std::vector<uint64_t> present = {0b11101111};
  const std::vector<uint64_t> skip = {0b00100000};
  const std::vector<FusedFieldData> fields = {FusedFieldData{v.data(), 1, present, {}}};
  const float query = 1;
  const std::vector<float> thresholds = {3, 0, 2.5f, 3, 10, 1};
  RankCountParams p;
  p.queries = &query;
  p.thresholds = thresholds;
  p.skip = skip;
  ASSERT_OK_AND_ASSIGN(auto got, RankCountsReference(v.size(), fields, 1, p));
  // Counted scores: 3, 1, 3, 2, 3.
  const std::vector<RankCount> want = {{0, 3}, {5, 0}, {3, 0}, {0, 3}, {0, 0}, {4, 1}};
  ExpectSameCounts(got, want, thresholds.size());
}

TEST(RankCountsReferenceTest, MatchesBruteForce) {
  const uint64_t seed = TestSeed(424242);
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  struct Shape {
    size_t rows, dim, nq, per_query;
  };
  const Shape shapes[] = {{0, 3, 2, 4},    {1, 1, 1, 1},      {63, 4, 3, 10},
                          {64, 7, 1, 64},  {65, 16, 5, 33},   {300, 2, 2, 1024},
                          {777, 33, 4, 100}, {1000, 1, 9, 17}};
  size_t equal_above_one = 0;
  for (const Shape& shape : shapes) {
    for (FlatMetric metric : {FlatMetric::kInnerProduct, FlatMetric::kL2}) {
      for (int variant = 0; variant < 4; ++variant) {
        const uint64_t case_seed = rng();
        SCOPED_TRACE(::testing::Message()
                     << "rows " << shape.rows << " dim " << shape.dim << " nq " << shape.nq
                     << " per_query " << shape.per_query << " metric "
                     << static_cast<int>(metric) << " variant " << variant);
        const RankCase c = MakeRankCase(shape.rows, shape.dim, shape.nq, shape.per_query, metric,
                                        /*integer=*/variant % 2 == 0,
                                        /*with_present=*/variant >= 2, /*with_skip=*/variant != 2,
                                        case_seed);
        const std::vector<FusedFieldData> fields = c.Fields();
        ASSERT_OK_AND_ASSIGN(auto got, RankCountsReference(c.rows, fields, c.nq, c.Params()));
        const std::vector<RankCount> want = BruteForce(c);
        ExpectSameCounts(got, want, c.per_query);
        for (const RankCount& w : want) equal_above_one += w.equal > 1;
      }
    }
  }
  EXPECT_GT(equal_above_one, 0u) << "the cases never produced tied rows";
}

TEST(RankCountsReferenceTest, NoQueries) {
  const RankCase c = MakeRankCase(10, 3, 0, 0, FlatMetric::kL2, false, false, false, 1);
  const std::vector<FusedFieldData> fields = c.Fields();
  ASSERT_OK_AND_ASSIGN(auto got, RankCountsReference(c.rows, fields, 0, c.Params()));
  EXPECT_TRUE(got.empty());
}

TEST(RankCountsReferenceTest, ArgumentErrors) {
  const RankCase c = MakeRankCase(100, 4, 2, 3, FlatMetric::kInnerProduct, false, true, false, 7);
  const std::vector<FusedFieldData> fields = c.Fields();
  const auto run = [&](const RankCountParams& p, size_t nq = 2) {
    return RankCountsReference(c.rows, fields, nq, p).status();
  };
  const absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;
  RankCountParams p = c.Params();
  ASSERT_OK(run(p));

  p.field = 2;
  EXPECT_STATUS(run(p), kInvalid, "field 2 of 2");
  p = c.Params();
  p.metric = static_cast<FlatMetric>(7);
  EXPECT_STATUS(run(p), kInvalid, "metric");
  p = c.Params();
  p.queries = nullptr;
  EXPECT_STATUS(run(p), kInvalid, "null queries");
  p = c.Params();
  p.thresholds = {};
  EXPECT_STATUS(run(p), kInvalid, "no thresholds");
  p = c.Params();
  p.thresholds = std::span<const float>(c.thresholds).first(5);
  EXPECT_STATUS(run(p), kInvalid, "not a multiple of nq=2");
  EXPECT_STATUS(run(c.Params(), 0), kInvalid, "nq=0");
  const std::vector<float> too_many(2 * (kGpuMaxK + 1), 0.f);
  p = c.Params();
  p.thresholds = too_many;
  EXPECT_STATUS(run(p), kInvalid, "1025 thresholds per query");
  constexpr float kInf = std::numeric_limits<float>::infinity();
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), kInf, -kInf}) {
    std::vector<float> t = c.thresholds;
    t[4] = bad;
    p = c.Params();
    p.thresholds = t;
    EXPECT_STATUS(run(p), kInvalid, "threshold 1 of query 1");
  }
  // The field checks of GpuFieldSet::Upload.
  EXPECT_STATUS(RankCountsReference(c.rows, {}, 2, c.Params()).status(), kInvalid, "no fields");
  const std::vector<uint64_t> short_present(1, ~uint64_t{0});
  std::vector<FusedFieldData> bad_fields = fields;
  bad_fields[1].present = short_present;
  EXPECT_STATUS(RankCountsReference(c.rows, bad_fields, 2, c.Params()).status(), kInvalid,
                "presence bitmap");
  bad_fields = fields;
  bad_fields[1].vectors = nullptr;
  EXPECT_STATUS(RankCountsReference(c.rows, bad_fields, 2, c.Params()).status(), kInvalid,
                "null vectors");
}

}  // namespace
}  // namespace rosetta::kernels
