// rosettad: the Rosetta database server.
//
//   rosettad [--data DIR] [--listen HOST:PORT] [--token ROLE:TOKEN]... [--token-file FILE]
//            [--sync always|none] [--threads N] [--max-connections N] [--max-frame-bytes N]
//            [--frame-deadline-ms N] [--idle-timeout-ms N] [--device auto|cpu|cuda]
//            [--cuda-device N] [--device-memory-budget BYTES] [--device-batch-wait-us N]
//            [--device-max-batch N] [--help] [--version]
//
// Serves the database in DIR (created if missing) over the wire protocol (docs/PROTOCOL.md) on
// HOST:PORT. The pieces: net::OpenEmbeddedClient (the engine on DIR), net::ServiceFactory (the
// protocol: Hello, tokens, dispatch to the engine), net::Server (the transport: sockets, frames,
// limits). This file only wires them together and handles signals.
//
// On start, prints one banner line to stdout:
//   rosettad 0.1.0 listening on 127.0.0.1:7700 (data ./rosetta-data, kernels avx2, device cpu,
//   3 collections, sync always, auth off)
// ("device cuda:0 NVIDIA H100 80GB HBM3" when searches run on a GPU: the device the engine
// resolved from --device at open).
// SIGINT / SIGTERM: graceful stop (stop accepting, finish frames in flight, close connections),
// then the database is closed; exit status 0. Startup errors (e.g. --device cuda without a usable
// GPU): one line `rosettad: error: ...` on stderr, exit status 1; usage errors: exit status 2.
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "engine/database.h"
#include "net/auth.h"
#include "net/embedded_client.h"
#include "net/protocol.h"
#include "net/server.h"
#include "net/service.h"
#include "storage/store.h"

