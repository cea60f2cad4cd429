// The CLI's index and telemetry commands where a golden file cannot pin them: `stats` (its
// numbers are timings and counts of this process) in embedded and server mode, build-index's
// progress bar, and the search flags' checks. build-index --wait, describe's segments and search
// plans are pinned by tests/golden/indexes.test in both modes.
#include <filesystem>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "engine/database.h"
#include "gtest/gtest.h"
#include "kernels/device.h"
#include "net/auth.h"
#include "net/embedded_client.h"
#include "net/server.h"
#include "net/service.h"
#include "nlohmann/json.hpp"
#include "tests/testing/testing.h"
#include "tests/tools/cli_harness.h"
#include "tools/cli/command.h"

namespace rosetta::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using J = nlohmann::ordered_json;

constexpr char kSchema[] = R"({"name": "docs",
  "spaces": {"s": {"dim": 4, "metric": "ip"}},
  "fields": {"image": {"space": "s", "modality": "image", "index": "ivf_pq"}}})";
constexpr char kRecords[] =
    "{\"id\": \"a\", \"vectors\": {\"image\": [1, 0, 0, 0]}}\n"
    "{\"id\": \"b\", \"vectors\": {\"image\": [0, 1, 0, 0]}}\n";
constexpr char kQuery[] = R"({"k": 1, "inputs": [{"vector": [1, 0, 0, 0], "space": "s"}]})";

J ParseOut(const CliRun& r) {
  try {
    return J::parse(r.out);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "stdout is not one JSON document: " << e.what() << "\n" << Describe(r);
    return J();
  }
}

// The whitespace-separated cells of the first line of `text` whose first cell is `first`.
std::vector<std::string> Row(const std::string& text, const std::string& first) {
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream cells(line);
    std::vector<std::string> row;
    for (std::string cell; cells >> cell;) row.push_back(cell);
    if (!row.empty() && row[0] == first) return row;
  }
  return {};
}

std::vector<std::string> Names(const J& list) {
  std::vector<std::string> out;
  for (const J& l : list) out.push_back(l.value("operation", std::string("?")));
  return out;
}

// A server on 127.0.0.1 (a free port) over an embedded client, with the transport's counters
// plumbed into the service as rosettad does.
class StatsServer {
 public:
  explicit StatsServer(const std::string& data_dir) {
    auto backend = OpenEmbeddedClient(data_dir, engine::DatabaseOptions{});
    if (!backend.ok()) {
      status_ = backend.status();
      return;
    }
    backend_ = std::move(*backend);
    absl::StatusOr<ServerInfo> info = backend_->Info();
    if (!info.ok()) {
      status_ = info.status();
      return;
    }
    factory_ = std::make_unique<net::ServiceFactory>(backend_.get(), net::AuthConfig{}, *info);
    net::ServerOptions options;
    options.port = 0;
    options.worker_threads = 2;
    options.log = [](std::string_view) {};
    auto server = net::Server::Start(options, factory_.get());
    if (!server.ok()) {
      status_ = server.status();
      return;
    }
    server_ = std::move(*server);
    factory_->SetTransportCounters([s = server_.get()] {
      const net::ServerStats st = s->stats();
      net::TransportCounters t;
      t.connections_open = static_cast<int64_t>(st.connections_open);
      t.connections_accepted = static_cast<int64_t>(st.connections_accepted);
      t.connections_refused = static_cast<int64_t>(st.connections_refused);
      t.bytes_received = static_cast<int64_t>(st.bytes_received);
      t.bytes_sent = static_cast<int64_t>(st.bytes_sent);
      return t;
    });
  }
  ~StatsServer() {
    if (server_) server_->Stop();
    if (factory_) factory_->SetTransportCounters(nullptr);
  }
  const absl::Status& status() const { return status_; }
  std::string address() const { return server_->endpoint().ToString(); }

 private:
  absl::Status status_;
  std::unique_ptr<Client> backend_;
  std::unique_ptr<net::ServiceFactory> factory_;
  std::unique_ptr<net::Server> server_;
};

