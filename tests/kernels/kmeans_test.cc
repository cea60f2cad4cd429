// k-means: determinism across thread counts, objective decreasing, empty-cluster splitting,
// subsampling, errors, and NearestCentroids against brute force, for every SIMD level.
#include "kernels/kmeans.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
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

class KMeansLevelTest : public ::testing::TestWithParam<SimdLevel> {
 protected:
  const KernelTable* table() const { return &GetKernelTable(GetParam()); }
};

INSTANTIATE_TEST_SUITE_P(AllSupported, KMeansLevelTest, ::testing::ValuesIn(SupportedSimdLevels()),
                         [](const ::testing::TestParamInfo<SimdLevel>& info) {
                           return std::string(SimdLevelName(info.param));
                         });

TEST_P(KMeansLevelTest, NearestCentroidsMatchesBruteForce) {
  const uint64_t seed = TestSeed(501);
  SCOPED_TRACE(SeedTrace(seed));
  ThreadPool pool(3);
  // Shapes: a partial last chunk (n % 128), several centroid blocks (k > 512), tiny d.
  struct Shape {
    size_t n, k, d;
  };
  for (const Shape& s : {Shape{300, 7, 5}, Shape{1000, 600, 16}, Shape{129, 1, 3},
                         Shape{250, 40, 128}}) {
    SCOPED_TRACE("n=" + std::to_string(s.n) + " k=" + std::to_string(s.k) +
                 " d=" + std::to_string(s.d));
    const std::vector<float> x = testing::RandomVectors(s.n, s.d, seed);
    const std::vector<float> c = testing::RandomVectors(s.k, s.d, seed + 1);
    std::vector<uint32_t> assign(s.n);
    std::vector<float> dist(s.n);
    NearestCentroids(x.data(), s.n, s.d, c.data(), s.k, nullptr, assign.data(), dist.data(),
                     &pool, table());
    for (size_t i = 0; i < s.n; ++i) {
      std::vector<double> ref(s.k);
      double best = std::numeric_limits<double>::infinity();
      for (size_t j = 0; j < s.k; ++j) {
        double t = 0;
        for (size_t u = 0; u < s.d; ++u) {
          const double diff = double(x[i * s.d + u]) - c[j * s.d + u];
          t += diff * diff;
        }
        ref[j] = t;
        best = std::min(best, t);
      }
      // The chosen centroid is a nearest one up to float rounding of the expanded form.
      const double tol = 1e-4 * (1.0 + best);
      ASSERT_LE(ref[assign[i]], best + tol) << "point " << i;
      ASSERT_NEAR(dist[i], ref[assign[i]], tol) << "point " << i;
    }
  }
}

TEST_P(KMeansLevelTest, DeterministicAcrossThreadCounts) {
  const uint64_t seed = TestSeed(502);
  SCOPED_TRACE(SeedTrace(seed));
  const size_t n = 3000, d = 24;
  const std::vector<float> x = testing::ClusteredVectors(n, d, 30, seed);
  for (KMeansInit init : {KMeansInit::kRandom, KMeansInit::kKMeansPlusPlus}) {
    KMeansParams p;
    p.k = 50;
    p.iterations = 10;
    p.seed = seed;
    p.init = init;
    p.max_points_per_centroid = 40;  // 2000 of the 3000 points: exercises subsampling
    p.kernels = table();
    ASSERT_OK_AND_ASSIGN(const KMeansResult serial, KMeans(x.data(), n, d, p, nullptr));
    EXPECT_EQ(serial.training_points, 2000u);
    ASSERT_EQ(serial.centroids.size(), p.k * d);
    for (size_t threads : {2, 3, 5}) {
      ThreadPool pool(threads);
      ASSERT_OK_AND_ASSIGN(const KMeansResult par, KMeans(x.data(), n, d, p, &pool));
      ASSERT_EQ(par.centroids, serial.centroids) << "threads=" << threads;
      ASSERT_EQ(par.objective, serial.objective) << "threads=" << threads;
      EXPECT_EQ(par.iterations, serial.iterations);
    }
    // Another seed gives other centroids (the seed is really used).
    p.seed = seed + 1;
    ASSERT_OK_AND_ASSIGN(const KMeansResult other, KMeans(x.data(), n, d, p, nullptr));
    EXPECT_NE(other.centroids, serial.centroids);
  }
}

TEST_P(KMeansLevelTest, ObjectiveDecreases) {
  const uint64_t seed = TestSeed(503);
  SCOPED_TRACE(SeedTrace(seed));
  const size_t n = 4000, d = 16;
  const std::vector<float> x = testing::RandomVectors(n, d, seed);  // no clear clusters: slow
  KMeansParams p;
  p.k = 64;
  p.iterations = 15;
  p.seed = seed;
  p.kernels = table();
  ASSERT_OK_AND_ASSIGN(const KMeansResult r, KMeans(x.data(), n, d, p, nullptr));
  ASSERT_GE(r.objective.size(), 2u);
  EXPECT_LT(r.objective.back(), 0.9 * r.objective.front());
  if (r.empty_cluster_splits == 0) {
    for (size_t i = 1; i < r.objective.size(); ++i) {
      // Lloyd never increases the objective; allow float rounding of the expanded distances.
      EXPECT_LE(r.objective[i], r.objective[i - 1] * (1 + 1e-5)) << "iteration " << i;
    }
  }
  // The final objective matches a direct evaluation with the final centroids (within rounding),
  // and is at most the last measured one (the last update can only improve it).
  std::vector<uint32_t> assign(n);
  std::vector<float> dist(n);
  NearestCentroids(x.data(), n, d, r.centroids.data(), p.k, nullptr, assign.data(), dist.data(),
                   nullptr, table());
  double final_obj = 0;
  for (float v : dist) final_obj += v;
  EXPECT_LE(final_obj, r.objective.back() * (1 + 1e-5));
}

