// Server benchmark: what the wire protocol and the server add over the embedded engine.
//
//   server_bench [--rosettad PATH] [--work DIR] [--rows 100000] [--dim 768] [--clusters 100]
//                [--seed 7] [--queries 1000] [--small-rows 1000] [--ingest-seconds 4]
//                [--server-threads 2] [--skip-search] [--skip-ingest]
//                [--device auto|cpu|cuda] [--clients 1,4,16,64] [--throughput-seconds 0]
//
// Part 1, search latency (cosine, k = 10, one query per Search call, default request options:
// exact, explain, with attributes): the same clustered data set (rows x dim, fixed seed) is
// loaded into an embedded database in this process and into a `rosettad` child process (the
// real server binary, --threads 2 unless --server-threads, over 127.0.0.1; the embedded engine's
// search pool gets as many threads as the server's). The queries alternate between the two paths
// (embedded first for even queries, server first for odd ones) so that both see the same
// machine load; each call is timed by the client (steady_clock around Client::Search). The
// results of both paths must be identical (ids and score bits); the bench counts mismatches.
// The same is measured on a small collection (--small-rows) where the search itself is cheap,
// so the protocol's fixed cost is visible, plus a ListCollections round trip. --device is passed
// to rosettad (and used by the embedded database): on a GPU, exhaustive queries then take the
// device path (engine/device_search.h).
//
// Part 1b, server throughput (--throughput-seconds S > 0): for each count N of --clients, N
// client threads, each with its own connection, send one-query Search calls to rosettad for S
// seconds (after 1 s of warm-up); QPS = answered queries / wall time, latency percentiles per
// call. The server's device counters are read before and after: on a GPU, queries answered on the
// device per device call is the mean dynamic batch.
//
// Part 2, durable ingest through the protocol (`rosettad --sync always`): clients (each with its
// own connection) send Import or Upsert batches of rows x dim vectors for --ingest-seconds each;
// vectors/s = acknowledged vectors / wall time. Configurations: Import batches of 1024 rows and
// Upsert batches of 256, 16 and 1 records, with 1 and 4 clients on one collection, and (for
// small batches) 4 clients on 4 collections: the engine serialises the writers of one collection
// including their WAL fsync, while writers of different collections reach the storage layer
// concurrently, where RocksDB can share one fsync among them. The small-batch configurations
// are repeated against a `--sync none` server to show what the fsync costs, and run once more
// without the server (the embedded engine in this process, shared by the threads) to separate
// the protocol's cost from the engine's and the disk's. A raw fdatasync timing of the work
// directory's disk is printed for reference.
//
// Ids are client-chosen and unique per configuration; every configuration uses a fresh
// collection, dropped afterwards.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "net/client.h"
#include "net/embedded_client.h"
#include "net/remote_client.h"

