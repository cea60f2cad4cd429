// Implementation notes (the contract is in server.h).
//
// Shape: one io_context run by io_threads + worker_threads threads; an acceptor on its own
// strand; per connection a strand carrying two coroutines, ServeConnection (the frame loop) and
// Watchdog (deadlines). All state of a Connection is touched only on its strand, except the
// registry in Server::Impl (mutex) and the counters (atomics).
//
// Session calls run inline, in the frame loop, on the thread that read the frame, once the frame
// holds one of worker_threads session slots (a FIFO semaphore). Why not a separate worker pool:
// a hand-off to a pool thread and back to the connection's strand costs two wake-ups of sleeping
// threads per request, and on a small (2-vCPU, virtualised) machine each measured 5 to 45 us at
// the median depending on load (more in the tail), together more than the protocol's whole
// remaining cost (bench/results/2026-11-25-server-latency). Running inline, a request costs only
// the two wake-ups no server can avoid (the server thread waiting in epoll, then the client),
// plus the hand-over of the reactor described next.
//
// Why other connections are still never stalled: at most worker_threads threads are inside
// session calls at any moment, and the io_context has io_threads threads more than that, so at
// least io_threads threads are always free to run the reactor, other connections' reads and
// writes, deadlines and the accept loop. While one thread runs a session call, Asio's scheduler
// has handed the reactor to an idle thread (it wakes one when it dispatches a completion while
// the reactor task is queued): the leader/followers pattern. That costs the dispatching thread a
// futex wake (the woken thread's own latency is off the critical path); the frame loop avoids
// the further wake-ups Asio would add (see ReadNow / WriteNow).
//
// Deadlines: Asio 1.26 has no cancel_after, so each connection has one steady_timer driven by a
// watchdog coroutine (the pattern of Asio's echo_server_with_deadline example, with error codes
// instead of exceptions). The frame loop only writes `deadline`; when the deadline passes the
// watchdog marks the connection `expired` and cancels the socket's pending operation, which
// then completes with operation_aborted; the frame loop checks `expired` after every await and
// answers with the error that fits the phase it was in. Setting a later deadline costs nothing
// (the watchdog re-arms when its timer fires); only an earlier one wakes it. The watchdog never
// sleeps more than frame_deadline ahead (an idle connection's timer fires every frame_deadline
// to re-arm), so that the frame and write deadlines, now + frame_deadline, are never earlier
// than the armed time: a frame then costs no timer cancellation and re-arm (a timerfd update
// and a watchdog run on the strand, between the length prefix and the body).
//
// Budget: a FifoSemaphore over bytes. FIFO so that a large frame waiting for budget is not
// starved by a stream of small ones; the price is that small frames queue behind it, which is
// the point of a budget. The session slots are a FifoSemaphore of worker_threads units: FIFO so
// that frames waiting for a slot are served in arrival order.
#include "net/server.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <iostream>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "schema/status_macros.h"

namespace rosetta::net {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using ErrorCode = boost::system::error_code;

constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

// Abseil 20220623's string_view is its own type, not std::string_view.
absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// Drain at most this much input after an error frame before closing anyway.
constexpr size_t kMaxLingerDrainBytes = size_t{4} << 20;
// Pause after an accept error (EMFILE, ENOBUFS...) so the loop does not spin.
constexpr auto kAcceptErrorBackoff = std::chrono::milliseconds(100);

std::array<unsigned char, 4> EncodeLength(uint32_t n) {
  return {static_cast<unsigned char>(n), static_cast<unsigned char>(n >> 8),
          static_cast<unsigned char>(n >> 16), static_cast<unsigned char>(n >> 24)};
}

uint32_t DecodeLength(const std::array<unsigned char, 4>& b) {
  return uint32_t{b[0]} | (uint32_t{b[1]} << 8) | (uint32_t{b[2]} << 16) | (uint32_t{b[3]} << 24);
}

std::string FormatEndpoint(const tcp::endpoint& ep) {
  Endpoint e{ep.address().to_string(), ep.port()};
  return e.ToString();
}

bool IsLoopback(const asio::ip::address& address) {
  if (address.is_loopback()) return true;
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    return asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6()).is_loopback();
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// FifoSemaphore: a FIFO asynchronous semaphore counting units (bytes of the in-flight budget, or
// session slots). Thread-safe.
class FifoSemaphore {
 public:
  using Handler = asio::any_completion_handler<void(ErrorCode)>;

  explicit FifoSemaphore(size_t capacity) : capacity_(capacity), available_(capacity) {}

  size_t capacity() const { return capacity_; }

  size_t in_use() const {
    std::lock_guard<std::mutex> lock(mu_);
    return capacity_ - available_;
  }

  // Takes `bytes` now if that is possible without overtaking a waiter.
  bool TryAcquire(size_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    if (shut_down_ || !waiters_.empty() || bytes > available_) return false;
    available_ -= bytes;
    return true;
  }