namespace rosetta {
namespace {

constexpr char kUsage[] = R"(usage: rosettad [flags]

Serves a Rosetta database over the wire protocol (docs/PROTOCOL.md).

Flags:
  --data DIR              database directory, created if missing. Default: ./rosetta-data
  --listen HOST:PORT      address to listen on; port 0 picks a free port. Default: 127.0.0.1:7700
                          A non-loopback address requires at least one token (like Redis'
                          protected mode: an open server is reachable only from this machine).
  --token ROLE:TOKEN      accept TOKEN with ROLE (read, write or admin); a TOKEN without ':' and
                          without a ROLE: prefix is an admin token. Repeatable. With no token
                          at all, every client is admin.
  --token-file FILE       read tokens from FILE, one "ROLE TOKEN" per line (# comments).
  --sync always|none      durability of acknowledged writes: always = the WAL is fsync'ed before
                          a write is acknowledged (one fsync per write batch); none = survive
                          a process crash but not a power loss. Default: always
  --threads N             threads for engine calls (server workers and the engine's search
                          pool). Default: 0 = the hardware concurrency
  --max-connections N     open connections at most; more are refused with an error.
                          Default: 1024
  --max-frame-bytes N     largest request frame after Hello, in bytes. Default: 268435456 (256 MiB)
  --frame-deadline-ms N   time for a whole frame to arrive (and for a reply to be written).
                          Default: 30000
  --idle-timeout-ms N     close connections on which no frame starts for this long.
                          Default: 300000
  --device auto|cpu|cuda  where exhaustive searches run: auto = a CUDA GPU when this build has
                          the CUDA kernels and a GPU is usable, else the CPU; cpu = the CPU
                          only; cuda = a GPU, or fail at start. The banner names the device.
                          Default: auto
  --cuda-device N         CUDA device ordinal (auto, cuda). Default: 0
  --device-memory-budget BYTES
                          device bytes the collections' mirrors may hold in all; rows beyond
                          it are searched on the CPU. Default: 0 = 80 % of the device's memory
  --device-batch-wait-us N
                          how long a query bound for the device waits for concurrent queries
                          to share its device call, in microseconds (0 = no waiting).
                          Default: 200
  --device-max-batch N    the most queries one device call takes (1 to 1024). Default: 64
  --help                  this text
  --version               print the version

Signals: SIGINT or SIGTERM stops the server gracefully (frames in flight are finished) and
closes the database; the exit status is then 0.
)";

struct Flags {
  std::string data_dir = "./rosetta-data";
  std::string listen = "127.0.0.1:7700";
  std::vector<std::string> tokens;  // [ROLE:]TOKEN
  std::vector<std::string> token_files;
  storage::SyncPolicy sync = storage::SyncPolicy::kAlways;
  size_t threads = 0;
  net::ServerOptions server;
  // The search device members of engine::DatabaseOptions (device, cuda_device,
  // device_memory_budget, device_batch_wait, device_max_batch); the rest is set in Run.
  engine::DatabaseOptions db;
};

absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

absl::Status Usage(std::string_view message) {
  return absl::InvalidArgumentError(std::string(message));
}

// Parses a decimal in [min, max]; `flag` names it in errors.
absl::Status ParseNumber(std::string_view flag, std::string_view text, uint64_t min,
                         uint64_t max, uint64_t* out) {
  uint64_t value = 0;
  if (text.empty() || text.find_first_not_of("0123456789") != std::string_view::npos ||
      !absl::SimpleAtoi(Sv(text), &value) || value < min || value > max) {
    return Usage(absl::StrCat(Sv(flag), ": expected a whole number from ", min, " to ", max,
                              ", got \"", Sv(text), "\""));
  }
  *out = value;
  return absl::OkStatus();
}

// Returns OK and sets *help / *version, or a usage error.
absl::Status ParseFlags(int argc, char** argv, Flags* flags, bool* help, bool* version) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      *help = true;
      return absl::OkStatus();
    }
    if (arg == "--version") {
      *version = true;
      return absl::OkStatus();
    }
    // Every other flag takes a value: "--flag VALUE" or "--flag=VALUE".
    std::string_view name = arg;
    std::string_view value;
    bool has_value = false;
    if (const size_t eq = arg.find('='); arg.substr(0, 2) == "--" && eq != std::string_view::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      has_value = true;
    }
    static constexpr std::string_view kValueFlags[] = {
        "--data",           "--listen",          "--token",
        "--token-file",     "--sync",            "--threads",
        "--max-connections", "--max-frame-bytes", "--frame-deadline-ms",
        "--idle-timeout-ms", "--device",          "--cuda-device",
        "--device-memory-budget", "--device-batch-wait-us", "--device-max-batch"};
    bool known = false;
    for (std::string_view f : kValueFlags) known = known || f == name;
    if (!known) {
      return Usage(absl::StrCat("unknown flag \"", Sv(arg), "\" (see rosettad --help)"));
    }
    if (!has_value) {
      if (i + 1 >= argc) return Usage(absl::StrCat(Sv(name), ": missing value"));
      value = argv[++i];
    }
    uint64_t n = 0;
    if (name == "--data") {
      if (value.empty()) return Usage("--data: empty directory");
      flags->data_dir = std::string(value);
    } else if (name == "--listen") {
      flags->listen = std::string(value);
    } else if (name == "--token") {
      flags->tokens.emplace_back(value);
    } else if (name == "--token-file") {
      flags->token_files.emplace_back(value);
    } else if (name == "--sync") {
      if (value == "always") {
        flags->sync = storage::SyncPolicy::kAlways;
      } else if (value == "none") {
        flags->sync = storage::SyncPolicy::kNone;
      } else {
        return Usage(absl::StrCat("--sync: expected always or none, got \"", Sv(value), "\""));
      }
    } else if (name == "--threads") {
      if (auto s = ParseNumber(name, value, 0, 1024, &n); !s.ok()) return s;
      flags->threads = n;
    } else if (name == "--max-connections") {
      if (auto s = ParseNumber(name, value, 1, 1'000'000, &n); !s.ok()) return s;
      flags->server.max_connections = n;
    } else if (name == "--max-frame-bytes") {
      if (auto s = ParseNumber(name, value, net::kMaxPreHelloFrameBytes,
                               net::kMaxFrameBytesCeiling, &n);
          !s.ok()) {
        return s;
      }
      flags->server.max_frame_bytes = static_cast<uint32_t>(n);
    } else if (name == "--frame-deadline-ms") {
      if (auto s = ParseNumber(name, value, 1, 86'400'000, &n); !s.ok()) return s;
      flags->server.frame_deadline = std::chrono::milliseconds(n);
    } else if (name == "--idle-timeout-ms") {
      if (auto s = ParseNumber(name, value, 1, 86'400'000, &n); !s.ok()) return s;
      flags->server.idle_timeout = std::chrono::milliseconds(n);
    } else if (name == "--device") {
      absl::StatusOr<engine::DeviceKind> kind = engine::ParseDeviceKind(std::string(value));
      if (!kind.ok()) return Usage(absl::StrCat("--device: ", kind.status().message()));
      flags->db.device = *kind;
    } else if (name == "--cuda-device") {
      if (auto s = ParseNumber(name, value, 0, 1023, &n); !s.ok()) return s;
      flags->db.cuda_device = static_cast<int>(n);
    } else if (name == "--device-memory-budget") {
      // Bytes, without suffixes (no other flag takes any); 0 keeps the engine's default.
      if (auto s = ParseNumber(name, value, 0, uint64_t{1} << 50, &n); !s.ok()) return s;
      flags->db.device_memory_budget = n;
    } else if (name == "--device-batch-wait-us") {
      if (auto s = ParseNumber(name, value, 0, 1'000'000, &n); !s.ok()) return s;
      flags->db.device_batch_wait = std::chrono::microseconds(n);
    } else if (name == "--device-max-batch") {
      if (auto s = ParseNumber(name, value, 1, 1024, &n); !s.ok()) return s;
      flags->db.device_max_batch = n;
    }
  }
  return absl::OkStatus();
}

