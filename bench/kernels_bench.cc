// Google Benchmark microbenchmarks of the CPU kernels: dot / l2sqr / inner_products per SIMD level,
// TopK selection, and FlatSearch. Run: build/bench/kernels_bench [--benchmark_filter=...]
//
// Counters: items_per_second = vector pairs scored (or candidates offered) per second;
// bytes_per_second = bytes of input vectors read per second (base bytes for inner products);
// GFLOPS = 2 * d flops per pair. The context records the active SIMD level (ROSETTA_SIMD caps it)
// and the device.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "kernels/flat_search.h"
#include "kernels/parallel.h"
#include "kernels/simd.h"
#include "kernels/topk.h"

namespace rosetta::kernels {
namespace {

std::vector<float> Random(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g(0.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = g(rng);
  return v;
}

void BM_Dot(benchmark::State& state, SimdLevel level) {
  const size_t d = state.range(0);
  const KernelTable& t = GetKernelTable(level);
  // Many pairs so that the working set (4 MiB) is in L2/L3 rather than a single L1 line.
  const size_t n = std::max<size_t>(1, (4u << 20) / (d * sizeof(float)));
  const std::vector<float> a = Random(d, 1), b = Random(n * d, 2);
  size_t j = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(t.dot(a.data(), b.data() + j * d, d));
    if (++j == n) j = 0;
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * d * sizeof(float));
  state.counters["GFLOPS"] =
      benchmark::Counter(2.0 * d * state.iterations() / 1e9, benchmark::Counter::kIsRate);
}

void BM_L2Sqr(benchmark::State& state, SimdLevel level) {
  const size_t d = state.range(0);
  const KernelTable& t = GetKernelTable(level);
  const size_t n = std::max<size_t>(1, (4u << 20) / (d * sizeof(float)));
  const std::vector<float> a = Random(d, 1), b = Random(n * d, 2);
  size_t j = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(t.l2sqr(a.data(), b.data() + j * d, d));
    if (++j == n) j = 0;
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * d * sizeof(float));
  state.counters["GFLOPS"] =
      benchmark::Counter(3.0 * d * state.iterations() / 1e9, benchmark::Counter::kIsRate);
}

// nq x nb x d inner products, single-threaded; args: nq, nb, d.
void BM_InnerProducts(benchmark::State& state, SimdLevel level) {
  const size_t nq = state.range(0), nb = state.range(1), d = state.range(2);
  const KernelTable& t = GetKernelTable(level);
  const std::vector<float> q = Random(nq * d, 3), b = Random(nb * d, 4);
  std::vector<float> out(nq * nb);
  for (auto _ : state) {
    t.inner_products(q.data(), nq, b.data(), nb, d, out.data(), nb);
    benchmark::ClobberMemory();
  }
  const double pairs = static_cast<double>(nq) * nb * state.iterations();
  state.SetItemsProcessed(static_cast<int64_t>(pairs));
  state.SetBytesProcessed(state.iterations() * nb * d * sizeof(float));
  state.counters["GFLOPS"] = benchmark::Counter(2.0 * d * pairs / 1e9, benchmark::Counter::kIsRate);
}

// Offering n candidates with random scores to a TopK(k); args: k.
void BM_TopK(benchmark::State& state) {
  const size_t k = state.range(0);
  const size_t n = 1 << 20;
  const std::vector<float> s = Random(n, 5);
  for (auto _ : state) {
    TopK top(k);
    for (size_t i = 0; i < n; ++i) top.Push(s[i], static_cast<int64_t>(i));
    benchmark::DoNotOptimize(top.TakeSorted());
  }
  state.SetItemsProcessed(state.iterations() * n);
}

// SelectTopK over n scores with a skip bitmap skipping ~10%; args: k.
void BM_SelectTopK(benchmark::State& state) {
  const size_t k = state.range(0);
  const size_t n = 1 << 20;
  const std::vector<float> s = Random(n, 6);
  std::vector<uint64_t> skip(n / 64);
  std::mt19937_64 rng(7);
  for (uint64_t& w : skip) w = rng() & rng() & rng();  // ~12.5% of bits set
  for (auto _ : state) benchmark::DoNotOptimize(SelectTopK(s, k, 0, skip));
  state.SetItemsProcessed(state.iterations() * n);
  state.SetBytesProcessed(state.iterations() * n * sizeof(float));
}

// FlatSearch, inner product, k = 10, active SIMD level; args: nq, nb, d, threads.
void BM_FlatSearch(benchmark::State& state) {
  const size_t nq = state.range(0), nb = state.range(1), d = state.range(2);
  const size_t threads = state.range(3);
  const std::vector<float> q = Random(nq * d, 8), b = Random(nb * d, 9);
  ThreadPool pool(threads);
  FlatSearchParams p;
  p.k = 10;
  p.pool = threads > 1 ? &pool : nullptr;
  for (auto _ : state) benchmark::DoNotOptimize(FlatSearch(q.data(), nq, b.data(), nb, d, p));
  state.SetItemsProcessed(state.iterations() * nq);  // queries per second
  state.SetBytesProcessed(state.iterations() * nb * d * sizeof(float));
  state.counters["GFLOPS"] = benchmark::Counter(2.0 * d * nq * nb * state.iterations() / 1e9,
                                                benchmark::Counter::kIsRate);
}

void RegisterAll() {
  for (SimdLevel level : SupportedSimdLevels()) {
    const std::string name = SimdLevelName(level);
    benchmark::RegisterBenchmark(("BM_Dot/" + name).c_str(), BM_Dot, level)
        ->Arg(128)->Arg(768)->Arg(1536);
    benchmark::RegisterBenchmark(("BM_L2Sqr/" + name).c_str(), BM_L2Sqr, level)
        ->Arg(128)->Arg(768)->Arg(1536);
    benchmark::RegisterBenchmark(("BM_InnerProducts/" + name).c_str(), BM_InnerProducts, level)
        ->ArgNames({"nq", "nb", "d"})
        ->Args({1, 4096, 768})
        ->Args({1, 100000, 768})
        ->Args({8, 4096, 768})
        ->Args({64, 4096, 768})
        ->Args({256, 4096, 768})
        ->Args({256, 4096, 128})
        ->UseRealTime();
  }
  benchmark::RegisterBenchmark("BM_TopK", BM_TopK)->ArgName("k")->Arg(10)->Arg(100);
  benchmark::RegisterBenchmark("BM_SelectTopK", BM_SelectTopK)->ArgName("k")->Arg(10)->Arg(100);
  benchmark::RegisterBenchmark("BM_FlatSearch", BM_FlatSearch)
      ->ArgNames({"nq", "nb", "d", "threads"})
      ->Args({1, 100000, 768, 1})
      ->Args({1, 100000, 768, 2})
      ->Args({256, 20000, 768, 1})
      ->Args({256, 20000, 768, 2})
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
}

}  // namespace
}  // namespace rosetta::kernels

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("simd", rosetta::kernels::SimdLevelName(
                                          rosetta::kernels::ActiveSimdLevel()));
  benchmark::AddCustomContext("device", "cpu");
  rosetta::kernels::RegisterAll();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
