// Loopback tests of the server transport (net/server.h) over real sockets on 127.0.0.1, with a
// small test SessionFactory of our own so that the framing, limits, deadlines, backpressure and
// stop are tested independently of the wire protocol.
//
// The test session answers:
//   ""            -> "empty"
//   "block..."    -> waits until the test opens the gate, then "unblocked:<size>"
//   "close..."    -> "bye" and asks the transport to close
//   "throw..."    -> throws (the transport must contain it)
//   anything else -> "echo:" + body
// hello_done() becomes true after the first frame. Error frames built by the transport read
// "error:<CODE>:<message>".
//
// Every wait in this file is bounded (socket receive timeouts, WaitFor with a limit); nothing
// asserts on elapsed time. After each hostile case, a fresh client must still be served.
#include "net/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "tests/testing/testing.h"

namespace rosetta::net {
namespace {

using std::chrono::milliseconds;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// ---------------------------------------------------------------------------------------------
// Test session and factory

class TestFactory;

class TestSession : public Session {
 public:
  explicit TestSession(TestFactory* factory) : factory_(factory) {}
  Reply OnFrame(std::string_view body) override;
  bool hello_done() const override { return hello_done_; }

 private:
  TestFactory* factory_;
  bool hello_done_ = false;
};

class TestFactory : public SessionFactory {
 public:
  std::unique_ptr<Session> NewSession(const std::string& peer) override {
    sessions_.fetch_add(1);
    return std::make_unique<TestSession>(this);
  }
  std::string ErrorFrame(const absl::Status& status) override {
    return "error:" + absl::StatusCodeToString(status.code()) + ":" + std::string(status.message());
  }

  // "block" frames wait here until OpenGate() (or 30 s, so a broken test cannot hang forever).
  void Block() {
    std::unique_lock<std::mutex> lock(mu_);
    blocked_.fetch_add(1);
    cv_.wait_for(lock, std::chrono::seconds(30), [this] { return open_; });
    blocked_.fetch_sub(1);
  }
  void OpenGate() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      open_ = true;
    }
    cv_.notify_all();
  }
  int blocked() const { return blocked_.load(); }
  int sessions() const { return sessions_.load(); }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
  std::atomic<int> blocked_{0};
  std::atomic<int> sessions_{0};
};

Reply TestSession::OnFrame(std::string_view body) {
  hello_done_ = true;
  if (body.empty()) return Reply{"empty", false};
  if (body.substr(0, 5) == "block") {
    factory_->Block();
    return Reply{"unblocked:" + std::to_string(body.size()), false};
  }
  if (body.substr(0, 5) == "close") return Reply{"bye", true};
  if (body.substr(0, 5) == "throw") throw std::runtime_error("test session throws");
  return Reply{"echo:" + std::string(body), false};
}

// ---------------------------------------------------------------------------------------------
// A blocking POSIX client with receive/send timeouts, so that no test can hang.

std::string LengthPrefix(uint32_t n) {
  std::string h(4, '\0');
  h[0] = static_cast<char>(n & 0xFF);
  h[1] = static_cast<char>((n >> 8) & 0xFF);
  h[2] = static_cast<char>((n >> 16) & 0xFF);
  h[3] = static_cast<char>((n >> 24) & 0xFF);
  return h;
}

std::string Framed(std::string_view body) {
  return LengthPrefix(static_cast<uint32_t>(body.size())) + std::string(body);
}

class TestClient {
 public:
  // Connects to 127.0.0.1:port; nullptr when the connection is refused.
  static std::unique_ptr<TestClient> Connect(uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return nullptr;
    timeval tv{10, 0};  // every blocking call gives up after 10 s.
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
    return std::unique_ptr<TestClient>(new TestClient(fd));
  }

  ~TestClient() {
    if (fd_ >= 0) ::close(fd_);
  }

  bool SendRaw(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  bool SendFrame(std::string_view body) { return SendRaw(Framed(body)); }

  // One reply frame, or nullopt on EOF, error or timeout.
  std::optional<std::string> ReadFrame() {
    std::string header;
    if (!RecvExactly(4, &header)) return std::nullopt;
    const uint32_t n = uint32_t{static_cast<unsigned char>(header[0])} |
                       (uint32_t{static_cast<unsigned char>(header[1])} << 8) |
                       (uint32_t{static_cast<unsigned char>(header[2])} << 16) |
                       (uint32_t{static_cast<unsigned char>(header[3])} << 24);
    if (n > (64u << 20)) return std::nullopt;
    std::string body;
    if (!RecvExactly(n, &body)) return std::nullopt;
    return body;
  }

  // True when the server has closed the connection (EOF or reset) with no further data.
  bool ReadsEof() {
    char c;
    ssize_t n = ::recv(fd_, &c, 1, 0);
    return n == 0 || (n < 0 && (errno == ECONNRESET || errno == EPIPE));
  }

  // True when at least one byte is ready to read (or EOF), without waiting.
  bool Readable() {
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, 0) > 0;
  }

