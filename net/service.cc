#include "net/service.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <new>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace rosetta::net {

namespace {

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

// The operation of a request message other than Hello; std::nullopt for Hello and replies.
std::optional<Operation> OperationOf(const Message& m) {
  return std::visit(
      Overloaded{
          [](const msg::ListCollections&) -> std::optional<Operation> {
            return Operation::kListCollections;
          },
          [](const msg::Describe&) -> std::optional<Operation> { return Operation::kDescribe; },
          [](const msg::Get&) -> std::optional<Operation> { return Operation::kGet; },
          [](const msg::Search&) -> std::optional<Operation> { return Operation::kSearch; },
          [](const msg::Upsert&) -> std::optional<Operation> { return Operation::kUpsert; },
          [](const msg::Import&) -> std::optional<Operation> { return Operation::kImport; },
          [](const msg::Delete&) -> std::optional<Operation> { return Operation::kDelete; },
          [](const msg::CreateCollection&) -> std::optional<Operation> {
            return Operation::kCreateCollection;
          },
          [](const msg::DropCollection&) -> std::optional<Operation> {
            return Operation::kDropCollection;
          },
          [](const msg::BuildIndex&) -> std::optional<Operation> { return Operation::kBuildIndex; },
          [](const msg::IndexProgress&) -> std::optional<Operation> {
            return Operation::kIndexProgress;
          },
          [](const msg::Stats&) -> std::optional<Operation> { return Operation::kStats; },
          [](const auto&) -> std::optional<Operation> { return std::nullopt; },
      },
      m);
}

// The histogram slot of a request type: 0 = Hello, 1 + the operation's place in kAllOperations.
size_t RequestSlot(Operation op) {
  for (size_t i = 0; i < std::size(kAllOperations); ++i) {
    if (kAllOperations[i] == op) return 1 + i;
  }
  return 0;  // unreachable: every operation is listed.
}

// "request.hello", "request.list_collections", ...: the CLI's command names in snake case, like
// the engine's operation names ("search_batch").
std::string RequestName(size_t slot) {
  if (slot == 0) return "request.hello";
  return absl::StrCat("request.",
                      absl::StrReplaceAll(OperationName(kAllOperations[slot - 1]), {{"-", "_"}}));
}

using Clock = std::chrono::steady_clock;

}  // namespace

class ServiceSession final : public Session {
 public:
  ServiceSession(ServiceFactory* factory, std::string peer)
      : factory_(factory), peer_(std::move(peer)) {}

  Reply OnFrame(std::string_view body) override {
    // Nothing may escape to the transport. The Client does not throw by contract; what remains
    // is allocation failure (e.g. a huge but valid request), answered without closing the
    // process, and closing this connection since its state is unknown.
    try {
      return Handle(body);
    } catch (const std::bad_alloc&) {
      return Close(0, absl::ResourceExhaustedError("out of memory while handling the request"));
    } catch (const std::exception& e) {
      return Close(0, absl::InternalError(absl::StrCat("internal error: ", e.what())));
    } catch (...) {
      return Close(0, absl::InternalError("internal error: unknown exception"));
    }
  }

  bool hello_done() const override { return role_.has_value(); }

 private:
  // Every error reply goes through Close or Answer, which note it for the latency record.
  Reply Close(uint64_t request_id, const absl::Status& status) {
    closed_ = true;
    reply_is_error_ = true;
    return Reply{EncodeErrorFrame(request_id, status), true};
  }
  Reply Answer(uint64_t request_id, const absl::Status& status) {
    reply_is_error_ = true;
    return Reply{EncodeErrorFrame(request_id, status), false};
  }

  Reply Handle(std::string_view body) {
    reply_is_error_ = false;
    if (closed_) {
      // The transport closes after close_after; a call after that is its bug, not the client's.
      return Close(0, absl::FailedPreconditionError("the session is closed"));
    }
    DecodeFailure failure;
    absl::StatusOr<Frame> frame = DecodeFrame(body, factory_->options_.decode, &failure);
    if (!frame.ok()) {
      if (failure.malformed || !hello_done()) return Close(failure.request_id, frame.status());
      return Answer(failure.request_id, frame.status());
    }
    // Latency per request type: from here (decoded) to the encoded reply.
    const Clock::time_point start = Clock::now();
    const std::optional<Operation> op = OperationOf(frame->message);
    const bool is_hello = std::holds_alternative<msg::Hello>(frame->message);
    Reply reply = hello_done() ? HandleRequest(*frame, op) : HandleHello(*frame);
    if (is_hello || op.has_value()) {
      const size_t slot = is_hello ? 0 : RequestSlot(*op);
      factory_->request_latency_[slot].Record(Clock::now() - start, reply_is_error_);
    }
    return reply;
  }