TEST(KMeans, FindsWellSeparatedClusters) {
  const uint64_t seed = TestSeed(504);
  SCOPED_TRACE(SeedTrace(seed));
  // 8 tight clusters far apart; k-means++ must recover one centroid per cluster.
  const size_t k = 8, per = 100, d = 6;
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g(0, 1);
  std::vector<float> centres(k * d), x;
  for (float& c : centres) c = 100.0f * g(rng);
  for (size_t c = 0; c < k; ++c) {
    for (size_t i = 0; i < per; ++i) {
      for (size_t t = 0; t < d; ++t) x.push_back(centres[c * d + t] + 0.01f * g(rng));
    }
  }
  KMeansParams p;
  p.k = k;
  p.seed = seed;
  p.init = KMeansInit::kKMeansPlusPlus;
  ASSERT_OK_AND_ASSIGN(const KMeansResult r, KMeans(x.data(), k * per, d, p, nullptr));
  for (size_t c = 0; c < k; ++c) {
    double best = std::numeric_limits<double>::infinity();
    for (size_t j = 0; j < k; ++j) {
      double t = 0;
      for (size_t u = 0; u < d; ++u) {
        const double diff = double(centres[c * d + u]) - r.centroids[j * d + u];
        t += diff * diff;
      }
      best = std::min(best, t);
    }
    EXPECT_LT(best, 0.01) << "cluster " << c << " has no centroid";
  }
  // Converged long before the iteration cap (the assignment stops changing).
  EXPECT_LT(r.iterations, p.iterations);
}

TEST(KMeans, SplitsEmptyClusters) {
  const uint64_t seed = TestSeed(505);
  SCOPED_TRACE(SeedTrace(seed));
  // 200 points of which 150 coincide: random initialisation picks the duplicate many times, and
  // all but one of those centroids lose their points; splitting must revive them.
  const size_t d = 4, n = 200, k = 20;
  std::vector<float> x = testing::RandomVectors(n, d, seed);
  for (size_t i = 0; i < 150; ++i) {
    for (size_t t = 0; t < d; ++t) x[i * d + t] = 1.0f;
  }
  KMeansParams p;
  p.k = k;
  p.seed = seed;
  p.iterations = 30;
  ASSERT_OK_AND_ASSIGN(const KMeansResult r, KMeans(x.data(), n, d, p, nullptr));
  EXPECT_GT(r.empty_cluster_splits, 0u);
  // At the end, at most a few clusters are empty (splitting a cluster of coincident points
  // cannot separate them, but the 50 distinct points must be well covered).
  std::vector<uint32_t> assign(n);
  NearestCentroids(x.data(), n, d, r.centroids.data(), k, nullptr, assign.data(), nullptr,
                   nullptr);
  std::vector<size_t> counts(k);
  for (uint32_t a : assign) ++counts[a];
  size_t used = 0;
  for (size_t c : counts) used += c > 0;
  EXPECT_GE(used, k - 3);
  for (float v : r.centroids) ASSERT_TRUE(std::isfinite(v));
}

TEST(KMeans, RejectsBadInputAndCountsRuns) {
  const std::vector<float> x(40, 1.0f);
  KMeansParams p;
  const uint64_t before = KMeansRunCount();
  p.k = 11;
  EXPECT_STATUS(KMeans(x.data(), 10, 4, p, nullptr), absl::StatusCode::kInvalidArgument,
                "10 training points for k = 11");
  p.k = 0;
  EXPECT_STATUS(KMeans(x.data(), 10, 4, p, nullptr), absl::StatusCode::kInvalidArgument, "k");
  p.k = 2;
  EXPECT_STATUS(KMeans(x.data(), 10, 0, p, nullptr), absl::StatusCode::kInvalidArgument,
                "dimension");
  std::vector<float> bad = x;
  bad[4 * 3 + 2] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_STATUS(KMeans(bad.data(), 10, 4, p, nullptr), absl::StatusCode::kInvalidArgument,
                "point 3 has a non-finite coordinate at dimension 2");
  ASSERT_OK(KMeans(x.data(), 10, 4, p, nullptr));
  EXPECT_EQ(KMeansRunCount(), before + 5);
}

TEST(KMeans, KEqualsNReproducesThePoints) {
  const uint64_t seed = TestSeed(506);
  SCOPED_TRACE(SeedTrace(seed));
  const size_t n = 9, d = 3;
  const std::vector<float> x = testing::RandomVectors(n, d, seed);
  KMeansParams p;
  p.k = n;
  p.seed = seed;
  ASSERT_OK_AND_ASSIGN(const KMeansResult r, KMeans(x.data(), n, d, p, nullptr));
  EXPECT_NEAR(r.objective.back(), 0.0, 1e-9);
}

}  // namespace
}  // namespace rosetta::kernels