  // Waits up to `ms` for readability.
  bool WaitReadable(int ms) {
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, ms) > 0;
  }

  void ShutdownWrite() { ::shutdown(fd_, SHUT_WR); }

  // Closes with a TCP reset (SO_LINGER 0).
  void Reset() {
    linger l{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    ::close(fd_);
    fd_ = -1;
  }

  void SetSendTimeout(int seconds) {
    timeval tv{seconds, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  }

 private:
  explicit TestClient(int fd) : fd_(fd) {}

  bool RecvExactly(size_t n, std::string* out) {
    out->resize(n);
    size_t got = 0;
    while (got < n) {
      ssize_t r = ::recv(fd_, out->data() + got, n - got, 0);
      if (r <= 0) return false;
      got += static_cast<size_t>(r);
    }
    return true;
  }

  int fd_;
};

// Polls `pred` every few milliseconds for at most `limit`.
bool WaitFor(const std::function<bool()>& pred, milliseconds limit = milliseconds(10'000)) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(milliseconds(2));
  }
  return pred();
}

// ---------------------------------------------------------------------------------------------

class ServerTest : public ::testing::Test {
 protected:
  // Options for a test server: loopback, free port, small limits, log kept in memory.
  ServerOptions TestOptions() {
    ServerOptions o;
    o.host = "127.0.0.1";
    o.port = 0;
    o.io_threads = 1;
    o.worker_threads = 2;
    o.max_frame_bytes = 1u << 20;
    o.max_prehello_frame_bytes = 4096;
    o.close_linger = milliseconds(500);
    o.stop_grace = milliseconds(5'000);
    o.log = [this](std::string_view line) {
      std::lock_guard<std::mutex> lock(log_mu_);
      log_.emplace_back(line);
    };
    return o;
  }

  void StartServer(const ServerOptions& options) {
    auto server = Server::Start(options, &factory_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(server).value();
    port_ = server_->endpoint().port;
    ASSERT_NE(port_, 0);
  }

  std::unique_ptr<TestClient> Connect() {
    auto c = TestClient::Connect(port_);
    EXPECT_NE(c, nullptr) << "cannot connect to 127.0.0.1:" << port_;
    return c;
  }

  // The server still answers a new client.
  void ExpectFreshClientServed() {
    auto c = Connect();
    ASSERT_NE(c, nullptr);
    ASSERT_TRUE(c->SendFrame("ping"));
    EXPECT_EQ(c->ReadFrame(), std::optional<std::string>("echo:ping"));
  }

  std::string Log() {
    std::lock_guard<std::mutex> lock(log_mu_);
    std::string all;
    for (const auto& l : log_) all += l + "\n";
    return all;
  }

  void TearDown() override {
    factory_.OpenGate();  // never leave a worker blocked.
    if (server_) server_->Stop();
    if (HasFailure()) std::cerr << "server log:\n" << Log();
  }

  TestFactory factory_;
  std::unique_ptr<Server> server_;
  uint16_t port_ = 0;
  std::mutex log_mu_;
  std::vector<std::string> log_;
};

// ---------------------------------------------------------------------------------------------
// Framing

TEST_F(ServerTest, FrameRoundTrip) {
  StartServer(TestOptions());
  auto c = Connect();
  ASSERT_NE(c, nullptr);
  for (const std::string& body : std::vector<std::string>{"a", "hello", std::string(3000, 'x')}) {
    ASSERT_TRUE(c->SendFrame(body));
    EXPECT_EQ(c->ReadFrame(), std::optional<std::string>("echo:" + body));
  }
  EXPECT_TRUE(WaitFor([&] { return server_->stats().frames_served == 3; }));
  EXPECT_EQ(server_->stats().connections_accepted, 1u);
}

TEST_F(ServerTest, PipelinedFramesAreAnsweredInOrder) {
  StartServer(TestOptions());
  auto c = Connect();
  ASSERT_NE(c, nullptr);
  std::string all;
  for (int i = 0; i < 200; ++i) all += Framed("frame " + std::to_string(i));
  ASSERT_TRUE(c->SendRaw(all));  // one write: many frames per TCP segment.
  for (int i = 0; i < 200; ++i) {
    ASSERT_EQ(c->ReadFrame(), std::optional<std::string>("echo:frame " + std::to_string(i)));
  }
}

TEST_F(ServerTest, LengthZeroIsPassedToTheSession) {
  StartServer(TestOptions());
  auto c = Connect();
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->SendRaw(LengthPrefix(0)));
  EXPECT_EQ(c->ReadFrame(), std::optional<std::string>("empty"));
  ASSERT_TRUE(c->SendFrame("after"));  // the connection stays usable.
  EXPECT_EQ(c->ReadFrame(), std::optional<std::string>("echo:after"));
}

TEST_F(ServerTest, TinyFrame) {
  StartServer(TestOptions());
  auto c = Connect();
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->SendFrame("z"));
  EXPECT_EQ(c->ReadFrame(), std::optional<std::string>("echo:z"));
}

TEST_F(ServerTest, FrameOfExactlyTheMaximumIsServed) {
  ServerOptions o = TestOptions();
  StartServer(o);
  auto c = Connect();
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->SendFrame("hello"));  // completes the test session's "Hello".
  ASSERT_TRUE(c->ReadFrame().has_value());
  std::string body(o.max_frame_bytes, 'm');
  ASSERT_TRUE(c->SendFrame(body));
  auto reply = c->ReadFrame();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->size(), body.size() + 5);
  EXPECT_EQ(*reply, "echo:" + body);
}

