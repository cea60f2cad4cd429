// The server transport: TCP listener, framing, limits, deadlines, backpressure and graceful stop.
//
// The transport knows nothing of the wire protocol's messages. It speaks only the framing
// (docs/PROTOCOL.md): each frame is a 4-byte little-endian unsigned length N followed by N body
// bytes. For every connection it creates one Session (net/session.h) from the SessionFactory and
// hands it each complete frame body; the Session returns the reply body, which the transport
// writes back as one frame.
//
// Threads and ordering
//   - The server runs `io_threads + worker_threads` threads, all serving the sockets; each
//     connection is a coroutine on its own strand.
//   - Session::OnFrame is called on the thread that read the frame (no hand-off to another
//     thread, which would cost a wake-up of a sleeping thread each way: the bulk of the latency
//     the server added to a small request before), but only while the frame holds one of
//     `worker_threads` session slots. A frame arriving when all slots are taken waits, without
//     blocking any thread, for the next free slot (FIFO, in arrival order).
//   - The guarantee that a slow Session call never stalls other connections holds by
//     construction: at most `worker_threads` threads are inside Session calls at any moment, so
//     at least `io_threads` threads are always free to read and write other connections, enforce
//     deadlines and accept (and refuse) connections. Other connections' frames may of course
//     wait for a session slot when all are busy with slow calls, as they would wait for a worker.
//   - Per connection, frames are handled strictly one at a time in arrival order: the next frame
//     is not read before the previous reply has been written. A client may pipeline; its frames
//     wait in the socket (TCP flow control then slows the client down).
//   - Sockets have TCP_NODELAY set (replies are written as one gathered write: no Nagle delay).
//
// Limits (all per ServerOptions; each violation is answered with an error frame built by
// SessionFactory::ErrorFrame, then the connection is closed):
//   - a length prefix above max_frame_bytes (max_prehello_frame_bytes until the session reports
//     hello_done()) is rejected before anything is allocated:
//       InvalidArgument "frame of N bytes exceeds the limit M"
//   - a frame must arrive whole, from the first byte of its length prefix to its last body byte,
//     within frame_deadline (one deadline for the whole frame, not per read: a client trickling
//     a byte a second is cut off): DeadlineExceeded "frame not received within N ms ...".
//   - a connection on which no frame starts within idle_timeout is closed:
//     Unavailable "idle for N ms ...".
//   - at max_connections open connections, new connections are accepted and immediately refused
//     with ResourceExhausted "too many connections (limit N) ..." (the accept loop keeps
//     running, so clients get a clear error instead of a hanging connect).
//   - frame bodies in flight (read but not yet answered) hold bytes of a global budget,
//     inflight_budget_bytes. The budget is taken after the length prefix is read and before the
//     body is read; when it is exhausted the connection simply waits, without reading, until
//     other frames are answered (backpressure). A single frame larger than the whole budget can
//     never be served: ResourceExhausted "frame of N bytes exceeds the in-flight budget of M".
//   - replies: writing a reply must finish within frame_deadline too (a client that never
//     reads its replies is cut off, without an error frame since it is not reading).
//
// Replies: Reply::body is written as one frame (an empty body with !close_after is written as a
// zero-length frame); with Reply::close_after the connection is closed after it (see Closing).
//
// Closing: after an error frame the transport shuts down its sending side and reads (and drops)
// what the client still sends for up to close_linger before closing, so the error frame is not
// destroyed by a TCP reset caused by unread input.
//
// Nothing a client sends raises an exception out of the transport or stops other connections:
// I/O errors are error codes; an exception from a session or an allocation failure is caught at
// the connection's coroutine boundary, logged, and closes only that connection.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "net/session.h"

namespace rosetta::net {

// Where the server listens, or where a client connects.
struct Endpoint {
  std::string host;   // an IP literal ("127.0.0.1", "::1") or "localhost".
  uint16_t port = 0;  // 0 when listening: pick a free port (see Server::endpoint()).

  // "127.0.0.1:7700"; IPv6 hosts are bracketed: "[::1]:7700".
  std::string ToString() const;
};

// Parses "HOST:PORT" ("127.0.0.1:7700", "localhost:0", "[::1]:7700"). InvalidArgument naming the
// text and the problem for anything else (missing port, port above 65535, empty host).
absl::StatusOr<Endpoint> ParseEndpoint(std::string_view text);

struct ServerOptions {
  // Address to listen on. Default: 127.0.0.1:7700. Port 0 picks a free port.
  // A non-loopback address is refused unless auth_configured is set (see Server::Start).
  std::string host = "127.0.0.1";
  uint16_t port = 7700;

  // Whether the SessionFactory enforces tokens (at least one token is configured). The transport
  // does not check tokens itself; it uses this only to refuse exposing an unauthenticated server
  // beyond loopback. Default: false.
  bool auth_configured = false;

  // Threads kept free for socket I/O whatever the sessions do: the server runs io_threads +
  // worker_threads threads and at most worker_threads of them are in Session calls at once
  // (see "Threads and ordering"). 0 = automatic: 1 on machines with at most 4 hardware
  // threads, else 2. Default: 0.
  size_t io_threads = 0;