  // Completes with success once `bytes` (<= capacity()) are taken, in FIFO order, or with
  // operation_aborted after Shutdown(). The completion runs on `executor` (the waiting
  // connection's strand), never inline.
  template <typename Token>
  auto AsyncAcquire(size_t bytes, asio::any_io_executor executor, Token&& token) {
    return asio::async_initiate<Token, void(ErrorCode)>(
        [this](auto handler, size_t n, asio::any_io_executor ex) {
          Enqueue(Waiter{n, std::move(ex), Handler(std::move(handler))});
        },
        token, bytes, std::move(executor));
  }

  void Release(size_t bytes) {
    std::vector<Waiter> ready;
    {
      std::lock_guard<std::mutex> lock(mu_);
      available_ += bytes;
      GrantLocked(ready);
    }
    for (Waiter& w : ready) Complete(std::move(w), ErrorCode());
  }

  // Fails every waiter and every later AsyncAcquire with operation_aborted.
  void Shutdown() {
    std::deque<Waiter> waiters;
    {
      std::lock_guard<std::mutex> lock(mu_);
      shut_down_ = true;
      waiters.swap(waiters_);
    }
    for (Waiter& w : waiters) Complete(std::move(w), asio::error::operation_aborted);
  }

 private:
  struct Waiter {
    size_t bytes;
    asio::any_io_executor executor;
    Handler handler;
  };

  void Enqueue(Waiter waiter) {
    std::vector<Waiter> ready;
    bool aborted = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (shut_down_) {
        aborted = true;
      } else {
        waiters_.push_back(std::move(waiter));
        GrantLocked(ready);
      }
    }
    if (aborted) Complete(std::move(waiter), asio::error::operation_aborted);
    for (Waiter& w : ready) Complete(std::move(w), ErrorCode());
  }

  void GrantLocked(std::vector<Waiter>& ready) {
    while (!waiters_.empty() && waiters_.front().bytes <= available_) {
      available_ -= waiters_.front().bytes;
      ready.push_back(std::move(waiters_.front()));
      waiters_.pop_front();
    }
  }

  // Never invokes the handler inline (Asio's rule for asynchronous operations): it is posted to
  // the waiter's executor.
  static void Complete(Waiter waiter, ErrorCode ec) {
    asio::post(waiter.executor,
               [h = std::move(waiter.handler), ec]() mutable { std::move(h)(ec); });
  }

  const size_t capacity_;
  mutable std::mutex mu_;
  size_t available_;
  bool shut_down_ = false;
  std::deque<Waiter> waiters_;
};

// Units held from a FifoSemaphore, returned on destruction (every exit path of the frame loop).
class BudgetLease {
 public:
  explicit BudgetLease(FifoSemaphore* budget) : budget_(budget) {}
  ~BudgetLease() { Release(); }
  BudgetLease(const BudgetLease&) = delete;
  BudgetLease& operator=(const BudgetLease&) = delete;
  void Hold(size_t bytes) { bytes_ = bytes; }
  void Release() {
    if (bytes_ > 0) budget_->Release(bytes_);
    bytes_ = 0;
  }

 private:
  FifoSemaphore* budget_;
  size_t bytes_ = 0;
};

enum class Phase {
  kIdle,     // waiting for the first byte of a frame.
  kFrame,    // reading a frame (length prefix or body).
  kBusy,     // waiting for budget or a session slot, or in the session; no socket operation.
  kWriting,  // writing a reply.
  kClosing,  // error frame / lingering close.
};

struct Connection;

}  // namespace

// ---------------------------------------------------------------------------------------------
struct Server::Impl {
  Impl(const ServerOptions& opts, SessionFactory* f, size_t io_thread_count,
       size_t worker_thread_count)
      : options(opts),
        factory(f),
        io(static_cast<int>(io_thread_count + worker_thread_count)),
        work_guard(asio::make_work_guard(io)),
        accept_strand(asio::make_strand(io)),
        acceptor(accept_strand),
        accept_backoff(accept_strand),
        slots(worker_thread_count),
        budget(opts.inflight_budget_bytes),
        thread_count(io_thread_count + worker_thread_count) {}

  void Log(std::string_view line) const {
    if (options.log) options.log(line);
  }

  void OnAccepted(tcp::socket socket);
  void OnConnectionDone(Connection* conn, bool served);
  void StopImpl();

  const ServerOptions options;
  SessionFactory* const factory;

  // Declared first among the asio members so that it is destroyed last.
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work_guard;
  asio::strand<asio::io_context::executor_type> accept_strand;
  tcp::acceptor acceptor;
  asio::steady_timer accept_backoff;
  FifoSemaphore slots;  // session calls running at once: at most worker_threads.
  FifoSemaphore budget;
  Endpoint bound;
  size_t thread_count;  // io_threads + worker_threads, all running `io`.
  std::vector<std::thread> threads;

  // Registry of live connections (served and being refused), for Stop().
  std::mutex conn_mu;
  std::condition_variable conn_cv;
  std::unordered_map<Connection*, std::shared_ptr<Connection>> connections;
  size_t refusing = 0;  // connections being refused now (guarded by conn_mu).
  bool stopping = false;  // guarded by conn_mu: no connection is registered once set.

