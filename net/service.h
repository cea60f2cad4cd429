// The server side of the wire protocol: a SessionFactory (net/session.h) whose sessions decode
// request frames, authenticate, dispatch each request to a Client and encode the replies.
//
// The Client is normally the EmbeddedClient of the server's data directory, so a request served
// over the wire has exactly the embedded semantics: the same validation, the same errors (code
// and message), the same results. The service adds only what a network needs:
//
// Session lifecycle (one Session per connection; the transport serialises calls per session):
//   1. Before Hello, the only acceptable frame is a valid Hello. Anything else is answered with
//      an Error frame and the connection is closed (Reply::close_after):
//        - another message:      FAILED_PRECONDITION `expected Hello as the first message, got
//                                Upsert`
//        - another version:      FAILED_PRECONDITION `protocol version mismatch: the client speaks
//                                version 2, this server speaks version 1`
//        - no / unknown token:   UNAUTHENTICATED `this server requires a token` /
//                                UNAUTHENTICATED `invalid token`
//        - any decode error (malformed or semantic), with its message.
//      A valid Hello gets a HelloReply (server version, protocol version, kernel backend, the data
//      directory for admin sessions only, the number of collections, max_frame_bytes, the role).
//   2. After Hello, each request frame gets exactly one reply frame echoing its request_id:
//        - a malformed frame (net/protocol.h DecodeFailure::malformed): Error, then close;
//        - a semantic decode error: Error, connection kept;
//        - a second Hello: FAILED_PRECONDITION `Hello was already completed on this connection`;
//        - a reply message sent as a request: INVALID_ARGUMENT `Ok is a reply, not a request`;
//        - a request the session's role may not make: PERMISSION_DENIED (net/auth.h), checked
//          before the request touches anything, so it reveals nothing about collections;
//        - otherwise the Client's result (or its error, code and message unchanged);
//        - a reply that would exceed max_frame_bytes: RESOURCE_EXHAUSTED `reply too large: ...`.
//      Stats is answered with the Client's Stats() (the engine's telemetry) plus the service's
//      own: per request type the latency from the decoded request to the encoded reply
//      (engine::LatencyHistogram, "request.<type>", errors = requests answered with an Error),
//      and the transport's counters when a source is set (SetTransportCounters).
//   OnFrame never throws; an exception escaping the Client (a bug) or an allocation failure is
//   answered with INTERNAL and the connection is closed.
//
// Thread safety: the factory may be used from any number of threads (NewSession, ErrorFrame);
// a Session is used by one thread at a time. The Client must be thread-safe (EmbeddedClient is).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "engine/telemetry.h"
#include "net/auth.h"
#include "net/client.h"
#include "net/protocol.h"
#include "net/session.h"

namespace rosetta::net {

struct ServiceOptions {
  // The largest frame body a reply may have; reported to clients in HelloReply as the largest
  // request they may send. Must equal the transport's ServerOptions::max_frame_bytes (which
  // enforces it on requests). Capped at kMaxFrameBytesCeiling. Default: kDefaultMaxFrameBytes.
  size_t max_frame_bytes = kDefaultMaxFrameBytes;
  // Verifier limits and decode budget (defaults: net/protocol.h DecodeOptions).
  DecodeOptions decode;
};

// The transport's counters as StatsReply reports them (net/server.h ServerStats).
struct TransportCounters {
  int64_t connections_open = 0;
  int64_t connections_accepted = 0;
  int64_t connections_refused = 0;
  int64_t bytes_received = 0;
  int64_t bytes_sent = 0;
};

// The request types whose latency the service records: Hello, then every Operation (net/auth.h
// kAllOperations order). Names: "request.hello", "request.list_collections", ...,
// "request.build_index", "request.index_progress", "request.stats".
inline constexpr size_t kRequestTypes = 1 + std::size(kAllOperations);

class ServiceFactory final : public SessionFactory {
 public:
  // `client` is borrowed: it must outlive the factory and every session. `info` supplies the
  // HelloReply's server version, kernel backend and data directory (typically client->Info()).
  ServiceFactory(Client* client, AuthConfig auth, ServerInfo info, ServiceOptions options = {});

  std::unique_ptr<Session> NewSession(const std::string& peer) override;

  // An Error frame with request id 0 carrying `status`.
  std::string ErrorFrame(const absl::Status& status) override;

  const AuthConfig& auth() const { return auth_; }

  // Where Stats replies take the transport's connection and byte counters from (rosettad: the
  // net::Server's stats()). Optional: without a source they are 0 (tests without a transport).
  // Thread-safe, also while sessions run; pass nullptr to clear it before the source goes away.
  void SetTransportCounters(std::function<TransportCounters()> source);

  // The latency of every request type received at least once since the factory was created,
  // in kRequestTypes order (what StatsReply.requests carries). Thread-safe.
  std::vector<LatencyStats> RequestLatencies() const;

 private:
  friend class ServiceSession;
  TransportCounters Transport() const;

  Client* const client_;
  const AuthConfig auth_;
  const ServerInfo info_;
  const ServiceOptions options_;
  // One histogram per request type (index: 0 = Hello, 1 + position in kAllOperations).
  std::array<engine::LatencyHistogram, kRequestTypes> request_latency_;
  mutable std::mutex transport_mu_;
  std::function<TransportCounters()> transport_;  // guarded by transport_mu_.
};

}  // namespace rosetta::net