TEST_F(ServerTest, FrameOfMaximumPlusOneIsRefusedAndClosed) {
  ServerOptions o = TestOptions();
  StartServer(o);
  auto c = Connect();
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->SendFrame("hello"));
  ASSERT_TRUE(c->ReadFrame().has_value());
  // Only the length prefix: the server must refuse before reading (or allocating) the body.
  ASSERT_TRUE(c->SendRaw(LengthPrefix(o.max_frame_bytes + 1)));
  EXPECT_EQ(c->ReadFrame(), std::optional<std::string>(
                                "error:INVALID_ARGUMENT:frame of 1048577 bytes exceeds the "
                                "limit 1048576"));
  EXPECT_TRUE(c->ReadsEof());
  ExpectFreshClientServed();
}

TEST_F(ServerTest, LengthFFFFFFFFIsRefusedAndClosed) {
  StartServer(TestOptions());
  auto c = Connect();
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->SendFrame("hello"));
  ASSERT_TRUE(c->ReadFrame().has_value());
  ASSERT_TRUE(c->SendRaw(std::string(4, '\xFF') + "trailing bytes the server must not read"));
  EXPECT_EQ(c->ReadFrame(), std::optional<std::string>(
                                "error:INVALID_ARGUMENT:frame of 4294967295 bytes exceeds the "
                                "limit 1048576"));
  EXPECT_TRUE(c->ReadsEof());
  EXPECT_EQ(server_->stats().inflight_bytes, 0u);
  ExpectFreshClientServed();
}

TEST_F(ServerTest, HeaderAndBodySplitAcrossSegments) {
  StartServer(TestOptions());
  auto c = Connect();
  ASSERT_NE(c, nullptr);
  const std::string frame = Framed("split across many segments");
  // One byte per send with pauses, so each piece is its own segment and its own read.
  for (char ch : frame) {
    ASSERT_TRUE(c->SendRaw(std::string(1, ch)));
    std::this_thread::sleep_for(milliseconds(2));
  }
  EXPECT_EQ(c->ReadFrame(), std::optional<std::string>("echo:split across many segments"));
  // And a header split 3 + 1 with the body in the second piece.
  ASSERT_TRUE(c->SendRaw(LengthPrefix(3).substr(0, 3)));
  std::this_thread::sleep_for(milliseconds(5));
  ASSERT_TRUE(c->SendRaw(LengthPrefix(3).substr(3) + "abc"));
  EXPECT_EQ(c->ReadFrame(), std::optional<std::string>("echo:abc"));
}

TEST_F(ServerTest, EofInTheMiddleOfALengthPrefix) {
  StartServer(TestOptions());
  auto c = Connect();
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->SendRaw(LengthPrefix(10).substr(0, 2)));
  c->ShutdownWrite();
  EXPECT_TRUE(c->ReadsEof());  // closed without a reply.
  ExpectFreshClientServed();
}

TEST_F(ServerTest, EofInTheMiddleOfABody) {
  StartServer(TestOptions());
  auto c = Connect();
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->SendRaw(LengthPrefix(100) + std::string(50, 'b')));
  c->ShutdownWrite();
  EXPECT_TRUE(c->ReadsEof());
  // The budget taken for the body is returned.
  EXPECT_TRUE(WaitFor([&] { return server_->stats().inflight_bytes == 0; }));
  EXPECT_TRUE(WaitFor([&] { return server_->stats().connections_open == 0; }));
  ExpectFreshClientServed();
}

TEST_F(ServerTest, ResetInTheMiddleOfABody) {
  StartServer(TestOptions());
  auto c = Connect();
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->SendRaw(LengthPrefix(100) + std::string(10, 'b')));
  c->Reset();
  EXPECT_TRUE(WaitFor([&] { return server_->stats().connections_open == 0; }));
  EXPECT_EQ(server_->stats().inflight_bytes, 0u);
  ExpectFreshClientServed();
}

// ---------------------------------------------------------------------------------------------
// Deadlines