  // Session::OnFrame calls (engine calls) running at once, at most; as many more threads are
  // started. 0 = the hardware concurrency. Default: 0.
  size_t worker_threads = 0;

  // Open connections at most; further connections are refused with an error frame. Default: 1024.
  size_t max_connections = 1024;

  // Largest frame body accepted once the session has completed Hello, in bytes. At most
  // 0xFFFFFFFF (the length prefix is 32 bits). Default: 256 MiB.
  uint32_t max_frame_bytes = 256u << 20;

  // Largest frame body accepted before the session reports hello_done(), in bytes: an
  // unauthenticated client cannot make the server allocate more than this. Default: 4 KiB.
  uint32_t max_prehello_frame_bytes = 4u << 10;

  // Time allowed for one whole frame, from the first byte of its length prefix to its last body
  // byte (time spent waiting for the in-flight budget is not counted: that wait is the server's).
  // Also bounds writing one reply. Default: 30 s.
  std::chrono::milliseconds frame_deadline{30'000};

  // A connection on which no new frame starts for this long is closed. Default: 300 s.
  std::chrono::milliseconds idle_timeout{300'000};

  // Global budget for frame bodies in flight (read and not yet answered), in bytes. Default:
  // 512 MiB. Must be at least 1.
  size_t inflight_budget_bytes = size_t{512} << 20;

  // After an error frame, how long the transport keeps draining the client's input before it
  // closes the socket (see "Closing" above). Default: 1 s.
  std::chrono::milliseconds close_linger{1'000};

  // Stop(): how long in-flight frames get to finish before the remaining connections are closed
  // forcibly. Default: 10 s.
  std::chrono::milliseconds stop_grace{10'000};

  // Receives one line per noteworthy event (refused connections, protocol violations, deadlines,
  // exceptions). Called from I/O threads, concurrently; must be thread-safe. Default: writes the
  // line to stderr prefixed with "rosettad: ".
  std::function<void(std::string_view)> log = DefaultLog;

  static void DefaultLog(std::string_view line);
};

// Counters for tests and operations. A snapshot: each field is read atomically, not all
// together.
struct ServerStats {
  uint64_t connections_accepted = 0;  // served connections ever accepted (refusals excluded).
  uint64_t connections_refused = 0;   // refused at max_connections.
  uint64_t connections_open = 0;      // served connections open now.
  uint64_t frames_served = 0;         // replies written.
  uint64_t budget_waiters = 0;        // connections now waiting for in-flight budget.
  uint64_t budget_waits = 0;          // times a connection had to wait for budget, ever.
  uint64_t slot_waiters = 0;          // frames now waiting for a session slot.
  uint64_t slot_waits = 0;            // times a frame had to wait for a session slot, ever.
  uint64_t inflight_bytes = 0;        // budget bytes held now.
  uint64_t bytes_received = 0;        // bytes read from clients, ever (length prefixes included).
  uint64_t bytes_sent = 0;            // bytes written to clients, ever (length prefixes included).
};

// The checks Server::Start makes before binding (the options' ranges, the host, and the refusal
// of a non-loopback address without auth), with the same errors. Lets a caller fail before it
// does anything else (rosettad calls it before opening the data directory).
absl::Status CheckServerOptions(const ServerOptions& options);

class Server {
 public:
  // Binds, listens and starts serving. `factory` is borrowed and must outlive the Server.
  // Errors:
  //   - InvalidArgument: an option out of range (names it), or a host that is not an IP literal
  //     or "localhost";
  //   - FailedPrecondition: a non-loopback address while !options.auth_configured. Like Redis'
  //     protected mode, a server without tokens is reachable only from this machine; configure
  //     tokens (rosettad --token / --token-file) to listen on other interfaces;
  //   - Unavailable: the address cannot be bound (in use, not local, no permission).
  static absl::StatusOr<std::unique_ptr<Server>> Start(const ServerOptions& options,
                                                       SessionFactory* factory);

  // Calls Stop().
  ~Server();

  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // The address actually bound: the chosen port when options.port was 0.
  Endpoint endpoint() const;

  // Graceful stop, in the order of Seastar's http_server::stop(): stop accepting; close idle
  // connections; let every frame already started finish (read, handled, reply written) for up
  // to options.stop_grace; then close the remaining connections forcibly (frames waiting for a
  // session slot are dropped; a connection whose Session call is still running is closed, its
  // reply dropped, when the call returns: an engine call is never interrupted, so this last
  // wait is as long as the slowest call); join all threads. Idempotent and thread-safe; must not be called from
  // a Session callback or an I/O thread. Closing storage is the caller's next step.
  void Stop();

  // Blocks until Stop() has completed (called by another thread).
  void Wait();

  // Thread-safe and cheap (relaxed atomic loads); may be called from any thread, also from a
  // Session call (the service reports it in StatsReply).
  ServerStats stats() const;

  struct Impl;  // public so the implementation's free functions can name it; opaque here.

 private:
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rosetta::net
