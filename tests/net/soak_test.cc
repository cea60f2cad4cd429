// The real protocol service (net/service.h) behind the real transport (net/server.h) over
// loopback sockets, under load and under attack:
//
//   - Soak: 32 connections (one remote client per thread) mix searches, upserts and gets for a
//     bounded time (ROSETTA_SOAK_SECONDS, default 3) with zero errors; every search checks
//     read-your-writes (the thread's last acknowledged vector is its own top hit under exact L2),
//     every get checks that an acknowledged version is visible; at the end every acknowledged
//     upsert is visible, bit for bit, and the collection holds exactly the records written.
//   - Malformed-input corpus: hostile or invalid bytes sent on raw sockets, each case asserting the
//     exact error (code, message, request id), whether the connection was kept or closed, that a
//     fresh client is still served afterwards, and that nothing was written.
//
// The codec (protocol_verify_test, protocol_codec_test), the transport with a toy session
// (server_transport_test) and the service without sockets (service_session_test,
// service_auth_test) are covered elsewhere; the value here is the assembled server: which
// component answers each case, with what, and what happens to the connection.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "net/embedded_client.h"
#include "net/protocol.h"
#include "net/remote_client.h"
#include "net/server.h"
#include "net/service.h"
#include "tests/net/protocol_testing.h"
#include "tests/testing/testing.h"

namespace rosetta::net {
namespace {

using ::rosetta::testing::TempDir;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr char kAdminToken[] = "admin-soak-0123456789";
constexpr char kWriteToken[] = "write-soak-0123456789";
constexpr char kReadToken[] = "read-soak-0123456789";
constexpr uint32_t kMaxFrame = 1u << 20;  // the test server's max_frame_bytes.
constexpr int kDim = 16;                  // space "s" (l2): the searched field "a".
constexpr int kTagDim = 4;                // space "u" (ip): field "b", never searched.

CollectionSchema SoakSchema() {
  CollectionSchema s;
  s.name = "soak";
  s.spaces["s"] = Space{"s", kDim, Metric::kL2, ""};
  s.spaces["u"] = Space{"u", kTagDim, Metric::kIp, ""};
  s.fields["a"] = Field{"a", "s", "image", 1.0f, {}};
  s.fields["b"] = Field{"b", "u", "text", 1.0f, {}};
  s.attributes["owner"] = AttributeType::kInt;
  s.attributes["version"] = AttributeType::kInt;
  return s;
}

// Exactly representable components in [-4, 4) (l2 and ip store vectors as given).
std::vector<float> RandomVector(std::mt19937_64& rng, int dim) {
  std::uniform_int_distribution<int> q(-4096, 4095);
  std::vector<float> v(dim);
  for (float& x : v) x = static_cast<float>(q(rng)) / 1024.0f;
  return v;
}

Record MakeRecord(const std::string& id, int owner, int version, std::vector<float> a,
                  std::vector<float> b) {
  Record r;
  r.id = id;
  r.vectors["a"] = std::move(a);
  r.vectors["b"] = std::move(b);
  r.attributes["owner"] = int64_t{owner};
  r.attributes["version"] = int64_t{version};
  return r;
}

SearchRequest QueryFor(const std::vector<float>& v, int k) {
  SearchRequest q;
  q.k = k;
  QueryInput in;
  in.vector = v;
  in.space = "s";
  q.inputs.push_back(std::move(in));
  return q;
}

// ---------------------------------------------------------------------------------------------
// A blocking raw-socket client with timeouts (no test can hang on it).

class RawConnection {
 public:
  static std::unique_ptr<RawConnection> Open(uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return nullptr;
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      ::close(fd);
      return nullptr;
    }
    return std::unique_ptr<RawConnection>(new RawConnection(fd));
  }
  ~RawConnection() { ::close(fd_); }