  Reply HandleHello(const Frame& frame) {
    const auto* hello = std::get_if<msg::Hello>(&frame.message);
    if (hello == nullptr) {
      return Close(frame.request_id,
                   absl::FailedPreconditionError(absl::StrCat(
                       "expected Hello as the first message, got ", MessageName(frame.message))));
    }
    if (hello->protocol_version != kProtocolVersion) {
      return Close(frame.request_id,
                   absl::FailedPreconditionError(absl::StrCat(
                       "protocol version mismatch: the client speaks version ",
                       hello->protocol_version, ", this server speaks version ",
                       kProtocolVersion)));
    }
    const AuthConfig& auth = factory_->auth_;
    std::optional<Role> role = auth.Authenticate(hello->token);
    if (!role) {
      return Close(frame.request_id,
                   absl::UnauthenticatedError(hello->token.empty()
                                                  ? "this server requires a token"
                                                  : "invalid token"));
    }
    msg::HelloReply reply;
    reply.server_version = factory_->info_.version;
    reply.protocol_version = kProtocolVersion;
    reply.kernel_backend = factory_->info_.kernel_backend;
    reply.device = factory_->info_.device;
    if (*role == Role::kAdmin) reply.data_dir = factory_->info_.data_dir;
    absl::StatusOr<std::vector<std::string>> names = factory_->client_->ListCollections();
    reply.collections = names.ok() ? names->size() : 0;
    reply.max_frame_bytes = MaxFrameBytes();
    reply.role = *role;
    absl::StatusOr<std::string> encoded = EncodeFrame(frame.request_id, reply, MaxFrameBytes());
    if (!encoded.ok()) return Close(frame.request_id, encoded.status());
    role_ = role;
    return Reply{std::move(*encoded), false};
  }

