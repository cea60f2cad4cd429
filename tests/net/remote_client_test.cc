// The remote client over a real loopback socket: a Server (net/server.h) on port 0 serving the
// protocol service (net/service.h) over an embedded database, and ConnectRemoteClient doing
// every operation, checked against the embedded client; plus the connection-level errors
// (refused, unauthenticated, too many connections, timeouts, a stopped server, size limits).
#include "net/remote_client.h"

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "net/embedded_client.h"
#include "net/server.h"
#include "net/service.h"
#include "tests/net/protocol_testing.h"
#include "tests/testing/testing.h"

namespace rosetta::net {
namespace {

using ::rosetta::testing::TempDir;
using ::testing::AnyOf;
using ::testing::HasSubstr;
using std::chrono::milliseconds;

constexpr char kReadToken[] = "read-token-0123456789";
constexpr char kAdminToken[] = "admin-token-0123456789";

// Delegates to an inner client; Describe sleeps first (to provoke client timeouts).
class SlowDescribeClient final : public Client {
 public:
  SlowDescribeClient(Client* inner, milliseconds delay) : inner_(inner), delay_(delay) {}
  absl::StatusOr<ServerInfo> Info() override { return inner_->Info(); }
  absl::Status CreateCollection(const CollectionSchema& s) override {
    return inner_->CreateCollection(s);
  }
  absl::StatusOr<std::vector<std::string>> ListCollections() override {
    return inner_->ListCollections();
  }
  absl::StatusOr<CollectionInfo> Describe(const std::string& c) override {
    std::this_thread::sleep_for(delay_);
    return inner_->Describe(c);
  }
  absl::Status DropCollection(const std::string& c) override { return inner_->DropCollection(c); }
  absl::StatusOr<WriteResult> Upsert(const std::string& c, std::vector<Record> r) override {
    return inner_->Upsert(c, std::move(r));
  }
  absl::StatusOr<WriteResult> Import(const ImportRequest& r) override { return inner_->Import(r); }
  absl::StatusOr<GetResult> Get(const std::string& c, const std::vector<std::string>& ids,
                                bool v) override {
    return inner_->Get(c, ids, v);
  }
  absl::StatusOr<WriteResult> Delete(const std::string& c,
                                     const std::vector<std::string>& ids) override {
    return inner_->Delete(c, ids);
  }
  absl::StatusOr<std::vector<SearchResponse>> Search(const std::string& c,
                                                     std::vector<SearchRequest> r) override {
    return inner_->Search(c, std::move(r));
  }
  absl::StatusOr<IndexBuildProgress> BuildIndex(const std::string& c,
                                                const std::string& f) override {
    return inner_->BuildIndex(c, f);
  }
  absl::StatusOr<IndexBuildProgress> IndexProgress(const std::string& c) override {
    return inner_->IndexProgress(c);
  }
  absl::StatusOr<DatabaseStats> Stats() override { return inner_->Stats(); }

 private:
  Client* inner_;
  milliseconds delay_;
};

class RemoteClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = OpenEmbeddedClient((tmp_.path() / "server").string(), {});
    ASSERT_TRUE(c.ok()) << c.status();
    backend_ = std::move(*c);
  }
  void TearDown() override {
    if (server_) server_->Stop();
    if (factory_) factory_->SetTransportCounters(nullptr);
  }

