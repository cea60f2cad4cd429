// Test helpers shared by every test folder.
#pragma once

#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rosetta::testing {

// A fresh empty directory under $TMPDIR, removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }
  std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

// ../shared/data/<name> beside the checkout, or "" if absent.
std::string SharedDataDir(const std::string& name);

// Skips the current test with a clear message when ../shared/data/<name> is absent.
#define ROSETTA_REQUIRE_SHARED_DATA(name, out_dir)                                          \
  std::string out_dir = ::rosetta::testing::SharedDataDir(name);                           \
  if (out_dir.empty()) {                                                                    \
    GTEST_SKIP() << "shared data set '" << name << "' is absent (expected at "             \
                 << ROSETTA_SHARED_DATA_DIR << "/" << name << "); skipping real-data test"; \
  }

// The seed of a randomised test: ROSETTA_TEST_SEED if set, else `fallback`. Tests print it on
// failure via SCOPED_TRACE(SeedTrace(seed)).
uint64_t TestSeed(uint64_t fallback);
std::string SeedTrace(uint64_t seed);  // "seed=N (replay: ROSETTA_TEST_SEED=N <test binary>)"

// n x d row-major floats, N(0,1) components.
std::vector<float> RandomVectors(size_t n, size_t d, uint64_t seed);
// Clustered data that looks like real embeddings: `clusters` centres, points near them.
std::vector<float> ClusteredVectors(size_t n, size_t d, size_t clusters, uint64_t seed);

}  // namespace rosetta::testing

// Status matchers (Abseil 20220623 has none).
#define ASSERT_OK(expr)                                      \
  do {                                                       \
    const ::absl::Status rosetta_s_ = ::rosetta::testing::ToStatus(expr); \
    ASSERT_TRUE(rosetta_s_.ok()) << rosetta_s_;              \
  } while (0)
#define EXPECT_OK(expr)                                      \
  do {                                                       \
    const ::absl::Status rosetta_s_ = ::rosetta::testing::ToStatus(expr); \
    EXPECT_TRUE(rosetta_s_.ok()) << rosetta_s_;              \
  } while (0)
// ASSERT_OK_AND_ASSIGN(auto x, Foo());
#define ASSERT_OK_AND_ASSIGN(lhs, expr)                                                       \
  ROSETTA_ASSERT_OK_AND_ASSIGN_IMPL_(ROSETTA_TEST_CONCAT_(rosetta_sor_, __LINE__), lhs, expr)
#define ROSETTA_TEST_CONCAT_INNER_(a, b) a##b
#define ROSETTA_TEST_CONCAT_(a, b) ROSETTA_TEST_CONCAT_INNER_(a, b)
#define ROSETTA_ASSERT_OK_AND_ASSIGN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                      \
  ASSERT_TRUE(tmp.ok()) << tmp.status();                  \
  lhs = std::move(tmp).value()

// EXPECT_STATUS(expr, absl::StatusCode::kInvalidArgument, "substring of the message")
#define EXPECT_STATUS(expr, want_code, want_substr)                                   \
  do {                                                                               \
    const ::absl::Status rosetta_s_ = ::rosetta::testing::ToStatus(expr);            \
    EXPECT_EQ(rosetta_s_.code(), want_code) << rosetta_s_;                           \
    EXPECT_THAT(std::string(rosetta_s_.message()), ::testing::HasSubstr(want_substr)) \
        << rosetta_s_;                                                               \
  } while (0)

namespace rosetta::testing {
inline absl::Status ToStatus(const absl::Status& s) { return s; }
template <typename T>
absl::Status ToStatus(const absl::StatusOr<T>& s) { return s.status(); }
}  // namespace rosetta::testing
