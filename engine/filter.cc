#include "engine/filter.h"

#include <variant>

#include "absl/status/status.h"
#include "schema/validate.h"

namespace rosetta::engine {
namespace {

// Three-way comparison of an attribute scalar with a filter value; nullopt if incomparable.
template <typename A>
std::optional<int> Compare(const A& a, const FilterValue& v) {
  auto three_way = [](const auto& x, const auto& y) { return x < y ? -1 : (y < x ? 1 : 0); };
  if constexpr (std::is_same_v<A, std::string>) {
    if (const auto* s = std::get_if<std::string>(&v)) return three_way(a, *s);
    return std::nullopt;
  } else if constexpr (std::is_same_v<A, bool>) {
    if (const auto* b = std::get_if<bool>(&v)) return three_way(a, *b);
    return std::nullopt;
  } else {
    // int64 / double: long double holds every int64 exactly, so mixed comparisons are exact.
    long double x = static_cast<long double>(a);
    if (const auto* i = std::get_if<int64_t>(&v)) return three_way(x, static_cast<long double>(*i));
    if (const auto* d = std::get_if<double>(&v)) return three_way(x, static_cast<long double>(*d));
    return std::nullopt;
  }
}

bool OrderHolds(FilterOp op, int c) {
  switch (op) {
    case FilterOp::kEq:
    case FilterOp::kIn:
      return c == 0;
    case FilterOp::kNe:
      return c != 0;
    case FilterOp::kGt:
      return c > 0;
    case FilterOp::kGte:
      return c >= 0;
    case FilterOp::kLt:
      return c < 0;
    case FilterOp::kLte:
      return c <= 0;
  }
  return false;
}

// A scalar attribute against the predicate's values.
template <typename A>
bool MatchScalar(const A& a, FilterOp op, const std::vector<FilterValue>& values) {
  if (op == FilterOp::kIn) {
    for (const auto& v : values) {
      auto c = Compare(a, v);
      if (c.has_value() && *c == 0) return true;
    }
    return false;
  }
  if (values.empty()) return false;
  auto c = Compare(a, values[0]);
  return c.has_value() && OrderHolds(op, *c);
}

bool MatchList(const std::vector<std::string>& list, FilterOp op,
               const std::vector<FilterValue>& values) {
  if (op == FilterOp::kEq || op == FilterOp::kIn) {
    for (const auto& e : list) {
      if (MatchScalar(e, FilterOp::kIn, values)) return true;
    }
    return false;
  }
  if (op == FilterOp::kNe) {
    if (values.empty() || !std::holds_alternative<std::string>(values[0])) return false;
    for (const auto& e : list) {
      if (e == std::get<std::string>(values[0])) return false;
    }
    return true;
  }
  return false;  // order comparisons on lists never match.
}

}  // namespace

absl::StatusOr<CompiledFilter> CompiledFilter::Compile(const Filter& filter,
                                                       const Layout& layout) {
  CompiledFilter out;
  for (size_t i = 0; i < filter.predicates.size(); ++i) {
    const Predicate& p = filter.predicates[i];
    const std::string where = "filter: predicate " + std::to_string(i) + " (\"" + p.key + "\")";
    Compiled c;
    c.key = p.key;
    c.op = p.op;
    c.values = p.values;
    if (p.values.empty()) return absl::InvalidArgumentError(where + ": no value");
    if (p.target == Predicate::Target::kAttribute) {
      c.kind = Kind::kAttribute;
    } else if (p.key == "source") {
      c.kind = Kind::kSource;
    } else if (p.key == "dataset_version") {
      c.kind = Kind::kDatasetVersion;
    } else if (p.key == "encoder") {
      c.kind = Kind::kEncoder;
    } else if (p.key == "steps") {
      c.kind = Kind::kSteps;
    } else if (p.key == "collected_at") {
      c.kind = Kind::kCollectedAt;
      c.values.clear();  // replaced by the parsed timestamps (int64 microseconds).
      for (const auto& v : p.values) {
        const auto* s = std::get_if<std::string>(&v);
        if (s == nullptr) {
          return absl::InvalidArgumentError(where + ": expected an RFC 3339 timestamp string");
        }
        auto t = ParseTimestampMicros(*s);
        if (!t.ok()) return absl::InvalidArgumentError(where + ": " + std::string(t.status().message()));
        c.values.push_back(FilterValue(int64_t{*t}));
      }
    } else {
      return absl::InvalidArgumentError(where + ": unknown provenance member");
    }
    out.predicates_.push_back(std::move(c));
  }
  for (const std::string& name : filter.has_fields) {
    auto it = layout.field_index.find(name);
    if (it == layout.field_index.end()) {
      return absl::InvalidArgumentError("filter: has_fields: unknown field \"" + name + "\"");
    }
    out.has_fields_.push_back(it->second);
  }
  return out;
}

bool CompiledFilter::MatchOne(const Compiled& p, const RowMeta& meta) {
  const Provenance& prov = meta.meta.provenance;
  switch (p.kind) {
    case Kind::kAttribute: {
      auto it = meta.meta.attributes.find(p.key);
      if (it == meta.meta.attributes.end()) return false;
      return std::visit(
          [&](const auto& a) -> bool {
            using A = std::decay_t<decltype(a)>;
            if constexpr (std::is_same_v<A, std::vector<std::string>>) {
              return MatchList(a, p.op, p.values);
            } else {
              return MatchScalar(a, p.op, p.values);
            }
          },
          it->second);
    }
    case Kind::kSource:
      return !prov.source.empty() && MatchScalar(prov.source, p.op, p.values);
    case Kind::kDatasetVersion:
      return !prov.dataset_version.empty() && MatchScalar(prov.dataset_version, p.op, p.values);
    case Kind::kEncoder:
      return !prov.encoder.empty() && MatchScalar(prov.encoder, p.op, p.values);
    case Kind::kSteps:
      return !prov.steps.empty() && MatchList(prov.steps, p.op, p.values);
    case Kind::kCollectedAt: {
      if (!meta.collected_at_us.has_value()) return false;
      return MatchScalar(*meta.collected_at_us, p.op, p.values);
    }
  }
  return false;
}

bool CompiledFilter::Matches(const RowMeta& meta) const {
  for (const auto& p : predicates_) {
    if (!MatchOne(p, meta)) return false;
  }
  return true;
}

}  // namespace rosetta::engine