// "ROLE:TOKEN", or "TOKEN" without any ':' for an admin token, -> AuthConfig. A token that
// itself contains ':' needs the role prefix ("admin:a:b"), so that a mistyped role ("reader:x")
// is an error rather than an admin token. Errors never include the token.
absl::Status AddTokenFlag(const std::string& flag, net::AuthConfig* auth) {
  net::Role role = net::Role::kAdmin;
  std::string token = flag;
  if (const size_t colon = flag.find(':'); colon != std::string::npos) {
    const std::string_view role_name = std::string_view(flag).substr(0, colon);
    std::optional<net::Role> r = net::RoleFromName(role_name);
    if (!r.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--token: unknown role \"", Sv(role_name.substr(0, 32)),
          "\" (expected ROLE:TOKEN with ROLE read, write or admin, or a TOKEN without ':' for "
          "an admin token)"));
    }
    role = *r;
    token = flag.substr(colon + 1);
  }
  absl::Status s = auth->Add(role, std::move(token));
  if (!s.ok()) return absl::Status(s.code(), absl::StrCat("--token: ", s.message()));
  return absl::OkStatus();
}

int Fail(const absl::Status& status) {
  std::cerr << "rosettad: error: " << absl::StatusCodeToString(status.code()) << ": "
            << status.message() << "\n";
  return 1;
}

