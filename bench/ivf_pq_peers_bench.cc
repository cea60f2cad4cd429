// Driver for the side-by-side IVF-PQ benchmark (bench/peers/ivf_vs_peers.py): Rosetta's IVF-PQ at
// two levels on the same data as the peers (faiss-cpu IndexIVFPQ / IndexIVFPQFastScan wrapped in
// IndexRefineFlat, hnswlib), driven over stdin/stdout so that the script can interleave our rounds
// with the peers' in one run.
//
//   kernel  rosetta::kernels::IvfPqIndex (Train, Add, Search with k = refine), then the exact
//           re-ranking the engine does: exact scores of the `refine` candidates (the active
//           KernelTable's l2sqr / dot, as the engine's exact re-scoring), top-k. Queries are
//           searched as one batch (like FAISS's index.search on a query matrix); the re-ranking
//           is parallel over queries on the same pool.
//   engine  rosetta::engine::Database end to end: a collection with one ivf_pq field, vectors
//           imported with ImportVectors in batches of kMaxBatchRecords, one BuildIndex (one sealed
//           segment holding every vector) + WaitForIndexes, then Database::Search per query
//           (exact = false, nprobe, refine, normalize none, explain and attributes off) from one
//           client thread (the engine parallelises each query over its search pool) or from
//           several client threads at once.
//
// Usage:
//   ivf_pq_peers_bench --serve --base B.npy --queries Q.npy --metric l2|ip [--k 10]
// After loading it prints one JSON line {"ready": true, "simd", "nb", "d", "nq", "k", "metric",
// "default_nlist", "default_m"} (kernels::DefaultNlist(nb), DefaultM(d)), then answers each command line with
// one JSON line ({"error": "..."} on failure):
//   build NAME NLIST M NBITS THREADS
//       IvfPqIndex::Build (train, add every base vector with ids = row numbers, drop the lists'
//       growth slack: what the engine calls) with a pool of THREADS
//       -> {"build_s", "memory_bytes", "bytes_per_vector", "code_bytes", ...}
//   engine_build NAME NLIST M NBITS THREADS DIR
//       opens a new database in DIR (must not exist) with search_threads = THREADS, store sync
//       none, auto_seal false; creates the collection, imports, builds -> {"import_s",
//       "build_s", "bytes_per_vector", "nlist", "m", "nbits", "segments", ...}
//   engine_threads NAME THREADS
//       closes and reopens NAME's database with search_threads = THREADS (the indexes load
//       without retraining) -> {"open_s", "kmeans_runs_during_open"}
//   search NAME NPROBE REFINE THREADS REPS IDS_PATH [CLIENTS]
//       searches every query REPS times (k results, REFINE candidates re-ranked exactly); for a
//       kernel index with a pool of THREADS, for an engine database with its search pool (THREADS
//       must match its search_threads) from CLIENTS client threads (default 1). Writes the ids of
//       the last repetition to IDS_PATH (nq x k int64 little-endian, -1 padded; "-" = none)
//       -> {"seconds": [per-rep wall seconds], "cpu_seconds": [per-rep process CPU seconds]}
//   drop NAME   frees an index or closes (and leaves on disk) a database -> {"ok": 1}
//   simd LEVEL  pins the SIMD level of later kernel-index searches (IvfPqSearchParams::simd_level:
//               scalar | avx2 | avx512; auto = the active level); the exact re-ranking keeps the
//               active level -> {"ok": 1}
//   quit
// Without --serve it builds one kernel index (--nlist, --m, --nbits, --threads) and prints the QPS
// of a few nprobe values, for a quick look.
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "engine/database.h"
#include "kernels/flat_search.h"
#include "kernels/ivf_pq.h"
#include "kernels/kmeans.h"
#include "kernels/parallel.h"
#include "kernels/simd.h"
#include "kernels/topk.h"
#include "schema/array_io.h"
#include "schema/types.h"

namespace {

using rosetta::kernels::FlatMetric;
using rosetta::kernels::IvfPqIndex;
using rosetta::kernels::IvfPqParams;
using rosetta::kernels::IvfPqSearchParams;
using rosetta::kernels::Scored;
using rosetta::kernels::ThreadPool;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

// User + system CPU seconds of the whole process (all threads).
double ProcessCpuSeconds() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

std::string JsonEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

struct Options {
  std::string base, queries;
  std::string metric = "l2";
  size_t k = 10;
  bool serve = false;
  // One-shot mode only.
  size_t nlist = 0, m = 0, nbits = 8, threads = 2;
};

// Pools by thread count (1 = the calling thread only: nullptr).
class Pools {
 public:
  ThreadPool* Get(size_t threads) {
    if (threads <= 1) return nullptr;
    auto& p = pools_[threads];
    if (!p) p = std::make_unique<ThreadPool>(threads);
    return p.get();
  }