  // Stop() / Wait().
  std::mutex stop_mu;
  std::condition_variable stop_cv;
  bool stop_started = false;
  bool stopped = false;
  size_t io_threads_running = 0;  // guarded by stop_mu.

  std::atomic<uint64_t> accepted{0};
  std::atomic<uint64_t> refused{0};
  std::atomic<uint64_t> open{0};
  std::atomic<uint64_t> frames_served{0};
  std::atomic<uint64_t> budget_waiters{0};
  std::atomic<uint64_t> budget_waits{0};
  std::atomic<uint64_t> slot_waiters{0};
  std::atomic<uint64_t> slot_waits{0};
  std::atomic<uint64_t> bytes_received{0};
  std::atomic<uint64_t> bytes_sent{0};

  void CountReceived(size_t n) { bytes_received.fetch_add(n, std::memory_order_relaxed); }
  void CountSent(size_t n) { bytes_sent.fetch_add(n, std::memory_order_relaxed); }
};

namespace {

struct Connection {
  Connection(Server::Impl* s, tcp::socket sock, std::string p)
      : server(s), socket(std::move(sock)), timer(socket.get_executor()), peer(std::move(p)) {
    ErrorCode ec;
    socket.non_blocking(true, ec);  // for ReadNow / WriteNow; Asio's own operations don't care.
    nonblocking = !ec;
  }

  // The deadline for whatever the connection does next. Only an earlier deadline than the one
  // the watchdog sleeps on wakes it.
  void SetDeadline(Clock::time_point t) {
    expired = false;
    deadline = t;
    if (t < armed) timer.cancel();
  }
  void ClearDeadline() {
    expired = false;
    deadline = Clock::time_point::max();
  }

  // Server::Stop: an idle connection closes now; a busy one after its current frame.
  void RequestStop() {
    stop_requested = true;
    if (phase == Phase::kIdle) {
      ErrorCode ignored;
      socket.cancel(ignored);
    }
  }

  void ForceClose() {
    stop_requested = true;
    ErrorCode ignored;
    socket.close(ignored);
  }

  void Finish() {
    finished = true;
    timer.cancel();
    ErrorCode ignored;
    socket.close(ignored);
    session.reset();
  }

