#include "net/client.h"

#include <algorithm>
#include <thread>

#include "schema/status_macros.h"

namespace rosetta {

absl::StatusOr<IndexBuildProgress> Client::BuildIndex(const std::string&, const std::string&) {
  return absl::UnimplementedError("build-index is not supported by this client");
}

absl::StatusOr<IndexBuildProgress> Client::IndexProgress(const std::string&) {
  return absl::UnimplementedError("index-progress is not supported by this client");
}

absl::StatusOr<DatabaseStats> Client::Stats() {
  return absl::UnimplementedError("stats is not supported by this client");
}

absl::StatusOr<IndexBuildProgress> WaitForIndexes(
    Client& client, const std::string& collection, std::chrono::milliseconds timeout,
    std::chrono::milliseconds poll,
    const std::function<void(const IndexBuildProgress&)>& on_progress) {
  using Clock = std::chrono::steady_clock;
  // Clamped so that now + timeout cannot overflow the clock (milliseconds::max() = no limit).
  const std::chrono::milliseconds limit =
      std::min<std::chrono::milliseconds>(timeout, std::chrono::hours(24 * 365 * 100));
  const Clock::time_point end = Clock::now() + limit;
  // A zero or negative interval would make this a busy loop of requests.
  poll = std::max(poll, std::chrono::milliseconds(1));
  while (true) {
    ASSIGN_OR_RETURN(IndexBuildProgress p, client.IndexProgress(collection));
    if (on_progress) on_progress(p);
    const Clock::time_point now = Clock::now();
    if (p.done() || now >= end) return p;
    // Never sleep past the deadline: the last poll happens at it.
    std::this_thread::sleep_for(std::min<Clock::duration>(poll, end - now));
  }
}

}  // namespace rosetta
