// Token authentication and roles (net/auth.h) and their enforcement by the service: the full
// matrix of every request x {no token, wrong token, truncated token, read, write, admin}, with
// zero unexpected allows and denials that say nothing about whether a collection exists.
#include <fstream>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "net/auth.h"
#include "net/embedded_client.h"
#include "net/protocol.h"
#include "net/service.h"
#include "tests/net/protocol_testing.h"
#include "tests/testing/testing.h"

namespace rosetta::net {
namespace {

using ::rosetta::testing::TempDir;
using ::testing::HasSubstr;
using ::testing::Not;

// ---------------------------------------------------------------------------------------------
// Constant-time comparison
// ---------------------------------------------------------------------------------------------

TEST(AuthTest, ConstantTimeEqualsIsEquality) {
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_TRUE(ConstantTimeEquals("secret", "secret"));
  EXPECT_FALSE(ConstantTimeEquals("secret", ""));
  EXPECT_FALSE(ConstantTimeEquals("", "secret"));
  EXPECT_FALSE(ConstantTimeEquals("secret", "secre"));    // a prefix.
  EXPECT_FALSE(ConstantTimeEquals("secret", "secrets"));  // an extension.
  EXPECT_FALSE(ConstantTimeEquals("secret", std::string("secret\0", 7)));
  // A presented value equal to the secret followed by zero bytes is not equal (lengths differ).
  EXPECT_FALSE(ConstantTimeEquals("ab", std::string("ab\0\0", 4)));
  EXPECT_FALSE(ConstantTimeEquals(std::string("ab\0\0", 4), "ab"));
  // Every single-byte difference, at every position.
  const std::string secret = "0123456789abcdefXYZ";
  for (size_t i = 0; i < secret.size(); ++i) {
    for (int delta : {1, 0x80, 0xff}) {
      std::string other = secret;
      other[i] = static_cast<char>(other[i] ^ delta);
      EXPECT_FALSE(ConstantTimeEquals(secret, other)) << i << " " << delta;
    }
  }
  const uint64_t seed = rosetta::testing::TestSeed(3);
  SCOPED_TRACE(rosetta::testing::SeedTrace(seed));
  std::mt19937_64 rng(seed);
  for (int i = 0; i < 20000; ++i) {
    std::string a(rng() % 6, '\0'), b(rng() % 6, '\0');
    for (char& c : a) c = static_cast<char>(rng() % 3);  // small alphabet: many equal pairs.
    for (char& c : b) c = static_cast<char>(rng() % 3);
    ASSERT_EQ(ConstantTimeEquals(a, b), a == b) << absl::CHexEscape(a) << " / "
                                                 << absl::CHexEscape(b);
  }
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

TEST(AuthTest, RolesAndOperations) {
  EXPECT_STREQ(RoleName(Role::kRead), "read");
  EXPECT_STREQ(RoleName(Role::kWrite), "write");
  EXPECT_STREQ(RoleName(Role::kAdmin), "admin");
  EXPECT_EQ(RoleFromName("write"), Role::kWrite);
  EXPECT_EQ(RoleFromName("Write"), std::nullopt);
  EXPECT_EQ(RoleFromName(""), std::nullopt);
  const std::pair<Operation, Role> table[] = {
      {Operation::kListCollections, Role::kRead}, {Operation::kDescribe, Role::kRead},
      {Operation::kGet, Role::kRead},             {Operation::kSearch, Role::kRead},
      {Operation::kUpsert, Role::kWrite},         {Operation::kImport, Role::kWrite},
      {Operation::kDelete, Role::kWrite},         {Operation::kCreateCollection, Role::kAdmin},
      {Operation::kDropCollection, Role::kAdmin}, {Operation::kBuildIndex, Role::kWrite},
      {Operation::kIndexProgress, Role::kRead},   {Operation::kStats, Role::kRead},
  };
  ASSERT_EQ(std::size(table), std::size(kAllOperations));
  for (auto [op, role] : table) EXPECT_EQ(RequiredRole(op), role) << OperationName(op);
  EXPECT_EQ(PermissionDeniedError(Role::kRead, Operation::kUpsert),
            absl::PermissionDeniedError("token role \"read\" may not upsert (requires write)"));
  EXPECT_EQ(PermissionDeniedError(Role::kWrite, Operation::kDropCollection),
            absl::PermissionDeniedError(
                "token role \"write\" may not drop-collection (requires admin)"));
  EXPECT_EQ(PermissionDeniedError(Role::kRead, Operation::kBuildIndex),
            absl::PermissionDeniedError("token role \"read\" may not build-index (requires write)"));
  EXPECT_STREQ(OperationName(Operation::kIndexProgress), "index-progress");
  EXPECT_STREQ(OperationName(Operation::kStats), "stats");
}

TEST(AuthTest, TokenFile) {
  AuthConfig auth;
  EXPECT_TRUE(auth.open());
  ASSERT_OK(auth.AddFromText(
      "# rosettad tokens\n"
      "\n"
      "read   r-token-1\n"
      "  write\tw-token-2   \n"
      "admin a-token-3\r\n"
      "   # indented comment\n",
      "token file \"t\""));
  EXPECT_FALSE(auth.open());
  EXPECT_EQ(auth.size(), 3u);
  EXPECT_EQ(auth.Authenticate("r-token-1"), Role::kRead);
  EXPECT_EQ(auth.Authenticate("w-token-2"), Role::kWrite);
  EXPECT_EQ(auth.Authenticate("a-token-3"), Role::kAdmin);
  EXPECT_EQ(auth.Authenticate(""), std::nullopt);
  EXPECT_EQ(auth.Authenticate("a-token-"), std::nullopt);
  EXPECT_EQ(auth.Authenticate("a-token-33"), std::nullopt);
  EXPECT_EQ(auth.Authenticate("A-TOKEN-3"), std::nullopt);
  EXPECT_EQ(auth.Authenticate("a-token-3\n"), std::nullopt);
}

TEST(AuthTest, TokenFileErrorsNameTheLineAndNeverTheToken) {
  struct Case {
    std::string text;
    std::string message;
  };
  const std::string secret = "s3cr3t-value";
  const Case cases[] = {
      {"reader " + secret, "t: line 1: unknown role \"reader\" (expected read, write or admin)"},
      {"# c\nread", "t: line 2: expected \"ROLE TOKEN\" (2 words), got 1 words"},
      {"read " + secret + " extra", "t: line 1: expected \"ROLE TOKEN\" (2 words), got 3 words"},
      {"read " + secret + "\nadmin " + secret, "t: line 2: token configured twice"},
      {"read " + std::string(kMaxTokenBytes + 1, 'x'), "t: line 1: token of 1025 bytes; at most 1024"},
      {"read s3cr\x01t", "t: line 1: token byte 5 is not printable ASCII without spaces (0x21 .. 0x7E)"},
      {"read s3cr\xC3\xA9t", "t: line 1: token byte 5 is not printable ASCII without spaces"},
  };
  for (const Case& c : cases) {
    AuthConfig auth;
    ASSERT_OK(auth.Add(Role::kRead, "existing"));
    absl::Status s = auth.AddFromText(c.text, "t");
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr(c.message));
    EXPECT_THAT(std::string(s.message()), Not(HasSubstr(secret)));
    EXPECT_THAT(std::string(s.message()), Not(HasSubstr("s3cr")));
    EXPECT_EQ(auth.size(), 1u) << "nothing is added on error";
  }
  AuthConfig auth;
  EXPECT_EQ(auth.Add(Role::kAdmin, ""), absl::InvalidArgumentError("empty token"));
  EXPECT_STATUS(auth.AddFromFile("/nonexistent/tokens.txt"), absl::StatusCode::kNotFound,
                "token file \"/nonexistent/tokens.txt\": cannot open");
}

TEST(AuthTest, TokenFileFromDisk) {
  TempDir tmp;
  const std::string path = (tmp.path() / "tokens").string();
  {
    std::ofstream f(path);
    f << "write abc\nbad line here\n";
  }
  AuthConfig auth;
  EXPECT_STATUS(auth.AddFromFile(path), absl::StatusCode::kInvalidArgument,
                absl::StrCat("token file \"", path, "\": line 2: expected \"ROLE TOKEN\""));
  {
    std::ofstream f(path);
    f << "write abc\n";
  }
  ASSERT_OK(auth.AddFromFile(path));
  EXPECT_EQ(auth.Authenticate("abc"), Role::kWrite);
}

TEST(AuthTest, OpenServerMakesEveryoneAdmin) {
  AuthConfig open;
  EXPECT_EQ(open.Authenticate(""), Role::kAdmin);
  EXPECT_EQ(open.Authenticate("anything"), Role::kAdmin);
}

// ---------------------------------------------------------------------------------------------
// The matrix, through the service
// ---------------------------------------------------------------------------------------------

constexpr char kRead[] = "read-0123456789abcdef";
constexpr char kWrite[] = "write-0123456789abcdef";
constexpr char kAdmin[] = "admin-0123456789abcdef";

struct TokenCase {
  const char* name;
  std::string token;
  std::optional<Role> role;  // nullopt: Hello must fail.
};

std::vector<TokenCase> TokenCases() {
  return {
      {"no token", "", std::nullopt},
      {"wrong token", "wrong-0123456789abcdef", std::nullopt},
      {"truncated admin token", std::string(kAdmin).substr(0, 10), std::nullopt},
      {"admin token plus a byte", std::string(kAdmin) + "x", std::nullopt},
      {"read token", kRead, Role::kRead},
      {"write token", kWrite, Role::kWrite},
      {"admin token", kAdmin, Role::kAdmin},
  };
}

// A request for `op` on `collection`, valid for the collection schema below.
Message RequestFor(Operation op, const std::string& collection, std::vector<float>* import_data) {
  switch (op) {
    case Operation::kListCollections:
      return msg::ListCollections{};
    case Operation::kDescribe:
      return msg::Describe{collection};
    case Operation::kGet:
      return msg::Get{collection, {"p1"}, true};
    case Operation::kSearch: {
      SearchRequest r;
      QueryInput in;
      in.vector = {1, 0};
      in.space = "s";
      r.inputs.push_back(in);
      return msg::Search{collection, {r}};
    }
    case Operation::kUpsert: {
      Record r;
      r.id = "p2";
      r.vectors["f"] = {0, 1};
      return msg::Upsert{collection, {r}};
    }
    case Operation::kImport: {
      *import_data = {1, 1};
      msg::Import m;
      m.request.collection = collection;
      m.request.field = "f";
      m.request.data = *import_data;
      m.request.rows = 1;
      m.request.dim = 2;
      m.request.id_prefix = "imp-";
      return Message(std::move(m));
    }
    case Operation::kDelete:
      return msg::Delete{collection, {"p1"}};
    case Operation::kCreateCollection: {
      CollectionSchema s;
      s.name = collection;
      s.spaces["s"] = Space{"s", 2, Metric::kIp, ""};
      s.fields["f"] = Field{"f", "s", "text", 1.0f, {}};
      // Indexed, so that an allowed BuildIndex succeeds rather than failing on a flat field.
      s.fields["f"].index.type = IndexType::kIvfPq;
      return msg::CreateCollection{s};
    }
    case Operation::kDropCollection:
      return msg::DropCollection{collection};
    case Operation::kBuildIndex:
      return msg::BuildIndex{collection, ""};
    case Operation::kIndexProgress:
      return msg::IndexProgress{collection};
    case Operation::kStats:
      return msg::Stats{};
  }
  return msg::ListCollections{};
}

class ServiceAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = OpenEmbeddedClient((tmp_.path() / "db").string(), {});
    ASSERT_TRUE(c.ok()) << c.status();
    backend_ = std::move(*c);
    ASSERT_OK(auth_.Add(Role::kRead, kRead));
    ASSERT_OK(auth_.Add(Role::kWrite, kWrite));
    ASSERT_OK(auth_.Add(Role::kAdmin, kAdmin));
    ASSERT_OK_AND_ASSIGN(ServerInfo info, backend_->Info());
    info_ = info;
    factory_ = std::make_unique<ServiceFactory>(backend_.get(), auth_, info_);
  }