TEST_F(ServerTest, SlowLorisIsCutOffByTheWholeFrameDeadline) {
  ServerOptions o = TestOptions();
  o.frame_deadline = milliseconds(300);
  StartServer(o);
  auto c = Connect();
  ASSERT_NE(c, nullptr);
  // A 200-byte frame sent one byte every 20 ms (4 s in all, starting with the length prefix):
  // each read makes progress well within 300 ms, so only a whole-frame deadline stops it.
  const std::string frame = Framed(std::string(200, 's'));
  size_t sent = 0;
  while (sent < frame.size() && !c->Readable()) {
    if (!c->SendRaw(frame.substr(sent, 1))) break;  // the server may already have closed.
    ++sent;
    c->WaitReadable(20);
  }
  EXPECT_LT(sent, frame.size()) << "the whole trickled frame was accepted";
  EXPECT_EQ(c->ReadFrame(),
            std::optional<std::string>("error:DEADLINE_EXCEEDED:frame not received within 300 ms "
                                       "(the whole frame, length prefix and body, must arrive "
                                       "within the frame deadline)"));
  EXPECT_TRUE(c->ReadsEof());
  EXPECT_TRUE(WaitFor([&] { return server_->stats().inflight_bytes == 0; }));
  ExpectFreshClientServed();
}

TEST_F(ServerTest, IdleConnectionIsClosed) {
  ServerOptions o = TestOptions();
  o.idle_timeout = milliseconds(200);
  StartServer(o);
  auto c = Connect();
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->SendFrame("one frame, then silence"));
  ASSERT_TRUE(c->ReadFrame().has_value());
  EXPECT_EQ(c->ReadFrame(),
            std::optional<std::string>("error:UNAVAILABLE:idle for 200 ms (no frame started); "
                                       "closing the connection"));
  EXPECT_TRUE(c->ReadsEof());
  ExpectFreshClientServed();
}

TEST_F(ServerTest, ClientThatNeverReadsRepliesIsCutOffByTheWriteDeadline) {
  ServerOptions o = TestOptions();
  o.frame_deadline = milliseconds(300);
  StartServer(o);
  auto c = Connect();
  ASSERT_NE(c, nullptr);
  // Send large frames without reading the (equally large) echoes until the kernel buffers are
  // full in both directions: the server's reply write then stalls and must be cut off. Sends
  // block while the server is merely slow to read; a send that makes no progress for 2 s means
  // the server has stopped reading (it is stuck writing, or has closed).
  c->SetSendTimeout(2);
  ASSERT_TRUE(c->SendFrame("hello"));
  const std::string frame = Framed(std::string(o.max_frame_bytes, 'w'));
  for (int i = 0; i < 256; ++i) {
    if (!c->SendRaw(frame)) break;
  }
  ASSERT_TRUE(WaitFor([&] { return server_->stats().connections_accepted == 1; }));
  EXPECT_TRUE(WaitFor([&] { return server_->stats().connections_open == 0; }))
      << "a connection whose client never reads was not closed";
  EXPECT_THAT(Log(), HasSubstr("client not reading"));
  ExpectFreshClientServed();
}

// ---------------------------------------------------------------------------------------------
// Limits

TEST_F(ServerTest, PreHelloFramesAreCappedSmall) {
  ServerOptions o = TestOptions();
  o.max_prehello_frame_bytes = 64;
  StartServer(o);
  {
    auto c = Connect();
    ASSERT_NE(c, nullptr);
    ASSERT_TRUE(c->SendRaw(LengthPrefix(65)));
    EXPECT_EQ(c->ReadFrame(), std::optional<std::string>(
                                  "error:INVALID_ARGUMENT:frame of 65 bytes exceeds the limit 64 "
                                  "before Hello"));
    EXPECT_TRUE(c->ReadsEof());
  }
  // Exactly at the cap before Hello; the full limit afterwards.
  auto c = Connect();
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->SendFrame(std::string(64, 'h')));
  EXPECT_EQ(c->ReadFrame(), std::optional<std::string>("echo:" + std::string(64, 'h')));
  ASSERT_TRUE(c->SendFrame(std::string(5000, 'a')));
  EXPECT_EQ(c->ReadFrame(), std::optional<std::string>("echo:" + std::string(5000, 'a')));
  ExpectFreshClientServed();
}

TEST_F(ServerTest, MaxConnectionsRefusesWithAnErrorAndKeepsAccepting) {
  ServerOptions o = TestOptions();
  o.max_connections = 2;
  StartServer(o);
  auto c1 = Connect();
  auto c2 = Connect();
  ASSERT_NE(c1, nullptr);
  ASSERT_NE(c2, nullptr);
  for (auto* c : {c1.get(), c2.get()}) {
    ASSERT_TRUE(c->SendFrame("in"));
    ASSERT_EQ(c->ReadFrame(), std::optional<std::string>("echo:in"));
  }
  for (int i = 0; i < 3; ++i) {  // several refusals in a row: the accept loop keeps going.
    auto c3 = Connect();
    ASSERT_NE(c3, nullptr);
    c3->SendFrame("let me in");  // may fail if the server already closed; irrelevant.
    EXPECT_EQ(c3->ReadFrame(),
              std::optional<std::string>("error:RESOURCE_EXHAUSTED:too many connections (limit "
                                         "2); try again later"));
    EXPECT_TRUE(c3->ReadsEof());
  }
  EXPECT_EQ(server_->stats().connections_refused, 3u);
  // The served connections are unaffected.
  ASSERT_TRUE(c2->SendFrame("still here"));
  EXPECT_EQ(c2->ReadFrame(), std::optional<std::string>("echo:still here"));
  // After one disconnects, a new client gets in.
  c1.reset();
  ASSERT_TRUE(WaitFor([&] { return server_->stats().connections_open == 1; }));
  ExpectFreshClientServed();
}