  Reply HandleRequest(Frame& frame, std::optional<Operation> op) {
    const uint64_t id = frame.request_id;
    if (std::holds_alternative<msg::Hello>(frame.message)) {
      return Answer(id,
                    absl::FailedPreconditionError("Hello was already completed on this connection"));
    }
    if (!op) {
      return Answer(id, absl::InvalidArgumentError(absl::StrCat(
                            MessageName(frame.message), " is a reply, not a request")));
    }
    // The role check comes before anything looks at the request's contents.
    if (!Allows(*role_, *op)) return Answer(id, PermissionDeniedError(*role_, *op));

    Client& client = *factory_->client_;
    absl::StatusOr<Message> result = std::visit(
        Overloaded{
            [&](msg::CreateCollection& m) -> absl::StatusOr<Message> {
              absl::Status s = client.CreateCollection(m.schema);
              if (!s.ok()) return s;
              return Message(msg::Ok{});
            },
            [&](msg::ListCollections&) -> absl::StatusOr<Message> {
              absl::StatusOr<std::vector<std::string>> names = client.ListCollections();
              if (!names.ok()) return names.status();
              return Message(msg::CollectionList{std::move(*names)});
            },
            [&](msg::Describe& m) -> absl::StatusOr<Message> {
              absl::StatusOr<CollectionInfo> info = client.Describe(m.collection);
              if (!info.ok()) return info.status();
              return Message(std::move(*info));
            },
            [&](msg::DropCollection& m) -> absl::StatusOr<Message> {
              absl::Status s = client.DropCollection(m.collection);
              if (!s.ok()) return s;
              return Message(msg::Ok{});
            },
            [&](msg::Upsert& m) -> absl::StatusOr<Message> {
              absl::StatusOr<WriteResult> r = client.Upsert(m.collection, std::move(m.records));
              if (!r.ok()) return r.status();
              return Message(*r);
            },
            [&](msg::Import& m) -> absl::StatusOr<Message> {
              // m.request.data may view `body`, which outlives this call.
              absl::StatusOr<WriteResult> r = client.Import(m.request);
              if (!r.ok()) return r.status();
              return Message(*r);
            },
            [&](msg::Get& m) -> absl::StatusOr<Message> {
              absl::StatusOr<GetResult> r = client.Get(m.collection, m.ids, m.with_vectors);
              if (!r.ok()) return r.status();
              return Message(std::move(*r));
            },
            [&](msg::Delete& m) -> absl::StatusOr<Message> {
              absl::StatusOr<WriteResult> r = client.Delete(m.collection, m.ids);
              if (!r.ok()) return r.status();
              return Message(*r);
            },
            [&](msg::Search& m) -> absl::StatusOr<Message> {
              absl::StatusOr<std::vector<SearchResponse>> r =
                  client.Search(m.collection, std::move(m.requests));
              if (!r.ok()) return r.status();
              return Message(msg::SearchResults{std::move(*r)});
            },
            [&](msg::BuildIndex& m) -> absl::StatusOr<Message> {
              absl::StatusOr<IndexBuildProgress> r = client.BuildIndex(m.collection, m.field);
              if (!r.ok()) return r.status();
              return Message(*r);
            },
            [&](msg::IndexProgress& m) -> absl::StatusOr<Message> {
              absl::StatusOr<IndexBuildProgress> r = client.IndexProgress(m.collection);
              if (!r.ok()) return r.status();
              return Message(*r);
            },
            [&](msg::Stats&) -> absl::StatusOr<Message> {
              absl::StatusOr<DatabaseStats> r = client.Stats();
              if (!r.ok()) return r.status();
              // The service's own telemetry replaces whatever the client says of requests and
              // connections (the embedded client has none).
              r->requests = factory_->RequestLatencies();
              const TransportCounters t = factory_->Transport();
              r->connections_open = t.connections_open;
              r->connections_accepted = t.connections_accepted;
              r->connections_refused = t.connections_refused;
              r->bytes_received = t.bytes_received;
              r->bytes_sent = t.bytes_sent;
              return Message(std::move(*r));
            },
            [&](auto&) -> absl::StatusOr<Message> {
              // Unreachable: OperationOf covers every request.
              return absl::InternalError("unhandled request");
            },
        },
        frame.message);
    if (!result.ok()) return Answer(id, result.status());
    absl::StatusOr<std::string> encoded = EncodeFrame(id, *result, MaxFrameBytes());
    if (!encoded.ok()) {
      return Answer(id, absl::Status(encoded.status().code(),
                                     absl::StrCat("reply too large: ", encoded.status().message(),
                                                  "; ask for less (fewer ids, no vectors, "
                                                  "smaller k or fewer queries per call)")));
    }
    return Reply{std::move(*encoded), false};
  }

  size_t MaxFrameBytes() const {
    return std::min(factory_->options_.max_frame_bytes, kMaxFrameBytesCeiling);
  }

  ServiceFactory* const factory_;
  const std::string peer_;  // for future per-connection logs.
  std::optional<Role> role_;  // set by a successful Hello.
  bool closed_ = false;
  bool reply_is_error_ = false;  // the reply being made is an Error frame.
};

ServiceFactory::ServiceFactory(Client* client, AuthConfig auth, ServerInfo info,
                               ServiceOptions options)
    : client_(client),
      auth_(std::move(auth)),
      info_(std::move(info)),
      options_(std::move(options)) {}

std::unique_ptr<Session> ServiceFactory::NewSession(const std::string& peer) {
  return std::make_unique<ServiceSession>(this, peer);
}

std::string ServiceFactory::ErrorFrame(const absl::Status& status) {
  return EncodeErrorFrame(0, status);
}

void ServiceFactory::SetTransportCounters(std::function<TransportCounters()> source) {
  std::lock_guard<std::mutex> lock(transport_mu_);
  transport_ = std::move(source);
}

TransportCounters ServiceFactory::Transport() const {
  std::lock_guard<std::mutex> lock(transport_mu_);
  return transport_ ? transport_() : TransportCounters{};
}

std::vector<LatencyStats> ServiceFactory::RequestLatencies() const {
  std::vector<LatencyStats> out;
  for (size_t slot = 0; slot < kRequestTypes; ++slot) {
    LatencyStats s = request_latency_[slot].Summary(RequestName(slot));
    if (s.count > 0) out.push_back(std::move(s));
  }
  return out;
}

}  // namespace rosetta::net