  Server::Impl* const server;
  tcp::socket socket;
  asio::steady_timer timer;
  const std::string peer;
  std::unique_ptr<Session> session;
  Phase phase = Phase::kIdle;
  Clock::time_point deadline = Clock::time_point::max();
  Clock::time_point armed = Clock::time_point::max();  // what the watchdog's timer waits for.
  bool expired = false;  // the deadline passed; the pending socket operation was cancelled.
  bool stop_requested = false;
  bool finished = false;
  bool nonblocking = false;  // the socket is in non-blocking mode: ReadNow / WriteNow may be used.
  // Set by Stop() (any thread) when the grace has run out: a session call running on the strand
  // cannot be interrupted, so the frame loop checks this when the call returns and closes
  // without writing the reply. ForceClose, posted to the strand, closes the socket.
  std::atomic<bool> force_closed{false};
};

std::string Ms(std::chrono::milliseconds d) { return absl::StrCat(d.count(), " ms"); }

absl::Status FrameDeadlineError(const ServerOptions& o) {
  return absl::DeadlineExceededError(
      absl::StrCat("frame not received within ", Ms(o.frame_deadline),
                   " (the whole frame, length prefix and body, must arrive within the frame "
                   "deadline)"));
}

asio::awaitable<void> Watchdog(std::shared_ptr<Connection> conn) {
  while (!conn->finished) {
    if (!conn->expired && conn->deadline <= Clock::now()) {
      conn->expired = true;
      ErrorCode ignored;
      conn->socket.cancel(ignored);
    }
    const Clock::time_point horizon = Clock::now() + conn->server->options.frame_deadline;
    conn->armed = conn->expired ? Clock::time_point::max() : std::min(conn->deadline, horizon);
    conn->timer.expires_at(conn->armed);
    auto [ec] = co_await conn->timer.async_wait(kUseTuple);
    (void)ec;  // woken early (operation_aborted) or on time: either way re-check.
  }
}

// Writes `body` as a frame (when not empty), shuts down the sending side, drains the client's
// input for up to close_linger, and closes. Everything within one close_linger deadline.
asio::awaitable<void> LingerClose(std::shared_ptr<Connection> conn, std::string body) {
  Server::Impl& server = *conn->server;
  conn->phase = Phase::kClosing;
  conn->SetDeadline(Clock::now() + server.options.close_linger);
  if (!body.empty()) {
    const auto header = EncodeLength(static_cast<uint32_t>(body.size()));
    const std::array<asio::const_buffer, 2> buffers{asio::buffer(header), asio::buffer(body)};
    auto [ec, n] = co_await asio::async_write(conn->socket, buffers, kUseTuple);
    server.CountSent(n);
    if (ec || conn->expired) co_return;
    server.frames_served.fetch_add(1, std::memory_order_relaxed);
  }
  ErrorCode ignored;
  conn->socket.shutdown(tcp::socket::shutdown_send, ignored);
  std::array<char, 16384> scratch;
  size_t drained = 0;
  while (drained < kMaxLingerDrainBytes) {
    auto [ec, n] = co_await conn->socket.async_read_some(asio::buffer(scratch), kUseTuple);
    server.CountReceived(n);
    if (ec || conn->expired) break;
    drained += n;
  }
}

asio::awaitable<void> SendErrorAndClose(std::shared_ptr<Connection> conn, absl::Status status) {
  std::string body = conn->server->factory->ErrorFrame(status);
  co_await LingerClose(conn, std::move(body));
}

// Runs inline on the connection's strand, holding a session slot.
Reply CallSession(Session* session, std::string_view body, Server::Impl* server,
                  const std::string& peer) {
  try {
    return session->OnFrame(body);
  } catch (const std::exception& e) {
    server->Log(absl::StrCat(peer, ": session threw (closing the connection): ", e.what()));
  } catch (...) {
    server->Log(absl::StrCat(peer, ": session threw a non-standard exception (closing)"));
  }
  return Reply{server->factory->ErrorFrame(absl::InternalError("internal error")), true};
}

// ReadNow / WriteNow: the frame loop reads a body and writes a reply with plain non-blocking
// system calls first, and only falls back to Asio's asynchronous operations for what would
// block. Why: a small frame's body has always arrived with its length prefix, and a small reply
// fits the socket buffer, but Asio completes even an operation that succeeds at once by posting
// its handler to the io_context's shared queue, which wakes an idle server thread (a futex wake
// and, on a VM, an inter-processor interrupt) for nothing, twice per request.

// Reads into [data, data + size) what the socket holds now. Returns the bytes read; `ec` is set
// for an error other than would_block (end of stream included).
size_t ReadNow(tcp::socket& socket, char* data, size_t size, ErrorCode& ec) {
  size_t got = 0;
  while (got < size) {
    ErrorCode e;
    const size_t n = socket.read_some(asio::buffer(data + got, size - got), e);
    got += n;
    if (e) {
      if (e != asio::error::would_block && e != asio::error::try_again) ec = e;
      break;
    }
    if (n == 0) break;
  }
  return got;
}

// Writes what the socket takes now from `buffers`, which are advanced past it. Returns the bytes
// written; `ec` is set for an error other than would_block.
size_t WriteNow(tcp::socket& socket, std::array<asio::const_buffer, 2>& buffers, ErrorCode& ec) {
  size_t written = 0;
  while (asio::buffer_size(buffers) > 0) {
    ErrorCode e;
    size_t n = socket.write_some(buffers, e);
    written += n;
    for (asio::const_buffer& b : buffers) {
      const size_t take = std::min(n, b.size());
      b += take;
      n -= take;
    }
    if (e) {
      if (e != asio::error::would_block && e != asio::error::try_again) ec = e;
      return written;
    }
  }
  return written;
}

void LogReadError(const Connection& conn, const ErrorCode& ec, std::string_view where) {
  if (ec == asio::error::eof) {
    conn.server->Log(absl::StrCat(conn.peer, ": connection closed by the client ", Sv(where)));
  } else if (ec != asio::error::operation_aborted && ec != asio::error::bad_descriptor) {
    conn.server->Log(absl::StrCat(conn.peer, ": read error ", Sv(where), ": ", ec.message()));
  }
}

// The frame loop. Returns when the connection is to be closed (the caller closes it).
asio::awaitable<void> ServeFrames(std::shared_ptr<Connection> conn) {
  Server::Impl& server = *conn->server;
  const ServerOptions& opt = server.options;
  conn->session = server.factory->NewSession(conn->peer);
  if (conn->session == nullptr) {
    server.Log(absl::StrCat(conn->peer, ": the session factory returned no session; closing"));
    co_await SendErrorAndClose(conn, absl::InternalError("internal error: no session"));
    co_return;
  }
  for (;;) {
    if (conn->stop_requested) co_return;

    // 1. Wait (idle deadline) for the first byte of a length prefix.
    conn->phase = Phase::kIdle;
    conn->SetDeadline(Clock::now() + opt.idle_timeout);
    std::array<unsigned char, 4> header{};
    auto [ec, got] = co_await conn->socket.async_read_some(asio::buffer(header), kUseTuple);
    server.CountReceived(got);
    if (conn->expired) {
      server.Log(absl::StrCat(conn->peer, ": idle timeout"));
      co_await SendErrorAndClose(
          conn, absl::UnavailableError(absl::StrCat("idle for ", Ms(opt.idle_timeout),
                                                    " (no frame started); closing the "
                                                    "connection")));
      co_return;
    }
    if (ec) {
      if (ec != asio::error::eof) LogReadError(*conn, ec, "while idle");
      co_return;
    }

    // 2. The whole frame from here on is under one deadline.
    conn->phase = Phase::kFrame;
    conn->SetDeadline(Clock::now() + opt.frame_deadline);
    if (got < header.size()) {
      auto [ec2, n2] = co_await asio::async_read(
          conn->socket, asio::buffer(header.data() + got, header.size() - got), kUseTuple);
      server.CountReceived(n2);
      if (conn->expired) {
        server.Log(absl::StrCat(conn->peer, ": frame deadline exceeded in a length prefix"));
        co_await SendErrorAndClose(conn, FrameDeadlineError(opt));
        co_return;
      }
      if (ec2) {
        LogReadError(*conn, ec2, "in the middle of a length prefix");
        co_return;
      }
    }
    const uint32_t length = DecodeLength(header);

    // 3. Bound the length before allocating anything.
    const bool hello = conn->session->hello_done();
    const uint32_t limit = hello ? opt.max_frame_bytes : opt.max_prehello_frame_bytes;
    if (length > limit) {
      server.Log(absl::StrCat(conn->peer, ": frame of ", length, " bytes over the limit ", limit,
                              hello ? "" : " (before Hello)"));
      co_await SendErrorAndClose(
          conn, absl::InvalidArgumentError(absl::StrCat(
                    "frame of ", length, " bytes exceeds the limit ", limit,
                    hello ? "" : " before Hello")));
      co_return;
    }
    if (length > server.budget.capacity()) {
      co_await SendErrorAndClose(
          conn, absl::ResourceExhaustedError(
                    absl::StrCat("frame of ", length, " bytes exceeds the in-flight budget of ",
                                 server.budget.capacity(), " bytes")));
      co_return;
    }

    // 4. Take budget before reading the body; when there is none, wait without reading.
    BudgetLease lease(&server.budget);
    if (length > 0) {
      if (!server.budget.TryAcquire(length)) {
        conn->phase = Phase::kBusy;
        const auto remaining = std::max(conn->deadline - Clock::now(), Clock::duration::zero());
        conn->ClearDeadline();  // the wait is the server's, not the client's.
        server.budget_waiters.fetch_add(1, std::memory_order_relaxed);
        server.budget_waits.fetch_add(1, std::memory_order_relaxed);
        auto [ec3] = co_await server.budget.AsyncAcquire(length, conn->socket.get_executor(), kUseTuple);
        server.budget_waiters.fetch_sub(1, std::memory_order_relaxed);
        if (ec3) co_return;  // stopping.
        conn->phase = Phase::kFrame;
        conn->SetDeadline(Clock::now() + remaining);
      }
      lease.Hold(length);
    }

    // 5. Read the body: what has arrived already without waiting (see ReadNow), the rest
    //    asynchronously.
    std::unique_ptr<char[]> body;
    if (length > 0) {
      body = std::make_unique_for_overwrite<char[]>(length);
      ErrorCode ec4;
      size_t n4 = conn->nonblocking ? ReadNow(conn->socket, body.get(), length, ec4) : 0;
      if (!ec4 && n4 < length) {
        auto [ec, n] = co_await asio::async_read(
            conn->socket, asio::buffer(body.get() + n4, length - n4), kUseTuple);
        ec4 = ec;
        n4 += n;
      }
      server.CountReceived(n4);
      if (conn->expired) {
        server.Log(absl::StrCat(conn->peer, ": frame deadline exceeded after ", n4, " of ",
                                length, " body bytes"));
        co_await SendErrorAndClose(conn, FrameDeadlineError(opt));
        co_return;
      }
      if (ec4) {
        LogReadError(*conn, ec4,
                     absl::StrCat("in the middle of a frame body (", n4, " of ", length,
                                  " bytes received)"));
        co_return;
      }
    }

    // 6. Take a session slot (at most worker_threads calls at once; see the file comment),
    //    then call the session right here, on this thread: no hand-off, no wake-up.
    conn->phase = Phase::kBusy;
    conn->ClearDeadline();
    if (!server.slots.TryAcquire(1)) {
      server.slot_waiters.fetch_add(1, std::memory_order_relaxed);
      server.slot_waits.fetch_add(1, std::memory_order_relaxed);
      auto [ec6] = co_await server.slots.AsyncAcquire(1, conn->socket.get_executor(), kUseTuple);
      server.slot_waiters.fetch_sub(1, std::memory_order_relaxed);
      if (ec6) co_return;  // stopping.
    }
    Reply reply;
    {
      BudgetLease slot(&server.slots);
      slot.Hold(1);
      reply = CallSession(conn->session.get(), std::string_view(body.get(), length), &server,
                          conn->peer);
    }
    if (conn->force_closed.load(std::memory_order_acquire)) co_return;  // Stop's grace ran out.
    body.reset();
    if (reply.body.size() > UINT32_MAX) {
      server.Log(absl::StrCat(conn->peer, ": reply of ", reply.body.size(),
                              " bytes cannot be framed"));
      reply = Reply{server.factory->ErrorFrame(absl::InternalError(absl::StrCat(
                        "reply of ", reply.body.size(), " bytes exceeds the 4 GiB frame limit"))),
                    true};
    }
    if (reply.close_after) {
      co_await LingerClose(conn, std::move(reply.body));
      co_return;
    }

    // 7. Write the reply under the frame deadline.
    conn->phase = Phase::kWriting;
    conn->SetDeadline(Clock::now() + opt.frame_deadline);
    const auto reply_header = EncodeLength(static_cast<uint32_t>(reply.body.size()));
    std::array<asio::const_buffer, 2> buffers{asio::buffer(reply_header),
                                              asio::buffer(reply.body)};
    ErrorCode ec5;
    if (conn->nonblocking) server.CountSent(WriteNow(conn->socket, buffers, ec5));
    if (!ec5 && asio::buffer_size(buffers) > 0) {
      auto [ec, n] = co_await asio::async_write(conn->socket, buffers, kUseTuple);
      server.CountSent(n);
      ec5 = ec;
    }
    if (conn->expired) {
      server.Log(absl::StrCat(conn->peer, ": reply not written within ", Ms(opt.frame_deadline),
                              " (client not reading); closing"));
      co_return;
    }
    if (ec5) {
      if (ec5 != asio::error::operation_aborted && ec5 != asio::error::bad_descriptor) {
        server.Log(absl::StrCat(conn->peer, ": write error: ", ec5.message()));
      }
      co_return;
    }
    server.frames_served.fetch_add(1, std::memory_order_relaxed);
    lease.Release();
  }
}

// Coroutine boundary of a served connection: nothing escapes it.
asio::awaitable<void> ServeConnection(std::shared_ptr<Connection> conn) {
  try {
    co_await ServeFrames(conn);
  } catch (const std::exception& e) {
    conn->server->Log(absl::StrCat(conn->peer, ": closing after an exception: ", e.what()));
  } catch (...) {
    conn->server->Log(absl::StrCat(conn->peer, ": closing after a non-standard exception"));
  }
  conn->Finish();
  conn->server->OnConnectionDone(conn.get(), /*served=*/true);
}

asio::awaitable<void> RefuseConnection(std::shared_ptr<Connection> conn, size_t limit) {
  try {
    co_await SendErrorAndClose(
        conn, absl::ResourceExhaustedError(absl::StrCat(
                  "too many connections (limit ", limit, "); try again later")));
  } catch (const std::exception& e) {
    conn->server->Log(absl::StrCat(conn->peer, ": refusing: ", e.what()));
  } catch (...) {
  }
  conn->Finish();
  conn->server->OnConnectionDone(conn.get(), /*served=*/false);
}

asio::awaitable<void> AcceptLoop(Server::Impl* server) {
  for (;;) {
    auto [ec, socket] = co_await server->acceptor.async_accept(
        asio::any_io_executor(asio::make_strand(server->io)), kUseTuple);
    if (ec) {
      if (ec == asio::error::operation_aborted || !server->acceptor.is_open()) co_return;
      server->Log(absl::StrCat("accept failed: ", ec.message(), "; retrying"));
      server->accept_backoff.expires_after(kAcceptErrorBackoff);
      co_await server->accept_backoff.async_wait(kUseTuple);  // aborted by Stop() or elapsed.
      if (!server->acceptor.is_open()) co_return;
      continue;
    }
    server->OnAccepted(std::move(socket));
  }
}

void LogException(Server::Impl* server, std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    server->Log(absl::StrCat("unexpected exception: ", ex.what()));
  } catch (...) {
    server->Log("unexpected non-standard exception");
  }
}

}  // namespace

