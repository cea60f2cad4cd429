// Driver for the side-by-side FlatSearch benchmark (bench/peers/flat_vs_faiss.py): loads base and
// query vectors from .npy files (float32, C order, as numpy.save writes them) and times
// rosetta::kernels::FlatSearch (inner product) on them.
//
// One-shot mode (prints a table):
//   flat_search_bench --base B.npy --queries Q.npy [--k 10] [--threads 2] [--batches 1,256]
//                     [--queries-per-round 256] [--rounds 5]
// Serve mode (--serve), used by the peer script so that our rounds and FAISS's can be interleaved
// in one run on the same data: after loading, prints one JSON line {"ready": true, ...}; then reads
// commands from stdin, one per line, answering each with one JSON line:
//   time <batch> <nqueries> <rounds>   search queries[0, nqueries) in batches of <batch>, <rounds>
//                                      times; -> {"seconds": [per-round wall seconds],
//                                      "cpu_seconds": [per-round CPU seconds of the process]}
//   dump <batch> <nqueries> <path>     write the ids (nqueries x k, int64 little-endian) -> {"ok": 1}
//   quit
// The SIMD level follows ROSETTA_SIMD as everywhere; warm-up is the caller's business (send a
// `time` command and discard it).
#include <algorithm>
#include <sys/resource.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/flat_search.h"
#include "kernels/parallel.h"
#include "kernels/simd.h"

namespace {

using rosetta::kernels::FlatSearch;
using rosetta::kernels::FlatSearchParams;
using rosetta::kernels::Scored;
using rosetta::kernels::ThreadPool;

// User + system CPU seconds of the whole process (all threads).
double ProcessCpuSeconds() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

struct Matrix {
  std::vector<float> data;
  size_t rows = 0;
  size_t cols = 0;
};

// Reads a 2-D little-endian float32 C-order .npy (format versions 1.0 to 3.0).
bool ReadNpy(const std::string& path, Matrix* m, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = path + ": cannot open";
    return false;
  }
  char magic[8];
  if (!in.read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0) {
    *error = path + ": not a .npy file";
    return false;
  }
  size_t header_len = 0;
  if (magic[6] == 1) {
    unsigned char b[2];
    in.read(reinterpret_cast<char*>(b), 2);
    header_len = b[0] | (b[1] << 8);
  } else {
    unsigned char b[4];
    in.read(reinterpret_cast<char*>(b), 4);
    header_len = b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<size_t>(b[3]) << 24);
  }
  std::string header(header_len, '\0');
  if (!in.read(header.data(), header_len)) {
    *error = path + ": truncated header";
    return false;
  }
  if (header.find("'descr': '<f4'") == std::string::npos ||
      header.find("'fortran_order': False") == std::string::npos) {
    *error = path + ": expected little-endian float32 in C order, header: " + header;
    return false;
  }
  const size_t open = header.find('(', header.find("'shape'"));
  if (open == std::string::npos ||
      std::sscanf(header.c_str() + open, "(%zu, %zu)", &m->rows, &m->cols) != 2) {
    *error = path + ": expected a 2-D array, header: " + header;
    return false;
  }
  m->data.resize(m->rows * m->cols);
  if (!in.read(reinterpret_cast<char*>(m->data.data()), m->data.size() * sizeof(float))) {
    *error = path + ": truncated data";
    return false;
  }
  return true;
}

struct Options {
  std::string base, queries;
  size_t k = 10;
  size_t threads = 2;
  std::vector<size_t> batches = {1, 256};
  size_t queries_per_round = 256;
  size_t rounds = 5;
  bool serve = false;
};

class Runner {
 public:
  Runner(const Matrix& base, const Matrix& queries, const Options& opt)
      : base_(base), queries_(queries), opt_(opt), pool_(opt.threads) {
    params_.k = opt.k;
    params_.pool = opt.threads > 1 ? &pool_ : nullptr;
  }

  // Searches queries [0, n) in batches; returns wall seconds; ids (optional) gets n x k ids.
  double Run(size_t batch, size_t n, std::vector<int64_t>* ids) {
    const size_t d = base_.cols;
    const auto start = std::chrono::steady_clock::now();
    for (size_t i = 0; i < n; i += batch) {
      const size_t nq = std::min(batch, n - i);
      auto res = FlatSearch(queries_.data.data() + i * d, nq, base_.data.data(), base_.rows, d,
                            params_);
      if (ids != nullptr) {
        for (const auto& r : res) {
          for (size_t j = 0; j < opt_.k; ++j) ids->push_back(j < r.size() ? r[j].id : -1);
        }
      }
    }
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }

