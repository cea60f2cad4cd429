#include "schema/types.h"

#include <array>
#include <utility>

namespace rosetta {
namespace {

// One table per enum keeps the name and the parse direction in a single place, so that a new
// enumerator cannot be printable but not parseable (or the reverse).
template <typename E, size_t N>
using NameTable = std::array<std::pair<E, const char*>, N>;

constexpr NameTable<Metric, 3> kMetricNames{
    {{Metric::kCosine, "cosine"}, {Metric::kIp, "ip"}, {Metric::kL2, "l2"}}};
constexpr NameTable<AttributeType, 5> kAttributeTypeNames{
    {{AttributeType::kString, "string"},
     {AttributeType::kInt, "int"},
     {AttributeType::kFloat, "float"},
     {AttributeType::kBool, "bool"},
     {AttributeType::kStringList, "string[]"}}};
constexpr NameTable<Fusion, 3> kFusionNames{
    {{Fusion::kWeighted, "weighted"}, {Fusion::kRrf, "rrf"}, {Fusion::kMax, "max"}}};
constexpr NameTable<Normalize, 4> kNormalizeNames{{{Normalize::kNone, "none"},
                                                   {Normalize::kMinMax, "minmax"},
                                                   {Normalize::kZScore, "zscore"},
                                                   {Normalize::kCalibrated, "calibrated"}}};
constexpr NameTable<Missing, 3> kMissingNames{{{Missing::kRenormalize, "renormalize"},
                                               {Missing::kZero, "zero"},
                                               {Missing::kRequire, "require"}}};
constexpr NameTable<FilterOp, 7> kFilterOpNames{{{FilterOp::kEq, "eq"},
                                                 {FilterOp::kNe, "ne"},
                                                 {FilterOp::kIn, "in"},
                                                 {FilterOp::kGt, "gt"},
                                                 {FilterOp::kGte, "gte"},
                                                 {FilterOp::kLt, "lt"},
                                                 {FilterOp::kLte, "lte"}}};

template <typename E, size_t N>
const char* NameOf(const NameTable<E, N>& table, E value) {
  for (const auto& [e, name] : table) {
    if (e == value) return name;
  }
  // Only reachable through a cast of an out-of-range integer; validation rejects such values
  // with a message, and printing must not crash on them.
  return "unknown";
}

template <typename E, size_t N>
std::optional<E> FromName(const NameTable<E, N>& table, std::string_view name) {
  for (const auto& [e, n] : table) {
    if (name == n) return e;
  }
  return std::nullopt;
}

}  // namespace

const char* MetricName(Metric m) { return NameOf(kMetricNames, m); }
const char* AttributeTypeName(AttributeType t) { return NameOf(kAttributeTypeNames, t); }
const char* FusionName(Fusion f) { return NameOf(kFusionNames, f); }
const char* NormalizeName(Normalize n) { return NameOf(kNormalizeNames, n); }
const char* MissingName(Missing m) { return NameOf(kMissingNames, m); }
const char* FilterOpName(FilterOp op) { return NameOf(kFilterOpNames, op); }

std::optional<Metric> MetricFromName(std::string_view name) { return FromName(kMetricNames, name); }
std::optional<AttributeType> AttributeTypeFromName(std::string_view name) {
  return FromName(kAttributeTypeNames, name);
}
std::optional<Fusion> FusionFromName(std::string_view name) { return FromName(kFusionNames, name); }
std::optional<Normalize> NormalizeFromName(std::string_view name) {
  return FromName(kNormalizeNames, name);
}
std::optional<Missing> MissingFromName(std::string_view name) {
  return FromName(kMissingNames, name);
}
std::optional<FilterOp> FilterOpFromName(std::string_view name) {
  return FromName(kFilterOpNames, name);
}

}  // namespace rosetta