  ServerOptions Options() {
    ServerOptions o;
    o.host = "127.0.0.1";
    o.port = 0;
    o.io_threads = 1;
    o.worker_threads = 4;
    o.close_linger = milliseconds(200);
    o.stop_grace = milliseconds(2'000);
    o.log = [](std::string_view) {};
    return o;
  }

  // Starts a server over `client` (default: the backend) with `auth`.
  void Start(AuthConfig auth = {}, std::optional<ServerOptions> server_options = std::nullopt,
             Client* client = nullptr) {
    ServerOptions options = server_options ? *server_options : Options();
    options.auth_configured = !auth.open();
    ServiceOptions service;
    service.max_frame_bytes = options.max_frame_bytes;
    ASSERT_OK_AND_ASSIGN(ServerInfo info, backend_->Info());
    factory_ = std::make_unique<ServiceFactory>(client != nullptr ? client : backend_.get(),
                                                std::move(auth), info, service);
    auto server = Server::Start(options, factory_.get());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    port_ = server_->endpoint().port;
    // As rosettad does: Stats replies carry the transport's counters.
    factory_->SetTransportCounters([transport = server_.get()] {
      const ServerStats st = transport->stats();
      TransportCounters t;
      t.connections_open = static_cast<int64_t>(st.connections_open);
      t.connections_accepted = static_cast<int64_t>(st.connections_accepted);
      t.connections_refused = static_cast<int64_t>(st.connections_refused);
      t.bytes_received = static_cast<int64_t>(st.bytes_received);
      t.bytes_sent = static_cast<int64_t>(st.bytes_sent);
      return t;
    });
  }

  absl::StatusOr<std::unique_ptr<Client>> Connect(const std::string& token = "",
                                                  RemoteClientOptions options = {}) {
    return ConnectRemoteClient("127.0.0.1", port_, token, options);
  }

  TempDir tmp_;
  std::unique_ptr<Client> backend_;
  std::unique_ptr<ServiceFactory> factory_;
  std::unique_ptr<Server> server_;
  uint16_t port_ = 0;
};

TEST_F(RemoteClientTest, EveryOperationEqualsTheEmbeddedClient) {
  Start();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> remote, Connect());
  auto c = OpenEmbeddedClient((tmp_.path() / "embedded").string(), {});
  ASSERT_TRUE(c.ok()) << c.status();
  const std::vector<std::string> want = testing::ScriptTranscript(**c);
  const std::vector<std::string> got = testing::ScriptTranscript(*remote);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(got[i], want[i]) << "script step " << i;

  ASSERT_OK_AND_ASSIGN(ServerInfo info, remote->Info());
  ASSERT_OK_AND_ASSIGN(ServerInfo embedded_info, backend_->Info());
  EXPECT_EQ(info.mode, "server");
  EXPECT_EQ(info.version, kRosettaVersion);
  EXPECT_EQ(info.kernel_backend, embedded_info.kernel_backend);
  EXPECT_EQ(info.data_dir, embedded_info.data_dir);  // open server: admin.
}

// The search device through the server: a backend opened with device cpu is reported as "cpu"
// in the HelloReply (Info), Describe and Stats, with zero device counters, and the remote
// answers equal the backend's own.
TEST_F(RemoteClientTest, DeviceFieldsTravelThroughTheServer) {
  engine::DatabaseOptions options;
  options.device = engine::DeviceKind::kCpu;
  auto cpu = OpenEmbeddedClient((tmp_.path() / "cpu").string(), options);
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  backend_ = std::move(*cpu);
  Start();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> remote, Connect());
  ASSERT_OK(remote->CreateCollection(testing::SampleSchema()));
  ASSERT_OK_AND_ASSIGN(ServerInfo info, remote->Info());
  EXPECT_EQ(info.device, "cpu");
  ASSERT_OK_AND_ASSIGN(CollectionInfo described, remote->Describe("photos"));
  EXPECT_EQ(described.device, "cpu");
  EXPECT_EQ(described.device_rows, 0);
  EXPECT_EQ(described.device_bytes, 0);
  ASSERT_OK_AND_ASSIGN(CollectionInfo direct, backend_->Describe("photos"));
  EXPECT_EQ(testing::Canon(described), testing::Canon(direct));
  ASSERT_OK_AND_ASSIGN(DatabaseStats stats, remote->Stats());
  EXPECT_EQ(stats.device, "cpu");
  EXPECT_EQ(testing::Canon(stats.device_stats), testing::Canon(DeviceStats{}));
}

