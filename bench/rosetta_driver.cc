// The Rosetta side of the benchmark harness (bench/harness/run.py): drives Rosetta through the
// Client interface, either embedded (the engine in this process, net/embedded_client.h) or
// through a rosettad server over loopback (net/remote_client.h), so the protocol's cost is the
// difference between the two.
//
// Serve mode: reads one command per line on stdin and answers one JSON line on stdout (errors:
// {"error": "..."}). Paths must not contain spaces. Commands:
//   open_embedded DIR SEARCH_THREADS SYNC [DEVICE]
//                                             opens DIR (created) with SYNC none|always (the
//                                             store's policies: WAL without / with fsync) and
//                                             DEVICE auto|cpu|cuda (default auto: the GPU when
//                                             there is one). Reply: mode, dir, device (the one
//                                             in use: "cpu" or "cuda:0 <name>").
//   connect HOST PORT [TOKEN]                 a server; every client thread opens its own
//                                             connection (opened lazily, kept). Reply: mode,
//                                             endpoint, device (the server's; "" if unknown).
//   create SCHEMA_JSON                        creates a collection from a schema file
//   drop NAME
//   import NAME FIELD MATRIX ID_PREFIX [ROWS_NPY]
//                                             imports a .npy/.fvecs matrix as FIELD of records
//                                             ID_PREFIX<row>, in atomic batches of at most 65,536
//                                             rows and 64 MiB; ROWS_NPY (int matrix): only those
//                                             rows. Reply: rows, seconds, rows_per_s.
//   build NAME                                build-index (every ivf_pq field), waits; seconds.
//   search NAME REQUEST_JSON Q0[,Q1...] CLIENTS BATCH MIN_S IDS_OUT
//                                             REQUEST_JSON: a search request whose input i gets
//                                             row j of matrix Qi as its vector for query j.
//                                             One warm-up pass over every query (its hit ids go
//                                             to IDS_OUT: one line per query, ids separated by
//                                             spaces), then CLIENTS threads issue requests of
//                                             BATCH queries until MIN_S seconds have passed and
//                                             every query ran at least once. Reply: qps, latency
//                                             percentiles per request (us), cpu seconds.
//   describe NAME                             the collection's description (JSON)
//   memory                                    this process's VmRSS / VmHWM in bytes
//   quit
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/database.h"
#include "net/client.h"
#include "net/embedded_client.h"
#include "net/remote_client.h"
#include "schema/array_io.h"
#include "schema/json.h"
#include "schema/status_macros.h"

namespace rosetta::bench {
namespace {

using Clock = std::chrono::steady_clock;
double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

double CpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

std::string ErrorJson(const std::string& message) {
  Json j;
  j["error"] = message;
  return DumpJson(j);
}

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(s);
  while (std::getline(in, cur, sep)) out.push_back(cur);
  return out;
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError("cannot read " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

int64_t ProcStatusBytes(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) {
      std::istringstream f(line.substr(key.size() + 1));
      int64_t kb = 0;
      f >> kb;
      return kb * 1024;
    }
  }
  return -1;
}

class Driver {
 public:
  std::string Handle(const std::string& line) {
    std::istringstream in(line);
    std::string cmd;
    in >> cmd;
    std::vector<std::string> args;
    for (std::string a; in >> a;) args.push_back(a);
    absl::StatusOr<Json> r = Dispatch(cmd, args);
    if (!r.ok()) return ErrorJson(std::string(r.status().ToString()));
    return DumpJson(*r);
  }