void Server::Impl::OnAccepted(tcp::socket socket) {
  ErrorCode ec;
  socket.set_option(tcp::no_delay(true), ec);
  const tcp::endpoint remote = socket.remote_endpoint(ec);
  std::string peer = ec ? std::string("unknown peer") : FormatEndpoint(remote);
  auto conn = std::make_shared<Connection>(this, std::move(socket), std::move(peer));
  bool serve = false;
  {
    std::lock_guard<std::mutex> lock(conn_mu);
    if (stopping) return;  // `conn` closes its socket on destruction.
    if (open.load(std::memory_order_relaxed) < options.max_connections) {
      serve = true;
      open.fetch_add(1, std::memory_order_relaxed);
    } else if (refusing >= options.max_connections) {
      // Refusals in progress are bounded too: beyond that, close without an error frame.
      refused.fetch_add(1, std::memory_order_relaxed);
      return;
    } else {
      ++refusing;
    }
    connections.emplace(conn.get(), conn);
  }
  auto ex = conn->socket.get_executor();
  auto on_done = [this](std::exception_ptr e) { LogException(this, e); };
  if (serve) {
    accepted.fetch_add(1, std::memory_order_relaxed);
    asio::co_spawn(ex, ServeConnection(conn), on_done);
  } else {
    refused.fetch_add(1, std::memory_order_relaxed);
    Log(absl::StrCat(conn->peer, ": refused: too many connections (limit ",
                     options.max_connections, ")"));
    asio::co_spawn(ex, RefuseConnection(conn, options.max_connections), on_done);
  }
  asio::co_spawn(ex, Watchdog(conn), on_done);
}

