// The seam between the server's transport (net/server.h: sockets, framing, limits, deadlines)
// and the protocol (net/service.h: flatbuffers messages, Hello, auth, dispatch to the engine).
//
// The transport owns connections and frames. For each connection it creates one Session; for each
// complete frame body read from that connection (the bytes after the 4-byte little-endian length
// prefix) it calls Session::OnFrame, one frame at a time per connection, in arrival order, and
// writes the returned reply as one frame. OnFrame runs on one of the server's threads, with at
// most ServerOptions::worker_threads calls running at once (net/server.h "Threads and
// ordering" explains why that never stalls other connections); it may block (engine calls do).
//
// Transport-level failures (oversized length prefix, frame deadline exceeded, connection cap)
// are answered by the transport itself with Session-independent error frames built by
// ErrorFrameFactory (so the transport needs no flatbuffers knowledge) and the connection is
// closed.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace rosetta::net {

struct Reply {
  std::string body;          // the reply frame body (without the length prefix); may be empty
                             // only if close_after is set (close without replying).
  bool close_after = false;  // close the connection after writing `body` (malformed frame).
};

class Session {
 public:
  virtual ~Session() = default;

  // Handles one frame body. Must not throw; thread-compatible (calls are serialised per session).
  virtual Reply OnFrame(std::string_view body) = 0;

  // Until the client has completed Hello, the transport caps frames at
  // ServerOptions::max_prehello_frame_bytes (a few KiB) instead of max_frame_bytes.
  virtual bool hello_done() const = 0;
};

class SessionFactory {
 public:
  virtual ~SessionFactory() = default;
  // `peer` is "ip:port" of the client, for logs.
  virtual std::unique_ptr<Session> NewSession(const std::string& peer) = 0;

  // A complete error frame body carrying `status` (request id 0), for errors the transport
  // detects before or outside a Session (too many connections, frame too large, deadline).
  virtual std::string ErrorFrame(const absl::Status& status) = 0;
};

}  // namespace rosetta::net
