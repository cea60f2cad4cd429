// The remote client: the Client interface (net/client.h) spoken to a rosettad server over the
// wire protocol (net/protocol.h, docs/PROTOCOL.md). This is what `rosetta --server HOST:PORT`
// uses, and what C++ applications link to talk to a server.
//
// Semantics equal the embedded client's: the server runs the same engine calls, and its errors
// come back as absl::Status values with the server's code and message unchanged, so the CLI
// prints the same `error: CODE: message` in both modes. Errors of the connection itself:
//   - UNAVAILABLE `cannot connect to 127.0.0.1:7700: Connection refused` (resolve / connect);
//   - DEADLINE_EXCEEDED `no reply from 127.0.0.1:7700 within 60000 ms` (the connection is then
//     closed: a late reply could not be matched to its request any more);
//   - UNAVAILABLE `the server closed the connection (127.0.0.1:7700)`;
//   - after any of these, every later call fails with UNAVAILABLE `the connection to
//     127.0.0.1:7700 is closed (after: <the first error>)`; connect again to continue;
//   - INTERNAL `malformed reply from 127.0.0.1:7700: ...` for a reply that does not decode or
//     does not answer the request (also closes the connection);
//   - RESOURCE_EXHAUSTED `Upsert frame of N bytes exceeds the maximum frame size of M bytes`,
//     checked before sending, with the limit the server announced in its HelloReply.
// Like the embedded client, Upsert / Import refuse more than engine::kMaxBatchRecords records
// and an Import whose data size is not rows * dim, with the same messages, before sending.
// BuildIndex, IndexProgress and Stats are one request each (docs/PROTOCOL.md); Stats carries the
// server's request latencies and transport counters besides the engine's.
//
// Connecting performs the Hello: protocol version, token (may be empty for an open server) and
// client name; a refusal is returned as the server's error (UNAUTHENTICATED `invalid token`,
// FAILED_PRECONDITION `protocol version mismatch: ...`). Info() then reports {server version,
// mode "server", kernel backend, data directory (admin tokens only, else "")}.
//
// Thread safety: every method may be called from any thread; calls are serialised on the one
// connection (one request in flight at a time). Use one client per thread for parallelism.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "net/client.h"
#include "net/protocol.h"

namespace rosetta::net {

struct RemoteClientOptions {
  // Resolving, connecting and the Hello together. Default: 10 s.
  std::chrono::milliseconds connect_timeout{10'000};
  // One call: sending the request and receiving the whole reply. Default: 300 s (an import
  // batch is committed durably before its reply).
  std::chrono::milliseconds timeout{300'000};
  // Sent in Hello for the server's logs (at most kMaxClientNameBytes).
  std::string client_name = "rosetta-cpp";
  // The largest reply accepted; 0 = the max_frame_bytes the server announces in HelloReply.
  size_t max_reply_bytes = 0;
};

// Connects to a server at host:port (an IP literal or a host name) and performs the Hello.
absl::StatusOr<std::unique_ptr<Client>> ConnectRemoteClient(const std::string& host,
                                                           uint16_t port,
                                                           const std::string& token,
                                                           const RemoteClientOptions& options = {});

// The byte pipe under a protocol client: one request frame body out, one reply frame body back.
// ConnectRemoteClient uses TCP; tests plug in a Session directly (no sockets). Implementations
// return errors as described above for the connection (Unavailable, DeadlineExceeded, ...).
class FrameTransport {
 public:
  virtual ~FrameTransport() = default;
  // Sends `request` (a frame body, without length prefix) and returns the next reply frame body,
  // refusing replies over `max_reply_bytes`.
  virtual absl::StatusOr<std::string> RoundTrip(std::string_view request,
                                                size_t max_reply_bytes) = 0;
  // "host:port" or another name for messages.
  virtual std::string name() const = 0;
};

// The protocol client over any transport (performs the Hello). ConnectRemoteClient is this over
// a TCP transport.
absl::StatusOr<std::unique_ptr<Client>> NewProtocolClient(std::unique_ptr<FrameTransport> transport,
                                                          const std::string& token,
                                                          const RemoteClientOptions& options = {});

}  // namespace rosetta::net
