// EXPECT_STATUS_IS(expr, code, substr): like EXPECT_STATUS from tests/testing/testing.h.
//
// Local because that macro names its parameter `code`, which the preprocessor also substitutes
// into `rosetta_s_.code()`, so it does not compile when used (reported to its owner).
#pragma once

#include <string>

#include "tests/testing/testing.h"

#define EXPECT_STATUS_IS(expr, want_code, substr)                                               \
  do {                                                                                          \
    const ::absl::Status storage_s_ = ::rosetta::testing::ToStatus(expr);                       \
    EXPECT_EQ(storage_s_.code(), want_code) << storage_s_;                                      \
    EXPECT_THAT(std::string(storage_s_.message()), ::testing::HasSubstr(substr)) << storage_s_; \
  } while (0)
