// The protocol service (net/service.h) driven with frame bytes, no sockets: the session state
// machine (Hello first, version, tokens), which errors keep or close the connection, and that
// every operation through the service (and the protocol client) equals the embedded client.
#include "net/service.h"

#include <cstdlib>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "net/embedded_client.h"
#include "net/protocol.h"
#include "net/remote_client.h"
#include "tests/net/protocol_testing.h"
#include "tests/testing/testing.h"

namespace rosetta::net {
namespace {

using testing::Canon;
using testing::SessionTransport;
using ::rosetta::testing::TempDir;
using ::testing::HasSubstr;

// The decoded reply of one frame, with the session's close decision.
struct Answer {
  Frame frame;
  bool closed = false;
};

Answer Send(Session& session, const std::string& body) {
  Reply reply = session.OnFrame(body);
  absl::StatusOr<Frame> frame = DecodeFrame(reply.body);
  EXPECT_TRUE(frame.ok()) << frame.status();
  Answer a;
  if (frame.ok()) a.frame = std::move(*frame);
  a.closed = reply.close_after;
  return a;
}

Answer Send(Session& session, uint64_t id, const Message& m) {
  absl::StatusOr<std::string> body = EncodeFrame(id, m);
  EXPECT_TRUE(body.ok()) << body.status();
  return Send(session, body.ok() ? *body : std::string());
}

absl::Status ErrorOf(const Answer& a) {
  const auto* e = std::get_if<msg::Error>(&a.frame.message);
  if (e == nullptr) return absl::OkStatus();
  return e->ToStatus();
}

class ServiceSessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = OpenEmbeddedClient((tmp_.path() / "server").string(), {});
    ASSERT_TRUE(c.ok()) << c.status();
    backend_ = std::move(*c);
    ASSERT_OK_AND_ASSIGN(ServerInfo info, backend_->Info());
    info_ = info;
  }
  void MakeFactory(AuthConfig auth = {}, ServiceOptions options = {}) {
    factory_ = std::make_unique<ServiceFactory>(backend_.get(), std::move(auth), info_, options);
  }
  std::unique_ptr<Session> HelloedSession(const std::string& token = "") {
    std::unique_ptr<Session> s = factory_->NewSession("127.0.0.1:5555");
    Answer a = Send(*s, 1, msg::Hello{kProtocolVersion, token, "test"});
    EXPECT_TRUE(std::holds_alternative<msg::HelloReply>(a.frame.message)) << ErrorOf(a);
    EXPECT_FALSE(a.closed);
    EXPECT_TRUE(s->hello_done());
    return s;
  }

  TempDir tmp_;
  std::unique_ptr<Client> backend_;
  ServerInfo info_;
  std::unique_ptr<ServiceFactory> factory_;
};

TEST_F(ServiceSessionTest, HelloReplyDescribesTheServer) {
  ASSERT_OK(backend_->CreateCollection(testing::SampleSchema()));
  ServiceOptions options;
  options.max_frame_bytes = 1 << 20;
  MakeFactory({}, options);
  std::unique_ptr<Session> s = factory_->NewSession("peer");
  EXPECT_FALSE(s->hello_done());
  Answer a = Send(*s, 77, msg::Hello{kProtocolVersion, "", "test-client 1"});
  ASSERT_TRUE(std::holds_alternative<msg::HelloReply>(a.frame.message)) << ErrorOf(a);
  EXPECT_EQ(a.frame.request_id, 77u);
  EXPECT_FALSE(a.closed);
  const auto& reply = std::get<msg::HelloReply>(a.frame.message);
  EXPECT_EQ(reply.server_version, kRosettaVersion);
  EXPECT_EQ(reply.protocol_version, kProtocolVersion);
  EXPECT_EQ(reply.kernel_backend, info_.kernel_backend);
  EXPECT_EQ(reply.data_dir, info_.data_dir);  // open server: every session is admin.
  EXPECT_EQ(reply.role, Role::kAdmin);
  EXPECT_EQ(reply.collections, 1u);
  EXPECT_EQ(reply.max_frame_bytes, 1u << 20);
  EXPECT_TRUE(s->hello_done());
}