 private:
  std::map<size_t, std::unique_ptr<ThreadPool>> pools_;
};

struct EngineEntry {
  std::string dir;
  size_t threads = 0;
  std::unique_ptr<rosetta::engine::Database> db;
  std::vector<rosetta::SearchRequest> requests;  // one per query, nprobe/refine set per search
};

class Bench {
 public:
  Bench(rosetta::Matrix<float> base, rosetta::Matrix<float> queries, const Options& opt)
      : base_(std::move(base)), queries_(std::move(queries)), opt_(opt) {
    metric_ = opt.metric == "ip" ? FlatMetric::kInnerProduct : FlatMetric::kL2;
  }

  size_t nb() const { return base_.rows; }
  size_t nq() const { return queries_.rows; }
  size_t d() const { return base_.cols; }

  std::string Build(const std::string& name, size_t nlist, size_t m, size_t nbits,
                    size_t threads) {
    IvfPqParams p;
    p.nlist = nlist;
    p.m = m;
    p.nbits = nbits;
    p.metric = metric_;
    ThreadPool* pool = pools_.Get(threads);
    std::vector<uint32_t> ids(nb());
    for (size_t i = 0; i < nb(); ++i) ids[i] = static_cast<uint32_t>(i);
    const uint64_t runs0 = rosetta::kernels::KMeansRunCount();
    const double c0 = ProcessCpuSeconds();
    const auto t0 = Clock::now();
    // Build = Train + Add + dropping the lists' growth slack: what the engine calls.
    absl::StatusOr<IvfPqIndex> index =
        IvfPqIndex::Build(base_.data.data(), ids.data(), nb(), d(), p, pool);
    if (!index.ok()) return Error("build: " + std::string(index.status().message()));
    const double build_s = Seconds(t0);
    const double cpu_s = ProcessCpuSeconds() - c0;
    auto owned = std::make_unique<IvfPqIndex>(*std::move(index));
    std::ostringstream out;
    out << "{\"build_s\": " << build_s << ", \"build_cpu_s\": " << cpu_s << ", \"memory_bytes\": " << owned->MemoryBytes()
        << ", \"bytes_per_vector\": " << owned->BytesPerVector()
        << ", \"code_bytes\": " << owned->CodeBytesPerVector()
        << ", \"pq_memory_bytes\": " << owned->pq().MemoryBytes()
        << ", \"centroid_bytes\": " << owned->centroids().size() * sizeof(float)
        << ", \"nlist\": " << owned->nlist() << ", \"m\": " << owned->m()
        << ", \"nbits\": " << owned->nbits() << ", \"ntotal\": " << owned->size()
        << ", \"kmeans_runs\": " << rosetta::kernels::KMeansRunCount() - runs0 << "}";
    kernels_[name] = std::move(owned);
    return out.str();
  }

  std::string EngineBuild(const std::string& name, size_t nlist, size_t m, size_t nbits,
                          size_t threads, const std::string& dir) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (fs::exists(dir, ec)) return Error("engine_build: " + dir + " already exists");
    auto entry = std::make_unique<EngineEntry>();
    entry->dir = dir;
    entry->threads = threads;
    auto t0 = Clock::now();
    absl::StatusOr<std::unique_ptr<rosetta::engine::Database>> db =
        rosetta::engine::Database::Open(dir, DbOptions(threads));
    if (!db.ok()) return Error("open: " + std::string(db.status().message()));
    entry->db = *std::move(db);
    rosetta::CollectionSchema schema;
    schema.name = name;
    rosetta::Space space;
    space.name = "e";
    space.dim = static_cast<int>(d());
    space.metric = metric_ == FlatMetric::kL2 ? rosetta::Metric::kL2 : rosetta::Metric::kCosine;
    space.encoder = "bench@1";
    schema.spaces["e"] = space;
    rosetta::Field field;
    field.name = "v";
    field.space = "e";
    field.modality = "vector";
    field.index.type = rosetta::IndexType::kIvfPq;
    field.index.nlist = static_cast<int64_t>(nlist);
    field.index.m = static_cast<int64_t>(m);
    field.index.nbits = static_cast<int64_t>(nbits);
    schema.fields["v"] = field;
    absl::Status s = entry->db->CreateCollection(schema);
    if (!s.ok()) return Error("create collection: " + std::string(s.message()));
    const double open_s = Seconds(t0);