// Indexes through the server: BuildIndex seals 1500 vectors of an ivf_pq field into a segment
// and builds its index, IndexProgress follows it to the end, describe lists the segment, and a
// search answers through the index with a plan; every answer equals the engine's own.
TEST_F(RemoteClientTest, BuildIndexProgressAndSearchWithPlan) {
  Start();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> remote, Connect());
  const uint64_t seed = rosetta::testing::TestSeed(11);
  SCOPED_TRACE(rosetta::testing::SeedTrace(seed));
  CollectionSchema schema;
  schema.name = "idx";
  schema.spaces["s"] = Space{"s", 16, Metric::kL2, ""};
  schema.fields["image"] = Field{"image", "s", "image", 1.0f, {}};
  schema.fields["image"].index = IndexSpec{IndexType::kIvfPq, 8, 4, 8};
  ASSERT_OK(remote->CreateCollection(schema));
  const size_t rows = 1500, dim = 16;
  const std::vector<float> data = rosetta::testing::ClusteredVectors(rows, dim, 12, seed);
  ImportRequest imp;
  imp.collection = "idx";
  imp.field = "image";
  imp.data = data;
  imp.rows = rows;
  imp.dim = dim;
  imp.id_prefix = "v";
  ASSERT_OK(remote->Import(imp).status());

  // Before the build: no sealed segment, every row growing.
  ASSERT_OK_AND_ASSIGN(IndexBuildProgress before, remote->IndexProgress("idx"));
  EXPECT_EQ(testing::Canon(before), testing::Canon(IndexBuildProgress{0, 0, 0, 0, 1500}));
  // The call returns at once with the new segment queued.
  ASSERT_OK_AND_ASSIGN(IndexBuildProgress started, remote->BuildIndex("idx", "image"));
  EXPECT_EQ(testing::Canon(started), testing::Canon(IndexBuildProgress{1, 0, 1, 0, 0}));
  int polls = 0;
  ASSERT_OK_AND_ASSIGN(IndexBuildProgress done,
                       WaitForIndexes(*remote, "idx", std::chrono::seconds(120),
                                      std::chrono::milliseconds(5),
                                      [&](const IndexBuildProgress&) { ++polls; }));
  EXPECT_GE(polls, 1);
  EXPECT_EQ(testing::Canon(done), testing::Canon(IndexBuildProgress{1, 1, 0, 0, 0}));
  ASSERT_OK_AND_ASSIGN(IndexBuildProgress again, remote->IndexProgress("idx"));
  EXPECT_EQ(testing::Canon(again), testing::Canon(done));
  // Errors travel with the engine's codes.
  EXPECT_STATUS(remote->BuildIndex("idx", "audio"), absl::StatusCode::kNotFound, "audio");
  EXPECT_STATUS(remote->BuildIndex("nope", ""), absl::StatusCode::kNotFound, "nope");
  EXPECT_STATUS(remote->IndexProgress("nope"), absl::StatusCode::kNotFound, "nope");

  // Describe: the ready segment with its index, then the (empty) growing segment.
  ASSERT_OK_AND_ASSIGN(CollectionInfo info, remote->Describe("idx"));
  ASSERT_OK_AND_ASSIGN(CollectionInfo local, backend_->Describe("idx"));
  EXPECT_EQ(testing::Canon(info), testing::Canon(local));
  ASSERT_EQ(info.segment_list.size(), 2u);
  const SegmentInfo& sealed = info.segment_list[0];
  EXPECT_EQ(sealed.state, "ready");
  EXPECT_EQ(sealed.rows, 1500);
  EXPECT_EQ(sealed.live, 1500);
  ASSERT_EQ(sealed.fields.size(), 1u);
  EXPECT_EQ(sealed.fields[0].field, "image");
  EXPECT_EQ(sealed.fields[0].index, "ivf_pq");
  EXPECT_EQ(sealed.fields[0].state, "ready");
  EXPECT_EQ(sealed.fields[0].vectors, 1500);
  EXPECT_EQ(sealed.fields[0].nlist, 8);
  EXPECT_EQ(sealed.fields[0].m, 4);
  EXPECT_EQ(sealed.fields[0].nbits, 8);
  EXPECT_GT(sealed.fields[0].bytes_per_vector, 0.0);
  EXPECT_EQ(info.segment_list[1].state, "growing");
  EXPECT_EQ(info.segment_list[1].rows, 0);

  // A search through the index: the query is stored vector v17, which comes first.
  SearchRequest q;
  q.k = 5;
  QueryInput in;
  in.vector.assign(data.begin() + 17 * dim, data.begin() + 18 * dim);
  in.space = "s";
  in.modality = "image";
  q.inputs.push_back(in);
  q.nprobe = 3;
  q.refine = 50;
  ASSERT_OK_AND_ASSIGN(std::vector<SearchResponse> got, remote->Search("idx", {q}));
  ASSERT_EQ(got.size(), 1u);
  const SearchResponse& r = got[0];
  ASSERT_FALSE(r.results.empty());
  EXPECT_EQ(r.results[0].id, "v17");
  EXPECT_FALSE(r.exact);
  ASSERT_EQ(r.plan.size(), 1u);
  EXPECT_EQ(r.plan[0].field, "image");
  EXPECT_EQ(r.plan[0].index, "ivf_pq");
  EXPECT_EQ(r.plan[0].nprobe, 3);
  EXPECT_EQ(r.plan[0].indexed_segments, 1);
  EXPECT_EQ(r.plan[0].scanned_rows, 0);
  EXPECT_GE(r.plan[0].candidates, 5);
  EXPECT_LE(r.plan[0].candidates, 50);
  ASSERT_OK_AND_ASSIGN(std::vector<SearchResponse> want, backend_->Search("idx", {q}));
  SearchResponse a = r, b = want.at(0);
  a.took_us = b.took_us = 0;
  // The engine's exact self-match scores -||q - v||^2 = 0 with either sign of zero from one call
  // to the next; the codec carries whichever it got bit for bit, so compare zeros as zeros.
  for (SearchResponse* x : {&a, &b}) {
    for (Hit& h : x->results) {
      for (auto& [f, e] : h.fields) {
        if (e.raw == 0.0f) e.raw = 0.0f;
      }
    }
  }
  EXPECT_EQ(testing::Canon(a), testing::Canon(b));
  // Exhaustively: the same best hit, no plan.
  q.exact = true;
  ASSERT_OK_AND_ASSIGN(got, remote->Search("idx", {q}));
  EXPECT_TRUE(got.at(0).exact);
  EXPECT_TRUE(got.at(0).plan.empty());
  EXPECT_EQ(got.at(0).results.at(0).id, "v17");

  // Stats through the server: the engine's operations, the service's requests and the
  // transport's counters.
  ASSERT_OK_AND_ASSIGN(DatabaseStats stats, remote->Stats());
  EXPECT_EQ(stats.collections, 1);
  EXPECT_EQ(stats.records, 1500);
  ASSERT_EQ(stats.operations.size(), 6u);
  EXPECT_EQ(stats.operations[0].operation, "search");
  EXPECT_EQ(stats.operations[0].count, 3);  // two remote searches and the backend's own.
  std::map<std::string, LatencyStats> requests;
  for (const LatencyStats& l : stats.requests) requests[l.operation] = l;
  EXPECT_EQ(requests["request.hello"].count, 1);
  EXPECT_EQ(requests["request.build_index"].count, 3);
  EXPECT_EQ(requests["request.build_index"].errors, 2);
  EXPECT_EQ(requests["request.index_progress"].errors, 1);
  EXPECT_GE(requests["request.index_progress"].count, 3);
  EXPECT_EQ(requests["request.search"].count, 2);
  EXPECT_EQ(requests["request.search"].errors, 0);
  EXPECT_EQ(requests["request.import"].count, 1);
  EXPECT_EQ(requests.count("request.stats"), 0u) << "this Stats request is not finished yet";
  EXPECT_EQ(stats.connections_open, 1);
  EXPECT_EQ(stats.connections_accepted, 1);
  EXPECT_EQ(stats.connections_refused, 0);
  EXPECT_GT(stats.bytes_received, static_cast<int64_t>(rows * dim * 4));  // the import.
  EXPECT_GT(stats.bytes_sent, 0);
}

