// Crash test of the real server binary: several clients upsert concurrently into a `rosettad
// --sync always` while the test kills the server with SIGKILL at random (seeded) moments and
// restarts it on the same data directory, at least 20 times. After every restart it checks the
// acknowledgement contract (net/service.h, docs/PROTOCOL.md "Write acknowledgements"):
//   - lost:     every acknowledged record is present;
//   - altered:  and unaltered: all its vectors bit-exact, weights, attributes and provenance equal
//               to the deterministic content derived from its id;
//   - torn:     a record has all its fields or is absent (an upsert writes whole records);
//   - phantom:  nothing is present that was never attempted (Describe's counts equal the
//               number of attempted ids found);
//   - torn batches: an upsert call is atomic, so a batch whose reply never came (the server died)
//               is present whole or absent whole.
// Batches in doubt (sent, no reply) may be present or absent; half of them are retried after the
// restart (client-chosen ids make retries idempotent), and the retry's WriteResult.created must
// say whether the batch had survived.
//
// The binary is $ROSETTA_TEST_BIN_DIR/tools/rosettad (ctest sets ROSETTA_TEST_BIN_DIR); the test
// skips with a message when it is not built. Knobs: ROSETTA_TEST_SEED (kill moments, batch
// sizes, retries), ROSETTA_CRASH_CYCLES (default 20).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "net/remote_client.h"
#include "tests/net/protocol_testing.h"
#include "tests/testing/testing.h"