    t0 = Clock::now();
    const size_t batch = rosetta::engine::kMaxBatchRecords;
    for (size_t start = 0; start < nb(); start += batch) {
      const size_t rows = std::min(batch, nb() - start);
      rosetta::engine::ImportOptions io;
      io.id_offset = static_cast<int64_t>(start);
      auto r = entry->db->ImportVectors(
          name, "v", std::span<const float>(base_.data.data() + start * d(), rows * d()), rows,
          d(), io);
      if (!r.ok()) return Error("import: " + std::string(r.status().message()));
    }
    const double import_s = Seconds(t0);

    const uint64_t runs0 = rosetta::kernels::KMeansRunCount();
    const double c0 = ProcessCpuSeconds();
    t0 = Clock::now();
    auto p = entry->db->BuildIndex(name, "");
    if (!p.ok()) return Error("build index: " + std::string(p.status().message()));
    p = entry->db->WaitForIndexes(name, std::chrono::hours(2));
    if (!p.ok()) return Error("wait for indexes: " + std::string(p.status().message()));
    const double build_s = Seconds(t0);
    const double build_cpu_s = ProcessCpuSeconds() - c0;
    if (!p->done() || p->failed != 0 || p->ready != 1) {
      return Error("index build did not finish: ready " + std::to_string(p->ready) + ", failed " +
                   std::to_string(p->failed) + ", building " + std::to_string(p->building));
    }
    auto info = entry->db->Describe(name);
    if (!info.ok()) return Error("describe: " + std::string(info.status().message()));
    std::ostringstream out;
    out << "{\"open_s\": " << open_s << ", \"import_s\": " << import_s
        << ", \"build_s\": " << build_s << ", \"build_cpu_s\": " << build_cpu_s
        << ", \"kmeans_runs\": " << rosetta::kernels::KMeansRunCount() - runs0
        << ", \"segments\": " << info->segments << ", \"records\": " << info->records
        << ", \"kernel_backend\": \"" << info->kernel_backend << "\"";
    for (const auto& seg : info->segment_list) {
      for (const auto& f : seg.fields) {
        out << ", \"state\": \"" << JsonEscape(f.state) << "\", \"index\": \"" << f.index
            << "\", \"vectors\": " << f.vectors << ", \"nlist\": " << f.nlist
            << ", \"m\": " << f.m << ", \"nbits\": " << f.nbits
            << ", \"bytes_per_vector\": " << f.bytes_per_vector;
      }
    }
    out << ", \"sealed_segments\": " << info->segment_list.size() - 1 << "}";
    MakeRequests(*entry, name);
    engines_[name] = std::move(entry);
    return out.str();
  }

  std::string EngineThreads(const std::string& name, size_t threads) {
    auto it = engines_.find(name);
    if (it == engines_.end()) return Error("no engine database " + name);
    EngineEntry& e = *it->second;
    e.db.reset();
    const uint64_t runs0 = rosetta::kernels::KMeansRunCount();
    auto t0 = Clock::now();
    auto db = rosetta::engine::Database::Open(e.dir, DbOptions(threads));
    if (!db.ok()) return Error("reopen: " + std::string(db.status().message()));
    e.db = *std::move(db);
    e.threads = threads;
    // Describe returns once the collection is loaded; the index must be ready without a build.
    auto p = e.db->IndexProgress(name);
    if (!p.ok()) return Error("progress: " + std::string(p.status().message()));
    std::ostringstream out;
    out << "{\"open_s\": " << Seconds(t0)
        << ", \"kmeans_runs_during_open\": " << rosetta::kernels::KMeansRunCount() - runs0
        << ", \"ready\": " << p->ready << ", \"building\": " << p->building << "}";
    return out.str();
  }

  void SetSimd(std::optional<rosetta::kernels::SimdLevel> level) { simd_ = level; }

  std::string Drop(const std::string& name) {
    kernels_.erase(name);
    engines_.erase(name);
    return "{\"ok\": 1}";
  }

