// The real rosettad executable: banner, graceful stop on SIGTERM / SIGINT with data kept, startup
// and usage errors with their exit statuses. (tests/net covers the protocol; this covers the
// process around it.)
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "kernels/device.h"
#include "net/remote_client.h"
#include "tests/testing/testing.h"
#include "tools/process/rosettad_process.h"

namespace rosetta {
namespace {

using ::rosetta::process::ChildProcess;
using ::rosetta::process::DescribeWaitStatus;
using ::rosetta::process::Rosettad;
using ::testing::HasSubstr;
using std::chrono::seconds;

std::string RosettadBinary() {
  const char* dir = std::getenv("ROSETTA_TEST_BIN_DIR");
  return std::string(dir ? dir : ".") + "/tools/rosettad";
}

#define REQUIRE_ROSETTAD()                                                        \
  if (!std::filesystem::exists(RosettadBinary())) {                               \
    GTEST_SKIP() << "rosettad not built at " << RosettadBinary()                  \
                 << " (set ROSETTA_TEST_BIN_DIR to the build directory)";          \
  }

CollectionSchema TinySchema() {
  CollectionSchema s;
  s.name = "photos";
  Space sp;
  sp.name = "clip";
  sp.dim = 4;
  sp.metric = Metric::kCosine;
  sp.encoder = "test@1";
  s.spaces["clip"] = sp;
  Field f;
  f.name = "image";
  f.space = "clip";
  f.modality = "image";
  s.fields["image"] = f;
  return s;
}

// Starts rosettad, writes one record through the protocol, stops it with `sig`, and checks the
// exit, the log, and that a restarted server still has the record.
void StopsGracefullyOn(int sig, const char* sig_name) {
  rosetta::testing::TempDir dir;
  const std::string data = dir.str() + "/data", log = dir.str() + "/stderr.log";
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Rosettad> d,
                         Rosettad::Start(RosettadBinary(), data, log, {"--sync", "always"}));
    EXPECT_THAT(d->banner(), HasSubstr("rosettad 0.1.0 listening on 127.0.0.1:"));
    EXPECT_THAT(d->banner(), HasSubstr("(data " + data + ", kernels "));
    EXPECT_THAT(d->banner(), HasSubstr(", device "));
    EXPECT_THAT(d->banner(), HasSubstr("0 collections, sync always, auth off)"));
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> c,
                         net::ConnectRemoteClient("127.0.0.1", d->port(), ""));
    ASSERT_OK(c->CreateCollection(TinySchema()));
    Record r;
    r.id = "kept";
    r.vectors["image"] = {1, 2, 3, 4};
    ASSERT_OK(c->Upsert("photos", {r}).status());
    // The connection stays open (idle) across the signal: the server must not wait for it.
    const std::optional<int> status = d->process().SignalAndWait(sig, std::chrono::seconds(20));
    ASSERT_TRUE(status.has_value()) << "rosettad did not exit within 20 s of " << sig_name;
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << DescribeWaitStatus(*status);
    const std::string err = d->process().StderrLog();
    EXPECT_THAT(err, HasSubstr(std::string("rosettad: ") + sig_name + ": stopping"));
    EXPECT_THAT(err, HasSubstr("rosettad: stopped"));
    // The old connection is closed: a call fails cleanly instead of hanging.
    EXPECT_FALSE(c->ListCollections().ok());
  }
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Rosettad> d, Rosettad::Start(RosettadBinary(), data, log, {}));
  EXPECT_THAT(d->banner(), HasSubstr("1 collection, sync always"));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> c,
                       net::ConnectRemoteClient("127.0.0.1", d->port(), ""));
  ASSERT_OK_AND_ASSIGN(GetResult got, c->Get("photos", {"kept"}, true));
  ASSERT_EQ(got.records.size(), 1u);
  EXPECT_EQ(got.records[0].vectors.at("image").size(), 4u);
}

TEST(RosettadProcessTest, StopsGracefullyOnSigterm) {
  REQUIRE_ROSETTAD();
  StopsGracefullyOn(SIGTERM, "SIGTERM");
}