TEST_F(RemoteClientTest, LargeImportAndVectorsTravelExactly) {
  Start();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> remote, Connect());
  CollectionSchema schema;
  schema.name = "big";
  schema.spaces["s"] = Space{"s", 256, Metric::kIp, ""};
  schema.fields["f"] = Field{"f", "s", "image", 1.0f, {}};
  ASSERT_OK(remote->CreateCollection(schema));
  const size_t rows = 4096, dim = 256;  // a 4 MiB frame.
  std::vector<float> data = rosetta::testing::RandomVectors(rows, dim, 5);
  ImportRequest imp;
  imp.collection = "big";
  imp.field = "f";
  imp.data = data;
  imp.rows = rows;
  imp.dim = dim;
  imp.id_prefix = "r";
  ASSERT_OK_AND_ASSIGN(WriteResult w, remote->Import(imp));
  EXPECT_EQ(w.written, static_cast<int64_t>(rows));
  EXPECT_EQ(w.created, static_cast<int64_t>(rows));
  ASSERT_OK_AND_ASSIGN(GetResult g, remote->Get("big", {"r0", "r4095"}, true));
  ASSERT_EQ(g.records.size(), 2u);
  EXPECT_EQ(g.records[0].vectors.at("f"), std::vector<float>(data.begin(), data.begin() + dim));
  EXPECT_EQ(g.records[1].vectors.at("f"), std::vector<float>(data.end() - dim, data.end()));
}

