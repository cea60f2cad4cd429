// SIMD dispatch and the distance kernels of every level this CPU supports, against a
// double-precision scalar oracle.
#include "kernels/simd.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/testing.h"

namespace rosetta::kernels {
namespace {

using ::rosetta::testing::SeedTrace;
using ::rosetta::testing::TestSeed;

const std::vector<size_t> kDims = {1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65,
                                   127, 128, 300, 512, 768, 784};

double RefDot(const float* a, const float* b, size_t d) {
  double s = 0;
  for (size_t i = 0; i < d; ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}
double RefAbsDot(const float* a, const float* b, size_t d) {
  double s = 0;
  for (size_t i = 0; i < d; ++i) s += std::fabs(static_cast<double>(a[i]) * b[i]);
  return s;
}
double RefL2(const float* a, const float* b, size_t d) {
  double s = 0;
  for (size_t i = 0; i < d; ++i) {
    const double t = static_cast<double>(a[i]) - b[i];
    s += t * t;
  }
  return s;
}

// Float rounding bound used throughout: the kernels accumulate in float, in any order.
double Tolerance(double abs_sum) { return 1e-5 * abs_sum + 1e-6; }

// Small integers: every product and partial sum is exact in float (|sum| < 2^24), so every level
// and every code path must give exactly the double result, whatever its summation order.
std::vector<float> IntegerVectors(size_t n, size_t d, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> v(-8, 8);
  std::vector<float> out(n * d);
  for (float& x : out) x = static_cast<float>(v(rng));
  return out;
}

class SimdLevelTest : public ::testing::TestWithParam<SimdLevel> {
 protected:
  const KernelTable& table() const { return GetKernelTable(GetParam()); }
};

std::string LevelName(const ::testing::TestParamInfo<SimdLevel>& info) {
  return SimdLevelName(info.param);
}

INSTANTIATE_TEST_SUITE_P(AllSupported, SimdLevelTest, ::testing::ValuesIn(SupportedSimdLevels()),
                         LevelName);

TEST(SimdDispatch, SupportedLevelsStartWithScalarAndAscend) {
  const std::vector<SimdLevel> levels = SupportedSimdLevels();
  ASSERT_FALSE(levels.empty());
  EXPECT_EQ(levels.front(), SimdLevel::kScalar);
  for (size_t i = 1; i < levels.size(); ++i) {
    EXPECT_LT(static_cast<int>(levels[i - 1]), static_cast<int>(levels[i]));
  }
  for (SimdLevel l : levels) EXPECT_EQ(GetKernelTable(l).level, l);
}

TEST(SimdDispatch, ActiveLevelIsSupportedAndStable) {
  const SimdLevel active = ActiveSimdLevel();
  const std::vector<SimdLevel> levels = SupportedSimdLevels();
  EXPECT_NE(std::find(levels.begin(), levels.end(), active), levels.end());
  EXPECT_EQ(ActiveSimdLevel(), active);
  EXPECT_EQ(&ActiveKernels(), &GetKernelTable(active));
  EXPECT_EQ(ActiveKernels().level, active);
}

TEST(SimdDispatch, LevelNames) {
  EXPECT_STREQ(SimdLevelName(SimdLevel::kScalar), "scalar");
  EXPECT_STREQ(SimdLevelName(SimdLevel::kAvx2), "avx2");
  EXPECT_STREQ(SimdLevelName(SimdLevel::kAvx512), "avx512");
}

TEST(SimdDispatch, ResolveUnsetPicksBest) {
  const std::vector<SimdLevel> all = {SimdLevel::kScalar, SimdLevel::kAvx2, SimdLevel::kAvx512};
  std::string note = "stale";
  EXPECT_EQ(ResolveSimdLevel(nullptr, all, &note), SimdLevel::kAvx512);
  EXPECT_TRUE(note.empty());
  EXPECT_EQ(ResolveSimdLevel("", all, &note), SimdLevel::kAvx512);
  EXPECT_TRUE(note.empty());
  EXPECT_EQ(ResolveSimdLevel(nullptr, {SimdLevel::kScalar}, &note), SimdLevel::kScalar);
}

TEST(SimdDispatch, ResolveCapsAtRequest) {
  const std::vector<SimdLevel> all = {SimdLevel::kScalar, SimdLevel::kAvx2, SimdLevel::kAvx512};
  std::string note;
  EXPECT_EQ(ResolveSimdLevel("scalar", all, &note), SimdLevel::kScalar);
  EXPECT_TRUE(note.empty());
  EXPECT_EQ(ResolveSimdLevel("avx2", all, &note), SimdLevel::kAvx2);
  EXPECT_TRUE(note.empty());
  EXPECT_EQ(ResolveSimdLevel("AVX512", all, &note), SimdLevel::kAvx512);
  EXPECT_TRUE(note.empty());
}

TEST(SimdDispatch, ResolveClampsUnsupportedRequestWithNote) {
  const std::vector<SimdLevel> avx2_only = {SimdLevel::kScalar, SimdLevel::kAvx2};
  std::string note;
  EXPECT_EQ(ResolveSimdLevel("avx512", avx2_only, &note), SimdLevel::kAvx2);
  EXPECT_NE(note.find("avx512"), std::string::npos) << note;
  EXPECT_NE(note.find("using avx2"), std::string::npos) << note;
  EXPECT_EQ(note.find('\n'), std::string::npos) << "one line";
  EXPECT_EQ(ResolveSimdLevel("avx2", {SimdLevel::kScalar}, &note), SimdLevel::kScalar);
  EXPECT_NE(note.find("using scalar"), std::string::npos) << note;
}

TEST(SimdDispatch, ResolveRejectsUnknownValueWithNote) {
  const std::vector<SimdLevel> all = {SimdLevel::kScalar, SimdLevel::kAvx2, SimdLevel::kAvx512};
  std::string note;
  EXPECT_EQ(ResolveSimdLevel("sse9", all, &note), SimdLevel::kAvx512);
  EXPECT_NE(note.find("'sse9'"), std::string::npos) << note;
  EXPECT_NE(note.find("scalar|avx2|avx512"), std::string::npos) << note;
  // A null note pointer is allowed.
  EXPECT_EQ(ResolveSimdLevel("avx2", all, nullptr), SimdLevel::kAvx2);
}

TEST(SimdDispatch, GetKernelTableClampsUnsupportedLevel) {
  const SimdLevel best = SupportedSimdLevels().back();
  EXPECT_EQ(GetKernelTable(SimdLevel::kAvx512).level, best);
}

TEST_P(SimdLevelTest, TableIsComplete) {
  const KernelTable& t = table();
  EXPECT_EQ(t.level, GetParam());
  EXPECT_NE(t.dot, nullptr);
  EXPECT_NE(t.l2sqr, nullptr);
  EXPECT_NE(t.inner_products, nullptr);
  EXPECT_NE(t.packed_queries_floats, nullptr);
  EXPECT_NE(t.pack_queries, nullptr);
  EXPECT_NE(t.inner_products_packed, nullptr);
}

TEST_P(SimdLevelTest, DotAndL2MatchOracle) {
  const uint64_t seed = TestSeed(101);
  SCOPED_TRACE(SeedTrace(seed));
  const KernelTable& t = table();
  for (size_t d : kDims) {
    SCOPED_TRACE("d=" + std::to_string(d));
    // +1 element so that unaligned starting addresses are exercised too.
    std::vector<float> v = testing::RandomVectors(2, d + 1, seed + d);
    for (size_t off : {0, 1}) {
      const float* a = v.data() + off;
      const float* b = v.data() + d + 1;
      const double abs = RefAbsDot(a, b, d);
      EXPECT_NEAR(t.dot(a, b, d), RefDot(a, b, d), Tolerance(abs));
      const double l2 = RefL2(a, b, d);
      EXPECT_NEAR(t.l2sqr(a, b, d), l2, Tolerance(l2));
      EXPECT_NEAR(t.l2sqr(a, a, d), 0.0, 0.0);
    }
  }
}

TEST_P(SimdLevelTest, DotAndL2ExactOnIntegers) {
  const uint64_t seed = TestSeed(102);
  SCOPED_TRACE(SeedTrace(seed));
  const KernelTable& t = table();
  for (size_t d : kDims) {
    SCOPED_TRACE("d=" + std::to_string(d));
    std::vector<float> v = IntegerVectors(2, d, seed + d);
    const float* a = v.data();
    const float* b = v.data() + d;
    EXPECT_EQ(t.dot(a, b, d), static_cast<float>(RefDot(a, b, d)));
    EXPECT_EQ(t.l2sqr(a, b, d), static_cast<float>(RefL2(a, b, d)));
  }
}

// Runs inner_products (and the packed form) for nq x nb with an output stride wider than nb, and
// checks every entry plus the untouched padding.
void CheckInnerProducts(const KernelTable& t, const std::vector<float>& q,
                        const std::vector<float>& b, size_t nq, size_t nb, size_t d, bool exact) {
  const size_t ldo = nb + 3;
  constexpr float kSentinel = -12345.f;
  std::vector<float> out(nq * ldo, kSentinel);
  t.inner_products(q.data(), nq, b.data(), nb, d, out.data(), ldo);
  for (size_t i = 0; i < nq; ++i) {
    for (size_t j = 0; j < ldo; ++j) {
      const float got = out[i * ldo + j];
      if (j >= nb) {
        ASSERT_EQ(got, kSentinel) << "wrote outside the tile at i=" << i << " j=" << j;
        continue;
      }
      const double ref = RefDot(q.data() + i * d, b.data() + j * d, d);
      if (exact) {
        ASSERT_EQ(got, static_cast<float>(ref)) << "i=" << i << " j=" << j;
      } else {
        ASSERT_NEAR(got, ref, Tolerance(RefAbsDot(q.data() + i * d, b.data() + j * d, d)))
            << "i=" << i << " j=" << j;
      }
    }
  }
  // The packed form gives bit-identical results.
  std::vector<float> packed(t.packed_queries_floats(nq, d) + 1);
  t.pack_queries(q.data(), nq, d, packed.data() + 1);  // deliberately misaligned
  std::vector<float> out2(nq * ldo, kSentinel);
  t.inner_products_packed(packed.data() + 1, nq, b.data(), nb, d, out2.data(), ldo);
  ASSERT_EQ(0, std::memcmp(out.data(), out2.data(), out.size() * sizeof(float)))
      << "packed and plain inner products differ";
}

TEST_P(SimdLevelTest, InnerProductsExactOnIntegersAllShapes) {
  const uint64_t seed = TestSeed(103);
  SCOPED_TRACE(SeedTrace(seed));
  const KernelTable& t = table();
  // nq around the small/GEMM threshold and the 16/32-query blocks; nb around 4/6/8-row groups.
  for (size_t d : {1, 3, 15, 16, 17, 127, 128, 300, 784}) {
    // 270 / 300: the plain entry point works in chunks of 256 queries (a remainder under 16 is
    // merged into the last chunk).
    for (size_t nq : {1, 2, 3, 4, 5, 15, 16, 17, 31, 33, 47, 70, 270, 300}) {
      for (size_t nb : {1, 5, 8, 13, 33}) {
        SCOPED_TRACE("d=" + std::to_string(d) + " nq=" + std::to_string(nq) +
                     " nb=" + std::to_string(nb));
        const std::vector<float> q = IntegerVectors(nq, d, seed + d * 1000 + nq);
        const std::vector<float> b = IntegerVectors(nb, d, seed + d * 7000 + nb + 1);
        ASSERT_NO_FATAL_FAILURE(CheckInnerProducts(t, q, b, nq, nb, d, /*exact=*/true));
      }
    }
  }
}

TEST_P(SimdLevelTest, InnerProductsMatchOracleOnFloats) {
  const uint64_t seed = TestSeed(104);
  SCOPED_TRACE(SeedTrace(seed));
  const KernelTable& t = table();
  for (size_t d : {1, 17, 128, 300, 512, 768}) {
    for (size_t nq : {1, 3, 16, 40, 64}) {
      const size_t nb = 37;
      SCOPED_TRACE("d=" + std::to_string(d) + " nq=" + std::to_string(nq));
      const std::vector<float> q = testing::RandomVectors(nq, d, seed + d + nq);
      const std::vector<float> b = testing::RandomVectors(nb, d, seed + 2 * d + 1);
      ASSERT_NO_FATAL_FAILURE(CheckInnerProducts(t, q, b, nq, nb, d, /*exact=*/false));
    }
  }
}

TEST_P(SimdLevelTest, InnerProductsDoNotDependOnTilePosition) {
  // A product must not depend on where its base row falls (full micro-tile or tail): scoring the
  // base in one call or row by row gives the same bits, for every query-count regime.
  const uint64_t seed = TestSeed(105);
  SCOPED_TRACE(SeedTrace(seed));
  const KernelTable& t = table();
  const size_t d = 100, nb = 19;
  for (size_t nq : {1, 2, 3, 5, 40}) {
    SCOPED_TRACE("nq=" + std::to_string(nq));
    const std::vector<float> q = testing::RandomVectors(nq, d, seed + nq);
    const std::vector<float> b = testing::RandomVectors(nb, d, seed + 1);
    std::vector<float> all(nq * nb), one(nq);
    t.inner_products(q.data(), nq, b.data(), nb, d, all.data(), nb);
    for (size_t j = 0; j < nb; ++j) {
      t.inner_products(q.data(), nq, b.data() + j * d, 1, d, one.data(), 1);
      for (size_t i = 0; i < nq; ++i) {
        ASSERT_EQ(all[i * nb + j], one[i]) << "i=" << i << " j=" << j;
      }
    }
  }
}

TEST_P(SimdLevelTest, EmptyShapesWriteNothing) {
  const KernelTable& t = table();
  const std::vector<float> v(64, 1.0f);
  std::vector<float> out(8, -1.0f);
  t.inner_products(v.data(), 0, v.data(), 4, 16, out.data(), 4);
  t.inner_products(v.data(), 4, v.data(), 0, 16, out.data(), 4);
  for (float x : out) EXPECT_EQ(x, -1.0f);
}

}  // namespace
}  // namespace rosetta::kernels
