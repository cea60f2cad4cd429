// GPU exact top-k benchmark (issue 6 "Speed"): 1M x 768 fp16, k = 10.
//   - batch 1, 4, 16 (fused path): achieved bandwidth (base bytes read / time) against the card's
//     device-to-device cudaMemcpy bandwidth measured in the same run;
//   - batch 1024, 4096 (tiled path): our time against one cuBLAS GEMM of the whole batch alone;
//   - with --torch=FILE (the CSV of bench/gpu_torch_baseline.py, run in the same command): the
//     end-to-end ratio torch time / our time.
// Times are end to end through the public API (host queries in, host results out), median over
// --reps calls after warm-up. Exits 0 with a message when the build or the machine has no CUDA.
//
//   gpu_bench [--rows=1000000] [--dim=768] [--k=10] [--storage=fp16|fp32]
//             [--batches=1,4,16,1024,4096] [--reps=30] [--torch=FILE] [--scratch-sweep]
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "kernels/device.h"
#include "kernels/gpu_search.h"

namespace {

using rosetta::kernels::GpuFlatSearch;
using rosetta::kernels::GpuMatrix;
using rosetta::kernels::GpuPath;
using rosetta::kernels::GpuSearchParams;
using rosetta::kernels::GpuStorage;

struct Options {
  size_t rows = 1000000;
  size_t dim = 768;
  size_t k = 10;
  GpuStorage storage = GpuStorage::kFloat16;
  std::vector<size_t> batches = {1, 4, 16, 1024, 4096};
  int reps = 30;
  std::string torch_csv;
  bool scratch_sweep = false;
};

bool ParseSize(const std::string& s, size_t* out) {
  char* end = nullptr;
  const unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0') return false;
  *out = static_cast<size_t>(v);
  return true;
}

bool ParseArgs(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* name) -> const char* {
      const size_t n = std::strlen(name);
      return a.compare(0, n, name) == 0 ? a.c_str() + n : nullptr;
    };
    size_t v = 0;
    if (const char* s = value("--rows=")) {
      if (!ParseSize(s, &o->rows) || o->rows == 0) return false;
    } else if (const char* s = value("--dim=")) {
      if (!ParseSize(s, &o->dim) || o->dim == 0) return false;
    } else if (const char* s = value("--k=")) {
      if (!ParseSize(s, &o->k)) return false;
    } else if (const char* s = value("--reps=")) {
      if (!ParseSize(s, &v) || v == 0) return false;
      o->reps = static_cast<int>(v);
    } else if (const char* s = value("--storage=")) {
      if (std::strcmp(s, "fp16") == 0) {
        o->storage = GpuStorage::kFloat16;
      } else if (std::strcmp(s, "fp32") == 0) {
        o->storage = GpuStorage::kFloat32;
      } else {
        return false;
      }
    } else if (const char* s = value("--batches=")) {
      o->batches.clear();
      std::stringstream ss(s);
      std::string item;
      while (std::getline(ss, item, ',')) {
        if (!ParseSize(item, &v) || v == 0) return false;
        o->batches.push_back(v);
      }
    } else if (const char* s = value("--torch=")) {
      o->torch_csv = s;
    } else if (a == "--scratch-sweep") {
      o->scratch_sweep = true;
    } else {
      return false;
    }
  }
  return !o->batches.empty();
}

// Uniform [-1, 1) floats, filled by several threads (xorshift per thread: fast, reproducible).
std::vector<float> RandomData(size_t n, uint64_t seed) {
  std::vector<float> v(n);
  const size_t threads = std::max<size_t>(1, std::min<size_t>(16, std::thread::hardware_concurrency()));
  std::vector<std::thread> pool;
  for (size_t t = 0; t < threads; ++t) {
    pool.emplace_back([&, t]() {
      uint64_t x = seed * 0x9e3779b97f4a7c15ull + t + 1;
      const size_t begin = n * t / threads, end = n * (t + 1) / threads;
      for (size_t i = begin; i < end; ++i) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v[i] = static_cast<float>(x >> 40) * (1.0f / 8388608.0f) - 1.0f;
      }
    });
  }
  for (auto& th : pool) th.join();
  return v;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Median wall time of GpuFlatSearch (seconds), or < 0 on error (printed); the median device