void Server::Impl::OnConnectionDone(Connection* conn, bool served) {
  std::lock_guard<std::mutex> lock(conn_mu);
  connections.erase(conn);
  if (served) {
    open.fetch_sub(1, std::memory_order_relaxed);
  } else {
    --refusing;
  }
  conn_cv.notify_all();
}

void Server::Impl::StopImpl() {
  {
    std::unique_lock<std::mutex> lock(stop_mu);
    if (stop_started) {
      stop_cv.wait(lock, [this] { return stopped; });
      return;
    }
    stop_started = true;
  }

  // 1. Stop accepting; ask every connection to finish its current frame and close.
  std::vector<std::shared_ptr<Connection>> live;
  {
    std::lock_guard<std::mutex> lock(conn_mu);
    stopping = true;
    for (auto& [ptr, conn] : connections) live.push_back(conn);
  }
  asio::post(accept_strand, [this] {
    ErrorCode ignored;
    acceptor.close(ignored);
    accept_backoff.cancel();
  });
  for (auto& conn : live) {
    asio::post(conn->socket.get_executor(), [conn] { conn->RequestStop(); });
  }
  live.clear();

  // 2. Bounded wait for in-flight frames; then close what is left.
  std::unique_lock<std::mutex> lock(conn_mu);
  if (!conn_cv.wait_for(lock, options.stop_grace, [this] { return connections.empty(); })) {
    for (auto& [ptr, conn] : connections) live.push_back(conn);
    Log(absl::StrCat("stop: ", live.size(), " connection(s) still busy after ",
                     Ms(options.stop_grace), "; closing them"));
    lock.unlock();
    budget.Shutdown();
    slots.Shutdown();  // frames still waiting for a session slot give up.
    for (auto& conn : live) {
      conn->force_closed.store(true, std::memory_order_release);
      asio::post(conn->socket.get_executor(), [conn] { conn->ForceClose(); });
    }
    live.clear();
    lock.lock();
    // Connections whose session call is still running end when it returns.
    conn_cv.wait(lock, [this] { return connections.empty(); });
  }
  lock.unlock();
  budget.Shutdown();
  slots.Shutdown();

  // 3. Let the I/O threads run out of work (watchdogs and the accept loop end by themselves);
  //    stop the io_context only if something unexpected is still pending after a second.
  work_guard.reset();
  {
    std::unique_lock<std::mutex> stop_lock(stop_mu);
    if (!stop_cv.wait_for(stop_lock, std::chrono::seconds(1),
                          [this] { return io_threads_running == 0; })) {
      io.stop();
    }
  }
  for (std::thread& t : threads) t.join();
  threads.clear();

  {
    std::lock_guard<std::mutex> stop_lock(stop_mu);
    stopped = true;
  }
  stop_cv.notify_all();
}

