#include "net/remote_client.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <exception>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/strings/str_cat.h"
#include "boost/asio/connect.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/read.hpp"
#include "boost/asio/write.hpp"
#include "engine/database.h"
#include "schema/status_macros.h"

namespace rosetta::net {
namespace {

namespace asio = ::boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

// Replies before the Hello completes: a HelloReply or an Error (messages up to 16 KiB).
constexpr size_t kMaxPreHelloReplyBytes = 64 << 10;

std::string HostPort(const std::string& host, uint16_t port) {
  if (host.find(':') != std::string::npos) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

// =============================================================================================
// TCP transport: blocking calls built from Asio's asynchronous operations on a private
// io_context, run until a deadline, so every call has one overall deadline (a blocking read
// with a per-read timeout would let a trickling server stall a call indefinitely). No Asio
// exception escapes: error_code handlers everywhere, and a try/catch around what may allocate.
// =============================================================================================

class TcpTransport final : public FrameTransport {
 public:
  TcpTransport(std::string name, std::chrono::milliseconds timeout)
      : name_(std::move(name)), timeout_(timeout) {}

  ~TcpTransport() override { Close(); }

  absl::Status Connect(const std::string& host, uint16_t port, std::chrono::milliseconds timeout) {
    const Clock::time_point deadline = Clock::now() + timeout;
    tcp::resolver resolver(io_);
    std::optional<boost::system::error_code> resolved;
    tcp::resolver::results_type endpoints;
    resolver.async_resolve(host, std::to_string(port),
                           [&](const boost::system::error_code& ec,
                               tcp::resolver::results_type results) {
                             resolved = ec;
                             endpoints = std::move(results);
                           });
    if (!RunUntil(deadline, [&] { return resolved.has_value(); })) {
      resolver.cancel();
      Drain();
      return absl::DeadlineExceededError(absl::StrCat("cannot connect to ", name_,
                                                      ": resolving timed out after ",
                                                      timeout.count(), " ms"));
    }
    if (*resolved) {
      return absl::UnavailableError(
          absl::StrCat("cannot connect to ", name_, ": ", resolved->message()));
    }
    std::optional<boost::system::error_code> connected;
    asio::async_connect(socket_, endpoints,
                        [&](const boost::system::error_code& ec, const tcp::endpoint&) {
                          connected = ec;
                        });
    if (!RunUntil(deadline, [&] { return connected.has_value(); })) {
      Close();
      return absl::DeadlineExceededError(absl::StrCat("cannot connect to ", name_,
                                                      ": timed out after ", timeout.count(),
                                                      " ms"));
    }
    if (*connected) {
      Close();
      return absl::UnavailableError(
          absl::StrCat("cannot connect to ", name_, ": ", connected->message()));
    }
    // Requests are small and latency-bound: no Nagle delay.
    boost::system::error_code ignored;
    socket_.set_option(tcp::no_delay(true), ignored);
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> RoundTrip(std::string_view request,
                                        size_t max_reply_bytes) override {
    try {
      return RoundTripImpl(request, max_reply_bytes);
    } catch (const std::bad_alloc&) {
      Close();
      return absl::ResourceExhaustedError(
          absl::StrCat("out of memory receiving a reply from ", name_));
    } catch (const std::exception& e) {
      Close();
      return absl::InternalError(absl::StrCat("connection to ", name_, ": ", e.what()));
    }
  }

  std::string name() const override { return name_; }

  void set_timeout(std::chrono::milliseconds timeout) { timeout_ = timeout; }

 private:
  absl::StatusOr<std::string> RoundTripImpl(std::string_view request, size_t max_reply_bytes) {
    if (closed_) {
      return absl::UnavailableError(absl::StrCat("the connection to ", name_, " is closed"));
    }
    const Clock::time_point deadline = Clock::now() + timeout_;
    std::array<unsigned char, kFrameHeaderBytes> header;
    EncodeFrameLength(static_cast<uint32_t>(request.size()), header.data());
    const std::array<asio::const_buffer, 2> out = {asio::buffer(header),
                                                   asio::buffer(request.data(), request.size())};
    // The reply is read while the request is written: a server that refuses a request early
    // (e.g. a frame over its limit) answers before reading it all, and that answer is what the
    // caller should see, not the broken pipe of the unfinished write.
    bool write_done = false;
    boost::system::error_code write_ec;
    asio::async_write(socket_, out, [&](const boost::system::error_code& ec, size_t) {
      write_done = true;
      write_ec = ec;
    });
    ReplyRead read{max_reply_bytes};
    bool finished = false;
    try {
      ReadReply(&read);
      finished = RunUntil(deadline, [&] { return read.done; });
    } catch (...) {
      Close();  // runs the pending handlers while the locals they point to still exist.
      throw;
    }
    if (!finished) {
      Close();
      return absl::DeadlineExceededError(absl::StrCat("no reply from ", name_, " within ",
                                                      timeout_.count(), " ms"));
    }
    if (!write_done) {
      // Answered before the request was sent whole: the stream is out of step from here on.
      Close();
    }
    if (!read.status.ok()) {
      Close();
      return read.status;
    }
    if (read.ec) {
      Close();
      if (read.ec == asio::error::eof || read.ec == asio::error::connection_reset ||
          read.ec == asio::error::broken_pipe) {
        return absl::UnavailableError(
            absl::StrCat("the server closed the connection (", name_, ")"));
      }
      return absl::UnavailableError(
          absl::StrCat("connection to ", name_, " failed: ", read.ec.message()));
    }
    return std::move(read.reply);
  }

  // Reading one reply frame. The socket is read in chunks of up to kReadChunkBytes into rx_, so a
  // small reply (the common case) arrives with its length prefix in one read system call; bytes
  // past the frame stay in rx_ for the next call. The rest of a large reply is read directly
  // into its string.
  struct ReplyRead {
    size_t max_reply_bytes;
    std::string reply;
    bool done = false;
    boost::system::error_code ec;
    absl::Status status;
  };
  static constexpr size_t kReadChunkBytes = 64 << 10;

  // Completes `read` from what rx_ holds, or starts a read for more.
  void ReadReply(ReplyRead* read) {
    const size_t buffered = rx_end_ - rx_begin_;
    if (buffered < kFrameHeaderBytes) {
      if (rx_.size() < kReadChunkBytes) rx_.resize(kReadChunkBytes);
      if (rx_begin_ > 0) {  // keep the partial prefix at the front.
        std::memmove(rx_.data(), rx_.data() + rx_begin_, buffered);
        rx_begin_ = 0;
        rx_end_ = buffered;
      }
      socket_.async_read_some(
          asio::buffer(rx_.data() + rx_end_, rx_.size() - rx_end_),
          [this, read](const boost::system::error_code& ec, size_t n) {
            if (ec) {
              read->done = true;
              read->ec = ec;
              return;
            }
            rx_end_ += n;
            ReadReply(read);
          });
      return;
    }
    const uint32_t length =
        DecodeFrameLength(reinterpret_cast<const unsigned char*>(rx_.data() + rx_begin_));
    absl::Status s = CheckFrameLength(length, read->max_reply_bytes);
    if (!s.ok()) {
      read->done = true;
      read->status =
          absl::InternalError(absl::StrCat("malformed reply from ", name_, ": ", s.message()));
      return;
    }
    rx_begin_ += kFrameHeaderBytes;
    const size_t have = std::min<size_t>(length, rx_end_ - rx_begin_);
    read->reply.assign(rx_.data() + rx_begin_, have);
    rx_begin_ += have;
    if (rx_begin_ == rx_end_) rx_begin_ = rx_end_ = 0;
    if (have == length) {
      read->done = true;
      return;
    }
    read->reply.resize(length);
    asio::async_read(socket_, asio::buffer(read->reply.data() + have, length - have),
                     [read](const boost::system::error_code& ec, size_t) {
                       read->done = true;
                       read->ec = ec;
                     });
  }

  // Runs handlers until done() or the deadline. False on timeout.
  template <class Done>
  bool RunUntil(Clock::time_point deadline, Done done) {
    io_.restart();
    while (!done()) {
      if (Clock::now() >= deadline) return false;
      if (io_.run_one_until(deadline) == 0 && !done()) {
        // Timed out, or out of work without being done (cannot happen with an operation
        // pending; treated as a timeout rather than spinning).
        return done();
      }
    }
    return true;
  }

  // Cancels everything pending and runs the handlers (with operation_aborted), so none of them
  // outlives the locals it captured.
  void Drain() {
    io_.restart();
    io_.run();
  }

  void Close() {
    boost::system::error_code ignored;
    if (socket_.is_open()) {
      socket_.shutdown(tcp::socket::shutdown_both, ignored);
      socket_.close(ignored);
    }
    Drain();
    closed_ = true;
  }

  asio::io_context io_{1};
  tcp::socket socket_{io_};
  std::vector<char> rx_;  // bytes read ahead: [rx_begin_, rx_end_) are not consumed yet.
  size_t rx_begin_ = 0;
  size_t rx_end_ = 0;
  const std::string name_;
  std::chrono::milliseconds timeout_;
  bool closed_ = false;
};

// =============================================================================================
// The protocol client
// =============================================================================================

class ProtocolClient final : public Client {
 public:
  ProtocolClient(std::unique_ptr<FrameTransport> transport, RemoteClientOptions options)
      : transport_(std::move(transport)), options_(std::move(options)) {}

  absl::Status Hello(const std::string& token) {
    msg::Hello hello;
    hello.protocol_version = kProtocolVersion;
    hello.token = token;
    hello.client = options_.client_name.substr(0, kMaxClientNameBytes);
    if (token.size() > kMaxTokenBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("token of ", token.size(), " bytes; at most ", kMaxTokenBytes));
    }
    ASSIGN_OR_RETURN(Message reply, Exchange(hello, kMaxPreHelloFrameBytes,
                                             kMaxPreHelloReplyBytes));
    auto* hello_reply = std::get_if<msg::HelloReply>(&reply);
    if (hello_reply == nullptr) return Unexpected("HelloReply", reply);
    if (hello_reply->protocol_version != kProtocolVersion) {
      return Broken(absl::FailedPreconditionError(absl::StrCat(
          "protocol version mismatch: this client speaks version ", kProtocolVersion,
          ", the server answered with version ", hello_reply->protocol_version)));
    }
    hello_ = std::move(*hello_reply);
    server_max_frame_bytes_ =
        std::min<uint64_t>(hello_.max_frame_bytes, kMaxFrameBytesCeiling);
    return absl::OkStatus();
  }

  absl::StatusOr<ServerInfo> Info() override {
    ServerInfo info;
    info.version = hello_.server_version;
    info.mode = "server";
    info.kernel_backend = hello_.kernel_backend;
    info.data_dir = hello_.data_dir;
    info.device = hello_.device;
    return info;
  }

  absl::Status CreateCollection(const CollectionSchema& schema) override {
    ASSIGN_OR_RETURN(Message reply, Call(msg::CreateCollection{schema}));
    return Expect<msg::Ok>(std::move(reply), "Ok").status();
  }

  absl::StatusOr<std::vector<std::string>> ListCollections() override {
    ASSIGN_OR_RETURN(Message reply, Call(msg::ListCollections{}));
    ASSIGN_OR_RETURN(msg::CollectionList list,
                     Expect<msg::CollectionList>(std::move(reply), "CollectionList"));
    return std::move(list.names);
  }

  absl::StatusOr<CollectionInfo> Describe(const std::string& collection) override {
    ASSIGN_OR_RETURN(Message reply, Call(msg::Describe{collection}));
    return Expect<CollectionInfo>(std::move(reply), "CollectionInfo");
  }

  absl::Status DropCollection(const std::string& collection) override {
    ASSIGN_OR_RETURN(Message reply, Call(msg::DropCollection{collection}));
    return Expect<msg::Ok>(std::move(reply), "Ok").status();
  }

  absl::StatusOr<WriteResult> Upsert(const std::string& collection,
                                     std::vector<Record> records) override {
    // The embedded client's check and message (the server would answer the same, after
    // receiving the whole batch).
    if (records.size() > engine::kMaxBatchRecords) {
      return absl::InvalidArgumentError(
          absl::StrCat("upsert: ", records.size(), " records in one call; at most ",
                       engine::kMaxBatchRecords, " per atomic batch"));
    }
    ASSIGN_OR_RETURN(Message reply, Call(msg::Upsert{collection, std::move(records)}));
    return Expect<WriteResult>(std::move(reply), "WriteResult");
  }

  absl::StatusOr<WriteResult> Import(const ImportRequest& request) override {
    if (request.rows > engine::kMaxBatchRecords) {
      return absl::InvalidArgumentError(
          absl::StrCat("import: ", request.rows, " rows in one call; at most ",
                       engine::kMaxBatchRecords, " per atomic batch"));
    }
    if (request.data.size() != request.rows * request.dim) {
      return absl::InvalidArgumentError(
          absl::StrCat("import: ", request.data.size(), " floats given for ", request.rows,
                       " rows of ", request.dim, " components"));
    }
    msg::Import m;
    m.request = request;  // a view of the caller's floats, encoded straight from them.
    ASSIGN_OR_RETURN(Message reply, Call(Message(std::move(m))));
    return Expect<WriteResult>(std::move(reply), "WriteResult");
  }

  absl::StatusOr<GetResult> Get(const std::string& collection,
                                const std::vector<std::string>& ids, bool with_vectors) override {
    ASSIGN_OR_RETURN(Message reply, Call(msg::Get{collection, ids, with_vectors}));
    return Expect<GetResult>(std::move(reply), "GetResult");
  }

  absl::StatusOr<WriteResult> Delete(const std::string& collection,
                                     const std::vector<std::string>& ids) override {
    ASSIGN_OR_RETURN(Message reply, Call(msg::Delete{collection, ids}));
    return Expect<WriteResult>(std::move(reply), "WriteResult");
  }

  absl::StatusOr<std::vector<SearchResponse>> Search(
      const std::string& collection, std::vector<SearchRequest> requests) override {
    const size_t n = requests.size();
    ASSIGN_OR_RETURN(Message reply, Call(msg::Search{collection, std::move(requests)}));
    ASSIGN_OR_RETURN(msg::SearchResults results,
                     Expect<msg::SearchResults>(std::move(reply), "SearchResults"));
    if (results.responses.size() != n) {
      return Broken(absl::InternalError(absl::StrCat(
          "malformed reply from ", transport_->name(), ": ", results.responses.size(),
          " search responses for ", n, " queries")));
    }
    return std::move(results.responses);
  }

  absl::StatusOr<IndexBuildProgress> BuildIndex(const std::string& collection,
                                                const std::string& field) override {
    ASSIGN_OR_RETURN(Message reply, Call(msg::BuildIndex{collection, field}));
    return Expect<IndexBuildProgress>(std::move(reply), "IndexProgressReply");
  }

  absl::StatusOr<IndexBuildProgress> IndexProgress(const std::string& collection) override {
    ASSIGN_OR_RETURN(Message reply, Call(msg::IndexProgress{collection}));
    return Expect<IndexBuildProgress>(std::move(reply), "IndexProgressReply");
  }

  absl::StatusOr<DatabaseStats> Stats() override {
    ASSIGN_OR_RETURN(Message reply, Call(msg::Stats{}));
    return Expect<DatabaseStats>(std::move(reply), "StatsReply");
  }

 private:
  absl::StatusOr<Message> Call(const Message& request) {
    const size_t max_reply = options_.max_reply_bytes != 0
                                 ? std::min(options_.max_reply_bytes, kMaxFrameBytesCeiling)
                                 : server_max_frame_bytes_;
    return Exchange(request, server_max_frame_bytes_, max_reply);
  }

  // One request, one reply: Error replies become their status.
  absl::StatusOr<Message> Exchange(const Message& request, size_t max_request_bytes,
                                   size_t max_reply_bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!broken_.ok()) {
      return absl::UnavailableError(absl::StrCat("the connection to ", transport_->name(),
                                                 " is closed (after: ", broken_.ToString(), ")"));
    }
    const uint64_t id = next_request_id_++;
    // Refused locally (nothing sent, the connection stays usable) when over the server's limit.
    ASSIGN_OR_RETURN(std::string body, EncodeFrame(id, request, max_request_bytes));
    absl::StatusOr<std::string> reply = transport_->RoundTrip(body, max_reply_bytes);
    if (!reply.ok()) return BrokenLocked(reply.status());
    DecodeFailure failure;
    absl::StatusOr<Frame> frame = DecodeFrame(*reply, {}, &failure);
    if (!frame.ok()) {
      return BrokenLocked(absl::InternalError(absl::StrCat(
          "malformed reply from ", transport_->name(), ": ", frame.status().message())));
    }
    if (auto* error = std::get_if<msg::Error>(&frame->message)) {
      if (frame->request_id == 0) {
        // The transport's own errors (frame too large, deadline, too many connections) come
        // with request id 0, and the server closes the connection after them.
        return BrokenLocked(error->ToStatus());
      }
      if (frame->request_id == id) return error->ToStatus();
    }
    if (frame->request_id != id) {
      return BrokenLocked(absl::InternalError(
          absl::StrCat("malformed reply from ", transport_->name(), ": reply to request ",
                       frame->request_id, ", expected ", id)));
    }
    return std::move(frame->message);
  }

  template <class T>
  absl::StatusOr<T> Expect(Message reply, const char* want) {
    if (auto* value = std::get_if<T>(&reply)) return std::move(*value);
    return Unexpected(want, reply);
  }

  absl::Status Unexpected(const char* want, const Message& got) {
    return Broken(absl::InternalError(absl::StrCat("malformed reply from ", transport_->name(),
                                                   ": expected ", want, ", got ",
                                                   MessageName(got))));
  }

  absl::Status Broken(absl::Status status) {
    std::lock_guard<std::mutex> lock(mu_);
    return BrokenLocked(std::move(status));
  }
  absl::Status BrokenLocked(absl::Status status) {
    if (broken_.ok()) broken_ = status;
    return status;
  }

  const std::unique_ptr<FrameTransport> transport_;
  const RemoteClientOptions options_;
  msg::HelloReply hello_;
  size_t server_max_frame_bytes_ = kMaxPreHelloFrameBytes;

  std::mutex mu_;
  uint64_t next_request_id_ = 1;  // guarded by mu_.
  absl::Status broken_;           // guarded by mu_: the first connection-level error.
};

}  // namespace

absl::StatusOr<std::unique_ptr<Client>> NewProtocolClient(std::unique_ptr<FrameTransport> transport,
                                                          const std::string& token,
                                                          const RemoteClientOptions& options) {
  if (transport == nullptr) return absl::InvalidArgumentError("no transport");
  auto client = std::make_unique<ProtocolClient>(std::move(transport), options);
  RETURN_IF_ERROR(client->Hello(token));
  return std::unique_ptr<Client>(std::move(client));
}

absl::StatusOr<std::unique_ptr<Client>> ConnectRemoteClient(const std::string& host,
                                                           uint16_t port,
                                                           const std::string& token,
                                                           const RemoteClientOptions& options) {
  if (host.empty()) return absl::InvalidArgumentError("server address: empty host");
  try {
    const Clock::time_point deadline = Clock::now() + options.connect_timeout;
    auto transport = std::make_unique<TcpTransport>(HostPort(host, port), options.timeout);
    RETURN_IF_ERROR(transport->Connect(host, port, options.connect_timeout));
    // The Hello runs under what is left of the connect timeout; later calls under `timeout`.
    TcpTransport* tcp_transport = transport.get();
    tcp_transport->set_timeout(std::max(
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()),
        std::chrono::milliseconds(1)));
    ASSIGN_OR_RETURN(std::unique_ptr<Client> client,
                     NewProtocolClient(std::move(transport), token, options));
    tcp_transport->set_timeout(options.timeout);  // owned by `client`, not yet shared.
    return client;
  } catch (const std::exception& e) {
    // Asio reports resource failures (e.g. no file descriptors for an io_context) by throwing.
    return absl::UnavailableError(
        absl::StrCat("cannot connect to ", HostPort(host, port), ": ", e.what()));
  }
}

}  // namespace rosetta::net