TEST_F(ServerTest, BudgetBackpressureServesBothFramesEventually) {
  ServerOptions o = TestOptions();
  o.inflight_budget_bytes = 100;  // less than two 60-byte frames.
  StartServer(o);
  auto c1 = Connect();
  auto c2 = Connect();
  ASSERT_NE(c1, nullptr);
  ASSERT_NE(c2, nullptr);
  const std::string blocker = "block" + std::string(55, '.');  // 60 bytes, held by the session.
  const std::string second = std::string(60, 'q');
  ASSERT_TRUE(c1->SendFrame(blocker));
  ASSERT_TRUE(WaitFor([&] { return factory_.blocked() == 1; }));
  EXPECT_EQ(server_->stats().inflight_bytes, 60u);
  ASSERT_TRUE(c2->SendFrame(second));
  // c2's frame waits for budget (without its body being read), not failing.
  ASSERT_TRUE(WaitFor([&] { return server_->stats().budget_waiters == 1; }));
  EXPECT_FALSE(c2->Readable()) << "c2 was answered while the budget was exhausted";
  factory_.OpenGate();
  EXPECT_EQ(c1->ReadFrame(), std::optional<std::string>("unblocked:60"));
  EXPECT_EQ(c2->ReadFrame(), std::optional<std::string>("echo:" + second));
  EXPECT_GE(server_->stats().budget_waits, 1u);
  EXPECT_TRUE(WaitFor([&] { return server_->stats().inflight_bytes == 0; }));
  ExpectFreshClientServed();
}

TEST_F(ServerTest, FrameLargerThanTheWholeBudgetIsAnError) {
  ServerOptions o = TestOptions();
  o.inflight_budget_bytes = 100;
  StartServer(o);
  auto c = Connect();
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->SendFrame(std::string(101, 'x')));
  EXPECT_EQ(c->ReadFrame(), std::optional<std::string>(
                                "error:RESOURCE_EXHAUSTED:frame of 101 bytes exceeds the "
                                "in-flight budget of 100 bytes"));
  EXPECT_TRUE(c->ReadsEof());
  ExpectFreshClientServed();
}

TEST_F(ServerTest, SessionExceptionClosesOnlyThatConnection) {
  StartServer(TestOptions());
  auto other = Connect();
  ASSERT_NE(other, nullptr);
  auto c = Connect();
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->SendFrame("throw"));
  EXPECT_EQ(c->ReadFrame(), std::optional<std::string>("error:INTERNAL:internal error"));
  EXPECT_TRUE(c->ReadsEof());
  EXPECT_THAT(Log(), HasSubstr("test session throws"));
  ASSERT_TRUE(other->SendFrame("unaffected"));
  EXPECT_EQ(other->ReadFrame(), std::optional<std::string>("echo:unaffected"));
  ExpectFreshClientServed();
}

TEST_F(ServerTest, ReplyWithCloseAfterIsWrittenThenClosed) {
  StartServer(TestOptions());
  auto c = Connect();
  ASSERT_NE(c, nullptr);
  // The frames after "close" are never answered.
  ASSERT_TRUE(c->SendRaw(Framed("close") + Framed("ignored") + Framed("ignored")));
  EXPECT_EQ(c->ReadFrame(), std::optional<std::string>("bye"));
  EXPECT_TRUE(c->ReadsEof());
  ExpectFreshClientServed();
}

TEST_F(ServerTest, SlowSessionCallDoesNotStallOtherConnections) {
  StartServer(TestOptions());  // 2 workers.
  auto slow = Connect();
  ASSERT_NE(slow, nullptr);
  ASSERT_TRUE(slow->SendFrame("block"));
  ASSERT_TRUE(WaitFor([&] { return factory_.blocked() == 1; }));
  // Pipelined behind the blocked frame on the same connection: waits its turn.
  ASSERT_TRUE(slow->SendFrame("queued"));
  for (int i = 0; i < 3; ++i) ExpectFreshClientServed();
  EXPECT_FALSE(slow->Readable());
  factory_.OpenGate();
  EXPECT_EQ(slow->ReadFrame(), std::optional<std::string>("unblocked:5"));
  EXPECT_EQ(slow->ReadFrame(), std::optional<std::string>("echo:queued"));
}