  // Returns the JSON reply; fills ids (nq x k) of the last repetition.
  std::string Search(const std::string& name, size_t nprobe, size_t refine, size_t threads,
                     size_t reps, size_t clients, std::vector<int64_t>* ids) {
    if (refine < opt_.k) return Error("refine must be at least k");
    std::vector<double> wall, cpu;
    if (auto it = kernels_.find(name); it != kernels_.end()) {
      for (size_t r = 0; r < reps; ++r) {
        const double c0 = ProcessCpuSeconds();
        const auto t0 = Clock::now();
        KernelSearch(*it->second, nprobe, refine, threads, ids);
        wall.push_back(Seconds(t0));
        cpu.push_back(ProcessCpuSeconds() - c0);
      }
    } else if (auto et = engines_.find(name); et != engines_.end()) {
      EngineEntry& e = *et->second;
      if (threads != e.threads) {
        return Error("engine database " + name + " has " + std::to_string(e.threads) +
                     " search threads (engine_threads to change)");
      }
      for (auto& req : e.requests) {
        req.nprobe = static_cast<int>(nprobe);
        req.refine = static_cast<int>(refine);
      }
      for (size_t r = 0; r < reps; ++r) {
        const double c0 = ProcessCpuSeconds();
        const auto t0 = Clock::now();
        std::string err = EngineSearch(name, e, clients, ids);
        if (!err.empty()) return Error(err);
        wall.push_back(Seconds(t0));
        cpu.push_back(ProcessCpuSeconds() - c0);
      }
    } else {
      return Error("no index or database named " + name);
    }
    std::ostringstream out;
    out.precision(9);
    out << "{\"seconds\": [";
    for (size_t r = 0; r < wall.size(); ++r) out << (r ? ", " : "") << wall[r];
    out << "], \"cpu_seconds\": [";
    for (size_t r = 0; r < cpu.size(); ++r) out << (r ? ", " : "") << cpu[r];
    out << "]}";
    return out.str();
  }

 private:
  static std::string Error(const std::string& what) {
    return "{\"error\": \"" + JsonEscape(what) + "\"}";
  }

  static rosetta::engine::DatabaseOptions DbOptions(size_t threads) {
    rosetta::engine::DatabaseOptions o;
    o.store.sync = rosetta::storage::SyncPolicy::kNone;
    o.search_threads = threads;
    o.auto_seal = false;
    return o;
  }

  void MakeRequests(EngineEntry& e, const std::string&) {
    e.requests.clear();
    for (size_t q = 0; q < nq(); ++q) {
      rosetta::SearchRequest req;
      req.k = static_cast<int>(opt_.k);
      rosetta::QueryInput in;
      in.vector.assign(queries_.row(q), queries_.row(q) + d());
      in.space = "e";
      in.fields = {"v"};
      req.inputs.push_back(std::move(in));
      req.exact = false;
      req.normalize = rosetta::Normalize::kNone;
      req.explain = false;
      req.with_attributes = false;
      e.requests.push_back(std::move(req));
    }
  }

  // The kernel path: one batched PQ search for the `refine` best candidates of every query, then
  // the engine's exact re-ranking (exact scores of the candidates, top-k), parallel over queries.
  void KernelSearch(const IvfPqIndex& index, size_t nprobe, size_t refine, size_t threads,
                    std::vector<int64_t>* ids) {
    ThreadPool* pool = pools_.Get(threads);
    IvfPqSearchParams p;
    p.k = refine;
    p.nprobe = nprobe;
    p.pool = pool;
    p.simd_level = simd_;
    const std::vector<std::vector<Scored>> cands = index.Search(queries_.data.data(), nq(), p);
    const rosetta::kernels::KernelTable& kt = rosetta::kernels::ActiveKernels();
    const size_t k = opt_.k, dim = d();
    const bool l2 = metric_ == FlatMetric::kL2;
    ids->assign(nq() * k, -1);
    auto rerank = [&](size_t begin, size_t end) {
      for (size_t q = begin; q < end; ++q) {
        const float* qv = queries_.row(q);
        rosetta::kernels::TopK top(k);
        for (const Scored& c : cands[q]) {
          const float* v = base_.row(static_cast<size_t>(c.id));
          top.Push(l2 ? -kt.l2sqr(qv, v, dim) : kt.dot(qv, v, dim), c.id);
        }
        std::vector<Scored> best = top.TakeSorted();
        for (size_t j = 0; j < best.size(); ++j) (*ids)[q * k + j] = best[j].id;
      }
    };
    if (pool != nullptr) {
      pool->ParallelFor(nq(), 8, rerank);
    } else {
      rerank(0, nq());
    }
  }