// time (GpuSearchStats::device_ms, in seconds) in *device.
double TimeSearch(const GpuMatrix& m, const std::vector<float>& q, size_t nq, size_t d,
                  GpuSearchParams p, int reps, double* device = nullptr) {
  rosetta::kernels::GpuSearchStats stats;
  std::vector<double> device_times;
  for (int i = 0; i < 3; ++i) {
    auto r = GpuFlatSearch(m, q.data(), nq, d, p);
    if (!r.ok()) {
      std::fprintf(stderr, "search failed: %s\n", r.status().ToString().c_str());
      return -1;
    }
  }
  std::vector<double> times;
  for (int i = 0; i < reps; ++i) {
    // Stats on every other call, so that their event records do not bias the wall times.
    p.stats = (i % 2 == 1) ? &stats : nullptr;
    const auto t0 = std::chrono::steady_clock::now();
    auto r = GpuFlatSearch(m, q.data(), nq, d, p);
    const auto t1 = std::chrono::steady_clock::now();
    if (p.stats != nullptr && r.ok()) device_times.push_back(stats.device_ms * 1e-3);
    if (!r.ok()) {
      std::fprintf(stderr, "search failed: %s\n", r.status().ToString().c_str());
      return -1;
    }
    if (p.stats == nullptr) times.push_back(std::chrono::duration<double>(t1 - t0).count());
  }
  if (device != nullptr) *device = device_times.empty() ? 0 : Median(device_times);
  return Median(times);
}

