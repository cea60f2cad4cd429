#include "tools/process/rosettad_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"

namespace rosetta::process {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::string Tail(const std::string& s, size_t n) {
  return s.size() <= n ? s : "..." + s.substr(s.size() - n);
}

}  // namespace

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exit status ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = ::strsignal(sig);
    return absl::StrCat("killed by signal ", sig, " (", name ? name : "?", ")");
  }
  return absl::StrCat("wait status ", status);
}

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Start(
    std::vector<std::string> args, const std::string& stderr_path) {
  if (args.empty()) return absl::InvalidArgumentError("ChildProcess::Start: empty argv");
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe2: ", std::strerror(errno)));
  }
  const char* log = stderr_path.empty() ? "/dev/null" : stderr_path.c_str();
  const int log_fd = ::open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    const int err = errno;
    ::close(out[0]);
    ::close(out[1]);
    return absl::InternalError(absl::StrCat("cannot open ", log, ": ", std::strerror(err)));
  }
  // Everything the child needs is prepared before fork: between fork and exec a multi-threaded
  // parent's child may only make async-signal-safe calls.
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    ::close(out[0]);
    ::close(out[1]);
    ::close(log_fd);
    return absl::InternalError(absl::StrCat("fork: ", std::strerror(err)));
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);     // never outlive the parent (a failed test, say).
    if (::getppid() != parent) ::_exit(126);  // the parent died before prctl.
    ::dup2(out[1], STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    if (::syscall(SYS_close_range, 3u, ~0u, 0u) != 0) {
      for (int fd = 3; fd < 4096; ++fd) ::close(fd);
    }
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(out[1]);
  ::close(log_fd);
  return std::unique_ptr<ChildProcess>(new ChildProcess(pid, out[0], stderr_path));
}

ChildProcess::ChildProcess(pid_t pid, int stdout_fd, std::string stderr_path)
    : pid_(pid), stdout_fd_(stdout_fd), stderr_path_(std::move(stderr_path)) {}

ChildProcess::~ChildProcess() {
  if (!reaped_) KillAndReap();
  ::close(stdout_fd_);
}

std::string ChildProcess::StderrLog() const {
  if (stderr_path_.empty()) return "";
  std::ifstream in(stderr_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::StatusOr<std::string> ChildProcess::ReadLine(milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (pending_.find('\n') == std::string::npos) {
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      return absl::DeadlineExceededError(
          absl::StrCat("no line on the child's stdout within ", timeout.count(),
                       " ms; its stderr: ", Tail(StderrLog(), 2000)));
    }
    pollfd p{stdout_fd_, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 1000)));
    if (r < 0 && errno != EINTR) {
      return absl::InternalError(absl::StrCat("poll: ", std::strerror(errno)));
    }
    if (r <= 0) continue;
    char buf[512];
    const ssize_t n = ::read(stdout_fd_, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int status = Reap();
      return absl::FailedPreconditionError(
          absl::StrCat("the child closed its stdout and exited (", DescribeWaitStatus(status),
                       "); its stderr: ", Tail(StderrLog(), 2000)));
    }
    pending_.append(buf, static_cast<size_t>(n));
  }
  const size_t nl = pending_.find('\n');
  std::string line = pending_.substr(0, nl);
  pending_.erase(0, nl + 1);
  return line;
}

int ChildProcess::Reap() {
  if (reaped_) return wait_status_;
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  reaped_ = true;
  wait_status_ = status;
  return status;
}

int ChildProcess::KillAndReap() {
  if (reaped_) return wait_status_;
  ::kill(pid_, SIGKILL);
  return Reap();
}

std::optional<int> ChildProcess::WaitFor(milliseconds limit) {
  if (reaped_) return wait_status_;
  const auto end = Clock::now() + limit;
  while (true) {
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      reaped_ = true;
      wait_status_ = status;
      return status;
    }
    if (Clock::now() >= end) return std::nullopt;
    std::this_thread::sleep_for(milliseconds(5));
  }
}

std::optional<int> ChildProcess::SignalAndWait(int sig, milliseconds limit) {
  if (reaped_) return wait_status_;
  ::kill(pid_, sig);
  std::optional<int> status = WaitFor(limit);
  if (!status.has_value()) KillAndReap();
  return status;
}

absl::StatusOr<std::unique_ptr<Rosettad>> Rosettad::Start(
    const std::string& binary, const std::string& data_dir, const std::string& stderr_path,
    const std::vector<std::string>& extra_args, milliseconds banner_timeout) {
  std::vector<std::string> args = {binary, "--data", data_dir, "--listen", "127.0.0.1:0"};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  auto child = ChildProcess::Start(std::move(args), stderr_path);
  if (!child.ok()) return child.status();
  auto banner = (*child)->ReadLine(banner_timeout);
  if (!banner.ok()) {
    return absl::Status(banner.status().code(),
                        absl::StrCat("rosettad gave no banner: ", banner.status().message()));
  }
  const std::string marker = "listening on 127.0.0.1:";
  const size_t at = banner->find(marker);
  if (at == std::string::npos) return absl::InternalError("unexpected banner: " + *banner);
  const int port = std::atoi(banner->c_str() + at + marker.size());
  if (port <= 0 || port > 65535) return absl::InternalError("no port in the banner: " + *banner);
  return std::unique_ptr<Rosettad>(
      new Rosettad(*std::move(child), *std::move(banner), static_cast<uint16_t>(port)));
}

}  // namespace rosetta::process
