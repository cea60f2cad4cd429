// The GPU k-selection networks and fp16 conversions, compiled for the host (kernels/cuda/*.h are
// plain C++ under g++) and checked against std::sort / partial_sort: runs in CI, no GPU needed.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cuda/half_bits.h"
#include "kernels/cuda/select_network.h"
#include "tests/testing/testing.h"

namespace rosetta::kernels::gpu {
namespace {

using ::rosetta::testing::SeedTrace;
using ::rosetta::testing::TestSeed;

bool SameEntry(const SelEntry& a, const SelEntry& b) {
  // Bitwise on the score so that -0 / +0 and NaN mismatches are caught.
  return FloatBits(a.score) == FloatBits(b.score) && a.id == b.id;
}

::testing::AssertionResult SameEntries(const std::vector<SelEntry>& got,
                                       const std::vector<SelEntry>& want) {
  if (got.size() != want.size()) {
    return ::testing::AssertionFailure() << "size " << got.size() << " != " << want.size();
  }
  for (size_t i = 0; i < got.size(); ++i) {
    if (!SameEntry(got[i], want[i])) {
      return ::testing::AssertionFailure()
             << "rank " << i << ": got (" << got[i].score << ", " << got[i].id << "), want ("
             << want[i].score << ", " << want[i].id << ")";
    }
  }
  return ::testing::AssertionSuccess();
}

// Scores with many exact ties (drawn from `levels` values) or continuous ones (levels == 0), a
// few NaNs and infinities when `specials`.
std::vector<SelEntry> RandomEntries(size_t n, int levels, bool specials, std::mt19937_64& rng) {
  std::normal_distribution<float> g(0.f, 1.f);
  std::uniform_int_distribution<int> lv(0, std::max(levels - 1, 0));
  std::uniform_int_distribution<int> special(0, 50);
  std::vector<SelEntry> out(n);
  for (size_t i = 0; i < n; ++i) {
    float s = levels > 0 ? static_cast<float>(lv(rng)) : g(rng);
    if (specials) {
      const int r = special(rng);
      if (r == 0) s = std::numeric_limits<float>::quiet_NaN();
      if (r == 1) s = std::numeric_limits<float>::infinity();
      if (r == 2) s = -std::numeric_limits<float>::infinity();
    }
    out[i] = SelEntry{s, static_cast<int32_t>(i)};
  }
  // Arrival order is not id order on the device (lanes, segments): shuffle.
  std::shuffle(out.begin(), out.end(), rng);
  return out;
}

// The k best non-NaN entries under EntryBefore.
std::vector<SelEntry> Reference(std::vector<SelEntry> all, size_t k) {
  all.erase(std::remove_if(all.begin(), all.end(), [](const SelEntry& e) {
              return std::isnan(e.score) || e.id == kSentinelId;
            }),
            all.end());
  const size_t m = std::min(k, all.size());
  std::partial_sort(all.begin(), all.begin() + m, all.end(), EntryBefore);
  all.resize(m);
  return all;
}

// The first k queue entries without sentinels: what the kernels return.
std::vector<SelEntry> Result(const std::vector<SelEntry>& queue, size_t k) {
  std::vector<SelEntry> out;
  for (size_t i = 0; i < k && i < queue.size(); ++i) {
    if (queue[i].id != kSentinelId) out.push_back(queue[i]);
  }
  return out;
}

// One stream through the kernels' policy: chunks of kScanChunk into `queue` (initial content kept).
uint32_t StreamInto(std::vector<SelEntry>& queue, const SelEntry* entries, size_t n, uint32_t k) {
  const uint32_t cap = static_cast<uint32_t>(queue.size());
  std::vector<SelEntry> cand(CandCapacity(cap));
  HostStreamSelect sel(queue.data(), cap, cand.data(), static_cast<uint32_t>(cand.size()), k);
  for (size_t i = 0; i < n; i += kScanChunk) {
    sel.OfferChunk(entries + i, static_cast<uint32_t>(std::min<size_t>(kScanChunk, n - i)));
  }
  sel.Flush();
  return sel.flushes();
}

std::vector<SelEntry> EmptyQueue(uint32_t k) {
  return std::vector<SelEntry>(QueueCapacity(k), SentinelEntry());
}

TEST(GpuSelectNetwork, Capacities) {
  EXPECT_EQ(QueueCapacity(1), 32u);
  EXPECT_EQ(QueueCapacity(32), 32u);
  EXPECT_EQ(QueueCapacity(33), 64u);
  EXPECT_EQ(QueueCapacity(100), 128u);
  EXPECT_EQ(QueueCapacity(1024), 1024u);
  EXPECT_EQ(CandCapacity(32), 256u);
  EXPECT_EQ(CandCapacity(512), 512u);
  EXPECT_EQ(CandCapacity(1024), 1024u);
  for (uint32_t k = 1; k <= kMaxQueue; ++k) {
    const uint32_t cap = QueueCapacity(k);
    ASSERT_GE(cap, k);
    ASSERT_EQ(cap & (cap - 1), 0u);
    ASSERT_LE(cap, kMaxQueue);
    // A flush can always take a full chunk, and the queue's merge needs cand >= queue.
    ASSERT_GE(CandCapacity(cap), cap);
    ASSERT_GE(CandCapacity(cap), 2 * kScanChunk);
  }
  EXPECT_EQ(NextPow2(0), 1u);
  EXPECT_EQ(NextPow2(1), 1u);
  EXPECT_EQ(NextPow2(5), 8u);
}

TEST(GpuSelectNetwork, SentinelRanksLast) {
  const SelEntry s = SentinelEntry();
  EXPECT_TRUE(EntryBefore(SelEntry{-INFINITY, 5}, s));
  EXPECT_FALSE(EntryBefore(s, SelEntry{-INFINITY, 5}));
  EXPECT_FALSE(PassesThreshold(std::nanf(""), 1, -INFINITY));
  EXPECT_TRUE(PassesThreshold(-INFINITY, 1, -INFINITY));
  EXPECT_FALSE(PassesThreshold(1.f, kSentinelId, -INFINITY));
}

TEST(GpuSelectNetwork, BitonicSortMatchesStdSort) {
  const uint64_t seed = TestSeed(1101);
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  for (uint32_t n = 1; n <= 2048; n <<= 1) {
    for (int levels : {0, 3}) {
      std::vector<SelEntry> a = RandomEntries(n, levels, /*specials=*/false, rng);
      std::vector<SelEntry> want = a;
      std::sort(want.begin(), want.end(), EntryBefore);
      BitonicSortDesc(a.data(), n, HostExec{});
      ASSERT_TRUE(SameEntries(a, want)) << "n=" << n << " levels=" << levels;
    }
  }
}

TEST(GpuSelectNetwork, MergeCandidatesKeepsBestOfUnion) {
  const uint64_t seed = TestSeed(1102);
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  for (uint32_t cap : {32u, 64u, 256u, 1024u}) {
    for (uint32_t count : {1u, 7u, 31u, 32u, 100u, 256u, 1000u, 1024u}) {
      if (count > CandCapacity(cap)) continue;
      for (int levels : {0, 4}) {
        std::vector<SelEntry> all = RandomEntries(cap + count, levels, false, rng);
        // Queue: a sorted prefix of real entries, padded with sentinels.
        std::uniform_int_distribution<uint32_t> filled(0, cap);
        const uint32_t f = filled(rng);
        std::vector<SelEntry> queue(all.begin(), all.begin() + f);
        std::sort(queue.begin(), queue.end(), EntryBefore);
        queue.resize(cap, SentinelEntry());
        std::vector<SelEntry> cand(CandCapacity(cap), SelEntry{123.f, 77});  // garbage padding
        std::copy(all.begin() + cap, all.begin() + cap + count, cand.begin());

        std::vector<SelEntry> pool(all.begin(), all.begin() + f);
        pool.insert(pool.end(), all.begin() + cap, all.begin() + cap + count);
        const std::vector<SelEntry> want = Reference(pool, cap);

        MergeCandidates(queue.data(), cap, cand.data(), count, HostExec{});
        ASSERT_TRUE(SameEntries(Result(queue, cap), want))
            << "cap=" << cap << " count=" << count << " filled=" << f << " levels=" << levels;
        for (uint32_t i = static_cast<uint32_t>(want.size()); i < cap; ++i) {
          ASSERT_EQ(queue[i].id, kSentinelId) << "slot " << i;
        }
      }
    }
  }
}

// The streaming selection equals partial_sort for every k bucket, ties, NaN/inf, k > n.
TEST(GpuSelectNetwork, StreamSelectMatchesPartialSort) {
  const uint64_t seed = TestSeed(1103);
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  for (uint32_t k : {1u, 2u, 10u, 31u, 32u, 33u, 100u, 256u, 257u, 512u, 1000u, 1024u}) {
    for (size_t n : {size_t{0}, size_t{1}, size_t{5}, size_t{127}, size_t{129}, size_t{1000},
                     size_t{5003}, size_t{40000}}) {
      for (int levels : {0, 2, 50}) {
        for (bool specials : {false, true}) {
          const std::vector<SelEntry> entries = RandomEntries(n, levels, specials, rng);
          std::vector<SelEntry> queue = EmptyQueue(k);
          StreamInto(queue, entries.data(), entries.size(), k);
          ASSERT_TRUE(SameEntries(Result(queue, k), Reference(entries, k)))
              << "k=" << k << " n=" << n << " levels=" << levels << " specials=" << specials;
        }
      }
    }
  }
}

// The tiled path's structure: each segment keeps its own queue across several tiles (the queue
// carried from one tile to the next), and the segments' first k entries are merged at the end.
TEST(GpuSelectNetwork, SegmentedAcrossTilesThenMergedMatchesPartialSort) {
  const uint64_t seed = TestSeed(1104);
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> pick_tiles(1, 6), pick_segments(1, 9);
  for (uint32_t k : {1u, 10u, 100u, 1024u}) {
    for (size_t n : {size_t{1}, size_t{999}, size_t{6000}, size_t{30011}}) {
      for (int levels : {0, 3}) {
        const std::vector<SelEntry> entries = RandomEntries(n, levels, true, rng);
        const size_t tiles = static_cast<size_t>(pick_tiles(rng));
        const size_t segments = static_cast<size_t>(pick_segments(rng));
        std::vector<std::vector<SelEntry>> queues(segments, EmptyQueue(k));
        const size_t tile_len = (n + tiles - 1) / tiles;
        for (size_t t0 = 0; t0 < n; t0 += tile_len) {
          const size_t tn = std::min(tile_len, n - t0);
          const size_t seg_len = (tn + segments - 1) / segments;
          for (size_t s = 0; s < segments; ++s) {
            const size_t b = std::min(tn, s * seg_len), e = std::min(tn, b + seg_len);
            StreamInto(queues[s], entries.data() + t0 + b, e - b, k);
          }
        }
        // Merge: the first k entries of every segment's queue, sentinels included (they never
        // pass the filter).
        std::vector<SelEntry> firsts;
        for (const auto& q : queues) firsts.insert(firsts.end(), q.begin(), q.begin() + k);
        std::vector<SelEntry> merged = EmptyQueue(k);
        StreamInto(merged, firsts.data(), firsts.size(), k);
        ASSERT_TRUE(SameEntries(Result(merged, k), Reference(entries, k)))
            << "k=" << k << " n=" << n << " tiles=" << tiles << " segments=" << segments;
      }
    }
  }
}

// After the first flushes the threshold filters nearly everything: the number of flushes stays
// far below one per chunk on random data (what makes the streaming selection cheap at small k).
TEST(GpuSelectNetwork, ThresholdKeepsFlushesRare) {
  const uint64_t seed = TestSeed(1105);
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  const std::vector<SelEntry> entries = RandomEntries(1 << 18, 0, false, rng);
  std::vector<SelEntry> queue = EmptyQueue(10);
  const uint32_t flushes = StreamInto(queue, entries.data(), entries.size(), 10);
  EXPECT_LE(flushes, 8u) << "chunks: " << entries.size() / kScanChunk;
  EXPECT_GE(flushes, 1u);
}

// fp16 conversions: exhaustive round trip over every half, and agreement with the hardware
// conversion (F16C, round to nearest even) on random and boundary floats when the CPU has it.
TEST(GpuHalf, RoundTripsEveryHalf) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = HalfBitsToFloat(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      ASSERT_TRUE((h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0) << std::hex << h;
      ASSERT_TRUE(std::isnan(HalfBitsToFloat(FloatToHalfBits(f))));
      continue;
    }
    ASSERT_EQ(FloatToHalfBits(f), h) << std::hex << h << " -> " << f;
  }
  EXPECT_EQ(HalfBitsToFloat(0x3c00), 1.0f);
  EXPECT_EQ(HalfBitsToFloat(0x7bff), 65504.0f);
  EXPECT_EQ(HalfBitsToFloat(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(FloatToHalfBits(65519.99f), 0x7bff);
  EXPECT_EQ(FloatToHalfBits(65520.0f), 0x7c00);
  EXPECT_EQ(FloatToHalfBits(std::ldexp(1.0f, -25)), 0x0000);  // tie to even: zero
  EXPECT_EQ(FloatToHalfBits(std::nextafter(std::ldexp(1.0f, -25), 1.0f)), 0x0001);
  EXPECT_EQ(FloatToHalfBits(1.0f + std::ldexp(1.0f, -11)), 0x3c00);  // tie to even: down
  EXPECT_EQ(FloatToHalfBits(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);  // tie to even: up
}

__attribute__((target("f16c"))) uint16_t HardwareHalf(float f) {
  return static_cast<uint16_t>(
      _mm_extract_epi16(_mm_cvtps_ph(_mm_set1_ps(f), _MM_FROUND_TO_NEAREST_INT), 0));
}

TEST(GpuHalf, MatchesHardwareRounding) {
  if (!__builtin_cpu_supports("f16c")) GTEST_SKIP() << "CPU has no F16C; comparison skipped";
  const uint64_t seed = TestSeed(1106);
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<uint32_t> bits;
  std::normal_distribution<float> g(0.f, 1.f);
  for (int i = 0; i < 2000000; ++i) {
    float f;
    switch (i % 3) {
      case 0: f = BitsFloat(bits(rng)); break;                 // any float
      case 1: f = g(rng); break;                               // typical embedding values
      default: f = std::ldexp(g(rng), (i / 3) % 40 - 28); break;  // subnormal..overflow range
    }
    if (std::isnan(f)) continue;
    ASSERT_EQ(FloatToHalfBits(f), HardwareHalf(f)) << std::hexfloat << f;
  }
}

}  // namespace
}  // namespace rosetta::kernels::gpu