TEST_F(ServiceSessionTest, OnlyHelloBeforeHello) {
  MakeFactory();
  const std::vector<float> data(12, 0.5f);
  for (const Message& m : testing::AllSampleMessages(data)) {
    if (std::holds_alternative<msg::Hello>(m)) continue;
    SCOPED_TRACE(MessageName(m));
    std::unique_ptr<Session> s = factory_->NewSession("peer");
    Answer a = Send(*s, 5, m);
    EXPECT_TRUE(a.closed);
    EXPECT_EQ(a.frame.request_id, 5u);
    EXPECT_EQ(ErrorOf(a), absl::FailedPreconditionError(absl::StrCat(
                              "expected Hello as the first message, got ", MessageName(m))));
    EXPECT_FALSE(s->hello_done());
  }
  // Nothing was done: no collection was created or dropped.
  ASSERT_OK_AND_ASSIGN(auto names, backend_->ListCollections());
  EXPECT_TRUE(names.empty());
}

TEST_F(ServiceSessionTest, DecodeErrorsBeforeHelloClose) {
  MakeFactory();
  std::unique_ptr<Session> s = factory_->NewSession("peer");
  Answer a = Send(*s, std::string("not a frame at all, just text"));
  EXPECT_TRUE(a.closed);
  EXPECT_EQ(ErrorOf(a).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(ErrorOf(a).message()), HasSubstr("malformed frame: "));
  // A semantic decode error also closes before Hello (the client has not identified itself).
  s = factory_->NewSession("peer");
  a = Send(*s, 3, msg::Hello{kProtocolVersion, std::string(kMaxTokenBytes + 1, 'x'), ""});
  EXPECT_TRUE(a.closed);
  EXPECT_EQ(ErrorOf(a), absl::InvalidArgumentError("Hello.token: 1025 bytes; at most 1024"));
  EXPECT_EQ(a.frame.request_id, 3u);
}

TEST_F(ServiceSessionTest, ProtocolVersionMismatchNamesBothVersions) {
  MakeFactory();
  for (uint32_t version : {0u, 2u, 0xffffffffu}) {
    std::unique_ptr<Session> s = factory_->NewSession("peer");
    Answer a = Send(*s, 9, msg::Hello{version, "", ""});
    EXPECT_TRUE(a.closed);
    EXPECT_EQ(ErrorOf(a), absl::FailedPreconditionError(absl::StrCat(
                              "protocol version mismatch: the client speaks version ", version,
                              ", this server speaks version 1")));
    EXPECT_FALSE(s->hello_done());
  }
}