 private:
  const Matrix& base_;
  const Matrix& queries_;
  const Options& opt_;
  ThreadPool pool_;
  FlatSearchParams params_;
};

std::vector<size_t> ParseList(const std::string& s) {
  std::vector<size_t> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(std::strtoull(item.c_str(), nullptr, 10));
  return out;
}

int Usage() {
  std::fprintf(stderr,
               "usage: flat_search_bench --base B.npy --queries Q.npy [--k 10] [--threads 2] "
               "[--batches 1,256] [--queries-per-round 256] [--rounds 5] [--serve]\n");
  return 2;
}

int Serve(Runner& runner, const Matrix& queries, const Options& opt) {
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    std::string cmd;
    in >> cmd;
    if (cmd == "quit") break;
    size_t batch = 0, n = 0;
    in >> batch >> n;
    if (batch == 0 || n == 0 || n > queries.rows) {
      std::printf("{\"error\": \"bad command '%s' (batch and nqueries must be in [1, %zu])\"}\n",
                  line.c_str(), queries.rows);
      std::fflush(stdout);
      continue;
    }
    if (cmd == "time") {
      size_t rounds = 1;
      in >> rounds;
      std::vector<double> wall, cpu;
      for (size_t r = 0; r < rounds; ++r) {
        const double c0 = ProcessCpuSeconds();
        wall.push_back(runner.Run(batch, n, nullptr));
        cpu.push_back(ProcessCpuSeconds() - c0);
      }
      std::printf("{\"seconds\": [");
      for (size_t r = 0; r < rounds; ++r) std::printf("%s%.9f", r ? ", " : "", wall[r]);
      std::printf("], \"cpu_seconds\": [");
      for (size_t r = 0; r < rounds; ++r) std::printf("%s%.9f", r ? ", " : "", cpu[r]);
      std::printf("]}\n");
    } else if (cmd == "dump") {
      std::string path;
      in >> path;
      std::vector<int64_t> ids;
      runner.Run(batch, n, &ids);
      std::ofstream out(path, std::ios::binary);
      out.write(reinterpret_cast<const char*>(ids.data()), ids.size() * sizeof(int64_t));
      std::printf(out ? "{\"ok\": 1}\n" : "{\"error\": \"cannot write %s\"}\n", path.c_str());
    } else {
      std::printf("{\"error\": \"unknown command '%s'\"}\n", cmd.c_str());
    }
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--base") opt.base = next();
    else if (a == "--queries") opt.queries = next();
    else if (a == "--k") opt.k = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--threads") opt.threads = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--batches") opt.batches = ParseList(next());
    else if (a == "--queries-per-round") opt.queries_per_round = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--rounds") opt.rounds = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--serve") opt.serve = true;
    else return Usage();
  }
  if (opt.base.empty() || opt.queries.empty() || opt.k == 0 || opt.threads == 0) return Usage();
  Matrix base, queries;
  std::string error;
  if (!ReadNpy(opt.base, &base, &error) || !ReadNpy(opt.queries, &queries, &error)) {
    std::fprintf(stderr, "flat_search_bench: %s\n", error.c_str());
    return 1;
  }
  if (base.cols != queries.cols) {
    std::fprintf(stderr, "flat_search_bench: base has d=%zu but queries have d=%zu\n", base.cols,
                 queries.cols);
    return 1;
  }
  Runner runner(base, queries, opt);
  const char* simd = rosetta::kernels::SimdLevelName(rosetta::kernels::ActiveSimdLevel());
  if (opt.serve) {
    std::printf("{\"ready\": true, \"simd\": \"%s\", \"threads\": %zu, \"nb\": %zu, \"d\": %zu, "
                "\"nq\": %zu, \"k\": %zu}\n",
                simd, opt.threads, base.rows, base.cols, queries.rows, opt.k);
    std::fflush(stdout);
    return Serve(runner, queries, opt);
  }
  const size_t n = std::min(opt.queries_per_round, queries.rows);
  std::printf("FlatSearch IP: nb=%zu d=%zu k=%zu threads=%zu simd=%s, %zu queries per round\n",
              base.rows, base.cols, opt.k, opt.threads, simd, n);
  std::printf("%8s %12s %12s\n", "batch", "best QPS", "median QPS");
  for (size_t batch : opt.batches) {
    if (batch == 0) continue;
    runner.Run(batch, std::min(n, batch * 2), nullptr);  // warm-up, not timed
    std::vector<double> qps;
    for (size_t r = 0; r < opt.rounds; ++r) qps.push_back(n / runner.Run(batch, n, nullptr));
    std::sort(qps.begin(), qps.end());
    std::printf("%8zu %12.1f %12.1f\n", batch, qps.back(), qps[qps.size() / 2]);
  }
  return 0;
}
