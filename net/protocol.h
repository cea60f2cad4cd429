// The wire protocol codec: frames <-> the data model (schema/types.h, net/client.h).
//
// The protocol (schema/protocol.fbs; docs/PROTOCOL.md is the language-neutral description):
//   - TCP. Each frame is a 4-byte little-endian unsigned length N followed by N bytes of body:
//     one flatbuffers `rosetta.wire.Frame` with file identifier "RSTA" (bytes 4..7 of the body).
//   - The client sends Hello first; before the Hello completes, frames are capped at
//     kMaxPreHelloFrameBytes. Afterwards at the server's max frame size (kDefaultMaxFrameBytes
//     unless configured; HelloReply.max_frame_bytes says which).
//   - Every request carries a client-chosen request_id; its reply echoes it. Replies come in
//     request order per connection, so a client may pipeline.
//
// This header has no I/O: it turns Messages into frame bodies (EncodeFrame) and frame bodies
// into Messages (DecodeFrame). net/service.h is the server side, net/remote_client.h the client.
//
// Decoding (DecodeFrame) is safe on any bytes. It runs in two stages:
//   1. Structure ("malformed" frames: the server answers with an error and closes the
//      connection): body size, file identifier, flatbuffers::Verifier with explicit limits
//      (DecodeOptions: depth, table count, size), a message present, and a decoding budget that
//      bounds the memory a frame can expand to (a crafted frame can point many offsets at one
//      big vector).
//   2. Semantics (the server answers with an error and keeps the connection): enum values in
//      range (the verifier does not check them), unknown message types (a newer peer's message),
//      required fields present, names unique in name-keyed lists, typed values consistent with
//      their type tag, Import data length == rows * dim, batch sizes, Error codes, Hello sizes,
//      index types in range, unique names in a search plan, a segment's field list and the
//      latency lists of StatsReply.
//   Checks that need a schema (dims, k, NaN, names that exist) are the engine's, as in embedded
//   mode, so the same request fails with the same message either way.
//   Every error is InvalidArgument, with a message naming the place in the frame, e.g.
//   `malformed frame: flatbuffers verification failed (...)` or
//   `Upsert.records[3].attributes[1].value: type is Int but string_value is set`.
//
// Encoding (EncodeFrame) never aborts: a message whose frame would exceed `max_frame_bytes` (or
// the flatbuffers 2 GiB ceiling) is ResourceExhausted, naming the message, its size and the
// limit, checked before anything big is built.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "net/auth.h"
#include "net/client.h"
#include "schema/types.h"