TEST(RosettadProcessTest, StopsGracefullyOnSigint) {
  REQUIRE_ROSETTAD();
  StopsGracefullyOn(SIGINT, "SIGINT");
}

// Runs rosettad with `args` expecting it to exit by itself; returns {wait status, stderr}.
std::pair<int, std::string> RunToExit(const std::vector<std::string>& args,
                                      const std::string& log) {
  std::vector<std::string> argv = {RosettadBinary()};
  argv.insert(argv.end(), args.begin(), args.end());
  auto child = ChildProcess::Start(argv, log);
  EXPECT_TRUE(child.ok()) << child.status();
  if (!child.ok()) return {-1, ""};
  std::optional<int> status = (*child)->WaitFor(std::chrono::seconds(30));
  EXPECT_TRUE(status.has_value()) << "rosettad " << args.back() << " did not exit";
  if (!status.has_value()) return {-1, (*child)->StderrLog()};
  return {*status, (*child)->StderrLog()};
}

TEST(RosettadProcessTest, RefusesToListenBeyondLoopbackWithoutATokenAndSaysWhy) {
  REQUIRE_ROSETTAD();
  rosetta::testing::TempDir dir;
  auto [status, err] = RunToExit({"--data", dir.str() + "/d", "--listen", "0.0.0.0:0"},
                                 dir.str() + "/log");
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << DescribeWaitStatus(status);
  EXPECT_THAT(err, HasSubstr("rosettad: error: "));
  EXPECT_THAT(err, HasSubstr("token"));
  EXPECT_THAT(err, HasSubstr("0.0.0.0"));
}

TEST(RosettadProcessTest, UsageErrorsExitWithStatus2NamingTheFlag) {
  REQUIRE_ROSETTAD();
  rosetta::testing::TempDir dir;
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--bogus"}, "unknown flag \"--bogus\""},
      {{"--sync", "maybe"}, "--sync: expected always or none, got \"maybe\""},
      {{"--threads", "5000"}, "--threads: expected a whole number from 0 to 1024"},
      {{"--max-connections", "0"}, "--max-connections: expected a whole number from 1"},
      {{"--listen", "nonsense"}, "--listen"},
      {{"--data"}, "--data: missing value"},
  };
  for (const auto& [args, want] : cases) {
    SCOPED_TRACE(args[0]);
    // --data first, so that a case that wrongly starts a server does not touch ./rosetta-data.
    std::vector<std::string> full = {"--data", dir.str() + "/d"};
    full.insert(full.end(), args.begin(), args.end());
    auto [status, err] = RunToExit(full, dir.str() + "/log-" + args[0].substr(2));
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 2) << DescribeWaitStatus(status);
    EXPECT_THAT(err, HasSubstr(want));
  }
}

// --device and the device tuning flags: bad values are usage errors naming the flag (and, for
// --device, the accepted values).
TEST(RosettadProcessTest, BadDeviceFlagsExitWithStatus2NamingTheFlag) {
  REQUIRE_ROSETTAD();
  rosetta::testing::TempDir dir;
  const std::vector<std::pair<std::vector<std::string>, std::vector<std::string>>> cases = {
      {{"--device", "bogus"}, {"--device: ", "bogus", "auto", "cpu", "cuda"}},
      {{"--device", "CPU"}, {"--device: ", "CPU", "auto", "cpu", "cuda"}},
      {{"--device"}, {"--device: missing value"}},
      {{"--cuda-device", "-1"}, {"--cuda-device: expected a whole number from 0 to 1023"}},
      {{"--device-memory-budget", "1G"}, {"--device-memory-budget: expected a whole number"}},
      {{"--device-batch-wait-us", "x"}, {"--device-batch-wait-us: expected a whole number"}},
      {{"--device-max-batch", "0"}, {"--device-max-batch: expected a whole number from 1 to 1024"}},
      {{"--device-max-batch", "1025"}, {"--device-max-batch: expected a whole number from 1"}},
  };
  for (const auto& [args, wants] : cases) {
    SCOPED_TRACE(args[0] + (args.size() > 1 ? " " + args[1] : ""));
    std::vector<std::string> full = {"--data", dir.str() + "/d"};
    full.insert(full.end(), args.begin(), args.end());
    auto [status, err] = RunToExit(full, dir.str() + "/log-" + args[0].substr(2));
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 2) << DescribeWaitStatus(status);
    for (const std::string& want : wants) EXPECT_THAT(err, HasSubstr(want));
  }
  // Nothing was created: usage errors come before the data directory is touched.
  EXPECT_FALSE(std::filesystem::exists(dir.str() + "/d"));
}

