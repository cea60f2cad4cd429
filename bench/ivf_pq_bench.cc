// Google Benchmark microbenchmarks of the IVF-PQ kernels, per SIMD level:
//   BM_AdcScan8     8-bit ADC over float tables (unrolled scalar loop and gathers);
//   BM_FastScan     4-bit fast-scan (in-register lookups, exact uint16 sums), with every code
//                   reported (limit 65535) or ~1% of them (a realistic top-k threshold);
//   BM_QuantizeLut  fast-scan table quantisation (once per query or per probed list);
//   BM_IvfPqSearch  end to end: one query at a time against a 50k x 128 clustered index.
// Run: build/bench/ivf_pq_bench [--benchmark_filter=...]. Counters: items_per_second = codes
// scanned per second (BM_IvfPqSearch: queries per second); the label names the level.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/pq_kernels.h"
#include "kernels/ivf_pq.h"
#include "kernels/simd.h"

namespace rosetta::kernels {
namespace {

using internal::GetPqKernelTable;
using internal::PqKernelTable;

// Codes scanned per iteration: a few probed lists' worth, resident in L1/L2 like a real scan.
constexpr size_t kCodes = 4096;

std::vector<float> Gaussian(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g(0.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = g(rng);
  return v;
}

using AdcFn = void (*)(const uint8_t*, size_t, size_t, const float*, float*);

// args: m.
void BM_AdcScan8(benchmark::State& state, SimdLevel level, AdcFn fn, const char* variant) {
  const size_t m = state.range(0);
  std::mt19937_64 rng(1);
  std::vector<uint8_t> codes(kCodes * m);
  for (uint8_t& c : codes) c = static_cast<uint8_t>(rng());
  const std::vector<float> table = Gaussian(m * 256, 2);
  std::vector<float> out(kCodes);
  for (auto _ : state) {
    fn(codes.data(), kCodes, m, table.data(), out.data());
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kCodes));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kCodes * m));
  state.SetLabel(std::string(SimdLevelName(level)) + "/" + variant);
}

// args: m, selective (0: limit 65535, every code is a hit; 1: ~1% of the codes pass).
void BM_FastScan(benchmark::State& state, SimdLevel level) {
  const size_t m = state.range(0);
  const bool selective = state.range(1) != 0;
  const PqKernelTable& pk = GetPqKernelTable(level);
  const size_t pairs = (m + 1) / 2;
  std::mt19937_64 rng(3);
  std::vector<uint8_t> blocks(kCodes / 32 * pairs * 32);
  for (uint8_t& b : blocks) b = static_cast<uint8_t>(rng());
  const std::vector<float> dist = Gaussian(m * 16, 4);
  std::vector<uint8_t> lut(pairs * 32);
  float bias, inv;
  pk.quantize_lut(dist.data(), m, /*row_min=*/true, lut.data(), &bias, &inv);
  std::vector<uint16_t> acc(kCodes);
  std::vector<uint32_t> hits(kCodes);
  uint16_t limit = 65535;
  if (selective) {
    pk.fastscan(blocks.data(), kCodes, pairs, lut.data(), 65535, acc.data(), hits.data());
    std::vector<uint16_t> sorted(acc);
    std::nth_element(sorted.begin(), sorted.begin() + kCodes / 100, sorted.end());
    limit = sorted[kCodes / 100];
  }
  size_t total_hits = 0;
  for (auto _ : state) {
    total_hits += pk.fastscan(blocks.data(), kCodes, pairs, lut.data(), limit, acc.data(),
                              hits.data());
    benchmark::DoNotOptimize(acc.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kCodes));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kCodes * pairs));
  state.counters["hit_fraction"] =
      static_cast<double>(total_hits) / (static_cast<double>(state.iterations()) * kCodes);
  state.SetLabel(SimdLevelName(level));
}

