// Why these codes: callers (engine, net) turn absl codes into client-visible errors and retry
// decisions. Corruption means bytes on disk are wrong (DataLoss, never retried); an IOError is
// the device or filesystem failing, which an operator can fix and a client may retry later
// (Unavailable), except a full disk, which is a resource limit (ResourceExhausted).
#include "storage/rocksdb_util.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace rosetta::storage::internal {

absl::Status FromRocks(const rocksdb::Status& s, std::string_view context) {
  if (s.ok()) return absl::OkStatus();
  const std::string msg =
      absl::StrCat(absl::string_view(context.data(), context.size()), ": ", s.ToString());
  switch (s.code()) {
    case rocksdb::Status::kOk:
      return absl::OkStatus();
    case rocksdb::Status::kNotFound:
      return absl::NotFoundError(msg);
    case rocksdb::Status::kCorruption:
      return absl::DataLossError(msg);
    case rocksdb::Status::kNotSupported:
      return absl::UnimplementedError(msg);
    case rocksdb::Status::kInvalidArgument:
      return absl::InvalidArgumentError(msg);
    case rocksdb::Status::kIOError:
      if (s.IsNoSpace()) return absl::ResourceExhaustedError(msg);
      return absl::UnavailableError(msg);
    case rocksdb::Status::kBusy:
    case rocksdb::Status::kTryAgain:
    case rocksdb::Status::kShutdownInProgress:
      return absl::UnavailableError(msg);
    case rocksdb::Status::kTimedOut:
    case rocksdb::Status::kExpired:
      return absl::DeadlineExceededError(msg);
    case rocksdb::Status::kAborted:
      return absl::AbortedError(msg);
    case rocksdb::Status::kCompactionTooLarge:
      return absl::ResourceExhaustedError(msg);
    default:
      return absl::InternalError(msg);
  }
}

}  // namespace rosetta::storage::internal