namespace rosetta::net {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr int kClients = 4;
constexpr int kDefaultCycles = 20;
constexpr char kCollection[] = "crash";
constexpr int kClipDim = 32;
constexpr int kGeoDim = 3;

// ---------------------------------------------------------------------------------------------
// Deterministic record content

uint64_t SplitMix64(uint64_t* state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t HashId(const std::string& id) {
  uint64_t h = 0xCBF29CE484222325ull;  // FNV-1a
  for (unsigned char c : id) h = (h ^ c) * 0x100000001B3ull;
  return h;
}

// `dim` floats in [-1, 1), each exactly representable (k / 2^23), derived from (id, salt).
std::vector<float> VectorFor(const std::string& id, uint64_t salt, int dim) {
  uint64_t state = HashId(id) ^ (salt * 0xD6E8FEB86659FD93ull);
  std::vector<float> v(dim);
  for (float& x : v) {
    const int64_t k = static_cast<int64_t>(SplitMix64(&state) >> 40);  // 0 .. 2^24 - 1
    x = static_cast<float>(k - (int64_t{1} << 23)) / static_cast<float>(1 << 23);
  }
  return v;
}

CollectionSchema CrashSchema() {
  CollectionSchema s;
  s.name = kCollection;
  // ip and l2 spaces store vectors as given (cosine would normalise them), so they can be
  // compared bit for bit.
  s.spaces["clip"] = Space{"clip", kClipDim, Metric::kIp, ""};
  s.spaces["geo"] = Space{"geo", kGeoDim, Metric::kL2, ""};
  s.fields["image"] = Field{"image", "clip", "image", 1.0f, {}};
  s.fields["caption"] = Field{"caption", "clip", "text", 1.0f, {}};
  s.fields["where"] = Field{"where", "geo", "location", 0.5f, {}};
  s.attributes["h"] = AttributeType::kInt;
  s.attributes["tag"] = AttributeType::kString;
  return s;
}

// The one content ever written under `id` (so a retry is byte-identical).
Record ExpectedRecord(const std::string& id) {
  Record r;
  r.id = id;
  r.vectors["image"] = VectorFor(id, 1, kClipDim);
  r.vectors["caption"] = VectorFor(id, 2, kClipDim);
  r.vectors["where"] = VectorFor(id, 3, kGeoDim);
  r.weights["caption"] = 0.25f;
  r.attributes["h"] = static_cast<int64_t>(HashId(id) >> 1);
  r.attributes["tag"] = absl::StrCat("tag:", id);
  r.provenance.source = "crash-test";
  return r;
}

// Whether two records are identical, floats compared by their bits (cheap enough to run on every
// record after every restart; failures are shown with testing::Canon).
bool BitIdentical(const Record& a, const Record& b) {
  auto same_floats = [](const std::vector<float>& x, const std::vector<float>& y) {
    return x.size() == y.size() &&
           (x.empty() || std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0);
  };
  if (a.id != b.id || a.vectors.size() != b.vectors.size() ||
      a.weights.size() != b.weights.size() || a.attributes != b.attributes ||
      !(a.provenance == b.provenance)) {
    return false;
  }
  for (auto i = a.vectors.begin(), j = b.vectors.begin(); i != a.vectors.end(); ++i, ++j) {
    if (i->first != j->first || !same_floats(i->second, j->second)) return false;
  }
  for (auto i = a.weights.begin(), j = b.weights.begin(); i != a.weights.end(); ++i, ++j) {
    if (i->first != j->first ||
        std::bit_cast<uint32_t>(i->second) != std::bit_cast<uint32_t>(j->second)) {
      return false;
    }
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// The rosettad child process

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Tail(const std::string& s, size_t n) {
  return s.size() <= n ? s : "..." + s.substr(s.size() - n);
}

class Rosettad {
 public:
  // Starts `binary --data data_dir --listen 127.0.0.1:0 --sync always` with stderr appended to
  // `log_path`, and waits (at most 60 s) for the banner line to learn the port.
  static absl::StatusOr<std::unique_ptr<Rosettad>> Start(const std::string& binary,
                                                         const std::string& data_dir,
                                                         const std::string& log_path) {
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) return absl::InternalError("pipe2 failed");
    const int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) return absl::InternalError(absl::StrCat("cannot open ", log_path));
    // Everything the child needs is prepared before fork (the test is multi-threaded: the child
    // may only make async-signal-safe calls before exec).
    std::vector<std::string> args = {binary,          "--data",    data_dir, "--listen",
                                     "127.0.0.1:0",   "--sync",    "always", "--threads",
                                     "2"};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) {
      ::close(out[0]);
      ::close(out[1]);
      ::close(log_fd);
      return absl::InternalError("fork failed");
    }
    if (pid == 0) {
      // Never outlive the test (a failed assertion must not leave a server running).
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(126);
      ::dup2(out[1], STDOUT_FILENO);
      ::dup2(log_fd, STDERR_FILENO);
      // The test's own sockets (clients' connections) must not leak into the server.
      if (::syscall(SYS_close_range, 3u, ~0u, 0u) != 0) {
        for (int fd = 3; fd < 4096; ++fd) ::close(fd);
      }
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    ::close(log_fd);
    std::unique_ptr<Rosettad> d(new Rosettad(pid, out[0], log_path));
    absl::Status s = d->ReadBanner(Clock::now() + std::chrono::seconds(60));
    if (!s.ok()) return s;
    return d;
  }

  ~Rosettad() {
    if (!reaped_) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    ::close(stdout_fd_);
  }

  uint16_t port() const { return port_; }
  const std::string& banner() const { return banner_; }

  // SIGKILL and reap. Returns the wait status.
  int KillAndReap() {
    ::kill(pid_, SIGKILL);
    return Reap();
  }

  // Sends `sig` and waits at most `limit` for the exit; SIGKILLs it after that. Returns the wait
  // status, or nullopt when it had to be killed.
  std::optional<int> SignalAndWait(int sig, milliseconds limit) {
    ::kill(pid_, sig);
    const auto end = Clock::now() + limit;
    while (Clock::now() < end) {
      int status = 0;
      const pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        reaped_ = true;
        return status;
      }
      std::this_thread::sleep_for(milliseconds(10));
    }
    KillAndReap();
    return std::nullopt;
  }

 private:
  Rosettad(pid_t pid, int stdout_fd, std::string log_path)
      : pid_(pid), stdout_fd_(stdout_fd), log_path_(std::move(log_path)) {}

  int Reap() {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    reaped_ = true;
    return status;
  }

  absl::Status ReadBanner(Clock::time_point deadline) {
    std::string text;
    while (text.find('\n') == std::string::npos) {
      const auto left =
          std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) {
        return absl::DeadlineExceededError(absl::StrCat(
            "rosettad printed no banner within 60 s; stderr: ", Tail(ReadFileOrEmpty(log_path_), 2000)));
      }
      pollfd p{stdout_fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 1000))) <= 0) continue;
      char buf[512];
      const ssize_t n = ::read(stdout_fd_, buf, sizeof(buf));
      if (n <= 0) {
        int status = Reap();
        return absl::InternalError(absl::StrCat(
            "rosettad exited before its banner (wait status ", status,
            "); stderr: ", Tail(ReadFileOrEmpty(log_path_), 2000)));
      }
      text.append(buf, static_cast<size_t>(n));
    }
    banner_ = text.substr(0, text.find('\n'));
    // "rosettad 0.1.0 listening on 127.0.0.1:PORT (data ..."
    const std::string marker = "listening on 127.0.0.1:";
    const size_t at = banner_.find(marker);
    if (at == std::string::npos) {
      return absl::InternalError(absl::StrCat("unexpected banner: ", banner_));
    }
    const int port = std::atoi(banner_.c_str() + at + marker.size());
    if (port <= 0 || port > 65535) {
      return absl::InternalError(absl::StrCat("no port in banner: ", banner_));
    }
    port_ = static_cast<uint16_t>(port);
    return absl::OkStatus();
  }

  const pid_t pid_;
  const int stdout_fd_;
  const std::string log_path_;
  bool reaped_ = false;
  uint16_t port_ = 0;
  std::string banner_;
};