// --device cpu: the banner says so, and describe / stats through the server name the CPU with
// zero device counters (the tuning flags are accepted and do not matter on the CPU).
TEST(RosettadProcessTest, DeviceCpuIsInTheBannerAndTheReplies) {
  REQUIRE_ROSETTAD();
  rosetta::testing::TempDir dir;
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<Rosettad> d,
      Rosettad::Start(RosettadBinary(), dir.str() + "/data", dir.str() + "/stderr.log",
                      {"--device", "cpu", "--cuda-device", "0", "--device-memory-budget",
                       "1048576", "--device-batch-wait-us", "0", "--device-max-batch", "8"}));
  EXPECT_THAT(d->banner(), HasSubstr(", kernels "));
  EXPECT_THAT(d->banner(), HasSubstr(", device cpu, 0 collections, "));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> c,
                       net::ConnectRemoteClient("127.0.0.1", d->port(), ""));
  ASSERT_OK_AND_ASSIGN(ServerInfo info, c->Info());
  EXPECT_EQ(info.device, "cpu");
  ASSERT_OK(c->CreateCollection(TinySchema()));
  Record r;
  r.id = "a";
  r.vectors["image"] = {1, 2, 3, 4};
  ASSERT_OK(c->Upsert("photos", {r}).status());
  SearchRequest q;
  q.exact = true;
  QueryInput in;
  in.vector = {1, 0, 0, 0};
  in.space = "clip";
  q.inputs.push_back(in);
  ASSERT_OK(c->Search("photos", {q}).status());
  ASSERT_OK_AND_ASSIGN(CollectionInfo described, c->Describe("photos"));
  EXPECT_EQ(described.device, "cpu");
  EXPECT_EQ(described.device_rows, 0);
  EXPECT_EQ(described.device_bytes, 0);
  ASSERT_OK_AND_ASSIGN(DatabaseStats stats, c->Stats());
  EXPECT_EQ(stats.device, "cpu");
  EXPECT_EQ(stats.device_stats.searches, 0);
  EXPECT_EQ(stats.device_stats.batches, 0);
  EXPECT_EQ(stats.device_stats.fallbacks, 0);
  EXPECT_EQ(stats.device_stats.boundary_fallbacks, 0);
  EXPECT_EQ(stats.device_stats.cpu_queries, 0);
  EXPECT_EQ(stats.device_stats.mirrored_rows, 0);
  EXPECT_EQ(stats.device_stats.mirror_bytes, 0);
  EXPECT_EQ(stats.device_stats.memory_budget_bytes, 0);
  EXPECT_EQ(stats.device_stats.unmirrored_rows, 0);
}

