#include "net/auth.h"

#include <cstdint>
#include <fstream>
#include <iterator>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "schema/status_macros.h"

namespace rosetta::net {

const char* RoleName(Role role) {
  switch (role) {
    case Role::kRead:
      return "read";
    case Role::kWrite:
      return "write";
    case Role::kAdmin:
      return "admin";
  }
  return "?";
}

std::optional<Role> RoleFromName(std::string_view name) {
  if (name == "read") return Role::kRead;
  if (name == "write") return Role::kWrite;
  if (name == "admin") return Role::kAdmin;
  return std::nullopt;
}

const char* OperationName(Operation op) {
  switch (op) {
    case Operation::kListCollections:
      return "list-collections";
    case Operation::kDescribe:
      return "describe";
    case Operation::kGet:
      return "get";
    case Operation::kSearch:
      return "search";
    case Operation::kUpsert:
      return "upsert";
    case Operation::kImport:
      return "import";
    case Operation::kDelete:
      return "delete";
    case Operation::kCreateCollection:
      return "create-collection";
    case Operation::kDropCollection:
      return "drop-collection";
    case Operation::kBuildIndex:
      return "build-index";
    case Operation::kIndexProgress:
      return "index-progress";
    case Operation::kStats:
      return "stats";
  }
  return "?";
}

Role RequiredRole(Operation op) {
  switch (op) {
    case Operation::kListCollections:
    case Operation::kDescribe:
    case Operation::kGet:
    case Operation::kSearch:
    case Operation::kIndexProgress:
    case Operation::kStats:
      return Role::kRead;
    case Operation::kUpsert:
    case Operation::kImport:
    case Operation::kDelete:
    case Operation::kBuildIndex:
      return Role::kWrite;
    case Operation::kCreateCollection:
    case Operation::kDropCollection:
      return Role::kAdmin;
  }
  // Unreachable for valid enumerators; an unknown operation needs the highest role (fail closed).
  return Role::kAdmin;
}

absl::Status PermissionDeniedError(Role role, Operation op) {
  return absl::PermissionDeniedError(absl::StrCat("token role \"", RoleName(role),
                                                  "\" may not ", OperationName(op),
                                                  " (requires ", RoleName(RequiredRole(op)), ")"));
}

namespace {

absl::Status CheckToken(std::string_view token) {
  if (token.empty()) return absl::InvalidArgumentError("empty token");
  if (token.size() > kMaxTokenBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("token of ", token.size(), " bytes; at most ", kMaxTokenBytes));
  }
  for (size_t i = 0; i < token.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(token[i]);
    if (c < 0x21 || c > 0x7E) {
      // The message gives the position, never the token itself.
      return absl::InvalidArgumentError(absl::StrCat(
          "token byte ", i + 1, " is not printable ASCII without spaces (0x21 .. 0x7E)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status AuthConfig::Add(Role role, std::string token) {
  RETURN_IF_ERROR(CheckToken(token));
  for (const Entry& e : tokens_) {
    // Configuration time, not a secret-dependent path an attacker can time.
    if (e.token == token) return absl::InvalidArgumentError("token configured twice");
  }
  tokens_.push_back(Entry{role, std::move(token)});
  return absl::OkStatus();
}

absl::Status AuthConfig::AddFromText(std::string_view text, const std::string& what) {
  AuthConfig staged = *this;  // nothing is added on error.
  int line_number = 0;
  // absl 20220623's string_view is its own type: split on absl::string_view.
  const absl::string_view all(text.data(), text.size());
  for (absl::string_view raw_line : absl::StrSplit(all, '\n')) {
    ++line_number;
    absl::string_view line = absl::StripAsciiWhitespace(raw_line);
    if (line.empty() || line.front() == '#') continue;
    std::vector<absl::string_view> parts =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    const std::string where = absl::StrCat(what, ": line ", line_number, ": ");
    if (parts.size() != 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, "expected \"ROLE TOKEN\" (2 words), got ", parts.size(), " words"));
    }
    std::optional<Role> role = RoleFromName(std::string_view(parts[0].data(), parts[0].size()));
    if (!role) {
      // A role word is not a secret; quote at most its first 32 bytes.
      return absl::InvalidArgumentError(absl::StrCat(
          where, "unknown role \"", parts[0].substr(0, 32), "\" (expected read, write or admin)"));
    }
    absl::Status s = staged.Add(*role, std::string(parts[1]));
    if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat(where, s.message()));
  }
  *this = std::move(staged);
  return absl::OkStatus();
}

absl::Status AuthConfig::AddFromFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return absl::NotFoundError(absl::StrCat("token file \"", path, "\": cannot open"));
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) return absl::DataLossError(absl::StrCat("token file \"", path, "\": read error"));
  return AddFromText(text, absl::StrCat("token file \"", path, "\""));
}

bool ConstantTimeEquals(std::string_view secret, std::string_view presented) {
  // Walk the presented value (whose length the caller knows anyway) and compare each byte with
  // the secret's byte at the same position, or with 0 past the secret's end. Index and mask are
  // computed arithmetically so neither the loop nor the loads branch on the secret's length or
  // contents; the accumulator only ORs, so there is nothing to exit early on.
  static const unsigned char kZero = 0;
  const unsigned char* s =
      secret.empty() ? &kZero : reinterpret_cast<const unsigned char*>(secret.data());
  const size_t s_size = secret.size();
  const unsigned char* p = reinterpret_cast<const unsigned char*>(presented.data());
  uint64_t diff = static_cast<uint64_t>(s_size ^ presented.size());
  for (size_t i = 0; i < presented.size(); ++i) {
    // in_range = 1 if i < s_size else 0 (the subtraction's sign bit; sizes < 2^63).
    const uint64_t in_range = (static_cast<uint64_t>(i) - static_cast<uint64_t>(s_size)) >> 63;
    const size_t index = static_cast<size_t>(i * in_range);  // i or 0.
    const unsigned char sb = static_cast<unsigned char>(s[index] & (0u - in_range));
    diff |= static_cast<uint64_t>(sb ^ p[i]);
  }
  // Launder through a volatile so the compiler keeps the full loop.
  volatile uint64_t result = diff;
  return result == 0;
}

std::optional<Role> AuthConfig::Authenticate(std::string_view token) const {
  if (tokens_.empty()) return Role::kAdmin;
  // Compare with every token; no early exit. Tokens are unique, so at most one matches.
  uint64_t matched = 0;
  uint64_t role_bits = 0;
  for (const Entry& e : tokens_) {
    const uint64_t eq = ConstantTimeEquals(e.token, token) ? 1 : 0;
    matched |= eq;
    role_bits |= (0 - eq) & static_cast<uint64_t>(e.role);
  }
  if (matched == 0) return std::nullopt;
  return static_cast<Role>(role_bits);
}

}  // namespace rosetta::net