// ---------------------------------------------------------------------------------------------
// The clients' ledger and the coordination with the killer (the test's main thread)

enum class BatchState { kInFlight, kAcked, kInDoubt };

struct Batch {
  std::vector<std::string> ids;
  BatchState state = BatchState::kInFlight;
  // For in-doubt batches: whether a verification has looked at it, and whether the last one
  // found it (whole). Once found after a restart it was durable and must stay.
  bool checked = false;
  bool present_at_last_check = false;
};

struct Shared {
  std::mutex mu;
  std::condition_variable cv;
  uint64_t generation = 0;  // bumped each time a (re)started, verified server is open to clients.
  uint16_t port = 0;
  bool open = false;  // clients may (re)connect: false from just before a kill until the next
                      // verified server is published.
  bool stop = false;
  int parked = 0;  // clients waiting for the next generation.

  std::atomic<bool> kill_issued{false};

  // Guarded by mu.
  std::vector<Batch> batches;
  std::vector<std::string> unexpected;  // client-side errors that are not the server dying.
  int64_t retries = 0;
  int64_t retries_acked = 0;
  int64_t calls_failed = 0;
};

RemoteClientOptions ClientOptions() {
  RemoteClientOptions o;
  o.connect_timeout = milliseconds(5'000);
  o.timeout = milliseconds(30'000);
  o.client_name = "crash-test";
  return o;
}

// One writer: upserts batches of 1..8 new records until the server dies, then parks until the
// killer has restarted and verified the server, retries about half of its in-doubt batches,
// and goes on.
void ClientLoop(Shared* sh, int index, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> batch_size(1, 8);
  std::bernoulli_distribution retry(0.5);
  uint64_t next_seq = 0;
  uint64_t seen_generation = 0;
  std::vector<size_t> in_doubt;  // my batches without a reply

  auto note_failure = [&](const absl::Status& s, const char* what) {
    std::lock_guard<std::mutex> lock(sh->mu);
    ++sh->calls_failed;
    const bool expected = sh->kill_issued.load() && (s.code() == absl::StatusCode::kUnavailable);
    if (!expected) {
      sh->unexpected.push_back(absl::StrCat("client ", index, " ", what, ": ", s.ToString(),
                                            sh->kill_issued.load() ? " (after the kill)"
                                                                   : " (server alive)"));
    }
  };

  while (true) {
    uint16_t port = 0;
    {
      std::unique_lock<std::mutex> lock(sh->mu);
      ++sh->parked;
      sh->cv.notify_all();
      sh->cv.wait(lock,
                  [&] { return sh->stop || (sh->open && sh->generation > seen_generation); });
      --sh->parked;
      if (sh->stop) return;
      seen_generation = sh->generation;
      port = sh->port;
    }
    absl::StatusOr<std::unique_ptr<Client>> client =
        ConnectRemoteClient("127.0.0.1", port, "", ClientOptions());
    if (!client.ok()) {
      note_failure(client.status(), "connect");
      continue;
    }
    // Retry about half of the batches left in doubt by the previous crash.
    std::vector<size_t> still_in_doubt;
    bool broken = false;
    for (size_t b : in_doubt) {
      if (broken || !retry(rng)) {
        still_in_doubt.push_back(b);
        continue;
      }
      std::vector<Record> records;
      bool was_present = false;
      {
        std::lock_guard<std::mutex> lock(sh->mu);
        for (const std::string& id : sh->batches[b].ids) records.push_back(ExpectedRecord(id));
        was_present = sh->batches[b].present_at_last_check;
        ++sh->retries;
      }
      const int64_t n = static_cast<int64_t>(records.size());
      absl::StatusOr<WriteResult> w = (*client)->Upsert(kCollection, std::move(records));
      if (!w.ok()) {
        note_failure(w.status(), "retry");
        still_in_doubt.push_back(b);
        broken = true;
        continue;
      }
      std::lock_guard<std::mutex> lock(sh->mu);
      sh->batches[b].state = BatchState::kAcked;
      ++sh->retries_acked;
      // Idempotence: the retry created exactly the records the crash had lost.
      if (w->written != n || w->created != (was_present ? 0 : n)) {
        sh->unexpected.push_back(absl::StrCat(
            "client ", index, " retry of batch ", b, " (", n, " records, present before: ",
            was_present, ") returned written=", w->written, " created=", w->created));
      }
    }
    in_doubt = std::move(still_in_doubt);
    if (broken) continue;

    // New records until the server dies.
    while (true) {
      const int n = batch_size(rng);
      std::vector<Record> records;
      size_t b = 0;
      {
        std::lock_guard<std::mutex> lock(sh->mu);
        Batch batch;
        for (int i = 0; i < n; ++i) {
          batch.ids.push_back(absl::StrCat("c", index, "-", next_seq++));
          records.push_back(ExpectedRecord(batch.ids.back()));
        }
        b = sh->batches.size();
        sh->batches.push_back(std::move(batch));
      }
      absl::StatusOr<WriteResult> w = (*client)->Upsert(kCollection, std::move(records));
      {
        std::lock_guard<std::mutex> lock(sh->mu);
        sh->batches[b].state = w.ok() ? BatchState::kAcked : BatchState::kInDoubt;
        if (w.ok() && (w->written != n || w->created != n)) {
          sh->unexpected.push_back(absl::StrCat("client ", index, " batch ", b, " of ", n,
                                                " new records returned written=", w->written,
                                                " created=", w->created));
        }
      }
      if (w.ok()) continue;
      in_doubt.push_back(b);
      note_failure(w.status(), "upsert");
      break;
    }
  }
}

struct Figures {
  int64_t records_acked = 0;
  int64_t batches_acked = 0;
  int64_t batches_in_doubt = 0;
  int64_t in_doubt_present = 0;
  int64_t lost = 0;
  int64_t altered = 0;
  int64_t torn = 0;
  int64_t torn_batches = 0;
  int64_t phantom = 0;
  std::vector<std::string> problems;  // the first few, precisely.
};

void Problem(Figures* f, std::string what) {
  if (f->problems.size() < 20) f->problems.push_back(std::move(what));
}

// Checks the whole database against the ledger (clients are parked: nothing changes meanwhile).
// Also records, for every in-doubt batch, whether it survived (for the retries' check).
absl::Status Verify(Client& client, Shared* sh, Figures* f) {
  std::lock_guard<std::mutex> lock(sh->mu);
  std::vector<std::string> ids;
  for (const Batch& b : sh->batches) ids.insert(ids.end(), b.ids.begin(), b.ids.end());
  std::map<std::string, Record> found;
  constexpr size_t kChunk = 1024;
  for (size_t i = 0; i < ids.size(); i += kChunk) {
    std::vector<std::string> chunk(ids.begin() + i,
                                   ids.begin() + std::min(ids.size(), i + kChunk));
    absl::StatusOr<GetResult> g = client.Get(kCollection, chunk, /*with_vectors=*/true);
    if (!g.ok()) return g.status();
    if (g->records.size() + g->not_found.size() != chunk.size()) {
      return absl::InternalError(absl::StrCat("Get of ", chunk.size(), " ids returned ",
                                              g->records.size(), " records and ",
                                              g->not_found.size(), " not found"));
    }
    for (Record& r : g->records) found.emplace(r.id, std::move(r));
  }

  *f = Figures{};
  for (size_t bi = 0; bi < sh->batches.size(); ++bi) {
    Batch& b = sh->batches[bi];
    if (b.state == BatchState::kInFlight) {
      return absl::InternalError(absl::StrCat("batch ", bi, " still in flight while verifying"));
    }
    size_t present = 0;
    for (const std::string& id : b.ids) {
      auto it = found.find(id);
      if (it == found.end()) {
        if (b.state == BatchState::kAcked) {
          ++f->lost;
          Problem(f, absl::StrCat("LOST: acknowledged record \"", id, "\" (batch #", bi, ", ",
                                  b.ids.size(), " records) is absent"));
        }
        continue;
      }
      ++present;
      const Record want = ExpectedRecord(id);
      const Record& got = it->second;
      bool same_fields = got.vectors.size() == want.vectors.size();
      for (const auto& [field, v] : want.vectors) same_fields = same_fields && got.vectors.count(field);
      if (!same_fields) {
        ++f->torn;
        std::string have;
        for (const auto& [field, v] : got.vectors) absl::StrAppend(&have, field, " ");
        Problem(f, absl::StrCat("TORN: record \"", id, "\" has fields { ", have, "}"));
      } else if (!BitIdentical(got, want)) {
        ++f->altered;
        Problem(f, absl::StrCat("ALTERED: record \"", id, "\"\n  got  ", testing::Canon(got),
                                "\n  want ", testing::Canon(want)));
      }
    }
    if (b.state == BatchState::kAcked) {
      ++f->batches_acked;
      f->records_acked += static_cast<int64_t>(b.ids.size());
    } else {
      ++f->batches_in_doubt;
      if (present != 0 && present != b.ids.size()) {
        ++f->torn_batches;
        Problem(f, absl::StrCat("TORN BATCH: batch ", bi, " (ids ", b.ids.front(), " .. ",
                                b.ids.back(), ") has ", present, " of ", b.ids.size(),
                                " records"));
      }
      if (present == b.ids.size()) ++f->in_doubt_present;
      if (b.checked && b.present_at_last_check && present == 0) {
        ++f->lost;
        Problem(f, absl::StrCat("VANISHED: batch ", bi, " (ids ", b.ids.front(), " .. ",
                                b.ids.back(), "), unacknowledged but found after an earlier "
                                "restart, is gone"));
      }
      b.checked = true;
      b.present_at_last_check = present == b.ids.size();
    }
  }

  absl::StatusOr<CollectionInfo> info = client.Describe(kCollection);
  if (!info.ok()) return info.status();
  const int64_t n = static_cast<int64_t>(found.size());
  if (info->records != n) {
    f->phantom = info->records - n;
    Problem(f, absl::StrCat("PHANTOM: the collection has ", info->records,
                            " records, the attempted ids found are ", n));
  }
  for (const auto& [field, count] : info->field_vectors) {
    if (count != n) {
      Problem(f, absl::StrCat("PHANTOM/TORN: field \"", field, "\" has ", count,
                              " vectors for ", n, " records"));
      if (f->phantom == 0) f->phantom = count - n;
    }
  }
  return absl::OkStatus();
}

std::string RosettadBinary() {
  const char* dir = std::getenv("ROSETTA_TEST_BIN_DIR");
  if (dir == nullptr || *dir == '\0') return "";
  return (std::filesystem::path(dir) / "tools" / "rosettad").string();
}

int Cycles() {
  const char* s = std::getenv("ROSETTA_CRASH_CYCLES");
  if (s != nullptr && std::atoi(s) > 0) return std::atoi(s);
  return kDefaultCycles;
}

TEST(CrashTest, AcknowledgedUpsertsSurviveSigkill) {
  const std::string binary = RosettadBinary();
  if (binary.empty()) {
    GTEST_SKIP() << "ROSETTA_TEST_BIN_DIR is not set (ctest sets it); cannot find the rosettad "
                    "binary, skipping the crash test";
  }
  if (::access(binary.c_str(), X_OK) != 0) {
    GTEST_SKIP() << "rosettad is not built at " << binary
                 << " (build the `rosettad` target); skipping the crash test";
  }
  const uint64_t seed = rosetta::testing::TestSeed(20261125);
  SCOPED_TRACE(rosetta::testing::SeedTrace(seed));
  std::cout << "crash test: " << rosetta::testing::SeedTrace(seed) << "\n";
  const int cycles = Cycles();
  std::mt19937_64 rng(seed);
  // Most kills land while batches are being written; some right after the restart (while
  // clients connect and retry).
  std::uniform_int_distribution<int> kill_after_ms(0, 250);

  rosetta::testing::TempDir tmp;
  const std::string data_dir = (tmp.path() / "data").string();
  const std::string log_path = (tmp.path() / "rosettad.log").string();
  auto dump_log = [&] {
    std::cout << "rosettad stderr (tail):\n" << Tail(ReadFileOrEmpty(log_path), 4000) << "\n";
  };

  absl::StatusOr<std::unique_ptr<Rosettad>> server = Rosettad::Start(binary, data_dir, log_path);
  ASSERT_TRUE(server.ok()) << server.status();
  std::cout << "crash test: " << (*server)->banner() << "\n";
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> admin,
                         ConnectRemoteClient("127.0.0.1", (*server)->port(), "", ClientOptions()));
    ASSERT_OK(admin->CreateCollection(CrashSchema()));
  }

  Shared sh;
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back(ClientLoop, &sh, i, seed + 1000003u * (i + 1));
  }
  auto publish = [&](uint16_t port) {
    std::lock_guard<std::mutex> lock(sh.mu);
    sh.kill_issued = false;
    sh.open = true;
    sh.port = port;
    ++sh.generation;
    sh.cv.notify_all();
  };
  auto close_gate = [&] {
    std::lock_guard<std::mutex> lock(sh.mu);
    sh.open = false;
    sh.kill_issued = true;
  };
  auto wait_all_parked = [&](milliseconds limit) {
    std::unique_lock<std::mutex> lock(sh.mu);
    return sh.cv.wait_for(lock, limit, [&] { return sh.parked == kClients; });
  };
  auto stop_clients = [&] {
    {
      std::lock_guard<std::mutex> lock(sh.mu);
      sh.stop = true;
      sh.cv.notify_all();
    }
    for (std::thread& t : clients) t.join();
    clients.clear();
  };

  if (!wait_all_parked(milliseconds(10'000))) {
    stop_clients();
    FAIL() << "the client threads did not start";
  }
  publish((*server)->port());

  Figures figures;
  int64_t max_batches_in_doubt = 0;
  const auto started = Clock::now();
  bool failed = false;
  for (int cycle = 1; cycle <= cycles && !failed; ++cycle) {
    std::this_thread::sleep_for(milliseconds(kill_after_ms(rng)));
    close_gate();
    const int status = (*server)->KillAndReap();
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
      ADD_FAILURE() << "cycle " << cycle << ": rosettad had exited on its own (wait status "
                    << status << ") before the kill";
      failed = true;
    }
    if (!wait_all_parked(milliseconds(60'000))) {
      ADD_FAILURE() << "cycle " << cycle << ": clients did not notice the dead server within 60 s";
      failed = true;
      break;
    }
    server->reset();
    server = Rosettad::Start(binary, data_dir, log_path);
    if (!server.ok()) {
      ADD_FAILURE() << "cycle " << cycle << ": restart failed: " << server.status();
      failed = true;
      break;
    }
    absl::StatusOr<std::unique_ptr<Client>> checker =
        ConnectRemoteClient("127.0.0.1", (*server)->port(), "", ClientOptions());
    if (!checker.ok()) {
      ADD_FAILURE() << "cycle " << cycle << ": cannot connect after restart: " << checker.status();
      failed = true;
      break;
    }
    absl::Status verified = Verify(**checker, &sh, &figures);
    if (!verified.ok()) {
      ADD_FAILURE() << "cycle " << cycle << ": verification failed: " << verified;
      failed = true;
      break;
    }
    max_batches_in_doubt = std::max(max_batches_in_doubt, figures.batches_in_doubt);
    if (figures.lost + figures.altered + figures.torn + figures.torn_batches + figures.phantom !=
        0) {
      ADD_FAILURE() << "cycle " << cycle << ": acknowledgement contract broken (seed " << seed
                    << "):\n  " << absl::StrJoin(figures.problems, "\n  ");
      failed = true;
      break;
    }
    {
      std::lock_guard<std::mutex> lock(sh.mu);
      if (!sh.unexpected.empty()) {
        ADD_FAILURE() << "cycle " << cycle << ": unexpected client errors:\n  "
                      << absl::StrJoin(sh.unexpected, "\n  ");
        failed = true;
        break;
      }
    }
    publish((*server)->port());
  }
  const double seconds =
      std::chrono::duration<double>(Clock::now() - started).count();

  // Stop the clients: park them first so none is mid-call when the server stops.
  close_gate();
  std::optional<int> exit_status;
  if (server.ok() && *server != nullptr) {
    // Graceful stop of the last server: SIGTERM finishes frames in flight, exit status 0.
    exit_status = (*server)->SignalAndWait(SIGTERM, milliseconds(20'000));
  }
  if (!wait_all_parked(milliseconds(60'000))) ADD_FAILURE() << "clients did not park at the end";
  stop_clients();
  if (!failed) {
    EXPECT_TRUE(exit_status.has_value()) << "rosettad did not stop within 20 s of SIGTERM";
    if (exit_status.has_value()) {
      EXPECT_TRUE(WIFEXITED(*exit_status) && WEXITSTATUS(*exit_status) == 0)
          << "rosettad's exit after SIGTERM: wait status " << *exit_status;
    }
  }

  int64_t retries = 0, retries_acked = 0, calls_failed = 0;
  {
    std::lock_guard<std::mutex> lock(sh.mu);
    retries = sh.retries;
    retries_acked = sh.retries_acked;
    calls_failed = sh.calls_failed;
    for (const std::string& u : sh.unexpected) ADD_FAILURE() << "unexpected client error: " << u;
  }
  std::cout << "crash test: seed=" << seed << " cycles=" << cycles << " clients=" << kClients
            << " seconds=" << seconds << "\n"
            << "crash test: acked records=" << figures.records_acked
            << " (batches " << figures.batches_acked << "), batches in doubt at the end="
            << figures.batches_in_doubt << " (present " << figures.in_doubt_present
            << ", most at one check " << max_batches_in_doubt << "), retries=" << retries
            << " (acked " << retries_acked << "), failed calls=" << calls_failed << "\n"
            << "crash test: lost=" << figures.lost << " altered=" << figures.altered
            << " phantom=" << figures.phantom << " torn=" << figures.torn
            << " torn_batches=" << figures.torn_batches << std::endl;
  // The test must have exercised something: acknowledged writes and crashes during writes.
  EXPECT_GT(figures.records_acked, 0);
  EXPECT_GT(calls_failed, 0);
  if (HasFailure()) dump_log();
}

}  // namespace
}  // namespace rosetta::net