TEST_F(RemoteClientTest, ConcurrentCallsOnOneClientAndManyClients) {
  Start();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> shared, Connect());
  ASSERT_OK(shared->CreateCollection(testing::SampleSchema()));
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      std::unique_ptr<Client> own;
      if (t % 2 == 1) {
        auto c = Connect();
        if (!c.ok()) {
          ++failures;
          return;
        }
        own = std::move(*c);
      }
      Client& c = own ? *own : *shared;
      for (int i = 0; i < 20; ++i) {
        Record r;
        r.id = absl::StrCat("t", t, "-", i);
        r.vectors["image"] = {1.0f + t, 2, 3, 4};
        if (!c.Upsert("photos", {r}).ok()) ++failures;
        SearchRequest q;
        QueryInput in;
        in.vector = {1, 0, 0, 0};
        in.space = "clip";
        q.inputs.push_back(in);
        if (!c.Search("photos", {q}).ok()) ++failures;
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  ASSERT_OK_AND_ASSIGN(CollectionInfo info, shared->Describe("photos"));
  EXPECT_EQ(info.records, 8 * 20);
}

TEST_F(RemoteClientTest, TokensAndRoles) {
  AuthConfig auth;
  ASSERT_OK(auth.Add(Role::kRead, kReadToken));
  ASSERT_OK(auth.Add(Role::kAdmin, kAdminToken));
  Start(std::move(auth));
  EXPECT_EQ(Connect("").status(), absl::UnauthenticatedError("this server requires a token"));
  EXPECT_EQ(Connect("nope").status(), absl::UnauthenticatedError("invalid token"));
  EXPECT_EQ(Connect(std::string(kAdminToken).substr(0, 8)).status(),
            absl::UnauthenticatedError("invalid token"));
  EXPECT_STATUS(Connect(std::string(kMaxTokenBytes + 1, 't')), absl::StatusCode::kInvalidArgument,
                "token of 1025 bytes; at most 1024");

  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> admin, Connect(kAdminToken));
  ASSERT_OK(admin->CreateCollection(testing::SampleSchema()));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> reader, Connect(kReadToken));
  ASSERT_OK_AND_ASSIGN(ServerInfo info, reader->Info());
  EXPECT_EQ(info.data_dir, "");  // only admins see the server's directory.
  ASSERT_OK_AND_ASSIGN(auto names, reader->ListCollections());
  EXPECT_EQ(names, std::vector<std::string>{"photos"});
  // Denied the same way for an existing and a missing collection; the connection stays usable.
  const absl::Status denied =
      absl::PermissionDeniedError("token role \"read\" may not upsert (requires write)");
  EXPECT_EQ(reader->Upsert("photos", testing::SampleRecords()).status(), denied);
  EXPECT_EQ(reader->Upsert("ghost", testing::SampleRecords()).status(), denied);
  EXPECT_EQ(reader->DropCollection("photos"),
            absl::PermissionDeniedError(
                "token role \"read\" may not drop-collection (requires admin)"));
  ASSERT_OK_AND_ASSIGN(CollectionInfo described, reader->Describe("photos"));
  EXPECT_EQ(described.records, 0);
}