TEST_F(ServiceSessionTest, ErrorsAfterHelloKeepOrCloseTheConnection) {
  MakeFactory();
  std::unique_ptr<Session> s = HelloedSession();
  // Engine errors: answered, kept, code and message exactly the embedded client's.
  Answer a = Send(*s, 10, msg::Describe{"nope"});
  EXPECT_FALSE(a.closed);
  EXPECT_EQ(a.frame.request_id, 10u);
  EXPECT_EQ(ErrorOf(a), backend_->Describe("nope").status());
  // A second Hello: kept.
  a = Send(*s, 11, msg::Hello{});
  EXPECT_FALSE(a.closed);
  EXPECT_EQ(ErrorOf(a),
            absl::FailedPreconditionError("Hello was already completed on this connection"));
  // A reply sent as a request: kept.
  a = Send(*s, 12, msg::Ok{});
  EXPECT_FALSE(a.closed);
  EXPECT_EQ(ErrorOf(a), absl::InvalidArgumentError("Ok is a reply, not a request"));
  a = Send(*s, 13, WriteResult{});
  EXPECT_EQ(ErrorOf(a), absl::InvalidArgumentError("WriteResult is a reply, not a request"));
  // A semantic decode error (an Import whose data does not match its shape): kept.
  std::vector<float> data(5, 1.0f);
  msg::Import imp;
  imp.request.collection = "c";
  imp.request.field = "f";
  imp.request.data = data;
  imp.request.rows = 2;
  imp.request.dim = 2;
  a = Send(*s, 14, Message(std::move(imp)));
  EXPECT_FALSE(a.closed);
  EXPECT_EQ(ErrorOf(a),
            absl::InvalidArgumentError("import: 5 floats given for 2 rows of 2 components"));
  // Still serving.
  a = Send(*s, 15, msg::ListCollections{});
  EXPECT_TRUE(std::holds_alternative<msg::CollectionList>(a.frame.message));
  EXPECT_FALSE(a.closed);
  // A malformed frame: answered (request id unknown: 0), then closed.
  std::string body = *EncodeFrame(16, msg::ListCollections{});
  body[4] = 'X';
  a = Send(*s, body);
  EXPECT_TRUE(a.closed);
  EXPECT_EQ(a.frame.request_id, 0u);
  EXPECT_EQ(ErrorOf(a).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(ErrorOf(a).message()), HasSubstr("malformed frame: wrong file identifier"));
  // A malformed frame whose request id is readable (decode budget): the id is echoed.
  DecodeOptions tiny;
  tiny.max_decoded_bytes = 64;
  ServiceOptions options;
  options.decode = tiny;
  MakeFactory({}, options);
  s = factory_->NewSession("peer");
  a = Send(*s, 21, msg::Hello{kProtocolVersion, std::string(100, 't'), ""});
  EXPECT_TRUE(a.closed);
  EXPECT_EQ(a.frame.request_id, 21u);
  EXPECT_THAT(std::string(ErrorOf(a).message()), HasSubstr("decoding exceeds the budget of 64"));
}

TEST_F(ServiceSessionTest, RepliesOverTheFrameLimitAreRefusedAndTheSessionGoesOn) {
  ServiceOptions options;
  options.max_frame_bytes = 4096;
  MakeFactory({}, options);
  std::unique_ptr<Session> s = HelloedSession();
  ASSERT_EQ(ErrorOf(Send(*s, 2, msg::CreateCollection{testing::SampleSchema()})),
            absl::OkStatus());
  std::vector<Record> records;
  for (int i = 0; i < 200; ++i) {
    Record r;
    r.id = absl::StrCat("record-", i);
    r.vectors["image"] = {1, 2, 3, 4};
    records.push_back(r);
  }
  ASSERT_OK(backend_->Upsert("photos", records));
  std::vector<std::string> ids;
  for (const Record& r : records) ids.push_back(r.id);
  Answer a = Send(*s, 3, msg::Get{"photos", ids, true});
  EXPECT_FALSE(a.closed);
  const absl::Status error = ErrorOf(a);
  EXPECT_EQ(error.code(), absl::StatusCode::kResourceExhausted) << error;
  EXPECT_THAT(std::string(error.message()), HasSubstr("reply too large: GetResult frame of "));
  EXPECT_THAT(std::string(error.message()),
              HasSubstr("exceeds the maximum frame size of 4096 bytes"));
  a = Send(*s, 4, msg::Get{"photos", {"record-1"}, true});
  EXPECT_TRUE(std::holds_alternative<GetResult>(a.frame.message)) << ErrorOf(a);
}

