// Starting the real `rosettad` executable as a child process, for the tests and benchmarks that
// drive it over loopback (the crash test kills it with SIGKILL, the signal test stops it with
// SIGTERM/SIGINT, server_bench measures through it). No gtest here: bench/ links it too.
//
// The child never outlives the parent (PR_SET_PDEATHSIG), inherits none of the parent's file
// descriptors beyond stdin/stdout/stderr (so a client socket of the parent cannot leak into it),
// writes stdout to a pipe the parent reads (the banner) and appends stderr to a log file.
// Start is safe to call from a multi-threaded process: the child only makes async-signal-safe
// calls before exec.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace rosetta::process {

class ChildProcess {
 public:
  // Starts argv[0] (a path, not searched in PATH) with `argv`; stderr is appended to
  // `stderr_path` (created if missing; empty = /dev/null).
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Start(std::vector<std::string> argv,
                                                             const std::string& stderr_path);
  // SIGKILLs the child if it still runs, and reaps it.
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  bool running() const { return !reaped_; }

  // The next line the child writes to stdout (without the newline), waiting at most `timeout`.
  // DeadlineExceeded on timeout; FailedPrecondition when stdout closed first (the child exited:
  // the message then holds its wait status and the tail of its stderr log).
  absl::StatusOr<std::string> ReadLine(std::chrono::milliseconds timeout);

  // Sends `sig`, waits at most `limit` for the exit, and returns the wait status; SIGKILLs and
  // reaps it after `limit`, returning nullopt.
  std::optional<int> SignalAndWait(int sig, std::chrono::milliseconds limit);
  // Waits at most `limit` for the child to exit by itself; the wait status, or nullopt (then it
  // still runs).
  std::optional<int> WaitFor(std::chrono::milliseconds limit);
  // SIGKILL and reap; the wait status.
  int KillAndReap();

  // The stderr log's content (empty when stderr went to /dev/null).
  std::string StderrLog() const;

 private:
  ChildProcess(pid_t pid, int stdout_fd, std::string stderr_path);
  int Reap();

  pid_t pid_;
  int stdout_fd_;
  std::string stderr_path_;
  std::string pending_;  // stdout read past the last returned line.
  bool reaped_ = false;
  int wait_status_ = 0;
};

// "exit status 1", "killed by signal 9 (Killed)", ...
std::string DescribeWaitStatus(int wait_status);

// A running rosettad on 127.0.0.1 with an ephemeral port, learnt from its banner.
class Rosettad {
 public:
  // Runs `binary --data data_dir --listen 127.0.0.1:0 <extra_args...>` and waits at most
  // `banner_timeout` for the banner ("rosettad VERSION listening on 127.0.0.1:PORT ...").
  static absl::StatusOr<std::unique_ptr<Rosettad>> Start(
      const std::string& binary, const std::string& data_dir, const std::string& stderr_path,
      const std::vector<std::string>& extra_args,
      std::chrono::milliseconds banner_timeout = std::chrono::seconds(60));

  uint16_t port() const { return port_; }
  const std::string& banner() const { return banner_; }
  ChildProcess& process() { return *process_; }

 private:
  Rosettad(std::unique_ptr<ChildProcess> process, std::string banner, uint16_t port)
      : process_(std::move(process)), banner_(std::move(banner)), port_(port) {}
  std::unique_ptr<ChildProcess> process_;
  std::string banner_;
  uint16_t port_;
};

}  // namespace rosetta::process