  // "docs" exists with record p1; "ghost" does not exist.
  void Reset() {
    (void)backend_->DropCollection("docs");
    (void)backend_->DropCollection("ghost");
    std::vector<float> unused;
    const auto create = std::get<msg::CreateCollection>(
        RequestFor(Operation::kCreateCollection, "docs", &unused));
    ASSERT_OK(backend_->CreateCollection(create.schema));
    Record r;
    r.id = "p1";
    r.vectors["f"] = {1, 0};
    ASSERT_OK(backend_->Upsert("docs", {r}));
  }

  // A fingerprint of the database: collection names and each one's records.
  std::string Fingerprint() {
    std::string out;
    absl::StatusOr<std::vector<std::string>> names = backend_->ListCollections();
    if (!names.ok()) return names.status().ToString();
    for (const std::string& n : *names) {
      absl::StatusOr<GetResult> g = backend_->Get(n, {"p1", "p2", "imp-0"}, true);
      absl::StrAppend(&out, n, ":", g.ok() ? testing::Canon(*g) : g.status().ToString(), ";");
    }
    return out;
  }

  TempDir tmp_;
  std::unique_ptr<Client> backend_;
  AuthConfig auth_;
  ServerInfo info_;
  std::unique_ptr<ServiceFactory> factory_;
};