// A Client whose calls throw: a bug the session must contain.
class ThrowingClient final : public Client {
 public:
  absl::StatusOr<ServerInfo> Info() override { return ServerInfo{}; }
  absl::Status CreateCollection(const CollectionSchema&) override { throw std::bad_alloc(); }
  absl::StatusOr<std::vector<std::string>> ListCollections() override {
    return std::vector<std::string>{};
  }
  absl::StatusOr<CollectionInfo> Describe(const std::string&) override {
    throw std::runtime_error("boom");
  }
  absl::Status DropCollection(const std::string&) override { return absl::OkStatus(); }
  absl::StatusOr<WriteResult> Upsert(const std::string&, std::vector<Record>) override {
    throw 42;
  }
  absl::StatusOr<WriteResult> Import(const ImportRequest&) override { return WriteResult{}; }
  absl::StatusOr<GetResult> Get(const std::string&, const std::vector<std::string>&,
                                bool) override {
    return GetResult{};
  }
  absl::StatusOr<WriteResult> Delete(const std::string&,
                                     const std::vector<std::string>&) override {
    return WriteResult{};
  }
  absl::StatusOr<std::vector<SearchResponse>> Search(const std::string&,
                                                     std::vector<SearchRequest>) override {
    return std::vector<SearchResponse>{};
  }
  absl::StatusOr<IndexBuildProgress> BuildIndex(const std::string&, const std::string&) override {
    throw std::runtime_error("build");
  }
  absl::StatusOr<IndexBuildProgress> IndexProgress(const std::string&) override {
    return IndexBuildProgress{};
  }
  absl::StatusOr<DatabaseStats> Stats() override { throw std::bad_alloc(); }
};

TEST_F(ServiceSessionTest, ExceptionsAreContained) {
  ThrowingClient thrower;
  ServiceFactory factory(&thrower, {}, ServerInfo{}, {});
  struct Case {
    Message request;
    absl::Status want;
  };
  std::vector<Case> cases;
  cases.push_back({msg::Describe{"x"}, absl::InternalError("internal error: boom")});
  cases.push_back({msg::CreateCollection{testing::SampleSchema()},
                   absl::ResourceExhaustedError("out of memory while handling the request")});
  cases.push_back({msg::Upsert{"x", {}}, absl::InternalError("internal error: unknown exception")});
  cases.push_back({msg::BuildIndex{"x", ""}, absl::InternalError("internal error: build")});
  cases.push_back({msg::Stats{},
                   absl::ResourceExhaustedError("out of memory while handling the request")});
  for (const Case& c : cases) {
    std::unique_ptr<Session> s = factory.NewSession("peer");
    Send(*s, 1, msg::Hello{});
    Answer a = Send(*s, 2, c.request);
    EXPECT_TRUE(a.closed);
    EXPECT_EQ(ErrorOf(a), c.want);
    // After close_after the session refuses anything further, without throwing.
    a = Send(*s, 3, msg::ListCollections{});
    EXPECT_TRUE(a.closed);
    EXPECT_EQ(ErrorOf(a).code(), absl::StatusCode::kFailedPrecondition);
  }
}

TEST_F(ServiceSessionTest, TransportErrorFramesCarryRequestIdZero) {
  MakeFactory();
  absl::StatusOr<Frame> frame = DecodeFrame(
      factory_->ErrorFrame(absl::ResourceExhaustedError("too many connections (limit 3)")));
  ASSERT_TRUE(frame.ok()) << frame.status();
  EXPECT_EQ(frame->request_id, 0u);
  EXPECT_EQ(std::get<msg::Error>(frame->message).ToStatus(),
            absl::ResourceExhaustedError("too many connections (limit 3)"));
}

// ---------------------------------------------------------------------------------------------
// Everything through the service equals the embedded client
// ---------------------------------------------------------------------------------------------

TEST_F(ServiceSessionTest, EveryOperationEqualsTheEmbeddedClient) {
  MakeFactory();
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<Client> remote,
      NewProtocolClient(std::make_unique<SessionTransport>(factory_->NewSession("peer")), ""));
  auto c = OpenEmbeddedClient((tmp_.path() / "embedded").string(), {});
  ASSERT_TRUE(c.ok()) << c.status();
  std::unique_ptr<Client> embedded = std::move(*c);

  const std::vector<std::string> want = testing::ScriptTranscript(*embedded);
  const std::vector<std::string> got = testing::ScriptTranscript(*remote);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i], want[i]) << "script step " << i;
    if (std::getenv("ROSETTA_PRINT_TRANSCRIPT") != nullptr) std::cout << got[i] << "\n";
  }
  // The script really covers successes and failures.
  int errors = 0;
  for (const std::string& line : want) errors += line.rfind("error: ", 0) == 0 ? 1 : 0;
  EXPECT_GE(errors, 12);
  EXPECT_LE(errors, static_cast<int>(want.size()) - 12);

  ASSERT_OK_AND_ASSIGN(ServerInfo info, remote->Info());
  EXPECT_EQ(info.mode, "server");
  EXPECT_EQ(info.version, kRosettaVersion);
  EXPECT_EQ(info.kernel_backend, info_.kernel_backend);
  EXPECT_EQ(info.data_dir, info_.data_dir);
}