// Session calls run on the thread that read their frame, at most worker_threads at once; the
// io_threads extra threads keep the sockets going even when every session slot is held by a
// call that does not return (net/server.h "Threads and ordering").
TEST_F(ServerTest, AllSessionSlotsBusyStillLeavesIoRunning) {
  ServerOptions o = TestOptions();  // 1 I/O thread, 2 session slots.
  o.frame_deadline = milliseconds(300);
  o.max_connections = 4;
  StartServer(o);
  auto a = Connect();
  auto b = Connect();
  auto queued = Connect();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_NE(queued, nullptr);
  ASSERT_TRUE(a->SendFrame("block"));
  ASSERT_TRUE(b->SendFrame("block"));
  ASSERT_TRUE(WaitFor([&] { return factory_.blocked() == 2; }));
  // A third frame waits for a slot, without failing and without blocking a thread.
  ASSERT_TRUE(queued->SendFrame("queued"));
  ASSERT_TRUE(WaitFor([&] { return server_->stats().slot_waiters == 1; }));
  EXPECT_FALSE(queued->Readable());

  // The I/O thread is free: a trickling client is cut off by the frame deadline...
  auto loris = Connect();
  ASSERT_NE(loris, nullptr);
  ASSERT_TRUE(loris->SendRaw(LengthPrefix(100) + "partial"));
  EXPECT_EQ(loris->ReadFrame(),
            std::optional<std::string>("error:DEADLINE_EXCEEDED:frame not received within 300 ms "
                                       "(the whole frame, length prefix and body, must arrive "
                                       "within the frame deadline)"));
  EXPECT_TRUE(loris->ReadsEof());
  // ...and a connection over the cap is refused with its error frame.
  ASSERT_TRUE(WaitFor([&] { return server_->stats().connections_open == 3; }));
  auto extra = Connect();
  ASSERT_NE(extra, nullptr);
  auto over = Connect();
  ASSERT_NE(over, nullptr);
  EXPECT_EQ(over->ReadFrame(),
            std::optional<std::string>("error:RESOURCE_EXHAUSTED:too many connections (limit "
                                       "4); try again later"));
  EXPECT_FALSE(a->Readable());
  EXPECT_FALSE(b->Readable());

  factory_.OpenGate();
  EXPECT_EQ(a->ReadFrame(), std::optional<std::string>("unblocked:5"));
  EXPECT_EQ(b->ReadFrame(), std::optional<std::string>("unblocked:5"));
  EXPECT_EQ(queued->ReadFrame(), std::optional<std::string>("echo:queued"));
  EXPECT_GE(server_->stats().slot_waits, 1u);
  EXPECT_EQ(server_->stats().slot_waiters, 0u);
  ASSERT_TRUE(extra->SendFrame("after"));
  EXPECT_EQ(extra->ReadFrame(), std::optional<std::string>("echo:after"));
}

TEST_F(ServerTest, ThirtyTwoConcurrentConnections) {
  ServerOptions o = TestOptions();
  o.io_threads = 2;
  o.worker_threads = 4;
  StartServer(o);
  const uint64_t seed = testing::TestSeed(20261125);
  SCOPED_TRACE(testing::SeedTrace(seed));
  constexpr int kClients = 32;
  constexpr int kFrames = 40;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kClients; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(seed + static_cast<uint64_t>(t));
      auto c = TestClient::Connect(port_);
      if (!c) return;
      // The first frame completes the test session's "Hello" (frames before it are capped).
      if (!c->SendFrame("hello") || !c->ReadFrame()) return;
      for (int i = 0; i < kFrames; ++i) {
        // Bodies of 1 .. 8192 bytes; sent in two halves sometimes, pipelined two at a time.
        std::string a(1 + rng() % 8192, static_cast<char>('a' + t % 26));
        std::string b = "client " + std::to_string(t) + " frame " + std::to_string(i);
        const std::string both = Framed(a) + Framed(b);
        const size_t cut = rng() % both.size();
        if (!c->SendRaw(std::string_view(both).substr(0, cut))) return;
        if (!c->SendRaw(std::string_view(both).substr(cut))) return;
        if (c->ReadFrame() != std::optional<std::string>("echo:" + a)) return;
        if (c->ReadFrame() != std::optional<std::string>("echo:" + b)) return;
      }
      ok.fetch_add(1);
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), kClients);
  EXPECT_TRUE(WaitFor([&] {
    return server_->stats().frames_served == uint64_t{kClients} * (kFrames * 2 + 1);
  })) << server_->stats().frames_served;
  ExpectFreshClientServed();
}

// ---------------------------------------------------------------------------------------------
// Stop