  // Database::Search for every query from `clients` client threads (queries handed out in order
  // from a shared counter). Returns an error message or "".
  std::string EngineSearch(const std::string& name, EngineEntry& e, size_t clients,
                           std::vector<int64_t>* ids) {
    const size_t k = opt_.k;
    ids->assign(nq() * k, -1);
    std::atomic<size_t> next{0};
    std::atomic<bool> failed{false};
    std::string error;
    std::mutex error_mu;
    auto client = [&] {
      for (size_t q = next.fetch_add(1); q < nq() && !failed.load(); q = next.fetch_add(1)) {
        absl::StatusOr<rosetta::SearchResponse> r = e.db->Search(name, e.requests[q]);
        if (!r.ok() || r->exact) {
          std::lock_guard<std::mutex> lock(error_mu);
          error = !r.ok() ? "search: " + std::string(r.status().message())
                          : "search: the engine answered exhaustively (no ready index)";
          failed = true;
          return;
        }
        for (size_t j = 0; j < r->results.size() && j < k; ++j) {
          (*ids)[q * k + j] = std::strtoll(r->results[j].id.c_str(), nullptr, 10);
        }
      }
    };
    if (clients <= 1) {
      client();
    } else {
      std::vector<std::thread> workers;
      for (size_t c = 0; c < clients; ++c) workers.emplace_back(client);
      for (auto& w : workers) w.join();
    }
    return error;
  }

  rosetta::Matrix<float> base_;
  rosetta::Matrix<float> queries_;
  Options opt_;
  FlatMetric metric_ = FlatMetric::kL2;
  Pools pools_;
  std::optional<rosetta::kernels::SimdLevel> simd_;
  std::map<std::string, std::unique_ptr<IvfPqIndex>> kernels_;
  std::map<std::string, std::unique_ptr<EngineEntry>> engines_;
};

int Serve(Bench& bench) {
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    std::string cmd, name;
    in >> cmd;
    if (cmd == "quit") break;
    in >> name;
    std::string reply;
    if (cmd == "build") {
      size_t nlist = 0, m = 0, nbits = 0, threads = 0;
      in >> nlist >> m >> nbits >> threads;
      reply = in ? bench.Build(name, nlist, m, nbits, threads)
                 : "{\"error\": \"usage: build NAME NLIST M NBITS THREADS\"}";
    } else if (cmd == "engine_build") {
      size_t nlist = 0, m = 0, nbits = 0, threads = 0;
      std::string dir;
      in >> nlist >> m >> nbits >> threads >> dir;
      reply = in ? bench.EngineBuild(name, nlist, m, nbits, threads, dir)
                 : "{\"error\": \"usage: engine_build NAME NLIST M NBITS THREADS DIR\"}";
    } else if (cmd == "engine_threads") {
      size_t threads = 0;
      in >> threads;
      reply = in && threads > 0 ? bench.EngineThreads(name, threads)
                                : "{\"error\": \"usage: engine_threads NAME THREADS\"}";
    } else if (cmd == "search") {
      size_t nprobe = 0, refine = 0, threads = 0, reps = 0, clients = 1;
      std::string path;
      in >> nprobe >> refine >> threads >> reps >> path;
      if (!in || reps == 0 || threads == 0) {
        reply = "{\"error\": \"usage: search NAME NPROBE REFINE THREADS REPS IDS_PATH [CLIENTS]\"}";
      } else {
        if (!(in >> clients)) clients = 1;
        std::vector<int64_t> ids;
        reply = bench.Search(name, nprobe, refine, threads, reps, std::max<size_t>(clients, 1),
                             &ids);
        if (path != "-" && reply.find("\"error\"") == std::string::npos) {
          std::ofstream out(path, std::ios::binary);
          out.write(reinterpret_cast<const char*>(ids.data()),
                    static_cast<std::streamsize>(ids.size() * sizeof(int64_t)));
          if (!out) reply = "{\"error\": \"cannot write " + path + "\"}";
        }
      }
    } else if (cmd == "simd") {
      using rosetta::kernels::SimdLevel;
      if (name == "auto") {
        bench.SetSimd(std::nullopt);
      } else if (name == "scalar" || name == "avx2" || name == "avx512") {
        bench.SetSimd(name == "scalar" ? SimdLevel::kScalar
                                       : name == "avx2" ? SimdLevel::kAvx2 : SimdLevel::kAvx512);
      } else {
        reply = "{\"error\": \"usage: simd scalar|avx2|avx512|auto\"}";
      }
      if (reply.empty()) reply = "{\"ok\": 1}";
    } else if (cmd == "drop") {
      reply = bench.Drop(name);
    } else {
      reply = "{\"error\": \"unknown command '" + cmd + "'\"}";
    }
    std::printf("%s\n", reply.c_str());
    std::fflush(stdout);
  }
  return 0;
}