// ---------------------------------------------------------------------------------------------

std::string Endpoint::ToString() const {
  if (host.find(':') != std::string::npos) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

absl::StatusOr<Endpoint> ParseEndpoint(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid address \"", Sv(text), "\": ", Sv(why), " (expected HOST:PORT, e.g. "
                     "127.0.0.1:7700 or [::1]:7700)"));
  };
  Endpoint endpoint;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) return bad("missing ']'");
    endpoint.host = std::string(text.substr(1, close - 1));
    if (close + 1 >= text.size() || text[close + 1] != ':') return bad("missing :PORT");
    port_text = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad("missing :PORT");
    endpoint.host = std::string(text.substr(0, colon));
    if (endpoint.host.find(':') != std::string::npos) {
      return bad("an IPv6 host must be in brackets");
    }
    port_text = text.substr(colon + 1);
  }
  if (endpoint.host.empty()) return bad("empty host");
  uint32_t port = 0;
  if (port_text.empty() ||
      port_text.find_first_not_of("0123456789") != std::string_view::npos ||
      port_text.size() > 5 || !absl::SimpleAtoi(Sv(port_text), &port) || port > 65535) {
    return bad("the port must be a number from 0 to 65535");
  }
  endpoint.port = static_cast<uint16_t>(port);
  return endpoint;
}

void ServerOptions::DefaultLog(std::string_view line) {
  // One write per line so that lines from several threads do not interleave.
  std::string out = absl::StrCat("rosettad: ", Sv(line), "\n");
  std::cerr.write(out.data(), static_cast<std::streamsize>(out.size()));
  std::cerr.flush();
}

namespace {

// CheckServerOptions, returning the address to bind.
absl::StatusOr<asio::ip::address> ResolveListenAddress(const ServerOptions& options) {
  if (options.max_connections == 0) {
    return absl::InvalidArgumentError("server: max_connections must be at least 1");
  }
  if (options.max_frame_bytes == 0) {
    return absl::InvalidArgumentError("server: max_frame_bytes must be at least 1");
  }
  if (options.max_prehello_frame_bytes == 0 ||
      options.max_prehello_frame_bytes > options.max_frame_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("server: max_prehello_frame_bytes (", options.max_prehello_frame_bytes,
                     ") must be from 1 to max_frame_bytes (", options.max_frame_bytes, ")"));
  }
  if (options.frame_deadline.count() <= 0 || options.idle_timeout.count() <= 0) {
    return absl::InvalidArgumentError("server: frame_deadline and idle_timeout must be positive");
  }
  if (options.close_linger.count() < 0 || options.stop_grace.count() < 0) {
    return absl::InvalidArgumentError("server: close_linger and stop_grace must not be negative");
  }
  if (options.inflight_budget_bytes == 0) {
    return absl::InvalidArgumentError("server: inflight_budget_bytes must be at least 1");
  }