TEST_F(ServiceSessionTest, ProtocolClientChecksBeforeSending) {
  ServiceOptions options;
  options.max_frame_bytes = 64 << 10;
  MakeFactory({}, options);
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<Client> remote,
      NewProtocolClient(std::make_unique<SessionTransport>(factory_->NewSession("peer")), ""));
  ASSERT_OK(remote->CreateCollection(testing::SampleSchema()));
  // Over the limit the server announced: refused locally, the connection stays usable.
  std::vector<Record> records(100);
  for (size_t i = 0; i < records.size(); ++i) {
    records[i].id = absl::StrCat("r", i);
    records[i].vectors["image"] = std::vector<float>(4, 1.0f);
    records[i].attributes["lang"] = std::string(1000, 'x');
  }
  absl::StatusOr<WriteResult> r = remote->Upsert("photos", records);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr("exceeds the maximum frame size of 65536 bytes"));
  records.resize(10);
  ASSERT_OK_AND_ASSIGN(WriteResult w, remote->Upsert("photos", records));
  EXPECT_EQ(w.written, 10);
  // The batch limits of the Client contract, with the embedded client's messages.
  EXPECT_EQ(remote->Upsert("photos", std::vector<Record>(65537)).status(),
            absl::InvalidArgumentError(
                "upsert: 65537 records in one call; at most 65536 per atomic batch"));
  ImportRequest imp;
  imp.collection = "photos";
  imp.field = "image";
  imp.rows = 2;
  imp.dim = 4;
  EXPECT_EQ(remote->Import(imp).status(),
            absl::InvalidArgumentError("import: 0 floats given for 2 rows of 4 components"));
}

TEST_F(ServiceSessionTest, ProtocolClientReportsAClosedConnection) {
  MakeFactory();
  // A transport that answers one malformed reply: the client reports it and then the
  // connection is closed for good.
  class GarbageTransport final : public FrameTransport {
   public:
    explicit GarbageTransport(std::unique_ptr<Session> s) : inner_(std::move(s)) {}
    absl::StatusOr<std::string> RoundTrip(std::string_view request, size_t max) override {
      if (++calls_ == 2) return std::string("garbage, not a frame");
      return inner_.RoundTrip(request, max);
    }
    std::string name() const override { return "garbage"; }

   private:
    SessionTransport inner_;
    int calls_ = 0;
  };
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<Client> remote,
      NewProtocolClient(std::make_unique<GarbageTransport>(factory_->NewSession("peer")), ""));
  absl::StatusOr<std::vector<std::string>> r = remote->ListCollections();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr("malformed reply from garbage: malformed frame: "));
  r = remote->ListCollections();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr("the connection to garbage is closed (after: INTERNAL: malformed reply"));
}

// ---------------------------------------------------------------------------------------------
// Stats: the engine's telemetry plus the service's per-request latencies and the transport's
// counters
// ---------------------------------------------------------------------------------------------