namespace rosetta::net {

// ---------------------------------------------------------------------------------------------
// Constants
// ---------------------------------------------------------------------------------------------

// The protocol version spoken by this build. A Hello with another version is refused (see
// docs/PROTOCOL.md "Versioning"); additive changes (new fields, new messages) keep the version.
inline constexpr uint32_t kProtocolVersion = 1;

// The flatbuffers file identifier of every frame body (bytes 4..7).
inline constexpr char kFileIdentifier[] = "RSTA";

// Bytes of the length prefix.
inline constexpr size_t kFrameHeaderBytes = 4;

// The default largest frame body a server accepts and sends: 256 MiB (the same default as
// net/server.h ServerOptions::max_frame_bytes). One atomic import batch of the CLI's 65536 rows
// fits up to 1023 components per row (65536 x 1023 x 4 bytes + overhead); larger rows need
// smaller batches or a larger limit.
inline constexpr size_t kDefaultMaxFrameBytes = size_t{256} << 20;

// The cap on frame bodies before Hello completes: 4 KiB (a Hello with the longest token fits).
inline constexpr size_t kMaxPreHelloFrameBytes = 4096;

// The largest frame body anyone may configure or send: just under flatbuffers' 2 GiB limit.
inline constexpr size_t kMaxFrameBytesCeiling = (size_t{1} << 31) - (size_t{1} << 20);

// Hello.client is at most this many bytes.
inline constexpr size_t kMaxClientNameBytes = 256;

// Error.message is truncated to this many bytes when encoded.
inline constexpr size_t kMaxErrorMessageBytes = 16384;

// ---------------------------------------------------------------------------------------------
// Framing (the 4-byte little-endian length prefix)
// ---------------------------------------------------------------------------------------------

void EncodeFrameLength(uint32_t length, unsigned char out[kFrameHeaderBytes]);
uint32_t DecodeFrameLength(const unsigned char in[kFrameHeaderBytes]);

// Checks a received length prefix: InvalidArgument `malformed frame: empty frame (length 0)` for
// 0, ResourceExhausted `frame of N bytes exceeds the limit of M bytes` above `max_frame_bytes`.
absl::Status CheckFrameLength(uint32_t length, size_t max_frame_bytes);

// `body` with its length prefix (for tests and simple clients; real I/O writes both parts).
// Precondition: body.size() <= kMaxFrameBytesCeiling.
std::string WithLengthPrefix(std::string_view body);

// ---------------------------------------------------------------------------------------------
// Messages (the C++ form of schema/protocol.fbs's Message union)
// ---------------------------------------------------------------------------------------------

namespace msg {

// Requests.
struct Hello {
  uint32_t protocol_version = kProtocolVersion;
  std::string token;   // "" = none.
  std::string client;  // e.g. "rosetta-cli 0.1.0"; at most kMaxClientNameBytes.
};
struct CreateCollection {
  CollectionSchema schema;
};
struct ListCollections {};
struct Describe {
  std::string collection;
};
struct DropCollection {
  std::string collection;
};
struct Upsert {
  std::string collection;
  std::vector<Record> records;
};
// request.data is a view. When encoding, it points at the caller's floats. When decoded, it
// points either into the decoded frame body (when suitably aligned: zero copy; then the body must
// outlive the message) or into `storage`. Move-only, so the view never dangles after a copy.
struct Import {
  Import() = default;
  Import(Import&&) = default;
  Import& operator=(Import&&) = default;
  Import(const Import&) = delete;
  Import& operator=(const Import&) = delete;

