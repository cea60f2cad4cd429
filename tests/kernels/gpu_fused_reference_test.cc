// The CPU reference of fused multi-field scoring (kernels/gpu_fused.h, label `kernels`, runs in
// CI): hand-computed cases for every missing policy, record weights, zero weights, normalisation
// and the skip bitmap; exact agreement with an independent oracle written from
// docs/query-semantics.md on integer data (where every step is exact); agreement within a
// tolerance on random data; argument errors.
#include "kernels/gpu_fused.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cuda/fused_fields_math.cuh"
#include "tests/testing/testing.h"

namespace rosetta::kernels {
namespace {

using ::rosetta::testing::SeedTrace;
using ::rosetta::testing::TestSeed;

struct Ids {
  std::vector<int64_t> ids;
  std::vector<float> scores;
};

Ids Flatten(const std::vector<Scored>& v) {
  Ids out;
  for (const Scored& s : v) {
    out.ids.push_back(s.id);
    out.scores.push_back(s.score);
  }
  return out;
}

// Two fields of dimension 1 over 4 rows (A: rows 0, 1; B: rows 0, 2; row 3 has neither), inner
// product, queries [1] and [1]: raw A = (2, 4, -, -), raw B = (3, -, 5, -).
struct Tiny {
  std::vector<float> a = {2, 4, 0, 0}, b = {3, 0, 5, 0};
  std::vector<uint64_t> pa = {0b0011}, pb = {0b0101};
  std::vector<float> rw_a = {1, 1, 1, 1};
  float qa = 1, qb = 1;
  std::vector<FusedFieldData> Fields() {
    return {FusedFieldData{a.data(), 1, pa, rw_a}, FusedFieldData{b.data(), 1, pb, {}}};
  }
};

std::vector<Scored> RunTiny(Tiny& t, FusedMissing missing, double wa, double wb,
                            std::vector<uint64_t> skip = {}) {
  std::vector<FusedFieldData> fields = t.Fields();
  std::vector<FusedTerm> terms(2);
  terms[0] = FusedTerm{0, FlatMetric::kInnerProduct, wa, &t.qa, {}, {}};
  terms[1] = FusedTerm{1, FlatMetric::kInnerProduct, wb, &t.qb, {}, {}};
  FusedParams p;
  p.k = 10;
  p.terms = terms;
  p.missing = missing;
  p.skip = skip;
  auto r = FusedReferenceSearch(4, fields, 1, p);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? (*r)[0] : std::vector<Scored>{};
}

TEST(FusedReference, MissingPolicies) {
  Tiny t;
  // zero: row0 = 1*2 + 3*3 = 11, row1 = 4, row2 = 15; row 3 has no targeted field.
  Ids z = Flatten(RunTiny(t, FusedMissing::kZero, 1, 3));
  EXPECT_EQ(z.ids, (std::vector<int64_t>{2, 0, 1}));
  EXPECT_EQ(z.scores, (std::vector<float>{15, 11, 4}));
  // renormalize: S_T = 4; row1 has S_P = 1 -> 4 x 4 = 16; row2 S_P = 3 -> (4/3) x 3 x 5 = 20.
  Ids rn = Flatten(RunTiny(t, FusedMissing::kRenormalize, 1, 3));
  EXPECT_EQ(rn.ids, (std::vector<int64_t>{2, 1, 0}));
  EXPECT_EQ(rn.scores, (std::vector<float>{20, 16, 11}));
  // require: only row 0 has both fields.
  Ids rq = Flatten(RunTiny(t, FusedMissing::kRequire, 1, 3));
  EXPECT_EQ(rq.ids, (std::vector<int64_t>{0}));
  EXPECT_EQ(rq.scores, (std::vector<float>{11}));
}

TEST(FusedReference, RecordWeightsZeroWeightsAndSkip) {
  Tiny t;
  t.rw_a[0] = 0.5f;
  t.rw_a[1] = 0.25f;
  // zero: row0 = 0.5*2 + 9 = 10, row1 = 0.25*4 = 1, row2 = 15.
  Ids z = Flatten(RunTiny(t, FusedMissing::kZero, 1, 3));
  EXPECT_EQ(z.ids, (std::vector<int64_t>{2, 0, 1}));
  EXPECT_EQ(z.scores, (std::vector<float>{15, 10, 1}));
  // renormalize: row1: S_T = 0.25 + 3, S_P = 0.25 -> w' = 3.25 -> 13; row0: S_T = S_P -> 10.
  Ids rn = Flatten(RunTiny(t, FusedMissing::kRenormalize, 1, 3));
  EXPECT_EQ(rn.ids, (std::vector<int64_t>{2, 1, 0}));
  EXPECT_EQ(rn.scores, (std::vector<float>{20, 13, 10}));
  // All weights zero: every row with a targeted field scores 0 and stays a candidate (by id).
  Ids zero = Flatten(RunTiny(t, FusedMissing::kRenormalize, 0, 0));
  EXPECT_EQ(zero.ids, (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(zero.scores, (std::vector<float>{0, 0, 0}));
  // Present fields of weight 0, a missing one of weight 3: S_P = 0 -> score 0 (row 1).
  Ids half = Flatten(RunTiny(t, FusedMissing::kRenormalize, 0, 3));
  // Row 2: S_T = 0 (A missing, query weight 0) + 3 = S_P -> 15; row 0: 0 x 2 + 3 x 3 = 9.
  EXPECT_EQ(half.ids, (std::vector<int64_t>{2, 0, 1}));
  EXPECT_EQ(half.scores, (std::vector<float>{15, 9, 0}));
  // Skip row 2 (a bitmap shorter than the rows would also do).
  Ids sk = Flatten(RunTiny(t, FusedMissing::kZero, 1, 3, {0b0100}));
  EXPECT_EQ(sk.ids, (std::vector<int64_t>{0, 1}));
}

TEST(FusedReference, NormalisationAndL2) {
  Tiny t;
  std::vector<FusedFieldData> fields = t.Fields();
  const float qa[2] = {1, 3};  // two queries on field A (L2), field B (inner product)
  const float qb[2] = {1, 1};
  const std::vector<double> scale_a = {2, 1}, offset_a = {1, 0};
  std::vector<FusedTerm> terms(2);
  terms[0] = FusedTerm{0, FlatMetric::kL2, 1, qa, scale_a, offset_a};
  terms[1] = FusedTerm{1, FlatMetric::kInnerProduct, 1, qb, {}, {}};
  FusedParams p;
  p.terms = terms;
  p.missing = FusedMissing::kZero;
  ASSERT_OK_AND_ASSIGN(auto r, FusedReferenceSearch(4, fields, 2, p));
  // Query 0: raw A = -(1-2)^2 = -1 -> 2*-1+1 = -1, row0 = -1 + 3 = 2; row1: -(1-4)^2 = -9 ->
  // -17; row2: 5. Query 1: row0: -(3-2)^2 = -1 -> -1 + 3 = 2; row1: -(3-4)^2 = -1; row2: 5.
  EXPECT_EQ(Flatten(r[0]).ids, (std::vector<int64_t>{2, 0, 1}));
  EXPECT_EQ(Flatten(r[0]).scores, (std::vector<float>{5, 2, -17}));
  EXPECT_EQ(Flatten(r[1]).ids, (std::vector<int64_t>{2, 0, 1}));
  EXPECT_EQ(Flatten(r[1]).scores, (std::vector<float>{5, 2, -1}));
}

// An independent oracle written from docs/query-semantics.md (double precision throughout,
// contributions rounded to float32 as documented).
std::vector<std::vector<Scored>> Oracle(size_t rows, const std::vector<FusedFieldData>& fields,
                                        size_t nq, const FusedParams& p) {
  std::vector<std::vector<Scored>> out(nq);
  for (size_t q = 0; q < nq; ++q) {
    std::vector<Scored> all;
    for (size_t r = 0; r < rows; ++r) {
      if (r / 64 < p.skip.size() && ((p.skip[r / 64] >> (r % 64)) & 1u)) continue;
      double st = 0, sp = 0;
      size_t present = 0;
      std::vector<bool> has(p.terms.size());
      std::vector<double> w(p.terms.size());
      for (size_t t = 0; t < p.terms.size(); ++t) {
        const FusedFieldData& f = fields[p.terms[t].field];
        has[t] = f.present.empty() || ((f.present[r / 64] >> (r % 64)) & 1u);
        w[t] = p.terms[t].weight * (f.record_weights.empty() ? 1.0 : f.record_weights[r]);
        st += has[t] ? w[t] : p.terms[t].weight;
        if (has[t]) {
          sp += w[t];
          ++present;
        }
      }
      if (present == 0) continue;
      if (p.missing == FusedMissing::kRequire && present != p.terms.size()) continue;
      double score = 0;
      for (size_t t = 0; t < p.terms.size(); ++t) {
        if (!has[t]) continue;
        const FusedTerm& term = p.terms[t];
        const FusedFieldData& f = fields[term.field];
        double raw = 0;
        for (size_t i = 0; i < f.dim; ++i) {
          const double x = term.queries[q * f.dim + i], y = f.vectors[r * f.dim + i];
          raw += term.metric == FlatMetric::kL2 ? (x - y) * (x - y) : x * y;
        }
        if (term.metric == FlatMetric::kL2) raw = -static_cast<double>(static_cast<float>(raw));
        const double n = (term.scale.empty() ? 1.0 : term.scale[q]) * raw +
                         (term.offset.empty() ? 0.0 : term.offset[q]);
        double wp = w[t];
        // w'_f = w_f x (S_T / S_P), the factor formed first as the page writes it.
        if (p.missing == FusedMissing::kRenormalize) wp = sp > 0 ? w[t] * (st / sp) : 0;
        score += static_cast<float>(wp * n);
      }
      all.push_back(Scored{static_cast<float>(score), static_cast<int64_t>(r)});
    }
    std::sort(all.begin(), all.end(), RanksBefore);
    if (all.size() > p.k) all.resize(p.k);
    out[q] = all;
  }
  return out;
}

struct RandomCase {
  size_t rows = 0, nq = 0;
  std::vector<std::vector<float>> vectors, queries, weights;
  std::vector<std::vector<uint64_t>> present;
  std::vector<std::vector<double>> scale, offset;
  std::vector<FusedFieldData> fields;
  std::vector<FusedTerm> terms;
  std::vector<uint64_t> skip;
};

// Integer-valued vectors, weights that are powers of two and integer normalisation make every
// step exact, so the reference must equal the oracle bit for bit (ties included).
RandomCase MakeCase(size_t rows, size_t nq, bool integer, uint64_t seed) {
  RandomCase c;
  c.rows = rows;
  c.nq = nq;
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> small(-3, 3);
  std::normal_distribution<float> g(0.f, 1.f);
  const size_t dims[3] = {7, 16, 33};
  for (size_t f = 0; f < 3; ++f) {
    const size_t d = dims[f];
    c.vectors.emplace_back(rows * d);
    for (float& v : c.vectors.back()) v = integer ? static_cast<float>(small(rng)) : g(rng);
    c.queries.emplace_back(nq * d);
    for (float& v : c.queries.back()) v = integer ? static_cast<float>(small(rng)) : g(rng);
    c.present.emplace_back((rows + 63) / 64, 0);
    for (size_t r = 0; r < rows; ++r) {
      if (rng() % 10 < 7) c.present.back()[r / 64] |= uint64_t{1} << (r % 64);
    }
    c.weights.emplace_back(f == 1 ? rows : 0);
    for (float& w : c.weights.back()) w = integer ? static_cast<float>(1u << (rng() % 3)) * 0.5f
                                                  : static_cast<float>(rng() % 1000) / 500.f;
    c.scale.emplace_back(nq);
    c.offset.emplace_back(nq);
    for (size_t q = 0; q < nq; ++q) {
      c.scale.back()[q] = integer ? static_cast<double>(1 + rng() % 3) : 0.5 + (rng() % 100) / 50.0;
      c.offset.back()[q] = integer ? static_cast<double>(small(rng)) : g(rng);
    }
  }
  for (size_t f = 0; f < 3; ++f) {
    c.fields.push_back(FusedFieldData{c.vectors[f].data(), dims[f], c.present[f], c.weights[f]});
  }
  // Terms in a different order than the fields; field 0 uses L2.
  const size_t order[3] = {2, 0, 1};
  const double weights[3] = {1.0, 0.5, 2.0};
  for (size_t i = 0; i < 3; ++i) {
    const size_t f = order[i];
    c.terms.push_back(FusedTerm{f, f == 0 ? FlatMetric::kL2 : FlatMetric::kInnerProduct,
                                integer ? weights[i] : weights[i] * 0.7, c.queries[f].data(),
                                c.scale[f], i == 1 ? std::span<const double>() : c.offset[f]});
  }
  c.skip.assign(rows / 64 / 2 + 1, 0);
  for (uint64_t& w : c.skip) w = rng() & rng() & rng();
  return c;
}

TEST(FusedReference, IntegerDataEqualsOracleExactly) {
  const uint64_t seed = TestSeed(2025);
  SCOPED_TRACE(SeedTrace(seed));
  RandomCase c = MakeCase(3000, 4, /*integer=*/true, seed);
  for (FusedMissing m : {FusedMissing::kRenormalize, FusedMissing::kZero, FusedMissing::kRequire}) {
    for (size_t k : {size_t{1}, size_t{10}, size_t{500}}) {
      FusedParams p;
      p.k = k;
      p.terms = c.terms;
      p.missing = m;
      p.skip = c.skip;
      ASSERT_OK_AND_ASSIGN(auto got, FusedReferenceSearch(c.rows, c.fields, c.nq, p));
      const auto want = Oracle(c.rows, c.fields, c.nq, p);
      for (size_t q = 0; q < c.nq; ++q) {
        SCOPED_TRACE(::testing::Message() << "policy " << static_cast<int>(m) << " k " << k
                                          << " query " << q);
        EXPECT_EQ(Flatten(got[q]).ids, Flatten(want[q]).ids);
        EXPECT_EQ(Flatten(got[q]).scores, Flatten(want[q]).scores);
      }
    }
  }
}

TEST(FusedReference, RandomDataMatchesOracleWithinTolerance) {
  const uint64_t seed = TestSeed(31337);
  SCOPED_TRACE(SeedTrace(seed));
  RandomCase c = MakeCase(2000, 3, /*integer=*/false, seed);
  for (FusedMissing m : {FusedMissing::kRenormalize, FusedMissing::kZero, FusedMissing::kRequire}) {
    FusedParams p;
    p.k = 50;
    p.terms = c.terms;
    p.missing = m;
    p.skip = c.skip;
    ASSERT_OK_AND_ASSIGN(auto got, FusedReferenceSearch(c.rows, c.fields, c.nq, p));
    const auto want = Oracle(c.rows, c.fields, c.nq, p);
    for (size_t q = 0; q < c.nq; ++q) {
      ASSERT_EQ(got[q].size(), want[q].size());
      for (size_t r = 0; r < got[q].size(); ++r) {
        // fp32 raw scores of <= 33 terms against the oracle's double sums.
        EXPECT_NEAR(got[q][r].score, want[q][r].score, 1e-3 * (1 + std::fabs(want[q][r].score)))
            << "policy " << static_cast<int>(m) << " query " << q << " rank " << r;
      }
    }
  }
}

TEST(FusedReference, InvalidArgumentsAreStatuses) {
  Tiny t;
  std::vector<FusedFieldData> fields = t.Fields();
  std::vector<FusedTerm> terms = {FusedTerm{0, FlatMetric::kInnerProduct, 1, &t.qa, {}, {}}};
  FusedParams p;
  p.terms = terms;
  p.k = 0;
  EXPECT_STATUS(FusedReferenceSearch(4, fields, 1, p), absl::StatusCode::kInvalidArgument, "k=0");
  p.k = 10;
  terms[0].field = 2;
  EXPECT_STATUS(FusedReferenceSearch(4, fields, 1, p), absl::StatusCode::kInvalidArgument,
                "names field 2");
  terms[0].field = 0;
  terms[0].weight = -1;
  EXPECT_STATUS(FusedReferenceSearch(4, fields, 1, p), absl::StatusCode::kInvalidArgument,
                "weight");
  terms[0].weight = 1;
  std::vector<double> two = {1, 2};
  terms[0].scale = two;
  EXPECT_STATUS(FusedReferenceSearch(4, fields, 1, p), absl::StatusCode::kInvalidArgument,
                "scale values");
  terms[0].scale = {};
  std::vector<FusedTerm> twice = {terms[0], terms[0]};
  p.terms = twice;
  EXPECT_STATUS(FusedReferenceSearch(4, fields, 1, p), absl::StatusCode::kInvalidArgument,
                "targeted twice");
  p.terms = {};
  EXPECT_STATUS(FusedReferenceSearch(4, fields, 1, p), absl::StatusCode::kInvalidArgument,
                "terms");
  p.terms = terms;
  EXPECT_STATUS(FusedReferenceSearch(200, fields, 1, p), absl::StatusCode::kInvalidArgument,
                "presence bitmap");
  std::vector<float> bad_weights = {1, -1, 1, 1};
  fields[0].record_weights = bad_weights;
  EXPECT_STATUS(FusedReferenceSearch(4, fields, 1, p), absl::StatusCode::kInvalidArgument,
                "record weight of row 1");
}

TEST(FusedReference, HostDeviceMathHelpers) {
  // The shared helpers: renormalisation factor, eligibility and contribution rounding.
  gpu::FusedWeights w;
  gpu::FusedAddField(w, true, 2.0, 0.5f);   // w = 1
  gpu::FusedAddField(w, false, 3.0, 1.0f);  // missing: S_T += 3
  EXPECT_EQ(w.present, 1);
  EXPECT_EQ(w.sum_present, 1.0);
  EXPECT_EQ(w.sum_targeted, 4.0);
  EXPECT_TRUE(gpu::FusedEligible(w, gpu::kFusedRenormalize, 2));
  EXPECT_FALSE(gpu::FusedEligible(w, gpu::kFusedRequire, 2));
  EXPECT_EQ(gpu::FusedFactor(w, gpu::kFusedRenormalize), 4.0);
  EXPECT_EQ(gpu::FusedFactor(w, gpu::kFusedZero), 1.0);
  // 0.1 in double, rounded to float once at the end.
  EXPECT_EQ(gpu::FusedContribution(1.0, 1.0f, 1.0, 1.0, 0.1, 0.0f), 0.1f);
  gpu::FusedWeights none;
  EXPECT_FALSE(gpu::FusedEligible(none, gpu::kFusedZero, 2));
  EXPECT_EQ(gpu::FusedFactor(none, gpu::kFusedRenormalize), 0.0);
}

}  // namespace
}  // namespace rosetta::kernels