TEST_F(RemoteClientTest, ConnectionRefused) {
  Start();
  const uint16_t port = port_;
  server_->Stop();
  server_.reset();
  absl::StatusOr<std::unique_ptr<Client>> c = ConnectRemoteClient("127.0.0.1", port, "");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnavailable) << c.status();
  EXPECT_THAT(std::string(c.status().message()),
              HasSubstr(absl::StrCat("cannot connect to 127.0.0.1:", port, ": ")));
  EXPECT_STATUS(ConnectRemoteClient("", port, ""), absl::StatusCode::kInvalidArgument,
                "server address: empty host");
}

TEST_F(RemoteClientTest, TooManyConnectionsIsTheServersError) {
  ServerOptions o = Options();
  o.max_connections = 1;
  Start({}, o);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> first, Connect());
  absl::StatusOr<std::unique_ptr<Client>> second = Connect();
  EXPECT_EQ(second.status().code(), absl::StatusCode::kResourceExhausted) << second.status();
  EXPECT_THAT(std::string(second.status().message()), HasSubstr("too many connections"));
  EXPECT_OK(first->ListCollections());
}

TEST_F(RemoteClientTest, RequestsOverTheServersLimitAreRefusedBeforeSending) {
  ServerOptions o = Options();
  o.max_frame_bytes = 64 << 10;
  Start({}, o);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> remote, Connect());
  ASSERT_OK(remote->CreateCollection(testing::SampleSchema()));
  std::vector<Record> records(100);
  for (size_t i = 0; i < records.size(); ++i) {
    records[i].id = absl::StrCat("r", i);
    records[i].attributes["lang"] = std::string(1000, 'x');
  }
  EXPECT_STATUS(remote->Upsert("photos", records), absl::StatusCode::kResourceExhausted,
                "exceeds the maximum frame size of 65536 bytes");
  EXPECT_OK(remote->ListCollections());  // nothing was sent: the connection is fine.
}

TEST_F(RemoteClientTest, ACallTimeoutClosesTheConnection) {
  SlowDescribeClient slow(backend_.get(), milliseconds(2'000));
  Start({}, Options(), &slow);
  RemoteClientOptions options;
  options.timeout = milliseconds(200);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> remote, Connect("", options));
  ASSERT_OK(remote->CreateCollection(testing::SampleSchema()));
  EXPECT_STATUS(remote->Describe("photos"), absl::StatusCode::kDeadlineExceeded,
                absl::StrCat("no reply from 127.0.0.1:", port_, " within 200 ms"));
  // The late reply could not be matched any more: the connection is closed for good.
  EXPECT_STATUS(remote->ListCollections(), absl::StatusCode::kUnavailable,
                absl::StrCat("the connection to 127.0.0.1:", port_,
                             " is closed (after: DEADLINE_EXCEEDED: no reply"));
  // A fresh client is served.
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> fresh, Connect());
  EXPECT_OK(fresh->ListCollections());
  // Stop (waiting for the slow call) before `slow` goes out of scope.
  server_->Stop();
  server_.reset();
}

TEST_F(RemoteClientTest, AStoppedServerIsReported) {
  Start();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> remote, Connect());
  EXPECT_OK(remote->ListCollections());
  server_->Stop();
  server_.reset();
  absl::StatusOr<std::vector<std::string>> r = remote->ListCollections();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_THAT(std::string(r.status().message()),
              AnyOf(HasSubstr("the server closed the connection (127.0.0.1:"),
                    HasSubstr("connection to 127.0.0.1:")));
  r = remote->ListCollections();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("is closed (after: UNAVAILABLE"));
}

}  // namespace
}  // namespace rosetta::net