// batch -> {torch end-to-end ms, torch matmul-only ms} from gpu_torch_baseline.py's CSV.
std::map<size_t, std::pair<double, double>> ReadTorch(const std::string& path) {
  std::map<size_t, std::pair<double, double>> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    size_t batch = 0;
    double e2e = 0, mm = 0;
    if (std::sscanf(line.c_str(), "%zu,%lf,%lf", &batch, &e2e, &mm) == 3) out[batch] = {e2e, mm};
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!ParseArgs(argc, argv, &o)) {
    std::fprintf(stderr,
                 "usage: gpu_bench [--rows=N] [--dim=D] [--k=K] [--storage=fp16|fp32] "
                 "[--batches=1,4,...] [--reps=N] [--torch=FILE] [--scratch-sweep]\n");
    return 2;
  }
  if (!rosetta::kernels::BuiltWithCuda()) {
    std::printf("gpu_bench: this build has no CUDA kernels; nothing to measure\n");
    return 0;
  }
  if (rosetta::kernels::CudaDeviceCount() == 0) {
    std::printf("gpu_bench: no usable CUDA device; nothing to measure\n");
    return 0;
  }
  auto info = rosetta::kernels::GetGpuDeviceInfo(0);
  if (!info.ok()) {
    std::fprintf(stderr, "device info: %s\n", info.status().ToString().c_str());
    return 1;
  }
  std::printf("device: %s (sm_%d%d, %d SMs, %.1f GiB, L2 %.0f MiB), driver %d, runtime %d\n",
              info->name.c_str(), info->compute_major, info->compute_minor, info->multiprocessors,
              info->total_bytes / double(1 << 30), info->l2_bytes / double(1 << 20),
              info->driver_version, info->runtime_version);

  // The card's copy bandwidth: 2 GiB device to device, counting bytes read and written.
  const size_t copy_bytes = size_t{2} << 30;
  auto copy = rosetta::kernels::GpuTimeDeviceCopy(0, copy_bytes, 20);
  if (!copy.ok()) {
    std::fprintf(stderr, "copy: %s\n", copy.status().ToString().c_str());
    return 1;
  }
  const double copy_bw = 2.0 * copy_bytes / *copy;
  std::printf("cudaMemcpy D2D %.0f MiB: %.3f ms = %.0f GB/s (read + write)\n",
              copy_bytes / double(1 << 20), *copy * 1e3, copy_bw / 1e9);

  const bool fp16 = o.storage == GpuStorage::kFloat16;
  std::printf("base: %zu x %zu %s, k=%zu\n", o.rows, o.dim, fp16 ? "fp16" : "fp32", o.k);
  std::vector<float> base = RandomData(o.rows * o.dim, 1);
  const auto u0 = std::chrono::steady_clock::now();
  auto matrix = GpuMatrix::Upload(base.data(), o.rows, o.dim, {o.storage, 0});
  const auto u1 = std::chrono::steady_clock::now();
  if (!matrix.ok()) {
    std::fprintf(stderr, "upload: %s\n", matrix.status().ToString().c_str());
    return 1;
  }
  base.clear();
  base.shrink_to_fit();
  // Bytes one pass over the base reads (padded rows as stored; IP reads no norms).
  const size_t padded = fp16 ? (o.dim + 31) / 32 * 32 : (o.dim + 15) / 16 * 16;
  const double base_bytes = static_cast<double>(o.rows) * padded * (fp16 ? 2 : 4);
  std::printf("upload: %.2f s, %.0f MiB on the device (%.0f MiB of rows)\n",
              std::chrono::duration<double>(u1 - u0).count(),
              (*matrix)->device_bytes() / double(1 << 20), base_bytes / (1 << 20));

  const auto torch = o.torch_csv.empty() ? std::map<size_t, std::pair<double, double>>{}
                                         : ReadTorch(o.torch_csv);
  struct Row {
    size_t batch;
    std::string path;
    double ms, qps, gbps, pct_copy, dev_ms, dev_pct_copy, gemm_ms, torch_ms;
  };
  std::vector<Row> rows;
  for (size_t batch : o.batches) {
    const std::vector<float> q = RandomData(batch * o.dim, 100 + batch);
    GpuSearchParams p;
    p.k = o.k;
    const int reps = batch >= 1024 ? std::max(5, o.reps / 4) : o.reps;
    const int timed = std::max(reps, 4);
    double dev = 0;
    const double t = TimeSearch(**matrix, q, batch, o.dim, p, 2 * timed, &dev);
    if (t < 0) return 1;
    Row r;
    r.batch = batch;
    r.path = batch <= p.fused_max_batch ? "fused" : "tiled";
    r.ms = t * 1e3;
    r.qps = batch / t;
    r.gbps = base_bytes / t / 1e9;
    r.pct_copy = 100.0 * (base_bytes / t) / copy_bw;
    r.dev_ms = dev * 1e3;
    r.dev_pct_copy = dev > 0 ? 100.0 * (base_bytes / dev) / copy_bw : 0;
    r.gemm_ms = -1;
    if (batch >= 64) {
      auto g = rosetta::kernels::GpuTimeGemmOnly(**matrix, batch, reps);
      if (g.ok()) {
        r.gemm_ms = *g * 1e3;
      } else {
        std::printf("GEMM alone at batch %zu: %s\n", batch, g.status().ToString().c_str());
      }
    }
    auto it = torch.find(batch);
    r.torch_ms = it == torch.end() ? -1 : it->second.first;
    rows.push_back(r);
    std::printf("batch %zu done: %.3f ms (device %.3f ms)\n", batch, r.ms, r.dev_ms);
    std::fflush(stdout);
  }

  if (o.scratch_sweep) {
    for (size_t batch : o.batches) {
      if (batch < 1024) continue;
      const std::vector<float> q = RandomData(batch * o.dim, 100 + batch);
      for (size_t mib : {16, 32, 64, 128, 256, 512}) {
        GpuSearchParams p;
        p.k = o.k;
        p.path = GpuPath::kTiled;
        p.scratch_bytes = mib << 20;
        const double t = TimeSearch(**matrix, q, batch, o.dim, p, 5);
        if (t < 0) return 1;
        std::printf("sweep: batch %zu scratch %zu MiB: %.3f ms\n", batch, mib, t * 1e3);
      }
    }
  }

  std::printf("\n| batch | path | our time e2e (ms) | QPS | base read e2e (GB/s) | e2e %% of D2D "
              "copy bw | device time (ms) | device %% of D2D copy bw | GEMM alone (ms) | "
              "ours e2e / GEMM | torch e2e (ms) | torch / ours |\n");
  std::printf("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const Row& r : rows) {
    char gemm[32] = "-", ratio[32] = "-", tms[32] = "-", tratio[32] = "-";
    if (r.gemm_ms > 0) {
      std::snprintf(gemm, sizeof gemm, "%.3f", r.gemm_ms);
      std::snprintf(ratio, sizeof ratio, "%.2f", r.ms / r.gemm_ms);
    }
    if (r.torch_ms > 0) {
      std::snprintf(tms, sizeof tms, "%.3f", r.torch_ms);
      std::snprintf(tratio, sizeof tratio, "%.2f", r.torch_ms / r.ms);
    }
    std::printf("| %zu | %s | %.3f | %.0f | %.0f | %.1f | %.3f | %.1f | %s | %s | %s | %s |\n",
                r.batch, r.path.c_str(), r.ms, r.qps, r.gbps, r.pct_copy, r.dev_ms,
                r.dev_pct_copy, gemm, ratio, tms, tratio);
  }
  return 0;
}