namespace {

using rosetta::Client;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

struct Flags {
  std::string rosettad;
  std::string work;
  size_t rows = 100000;
  size_t dim = 768;
  size_t clusters = 100;
  uint64_t seed = 7;
  size_t queries = 1000;
  size_t small_rows = 1000;
  double ingest_seconds = 4;
  int server_threads = 2;  // rosettad --threads (its default is the hardware concurrency)
  bool search = true;
  bool ingest = true;
  std::string device;  // empty: rosettad's and the engine's default (auto).
  std::vector<int> clients = {1, 4, 16, 64};
  double throughput_seconds = 0;
};

[[noreturn]] void Die(const std::string& what) {
  std::cerr << "server_bench: " << what << "\n";
  std::exit(1);
}

template <class T>
T Check(absl::StatusOr<T> s, const std::string& what) {
  if (!s.ok()) Die(what + ": " + s.status().ToString());
  return std::move(s).value();
}
void Check(const absl::Status& s, const std::string& what) {
  if (!s.ok()) Die(what + ": " + s.ToString());
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

// Clustered data like real embeddings: `clusters` N(0,1) centres, points = centre + 0.3 N(0,1).
// Queries come from the same centres with another seed.
std::vector<float> Clustered(size_t n, size_t d, size_t clusters, uint64_t centre_seed,
                             uint64_t point_seed) {
  std::mt19937_64 crng(centre_seed);
  std::normal_distribution<float> g(0.f, 1.f);
  std::vector<float> centres(clusters * d);
  for (float& x : centres) x = g(crng);
  std::mt19937_64 rng(point_seed);
  std::uniform_int_distribution<size_t> pick(0, clusters - 1);
  std::vector<float> v(n * d);
  for (size_t i = 0; i < n; ++i) {
    const float* c = centres.data() + pick(rng) * d;
    for (size_t j = 0; j < d; ++j) v[i * d + j] = c[j] + 0.3f * g(rng);
  }
  return v;
}

rosetta::CollectionSchema Schema(const std::string& name, size_t dim) {
  rosetta::CollectionSchema s;
  s.name = name;
  s.spaces["emb"] = rosetta::Space{"emb", static_cast<int>(dim), rosetta::Metric::kCosine, ""};
  s.fields["v"] = rosetta::Field{"v", "emb", "image", 1.0f};
  return s;
}

void Load(Client& c, const std::string& collection, const std::vector<float>& data, size_t rows,
          size_t dim, size_t batch) {
  for (size_t r = 0; r < rows; r += batch) {
    const size_t n = std::min(batch, rows - r);
    rosetta::ImportRequest req;
    req.collection = collection;
    req.field = "v";
    req.data = std::span<const float>(data.data() + r * dim, n * dim);
    req.rows = n;
    req.dim = dim;
    req.id_prefix = "r";
    req.id_offset = static_cast<int64_t>(r);
    Check(c.Import(req), "import");
  }
}

// ---------------------------------------------------------------------------------------------
// The rosettad child

class Rosettad {
 public:
  Rosettad(const std::string& binary, const std::string& data_dir, const std::string& sync,
           int threads, const std::string& log_path, const std::string& device = "") {
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) Die("pipe2");
    const int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) Die("cannot open " + log_path);
    std::vector<std::string> args = {binary, "--data",  data_dir, "--listen", "127.0.0.1:0",
                                     "--sync", sync, "--threads", std::to_string(threads)};
    if (!device.empty()) {
      args.push_back("--device");
      args.push_back(device);
    }
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) Die("fork");
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(126);
      ::dup2(out[1], STDOUT_FILENO);
      ::dup2(log_fd, STDERR_FILENO);
      if (::syscall(SYS_close_range, 3u, ~0u, 0u) != 0) {
        for (int fd = 3; fd < 4096; ++fd) ::close(fd);
      }
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    ::close(log_fd);
    std::string text;
    const auto deadline = Clock::now() + std::chrono::seconds(120);
    while (text.find('\n') == std::string::npos) {
      if (Clock::now() > deadline) Die("rosettad printed no banner; see " + log_path);
      pollfd p{out[0], POLLIN, 0};
      if (::poll(&p, 1, 1000) <= 0) continue;
      char buf[512];
      const ssize_t n = ::read(out[0], buf, sizeof(buf));
      if (n <= 0) Die("rosettad exited before its banner; see " + log_path);
      text.append(buf, static_cast<size_t>(n));
    }
    stdout_fd_ = out[0];
    banner_ = text.substr(0, text.find('\n'));
    const std::string marker = "listening on 127.0.0.1:";
    const size_t at = banner_.find(marker);
    if (at == std::string::npos) Die("unexpected banner: " + banner_);
    port_ = static_cast<uint16_t>(std::atoi(banner_.c_str() + at + marker.size()));
  }
  ~Rosettad() {
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    ::close(stdout_fd_);
  }
  uint16_t port() const { return port_; }
  const std::string& banner() const { return banner_; }

 private:
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  uint16_t port_ = 0;
  std::string banner_;
};

std::unique_ptr<Client> Connect(uint16_t port) {
  rosetta::net::RemoteClientOptions o;
  o.client_name = "server_bench";
  return Check(rosetta::net::ConnectRemoteClient("127.0.0.1", port, "", o), "connect");
}

