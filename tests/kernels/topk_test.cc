// TopK and SelectTopK against a full std::sort, with many ties.
#include "kernels/topk.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/testing.h"

namespace rosetta::kernels {
namespace {

using ::rosetta::testing::SeedTrace;
using ::rosetta::testing::TestSeed;

// Reference: sort everything by (score desc, id asc) and keep k.
std::vector<Scored> Reference(std::vector<Scored> all, size_t k) {
  std::sort(all.begin(), all.end(), [](const Scored& a, const Scored& b) {
    return a.score != b.score ? a.score > b.score : a.id < b.id;
  });
  if (all.size() > k) all.resize(k);
  return all;
}

void ExpectSame(const std::vector<Scored>& got, const std::vector<Scored>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].score, want[i].score) << "rank " << i;
    EXPECT_EQ(got[i].id, want[i].id) << "rank " << i;
  }
}

// Scores drawn from few distinct values so that ties are everywhere; ids shuffled.
std::vector<Scored> TiedCandidates(size_t n, int distinct, std::mt19937_64& rng) {
  std::uniform_int_distribution<int> v(0, distinct - 1);
  std::vector<int64_t> ids(n);
  std::iota(ids.begin(), ids.end(), 1000);
  std::shuffle(ids.begin(), ids.end(), rng);
  std::vector<Scored> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = {static_cast<float>(v(rng)) * 0.5f - 3.0f, ids[i]};
  return out;
}

TEST(RanksBefore, HigherScoreThenLowerId) {
  EXPECT_TRUE(RanksBefore({2.0f, 9}, {1.0f, 1}));
  EXPECT_FALSE(RanksBefore({1.0f, 1}, {2.0f, 9}));
  EXPECT_TRUE(RanksBefore({1.0f, 1}, {1.0f, 2}));
  EXPECT_FALSE(RanksBefore({1.0f, 2}, {1.0f, 1}));
  EXPECT_FALSE(RanksBefore({1.0f, 2}, {1.0f, 2}));
}

TEST(TopK, MatchesSortWithTies) {
  const uint64_t seed = TestSeed(201);
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  for (size_t n : {0, 1, 5, 64, 1000}) {
    for (size_t k : {1, 2, 10, 64, 100, 2000}) {
      for (int distinct : {1, 3, 50}) {
        SCOPED_TRACE("n=" + std::to_string(n) + " k=" + std::to_string(k) +
                     " distinct=" + std::to_string(distinct));
        const std::vector<Scored> all = TiedCandidates(n, distinct, rng);
        TopK top(k);
        for (const Scored& s : all) top.Push(s.score, s.id);
        EXPECT_EQ(top.size(), std::min(n, k));
        EXPECT_EQ(top.k(), k);
        ExpectSame(top.TakeSorted(), Reference(all, k));
        EXPECT_EQ(top.size(), 0u) << "TakeSorted leaves the selector empty";
      }
    }
  }
}

TEST(TopK, ThresholdTracksKthBest) {
  TopK top(3);
  EXPECT_EQ(top.Threshold(), -std::numeric_limits<float>::infinity());
  top.Push(1.0f, 1);
  top.Push(5.0f, 2);
  EXPECT_EQ(top.Threshold(), -std::numeric_limits<float>::infinity());
  top.Push(3.0f, 3);
  EXPECT_EQ(top.Threshold(), 1.0f);
  top.Push(4.0f, 4);
  EXPECT_EQ(top.Threshold(), 3.0f);
  top.Push(0.5f, 5);  // below the threshold: ignored
  EXPECT_EQ(top.Threshold(), 3.0f);
  // Equal score to the k-th best: enters only with a smaller id.
  top.Push(3.0f, 10);
  top.Push(3.0f, 0);
  ExpectSame(top.TakeSorted(), {{5.0f, 2}, {4.0f, 4}, {3.0f, 0}});
}