 private:
  absl::StatusOr<Json> Dispatch(const std::string& cmd, const std::vector<std::string>& a) {
    auto need = [&](size_t lo, size_t hi) -> absl::Status {
      if (a.size() < lo || a.size() > hi) {
        return absl::InvalidArgumentError(cmd + ": wrong number of arguments");
      }
      return absl::OkStatus();
    };
    if (cmd == "open_embedded") {
      RETURN_IF_ERROR(need(3, 4));
      return OpenEmbedded(a[0], std::stoul(a[1]), a[2], a.size() > 3 ? a[3] : "auto");
    }
    if (cmd == "connect") {
      RETURN_IF_ERROR(need(2, 3));
      return Connect(a[0], static_cast<uint16_t>(std::stoul(a[1])), a.size() > 2 ? a[2] : "");
    }
    if (client_ == nullptr) return absl::FailedPreconditionError("open_embedded or connect first");
    if (cmd == "create") {
      RETURN_IF_ERROR(need(1, 1));
      ASSIGN_OR_RETURN(std::string text, ReadFile(a[0]));
      ASSIGN_OR_RETURN(Json j, ParseJsonText(text, a[0]));
      ASSIGN_OR_RETURN(CollectionSchema schema, SchemaFromJson(j));
      RETURN_IF_ERROR(client_->CreateCollection(schema));
      return Json{{"created", schema.name}};
    }
    if (cmd == "drop") {
      RETURN_IF_ERROR(need(1, 1));
      RETURN_IF_ERROR(client_->DropCollection(a[0]));
      return Json{{"dropped", a[0]}};
    }
    if (cmd == "import") {
      RETURN_IF_ERROR(need(4, 5));
      return Import(a[0], a[1], a[2], a[3], a.size() > 4 ? a[4] : "");
    }
    if (cmd == "build") {
      RETURN_IF_ERROR(need(1, 1));
      const auto start = Clock::now();
      RETURN_IF_ERROR(client_->BuildIndex(a[0], "").status());
      ASSIGN_OR_RETURN(IndexBuildProgress p,
                       WaitForIndexes(*client_, a[0], std::chrono::hours(4),
                                      std::chrono::milliseconds(20)));
      if (!p.done()) return absl::DeadlineExceededError("index builds did not finish");
      return Json{{"seconds", Seconds(Clock::now() - start)}, {"ready", p.ready},
                  {"failed", p.failed}};
    }
    if (cmd == "search") {
      RETURN_IF_ERROR(need(7, 7));
      return Search(a[0], a[1], Split(a[2], ','), std::stoul(a[3]), std::stoul(a[4]),
                    std::stod(a[5]), a[6]);
    }
    if (cmd == "describe") {
      RETURN_IF_ERROR(need(1, 1));
      ASSIGN_OR_RETURN(CollectionInfo info, client_->Describe(a[0]));
      return CollectionInfoToJson(info);
    }
    if (cmd == "memory") {
      return Json{{"rss_bytes", ProcStatusBytes("VmRSS")}, {"hwm_bytes", ProcStatusBytes("VmHWM")}};
    }
    return absl::InvalidArgumentError("unknown command \"" + cmd + "\"");
  }

  absl::StatusOr<Json> OpenEmbedded(const std::string& dir, size_t threads, const std::string& sync,
                                    const std::string& device) {
    engine::DatabaseOptions o;
    ASSIGN_OR_RETURN(o.device, engine::ParseDeviceKind(device));
    o.search_threads = threads;
    if (sync == "none") {
      o.store.sync = storage::SyncPolicy::kNone;
    } else if (sync == "always") {
      o.store.sync = storage::SyncPolicy::kAlways;
    } else {
      return absl::InvalidArgumentError("sync must be none or always, got " + sync);
    }
    ASSIGN_OR_RETURN(client_, OpenEmbeddedClient(dir, o));
    shared_ = true;
    ASSIGN_OR_RETURN(ServerInfo info, client_->Info());
    return Json{{"mode", "embedded"}, {"dir", dir}, {"device", info.device}};
  }

  absl::StatusOr<Json> Connect(const std::string& host, uint16_t port, const std::string& token) {
    host_ = host;
    port_ = port;
    token_ = token;
    ASSIGN_OR_RETURN(client_, net::ConnectRemoteClient(host, port, token));
    shared_ = false;
    ASSIGN_OR_RETURN(ServerInfo info, client_->Info());
    return Json{{"mode", "server"},
                {"endpoint", host + ":" + std::to_string(port)},
                {"device", info.device}};
  }

  // The client of client thread t: the embedded client is shared (thread-safe); a server gets
  // one connection per thread (a connection serves one request at a time).
  absl::StatusOr<Client*> ClientFor(size_t t) {
    if (shared_ || t == 0) return client_.get();
    while (extra_.size() < t) {
      ASSIGN_OR_RETURN(std::unique_ptr<Client> c, net::ConnectRemoteClient(host_, port_, token_));
      extra_.push_back(std::move(c));
    }
    return extra_[t - 1].get();
  }