  bool Send(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  bool SendFrame(std::string_view body) { return Send(WithLengthPrefix(body)); }
  bool SendPrefix(uint32_t length) {
    unsigned char h[kFrameHeaderBytes];
    EncodeFrameLength(length, h);
    return Send(std::string_view(reinterpret_cast<const char*>(h), sizeof(h)));
  }
  void ShutdownWrite() { ::shutdown(fd_, SHUT_WR); }

  // The next reply frame's body; nullopt on EOF, reset or timeout.
  std::optional<std::string> ReadFrame() {
    std::string header;
    if (!RecvExactly(kFrameHeaderBytes, &header)) return std::nullopt;
    const uint32_t n = DecodeFrameLength(reinterpret_cast<const unsigned char*>(header.data()));
    if (n > (64u << 20)) return std::nullopt;
    std::string body;
    if (!RecvExactly(n, &body)) return std::nullopt;
    return body;
  }

  // True when the server has closed the connection with nothing more to read (EOF or reset),
  // waiting at most 10 s.
  bool ClosedByServer() {
    char c;
    const ssize_t n = ::recv(fd_, &c, 1, 0);
    return n == 0 || (n < 0 && (errno == ECONNRESET || errno == EPIPE));
  }

 private:
  explicit RawConnection(int fd) : fd_(fd) {}
  bool RecvExactly(size_t n, std::string* out) {
    out->resize(n);
    size_t got = 0;
    while (got < n) {
      const ssize_t r = ::recv(fd_, out->data() + got, n - got, 0);
      if (r <= 0) return false;
      got += static_cast<size_t>(r);
    }
    return true;
  }
  const int fd_;
};

std::string Encode(uint64_t id, const Message& m) {
  absl::StatusOr<std::string> body = EncodeFrame(id, m);
  EXPECT_TRUE(body.ok()) << body.status();
  return body.ok() ? *body : std::string();
}

std::string RandomBytes(std::mt19937_64& rng, size_t n) {
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng() & 0xFF);
  return s;
}

// ---------------------------------------------------------------------------------------------

class SoakServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = OpenEmbeddedClient((tmp_.path() / "db").string(), {});  // sync always (default).
    ASSERT_TRUE(c.ok()) << c.status();
    backend_ = std::move(*c);
  }
  void TearDown() override {
    if (server_) server_->Stop();
    if (HasFailure()) {
      std::lock_guard<std::mutex> lock(log_mu_);
      std::cerr << "server log:\n" << absl::StrJoin(log_, "\n") << "\n";
    }
  }

  // The rosettad configuration (net/server.h defaults: one I/O thread here, workers = hardware
  // concurrency), with a 1 MiB frame limit and a short linger to keep the corpus fast.
  void Start(AuthConfig auth) {
    ServerOptions o;
    o.host = "127.0.0.1";
    o.port = 0;
    o.max_frame_bytes = kMaxFrame;
    o.close_linger = milliseconds(200);
    o.stop_grace = milliseconds(5'000);
    o.auth_configured = !auth.open();
    o.log = [this](std::string_view line) {
      std::lock_guard<std::mutex> lock(log_mu_);
      if (log_.size() < 200) log_.emplace_back(line);
    };
    ServiceOptions service;
    service.max_frame_bytes = kMaxFrame;
    ASSERT_OK_AND_ASSIGN(ServerInfo info, backend_->Info());
    info.mode = "server";
    factory_ = std::make_unique<ServiceFactory>(backend_.get(), std::move(auth), info, service);
    auto server = Server::Start(o, factory_.get());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    port_ = server_->endpoint().port;
  }

  absl::StatusOr<std::unique_ptr<Client>> Connect(const std::string& token) {
    RemoteClientOptions o;
    o.connect_timeout = milliseconds(10'000);
    o.timeout = milliseconds(60'000);
    return ConnectRemoteClient("127.0.0.1", port_, token, o);
  }

  TempDir tmp_;
  std::unique_ptr<Client> backend_;
  std::unique_ptr<ServiceFactory> factory_;
  std::unique_ptr<Server> server_;
  uint16_t port_ = 0;
  std::mutex log_mu_;
  std::vector<std::string> log_;
};

// ---------------------------------------------------------------------------------------------
// Soak

int SoakMillis() {
  const char* s = std::getenv("ROSETTA_SOAK_SECONDS");
  if (s != nullptr && std::atof(s) > 0) return static_cast<int>(std::atof(s) * 1000);
  return 3'000;
}

// What one connection's thread wrote and had acknowledged.
struct Written {
  int version = 0;
  std::vector<float> a, b;
};

TEST_F(SoakServerTest, ThirtyTwoConnectionsMixSearchUpsertAndGetWithoutErrors) {
  constexpr int kConnections = 32;
  constexpr int kPreload = 2000;
  const uint64_t seed = rosetta::testing::TestSeed(4242);
  SCOPED_TRACE(rosetta::testing::SeedTrace(seed));
  Start({});
  ASSERT_OK(backend_->CreateCollection(SoakSchema()));
  {
    std::mt19937_64 rng(seed);
    std::vector<Record> preload;
    for (int i = 0; i < kPreload; ++i) {
      preload.push_back(MakeRecord(absl::StrCat("pre-", i), -1, 0, RandomVector(rng, kDim),
                                   RandomVector(rng, kTagDim)));
    }
    ASSERT_OK(backend_->Upsert("soak", std::move(preload)));
  }

  std::vector<std::map<std::string, Written>> written(kConnections);
  std::mutex errors_mu;
  std::vector<std::string> errors;
  std::atomic<int64_t> searches{0}, upserts{0}, records_upserted{0}, gets{0};
  std::atomic<int> connected{0};
  const auto deadline_after = milliseconds(SoakMillis());
  std::atomic<bool> go{false};

  auto worker = [&](int t) {
    auto fail = [&](std::string what) {
      std::lock_guard<std::mutex> lock(errors_mu);
      if (errors.size() < 50) errors.push_back(absl::StrCat("connection ", t, ": ", what));
    };
    absl::StatusOr<std::unique_ptr<Client>> c = Connect("");
    if (!c.ok()) return fail(absl::StrCat("connect: ", c.status().ToString()));
    ++connected;
    while (!go.load()) std::this_thread::yield();
    const auto deadline = Clock::now() + deadline_after;
    std::mt19937_64 rng(seed * 1000 + t);
    std::map<std::string, Written>& mine = written[t];
    std::string last_id;
    int next_id = 0;
    while (Clock::now() < deadline) {
      const int op = static_cast<int>(rng() % 10);
      if (op < 5) {  // search: read-your-writes on the last acknowledged vector
        const bool own = !last_id.empty();
        const std::vector<float> v = own ? mine[last_id].a : RandomVector(rng, kDim);
        absl::StatusOr<std::vector<SearchResponse>> r = (*c)->Search("soak", {QueryFor(v, 10)});
        ++searches;
        if (!r.ok()) {
          fail(absl::StrCat("search: ", r.status().ToString()));
          continue;
        }
        if (r->size() != 1 || (*r)[0].results.size() != 10) {
          fail(absl::StrCat("search: ", r->size(), " responses, ",
                            r->empty() ? 0 : (*r)[0].results.size(), " hits"));
        } else if (own && (*r)[0].results[0].id != last_id) {
          fail(absl::StrCat("search: own record \"", last_id, "\" (acknowledged) is not the top "
                            "hit of its own vector; got \"", (*r)[0].results[0].id, "\""));
        }
      } else if (op < 9) {  // upsert 1..4 records: new ones or new versions of mine
        const int n = 1 + static_cast<int>(rng() % 4);
        std::vector<Record> batch;
        std::vector<std::pair<std::string, Written>> pending;
        for (int i = 0; i < n; ++i) {
          std::string id;
          if (!mine.empty() && rng() % 2 == 0) {
            auto it = mine.begin();
            std::advance(it, static_cast<long>(rng() % mine.size()));
            id = it->first;
          } else {
            id = absl::StrCat("c", t, "-", next_id++);
          }
          bool dup = false;
          for (const auto& p : pending) dup = dup || p.first == id;
          if (dup) continue;
          Written w;
          w.version = mine.count(id) ? mine[id].version + 1 : 1;
          w.a = RandomVector(rng, kDim);
          w.b = RandomVector(rng, kTagDim);
          batch.push_back(MakeRecord(id, t, w.version, w.a, w.b));
          pending.emplace_back(id, std::move(w));
        }
        const int64_t size = static_cast<int64_t>(batch.size());
        absl::StatusOr<WriteResult> r = (*c)->Upsert("soak", std::move(batch));
        ++upserts;
        if (!r.ok()) {
          fail(absl::StrCat("upsert: ", r.status().ToString()));
          continue;
        }
        if (r->written != size) fail(absl::StrCat("upsert: written ", r->written, " of ", size));
        records_upserted += size;
        for (auto& [id, w] : pending) {
          mine[id] = std::move(w);
          last_id = id;
        }
      } else {  // get one of mine: the acknowledged version is visible
        if (mine.empty()) continue;
        auto it = mine.begin();
        std::advance(it, static_cast<long>(rng() % mine.size()));
        absl::StatusOr<GetResult> g = (*c)->Get("soak", {it->first}, false);
        ++gets;
        if (!g.ok()) {
          fail(absl::StrCat("get: ", g.status().ToString()));
          continue;
        }
        if (g->records.size() != 1 ||
            g->records[0].attributes["version"] != AttributeValue(int64_t{it->second.version})) {
          fail(absl::StrCat("get: \"", it->first, "\" version ", it->second.version,
                            " (acknowledged) not visible"));
        }
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kConnections; ++t) threads.emplace_back(worker, t);
  // All 32 connections are open at once before the load starts.
  const auto wait_end = Clock::now() + std::chrono::seconds(60);
  while (connected.load() < kConnections && Clock::now() < wait_end) {
    {
      std::lock_guard<std::mutex> lock(errors_mu);
      if (!errors.empty()) break;
    }
    std::this_thread::sleep_for(milliseconds(5));
  }
  EXPECT_EQ(server_->stats().connections_open, static_cast<uint64_t>(kConnections));
  go = true;
  for (std::thread& th : threads) th.join();

  std::cout << "soak: " << kConnections << " connections, " << SoakMillis() << " ms: "
            << searches.load() << " searches, " << upserts.load() << " upserts ("
            << records_upserted.load() << " records), " << gets.load() << " gets, "
            << errors.size() << " errors\n";
  EXPECT_TRUE(errors.empty()) << absl::StrJoin(errors, "\n");
  EXPECT_GT(searches.load(), 0);
  EXPECT_GT(upserts.load(), 0);

  // Final consistency: every acknowledged upsert is visible, bit for bit, through a fresh
  // connection; and the collection holds the preload plus exactly the ids written.
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> checker, Connect(""));
  int64_t ids = 0;
  for (int t = 0; t < kConnections; ++t) {
    std::vector<std::string> want_ids;
    for (const auto& [id, w] : written[t]) want_ids.push_back(id);
    ids += static_cast<int64_t>(want_ids.size());
    if (want_ids.empty()) continue;
    ASSERT_OK_AND_ASSIGN(GetResult g, checker->Get("soak", want_ids, true));
    ASSERT_TRUE(g.not_found.empty()) << "connection " << t << ": acknowledged ids not found: "
                                     << absl::StrJoin(g.not_found, ", ");
    ASSERT_EQ(g.records.size(), want_ids.size());
    for (const Record& r : g.records) {
      const Written& w = written[t].at(r.id);
      EXPECT_EQ(testing::Canon(r), testing::Canon(MakeRecord(r.id, t, w.version, w.a, w.b)))
          << "connection " << t << " record " << r.id;
    }
  }
  ASSERT_OK_AND_ASSIGN(CollectionInfo info, checker->Describe("soak"));
  EXPECT_EQ(info.records, kPreload + ids);
  EXPECT_EQ(info.field_vectors.at("a"), kPreload + ids);
}

// ---------------------------------------------------------------------------------------------
// Malformed-input corpus

class CorpusTest : public SoakServerTest {
 protected:
  void SetUp() override {
    SoakServerTest::SetUp();
    AuthConfig auth;
    ASSERT_OK(auth.Add(Role::kAdmin, kAdminToken));
    ASSERT_OK(auth.Add(Role::kWrite, kWriteToken));
    ASSERT_OK(auth.Add(Role::kRead, kReadToken));
    Start(std::move(auth));
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> admin, Connect(kAdminToken));
    ASSERT_OK(admin->CreateCollection(SoakSchema()));
    std::mt19937_64 rng(11);
    std::vector<Record> records;
    for (int i = 0; i < 50; ++i) {
      records.push_back(MakeRecord(absl::StrCat("r", i), 0, 1, RandomVector(rng, kDim),
                                   RandomVector(rng, kTagDim)));
    }
    ASSERT_OK(admin->Upsert("soak", records));
    query_ = records[7].vectors["a"];
    ASSERT_OK_AND_ASSIGN(std::vector<SearchResponse> r,
                         admin->Search("soak", {QueryFor(query_, 5)}));
    ASSERT_EQ(r.size(), 1u);
    baseline_ = r[0];
    baseline_.took_us = 0;
  }

  std::unique_ptr<RawConnection> Raw() {
    std::unique_ptr<RawConnection> c = RawConnection::Open(port_);
    EXPECT_NE(c, nullptr) << "cannot connect to 127.0.0.1:" << port_;
    return c;
  }

  // A raw connection that has completed Hello with `token`.
  std::unique_ptr<RawConnection> Helloed(const std::string& token) {
    std::unique_ptr<RawConnection> c = Raw();
    if (c == nullptr) return nullptr;
    EXPECT_TRUE(c->SendFrame(Encode(1, msg::Hello{kProtocolVersion, token, "corpus"})));
    std::optional<std::string> reply = c->ReadFrame();
    EXPECT_TRUE(reply.has_value()) << "no HelloReply";
    if (!reply) return nullptr;
    absl::StatusOr<Frame> f = DecodeFrame(*reply);
    EXPECT_TRUE(f.ok() && std::holds_alternative<msg::HelloReply>(f->message))
        << (f.ok() ? testing::Canon(f->message) : f.status().ToString());
    return c;
  }

  // Reads one reply and checks it is exactly Error{want} with `request_id`; then that the server
  // closed the connection (`closed`) or still serves it (a ListCollections answered in order).
  void ExpectError(RawConnection& c, const absl::Status& want, uint64_t request_id, bool closed) {
    std::optional<std::string> reply = c.ReadFrame();
    ASSERT_TRUE(reply.has_value()) << "no reply; expected " << want;
    absl::StatusOr<Frame> f = DecodeFrame(*reply);
    ASSERT_TRUE(f.ok()) << "undecodable reply: " << f.status();
    const auto* e = std::get_if<msg::Error>(&f->message);
    ASSERT_NE(e, nullptr) << "expected an error, got " << testing::Canon(f->message);
    EXPECT_EQ(e->ToStatus(), want);
    EXPECT_EQ(f->request_id, request_id);
    if (closed) {
      EXPECT_TRUE(c.ClosedByServer()) << "the server kept the connection after " << want;
    } else {
      ExpectServed(c, 777);
    }
  }

  // Like ExpectError, for messages that depend on random bytes: the code and a prefix.
  void ExpectErrorPrefix(RawConnection& c, absl::StatusCode code, const std::string& prefix,
                         uint64_t request_id, bool closed) {
    std::optional<std::string> reply = c.ReadFrame();
    ASSERT_TRUE(reply.has_value()) << "no reply; expected " << prefix;
    absl::StatusOr<Frame> f = DecodeFrame(*reply);
    ASSERT_TRUE(f.ok()) << "undecodable reply: " << f.status();
    const auto* e = std::get_if<msg::Error>(&f->message);
    ASSERT_NE(e, nullptr) << "expected an error, got " << testing::Canon(f->message);
    EXPECT_EQ(e->code, code) << e->ToStatus();
    EXPECT_THAT(e->message, StartsWith(prefix));
    EXPECT_EQ(f->request_id, request_id);
    if (closed) {
      EXPECT_TRUE(c.ClosedByServer()) << "the server kept the connection";
    }
  }

  // `c` still answers a request (in order, with its id).
  void ExpectServed(RawConnection& c, uint64_t id) {
    ASSERT_TRUE(c.SendFrame(Encode(id, msg::ListCollections{})));
    std::optional<std::string> reply = c.ReadFrame();
    ASSERT_TRUE(reply.has_value()) << "the connection was closed";
    absl::StatusOr<Frame> f = DecodeFrame(*reply);
    ASSERT_TRUE(f.ok()) << f.status();
    EXPECT_EQ(f->request_id, id);
    EXPECT_EQ(testing::Canon(f->message),
              testing::Canon(Message(msg::CollectionList{{"soak"}})));
  }

  // A fresh client is served (searches and gets the same results as before), and nothing was
  // written by the hostile case.
  void ExpectFreshClientServedAndNothingWritten() {
    absl::StatusOr<std::unique_ptr<Client>> c = Connect(kReadToken);
    ASSERT_TRUE(c.ok()) << "a fresh client is not served: " << c.status();
    ASSERT_OK_AND_ASSIGN(std::vector<SearchResponse> r,
                         (*c)->Search("soak", {QueryFor(query_, 5)}));
    ASSERT_EQ(r.size(), 1u);
    r[0].took_us = 0;
    EXPECT_EQ(testing::Canon(r[0]), testing::Canon(baseline_));
    ASSERT_OK_AND_ASSIGN(CollectionInfo info, (*c)->Describe("soak"));
    EXPECT_EQ(info.records, 50);
    ASSERT_OK_AND_ASSIGN(GetResult g, (*c)->Get("soak", {"x", "y", "z", "r0"}, false));
    EXPECT_EQ(g.not_found, (std::vector<std::string>{"x", "y", "z"}));
  }

  std::vector<float> query_;
  SearchResponse baseline_;
};

Record ValidRecord(const std::string& id) {
  std::vector<float> a(kDim, 0.5f), b(kTagDim, 0.25f);
  return MakeRecord(id, 9, 1, a, b);
}

TEST_F(CorpusTest, LengthPrefixZero) {
  {
    SCOPED_TRACE("before Hello");
    auto c = Raw();
    ASSERT_TRUE(c->SendPrefix(0));
    ExpectError(*c, absl::InvalidArgumentError("malformed frame: body of 0 bytes is too short for a frame"), 0,
                true);
  }
  ExpectFreshClientServedAndNothingWritten();
  {
    SCOPED_TRACE("after Hello");
    auto c = Helloed(kAdminToken);
    ASSERT_TRUE(c->SendPrefix(0));
    ExpectError(*c, absl::InvalidArgumentError("malformed frame: body of 0 bytes is too short for a frame"), 0,
                true);
  }
  ExpectFreshClientServedAndNothingWritten();
}

TEST_F(CorpusTest, OneToThreeBytesOfAPrefixThenClose) {
  for (int n = 1; n <= 3; ++n) {
    for (bool hello : {false, true}) {
      SCOPED_TRACE(absl::StrCat(n, " bytes, hello=", hello));
      auto c = hello ? Helloed(kAdminToken) : Raw();
      ASSERT_NE(c, nullptr);
      ASSERT_TRUE(c->Send(std::string(static_cast<size_t>(n), '\x10')));
      c->ShutdownWrite();
      // No frame arrived, so there is nothing to answer: the server just closes.
      EXPECT_TRUE(c->ClosedByServer());
    }
  }
  ExpectFreshClientServedAndNothingWritten();
}

TEST_F(CorpusTest, LengthsOverTheLimits) {
  struct Case {
    bool hello;
    uint32_t length;
    std::string message;
  };
  const std::vector<Case> cases = {
      {false, 0xFFFFFFFFu, "frame of 4294967295 bytes exceeds the limit 4096 before Hello"},
      {false, 4097, "frame of 4097 bytes exceeds the limit 4096 before Hello"},
      {true, 0xFFFFFFFFu, "frame of 4294967295 bytes exceeds the limit 1048576"},
      {true, kMaxFrame + 1, "frame of 1048577 bytes exceeds the limit 1048576"},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(absl::StrCat("length ", k.length, " hello=", k.hello));
    auto c = k.hello ? Helloed(kAdminToken) : Raw();
    ASSERT_NE(c, nullptr);
    ASSERT_TRUE(c->SendPrefix(k.length));
    // Refused on the prefix alone, before any body byte is sent (nothing is allocated).
    ExpectError(*c, absl::InvalidArgumentError(k.message), 0, true);
    ExpectFreshClientServedAndNothingWritten();
  }
}

TEST_F(CorpusTest, FramesOfExactlyTheLimitsAreRead) {
  std::mt19937_64 rng(rosetta::testing::TestSeed(77));
  {
    SCOPED_TRACE("4096 bytes before Hello");
    auto c = Raw();
    std::string body = RandomBytes(rng, 4096);
    body.replace(4, 4, "RSTA");
    ASSERT_TRUE(c->SendFrame(body));
    ExpectErrorPrefix(*c, absl::StatusCode::kInvalidArgument,
                      "malformed frame: flatbuffers verification failed", 0, true);
  }
  ExpectFreshClientServedAndNothingWritten();
  {
    SCOPED_TRACE("1 MiB after Hello");
    auto c = Helloed(kAdminToken);
    std::string body = RandomBytes(rng, kMaxFrame);
    body.replace(4, 4, "RSTA");
    ASSERT_TRUE(c->SendFrame(body));
    ExpectErrorPrefix(*c, absl::StatusCode::kInvalidArgument,
                      "malformed frame: flatbuffers verification failed", 0, true);
  }
  ExpectFreshClientServedAndNothingWritten();
}

TEST_F(CorpusTest, RandomBytes) {
  const uint64_t seed = rosetta::testing::TestSeed(2026);
  SCOPED_TRACE(rosetta::testing::SeedTrace(seed));
  std::mt19937_64 rng(seed);
  for (int i = 0; i < 12; ++i) {
    const bool hello = i % 2 == 1;
    const bool identifier = i % 4 >= 2;  // with "RSTA" in place, the verifier must reject it
    std::string body = RandomBytes(rng, 16 + rng() % 2000);
    if (identifier) body.replace(4, 4, "RSTA");
    SCOPED_TRACE(absl::StrCat("case ", i, ": ", body.size(), " bytes, hello=", hello,
                              " identifier=", identifier));
    auto c = hello ? Helloed(kAdminToken) : Raw();
    ASSERT_NE(c, nullptr);
    ASSERT_TRUE(c->SendFrame(body));
    ExpectErrorPrefix(*c, absl::StatusCode::kInvalidArgument,
                      identifier ? "malformed frame: flatbuffers verification failed"
                                 : "malformed frame: wrong file identifier \"",
                      0, true);
  }
  ExpectFreshClientServedAndNothingWritten();
}

TEST_F(CorpusTest, WrongFileIdentifier) {
  for (bool hello : {false, true}) {
    SCOPED_TRACE(absl::StrCat("hello=", hello));
    auto c = hello ? Helloed(kAdminToken) : Raw();
    ASSERT_NE(c, nullptr);
    std::string body = hello ? Encode(5, msg::Upsert{"soak", {ValidRecord("w1")}})
                             : Encode(5, msg::Hello{kProtocolVersion, kAdminToken, "x"});
    body.replace(4, 4, "RSTB");
    ASSERT_TRUE(c->SendFrame(body));
    ExpectError(*c,
                absl::InvalidArgumentError(
                    "malformed frame: wrong file identifier \"RSTB\" (expected \"RSTA\")"),
                0, true);
  }
  ExpectFreshClientServedAndNothingWritten();
}

TEST_F(CorpusTest, RequestsBeforeHello) {
  std::vector<std::pair<Message, std::string>> cases;  // (Message is move-only)
  cases.emplace_back(msg::Upsert{"soak", {ValidRecord("b1")}}, "Upsert");
  cases.emplace_back(msg::DropCollection{"soak"}, "DropCollection");
  cases.emplace_back(msg::Search{"soak", {QueryFor(std::vector<float>(kDim, 1.0f), 3)}}, "Search");
  for (const auto& [m, name] : cases) {
    SCOPED_TRACE(name);
    auto c = Raw();
    ASSERT_TRUE(c->SendFrame(Encode(41, m)));
    ExpectError(*c,
                absl::FailedPreconditionError(
                    absl::StrCat("expected Hello as the first message, got ", name)),
                41, true);
  }
  ExpectFreshClientServedAndNothingWritten();
}

TEST_F(CorpusTest, BadHellos) {
  struct Case {
    msg::Hello hello;
    absl::Status want;
  };
  const std::string admin = kAdminToken;
  const std::vector<Case> cases = {
      {{kProtocolVersion, "", "c"}, absl::UnauthenticatedError("this server requires a token")},
      {{kProtocolVersion, "wrong-token", "c"}, absl::UnauthenticatedError("invalid token")},
      {{kProtocolVersion, admin.substr(0, admin.size() - 1), "c"},
       absl::UnauthenticatedError("invalid token")},
      {{kProtocolVersion, admin + "x", "c"}, absl::UnauthenticatedError("invalid token")},
      {{2, admin, "c"},
       absl::FailedPreconditionError(
           "protocol version mismatch: the client speaks version 2, this server speaks version 1")},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.want.ToString());
    auto c = Raw();
    ASSERT_TRUE(c->SendFrame(Encode(3, k.hello)));
    ExpectError(*c, k.want, 3, true);
  }
  ExpectFreshClientServedAndNothingWritten();
}

TEST_F(CorpusTest, RolesAreEnforcedAndTheConnectionKept) {
  {
    auto c = Helloed(kReadToken);
    ASSERT_TRUE(c->SendFrame(Encode(6, msg::Upsert{"soak", {ValidRecord("ro1")}})));
    ExpectError(*c,
                absl::PermissionDeniedError("token role \"read\" may not upsert (requires write)"),
                6, false);
    ASSERT_TRUE(c->SendFrame(Encode(7, msg::Delete{"soak", {"r1"}})));
    ExpectError(*c,
                absl::PermissionDeniedError("token role \"read\" may not delete (requires write)"),
                7, false);
    // The same answer for a collection that does not exist.
    ASSERT_TRUE(c->SendFrame(Encode(8, msg::Upsert{"ghost", {ValidRecord("ro1")}})));
    ExpectError(*c,
                absl::PermissionDeniedError("token role \"read\" may not upsert (requires write)"),
                8, false);
  }
  {
    auto c = Helloed(kWriteToken);
    ASSERT_TRUE(c->SendFrame(Encode(9, msg::DropCollection{"soak"})));
    ExpectError(*c,
                absl::PermissionDeniedError(
                    "token role \"write\" may not drop-collection (requires admin)"),
                9, false);
  }
  ExpectFreshClientServedAndNothingWritten();
}

TEST_F(CorpusTest, InvalidRequestsAreAnsweredAndTheConnectionKept) {
  auto c = Helloed(kWriteToken);
  ASSERT_NE(c, nullptr);
  struct Case {
    std::string name;
    Message request;
    absl::Status want;
  };
  std::vector<Case> cases;
  // (A call with one query reports its error as is; in a batch, the error names the query.)
  cases.push_back({"k = 0", msg::Search{"soak", {QueryFor(query_, 0)}},
                   absl::InvalidArgumentError("query: k must be in 1..10000, got 0")});
  cases.push_back({"k huge", msg::Search{"soak", {QueryFor(query_, 5), QueryFor(query_, 1 << 30)}},
                   absl::InvalidArgumentError(
                       "query 1: query: k must be in 1..10000, got 1073741824")});
  {
    std::vector<float> nan = query_;
    nan[3] = std::numeric_limits<float>::quiet_NaN();
    cases.push_back({"NaN query", msg::Search{"soak", {QueryFor(nan, 5)}},
                     absl::InvalidArgumentError("query: inputs[0].vector: component 3 is NaN")});
    Record r = ValidRecord("n1");
    r.vectors["a"][5] = std::numeric_limits<float>::quiet_NaN();
    cases.push_back({"NaN vector", msg::Upsert{"soak", {ValidRecord("n0"), r}},
                     absl::InvalidArgumentError(
                         "record 1 (id \"n1\"): field \"a\": component 5 is NaN")});
  }
  {
    Record r = ValidRecord("d1");
    r.vectors["a"].pop_back();
    cases.push_back({"wrong dim (record)", msg::Upsert{"soak", {r}},
                     absl::InvalidArgumentError(
                         "record 0 (id \"d1\"): field \"a\": expected 16 components (space \"s\"), "
                         "got 15")});
    std::vector<float> q(kDim + 1, 0.5f);
    cases.push_back({"wrong dim (query)", msg::Search{"soak", {QueryFor(q, 5)}},
                     absl::InvalidArgumentError(
                         "query: inputs[0].vector: expected 16 components (space \"s\"), got 17")});
  }
  cases.push_back({"duplicate ids",
                   msg::Upsert{"soak", {ValidRecord("u1"), ValidRecord("u2"), ValidRecord("u1")}},
                   absl::InvalidArgumentError("record 2 (id \"u1\"): duplicate id (also record 0)")});
  cases.push_back({"unknown collection", msg::Upsert{"ghost", {ValidRecord("g1")}},
                   absl::NotFoundError("collection \"ghost\" not found")});
  for (const Case& k : cases) {
    SCOPED_TRACE(k.name);
    ASSERT_TRUE(c->SendFrame(Encode(100, k.request)));
    ExpectError(*c, k.want, 100, false);
  }
  // A message type from a newer protocol (union value 24): answered, kept.
  ASSERT_TRUE(c->SendFrame(testing::RawFrame(
      101, static_cast<wire::Message>(24), [](flatbuffers::FlatBufferBuilder& fbb) {
        wire::OkBuilder b(fbb);
        return b.Finish().Union();
      })));
  ExpectError(*c,
              absl::InvalidArgumentError(
                  "unknown message type 24 (this peer speaks protocol version 1)"),
              101, false);
  // Empty batches are valid and write nothing.
  ASSERT_TRUE(c->SendFrame(Encode(102, msg::Upsert{"soak", {}})));
  std::optional<std::string> reply = c->ReadFrame();
  ASSERT_TRUE(reply.has_value());
  ASSERT_OK_AND_ASSIGN(Frame f, DecodeFrame(*reply));
  EXPECT_EQ(f.request_id, 102u);
  EXPECT_EQ(testing::Canon(f.message), testing::Canon(Message(WriteResult{0, 0, 0})));
  ASSERT_TRUE(c->SendFrame(Encode(103, msg::Search{"soak", {}})));
  reply = c->ReadFrame();
  ASSERT_TRUE(reply.has_value());
  ASSERT_OK_AND_ASSIGN(f, DecodeFrame(*reply));
  EXPECT_EQ(f.request_id, 103u);
  EXPECT_EQ(testing::Canon(f.message), testing::Canon(Message(msg::SearchResults{})));
  ExpectFreshClientServedAndNothingWritten();
}

TEST_F(CorpusTest, PipelinedRequestsAreAnsweredInOrder) {
  auto c = Raw();
  // Hello and four requests in one write; one of them fails, the rest are served.
  std::string bytes = WithLengthPrefix(Encode(1, msg::Hello{kProtocolVersion, kReadToken, "p"}));
  bytes += WithLengthPrefix(Encode(2, msg::ListCollections{}));
  bytes += WithLengthPrefix(Encode(3, msg::Search{"soak", {QueryFor(query_, 5)}}));
  bytes += WithLengthPrefix(Encode(4, msg::Describe{"ghost"}));
  bytes += WithLengthPrefix(Encode(5, msg::Get{"soak", {"r7"}, false}));
  ASSERT_TRUE(c->Send(bytes));
  std::vector<std::string> kinds;
  for (uint64_t id = 1; id <= 5; ++id) {
    std::optional<std::string> reply = c->ReadFrame();
    ASSERT_TRUE(reply.has_value()) << "reply " << id;
    ASSERT_OK_AND_ASSIGN(Frame f, DecodeFrame(*reply));
    EXPECT_EQ(f.request_id, id);
    kinds.push_back(MessageName(f.message));
    if (id == 3) {
      auto& results = std::get<msg::SearchResults>(f.message);
      ASSERT_EQ(results.responses.size(), 1u);
      results.responses[0].took_us = 0;
      EXPECT_EQ(testing::Canon(results.responses[0]), testing::Canon(baseline_));
    }
    if (id == 4) {
      EXPECT_EQ(std::get<msg::Error>(f.message).ToStatus(),
                absl::NotFoundError("collection \"ghost\" not found"));
    }
  }
  EXPECT_EQ(kinds, (std::vector<std::string>{"HelloReply", "CollectionList", "SearchResults",
                                             "Error", "GetResult"}));
  ExpectServed(*c, 6);
  ExpectFreshClientServedAndNothingWritten();
}

}  // namespace
}  // namespace rosetta::net