// args: m, row_min (1: IP tables, 0: L2 tables).
void BM_QuantizeLut(benchmark::State& state, SimdLevel level) {
  const size_t m = state.range(0);
  const bool row_min = state.range(1) != 0;
  const PqKernelTable& pk = GetPqKernelTable(level);
  std::vector<float> dist = Gaussian(m * 16, 5);
  if (!row_min) {
    for (float& v : dist) v = v * v;
  }
  std::vector<uint8_t> lut((m + 1) / 2 * 32);
  float bias, inv;
  for (auto _ : state) {
    benchmark::DoNotOptimize(pk.quantize_lut(dist.data(), m, row_min, lut.data(), &bias, &inv));
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetLabel(SimdLevelName(level));
}

// Clustered data of low intrinsic dimension (as tests/kernels/ivf_pq_recall_test.cc).
std::vector<float> Clustered(size_t n, size_t d, uint64_t seed) {
  const size_t clusters = 200, intrinsic = 16;
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g(0.f, 1.f);
  std::vector<float> centres(clusters * d), dirs(clusters * intrinsic * d), out(n * d);
  for (float& c : centres) c = 0.7f * g(rng);
  for (float& v : dirs) v = g(rng) / 11.3f;
  for (size_t i = 0; i < n; ++i) {
    const size_t c = rng() % clusters;
    float* x = out.data() + i * d;
    for (size_t t = 0; t < d; ++t) x[t] = centres[c * d + t] + 0.02f * g(rng);
    for (size_t a = 0; a < intrinsic; ++a) {
      const float z = g(rng);
      for (size_t t = 0; t < d; ++t) x[t] += z * dirs[(c * intrinsic + a) * d + t];
    }
  }
  return out;
}

struct SearchFixture {
  static constexpr size_t kN = 50000, kD = 128, kQueries = 256;
  std::vector<float> queries;
  IvfPqIndex index8, index4;
};

const SearchFixture& Fixture() {
  static const SearchFixture* const f = [] {
    auto* fx = new SearchFixture;
    std::vector<float> all = Clustered(SearchFixture::kN + SearchFixture::kQueries,
                                       SearchFixture::kD, 7);
    fx->queries.assign(all.begin() + SearchFixture::kN * SearchFixture::kD, all.end());
    std::vector<uint32_t> ids(SearchFixture::kN);
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<uint32_t>(i);
    for (size_t nbits : {8, 4}) {
      IvfPqParams p;
      p.nbits = nbits;
      p.m = 32;
      p.kmeans_iterations = 10;
      absl::StatusOr<IvfPqIndex> idx =
          IvfPqIndex::Build(all.data(), ids.data(), SearchFixture::kN, SearchFixture::kD, p,
                            nullptr);
      if (!idx.ok()) std::abort();
      (nbits == 8 ? fx->index8 : fx->index4) = std::move(*idx);
    }
    return fx;
  }();
  return *f;
}

// args: nbits. One query per Search call, default nprobe, k = DefaultRefine(10, nbits).
void BM_IvfPqSearch(benchmark::State& state, SimdLevel level) {
  const size_t nbits = state.range(0);
  const SearchFixture& f = Fixture();
  const IvfPqIndex& index = nbits == 8 ? f.index8 : f.index4;
  IvfPqSearchParams sp;
  sp.k = DefaultRefine(10, nbits);
  sp.simd_level = level;
  size_t q = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(index.Search(f.queries.data() + q * SearchFixture::kD, 1, sp));
    q = (q + 1) % SearchFixture::kQueries;
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetLabel(std::string(SimdLevelName(level)) + " nlist=" + std::to_string(index.nlist()) +
                 " nprobe=" + std::to_string(DefaultNprobe(index.nlist())) +
                 " m=" + std::to_string(index.m()));
}

int RegisterAll() {
  for (SimdLevel level : SupportedSimdLevels()) {
    const std::string name = SimdLevelName(level);
    const PqKernelTable& pk = GetPqKernelTable(level);
    benchmark::RegisterBenchmark(("BM_AdcScan8/" + name + "/table").c_str(), BM_AdcScan8, level,
                                 pk.adc_scan8, "table")
        ->Arg(16)->Arg(32)->Arg(64);
    AdcFn gather = level == SimdLevel::kAvx2     ? internal::kAvx2AdcScan8Gather
                   : level == SimdLevel::kAvx512 ? internal::kAvx512AdcScan8Gather
                                                 : nullptr;
    if (gather != nullptr) {
      benchmark::RegisterBenchmark(("BM_AdcScan8/" + name + "/gather").c_str(), BM_AdcScan8,
                                   level, gather, "gather")
          ->Arg(16)->Arg(32)->Arg(64);
    }
    benchmark::RegisterBenchmark(("BM_FastScan/" + name).c_str(), BM_FastScan, level)
        ->ArgsProduct({{16, 32, 64}, {0, 1}});
    benchmark::RegisterBenchmark(("BM_QuantizeLut/" + name).c_str(), BM_QuantizeLut, level)
        ->ArgsProduct({{32, 64}, {1, 0}});
    benchmark::RegisterBenchmark(("BM_IvfPqSearch/" + name).c_str(), BM_IvfPqSearch, level)
        ->Arg(8)->Arg(4);
  }
  benchmark::AddCustomContext("simd_active", SimdLevelName(ActiveSimdLevel()));
  benchmark::AddCustomContext("device", "cpu");
  return 0;
}

const int kRegistered = RegisterAll();

}  // namespace
}  // namespace rosetta::kernels

BENCHMARK_MAIN();