TEST_F(ServerTest, GracefulStopFinishesAnInFlightFrame) {
  ServerOptions o = TestOptions();
  o.stop_grace = milliseconds(60'000);  // the blocked frame must be waited for, not cut off.
  StartServer(o);
  auto busy = Connect();
  auto idle = Connect();
  ASSERT_NE(busy, nullptr);
  ASSERT_NE(idle, nullptr);
  ASSERT_TRUE(idle->SendFrame("x"));
  ASSERT_TRUE(idle->ReadFrame().has_value());
  ASSERT_TRUE(busy->SendFrame("block"));
  ASSERT_TRUE(WaitFor([&] { return factory_.blocked() == 1; }));

  auto stopped = std::async(std::launch::async, [&] { server_->Stop(); });
  // Stop closes idle connections and the listener at once...
  EXPECT_TRUE(idle->ReadsEof());
  EXPECT_TRUE(WaitFor([&] { return TestClient::Connect(port_) == nullptr; }));
  // ...but waits for the frame in flight.
  EXPECT_EQ(stopped.wait_for(std::chrono::seconds(0)), std::future_status::timeout);
  factory_.OpenGate();
  EXPECT_EQ(busy->ReadFrame(), std::optional<std::string>("unblocked:5"));
  EXPECT_TRUE(busy->ReadsEof());
  ASSERT_EQ(stopped.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  server_->Wait();  // returns at once after Stop.
}

TEST_F(ServerTest, GracefulStopFinishesAFrameWaitingForBudget) {
  ServerOptions o = TestOptions();
  o.inflight_budget_bytes = 100;
  o.stop_grace = milliseconds(60'000);
  StartServer(o);
  auto c1 = Connect();
  auto c2 = Connect();
  ASSERT_NE(c1, nullptr);
  ASSERT_NE(c2, nullptr);
  ASSERT_TRUE(c1->SendFrame("block" + std::string(55, '.')));
  ASSERT_TRUE(WaitFor([&] { return factory_.blocked() == 1; }));
  ASSERT_TRUE(c2->SendFrame(std::string(60, 'w')));
  ASSERT_TRUE(WaitFor([&] { return server_->stats().budget_waiters == 1; }));
  auto stopped = std::async(std::launch::async, [&] { server_->Stop(); });
  EXPECT_TRUE(WaitFor([&] { return TestClient::Connect(port_) == nullptr; }));
  factory_.OpenGate();
  // Both frames had started before Stop: both are answered, then the connections close.
  EXPECT_EQ(c1->ReadFrame(), std::optional<std::string>("unblocked:60"));
  EXPECT_EQ(c2->ReadFrame(), std::optional<std::string>("echo:" + std::string(60, 'w')));
  EXPECT_TRUE(c1->ReadsEof());
  EXPECT_TRUE(c2->ReadsEof());
  ASSERT_EQ(stopped.wait_for(std::chrono::seconds(20)), std::future_status::ready);
}

TEST_F(ServerTest, StopClosesAStalledFrameAfterTheGrace) {
  ServerOptions o = TestOptions();
  o.frame_deadline = milliseconds(60'000);
  o.stop_grace = milliseconds(200);
  StartServer(o);
  auto c = Connect();
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->SendRaw(LengthPrefix(100) + "only part of the body"));
  ASSERT_TRUE(WaitFor([&] { return server_->stats().inflight_bytes == 100; }));
  auto waiter = std::async(std::launch::async, [&] { server_->Wait(); });
  auto stopped = std::async(std::launch::async, [&] { server_->Stop(); });
  ASSERT_EQ(stopped.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  ASSERT_EQ(waiter.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  EXPECT_TRUE(c->ReadsEof());
  EXPECT_EQ(server_->stats().connections_open, 0u);
}

// After the grace: a frame still waiting for a session slot is dropped and its connection
// closed at once; a connection whose session call is still running is closed, without its reply,
// when the call returns (a call is never interrupted), and Stop waits for that.
TEST_F(ServerTest, StopAfterTheGraceDropsFramesWaitingForASlotAndUnsentReplies) {
  ServerOptions o = TestOptions();
  o.worker_threads = 1;
  o.stop_grace = milliseconds(200);
  StartServer(o);
  auto busy = Connect();
  auto waiting = Connect();
  ASSERT_NE(busy, nullptr);
  ASSERT_NE(waiting, nullptr);
  ASSERT_TRUE(busy->SendFrame("block"));
  ASSERT_TRUE(WaitFor([&] { return factory_.blocked() == 1; }));
  ASSERT_TRUE(waiting->SendFrame("w"));
  ASSERT_TRUE(WaitFor([&] { return server_->stats().slot_waiters == 1; }));
  auto stopped = std::async(std::launch::async, [&] { server_->Stop(); });
  // The waiting frame is dropped after the grace, while the call still blocks.
  EXPECT_EQ(waiting->ReadFrame(), std::nullopt);
  EXPECT_EQ(factory_.blocked(), 1);
  EXPECT_EQ(stopped.wait_for(std::chrono::seconds(0)), std::future_status::timeout);
  factory_.OpenGate();
  EXPECT_EQ(busy->ReadFrame(), std::nullopt);  // closed without the reply.
  ASSERT_EQ(stopped.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  EXPECT_EQ(server_->stats().connections_open, 0u);
  EXPECT_EQ(server_->stats().slot_waiters, 0u);
}

TEST_F(ServerTest, StopIsIdempotent) {
  StartServer(TestOptions());
  ExpectFreshClientServed();
  server_->Stop();
  server_->Stop();
  EXPECT_EQ(TestClient::Connect(port_), nullptr);
}

// ---------------------------------------------------------------------------------------------
// Start: addresses and options

TEST(ServerStartTest, NonLoopbackWithoutAuthIsRefused) {
  TestFactory factory;
  for (const char* host : {"0.0.0.0", "::", "192.0.2.1"}) {
    ServerOptions o;
    o.host = host;
    o.port = 0;
    EXPECT_STATUS(Server::Start(o, &factory), absl::StatusCode::kFailedPrecondition,
                  "without authentication");
    EXPECT_STATUS(CheckServerOptions(o), absl::StatusCode::kFailedPrecondition,
                  "without authentication");
  }
  // With auth configured the check passes; 192.0.2.1 (TEST-NET-1) is not a local address, so
  // the bind itself fails: proof that the refusal above was the auth check.
  ServerOptions o;
  o.host = "192.0.2.1";
  o.port = 0;
  o.auth_configured = true;
  EXPECT_STATUS(Server::Start(o, &factory), absl::StatusCode::kUnavailable, "cannot listen on");
  EXPECT_OK(CheckServerOptions(o));  // binds nothing.
}

TEST(ServerStartTest, LoopbackAddressesNeedNoAuth) {
  TestFactory factory;
  for (const char* host : {"127.0.0.1", "127.0.0.2", "localhost"}) {
    ServerOptions o;
    o.host = host;
    o.port = 0;
    o.log = nullptr;
    auto server = Server::Start(o, &factory);
    ASSERT_TRUE(server.ok()) << host << ": " << server.status();
    EXPECT_NE((*server)->endpoint().port, 0);
  }
}

TEST(ServerStartTest, InvalidOptions) {
  TestFactory factory;
  ServerOptions o;
  o.port = 0;
  o.host = "example.com";
  EXPECT_STATUS(Server::Start(o, &factory), absl::StatusCode::kInvalidArgument,
                "is not an IP address");
  o.host = "127.0.0.1";
  o.max_connections = 0;
  EXPECT_STATUS(Server::Start(o, &factory), absl::StatusCode::kInvalidArgument,
                "max_connections");
  o.max_connections = 1;
  o.max_prehello_frame_bytes = o.max_frame_bytes + 1;
  EXPECT_STATUS(Server::Start(o, &factory), absl::StatusCode::kInvalidArgument,
                "max_prehello_frame_bytes");
  o.max_prehello_frame_bytes = 4096;
  o.inflight_budget_bytes = 0;
  EXPECT_STATUS(Server::Start(o, &factory), absl::StatusCode::kInvalidArgument,
                "inflight_budget_bytes");
  o.inflight_budget_bytes = 100;
  o.frame_deadline = milliseconds(0);
  EXPECT_STATUS(Server::Start(o, &factory), absl::StatusCode::kInvalidArgument,
                "frame_deadline");
  EXPECT_STATUS(Server::Start(o, nullptr), absl::StatusCode::kInvalidArgument,
                "no session factory");
}

TEST(ServerStartTest, PortInUseIsUnavailable) {
  TestFactory factory;
  ServerOptions o;
  o.port = 0;
  o.log = nullptr;
  auto first = Server::Start(o, &factory);
  ASSERT_TRUE(first.ok()) << first.status();
  o.port = (*first)->endpoint().port;
  EXPECT_STATUS(Server::Start(o, &factory), absl::StatusCode::kUnavailable, "cannot listen on");
}

TEST(EndpointTest, ParseAndFormat) {
  ASSERT_OK_AND_ASSIGN(Endpoint a, ParseEndpoint("127.0.0.1:7700"));
  EXPECT_EQ(a.host, "127.0.0.1");
  EXPECT_EQ(a.port, 7700);
  EXPECT_EQ(a.ToString(), "127.0.0.1:7700");
  ASSERT_OK_AND_ASSIGN(Endpoint b, ParseEndpoint("[::1]:0"));
  EXPECT_EQ(b.host, "::1");
  EXPECT_EQ(b.port, 0);
  EXPECT_EQ(b.ToString(), "[::1]:0");
  ASSERT_OK_AND_ASSIGN(Endpoint c, ParseEndpoint("localhost:65535"));
  EXPECT_EQ(c.port, 65535);
  for (const char* bad : {"", "127.0.0.1", "127.0.0.1:", ":7700", "127.0.0.1:65536",
                          "127.0.0.1:-1", "127.0.0.1:7x", "::1:7700", "[::1]7700", "[::1",
                          "host:123456"}) {
    SCOPED_TRACE(bad);
    EXPECT_STATUS(ParseEndpoint(bad), absl::StatusCode::kInvalidArgument, "invalid address");
  }
}

}  // namespace
}  // namespace rosetta::net