// ---------------------------------------------------------------------------------------------
// Statistics

struct Summary {
  double p50 = 0, p90 = 0, p99 = 0, mean = 0, max = 0;
  size_t n = 0;
};

Summary Summarise(std::vector<double> us) {
  Summary s;
  if (us.empty()) return s;
  std::sort(us.begin(), us.end());
  auto pct = [&](double p) {
    size_t i = static_cast<size_t>(std::ceil(p * us.size()));
    return us[std::min(us.size() - 1, i == 0 ? 0 : i - 1)];
  };
  s.n = us.size();
  s.p50 = pct(0.50);
  s.p90 = pct(0.90);
  s.p99 = pct(0.99);
  s.max = us.back();
  double sum = 0;
  for (double x : us) sum += x;
  s.mean = sum / us.size();
  return s;
}

std::string Fmt(double us) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.0f", us);
  return buf;
}

void PrintRow(const std::string& name, const Summary& s) {
  std::printf("| %-34s | %6zu | %9s | %9s | %9s | %9s | %9s |\n", name.c_str(), s.n,
              Fmt(s.p50).c_str(), Fmt(s.p90).c_str(), Fmt(s.p99).c_str(), Fmt(s.mean).c_str(),
              Fmt(s.max).c_str());
}

void PrintHeader() {
  std::printf("| %-34s | %6s | %9s | %9s | %9s | %9s | %9s |\n", "path", "n", "p50 us",
              "p90 us", "p99 us", "mean us", "max us");
  std::printf("|%s|%s|%s|%s|%s|%s|%s|\n", std::string(36, '-').c_str(),
              std::string(8, '-').c_str(), std::string(11, '-').c_str(),
              std::string(11, '-').c_str(), std::string(11, '-').c_str(),
              std::string(11, '-').c_str(), std::string(11, '-').c_str());
}