TEST_F(ServiceSessionTest, StatsCarryRequestLatenciesAndTransportCounters) {
  AuthConfig auth;
  ASSERT_OK(auth.Add(Role::kRead, "reader-token"));
  ASSERT_OK(auth.Add(Role::kAdmin, "admin-token"));
  MakeFactory(std::move(auth));
  std::unique_ptr<Session> admin = HelloedSession("admin-token");
  std::unique_ptr<Session> reader = HelloedSession("reader-token");
  ASSERT_EQ(ErrorOf(Send(*admin, 2, msg::CreateCollection{testing::SampleSchema()})),
            absl::OkStatus());
  ASSERT_EQ(ErrorOf(Send(*admin, 3, msg::Upsert{"photos", testing::SampleRecords()})),
            absl::OkStatus());
  // Denied (permission) and failed (unknown collection) requests count as errors of their type.
  EXPECT_EQ(ErrorOf(Send(*reader, 4, msg::BuildIndex{"photos", ""})).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(ErrorOf(Send(*admin, 5, msg::Describe{"ghost"})).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ErrorOf(Send(*reader, 6, msg::Describe{"photos"})), absl::OkStatus());
  // Not a request: no request type, not counted.
  EXPECT_EQ(ErrorOf(Send(*reader, 7, msg::Ok{})).code(), absl::StatusCode::kInvalidArgument);

  // Without a transport: the counters are zero.
  Answer a = Send(*reader, 8, msg::Stats{});
  ASSERT_TRUE(std::holds_alternative<DatabaseStats>(a.frame.message)) << ErrorOf(a);
  DatabaseStats stats = std::get<DatabaseStats>(a.frame.message);
  EXPECT_EQ(stats.collections, 1);
  EXPECT_EQ(stats.records, 3);
  ASSERT_EQ(stats.operations.size(), 6u);  // the engine's, in its fixed order.
  EXPECT_EQ(stats.operations[2].operation, "upsert");
  EXPECT_EQ(stats.operations[2].count, 1);
  EXPECT_GE(stats.commit_groups, 1);
  EXPECT_EQ(stats.connections_open, 0);
  EXPECT_EQ(stats.bytes_received, 0);
  std::vector<std::string> names;
  for (const LatencyStats& l : stats.requests) {
    names.push_back(absl::StrCat(l.operation, " ", l.count, "/", l.errors));
    EXPECT_GE(l.max_us, l.p50_us) << l.operation;
    EXPECT_GT(l.max_us, 0) << l.operation;
  }
  // Fixed order (Hello, then the operations as in net/auth.h); only types seen so far.
  EXPECT_EQ(names, (std::vector<std::string>{"request.hello 2/0", "request.describe 2/1",
                                             "request.upsert 1/0",
                                             "request.create_collection 1/0",
                                             "request.build_index 1/1"}));

  // With a transport source, its counters; cleared, zero again.
  factory_->SetTransportCounters([] { return TransportCounters{2, 5, 1, 1000, 2000}; });
  a = Send(*reader, 9, msg::Stats{});
  stats = std::get<DatabaseStats>(a.frame.message);
  EXPECT_EQ(stats.connections_open, 2);
  EXPECT_EQ(stats.connections_accepted, 5);
  EXPECT_EQ(stats.connections_refused, 1);
  EXPECT_EQ(stats.bytes_received, 1000);
  EXPECT_EQ(stats.bytes_sent, 2000);
  ASSERT_FALSE(stats.requests.empty());
  EXPECT_EQ(stats.requests.back().operation, "request.stats");
  EXPECT_EQ(stats.requests.back().count, 1);  // the previous Stats.
  factory_->SetTransportCounters(nullptr);
  a = Send(*reader, 10, msg::Stats{});
  EXPECT_EQ(std::get<DatabaseStats>(a.frame.message).bytes_sent, 0);
  EXPECT_EQ(factory_->RequestLatencies().back().count, 3);

  // A failed Hello is a Hello answered with an error.
  std::unique_ptr<Session> stranger = factory_->NewSession("peer");
  EXPECT_EQ(ErrorOf(Send(*stranger, 1, msg::Hello{kProtocolVersion, "wrong", ""})).code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(factory_->RequestLatencies().front().operation, "request.hello");
  EXPECT_EQ(factory_->RequestLatencies().front().count, 3);
  EXPECT_EQ(factory_->RequestLatencies().front().errors, 1);
}

}  // namespace
}  // namespace rosetta::net