int Run(int argc, char** argv) {
  Flags flags;
  bool help = false;
  bool version = false;
  if (absl::Status s = ParseFlags(argc, argv, &flags, &help, &version); !s.ok()) {
    std::cerr << "rosettad: " << s.message() << "\n";
    return 2;
  }
  if (help) {
    std::cout << kUsage;
    return 0;
  }
  if (version) {
    std::cout << "rosettad " << kRosettaVersion << " (protocol " << net::kProtocolVersion
              << ")\n";
    return 0;
  }
  absl::StatusOr<net::Endpoint> listen = net::ParseEndpoint(flags.listen);
  if (!listen.ok()) {
    std::cerr << "rosettad: --listen: " << listen.status().message() << "\n";
    return 2;
  }

  net::AuthConfig auth;
  for (const std::string& t : flags.tokens) {
    if (absl::Status s = AddTokenFlag(t, &auth); !s.ok()) return Fail(s);
  }
  for (const std::string& f : flags.token_files) {
    if (absl::Status s = auth.AddFromFile(f); !s.ok()) return Fail(s);
  }

  net::ServerOptions server_options = flags.server;
  server_options.host = listen->host;
  server_options.port = listen->port;
  server_options.worker_threads = flags.threads;
  server_options.auth_configured = !auth.open();
  // Every frame the limits allow must fit the in-flight budget.
  server_options.inflight_budget_bytes =
      std::max<size_t>(server_options.inflight_budget_bytes, server_options.max_frame_bytes);

  // Refuse a bad listen address (e.g. non-loopback without tokens) before touching the data
  // directory.
  if (absl::Status s = net::CheckServerOptions(server_options); !s.ok()) return Fail(s);

  // Block the stop signals in every thread (the engine's, the server's) before any is created;
  // the main thread takes them with sigwait below.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  engine::DatabaseOptions db_options = flags.db;
  db_options.store.sync = flags.sync;
  db_options.search_threads = flags.threads;
  absl::StatusOr<std::unique_ptr<Client>> client =
      OpenEmbeddedClient(flags.data_dir, db_options);
  if (!client.ok()) return Fail(client.status());
  absl::StatusOr<ServerInfo> info = (*client)->Info();
  if (!info.ok()) return Fail(info.status());
  absl::StatusOr<std::vector<std::string>> collections = (*client)->ListCollections();
  if (!collections.ok()) return Fail(collections.status());

  net::ServiceOptions service_options;
  service_options.max_frame_bytes = server_options.max_frame_bytes;
  ServerInfo service_info = *info;
  service_info.mode = "server";
  const bool auth_open = auth.open();
  const size_t token_count = auth.size();
  net::ServiceFactory service(client->get(), std::move(auth), std::move(service_info),
                              service_options);

  absl::StatusOr<std::unique_ptr<net::Server>> server =
      net::Server::Start(server_options, &service);
  if (!server.ok()) return Fail(server.status());
  // `rosetta stats` through the server reports the transport's connection and byte counters.
  service.SetTransportCounters([transport = server->get()] {
    const net::ServerStats s = transport->stats();
    net::TransportCounters t;
    t.connections_open = static_cast<int64_t>(s.connections_open);
    t.connections_accepted = static_cast<int64_t>(s.connections_accepted);
    t.connections_refused = static_cast<int64_t>(s.connections_refused);
    t.bytes_received = static_cast<int64_t>(s.bytes_received);
    t.bytes_sent = static_cast<int64_t>(s.bytes_sent);
    return t;
  });

  std::cout << "rosettad " << kRosettaVersion << " listening on "
            << (*server)->endpoint().ToString() << " (data " << flags.data_dir << ", kernels "
            << info->kernel_backend << ", device "
            << (info->device.empty() ? std::string("unknown") : info->device) << ", "
            << collections->size()
            << (collections->size() == 1 ? " collection" : " collections") << ", sync "
            << (flags.sync == storage::SyncPolicy::kAlways ? "always" : "none") << ", auth "
            << (auth_open ? std::string("off") : absl::StrCat(token_count, " token(s)"))
            << ")" << std::endl;

  int signal_number = 0;
  while (sigwait(&stop_signals, &signal_number) != 0) {
  }
  std::cerr << "rosettad: " << (signal_number == SIGINT ? "SIGINT" : "SIGTERM")
            << ": stopping\n";
  (*server)->Stop();
  service.SetTransportCounters(nullptr);  // the server goes away next.
  server->reset();   // all sessions are gone...
  client->reset();   // ...so the database can close (the WAL is synced).
  std::cerr << "rosettad: stopped\n";
  return 0;
}

}  // namespace
}  // namespace rosetta

int main(int argc, char** argv) { return rosetta::Run(argc, argv); }