TEST(TopK, ZeroKHoldsNothing) {
  TopK top(0);
  top.Push(1.0f, 1);
  EXPECT_EQ(top.size(), 0u);
  EXPECT_EQ(top.Threshold(), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(top.TakeSorted().empty());
}

TEST(TopK, NanIsDropped) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  TopK top(2);
  top.Push(nan, 1);  // while not full
  top.Push(1.0f, 2);
  top.Push(2.0f, 3);
  top.Push(nan, 4);  // while full
  ExpectSame(top.TakeSorted(), {{2.0f, 3}, {1.0f, 2}});
}

TEST(TopK, InfinitiesRankNormally) {
  const float inf = std::numeric_limits<float>::infinity();
  TopK top(2);
  top.Push(-inf, 1);
  top.Push(0.0f, 2);
  top.Push(inf, 3);
  ExpectSame(top.TakeSorted(), {{inf, 3}, {0.0f, 2}});
}

TEST(TopK, MergeEqualsSingleSelector) {
  const uint64_t seed = TestSeed(202);
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  const std::vector<Scored> all = TiedCandidates(3000, 20, rng);
  for (size_t parts : {1, 2, 7}) {
    std::vector<TopK> tops(parts, TopK(25));
    for (size_t i = 0; i < all.size(); ++i) tops[i % parts].Push(all[i].score, all[i].id);
    TopK merged(25);
    for (const TopK& t : tops) merged.Merge(t);
    ExpectSame(merged.TakeSorted(), Reference(all, 25));
  }
}

TEST(TopK, HugeKDoesNotPreallocate) {
  TopK top(size_t{1} << 40);  // must not try to reserve 2^40 entries
  top.Push(1.0f, 1);
  EXPECT_EQ(top.size(), 1u);
}

TEST(SelectTopK, MatchesSortAndOffsetsIds) {
  const uint64_t seed = TestSeed(203);
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> v(0, 9);
  for (size_t n : {0, 1, 63, 64, 65, 500}) {
    std::vector<float> scores(n);
    for (float& s : scores) s = static_cast<float>(v(rng));
    for (size_t k : {0, 1, 7, 1000}) {
      SCOPED_TRACE("n=" + std::to_string(n) + " k=" + std::to_string(k));
      std::vector<Scored> all;
      for (size_t i = 0; i < n; ++i) all.push_back({scores[i], 77 + static_cast<int64_t>(i)});
      ExpectSame(SelectTopK(scores, k, 77), Reference(all, k));
    }
  }
}

TEST(SelectTopK, SkipBitmapExcludesEntries) {
  const uint64_t seed = TestSeed(204);
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> v(0, 5);
  const size_t n = 300;
  std::vector<float> scores(n);
  for (float& s : scores) s = static_cast<float>(v(rng));
  std::vector<uint64_t> skip((n + 63) / 64, 0);
  std::bernoulli_distribution coin(0.4);
  std::vector<Scored> kept;
  for (size_t i = 0; i < n; ++i) {
    if (coin(rng)) {
      skip[i / 64] |= uint64_t{1} << (i % 64);
    } else {
      kept.push_back({scores[i], static_cast<int64_t>(i)});
    }
  }
  for (size_t k : {1, 10, 150, 400}) {
    SCOPED_TRACE("k=" + std::to_string(k));
    ExpectSame(SelectTopK(scores, k, 0, skip), Reference(kept, k));
  }
}

TEST(SelectTopK, ShortSkipBitmapLeavesTheRestEligible) {
  std::vector<float> scores = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  scores.resize(100, 0.0f);
  scores[90] = 100.0f;  // beyond the one-word bitmap: eligible
  const std::vector<uint64_t> skip = {~uint64_t{0}};  // skips 0..63
  ExpectSame(SelectTopK(scores, 2, 0, skip), {{100.0f, 90}, {0.0f, 64}});
}

TEST(SelectTopK, AllSkippedGivesNothing) {
  const std::vector<float> scores(10, 1.0f);
  const std::vector<uint64_t> skip = {0x3FF};
  EXPECT_TRUE(SelectTopK(scores, 5, 0, skip).empty());
}

TEST(SelectTopK, NanScoresIgnored) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> scores = {nan, 1.0f, nan, 2.0f};
  ExpectSame(SelectTopK(scores, 4), {{2.0f, 3}, {1.0f, 1}});
}

}  // namespace
}  // namespace rosetta::kernels
