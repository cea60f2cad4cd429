// Internal to the engine: a search filter compiled against a collection's layout.
//
// Semantics (docs/query-semantics.md): a conjunction of predicates plus has_fields. A record
// without the attribute (or with an empty provenance member) fails every predicate on it, `ne`
// included. int and float compare numerically (exactly, also for large int64); strings compare
// bytewise; bools compare false < true. A string[] attribute (and provenance `steps`) matches
// eq / in when any element matches, ne when no element equals the value; order comparisons on
// lists never match (validation rejects them). collected_at compares as a timestamp. A value of a
// type that cannot be compared with the attribute fails the predicate (validation rejects those).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/layout.h"
#include "engine/segment.h"
#include "schema/types.h"

namespace rosetta::engine {

class CompiledFilter {
 public:
  // InvalidArgument for an unknown provenance member, field, or an unparsable timestamp.
  static absl::StatusOr<CompiledFilter> Compile(const Filter& filter, const Layout& layout);

  bool has_predicates() const { return !predicates_.empty(); }
  const std::vector<size_t>& has_fields() const { return has_fields_; }
  // The predicates (not has_fields) hold for the row's metadata.
  bool Matches(const RowMeta& meta) const;

 private:
  enum class Kind { kAttribute, kSource, kDatasetVersion, kEncoder, kSteps, kCollectedAt };
  struct Compiled {
    Kind kind;
    std::string key;
    FilterOp op;
    std::vector<FilterValue> values;  // kCollectedAt: parsed to int64 microseconds.
  };
  static bool MatchOne(const Compiled& p, const RowMeta& meta);

  std::vector<Compiled> predicates_;
  std::vector<size_t> has_fields_;
};

}  // namespace rosetta::engine
