// Product quantizer and IVF-PQ index: the per-level PQ kernels against the scalar reference
// (fast-scan sums identical, float tables and ADC within rounding), encode/decode, lookup tables
// and ADC scores against brute force on the reconstructed vectors, pruning exactness, threading
// determinism, add-after-train, skip filters, serialization (round trip and fuzzed input), errors.
#include "kernels/ivf_pq.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/pq_kernels.h"
#include "kernels/kmeans.h"
#include "kernels/parallel.h"
#include "kernels/simd.h"
#include "tests/testing/testing.h"

namespace rosetta::kernels {
namespace {

using internal::GetPqKernelTable;
using internal::PqKernelTable;
using ::rosetta::testing::SeedTrace;
using ::rosetta::testing::TestSeed;

std::string LevelName(const ::testing::TestParamInfo<SimdLevel>& info) {
  return SimdLevelName(info.param);
}

// ---------------------------------------------------------------------------------------------
// Kernels, level by level against the scalar table.
// ---------------------------------------------------------------------------------------------

class PqKernelLevelTest : public ::testing::TestWithParam<SimdLevel> {
 protected:
  const PqKernelTable& table() const { return GetPqKernelTable(GetParam()); }
  const PqKernelTable& scalar() const { return GetPqKernelTable(SimdLevel::kScalar); }
};
INSTANTIATE_TEST_SUITE_P(AllSupported, PqKernelLevelTest,
                         ::testing::ValuesIn(SupportedSimdLevels()), LevelName);

TEST_P(PqKernelLevelTest, TableMatchesItsLevel) { EXPECT_EQ(table().level, GetParam()); }

TEST_P(PqKernelLevelTest, TablesMatchBruteForce) {
  const uint64_t seed = TestSeed(601);
  SCOPED_TRACE(SeedTrace(seed));
  for (size_t ksub : {16, 256}) {
    for (size_t dsub : {1, 2, 3, 4, 8}) {
      for (size_t m : {1, 3, 8}) {
        SCOPED_TRACE("ksub=" + std::to_string(ksub) + " dsub=" + std::to_string(dsub) +
                     " m=" + std::to_string(m));
        const size_t d = m * dsub;
        const std::vector<float> x = testing::RandomVectors(1, d, seed + d);
        const std::vector<float> cbt = testing::RandomVectors(m * dsub * ksub, 1, seed + ksub);
        std::vector<float> l2(m * ksub), ip(m * ksub), l2s(m * ksub), ips(m * ksub);
        table().l2_table(x.data(), cbt.data(), m, ksub, dsub, l2.data());
        table().ip_table(x.data(), cbt.data(), m, ksub, dsub, ip.data());
        for (size_t j = 0; j < m; ++j) {
          for (size_t i = 0; i < ksub; ++i) {
            double rl2 = 0, rip = 0, mag = 0;
            for (size_t t = 0; t < dsub; ++t) {
              const double a = x[j * dsub + t], c = cbt[(j * dsub + t) * ksub + i];
              rl2 += (a - c) * (a - c);
              rip += a * c;
              mag += std::fabs(a * c);
            }
            ASSERT_NEAR(l2[j * ksub + i], rl2, 1e-5 * (1 + rl2)) << j << "," << i;
            ASSERT_NEAR(ip[j * ksub + i], rip, 1e-5 * (1 + mag)) << j << "," << i;
          }
        }
        // The nearest centroid, directly: a first minimum of the brute-force distances.
        for (size_t k : {ksub, ksub - 5}) {  // k < kpad: padded centroids never win
          float got_min;
          const uint32_t got = table().nearest_transposed(x.data(), cbt.data(), dsub, ksub, k,
                                                          &got_min);
          ASSERT_LT(got, k);
          ASSERT_NEAR(got_min, l2[got], 1e-5 * (1 + l2[got]));  // sub-space 0 of the table
          for (size_t i = 0; i < k; ++i) {
            ASSERT_GE(l2[i], got_min - 1e-5 * (1 + got_min)) << "centroid " << i << " is nearer";
          }
        }
      }
    }
  }
}

TEST_P(PqKernelLevelTest, ArgminsPickTheFirstMinimum) {
  const uint64_t seed = TestSeed(612);
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  for (size_t n : {1, 2, 7, 8, 9, 15, 16, 17, 31, 64, 100, 513}) {
    SCOPED_TRACE("n=" + std::to_string(n));
    for (int trial = 0; trial < 20; ++trial) {
      // Small integers: many exact ties, and w = norms - 2 ip exact in float.
      std::vector<float> norms(n), ip(n);
      for (size_t i = 0; i < n; ++i) {
        norms[i] = static_cast<float>(rng() % 5);
        ip[i] = static_cast<float>(rng() % 3);
      }
      if (trial == 0) {  // all equal: the first index
        std::fill(ip.begin(), ip.end(), 0.0f);
        std::fill(norms.begin(), norms.end(), 1.0f);
      }
      size_t want = 0;
      for (size_t i = 1; i < n; ++i) {
        if (norms[i] - 2 * ip[i] < norms[want] - 2 * ip[want]) want = i;
      }
      float v;
      ASSERT_EQ(table().argmin_norm_ip(norms.data(), ip.data(), n, &v), want);
      ASSERT_EQ(v, norms[want] - 2 * ip[want]);
      // nearest_transposed on 1-d integer points: exact squared differences, ties included.
      const size_t kpad = (n + 15) / 16 * 16;
      std::vector<float> ct(kpad, 1e30f);  // padding beyond n must be ignored even if nearer
      for (size_t i = 0; i < n; ++i) ct[i] = static_cast<float>(rng() % 7);
      const float x = static_cast<float>(rng() % 7);
      for (size_t i = n; i < kpad; ++i) ct[i] = x;  // padding at distance 0
      size_t want2 = 0;
      for (size_t i = 1; i < n; ++i) {
        if ((x - ct[i]) * (x - ct[i]) < (x - ct[want2]) * (x - ct[want2])) want2 = i;
      }
      ASSERT_EQ(table().nearest_transposed(&x, ct.data(), 1, kpad, n, &v), want2);
      ASSERT_EQ(v, (x - ct[want2]) * (x - ct[want2]));
    }
  }
}

void CheckAdc(void (*fn)(const uint8_t*, size_t, size_t, const float*, float*), uint64_t seed) {
  for (size_t m : {1, 2, 7, 8, 9, 15, 16, 17, 32, 33, 48}) {
    for (size_t n : {1, 3, 4, 5, 8, 9, 31, 100}) {
      SCOPED_TRACE("m=" + std::to_string(m) + " n=" + std::to_string(n));
      std::mt19937_64 rng(seed + m * 1000 + n);
      std::vector<uint8_t> codes(n * m);
      for (uint8_t& c : codes) c = static_cast<uint8_t>(rng());
      const std::vector<float> lut = testing::RandomVectors(m * 256, 1, seed + m);
      std::vector<float> out(n, -1.0f);
      fn(codes.data(), n, m, lut.data(), out.data());
      for (size_t v = 0; v < n; ++v) {
        double ref = 0, mag = 0;
        for (size_t j = 0; j < m; ++j) {
          ref += lut[j * 256 + codes[v * m + j]];
          mag += std::fabs(lut[j * 256 + codes[v * m + j]]);
        }
        ASSERT_NEAR(out[v], ref, 1e-5 * (1 + mag)) << "vector " << v;
      }
    }
  }
}

TEST_P(PqKernelLevelTest, AdcScan8MatchesBruteForce) {
  const uint64_t seed = TestSeed(602);
  SCOPED_TRACE(SeedTrace(seed));
  CheckAdc(table().adc_scan8, seed);
  // Both variants of each level, whichever the table uses.
  CheckAdc(internal::kScalarAdcScan8, seed);
  if (GetParam() == SimdLevel::kAvx2) CheckAdc(internal::kAvx2AdcScan8Gather, seed);
  if (GetParam() == SimdLevel::kAvx512) CheckAdc(internal::kAvx512AdcScan8Gather, seed);
}

// Packs unpacked 4-bit codes (n x m) into the documented fast-scan layout.
std::vector<uint8_t> PackFastScan(const std::vector<uint8_t>& codes, size_t n, size_t m) {
  const size_t pairs = (m + 1) / 2;
  const size_t nblocks = (n + 31) / 32;
  std::vector<uint8_t> out(nblocks * pairs * 32, 0);
  for (size_t v = 0; v < n; ++v) {
    for (size_t j = 0; j < m; ++j) {
      uint8_t& byte = out[(v / 32) * pairs * 32 + (j / 2) * 32 + (j % 2) * 16 + (v % 16)];
      const uint8_t c = codes[v * m + j];
      byte |= (v % 32) < 16 ? c : static_cast<uint8_t>(c << 4);
    }
  }
  return out;
}

TEST_P(PqKernelLevelTest, FastScanSumsAreExactAndIdenticalToScalar) {
  const uint64_t seed = TestSeed(603);
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  for (size_t m : {1, 2, 3, 4, 5, 8, 15, 16, 17, 32, 64, 96, 257}) {
    const size_t pairs = (m + 1) / 2;
    const uint32_t qmax = std::min<uint32_t>(255, 65535 / static_cast<uint32_t>(m));
    for (size_t n : {1, 16, 31, 32, 33, 64, 100, 250}) {
      SCOPED_TRACE("m=" + std::to_string(m) + " n=" + std::to_string(n));
      std::vector<uint8_t> codes(n * m);
      for (uint8_t& c : codes) c = static_cast<uint8_t>(rng() & 15);
      // Worst case for overflow half of the time: every entry at qmax.
      std::vector<uint8_t> lut(pairs * 32, 0);
      const bool saturate = rng() & 1;
      for (size_t j = 0; j < m; ++j) {
        for (size_t i = 0; i < 16; ++i) {
          lut[(j / 2) * 32 + (j % 2) * 16 + i] =
              static_cast<uint8_t>(saturate ? qmax : rng() % (qmax + 1));
        }
      }
      const std::vector<uint8_t> blocks = PackFastScan(codes, n, m);
      const size_t padded = (n + 31) / 32 * 32;
      std::vector<uint32_t> ref(n);
      for (size_t v = 0; v < n; ++v) {
        for (size_t j = 0; j < m; ++j) {
          ref[v] += lut[(j / 2) * 32 + (j % 2) * 16 + codes[v * m + j]];
        }
        ASSERT_LE(ref[v], 65535u);
      }
      for (uint32_t limit : {0u, 65535u, static_cast<uint32_t>(ref[n / 2]),
                             static_cast<uint32_t>(rng() % (m * qmax + 1))}) {
        SCOPED_TRACE("limit=" + std::to_string(limit));
        std::vector<uint16_t> acc(padded, 0xABCD), acc_s(padded, 0x1234);
        std::vector<uint32_t> hits(padded), hits_s(padded);
        const size_t nh = table().fastscan(blocks.data(), n, pairs, lut.data(),
                                           static_cast<uint16_t>(limit), acc.data(), hits.data());
        const size_t nh_s = scalar().fastscan(blocks.data(), n, pairs, lut.data(),
                                              static_cast<uint16_t>(limit), acc_s.data(),
                                              hits_s.data());
        ASSERT_EQ(acc, acc_s);  // padding vectors included: identical uint16 sums
        std::vector<uint32_t> want;
        for (size_t v = 0; v < n; ++v) {
          ASSERT_EQ(acc[v], ref[v]) << "vector " << v;
          if (ref[v] <= limit) want.push_back(static_cast<uint32_t>(v));
        }
        ASSERT_EQ(std::vector<uint32_t>(hits.begin(), hits.begin() + nh), want);
        ASSERT_EQ(std::vector<uint32_t>(hits_s.begin(), hits_s.begin() + nh_s), want);
      }
    }
  }
}

TEST_P(PqKernelLevelTest, QuantizedLutsAreIdenticalToScalarAndWithinTheErrorBound) {
  const uint64_t seed = TestSeed(613);
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  for (size_t m : {1, 2, 3, 8, 17, 64, 257, 300}) {
   for (bool row_min : {true, false}) {
    SCOPED_TRACE("m=" + std::to_string(m) + " row_min=" + std::to_string(row_min));
    const size_t pairs = (m + 1) / 2;
    std::vector<float> dist = testing::RandomVectors(m * 16, 1, seed + m);
    for (size_t i = 0; i < dist.size(); ++i) {
      dist[i] = dist[i] * 50.0f + static_cast<float>(i % 7);
      if (!row_min) dist[i] = std::fabs(dist[i]);  // L2-like: non-negative
    }
    std::vector<uint8_t> lut(pairs * 32, 0xEE), lut_s(pairs * 32, 0x11);
    float bias, inv, bias_s, inv_s;
    ASSERT_TRUE(table().quantize_lut(dist.data(), m, row_min, lut.data(), &bias, &inv));
    ASSERT_TRUE(scalar().quantize_lut(dist.data(), m, row_min, lut_s.data(), &bias_s, &inv_s));
    ASSERT_EQ(lut, lut_s);
    ASSERT_EQ(bias, bias_s);
    ASSERT_EQ(inv, inv_s);
    const uint32_t qmax = std::min<uint32_t>(255, 65535 / static_cast<uint32_t>(m));
    double max_range = 0, sum_lo = 0;
    for (size_t j = 0; j < m; ++j) {
      const auto [lo, hi] = std::minmax_element(dist.begin() + j * 16, dist.begin() + j * 16 + 16);
      max_range = std::max<double>(max_range, *hi - (row_min ? *lo : 0.0f));
      sum_lo += row_min ? *lo : 0.0f;
    }
    EXPECT_NEAR(bias, sum_lo, 1e-4 * (1 + std::fabs(sum_lo)));
    EXPECT_NEAR(inv, max_range / qmax, 1e-5 * max_range / qmax);
    if (m % 2 == 1) {  // the padding sub-quantizer is zero
      for (size_t i = 0; i < 16; ++i) ASSERT_EQ(lut[(m / 2) * 32 + 16 + i], 0);
    }
    // Random codes: the dequantised sum is within m / (2 scale) (+ rounding) of the float sum.
    for (int trial = 0; trial < 50; ++trial) {
      double exact = 0;
      uint32_t acc = 0;
      for (size_t j = 0; j < m; ++j) {
        const size_t c = rng() % 16;
        exact += dist[j * 16 + c];
        const uint8_t e = lut[(j / 2) * 32 + (j % 2) * 16 + c];
        ASSERT_LE(e, qmax);
        acc += e;
      }
      ASSERT_LE(acc, 65535u);
      EXPECT_NEAR(bias + acc * static_cast<double>(inv), exact,
                  m * 0.5 * inv * (1 + 1e-4) + 1e-4 * (1 + std::fabs(exact)));
    }
    // Non-finite entries are reported.
    dist[(m / 2) * 16 + 3] = std::numeric_limits<float>::quiet_NaN();
    EXPECT_FALSE(table().quantize_lut(dist.data(), m, row_min, lut.data(), &bias, &inv));
    dist[(m / 2) * 16 + 3] = -std::numeric_limits<float>::infinity();
    EXPECT_FALSE(table().quantize_lut(dist.data(), m, row_min, lut.data(), &bias, &inv));
   }
  }
  // A constant table: scale 0, all entries 0.
  std::vector<float> flat(5 * 16, 3.0f);
  std::vector<uint8_t> lut(3 * 32, 0xEE);
  float bias, inv;
  ASSERT_TRUE(table().quantize_lut(flat.data(), 5, /*row_min=*/true, lut.data(), &bias, &inv));
  EXPECT_EQ(lut, std::vector<uint8_t>(3 * 32, 0));
  EXPECT_EQ(bias, 15.0f);
  EXPECT_EQ(inv, 0.0f);
}

// ---------------------------------------------------------------------------------------------
// Product quantizer.
// ---------------------------------------------------------------------------------------------

TEST(ProductQuantizer, RejectsBadShapes) {
  const std::vector<float> x(300 * 12, 0.5f);
  KMeansParams p;
  EXPECT_STATUS(ProductQuantizer::Train(x.data(), 300, 12, 5, 8, p, nullptr),
                absl::StatusCode::kInvalidArgument, "dimension 12 is not divisible by m = 5");
  EXPECT_STATUS(ProductQuantizer::Train(x.data(), 300, 12, 4, 6, p, nullptr),
                absl::StatusCode::kInvalidArgument, "nbits = 6");
  EXPECT_STATUS(ProductQuantizer::Train(x.data(), 200, 12, 4, 8, p, nullptr),
                absl::StatusCode::kInvalidArgument, "at least 256");
  EXPECT_STATUS(ProductQuantizer::Train(x.data(), 300, 12, 0, 8, p, nullptr),
                absl::StatusCode::kInvalidArgument, "m (sub-quantizers) is 0");
  EXPECT_STATUS(ProductQuantizer::FromCodebooks(12, 4, 4, std::vector<float>(10)),
                absl::StatusCode::kInvalidArgument, "10 codebook floats, expected 192");
}

class PqLevelTest : public ::testing::TestWithParam<SimdLevel> {};
INSTANTIATE_TEST_SUITE_P(AllSupported, PqLevelTest, ::testing::ValuesIn(SupportedSimdLevels()),
                         LevelName);

TEST_P(PqLevelTest, EncodeDecodeAndTables) {
  const uint64_t seed = TestSeed(604);
  SCOPED_TRACE(SeedTrace(seed));
  const size_t n = 3000, d = 24;
  const std::vector<float> x = testing::ClusteredVectors(n, d, 20, seed);
  ThreadPool pool(3);
  for (size_t nbits : {4, 8}) {
    for (size_t m : {3, 6, 12}) {
      SCOPED_TRACE("nbits=" + std::to_string(nbits) + " m=" + std::to_string(m));
      KMeansParams kp;
      kp.seed = seed;
      kp.iterations = 10;
      ASSERT_OK_AND_ASSIGN(ProductQuantizer pq,
                           ProductQuantizer::Train(x.data(), n, d, m, nbits, kp, &pool));
      ASSERT_EQ(pq.ksub(), size_t{1} << nbits);
      ASSERT_EQ(pq.dsub(), d / m);
      std::vector<uint8_t> codes(n * m), codes_serial(n * m);
      pq.Encode(x.data(), n, codes.data(), &pool, GetParam());
      pq.Encode(x.data(), n, codes_serial.data(), nullptr, GetParam());
      ASSERT_EQ(codes, codes_serial);  // the pool does not matter
      std::vector<float> dec(n * d);
      pq.Decode(codes.data(), n, dec.data());
      const size_t ks = pq.ksub(), ds = pq.dsub();
      double err = 0, var = 0;
      std::vector<double> mean(d, 0);
      for (size_t i = 0; i < n; ++i) {
        for (size_t t = 0; t < d; ++t) mean[t] += x[i * d + t] / n;
      }
      for (size_t i = 0; i < n; ++i) {
        for (size_t j = 0; j < m; ++j) {
          // The code is a nearest centroid of the sub-vector (within rounding).
          double best = std::numeric_limits<double>::infinity(), chosen = 0;
          for (size_t c = 0; c < ks; ++c) {
            double t2 = 0;
            for (size_t t = 0; t < ds; ++t) {
              const double diff = x[i * d + j * ds + t] - pq.codebooks()[(j * ks + c) * ds + t];
              t2 += diff * diff;
            }
            best = std::min(best, t2);
            if (c == codes[i * m + j]) chosen = t2;
          }
          ASSERT_LE(chosen, best + 1e-5 * (1 + best)) << "vector " << i << " sub " << j;
          for (size_t t = 0; t < ds; ++t) {
            ASSERT_EQ(dec[i * d + j * ds + t], pq.codebooks()[(j * ks + codes[i * m + j]) * ds + t]);
          }
        }
        for (size_t t = 0; t < d; ++t) {
          err += (x[i * d + t] - dec[i * d + t]) * (x[i * d + t] - dec[i * d + t]);
          var += (x[i * d + t] - mean[t]) * (x[i * d + t] - mean[t]);
        }
      }
      // Quantization error bound: far below the data variance (20 clusters, 2^nbits centroids
      // per sub-space), and smaller with more bits and more sub-quantizers.
      EXPECT_LT(err / var, nbits == 8 ? 0.05 : 0.25) << "relative error " << err / var;

      // Tables against brute force for one query.
      const std::vector<float> q = testing::RandomVectors(1, d, seed + 7);
      std::vector<float> l2(m * ks), ip(m * ks);
      pq.ComputeL2Table(q.data(), l2.data(), GetParam());
      pq.ComputeIpTable(q.data(), ip.data(), GetParam());
      for (size_t j = 0; j < m; ++j) {
        for (size_t c = 0; c < ks; ++c) {
          double rl2 = 0, rip = 0;
          for (size_t t = 0; t < ds; ++t) {
            const double a = q[j * ds + t], y = pq.codebooks()[(j * ks + c) * ds + t];
            rl2 += (a - y) * (a - y);
            rip += a * y;
          }
          ASSERT_NEAR(l2[j * ks + c], rl2, 1e-4 * (1 + rl2));
          ASSERT_NEAR(ip[j * ks + c], rip, 1e-4 * (1 + std::fabs(rip)));
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// IVF-PQ index.
// ---------------------------------------------------------------------------------------------

std::vector<uint32_t> Iota(size_t n, uint32_t first = 0) {
  std::vector<uint32_t> ids(n);
  for (size_t i = 0; i < n; ++i) ids[i] = first + static_cast<uint32_t>(i);
  return ids;
}

void ExpectSameResults(const std::vector<std::vector<Scored>>& a,
                       const std::vector<std::vector<Scored>>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t q = 0; q < a.size(); ++q) {
    ASSERT_EQ(a[q].size(), b[q].size()) << "query " << q;
    for (size_t r = 0; r < a[q].size(); ++r) {
      ASSERT_EQ(a[q][r].id, b[q][r].id) << "query " << q << " rank " << r;
      ASSERT_EQ(a[q][r].score, b[q][r].score) << "query " << q << " rank " << r;
    }
  }
}

struct IndexCase {
  size_t nbits;
  FlatMetric metric;
};

std::string CaseName(const ::testing::TestParamInfo<std::tuple<SimdLevel, IndexCase>>& info) {
  const IndexCase& c = std::get<1>(info.param);
  return std::string(SimdLevelName(std::get<0>(info.param))) + "_nbits" +
         std::to_string(c.nbits) + (c.metric == FlatMetric::kL2 ? "_l2" : "_ip");
}

class IvfPqCaseTest : public ::testing::TestWithParam<std::tuple<SimdLevel, IndexCase>> {
 protected:
  SimdLevel level() const { return std::get<0>(GetParam()); }
  const IndexCase& c() const { return std::get<1>(GetParam()); }
};
INSTANTIATE_TEST_SUITE_P(
    All, IvfPqCaseTest,
    ::testing::Combine(::testing::ValuesIn(SupportedSimdLevels()),
                       ::testing::Values(IndexCase{8, FlatMetric::kL2},
                                         IndexCase{8, FlatMetric::kInnerProduct},
                                         IndexCase{4, FlatMetric::kL2},
                                         IndexCase{4, FlatMetric::kInnerProduct})),
    CaseName);

// Every stored vector's approximate score against the exact score of its reconstruction, and the
// top-k of Search against the full ranking of those approximate scores (the fast-scan threshold
// and list pruning must never drop a candidate that belongs in the top-k).
TEST_P(IvfPqCaseTest, ScoresMatchReconstructionsAndPruningIsExact) {
  const uint64_t seed = TestSeed(605);
  SCOPED_TRACE(SeedTrace(seed));
  const size_t n = 2500, d = 40, nq = 6;
  const std::vector<float> x = testing::ClusteredVectors(n, d, 25, seed);
  const std::vector<float> queries = testing::ClusteredVectors(nq, d, 25, seed + 1);
  IvfPqParams p;
  p.nlist = 20;
  p.m = c().nbits == 8 ? 10 : 5;  // odd m for fast-scan: exercises the padded pair
  p.nbits = c().nbits;
  p.metric = c().metric;
  p.seed = seed;
  p.kmeans_iterations = 8;
  ASSERT_OK_AND_ASSIGN(const IvfPqIndex index,
                       IvfPqIndex::Build(x.data(), Iota(n, 1000).data(), n, d, p, nullptr));
  ASSERT_EQ(index.size(), n);
  // id -> reconstruction
  std::map<int64_t, std::vector<float>> recon;
  for (size_t l = 0; l < index.nlist(); ++l) {
    for (size_t i = 0; i < index.list_size(l); ++i) {
      std::vector<float> v(d);
      index.Reconstruct(l, i, v.data());
      recon[index.list_ids(l)[i]] = v;
    }
  }
  ASSERT_EQ(recon.size(), n);

  IvfPqSearchParams sp;
  sp.nprobe = index.nlist();  // everything
  sp.k = n;
  sp.simd_level = level();
  const auto all = index.Search(queries.data(), nq, sp);
  for (size_t qi = 0; qi < nq; ++qi) {
    ASSERT_EQ(all[qi].size(), n);
    const float* q = queries.data() + qi * d;
    double max_abs = 0;
    std::vector<double> exact;
    for (const Scored& s : all[qi]) {
      const std::vector<float>& y = recon.at(s.id);
      double e = 0;
      for (size_t t = 0; t < d; ++t) {
        e += c().metric == FlatMetric::kL2 ? -(q[t] - y[t]) * (q[t] - y[t]) : q[t] * y[t];
      }
      exact.push_back(e);
      max_abs = std::max(max_abs, std::fabs(e));
    }
    // 8-bit: float rounding only. 4-bit: the uint8 quantisation of the tables: at most half a
    // step (table range / qmax) per sub-quantizer, with the largest table range over the tables
    // this query uses (IP: one per query; L2: one per list, ranges measured from 0).
    double tol = 1e-4 * (1 + max_abs);
    if (c().nbits == 4) {
      const size_t m = index.m();
      std::vector<float> table(m * 16), residual(d);
      double range = 0;
      for (size_t l = 0; l < index.nlist(); ++l) {
        if (c().metric == FlatMetric::kL2) {
          for (size_t t = 0; t < d; ++t) residual[t] = q[t] - index.centroids()[l * d + t];
          index.pq().ComputeL2Table(residual.data(), table.data(), level());
        } else {
          index.pq().ComputeIpTable(q, table.data(), level());
        }
        for (size_t j = 0; j < m; ++j) {
          const auto [lo, hi] = std::minmax_element(table.begin() + j * 16, table.begin() + j * 16 + 16);
          // L2 tables are quantised from 0 (no per-row offset), IP tables from their row minima.
          range = std::max(range, static_cast<double>(*hi - (c().metric == FlatMetric::kL2 ? 0.0f : *lo)));
        }
      }
      const double qmax = std::min<double>(255, 65535 / m);
      tol += m * range / (2 * qmax) * (1 + 1e-3);
    }
    for (size_t r = 0; r < n; ++r) {
      ASSERT_NEAR(all[qi][r].score, exact[r], tol) << "query " << qi << " rank " << r;
      if (r > 0) {
        ASSERT_FALSE(RanksBefore(all[qi][r], all[qi][r - 1])) << "not sorted";
      }
    }
    // Pruned searches return exactly the prefix of the full ranking.
    for (size_t k : {1, 10, 77}) {
      for (size_t nprobe : {size_t{3}, index.nlist()}) {
        IvfPqSearchParams s2 = sp;
        s2.k = k;
        s2.nprobe = nprobe;
        const auto got = index.Search(q, 1, s2);
        if (nprobe == index.nlist()) {
          std::vector<std::vector<Scored>> want = {
              std::vector<Scored>(all[qi].begin(), all[qi].begin() + k)};
          ASSERT_NO_FATAL_FAILURE(ExpectSameResults(got, want));
        } else {
          // Restricted to the probed lists: the prefix of the full ranking of their members.
          IvfPqSearchParams s3 = s2;
          s3.k = n;
          auto full = index.Search(q, 1, s3);
          full[0].resize(std::min(k, full[0].size()));
          ASSERT_NO_FATAL_FAILURE(ExpectSameResults(got, full));
        }
      }
    }
  }
}

TEST_P(IvfPqCaseTest, DeterministicAcrossPoolsAndRoundTripsThroughBytes) {
  const uint64_t seed = TestSeed(606);
  SCOPED_TRACE(SeedTrace(seed));
  const size_t n = 3000, d = 32, nq = 9;
  const std::vector<float> x = testing::ClusteredVectors(n, d, 30, seed);
  const std::vector<float> queries = testing::ClusteredVectors(nq, d, 30, seed + 1);
  IvfPqParams p;
  p.nlist = 30;
  p.m = 8;
  p.nbits = c().nbits;
  p.metric = c().metric;
  p.seed = seed;
  p.kmeans_iterations = 6;
  ThreadPool pool(3);
  const std::vector<uint32_t> ids = Iota(n, 5);
  ASSERT_OK_AND_ASSIGN(const IvfPqIndex a, IvfPqIndex::Build(x.data(), ids.data(), n, d, p,
                                                             nullptr));
  ASSERT_OK_AND_ASSIGN(const IvfPqIndex b, IvfPqIndex::Build(x.data(), ids.data(), n, d, p, &pool));
  const std::string bytes = a.Serialize();
  ASSERT_EQ(bytes, b.Serialize()) << "the build depends on the pool";

  IvfPqSearchParams sp;
  sp.k = 25;
  sp.nprobe = 7;
  sp.simd_level = level();
  const auto serial = a.Search(queries.data(), nq, sp);
  for (size_t t : {2, 3, 5}) {
    ThreadPool tp(t);
    sp.pool = &tp;
    ASSERT_NO_FATAL_FAILURE(ExpectSameResults(a.Search(queries.data(), nq, sp), serial));
    ASSERT_NO_FATAL_FAILURE(ExpectSameResults(a.Search(queries.data(), 1, sp),
                                              {serial[0]}));  // split over probes
  }
  sp.pool = nullptr;

  const uint64_t runs = KMeansRunCount();
  ASSERT_OK_AND_ASSIGN(const IvfPqIndex c2, IvfPqIndex::Deserialize(bytes));
  EXPECT_EQ(KMeansRunCount(), runs) << "loading must not train";
  EXPECT_EQ(c2.Serialize(), bytes);
  EXPECT_EQ(c2.size(), n);
  EXPECT_EQ(c2.metric(), c().metric);
  EXPECT_EQ(c2.MemoryBytes(), a.MemoryBytes());
  ASSERT_NO_FATAL_FAILURE(ExpectSameResults(c2.Search(queries.data(), nq, sp), serial));
}

TEST_P(IvfPqCaseTest, AddAfterTrainEqualsBuild) {
  const uint64_t seed = TestSeed(607);
  SCOPED_TRACE(SeedTrace(seed));
  const size_t n = 2000, d = 16;
  const std::vector<float> x = testing::ClusteredVectors(n, d, 12, seed);
  IvfPqParams p;
  p.nlist = 12;
  p.m = 4;
  p.nbits = c().nbits;
  p.metric = c().metric;
  p.seed = seed;
  p.kmeans_iterations = 6;
  const std::vector<uint32_t> ids = Iota(n, 77);
  ASSERT_OK_AND_ASSIGN(const IvfPqIndex built,
                       IvfPqIndex::Build(x.data(), ids.data(), n, d, p, nullptr));
  ASSERT_OK_AND_ASSIGN(IvfPqIndex grown, IvfPqIndex::Train(x.data(), n, d, p, nullptr));
  EXPECT_EQ(grown.size(), 0u);
  const uint64_t runs = KMeansRunCount();
  ThreadPool pool(2);
  for (size_t start : {0, 1, 700, 733}) {  // uneven batches, fast-scan blocks split mid-way
    const size_t end = start == 733 ? n : (start == 0 ? 1 : start == 1 ? 700 : 733);
    ASSERT_OK(grown.Add(x.data() + start * d, ids.data() + start, end - start, &pool));
  }
  EXPECT_EQ(KMeansRunCount(), runs) << "Add must not retrain";
  EXPECT_EQ(grown.Serialize(), built.Serialize());

  // New vectors (not in the training set) are found: each one, used as a query, ranks itself
  // among its nearest candidates.
  const std::vector<float> extra = testing::ClusteredVectors(50, d, 12, seed + 9);
  ASSERT_OK(grown.Add(extra.data(), Iota(50, 100000).data(), 50, nullptr));
  EXPECT_EQ(grown.size(), n + 50);
  IvfPqSearchParams sp;
  sp.k = 20;
  sp.nprobe = p.nlist;
  sp.simd_level = level();
  if (c().metric == FlatMetric::kL2) {
    const auto res = grown.Search(extra.data(), 50, sp);
    size_t found = 0;
    for (size_t i = 0; i < 50; ++i) {
      for (const Scored& s : res[i]) found += s.id == static_cast<int64_t>(100000 + i);
    }
    EXPECT_GE(found, 45u);
  }
}

TEST_P(IvfPqCaseTest, SkipFiltersAreHonoured) {
  const uint64_t seed = TestSeed(608);
  SCOPED_TRACE(SeedTrace(seed));
  const size_t n = 1500, d = 16, nq = 4;
  const std::vector<float> x = testing::ClusteredVectors(n, d, 10, seed);
  const std::vector<float> queries = testing::ClusteredVectors(nq, d, 10, seed + 1);
  IvfPqParams p;
  p.nlist = 10;
  p.m = 4;
  p.nbits = c().nbits;
  p.metric = c().metric;
  p.seed = seed;
  p.kmeans_iterations = 5;
  // Caller ids are sparse: 3 * row + 1.
  std::vector<uint32_t> ids(n);
  for (size_t i = 0; i < n; ++i) ids[i] = static_cast<uint32_t>(3 * i + 1);
  ASSERT_OK_AND_ASSIGN(const IvfPqIndex index,
                       IvfPqIndex::Build(x.data(), ids.data(), n, d, p, nullptr));
  IvfPqSearchParams sp;
  sp.k = n;
  sp.nprobe = 4;
  sp.simd_level = level();
  const auto full = index.Search(queries.data(), nq, sp);
  // Skip every id whose bit is set at random, and (separately) by predicate.
  std::vector<uint64_t> skip((3 * n + 1) / 64 / 2, 0);  // covers only the lower half of the ids
  std::mt19937_64 rng(seed);
  std::set<int64_t> skipped;
  for (size_t id = 0; id < skip.size() * 64; ++id) {
    if (rng() % 3 == 0) {
      skip[id / 64] |= uint64_t{1} << (id % 64);
      skipped.insert(static_cast<int64_t>(id));
    }
  }
  auto pred = [](uint32_t id) { return id % 2 == 0; };
  for (int mode = 0; mode < 3; ++mode) {
    IvfPqSearchParams s = sp;
    if (mode != 1) s.skip = skip;
    if (mode != 0) s.skip_if = pred;
    for (size_t k : {size_t{15}, n}) {
      s.k = k;
      const auto got = index.Search(queries.data(), nq, s);
      for (size_t qi = 0; qi < nq; ++qi) {
        std::vector<Scored> want;
        for (const Scored& r : full[qi]) {
          const bool out = (mode != 1 && skipped.count(r.id)) ||
                           (mode != 0 && pred(static_cast<uint32_t>(r.id)));
          if (!out && want.size() < k) want.push_back(r);
        }
        ASSERT_NO_FATAL_FAILURE(ExpectSameResults({got[qi]}, {want}))
            << "mode " << mode << " k " << k;
      }
    }
  }
}

TEST(IvfPqIndex, RejectsBadParametersAndInput) {
  const size_t n = 600, d = 12;
  const std::vector<float> x = testing::RandomVectors(n, d, 1);
  IvfPqParams p;
  p.nlist = 8;
  p.m = 5;
  EXPECT_STATUS(IvfPqIndex::Train(x.data(), n, d, p, nullptr), absl::StatusCode::kInvalidArgument,
                "dimension 12 is not divisible by m = 5");
  p.m = 4;
  p.nbits = 7;
  EXPECT_STATUS(IvfPqIndex::Train(x.data(), n, d, p, nullptr), absl::StatusCode::kInvalidArgument,
                "nbits = 7");
  p.nbits = 8;
  p.nlist = 601;
  EXPECT_STATUS(IvfPqIndex::Train(x.data(), n, d, p, nullptr), absl::StatusCode::kInvalidArgument,
                "nlist = 601 exceeds the 600 training vectors");
  p.nlist = 70000;
  EXPECT_STATUS(IvfPqIndex::Train(x.data(), n, d, p, nullptr), absl::StatusCode::kInvalidArgument,
                "exceeds the maximum of 65536");
  p.nlist = 8;
  EXPECT_STATUS(IvfPqIndex::Train(x.data(), 200, d, p, nullptr),
                absl::StatusCode::kInvalidArgument, "needs at least 256");
  EXPECT_STATUS(IvfPqIndex::Train(x.data(), 0, d, p, nullptr), absl::StatusCode::kInvalidArgument,
                "no training vectors");
  std::vector<float> bad = x;
  bad[5 * d + 3] = std::numeric_limits<float>::infinity();
  EXPECT_STATUS(IvfPqIndex::Train(bad.data(), n, d, p, nullptr),
                absl::StatusCode::kInvalidArgument, "training vector 5 has a non-finite value");

  IvfPqIndex untrained;
  EXPECT_STATUS(untrained.Add(x.data(), Iota(1).data(), 1, nullptr),
                absl::StatusCode::kFailedPrecondition, "untrained");
  ASSERT_OK_AND_ASSIGN(IvfPqIndex index, IvfPqIndex::Train(x.data(), n, d, p, nullptr));
  // Empty index, k = 0: empty results, no crash.
  IvfPqSearchParams sp;
  EXPECT_TRUE(index.Search(x.data(), 2, sp)[1].empty());
  EXPECT_STATUS(index.Add(bad.data(), Iota(n).data(), n, nullptr),
                absl::StatusCode::kInvalidArgument, "added vector 5");
  EXPECT_EQ(index.size(), 0u) << "nothing is added on error";
  ASSERT_OK(index.Add(x.data(), Iota(n).data(), n, nullptr));
  sp.k = 0;
  EXPECT_TRUE(index.Search(x.data(), 1, sp)[0].empty());
  // nprobe above nlist probes everything; NaN queries give no results.
  sp.k = 5;
  sp.nprobe = 1000;
  EXPECT_EQ(index.Search(x.data(), 1, sp)[0].size(), 5u);
  std::vector<float> nanq(d, std::numeric_limits<float>::quiet_NaN());
  EXPECT_TRUE(index.Search(nanq.data(), 1, sp)[0].empty());
}

TEST(IvfPqIndex, Defaults) {
  EXPECT_EQ(DefaultNlist(10000), 400u);
  EXPECT_EQ(DefaultNlist(1000000), 4000u);
  EXPECT_EQ(DefaultNlist(1), 1u);
  EXPECT_EQ(DefaultNlist(10), 10u);  // clamped to n
  EXPECT_EQ(DefaultNlist(size_t{1} << 40), 65536u);
  EXPECT_EQ(DefaultM(128), 32u);
  EXPECT_EQ(DefaultM(768), 192u);
  EXPECT_EQ(DefaultM(784), 196u);
  EXPECT_EQ(DefaultM(300), 75u);
  EXPECT_EQ(DefaultM(7), 1u);
  EXPECT_EQ(DefaultM(6), 2u);  // divisors 1, 2, 3, 6; 6 / 4 = 1.5: 1 and 2 tie, the larger wins
  for (size_t d = 1; d <= 1024; ++d) ASSERT_EQ(d % DefaultM(d), 0u) << d;
  for (size_t nlist : {1, 2, 7, 100, 400, 65536}) {
    EXPECT_GE(DefaultNprobe(nlist), 1u);
    EXPECT_LE(DefaultNprobe(nlist), nlist);
  }
  EXPECT_EQ(DefaultRefine(10), 40u);
  EXPECT_EQ(DefaultRefine(10, 8), 40u);
  EXPECT_EQ(DefaultRefine(100, 8), 400u);
  EXPECT_EQ(DefaultRefine(10, 4), 100u);
  EXPECT_EQ(DefaultRefine(20, 4), 200u);
  EXPECT_EQ(DefaultNprobe(400), 50u);
  EXPECT_EQ(DefaultNprobe(4000), 158u);
  EXPECT_EQ(DefaultNprobe(3), 3u);
}

TEST(IvfPqIndex, MemoryIsCodesPlusIdsPlusSmallOverhead) {
  const uint64_t seed = TestSeed(609);
  SCOPED_TRACE(SeedTrace(seed));
  const size_t n = 20000, d = 32;
  const std::vector<float> x = testing::ClusteredVectors(n, d, 40, seed);
  for (size_t nbits : {4, 8}) {
    for (FlatMetric metric : {FlatMetric::kL2, FlatMetric::kInnerProduct}) {
      IvfPqParams p;
      p.nlist = 64;
      p.m = 8;
      p.nbits = nbits;
      p.metric = metric;
      p.kmeans_iterations = 3;
      ASSERT_OK_AND_ASSIGN(const IvfPqIndex index,
                           IvfPqIndex::Build(x.data(), Iota(n).data(), n, d, p, nullptr));
      EXPECT_EQ(index.CodeBytesPerVector(), nbits == 8 ? 8u : 4u);
      const size_t fixed = (p.nlist * d + 2 * (size_t{1} << nbits) * d + p.nlist) * 4 +
                           p.nlist * 128 + 4096;
      const double per_vector =
          static_cast<double>(index.MemoryBytes() - std::min(index.MemoryBytes(), fixed)) / n;
      // ids (4 bytes) + 8-bit L2 term (4 bytes) + fast-scan block padding (< 32 codes per list).
      EXPECT_LE(per_vector, index.CodeBytesPerVector() + 16.0)
          << "nbits " << nbits << " bytes/vector " << index.BytesPerVector();
      EXPECT_GT(index.BytesPerVector(), static_cast<double>(index.CodeBytesPerVector()));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Serialization: damaged input.
// ---------------------------------------------------------------------------------------------

std::string SmallIndexBytes(size_t nbits, uint64_t seed) {
  const size_t n = 400, d = 8;
  const std::vector<float> x = testing::ClusteredVectors(n, d, 5, seed);
  IvfPqParams p;
  p.nlist = 5;
  p.m = 4;
  p.nbits = nbits;
  p.seed = seed;
  p.kmeans_iterations = 3;
  absl::StatusOr<IvfPqIndex> index = IvfPqIndex::Build(x.data(), Iota(n).data(), n, d, p, nullptr);
  EXPECT_TRUE(index.ok()) << index.status();
  return index.ok() ? index->Serialize() : std::string();
}

// Rewrites the trailing checksum so that damage gets past it to the parser.
std::string Reseal(std::string bytes) {
  if (bytes.size() < 8) return bytes;
  const uint64_t sum = IvfPqIndex::Checksum(std::string_view(bytes.data(), bytes.size() - 8));
  std::memcpy(bytes.data() + bytes.size() - 8, &sum, 8);
  return bytes;
}

TEST(IvfPqSerialization, RejectsDamagedInputWithClearErrors) {
  const uint64_t seed = TestSeed(610);
  SCOPED_TRACE(SeedTrace(seed));
  const std::string good = SmallIndexBytes(8, seed);
  ASSERT_FALSE(good.empty());
  ASSERT_OK(IvfPqIndex::Deserialize(good));
  EXPECT_STATUS(IvfPqIndex::Deserialize(""), absl::StatusCode::kDataLoss, "bad magic");
  EXPECT_STATUS(IvfPqIndex::Deserialize("not an index at all, really"),
                absl::StatusCode::kDataLoss, "bad magic");
  EXPECT_STATUS(IvfPqIndex::Deserialize(good.substr(0, 40)), absl::StatusCode::kDataLoss,
                "truncated");
  EXPECT_STATUS(IvfPqIndex::Deserialize(good.substr(0, good.size() - 1)),
                absl::StatusCode::kDataLoss, "truncated or extended");
  EXPECT_STATUS(IvfPqIndex::Deserialize(good + "x"), absl::StatusCode::kDataLoss,
                "truncated or extended");
  std::string v2 = good;
  v2[8] = 2;
  EXPECT_STATUS(IvfPqIndex::Deserialize(v2), absl::StatusCode::kUnimplemented,
                "format version 2 is not supported (this build reads version 1)");
  std::string flipped = good;
  flipped[good.size() / 2] ^= 0x10;
  EXPECT_STATUS(IvfPqIndex::Deserialize(flipped), absl::StatusCode::kDataLoss,
                "checksum mismatch");
  // Consistent checksums over inconsistent contents: the parser names the field.
  auto with_u64 = [&](size_t offset, uint64_t v) {
    std::string b = good;
    std::memcpy(b.data() + offset, &v, 8);
    return Reseal(b);
  };
  EXPECT_STATUS(IvfPqIndex::Deserialize(with_u64(24, 0)), absl::StatusCode::kDataLoss,
                "dimension 0");
  EXPECT_STATUS(IvfPqIndex::Deserialize(with_u64(40, 3)), absl::StatusCode::kDataLoss,
                "m = 3 at byte 40 does not divide the dimension 8");
  EXPECT_STATUS(IvfPqIndex::Deserialize(with_u64(48, 5)), absl::StatusCode::kDataLoss, "nbits 5");
  EXPECT_STATUS(IvfPqIndex::Deserialize(with_u64(32, 1u << 20)), absl::StatusCode::kDataLoss,
                "nlist");
  EXPECT_STATUS(IvfPqIndex::Deserialize(with_u64(32, 4000)), absl::StatusCode::kDataLoss,
                "truncated");
  EXPECT_STATUS(IvfPqIndex::Deserialize(with_u64(56, 401)), absl::StatusCode::kDataLoss,
                "list sizes sum to 400, not the recorded vector count 401");
  EXPECT_STATUS(IvfPqIndex::Deserialize(with_u64(56, ~uint64_t{0})), absl::StatusCode::kDataLoss,
                "vector count");
}

TEST(IvfPqSerialization, FuzzedInputNeverCrashes) {
  const uint64_t seed = TestSeed(611);
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  for (size_t nbits : {4, 8}) {
    const std::string good = SmallIndexBytes(nbits, seed);
    ASSERT_FALSE(good.empty());
    // Every truncation.
    for (size_t len = 0; len < good.size(); ++len) {
      ASSERT_FALSE(IvfPqIndex::Deserialize(good.substr(0, len)).ok()) << "length " << len;
      ASSERT_FALSE(IvfPqIndex::Deserialize(Reseal(good.substr(0, len))).ok()) << "length " << len;
    }
    // Random bytes, with and without a valid magic/version/length/checksum frame.
    for (int trial = 0; trial < 300; ++trial) {
      std::string junk(rng() % 600, '\0');
      for (char& ch : junk) ch = static_cast<char>(rng());
      ASSERT_FALSE(IvfPqIndex::Deserialize(junk).ok());
      if (junk.size() >= 80) {
        std::memcpy(junk.data(), good.data(), 12);  // magic + version
        const uint64_t len = junk.size();
        std::memcpy(junk.data() + 16, &len, 8);
        (void)IvfPqIndex::Deserialize(Reseal(junk));  // any status; must not crash
      }
    }
    // Random byte mutations of a valid index, resealed: either an error or an index that
    // searches without crashing.
    const std::vector<float> q = testing::RandomVectors(2, 8, seed);
    for (int trial = 0; trial < 400; ++trial) {
      std::string b = good;
      const int edits = 1 + static_cast<int>(rng() % 4);
      for (int e = 0; e < edits; ++e) {
        // Mostly the header and the list sizes, where damage is structural.
        const size_t pos = (rng() % 2) ? rng() % std::min<size_t>(b.size(), 400) : rng() % b.size();
        b[pos] = static_cast<char>(rng());
      }
      absl::StatusOr<IvfPqIndex> r = IvfPqIndex::Deserialize(Reseal(b));
      if (r.ok()) {
        IvfPqSearchParams sp;
        sp.k = 5;
        sp.nprobe = 3;
        (void)r->Search(q.data(), 2, sp);
      }
      ASSERT_FALSE(IvfPqIndex::Deserialize(b).ok() && b != good);  // checksum catches it
    }
  }
}

}  // namespace
}  // namespace rosetta::kernels