  absl::StatusOr<Json> Import(const std::string& name, const std::string& field,
                              const std::string& path, const std::string& prefix,
                              const std::string& rows_path) {
    ASSIGN_OR_RETURN(Matrix<float> m, ReadFloatMatrix(path));
    std::vector<int64_t> rows;
    if (!rows_path.empty()) {
      ASSIGN_OR_RETURN(Matrix<int64_t> r, ReadIntMatrix(rows_path));
      rows.assign(r.data.begin(), r.data.end());
      std::sort(rows.begin(), rows.end());
      for (int64_t v : rows) {
        if (v < 0 || static_cast<size_t>(v) >= m.rows) {
          return absl::InvalidArgumentError(rows_path + ": row " + std::to_string(v) +
                                            " is outside the matrix");
        }
      }
    }
    // Runs of consecutive rows, each one Import call (ids prefix<row> via id_offset), split at
    // kMaxBatchRecords rows and 64 MiB.
    const size_t max_rows = std::min<size_t>(
        engine::kMaxBatchRecords, std::max<size_t>(1, (size_t{64} << 20) / (m.cols * sizeof(float))));
    std::vector<std::pair<size_t, size_t>> runs;  // [begin, end)
    if (rows_path.empty()) {
      runs.emplace_back(0, m.rows);
    } else {
      for (size_t i = 0; i < rows.size();) {
        size_t j = i + 1;
        while (j < rows.size() && rows[j] == rows[j - 1] + 1) ++j;
        runs.emplace_back(static_cast<size_t>(rows[i]), static_cast<size_t>(rows[j - 1]) + 1);
        i = j;
      }
    }
    const auto start = Clock::now();
    size_t total = 0;
    for (auto [b, e] : runs) {
      for (size_t r0 = b; r0 < e; r0 += max_rows) {
        const size_t n = std::min(max_rows, e - r0);
        ImportRequest req;
        req.collection = name;
        req.field = field;
        req.data = std::span<const float>(m.data.data() + r0 * m.cols, n * m.cols);
        req.rows = n;
        req.dim = m.cols;
        req.id_prefix = prefix;
        req.id_offset = static_cast<int64_t>(r0);
        RETURN_IF_ERROR(client_->Import(req).status());
        total += n;
      }
    }
    const double s = Seconds(Clock::now() - start);
    return Json{{"rows", total}, {"seconds", s}, {"rows_per_s", s > 0 ? total / s : 0.0}};
  }