// --device cuda where no GPU is usable: the open fails, rosettad exits with status 1 and the
// engine's reason, and never prints a banner.
TEST(RosettadProcessTest, DeviceCudaWithoutAGpuFailsClearly) {
  REQUIRE_ROSETTAD();
  if (kernels::CudaDeviceCount() > 0) {
    GTEST_SKIP() << "a CUDA device is present (" << kernels::CudaDeviceCount()
                 << "): --device cuda opens; this test needs a machine without one";
  }
  rosetta::testing::TempDir dir;
  std::vector<std::string> argv = {RosettadBinary(), "--data", dir.str() + "/d", "--listen",
                                   "127.0.0.1:0", "--device", "cuda"};
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ChildProcess> child,
                       ChildProcess::Start(argv, dir.str() + "/log"));
  // The first stdout line would be the banner: stdout closes (the process exits) instead.
  absl::StatusOr<std::string> line = child->ReadLine(std::chrono::seconds(30));
  EXPECT_FALSE(line.ok()) << "banner printed: " << *line;
  const std::optional<int> status = child->WaitFor(std::chrono::seconds(30));
  ASSERT_TRUE(status.has_value()) << "rosettad --device cuda did not exit";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 1) << DescribeWaitStatus(*status);
  const std::string err = child->StderrLog();
  EXPECT_THAT(err, HasSubstr("rosettad: error: FAILED_PRECONDITION: "));
  EXPECT_THAT(err, HasSubstr("cuda"));
  // The data directory it would have created is not left behind.
  EXPECT_FALSE(std::filesystem::exists(dir.str() + "/d"));
}

TEST(RosettadProcessTest, ASecondServerOnTheSameDataDirectoryFailsClearly) {
  REQUIRE_ROSETTAD();
  rosetta::testing::TempDir dir;
  const std::string data = dir.str() + "/data";
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Rosettad> first,
                       Rosettad::Start(RosettadBinary(), data, dir.str() + "/log1", {}));
  auto [status, err] = RunToExit({"--data", data, "--listen", "127.0.0.1:0"}, dir.str() + "/log2");
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << DescribeWaitStatus(status);
  EXPECT_THAT(err, HasSubstr("rosettad: error: "));
  EXPECT_THAT(err, HasSubstr(data));
  // The first one is unaffected.
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> c,
                       net::ConnectRemoteClient("127.0.0.1", first->port(), ""));
  EXPECT_OK(c->ListCollections().status());
}

TEST(RosettadProcessTest, APortInUseFailsClearly) {
  REQUIRE_ROSETTAD();
  rosetta::testing::TempDir dir;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Rosettad> first,
                       Rosettad::Start(RosettadBinary(), dir.str() + "/a", dir.str() + "/log1", {}));
  const std::string address = "127.0.0.1:" + std::to_string(first->port());
  auto [status, err] =
      RunToExit({"--data", dir.str() + "/b", "--listen", address}, dir.str() + "/log2");
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << DescribeWaitStatus(status);
  EXPECT_THAT(err, HasSubstr("rosettad: error: "));
  EXPECT_THAT(err, HasSubstr(address));
}

// rosettad plumbs the transport's counters into the protocol service: Stats through the real
// server reports the connections and bytes it has seen, and the request latencies.
TEST(RosettadProcessTest, StatsReportTheTransportsCounters) {
  REQUIRE_ROSETTAD();
  rosetta::testing::TempDir dir;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Rosettad> d,
                       Rosettad::Start(RosettadBinary(), dir.str() + "/data",
                                       dir.str() + "/stderr.log", {"--sync", "none"}));
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> first,
                         net::ConnectRemoteClient("127.0.0.1", d->port(), ""));
    ASSERT_OK(first->CreateCollection(TinySchema()));
  }
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> c,
                       net::ConnectRemoteClient("127.0.0.1", d->port(), ""));
  ASSERT_OK_AND_ASSIGN(DatabaseStats stats, c->Stats());
  EXPECT_EQ(stats.collections, 1);
  EXPECT_EQ(stats.connections_accepted, 2);
  EXPECT_GE(stats.connections_open, 1);
  EXPECT_EQ(stats.connections_refused, 0);
  EXPECT_GT(stats.bytes_received, 0);
  EXPECT_GT(stats.bytes_sent, 0);
  ASSERT_FALSE(stats.requests.empty());
  EXPECT_EQ(stats.requests[0].operation, "request.hello");
  EXPECT_EQ(stats.requests[0].count, 2);
  // The bytes grow with every exchange.
  ASSERT_OK_AND_ASSIGN(DatabaseStats later, c->Stats());
  EXPECT_GT(later.bytes_received, stats.bytes_received);
  EXPECT_GT(later.bytes_sent, stats.bytes_sent);
}

}  // namespace
}  // namespace rosetta