  ErrorCode ec;
  asio::ip::address address = asio::ip::make_address(options.host, ec);
  if (ec) {
    if (options.host != "localhost") {
      return absl::InvalidArgumentError(absl::StrCat(
          "server: listen host \"", options.host,
          "\" is not an IP address (use an address such as 127.0.0.1, 0.0.0.0 or ::1)"));
    }
    address = asio::ip::address_v4::loopback();
  }
  const Endpoint wanted{address.to_string(), options.port};
  if (!options.auth_configured && !IsLoopback(address)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "refusing to listen on ", wanted.ToString(),
        " without authentication: no tokens are configured, so anyone who can reach this "
        "address could read and change every collection. Configure tokens (--token ROLE:TOKEN "
        "or --token-file FILE), or listen on a loopback address such as 127.0.0.1"));
  }

  return address;
}

}  // namespace

absl::Status CheckServerOptions(const ServerOptions& options) {
  return ResolveListenAddress(options).status();
}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const ServerOptions& options,
                                                      SessionFactory* factory) {
  if (factory == nullptr) return absl::InvalidArgumentError("server: no session factory");
  ASSIGN_OR_RETURN(const asio::ip::address address, ResolveListenAddress(options));
  const Endpoint wanted{address.to_string(), options.port};

  ErrorCode ec;
  const size_t hw = std::max<size_t>(1, std::thread::hardware_concurrency());
  const size_t io_count = options.io_threads > 0 ? options.io_threads : (hw <= 4 ? 1 : 2);
  const size_t worker_count = options.worker_threads > 0 ? options.worker_threads : hw;
  auto impl = std::make_unique<Impl>(options, factory, io_count, worker_count);
  const size_t thread_count = impl->thread_count;

  const tcp::endpoint endpoint(address, options.port);
  auto fail = [&](std::string_view what) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", wanted.ToString(), ": ", Sv(what), ": ", ec.message()));
  };
  impl->acceptor.open(endpoint.protocol(), ec);
  if (ec) return fail("socket");
  impl->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (ec) return fail("SO_REUSEADDR");
  impl->acceptor.bind(endpoint, ec);
  if (ec) return fail("bind");
  impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return fail("listen");
  const tcp::endpoint local = impl->acceptor.local_endpoint(ec);
  if (ec) return fail("local address");
  impl->bound = Endpoint{local.address().to_string(), local.port()};

  Impl* raw = impl.get();
  asio::co_spawn(raw->accept_strand, AcceptLoop(raw),
                 [raw](std::exception_ptr e) { LogException(raw, e); });
  {
    std::lock_guard<std::mutex> lock(raw->stop_mu);
    raw->io_threads_running = thread_count;
  }
  try {
    for (size_t i = 0; i < thread_count; ++i) {
      raw->threads.emplace_back([raw] {
        // Handlers never throw by design (error codes, caught coroutine boundaries); the loop
        // keeps a stray exception from taking the process down.
        for (;;) {
          try {
            raw->io.run();
            break;
          } catch (const std::exception& e) {
            raw->Log(absl::StrCat("I/O thread: unexpected exception: ", e.what()));
          } catch (...) {
            raw->Log("I/O thread: unexpected non-standard exception");
          }
        }
        {
          std::lock_guard<std::mutex> lock(raw->stop_mu);
          --raw->io_threads_running;
        }
        raw->stop_cv.notify_all();
      });
    }
  } catch (const std::system_error& e) {
    {
      std::lock_guard<std::mutex> lock(raw->stop_mu);
      raw->io_threads_running -= thread_count - raw->threads.size();
    }
    raw->StopImpl();
    return absl::ResourceExhaustedError(absl::StrCat("server: cannot start threads: ", e.what()));
  }
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() { Stop(); }

Endpoint Server::endpoint() const { return impl_->bound; }

void Server::Stop() { impl_->StopImpl(); }

void Server::Wait() {
  std::unique_lock<std::mutex> lock(impl_->stop_mu);
  impl_->stop_cv.wait(lock, [this] { return impl_->stopped; });
}

ServerStats Server::stats() const {
  ServerStats s;
  s.connections_accepted = impl_->accepted.load(std::memory_order_relaxed);
  s.connections_refused = impl_->refused.load(std::memory_order_relaxed);
  s.connections_open = impl_->open.load(std::memory_order_relaxed);
  s.frames_served = impl_->frames_served.load(std::memory_order_relaxed);
  s.budget_waiters = impl_->budget_waiters.load(std::memory_order_relaxed);
  s.budget_waits = impl_->budget_waits.load(std::memory_order_relaxed);
  s.slot_waiters = impl_->slot_waiters.load(std::memory_order_relaxed);
  s.slot_waits = impl_->slot_waits.load(std::memory_order_relaxed);
  s.inflight_bytes = impl_->budget.in_use();
  s.bytes_received = impl_->bytes_received.load(std::memory_order_relaxed);
  s.bytes_sent = impl_->bytes_sent.load(std::memory_order_relaxed);
  return s;
}

}  // namespace rosetta::net