int Usage() {
  std::fprintf(stderr,
               "usage: ivf_pq_peers_bench --base B.npy --queries Q.npy [--metric l2|ip] [--k 10] "
               "(--serve | [--nlist N] [--m M] [--nbits 8|4] [--threads T])\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    auto num = [&]() { return static_cast<size_t>(std::strtoull(next().c_str(), nullptr, 10)); };
    if (a == "--base") opt.base = next();
    else if (a == "--queries") opt.queries = next();
    else if (a == "--metric") opt.metric = next();
    else if (a == "--k") opt.k = num();
    else if (a == "--serve") opt.serve = true;
    else if (a == "--nlist") opt.nlist = num();
    else if (a == "--m") opt.m = num();
    else if (a == "--nbits") opt.nbits = num();
    else if (a == "--threads") opt.threads = num();
    else return Usage();
  }
  if (opt.base.empty() || opt.queries.empty() || opt.k == 0 || opt.threads == 0 ||
      (opt.metric != "l2" && opt.metric != "ip")) {
    return Usage();
  }
  absl::StatusOr<rosetta::Matrix<float>> base = rosetta::ReadFloatMatrix(opt.base);
  absl::StatusOr<rosetta::Matrix<float>> queries = rosetta::ReadFloatMatrix(opt.queries);
  if (!base.ok() || !queries.ok()) {
    std::fprintf(stderr, "ivf_pq_peers_bench: %s\n",
                 std::string((base.ok() ? queries.status() : base.status()).message()).c_str());
    return 1;
  }
  if (base->cols != queries->cols) {
    std::fprintf(stderr, "ivf_pq_peers_bench: base has d=%zu but queries have d=%zu\n", base->cols,
                 queries->cols);
    return 1;
  }
  Bench bench(*std::move(base), *std::move(queries), opt);
  const char* simd = rosetta::kernels::SimdLevelName(rosetta::kernels::ActiveSimdLevel());
  if (opt.serve) {
    std::printf("{\"ready\": true, \"simd\": \"%s\", \"nb\": %zu, \"d\": %zu, \"nq\": %zu, "
                "\"k\": %zu, \"metric\": \"%s\", \"default_nlist\": %zu, \"default_m\": %zu}\n",
                simd, bench.nb(), bench.d(), bench.nq(), opt.k, opt.metric.c_str(),
                rosetta::kernels::DefaultNlist(bench.nb()), rosetta::kernels::DefaultM(bench.d()));
    std::fflush(stdout);
    return Serve(bench);
  }
  const size_t nlist = opt.nlist ? opt.nlist : rosetta::kernels::DefaultNlist(bench.nb());
  const size_t m = opt.m ? opt.m : rosetta::kernels::DefaultM(bench.d());
  std::printf("IvfPqIndex nb=%zu d=%zu nlist=%zu m=%zu nbits=%zu threads=%zu simd=%s\n",
              bench.nb(), bench.d(), nlist, m, opt.nbits, opt.threads, simd);
  std::printf("build: %s\n", bench.Build("x", nlist, m, opt.nbits, opt.threads).c_str());
  const size_t refine = rosetta::kernels::DefaultRefine(opt.k, opt.nbits);
  std::printf("%8s %8s %12s\n", "nprobe", "refine", "best QPS");
  for (size_t nprobe : {1, 4, 16, 64}) {
    std::vector<int64_t> ids;
    double best = 0;
    for (int r = 0; r < 3; ++r) {
      const auto t0 = Clock::now();
      bench.Search("x", nprobe, refine, opt.threads, 1, 1, &ids);
      best = std::max(best, static_cast<double>(bench.nq()) / Seconds(t0));
    }
    std::printf("%8zu %8zu %12.1f\n", nprobe, refine, best);
  }
  return 0;
}
