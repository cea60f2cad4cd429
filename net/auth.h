// Token authentication and roles for the server (docs/PROTOCOL.md, "Authentication and roles").
//
// A server is configured with zero or more tokens, each with a role. Roles are ordered:
//   read  < write < admin
//   read:  ListCollections, Describe, Get, Search, IndexProgress, Stats
//   write: read + Upsert, Import, Delete, BuildIndex
//   admin: write + CreateCollection, DropCollection; HelloReply also carries the data directory.
// With no token configured the server is open: every session is admin, whatever token it sends
// (the transport refuses to listen on a non-loopback address in that case).
//
// The token is presented once, in Hello. Authenticate compares it with every configured token in
// constant time (no early exit on the first match or the first differing byte; the time depends
// only on the presented token's length and the number of configured tokens). A session's role is
// checked against RequiredRole(operation) before the request touches any collection, so a denial
// says nothing about whether a collection exists.
//
// Token file format (LoadTokenFile / ParseTokenFile), one token per line:
//   # comment lines and blank lines are ignored
//   read   r-0123456789abcdef
//   write  w-0123456789abcdef
//   admin  a-0123456789abcdef
// Each line is `ROLE TOKEN` separated by spaces or tabs; leading/trailing whitespace is ignored.
// Tokens are 1 .. kMaxTokenBytes printable ASCII characters without spaces (0x21 .. 0x7E); a
// token listed twice is an error (even with the same role). Errors are InvalidArgument naming the
// file and line: `token file "t.txt": line 3: unknown role "reader" (expected read, write or
// admin)`. Error messages never include a token.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rosetta::net {

inline constexpr size_t kMaxTokenBytes = 1024;

enum class Role { kRead = 0, kWrite = 1, kAdmin = 2 };

const char* RoleName(Role role);  // "read" | "write" | "admin"
std::optional<Role> RoleFromName(std::string_view name);

// Every request a client can make (Hello is not an operation: it authenticates).
enum class Operation {
  kListCollections,
  kDescribe,
  kGet,
  kSearch,
  kUpsert,
  kImport,
  kDelete,
  kCreateCollection,
  kDropCollection,
  kBuildIndex,
  kIndexProgress,
  kStats,
};
inline constexpr Operation kAllOperations[] = {
    Operation::kListCollections, Operation::kDescribe,         Operation::kGet,
    Operation::kSearch,          Operation::kUpsert,           Operation::kImport,
    Operation::kDelete,          Operation::kCreateCollection, Operation::kDropCollection,
    Operation::kBuildIndex,      Operation::kIndexProgress,    Operation::kStats};

// "list-collections", "describe", ..., "build-index", "index-progress", "stats": as the CLI's
// commands (index-progress is what `build-index` without --wait and its polling ask).
const char* OperationName(Operation op);
Role RequiredRole(Operation op);
inline bool Allows(Role role, Operation op) {
  return static_cast<int>(role) >= static_cast<int>(RequiredRole(op));
}

// PermissionDenied `token role "read" may not upsert (requires write)`. Names only the roles
// and the operation: never a collection.
absl::Status PermissionDeniedError(Role role, Operation op);

class AuthConfig {
 public:
  AuthConfig() = default;

  // Adds a token. InvalidArgument for an invalid token (empty, too long, a byte outside 0x21 ..
  // 0x7E) or one already configured.
  absl::Status Add(Role role, std::string token);

  // Appends the tokens of a token file (format above); `what` names it in errors. Nothing is
  // added on error.
  absl::Status AddFromText(std::string_view text, const std::string& what);
  // Reads and adds a token file. NotFound if it cannot be opened.
  absl::Status AddFromFile(const std::string& path);

  // True when no token is configured: an open server.
  bool open() const { return tokens_.empty(); }
  size_t size() const { return tokens_.size(); }

  // The role of a session presenting `token`: std::nullopt if it matches no configured token.
  // An open server returns kAdmin for any token (including none). Constant time as described
  // above.
  std::optional<Role> Authenticate(std::string_view token) const;

 private:
  struct Entry {
    Role role;
    std::string token;
  };
  std::vector<Entry> tokens_;
};

// Compares a secret with a presented value without data-dependent early exits: the running time
// depends only on presented.size(), never on where (or whether) the two differ, nor on the
// secret's length.
bool ConstantTimeEquals(std::string_view secret, std::string_view presented);

}  // namespace rosetta::net