absl::StatusOr<Frame> Exchange(Session& s, uint64_t id, const Message& m, bool* closed) {
  absl::StatusOr<std::string> body = EncodeFrame(id, m);
  if (!body.ok()) return body.status();
  Reply reply = s.OnFrame(*body);
  *closed = reply.close_after;
  return DecodeFrame(reply.body);
}

TEST_F(ServiceAuthTest, EveryMessageTimesEveryToken) {
  int cases = 0, allowed = 0, denied = 0, unexpected_allows = 0, unexpected_denials = 0;
  for (const TokenCase& t : TokenCases()) {
    for (Operation op : kAllOperations) {
      for (const char* collection : {"docs", "ghost"}) {
        SCOPED_TRACE(absl::StrCat(t.name, " / ", OperationName(op), " / ", collection));
        Reset();
        const std::string before = Fingerprint();
        ++cases;
        std::unique_ptr<Session> s = factory_->NewSession("peer");
        bool closed = false;
        ASSERT_OK_AND_ASSIGN(Frame hello,
                             Exchange(*s, 1, msg::Hello{kProtocolVersion, t.token, "matrix"},
                                      &closed));
        if (!t.role) {
          // Hello refused: nothing else can be sent on this connection.
          ++denied;
          const auto* e = std::get_if<msg::Error>(&hello.message);
          ASSERT_NE(e, nullptr) << "Hello accepted for " << t.name;
          EXPECT_EQ(e->ToStatus(), absl::UnauthenticatedError(t.token.empty()
                                                                   ? "this server requires a token"
                                                                   : "invalid token"));
          EXPECT_TRUE(closed);
          EXPECT_FALSE(s->hello_done());
          // Even if a buggy transport kept sending, the session refuses.
          std::vector<float> data;
          ASSERT_OK_AND_ASSIGN(Frame after, Exchange(*s, 2, RequestFor(op, collection, &data),
                                                     &closed));
          if (!std::holds_alternative<msg::Error>(after.message)) ++unexpected_allows;
          EXPECT_EQ(Fingerprint(), before);
          continue;
        }
        const auto& reply = std::get<msg::HelloReply>(hello.message);
        EXPECT_EQ(reply.role, *t.role);
        // The data directory is shown to admin sessions only.
        EXPECT_EQ(reply.data_dir, *t.role == Role::kAdmin ? info_.data_dir : "");

        std::vector<float> data;
        ASSERT_OK_AND_ASSIGN(Frame answer,
                             Exchange(*s, 2, RequestFor(op, collection, &data), &closed));
        EXPECT_FALSE(closed);
        const auto* e = std::get_if<msg::Error>(&answer.message);
        const bool permission_denied =
            e != nullptr && e->code == absl::StatusCode::kPermissionDenied;
        const bool should_allow = Allows(*t.role, op);
        if (permission_denied) {
          ++denied;
          if (should_allow) ++unexpected_denials;
          // The same denial whether or not the collection exists, and nothing changed.
          EXPECT_EQ(e->ToStatus(), PermissionDeniedError(*t.role, op));
          EXPECT_EQ(Fingerprint(), before);
        } else {
          ++allowed;
          if (!should_allow) ++unexpected_allows;
        }
      }
    }
  }
  std::cout << "auth matrix: " << cases << " cases (" << TokenCases().size() << " tokens x "
            << std::size(kAllOperations) << " operations x 2 collections), " << allowed
            << " allowed, " << denied << " denied, " << unexpected_allows
            << " unexpected allows, " << unexpected_denials << " unexpected denials\n";
  EXPECT_EQ(unexpected_allows, 0);
  EXPECT_EQ(unexpected_denials, 0);
  // read: 6 operations, write: 10, admin: 12 (x 2 collections).
  EXPECT_EQ(allowed, 2 * (6 + 10 + 12));
}

}  // namespace
}  // namespace rosetta::net
