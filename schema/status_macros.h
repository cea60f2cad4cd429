// Status helpers for absl::Status / absl::StatusOr.
//
// Abseil 20220623 (Debian 12) ships no RETURN_IF_ERROR / ASSIGN_OR_RETURN, so we keep our own.
// Every module boundary in Rosetta returns absl::Status or absl::StatusOr; no exception crosses one.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define ROSETTA_CONCAT_INNER_(a, b) a##b
#define ROSETTA_CONCAT_(a, b) ROSETTA_CONCAT_INNER_(a, b)

// Evaluates `expr` (an absl::Status) and returns it from the enclosing function if it is not OK.
#define RETURN_IF_ERROR(expr)                          \
  do {                                                 \
    ::absl::Status rosetta_status_ = (expr);           \
    if (!rosetta_status_.ok()) return rosetta_status_; \
  } while (0)

// `ASSIGN_OR_RETURN(auto x, Foo());` evaluates Foo() (an absl::StatusOr<T>), returns its status
// from the enclosing function on error, and otherwise moves the value into `x`.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ROSETTA_ASSIGN_OR_RETURN_IMPL_(ROSETTA_CONCAT_(rosetta_statusor_, __LINE__), lhs, expr)
#define ROSETTA_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                   \
  if (!tmp.ok()) return std::move(tmp).status();       \
  lhs = std::move(tmp).value()