  absl::StatusOr<Json> Search(const std::string& name, const std::string& request_path,
                              const std::vector<std::string>& query_paths, size_t clients,
                              size_t batch, double min_s, const std::string& ids_out) {
    if (clients == 0 || batch == 0) return absl::InvalidArgumentError("clients and batch must be >= 1");
    ASSIGN_OR_RETURN(std::string text, ReadFile(request_path));
    ASSIGN_OR_RETURN(Json j, ParseJsonText(text, request_path));
    ASSIGN_OR_RETURN(SearchRequest tmpl, SearchRequestFromJson(j));
    if (tmpl.inputs.size() != query_paths.size()) {
      return absl::InvalidArgumentError("the request has " + std::to_string(tmpl.inputs.size()) +
                                        " inputs but " + std::to_string(query_paths.size()) +
                                        " query matrices were given");
    }
    std::vector<Matrix<float>> qs;
    for (const std::string& p : query_paths) {
      ASSIGN_OR_RETURN(Matrix<float> m, ReadFloatMatrix(p));
      if (!qs.empty() && m.rows != qs[0].rows) {
        return absl::InvalidArgumentError("query matrices differ in rows");
      }
      qs.push_back(std::move(m));
    }
    const size_t nq = qs.empty() ? 0 : qs[0].rows;
    if (nq == 0) return absl::InvalidArgumentError("no queries");
    std::vector<SearchRequest> requests(nq, tmpl);
    for (size_t q = 0; q < nq; ++q) {
      for (size_t i = 0; i < qs.size(); ++i) {
        const float* v = qs[i].data.data() + q * qs[i].cols;
        requests[q].inputs[i].vector.assign(v, v + qs[i].cols);
      }
    }
    // Warm-up pass: every query once (in batches), ids recorded.
    std::ofstream out(ids_out);
    if (!out) return absl::InvalidArgumentError("cannot write " + ids_out);
    // Every client thread's client, opened before any thread starts.
    std::vector<Client*> per_thread(clients);
    for (size_t t = 0; t < clients; ++t) {
      ASSIGN_OR_RETURN(per_thread[t], ClientFor(t));
    }
    Client* c0 = per_thread[0];
    std::optional<SearchResponse> first;  // its plan goes into the reply.
    for (size_t q0 = 0; q0 < nq; q0 += batch) {
      std::vector<SearchRequest> b(requests.begin() + q0,
                                   requests.begin() + std::min(nq, q0 + batch));
      ASSIGN_OR_RETURN(std::vector<SearchResponse> r, c0->Search(name, std::move(b)));
      for (const SearchResponse& resp : r) {
        for (size_t h = 0; h < resp.results.size(); ++h) {
          out << (h ? " " : "") << resp.results[h].id;
        }
        out << "\n";
        if (!first.has_value()) first = resp;
      }
    }
    out.close();

    // Timed: requests of `batch` queries handed out round-robin until min_s and one full pass.
    std::atomic<size_t> next{0};
    std::atomic<bool> failed{false};
    std::mutex mu;
    std::string error;
    std::vector<std::vector<double>> lat(clients);
    const double cpu0 = CpuSeconds();
    const auto start = Clock::now();
    auto worker = [&](size_t t) {
      Client* c = per_thread[t];
      while (!failed) {
        const size_t k = next.fetch_add(1);
        const size_t q0 = (k * batch) % nq;
        if (k * batch >= nq && Seconds(Clock::now() - start) >= min_s) break;
        std::vector<SearchRequest> b;
        for (size_t i = 0; i < batch; ++i) b.push_back(requests[(q0 + i) % nq]);
        const auto t0 = Clock::now();
        absl::StatusOr<std::vector<SearchResponse>> r = c->Search(name, std::move(b));
        lat[t].push_back(1e6 * Seconds(Clock::now() - t0));
        if (!r.ok()) {
          std::lock_guard<std::mutex> lock(mu);
          error = std::string(r.status().ToString());
          failed = true;
        }
      }
    };
    std::vector<std::thread> threads;
    for (size_t t = 1; t < clients; ++t) threads.emplace_back(worker, t);
    worker(0);
    for (auto& th : threads) th.join();
    const double wall = Seconds(Clock::now() - start);
    const double cpu = CpuSeconds() - cpu0;
    if (failed) return absl::InternalError("search failed: " + error);
    std::vector<double> all;
    for (const auto& l : lat) all.insert(all.end(), l.begin(), l.end());
    std::sort(all.begin(), all.end());
    auto pct = [&](double p) {
      return all.empty() ? 0.0 : all[std::min(all.size() - 1, static_cast<size_t>(p * all.size()))];
    };
    const double queries = static_cast<double>(all.size() * batch);
    Json reply{{"queries", queries},
               {"seconds", wall},
               {"qps", queries / wall},
               {"p50_us", pct(0.50)},
               {"p99_us", pct(0.99)},
               {"requests", all.size()},
               {"cpu_s", cpu}};
    if (first.has_value()) {
      const Json pj = SearchResponseToJson(*first);
      reply["exact"] = first->exact;
      if (pj.contains("plan")) reply["plan"] = pj["plan"];
    }
    return reply;
  }

  std::unique_ptr<Client> client_;
  bool shared_ = true;
  std::string host_, token_;
  uint16_t port_ = 0;
  std::vector<std::unique_ptr<Client>> extra_;
};

}  // namespace
}  // namespace rosetta::bench

int main() {
  std::ios::sync_with_stdio(false);
  rosetta::bench::Driver driver;
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line.empty()) continue;
    if (line == "quit") break;
    std::string reply;
    try {
      reply = driver.Handle(line);
    } catch (const std::exception& e) {  // std::stoul on a bad number.
      reply = rosetta::bench::ErrorJson(std::string("bad argument: ") + e.what());
    }
    std::cout << reply << std::endl;
  }
  return 0;
}