  ImportRequest request;
  std::vector<float> storage;
};
struct Get {
  std::string collection;
  std::vector<std::string> ids;
  bool with_vectors = false;
};
struct Delete {
  std::string collection;
  std::vector<std::string> ids;
};
struct Search {
  std::string collection;
  std::vector<SearchRequest> requests;
};
// Answered by IndexBuildProgress (wire: IndexProgressReply).
struct BuildIndex {
  std::string collection;
  std::string field;  // "" = every ivf_pq field.
};
// Answered by IndexBuildProgress (wire: IndexProgressReply).
struct IndexProgress {
  std::string collection;
};
// Answered by DatabaseStats (wire: StatsReply).
struct Stats {};

// Replies.
struct HelloReply {
  std::string server_version;
  uint32_t protocol_version = kProtocolVersion;
  std::string kernel_backend;
  std::string data_dir;  // "" unless the session is admin.
  uint64_t collections = 0;
  uint64_t max_frame_bytes = kDefaultMaxFrameBytes;
  Role role = Role::kRead;
  std::string device;  // search device ("cpu", "cuda:0 <name>"); "" = not reported.
};
struct Ok {};
struct CollectionList {
  std::vector<std::string> names;
};
struct SearchResults {
  std::vector<SearchResponse> responses;
};
struct Error {
  absl::StatusCode code = absl::StatusCode::kUnknown;  // never kOk.
  std::string message;
  absl::Status ToStatus() const { return absl::Status(code, message); }
};

}  // namespace msg

// The alternatives' order is this header's, not the wire's (the wire's union values are fixed in
// schema/protocol.fbs). Replies that are data-model types travel as: WriteResult, CollectionInfo,
// GetResult, IndexBuildProgress (wire IndexProgressReply), DatabaseStats (wire StatsReply).
using Message =
    std::variant<msg::Hello, msg::CreateCollection, msg::ListCollections, msg::Describe,
                 msg::DropCollection, msg::Upsert, msg::Import, msg::Get, msg::Delete,
                 msg::Search, msg::HelloReply, msg::Ok, WriteResult, msg::CollectionList,
                 CollectionInfo, GetResult, msg::SearchResults, msg::Error, msg::BuildIndex,
                 msg::IndexProgress, IndexBuildProgress, msg::Stats, DatabaseStats>;

// The wire name of the message ("Hello", "Upsert", "WriteResult", "IndexProgressReply", ...).
const char* MessageName(const Message& message);

// True for the messages a client sends (Hello and the operations).
bool IsRequest(const Message& message);

struct Frame {
  uint64_t request_id = 0;
  Message message;
};

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

// The frame body (without the length prefix) carrying `message`. ResourceExhausted when the body
// would exceed max_frame_bytes (itself capped at kMaxFrameBytesCeiling):
// `Upsert frame of 600000123 bytes exceeds the maximum frame size of 536870912 bytes`.
absl::StatusOr<std::string> EncodeFrame(uint64_t request_id, const Message& message,
                                        size_t max_frame_bytes = kDefaultMaxFrameBytes);

// Bounds on the size of EncodeFrame's body for `message`: `lower` counts the payload bytes that
// must be in it (string bytes, vector elements), `upper` adds generous per-object overheads.
// EncodeFrame uses them to refuse an oversized message before building it.
struct EncodedSize {
  size_t lower = 0;
  size_t upper = 0;
};
EncodedSize EstimateEncodedSize(const Message& message);

// An Error frame for `status` (code and message; a message over kMaxErrorMessageBytes is cut at
// a UTF-8 boundary and ends in "..."). Never fails. `status` must not be OK (an OK status is sent
// as UNKNOWN "error frame without an error").
std::string EncodeErrorFrame(uint64_t request_id, const absl::Status& status);

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

struct DecodeOptions {
  // flatbuffers::Verifier nesting limit (tables). The schema nests at most 7 deep.
  size_t max_depth = 16;
  // flatbuffers::Verifier table limit; 0 = body.size() / 4 + 64 (every table of an honestly
  // built frame takes at least 8 bytes, so this never rejects one; it bounds the verifier's
  // work when tables are shared).
  size_t max_tables = 0;
  // Memory budget of the decoded message in bytes (approximate in-memory size: strings, float
  // vectors, one sizeof per C++ object); 0 = 64 x body.size() + 1 MiB. Honest frames stay well
  // under 40x; a frame whose offsets share data to expand beyond it is malformed.
  size_t max_decoded_bytes = 0;
};

// Why a decode failed: `malformed` for stage-1 failures (close the connection), otherwise a
// semantic error (keep it). `request_id` is the frame's when it could be read (after successful
// verification), else 0.
struct DecodeFailure {
  bool malformed = false;
  uint64_t request_id = 0;
};

// Decodes one frame body (without the length prefix). See the top of this file for the checks.
// On error, fills *failure when given. When `body` is 8-byte aligned (heap buffers are),
// msg::Import's data points into it (zero copy: `body` must outlive the message); otherwise the
// body is decoded from an aligned copy and Import's data is copied into its storage.
absl::StatusOr<Frame> DecodeFrame(std::string_view body, const DecodeOptions& options = {},
                                  DecodeFailure* failure = nullptr);

// The wire form of a status code: its absl::StatusCode numeric value (1 .. 16; 0 is OK and is
// never sent in an Error).
uint32_t StatusCodeToWire(absl::StatusCode code);
// Whether an Error.code received is one of 1 .. 16 (DecodeFrame rejects others as a semantic
// error naming the number).
bool IsValidWireStatusCode(uint32_t code);

}  // namespace rosetta::net