double Micros(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

// ---------------------------------------------------------------------------------------------
// Part 1: search latency

std::string ResultKey(const rosetta::SearchResponse& r) {
  std::string key;
  for (const rosetta::Hit& h : r.results) {
    absl::StrAppend(&key, h.id, ":", std::bit_cast<uint32_t>(h.score), ";");
  }
  return key;
}

// Alternates embedded and server calls; returns {embedded us, server us}; counts mismatching
// results.
void CompareSearch(const std::string& label, Client& embedded, Client& server,
                   const std::string& collection, const std::vector<float>& queries,
                   size_t nq, size_t dim, size_t warmup) {
  std::vector<double> emb_us, srv_us;
  size_t mismatches = 0;
  for (size_t i = 0; i < nq + warmup; ++i) {
    rosetta::SearchRequest req;
    req.k = 10;
    rosetta::QueryInput in;
    const size_t q = i % (queries.size() / dim);
    in.vector.assign(queries.begin() + q * dim, queries.begin() + (q + 1) * dim);
    in.space = "emb";
    req.inputs.push_back(std::move(in));
    std::string keys[2];
    double took[2];
    for (int j = 0; j < 2; ++j) {
      const bool use_server = (j == 0) == (i % 2 == 1);
      Client& c = use_server ? server : embedded;
      std::vector<rosetta::SearchRequest> one = {req};
      const auto t0 = Clock::now();
      std::vector<rosetta::SearchResponse> r =
          Check(c.Search(collection, std::move(one)), "search");
      took[use_server] = Micros(Clock::now() - t0);
      keys[use_server] = ResultKey(r.at(0));
    }
    if (keys[0] != keys[1]) ++mismatches;
    if (i < warmup) continue;
    emb_us.push_back(took[0]);
    srv_us.push_back(took[1]);
  }
  const Summary e = Summarise(emb_us), s = Summarise(srv_us);
  PrintRow(label + ", in-process", e);
  PrintRow(label + ", through rosettad", s);
  std::printf("| %-34s | %6s | %9s | %9s | %9s | %9s | %9s |\n", (label + ", added").c_str(), "",
              Fmt(s.p50 - e.p50).c_str(), Fmt(s.p90 - e.p90).c_str(), Fmt(s.p99 - e.p99).c_str(),
              Fmt(s.mean - e.mean).c_str(), "");
  // The paired difference per query (server - embedded of the same query, measured back to
  // back) is less sensitive to load swings than the difference of percentiles.
  std::vector<double> diff;
  for (size_t i = 0; i < emb_us.size(); ++i) diff.push_back(srv_us[i] - emb_us[i]);
  const Summary d = Summarise(diff);
  std::printf("| %-34s | %6zu | %9s | %9s | %9s | %9s | %9s |\n",
              (label + ", paired difference").c_str(), d.n, Fmt(d.p50).c_str(),
              Fmt(d.p90).c_str(), Fmt(d.p99).c_str(), Fmt(d.mean).c_str(), Fmt(d.max).c_str());
  std::printf("(%s: %zu of %zu queries returned different results on the two paths)\n",
              label.c_str(), mismatches, nq + warmup);
}

// Part 1b: N concurrent clients against the server (see the top of this file).
void Throughput(const Flags& f, uint16_t port, Client& admin, const std::string& collection,
                const std::vector<float>& queries) {
  std::printf("\n## Server throughput (cosine, k = 10, one query per call, N clients, %.0f s "
              "each)\n\n",
              f.throughput_seconds);
  std::printf("| clients | queries | QPS | p50 us | p99 us | device searches | device calls | "
              "queries per call | device fallbacks |\n|---|---|---|---|---|---|---|---|---|\n");
  const size_t nq_distinct = queries.size() / f.dim;
  for (int n : f.clients) {
    std::vector<std::unique_ptr<Client>> conns;
    for (int i = 0; i < n; ++i) conns.push_back(Connect(port));
    std::atomic<bool> measuring{false}, stop{false};
    std::vector<std::vector<double>> lat(static_cast<size_t>(n));
    std::vector<std::thread> threads;
    for (int t = 0; t < n; ++t) {
      threads.emplace_back([&, t] {
        size_t i = static_cast<size_t>(t) * 7919;
        while (!stop.load()) {
          rosetta::SearchRequest req;
          req.k = 10;
          rosetta::QueryInput in;
          const size_t q = i++ % nq_distinct;
          in.vector.assign(queries.begin() + q * f.dim, queries.begin() + (q + 1) * f.dim);
          in.space = "emb";
          req.inputs.push_back(std::move(in));
          std::vector<rosetta::SearchRequest> one = {std::move(req)};
          const bool counted = measuring.load();
          const auto t0 = Clock::now();
          Check(conns[static_cast<size_t>(t)]->Search(collection, std::move(one)), "search");
          if (counted && !stop.load()) lat[static_cast<size_t>(t)].push_back(Micros(Clock::now() - t0));
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));  // warm-up
    const rosetta::DatabaseStats mid = Check(admin.Stats(), "stats");
    measuring = true;
    const auto t0 = Clock::now();
    std::this_thread::sleep_for(std::chrono::duration<double>(f.throughput_seconds));
    stop = true;
    const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
    for (std::thread& th : threads) th.join();
    const rosetta::DatabaseStats after = Check(admin.Stats(), "stats");
    std::vector<double> all;
    for (const auto& l : lat) all.insert(all.end(), l.begin(), l.end());
    const Summary s = Summarise(all);
    const int64_t searches = after.device_stats.searches - mid.device_stats.searches;
    const int64_t calls = after.device_stats.batches - mid.device_stats.batches;
    std::printf("| %d | %zu | %.0f | %s | %s | %lld | %lld | %s | %lld |\n", n, s.n,
                static_cast<double>(s.n) / wall, Fmt(s.p50).c_str(), Fmt(s.p99).c_str(),
                static_cast<long long>(searches), static_cast<long long>(calls),
                calls > 0 ? absl::StrCat(static_cast<double>(searches) / static_cast<double>(calls))
                                .c_str()
                          : "-",
                static_cast<long long>(after.device_stats.fallbacks - mid.device_stats.fallbacks));
    std::fflush(stdout);
  }
  std::printf("(device: %s; the counters count queries that reached the device path only after "
              "the warm-up; a query answered on the CPU after a boundary check is not a device "
              "search)\n",
              Check(admin.Stats(), "stats").device.c_str());
}

void RunSearch(const Flags& f) {
  std::printf("\n## Search latency (cosine, k = 10, one query per call)\n\n");
  std::printf("load average before: %s\n", LoadAverage().c_str());
  const std::vector<float> base = Clustered(f.rows, f.dim, f.clusters, f.seed, f.seed + 1);
  const size_t nq_distinct = 1000;
  const std::vector<float> queries = Clustered(nq_distinct, f.dim, f.clusters, f.seed, f.seed + 2);
  std::filesystem::create_directories(f.work);
  const std::string emb_dir = f.work + "/search-embedded";
  const std::string srv_dir = f.work + "/search-server";
  std::filesystem::remove_all(emb_dir);
  std::filesystem::remove_all(srv_dir);

  rosetta::engine::DatabaseOptions options;
  options.store.sync = rosetta::storage::SyncPolicy::kNone;
  options.search_threads = static_cast<size_t>(f.server_threads);  // as rosettad --threads.
  if (!f.device.empty()) {
    options.device = Check(rosetta::engine::ParseDeviceKind(f.device), "--device");
  }
  std::unique_ptr<Client> embedded = Check(rosetta::OpenEmbeddedClient(emb_dir, options), "open");
  Rosettad server(f.rosettad, srv_dir, "none", f.server_threads, f.work + "/rosettad-search.log",
                  f.device);
  std::printf("server: %s\n", server.banner().c_str());
  std::unique_ptr<Client> remote = Connect(server.port());

  const std::string big = "big", small = "small";
  for (Client* c : {embedded.get(), remote.get()}) {
    Check(c->CreateCollection(Schema(big, f.dim)), "create");
    Check(c->CreateCollection(Schema(small, f.dim)), "create");
  }
  auto t0 = Clock::now();
  Load(*embedded, big, base, f.rows, f.dim, 8192);
  const double emb_load = std::chrono::duration<double>(Clock::now() - t0).count();
  t0 = Clock::now();
  Load(*remote, big, base, f.rows, f.dim, 8192);
  const double srv_load = std::chrono::duration<double>(Clock::now() - t0).count();
  Load(*embedded, small, base, f.small_rows, f.dim, 8192);
  Load(*remote, small, base, f.small_rows, f.dim, 8192);
  std::printf("loaded %zu x %zu (Import batches of 8192, sync none): embedded %.1f s, "
              "through rosettad %.1f s\n\n",
              f.rows, f.dim, emb_load, srv_load);

  PrintHeader();
  // ListCollections: the round trip with (almost) no work.
  {
    std::vector<double> emb_us, srv_us;
    for (size_t i = 0; i < 2000 + 100; ++i) {
      for (int j = 0; j < 2; ++j) {
        const bool use_server = (j == 0) == (i % 2 == 1);
        const auto t = Clock::now();
        Check((use_server ? remote : embedded)->ListCollections(), "list");
        if (i >= 100) (use_server ? srv_us : emb_us).push_back(Micros(Clock::now() - t));
      }
    }
    PrintRow("ListCollections, in-process", Summarise(emb_us));
    PrintRow("ListCollections, through rosettad", Summarise(srv_us));
  }
  CompareSearch(absl::StrCat(f.small_rows / 1000, "k x ", f.dim), *embedded, *remote, small,
                queries, std::max<size_t>(f.queries, 2000), f.dim, 100);
  CompareSearch(absl::StrCat(f.rows / 1000, "k x ", f.dim), *embedded, *remote, big, queries,
                f.queries, f.dim, 50);
  if (f.throughput_seconds > 0) {
    embedded.reset();  // the server alone on the machine.
    Throughput(f, server.port(), *remote, big, queries);
  }
  std::printf("\nload average after: %s\n", LoadAverage().c_str());
}

// ---------------------------------------------------------------------------------------------
// Part 2: durable ingest

enum class Op { kImport, kUpsert };

struct IngestConfig {
  Op op;
  size_t batch;
  int clients;
  int collections;  // clients are spread over this many collections
};

struct IngestResult {
  double vectors_per_s = 0;
  double batches_per_s = 0;
  Summary latency;
};

// port 0: every client thread uses `admin` itself (the embedded client, which is thread-safe);
// else each opens its own connection to the server on `port`.
IngestResult RunIngest(Client& admin, uint16_t port, const IngestConfig& cfg,
                       const std::vector<float>& data, size_t rows, size_t dim, double seconds,
                       int config_index) {
  std::vector<std::string> names;
  for (int c = 0; c < cfg.collections; ++c) {
    names.push_back(absl::StrCat("ingest", config_index, "_", c));
    Check(admin.CreateCollection(Schema(names.back(), dim)), "create");
  }
  std::vector<std::unique_ptr<Client>> clients;
  for (int t = 0; t < cfg.clients && port != 0; ++t) clients.push_back(Connect(port));
  std::atomic<int64_t> vectors{0}, batches{0};
  std::vector<std::vector<double>> lat(cfg.clients);
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  Clock::time_point start, end;
  for (int t = 0; t < cfg.clients; ++t) {
    threads.emplace_back([&, t] {
      Client& c = port != 0 ? *clients[t] : admin;
      const std::string& collection = names[t % cfg.collections];
      size_t cursor = (static_cast<size_t>(t) * 7919 * cfg.batch) % rows;
      int64_t next_id = 0;
      while (!go.load()) std::this_thread::yield();
      const auto deadline = start + std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::duration<double>(seconds));
      while (Clock::now() < deadline) {
        if (cursor + cfg.batch > rows) cursor = 0;
        const float* rowp = data.data() + cursor * dim;
        const auto t0 = Clock::now();
        if (cfg.op == Op::kImport) {
          rosetta::ImportRequest req;
          req.collection = collection;
          req.field = "v";
          req.data = std::span<const float>(rowp, cfg.batch * dim);
          req.rows = cfg.batch;
          req.dim = dim;
          req.id_prefix = absl::StrCat("t", t, "-");
          req.id_offset = next_id;
          Check(c.Import(req), "import");
        } else {
          std::vector<rosetta::Record> records(cfg.batch);
          for (size_t i = 0; i < cfg.batch; ++i) {
            records[i].id = absl::StrCat("t", t, "-", next_id + static_cast<int64_t>(i));
            records[i].vectors["v"].assign(rowp + i * dim, rowp + (i + 1) * dim);
          }
          Check(c.Upsert(collection, std::move(records)), "upsert");
        }
        lat[t].push_back(Micros(Clock::now() - t0));
        next_id += static_cast<int64_t>(cfg.batch);
        cursor += cfg.batch;
        vectors += static_cast<int64_t>(cfg.batch);
        ++batches;
      }
    });
  }
  start = Clock::now();
  go = true;
  for (std::thread& th : threads) th.join();
  end = Clock::now();
  const double wall = std::chrono::duration<double>(end - start).count();
  IngestResult r;
  r.vectors_per_s = vectors.load() / wall;
  r.batches_per_s = batches.load() / wall;
  std::vector<double> all;
  for (auto& l : lat) all.insert(all.end(), l.begin(), l.end());
  r.latency = Summarise(all);
  clients.clear();
  for (const std::string& n : names) Check(admin.DropCollection(n), "drop");
  return r;
}

// fdatasync of a 4 KiB append in the work directory: what one durable commit costs at least.
Summary DiskSync(const std::string& dir) {
  const std::string path = dir + "/fsync-probe";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) Die("cannot open " + path);
  std::vector<char> block(4096, 'x');
  std::vector<double> us;
  for (int i = 0; i < 300; ++i) {
    const auto t0 = Clock::now();
    if (::write(fd, block.data(), block.size()) != static_cast<ssize_t>(block.size())) Die("write");
    ::fdatasync(fd);
    us.push_back(Micros(Clock::now() - t0));
  }
  ::close(fd);
  std::filesystem::remove(path);
  return Summarise(us);
}

void RunIngestAll(const Flags& f) {
  std::printf("\n## Durable ingest through the protocol (%zu-d cosine, %.0f s per row, "
              "rosettad --threads %d)\n\n",
              f.dim, f.ingest_seconds, f.server_threads);
  std::printf("load average before: %s\n", LoadAverage().c_str());
  std::filesystem::create_directories(f.work);
  const Summary disk = DiskSync(f.work);
  std::printf("disk: 4 KiB write + fdatasync in %s: p50 %s us, p99 %s us\n", f.work.c_str(),
              Fmt(disk.p50).c_str(), Fmt(disk.p99).c_str());
  const size_t rows = 50000;
  const std::vector<float> data = Clustered(rows, f.dim, f.clusters, f.seed, f.seed + 3);

  const std::vector<IngestConfig> always = {
      {Op::kImport, 1024, 1, 1}, {Op::kImport, 1024, 4, 1}, {Op::kUpsert, 256, 1, 1},
      {Op::kUpsert, 256, 4, 1},  {Op::kUpsert, 16, 1, 1},   {Op::kUpsert, 16, 4, 1},
      {Op::kUpsert, 16, 4, 4},   {Op::kUpsert, 1, 1, 1},    {Op::kUpsert, 1, 4, 1},
      {Op::kUpsert, 1, 4, 4},
  };
  const std::vector<IngestConfig> none = {
      {Op::kUpsert, 16, 1, 1}, {Op::kUpsert, 16, 4, 1}, {Op::kUpsert, 1, 1, 1},
      {Op::kUpsert, 1, 4, 1},  {Op::kUpsert, 1, 4, 4},
  };
  std::printf("\n| sync | request | batch | clients | collections | vectors/s | requests/s | "
              "request p50 us | request p99 us |\n|---|---|---|---|---|---|---|---|---|\n");
  int index = 0;
  for (const std::string sync : {"always", "none"}) {
    const std::string dir = f.work + "/ingest-" + sync;
    std::filesystem::remove_all(dir);
    Rosettad server(f.rosettad, dir, sync, f.server_threads, f.work + "/rosettad-ingest.log");
    std::fprintf(stderr, "server: %s (--threads %d)\n", server.banner().c_str(), f.server_threads);
    std::unique_ptr<Client> admin = Connect(server.port());
    for (const IngestConfig& cfg : sync == "always" ? always : none) {
      const IngestResult r =
          RunIngest(*admin, server.port(), cfg, data, rows, f.dim, f.ingest_seconds, index++);
      std::printf("| %s | %s | %zu | %d | %d | %.0f | %.0f | %s | %s |\n", sync.c_str(),
                  cfg.op == Op::kImport ? "Import" : "Upsert", cfg.batch, cfg.clients,
                  cfg.collections, r.vectors_per_s, r.batches_per_s,
                  Fmt(r.latency.p50).c_str(), Fmt(r.latency.p99).c_str());
      std::fflush(stdout);
    }
  }
  // The same small batches without the server: the engine in this process, shared by the
  // threads. Shows whether the protocol or the engine/storage sets the small-batch rates.
  for (const std::string sync : {"always", "none"}) {
    const std::string dir = f.work + "/ingest-embedded-" + sync;
    std::filesystem::remove_all(dir);
    rosetta::engine::DatabaseOptions options;
    options.store.sync = sync == "always" ? rosetta::storage::SyncPolicy::kAlways
                                          : rosetta::storage::SyncPolicy::kNone;
    options.search_threads = 2;
    std::unique_ptr<Client> embedded =
        Check(rosetta::OpenEmbeddedClient(dir, options), "open " + dir);
    for (const IngestConfig& cfg : std::vector<IngestConfig>{
             {Op::kUpsert, 16, 1, 1}, {Op::kUpsert, 16, 4, 4}, {Op::kUpsert, 1, 1, 1},
             {Op::kUpsert, 1, 4, 1}, {Op::kUpsert, 1, 4, 4}}) {
      const IngestResult r =
          RunIngest(*embedded, 0, cfg, data, rows, f.dim, f.ingest_seconds, index++);
      std::printf("| %s (embedded, no server) | %s | %zu | %d | %d | %.0f | %.0f | %s | %s |\n",
                  sync.c_str(), cfg.op == Op::kImport ? "Import" : "Upsert", cfg.batch,
                  cfg.clients, cfg.collections, r.vectors_per_s, r.batches_per_s,
                  Fmt(r.latency.p50).c_str(), Fmt(r.latency.p99).c_str());
      std::fflush(stdout);
    }
  }
  std::printf("\nload average after: %s\n", LoadAverage().c_str());
}

bool ParseFlags(int argc, char** argv, Flags* f) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) Die(a + ": missing value");
      return argv[++i];
    };
    if (a == "--rosettad") f->rosettad = value();
    else if (a == "--work") f->work = value();
    else if (a == "--rows") f->rows = std::stoull(value());
    else if (a == "--dim") f->dim = std::stoull(value());
    else if (a == "--clusters") f->clusters = std::stoull(value());
    else if (a == "--seed") f->seed = std::stoull(value());
    else if (a == "--queries") f->queries = std::stoull(value());
    else if (a == "--small-rows") f->small_rows = std::stoull(value());
    else if (a == "--ingest-seconds") f->ingest_seconds = std::stod(value());
    else if (a == "--server-threads") f->server_threads = std::stoi(value());
    else if (a == "--skip-search") f->search = false;
    else if (a == "--skip-ingest") f->ingest = false;
    else if (a == "--device") f->device = value();
    else if (a == "--throughput-seconds") f->throughput_seconds = std::stod(value());
    else if (a == "--clients") {
      f->clients.clear();
      std::stringstream list(value());
      for (std::string item; std::getline(list, item, ',');) f->clients.push_back(std::stoi(item));
      if (f->clients.empty()) Die("--clients: empty list");
    }
    else if (a == "--help" || a == "-h") return false;
    else Die("unknown flag " + a + " (see --help)");
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  // Default: the rosettad built beside this binary (<build>/bench/.. -> <build>/tools/rosettad).
  f.rosettad =
      (std::filesystem::path(argv[0]).parent_path() / ".." / "tools" / "rosettad").string();
  f.work = (std::filesystem::temp_directory_path() / "rosetta-server-bench").string();
  try {
    if (!ParseFlags(argc, argv, &f)) {
      std::cout << "usage: server_bench [--rosettad PATH] [--work DIR] [--rows N] [--dim D]\n"
                   "  [--clusters C] [--seed S] [--queries N] [--small-rows N]\n"
                   "  [--ingest-seconds S] [--server-threads N] [--skip-search] [--skip-ingest]\n"
                   "  [--device auto|cpu|cuda] [--clients 1,4,16,64] [--throughput-seconds S]\n";
      return 0;
    }
  } catch (const std::exception& e) {
    Die(std::string("bad flag value: ") + e.what());
  }
  if (::access(f.rosettad.c_str(), X_OK) != 0) Die("no rosettad binary at " + f.rosettad);
  std::signal(SIGPIPE, SIG_IGN);
  std::printf("server_bench: rows=%zu dim=%zu clusters=%zu seed=%zu queries=%zu work=%s\n",
              f.rows, f.dim, f.clusters, static_cast<size_t>(f.seed), f.queries, f.work.c_str());
  if (f.search) RunSearch(f);
  if (f.ingest) RunIngestAll(f);
  std::filesystem::remove_all(f.work);
  return 0;
}