TEST(StatsCommandTest, EmbeddedShowsTheEnginesCountersOnly) {
  TempDir tmp;
  const std::string data = (tmp.path() / "data").string();
  ASSERT_EQ(RunOn(data, {"create-collection", "--schema", "-"}, kSchema).exit_code, 0);
  ASSERT_EQ(RunOn(data, {"upsert", "docs", "--file", "-"}, kRecords).exit_code, 0);

  // Each embedded invocation opens the database itself: no operation yet in this process.
  CliRun r = RunOn(data, {"stats"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.err, "");
  const J j = ParseOut(r);
  std::vector<std::string> keys;
  for (const auto& item : j.items()) keys.push_back(item.key());
  EXPECT_EQ(keys, (std::vector<std::string>{
                      "uptime_s", "collections", "records", "operations", "commit_batches",
                      "commit_groups", "requests", "connections_open", "connections_accepted",
                      "connections_refused", "bytes_received", "bytes_sent", "device",
                      "device_stats"}));
  EXPECT_EQ(j["collections"], 1);
  EXPECT_EQ(j["records"], 2);
  EXPECT_EQ(Names(j["operations"]), (std::vector<std::string>{"search", "search_batch", "upsert",
                                                              "import", "get", "delete"}));
  for (const J& op : j["operations"]) EXPECT_EQ(op["count"], 0) << op.dump();
  EXPECT_TRUE(j["requests"].empty());
  EXPECT_EQ(j["connections_accepted"], 0);
  EXPECT_EQ(j["bytes_sent"], 0);
  EXPECT_GE(j["uptime_s"].get<double>(), 0.0);
  std::vector<std::string> device_keys;
  for (const auto& item : j["device_stats"].items()) device_keys.push_back(item.key());
  EXPECT_EQ(device_keys, (std::vector<std::string>{"searches", "batches", "fallbacks",
                                                   "boundary_fallbacks", "cpu_queries",
                                                   "mirrored_rows", "mirror_bytes",
                                                   "memory_budget_bytes", "unmirrored_rows"}));

  CliRun text = RunOn(data, {"stats"}, "", /*json=*/false);
  ASSERT_EQ(text.exit_code, 0) << Describe(text);
  EXPECT_THAT(text.out, HasSubstr("collections: 1\nrecords: 2\n"));
  EXPECT_EQ(Row(text.out, "operation"),
            (std::vector<std::string>{"operation", "count", "errors", "mean_us", "p50_us",
                                      "p90_us", "p99_us", "max_us"}));
  const std::vector<std::string> batch = Row(text.out, "search_batch");
  ASSERT_EQ(batch.size(), 8u) << text.out;
  EXPECT_EQ(batch[1], "0");
  EXPECT_EQ(batch[2], "0");
  EXPECT_THAT(text.out, HasSubstr("commits: 0 batches in 0 groups"));
  // Server-only sections are left out in embedded mode.
  EXPECT_THAT(text.out, Not(HasSubstr("connections:")));
  EXPECT_THAT(text.out, Not(HasSubstr("request")));

  // No arguments.
  CliRun bad = RunOn(data, {"stats", "docs"});
  EXPECT_EQ(bad.exit_code, 2) << Describe(bad);
  EXPECT_THAT(bad.err, HasSubstr("expected no arguments, got 1"));
}

TEST(StatsCommandTest, ThroughAServerShowsRequestsConnectionsAndBytes) {
  TempDir tmp;
  StatsServer server((tmp.path() / "server").string());
  ASSERT_TRUE(server.status().ok()) << server.status();
  auto run = [&](std::vector<std::string> args, const std::string& in = "", bool json = true) {
    std::vector<std::string> full = {"--server", server.address()};
    if (json) full.push_back("--json");
    full.insert(full.end(), args.begin(), args.end());
    return RunRosetta(full, in);
  };
  ASSERT_EQ(run({"create-collection", "--schema", "-"}, kSchema).exit_code, 0);
  ASSERT_EQ(run({"upsert", "docs", "--file", "-"}, kRecords).exit_code, 0);
  ASSERT_EQ(run({"search", "docs", "--query", "-"}, kQuery).exit_code, 0);
  ASSERT_EQ(run({"search", "docs", "--query", "-", "--exact"}, kQuery).exit_code, 0);
  EXPECT_EQ(run({"describe", "nope"}).exit_code, 1);

  CliRun r = run({"stats"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  const J j = ParseOut(r);
  EXPECT_EQ(j["collections"], 1);
  EXPECT_EQ(j["records"], 2);
  // The server's engine saw the two searches and the upsert.
  EXPECT_EQ(j["operations"][0]["operation"], "search");
  EXPECT_EQ(j["operations"][0]["count"], 2);
  EXPECT_EQ(j["operations"][2]["operation"], "upsert");
  EXPECT_EQ(j["operations"][2]["count"], 1);
  EXPECT_GE(j["commit_batches"].get<int64_t>(), 1);
  EXPECT_GE(j["commit_groups"].get<int64_t>(), 1);
  EXPECT_EQ(Names(j["requests"]),
            (std::vector<std::string>{"request.hello", "request.describe", "request.search",
                                      "request.upsert", "request.create_collection"}));
  // upsert asks for the schema (describe) to validate the records before sending them.
  for (const J& req : j["requests"]) {
    const std::string name = req["operation"];
    const int want = name == "request.hello"                                        ? 6
                     : name == "request.search" || name == "request.describe" ? 2
                                                                                    : 1;
    EXPECT_EQ(req["count"], want) << req.dump();
    EXPECT_EQ(req["errors"], name == "request.describe" ? 1 : 0) << req.dump();
    EXPECT_GE(req["max_us"].get<double>(), req["p50_us"].get<double>()) << req.dump();
  }
  // One connection per invocation: this one is open, the five before were accepted (and are
  // closed, or closing: the server notices a client's close asynchronously).
  EXPECT_EQ(j["connections_accepted"], 6);
  EXPECT_GE(j["connections_open"].get<int64_t>(), 1);
  EXPECT_LE(j["connections_open"].get<int64_t>(), 6);
  EXPECT_EQ(j["connections_refused"], 0);
  EXPECT_GT(j["bytes_received"].get<int64_t>(), 0);
  EXPECT_GT(j["bytes_sent"].get<int64_t>(), 0);

  CliRun text = run({"stats"}, "", /*json=*/false);
  ASSERT_EQ(text.exit_code, 0) << Describe(text);
  EXPECT_EQ(Row(text.out, "request").size(), 8u) << text.out;
  const std::vector<std::string> search = Row(text.out, "request.search");
  ASSERT_EQ(search.size(), 8u) << text.out;
  EXPECT_EQ(search[1], "2");
  EXPECT_EQ(search[2], "0");
  const std::vector<std::string> stats = Row(text.out, "request.stats");
  ASSERT_EQ(stats.size(), 8u) << text.out;
  EXPECT_EQ(stats[1], "1");
  EXPECT_THAT(text.out, HasSubstr(" open, 7 accepted, 0 refused\n"));
  EXPECT_THAT(text.out, HasSubstr("batches per fsync"));
  EXPECT_THAT(text.out, HasSubstr("\nbytes: "));
}

// --device cpu in embedded mode: stats and describe name the CPU, every device counter is 0
// (after searches too), in JSON and text.
TEST(DeviceFlagTest, EmbeddedCpuDeviceInStatsAndDescribe) {
  TempDir tmp;
  const std::string data = (tmp.path() / "data").string();
  auto run = [&](std::vector<std::string> args, const std::string& in = "", bool json = true) {
    std::vector<std::string> full = {"--data", data, "--device", "cpu"};
    if (json) full.push_back("--json");
    full.insert(full.end(), args.begin(), args.end());
    return RunRosetta(full, in);
  };
  ASSERT_EQ(run({"create-collection", "--schema", "-"}, kSchema).exit_code, 0);
  ASSERT_EQ(run({"upsert", "docs", "--file", "-"}, kRecords).exit_code, 0);
  CliRun r = run({"stats"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  const J j = ParseOut(r);
  EXPECT_EQ(j["device"], "cpu");
  for (const auto& item : j["device_stats"].items()) {
    EXPECT_EQ(item.value(), 0) << item.key();
  }
  CliRun text = run({"stats"}, "", /*json=*/false);
  ASSERT_EQ(text.exit_code, 0) << Describe(text);
  EXPECT_THAT(text.out, HasSubstr("\ndevice: cpu\n"));
  EXPECT_THAT(text.out, HasSubstr(
                            "device searches: 0 in 0 batches, fallbacks 0 (+0 at the boundary), "
                            "cpu queries 0\n"));
  EXPECT_THAT(text.out, HasSubstr("device mirror: 0 rows, 0 bytes (budget 0 bytes), "
                                  "unmirrored rows 0\n"));

  CliRun d = run({"describe", "docs"});
  ASSERT_EQ(d.exit_code, 0) << Describe(d);
  const J dj = ParseOut(d);
  EXPECT_EQ(dj["device"], "cpu");
  EXPECT_EQ(dj["device_rows"], 0);
  EXPECT_EQ(dj["device_bytes"], 0);
  CliRun dt = run({"describe", "docs"}, "", /*json=*/false);
  ASSERT_EQ(dt.exit_code, 0) << Describe(dt);
  EXPECT_THAT(dt.out, HasSubstr("\ndevice: cpu\n"));
}

// Through a server the device is the server's: stats and describe carry it over the protocol.
TEST(DeviceFlagTest, ThroughAServerStatsAndDescribeNameTheServersDevice) {
  TempDir tmp;
  StatsServer server((tmp.path() / "server").string());
  ASSERT_TRUE(server.status().ok()) << server.status();
  auto run = [&](std::vector<std::string> args, const std::string& in = "") {
    std::vector<std::string> full = {"--server", server.address(), "--json"};
    full.insert(full.end(), args.begin(), args.end());
    return RunRosetta(full, in);
  };
  ASSERT_EQ(run({"create-collection", "--schema", "-"}, kSchema).exit_code, 0);
  // The server's database was opened with the default device (auto): the same name in both.
  CliRun s = run({"stats"});
  ASSERT_EQ(s.exit_code, 0) << Describe(s);
  const std::string device = ParseOut(s)["device"];
  EXPECT_TRUE(device == "cpu" || device.rfind("cuda:", 0) == 0) << device;
  CliRun d = run({"describe", "docs"});
  ASSERT_EQ(d.exit_code, 0) << Describe(d);
  EXPECT_EQ(ParseOut(d)["device"], device);
}

TEST(DeviceFlagTest, BadValuesAreUsageErrors) {
  TempDir tmp;
  const std::string data = (tmp.path() / "data").string();
  CliRun r = RunRosetta({"--data", data, "--device", "gpu", "list-collections"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, HasSubstr("--device: "));
  EXPECT_THAT(r.err, HasSubstr("gpu"));
  for (const char* accepted : {"auto", "cpu", "cuda"}) EXPECT_THAT(r.err, HasSubstr(accepted));
  // Embedded only: a server picks its own device.
  r = RunRosetta({"--server", "127.0.0.1:1", "--device", "cpu", "list-collections"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("--device applies to embedded mode"));
  // A global flag after the command says where it goes.
  r = RunRosetta({"--data", data, "list-collections", "--device", "cpu"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("--device is a global flag"));
}

// --device cuda without a usable GPU: the command fails (exit 1) with the engine's reason.
TEST(DeviceFlagTest, EmbeddedCudaWithoutAGpuFailsClearly) {
  if (kernels::CudaDeviceCount() > 0) {
    GTEST_SKIP() << "a CUDA device is present: --device cuda opens; this test needs a machine "
                    "without one";
  }
  TempDir tmp;
  CliRun r = RunRosetta(
      {"--data", (tmp.path() / "data").string(), "--device", "cuda", "list-collections"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, HasSubstr("error: FAILED_PRECONDITION: "));
  EXPECT_THAT(r.err, HasSubstr("cuda"));
}

TEST(BuildIndexCommandTest, ProgressBar) {
  using cli::FormatIndexProgressBar;
  EXPECT_EQ(FormatIndexProgressBar(IndexBuildProgress{2, 1, 1, 0, 0}, 10),
            "[#####-----] 1/2 segments ready, 1 building, 0 failed");
  EXPECT_EQ(FormatIndexProgressBar(IndexBuildProgress{3, 1, 1, 1, 7}, 6),
            "[####--] 1/3 segments ready, 1 building, 1 failed");
  EXPECT_EQ(FormatIndexProgressBar(IndexBuildProgress{1, 1, 0, 0, 0}, 4),
            "[####] 1/1 segment ready, 0 building, 0 failed");
  // Nothing sealed yet: nothing to wait for.
  EXPECT_EQ(FormatIndexProgressBar(IndexBuildProgress{}, 4),
            "[####] 0/0 segments ready, 0 building, 0 failed");
}

TEST(BuildIndexCommandTest, WithoutWaitPrintsTheProgressOnce) {
  TempDir tmp;
  const std::string data = (tmp.path() / "data").string();
  ASSERT_EQ(RunOn(data, {"create-collection", "--schema", "-"}, kSchema).exit_code, 0);
  ASSERT_EQ(RunOn(data, {"upsert", "docs", "--file", "-"}, kRecords).exit_code, 0);
  CliRun r = RunOn(data, {"build-index", "docs"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  const J j = ParseOut(r);  // one (pretty-printed) document, not JSON Lines.
  EXPECT_EQ(j["segments"], 1);
  EXPECT_EQ(j["building"].get<int64_t>() + j["ready"].get<int64_t>(), 1);
  EXPECT_EQ(j["growing_rows"], 0);
  // --json is a global flag, as for every command.
  CliRun misplaced = RunOn(data, {"build-index", "docs", "--json"}, "", /*json=*/false);
  EXPECT_EQ(misplaced.exit_code, 2) << Describe(misplaced);
}

TEST(SearchFlagsTest, RangesAreUsageErrors) {
  TempDir tmp;
  const std::string data = (tmp.path() / "data").string();
  for (const std::vector<std::string>& flags :
       std::vector<std::vector<std::string>>{{"--nprobe", "0"},
                                             {"--nprobe", "65537"},
                                             {"--refine", "x"},
                                             {"--exact=yes"}}) {
    std::vector<std::string> args = {"search", "docs", "--query", "-"};
    args.insert(args.end(), flags.begin(), flags.end());
    CliRun r = RunOn(data, args, kQuery);
    EXPECT_EQ(r.exit_code, 2) << Describe(r);
    EXPECT_EQ(r.out, "");
  }
  // Input errors are found before the database is opened.
  EXPECT_FALSE(std::filesystem::exists(data));
}

}  // namespace
}  // namespace rosetta::testing
