#include "schema/validate.h"

#include <cmath>
#include <set>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "schema/status_macros.h"
#include "schema/text.h"

namespace rosetta {
namespace {

template <typename... Args>
absl::Status Err(const Args&... args) {
  return absl::InvalidArgumentError(absl::StrCat(args...));
}

constexpr const char* kNameRule = "names match [A-Za-z_][A-Za-z0-9_.-]* and are at most 128 bytes";

// "" when `name` is a valid name, else why not (for messages).
std::string NameProblem(std::string_view name) {
  if (name.empty()) return "is empty";
  if (name.size() > kMaxNameBytes) {
    return absl::StrFormat("is %d bytes long (%s)", name.size(), kNameRule);
  }
  if (!IsValidName(name)) return absl::StrCat("is not a valid name (", kNameRule, ")");
  return "";
}

// "a, b, c" of a map's keys (at most 16, then "..."), for "unknown X (Xs: ...)" hints.
template <typename Map>
std::string KeyList(const Map& m) {
  std::string out;
  size_t n = 0;
  for (const auto& [key, value] : m) {
    if (n == 16) {
      absl::StrAppend(&out, ", ...");
      break;
    }
    absl::StrAppend(&out, n == 0 ? "" : ", ", key);
    ++n;
  }
  return out.empty() ? "none" : out;
}

// Checks a fusion weight: finite, 0 .. kMaxWeight. `what` locates it; messages read
// `<what>: weight -1 is negative`.
absl::Status CheckWeight(float w, const std::string& what) {
  if (std::isnan(w)) return Err(what, ": weight is NaN");
  if (std::isinf(w)) return Err(what, ": weight is infinite");
  if (w < 0) return Err(what, ": weight ", w, " is negative");
  if (w > kMaxWeight) return Err(what, ": weight ", w, " exceeds the maximum ", kMaxWeight);
  return absl::OkStatus();
}

// Free-form labels (modality, encoder): valid UTF-8, no control characters, bounded.
absl::Status CheckLabel(std::string_view s, const std::string& what) {
  if (s.size() > kMaxNameBytes) {
    return Err(what, " is ", s.size(), " bytes long (at most ", kMaxNameBytes, ")");
  }
  if (auto problem = CheckText(s, /*allow_control=*/false)) return Err(what, ": ", *problem);
  return absl::OkStatus();
}

const char* ValueTypeName(const AttributeValue& v) {
  switch (v.index()) {
    case 0:
      return "string";
    case 1:
      return "int";
    case 2:
      return "float";
    case 3:
      return "bool";
    default:
      return "string[]";
  }
}

std::string DescribeFilterValue(const FilterValue& v) {
  if (const auto* s = std::get_if<std::string>(&v)) return absl::StrCat("string ", Quote(*s));
  if (const auto* i = std::get_if<int64_t>(&v)) return absl::StrCat("int ", *i);
  if (const auto* d = std::get_if<double>(&v)) return absl::StrCat("float ", *d);
  return std::get<bool>(v) ? "bool true" : "bool false";
}

bool IsOrderOp(FilterOp op) {
  return op == FilterOp::kGt || op == FilterOp::kGte || op == FilterOp::kLt || op == FilterOp::kLte;
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil algorithm:
// shift the year to start in March so the leap day is the last day of the shifted year).
int64_t DaysFromCivil(int64_t y, int m, int d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

bool IsLeapYear(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int DaysInMonth(int y, int m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeapYear(y) ? 29 : kDays[m - 1];
}

}  // namespace

absl::StatusOr<int64_t> ParseTimestampMicros(const std::string& s) {
  const auto fail = [&](const std::string& why) {
    return Err(Quote(s), " is not an RFC 3339 timestamp: ", why);
  };
  const std::string kShape =
      "expected YYYY-MM-DDThh:mm:ss[.fraction](Z|+hh:mm|-hh:mm), e.g. 2025-08-09T10:00:00Z";
  if (s.size() > 64) return fail("longer than 64 bytes");
  size_t p = 0;
  // Reads exactly n ASCII digits.
  const auto digits = [&](int n, int* out) {
    int v = 0;
    for (int i = 0; i < n; ++i, ++p) {
      if (p >= s.size() || s[p] < '0' || s[p] > '9') return false;
      v = v * 10 + (s[p] - '0');
    }
    *out = v;
    return true;
  };
  const auto literal = [&](std::string_view accepted) {
    if (p >= s.size() || accepted.find(s[p]) == std::string_view::npos) return false;
    ++p;
    return true;
  };
  int year, month, day, hour, minute, second;
  if (!digits(4, &year) || !literal("-") || !digits(2, &month) || !literal("-") ||
      !digits(2, &day) || !literal("Tt") || !digits(2, &hour) || !literal(":") ||
      !digits(2, &minute) || !literal(":") || !digits(2, &second)) {
    return fail(kShape);
  }
  int64_t micros = 0;
  if (p < s.size() && s[p] == '.') {
    ++p;
    const size_t start = p;
    int64_t scale = 100000;
    while (p < s.size() && s[p] >= '0' && s[p] <= '9') {
      micros += (s[p] - '0') * scale;  // digits past the sixth have scale 0: truncation.
      scale /= 10;
      ++p;
    }
    if (p == start) return fail("expected digits after the decimal point");
  }
  int offset_minutes = 0;
  if (p >= s.size()) return fail("missing time zone (Z, +hh:mm or -hh:mm)");
  if (s[p] == 'Z' || s[p] == 'z') {
    ++p;
  } else if (s[p] == '+' || s[p] == '-') {
    const int sign = s[p] == '-' ? -1 : 1;
    ++p;
    int oh, om;
    if (!digits(2, &oh) || !literal(":") || !digits(2, &om)) {
      return fail("malformed time zone offset (expected +hh:mm or -hh:mm)");
    }
    if (oh > 23) return fail(absl::StrFormat("offset hour %02d is out of range 00..23", oh));
    if (om > 59) return fail(absl::StrFormat("offset minute %02d is out of range 00..59", om));
    offset_minutes = sign * (oh * 60 + om);
  } else {
    return fail("missing time zone (Z, +hh:mm or -hh:mm)");
  }
  if (p != s.size()) return fail("unexpected characters after the time zone");
  if (month < 1 || month > 12) {
    return fail(absl::StrFormat("month %02d is out of range 01..12", month));
  }
  if (day < 1 || day > DaysInMonth(year, month)) {
    return fail(absl::StrFormat("day %02d is out of range for %04d-%02d", day, year, month));
  }
  if (hour > 23) return fail(absl::StrFormat("hour %02d is out of range 00..23", hour));
  if (minute > 59) return fail(absl::StrFormat("minute %02d is out of range 00..59", minute));
  if (second > 60) return fail(absl::StrFormat("second %02d is out of range 00..60", second));
  // A leap second (:60) simply counts as the first second of the next minute here.
  const int64_t seconds = DaysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 +
                          second - int64_t{offset_minutes} * 60;
  return seconds * 1000000 + micros;
}

absl::Status ValidateSchema(const CollectionSchema& schema) {
  if (std::string problem = NameProblem(schema.name); !problem.empty()) {
    return Err("schema: collection name ", Quote(schema.name), " ", problem);
  }
  const std::string where = absl::StrCat("schema ", Quote(schema.name), ": ");
  for (const auto& [key, space] : schema.spaces) {
    if (std::string problem = NameProblem(key); !problem.empty()) {
      return Err(where, "space name ", Quote(key), " ", problem);
    }
    const std::string what = absl::StrCat(where, "space ", Quote(key));
    if (space.name != key) {
      return Err(what, ": its name is ", Quote(space.name), " (must equal its key)");
    }
    if (space.dim < 1 || space.dim > kMaxDim) {
      return Err(what, ": dim ", space.dim, " is out of range 1..", kMaxDim);
    }
    if (!MetricFromName(MetricName(space.metric))) {
      return Err(what, ": unknown metric ", static_cast<int>(space.metric));
    }
    RETURN_IF_ERROR(CheckLabel(space.encoder, what + ": encoder"));
  }
  if (schema.fields.empty()) return Err(where, "at least one field is required");
  for (const auto& [key, field] : schema.fields) {
    if (std::string problem = NameProblem(key); !problem.empty()) {
      return Err(where, "field name ", Quote(key), " ", problem);
    }
    const std::string what = absl::StrCat(where, "field ", Quote(key));
    if (field.name != key) {
      return Err(what, ": its name is ", Quote(field.name), " (must equal its key)");
    }
    if (field.space.empty()) return Err(what, ": space is required");
    if (!schema.spaces.count(field.space)) {
      return Err(what, ": unknown space ", Quote(field.space), " (spaces: ", KeyList(schema.spaces),
                 ")");
    }
    if (field.modality.empty()) {
      return Err(what, ": modality is required (a label such as \"text\" or \"image\")");
    }
    RETURN_IF_ERROR(CheckLabel(field.modality, what + ": modality"));
    RETURN_IF_ERROR(CheckWeight(field.weight, what));
    const IndexSpec& ix = field.index;
    if (ix.type == IndexType::kFlat) {
      if (ix.nlist != 0 || ix.m != 0 || ix.nbits != 0) {
        return Err(what, ": index: nlist, m and nbits apply to ivf_pq only");
      }
    } else if (ix.type == IndexType::kIvfPq) {
      const int dim = schema.spaces.at(field.space).dim;
      if (ix.nlist < 0 || ix.nlist > 65536) {
        return Err(what, ": index: nlist must be in 1..65536 (or left out), got ", ix.nlist);
      }
      if (ix.nbits != 0 && ix.nbits != 4 && ix.nbits != 8) {
        return Err(what, ": index: nbits must be 4 or 8, got ", ix.nbits);
      }
      if (ix.m < 0 || ix.m > dim) {
        return Err(what, ": index: m must be in 1..", dim, " (the space's dim), got ", ix.m);
      }
      if (ix.m > 0 && dim % ix.m != 0) {
        return Err(what, ": index: m = ", ix.m, " does not divide the space's dim ", dim);
      }
    } else {
      return Err(what, ": index: unknown type ", static_cast<int>(ix.type));
    }
  }
  for (const auto& [name, type] : schema.attributes) {
    if (std::string problem = NameProblem(name); !problem.empty()) {
      return Err(where, "attribute name ", Quote(name), " ", problem);
    }
    if (!AttributeTypeFromName(AttributeTypeName(type))) {
      return Err(where, "attribute ", Quote(name), ": unknown type ", static_cast<int>(type));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateVector(const Space& space, std::span<const float> v, const std::string& what) {
  if (v.size() != static_cast<size_t>(space.dim)) {
    return Err(what, ": expected ", space.dim, " components (space ", Quote(space.name), "), got ",
               v.size());
  }
  double norm2 = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    const float x = v[i];
    if (std::isnan(x)) return Err(what, ": component ", i, " is NaN");
    if (std::isinf(x)) return Err(what, ": component ", i, " is ", x > 0 ? "+inf" : "-inf");
    if (std::fabs(x) > kMaxComponentMagnitude) {
      return Err(what, ": component ", i, " is ", x, ", beyond the largest magnitude allowed (",
                 kMaxComponentMagnitude, ")");
    }
    norm2 += static_cast<double>(x) * x;
  }
  if (space.metric == Metric::kCosine && norm2 == 0) {
    return Err(what, ": is a zero vector (space ", Quote(space.name),
               " uses cosine, which needs a non-zero vector)");
  }
  return absl::OkStatus();
}

void NormalizeInPlace(std::span<float> v) {
  // Accumulate in double: float32 sums of squares lose digits over long vectors and could
  // underflow for tiny (but valid) components.
  double norm2 = 0;
  for (float x : v) norm2 += static_cast<double>(x) * x;
  if (norm2 == 0) return;  // precondition violated; leave the input as it is rather than NaN.
  const double inv = 1.0 / std::sqrt(norm2);
  for (float& x : v) x = static_cast<float>(x * inv);
}

absl::Status ValidateAndNormalizeRecord(const CollectionSchema& schema, Record& record) {
  if (record.id.empty()) return Err("record id is empty");
  if (record.id.size() > kMaxIdBytes) {
    return Err("record id ", Quote(record.id), " is ", record.id.size(), " bytes long (at most ",
               kMaxIdBytes, ")");
  }
  if (auto problem = CheckText(record.id, /*allow_control=*/false)) {
    return Err("record id ", Quote(record.id), ": ", *problem);
  }
  const std::string where = absl::StrCat("record ", Quote(record.id));

  for (const auto& [name, vec] : record.vectors) {
    auto it = schema.fields.find(name);
    if (it == schema.fields.end()) {
      return Err(where, ": unknown field ", Quote(name), " (fields: ", KeyList(schema.fields), ")");
    }
    auto sp = schema.spaces.find(it->second.space);
    if (sp == schema.spaces.end()) {
      return Err(where, ": field ", Quote(name), " names unknown space ", Quote(it->second.space),
                 " (invalid schema)");
    }
    RETURN_IF_ERROR(ValidateVector(sp->second, vec, absl::StrCat(where, ": field ", Quote(name))));
  }
  for (const auto& [name, w] : record.weights) {
    if (!schema.fields.count(name)) {
      return Err(where, ": weights: unknown field ", Quote(name),
                 " (fields: ", KeyList(schema.fields), ")");
    }
    RETURN_IF_ERROR(CheckWeight(w, absl::StrCat(where, ": weights: field ", Quote(name))));
  }
  for (const auto& [name, value] : record.attributes) {
    auto it = schema.attributes.find(name);
    if (it == schema.attributes.end()) {
      return Err(where, ": attribute ", Quote(name),
                 " is not declared in the schema (attributes: ", KeyList(schema.attributes), ")");
    }
    const std::string what = absl::StrCat(where, ": attribute ", Quote(name));
    const AttributeType type = it->second;
    bool ok = false;
    switch (type) {
      case AttributeType::kString:
        ok = std::holds_alternative<std::string>(value);
        break;
      case AttributeType::kInt:
        ok = std::holds_alternative<int64_t>(value);
        break;
      case AttributeType::kFloat:  // an int is accepted (converted below, once all is valid).
        ok = std::holds_alternative<double>(value) || std::holds_alternative<int64_t>(value);
        break;
      case AttributeType::kBool:
        ok = std::holds_alternative<bool>(value);
        break;
      case AttributeType::kStringList:
        ok = std::holds_alternative<std::vector<std::string>>(value);
        break;
    }
    if (!ok) {
      return Err(what, ": expected a value of type ", AttributeTypeName(type), ", got ",
                 ValueTypeName(value));
    }
    if (const auto* d = std::get_if<double>(&value); d && !std::isfinite(*d)) {
      return Err(what, ": value is not finite");
    }
    if (const auto* str = std::get_if<std::string>(&value)) {
      if (auto problem = CheckText(*str, /*allow_control=*/true)) return Err(what, ": ", *problem);
    }
    if (const auto* list = std::get_if<std::vector<std::string>>(&value)) {
      for (size_t i = 0; i < list->size(); ++i) {
        if (auto problem = CheckText((*list)[i], /*allow_control=*/true)) {
          return Err(what, ": element ", i, ": ", *problem);
        }
      }
    }
  }
  const Provenance& prov = record.provenance;
  const auto check_prov = [&](const std::string& member, const std::string& value) {
    if (auto problem = CheckText(value, /*allow_control=*/true)) {
      return Err(where, ": provenance.", member, ": ", *problem);
    }
    return absl::OkStatus();
  };
  for (const auto& [member, value] :
       {std::pair<std::string, const std::string*>{"source", &prov.source},
        {"collected_at", &prov.collected_at},
        {"dataset_version", &prov.dataset_version},
        {"encoder", &prov.encoder}}) {
    RETURN_IF_ERROR(check_prov(member, *value));
  }
  for (size_t i = 0; i < prov.steps.size(); ++i) {
    RETURN_IF_ERROR(check_prov(absl::StrCat("steps[", i, "]"), prov.steps[i]));
  }
  if (!prov.collected_at.empty()) {
    if (auto t = ParseTimestampMicros(prov.collected_at); !t.ok()) {
      return Err(where, ": provenance.collected_at: ", t.status().message());
    }
  }

  // Everything is valid: only now mutate, so a failed call leaves the record as it was.
  for (auto& [name, vec] : record.vectors) {
    const Space& space = schema.spaces.at(schema.fields.at(name).space);
    if (space.metric == Metric::kCosine) NormalizeInPlace(vec);
  }
  for (auto& [name, value] : record.attributes) {
    if (schema.attributes.at(name) == AttributeType::kFloat &&
        std::holds_alternative<int64_t>(value)) {
      value = static_cast<double>(std::get<int64_t>(value));
    }
  }
  return absl::OkStatus();
}

namespace {

constexpr const char* kProvenanceKeys[] = {"source", "collected_at", "steps", "dataset_version",
                                           "encoder"};

absl::Status ValidatePredicate(const CollectionSchema& schema, const Predicate& pred) {
  const bool is_attr = pred.target == Predicate::Target::kAttribute;
  if (!is_attr && pred.target != Predicate::Target::kProvenance) {
    return Err("query: filter: predicate on ", Quote(pred.key), " has an unknown target ",
               static_cast<int>(pred.target));
  }
  const std::string what =
      absl::StrCat("query: filter: ", is_attr ? "attribute " : "provenance ", Quote(pred.key));
  if (!FilterOpFromName(FilterOpName(pred.op))) {
    return Err(what, ": unknown operator ", static_cast<int>(pred.op));
  }
  const std::string op_what = absl::StrCat(what, ": ", FilterOpName(pred.op));
  if (pred.op == FilterOp::kIn) {
    if (pred.values.empty()) return Err(op_what, ": needs at least one value");
  } else if (pred.values.size() != 1) {
    return Err(op_what, ": needs exactly one value, got ", pred.values.size());
  }

  // What the key compares as: its value kind, and whether it is a list (no order comparisons).
  enum class Kind { kString, kNumber, kBool, kTimestamp } kind;
  bool is_list = false;
  if (is_attr) {
    auto it = schema.attributes.find(pred.key);
    if (it == schema.attributes.end()) {
      return Err(what, " is not declared in the schema (attributes: ", KeyList(schema.attributes),
                 ")");
    }
    switch (it->second) {
      case AttributeType::kString:
        kind = Kind::kString;
        break;
      case AttributeType::kInt:
      case AttributeType::kFloat:
        kind = Kind::kNumber;
        break;
      case AttributeType::kBool:
        kind = Kind::kBool;
        break;
      case AttributeType::kStringList:
        kind = Kind::kString, is_list = true;
        break;
      default:
        return Err(what, ": attribute has an unknown type (invalid schema)");
    }
  } else {
    bool known = false;
    for (const char* k : kProvenanceKeys) known = known || pred.key == k;
    if (!known) {
      return Err(what, " is not a provenance member (expected one of: ",
                 absl::StrJoin(kProvenanceKeys, ", "), ")");
    }
    kind = pred.key == "collected_at" ? Kind::kTimestamp : Kind::kString;
    is_list = pred.key == "steps";
  }
  if (IsOrderOp(pred.op) && (is_list || kind == Kind::kBool)) {
    return Err(op_what, ": order comparisons are not defined on ", is_list ? "a list" : "a bool",
               " (use eq, ne or in)");
  }
  for (size_t i = 0; i < pred.values.size(); ++i) {
    const FilterValue& v = pred.values[i];
    const std::string value_what =
        pred.op == FilterOp::kIn ? absl::StrCat(op_what, "[", i, "]") : op_what;
    switch (kind) {
      case Kind::kString:
      case Kind::kTimestamp:
        if (!std::holds_alternative<std::string>(v)) {
          return Err(value_what, ": expected a string, got ", DescribeFilterValue(v));
        }
        if (auto problem = CheckText(std::get<std::string>(v), /*allow_control=*/true)) {
          return Err(value_what, ": ", *problem);
        }
        if (kind == Kind::kTimestamp) {
          if (auto t = ParseTimestampMicros(std::get<std::string>(v)); !t.ok()) {
            return Err(value_what, ": ", t.status().message());
          }
        }
        break;
      case Kind::kNumber:
        if (std::holds_alternative<double>(v)) {
          if (!std::isfinite(std::get<double>(v))) return Err(value_what, ": value is not finite");
        } else if (!std::holds_alternative<int64_t>(v)) {
          return Err(value_what, ": expected a number, got ", DescribeFilterValue(v));
        }
        break;
      case Kind::kBool:
        if (!std::holds_alternative<bool>(v)) {
          return Err(value_what, ": expected a bool, got ", DescribeFilterValue(v));
        }
        break;
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateAndNormalizeQuery(const CollectionSchema& schema, SearchRequest& request) {
  if (request.k < 1 || request.k > kMaxK) {
    return Err("query: k must be in 1..", kMaxK, ", got ", request.k);
  }
  if (request.nprobe < 0 || request.nprobe > 65536) {
    return Err("query: nprobe must be in 0..65536 (0 = default), got ", request.nprobe);
  }
  if (request.refine < 0 || request.refine > 100000) {
    return Err("query: refine must be in 0..100000 (0 = default), got ", request.refine);
  }
  if (request.refine > 0 && request.refine < request.k) {
    return Err("query: refine (", request.refine, ") must be at least k (", request.k, ")");
  }
  if (request.inputs.empty()) return Err("query: at least one input is required");
  if (!FusionFromName(FusionName(request.fusion))) {
    return Err("query: unknown fusion ", static_cast<int>(request.fusion));
  }
  if (!NormalizeFromName(NormalizeName(request.normalize))) {
    return Err("query: unknown normalize ", static_cast<int>(request.normalize));
  }
  if (!MissingFromName(MissingName(request.missing))) {
    return Err("query: unknown missing policy ", static_cast<int>(request.missing));
  }

  // First pass: check everything and compute each input's targeted fields; mutate afterwards so
  // that a failed validation leaves the request as it was.
  std::map<std::string, size_t> targeted_by;  // field -> input index.
  std::vector<std::vector<std::string>> targets(request.inputs.size());
  for (size_t i = 0; i < request.inputs.size(); ++i) {
    const QueryInput& in = request.inputs[i];
    const std::string where = absl::StrCat("query: inputs[", i, "]");
    if (in.space.empty()) return Err(where, ": space is required");
    auto sp = schema.spaces.find(in.space);
    if (sp == schema.spaces.end()) {
      return Err(where, ": unknown space ", Quote(in.space), " (spaces: ", KeyList(schema.spaces),
                 ")");
    }
    RETURN_IF_ERROR(ValidateVector(sp->second, in.vector, where + ".vector"));
    RETURN_IF_ERROR(CheckLabel(in.modality, where + ": modality"));
    RETURN_IF_ERROR(CheckWeight(in.weight, where));
    std::vector<std::string>& fields = targets[i];
    if (in.fields.empty()) {
      for (const auto& [name, field] : schema.fields) {
        if (field.space == in.space) fields.push_back(name);
      }
      if (fields.empty()) return Err(where, ": space ", Quote(in.space), " has no fields");
    } else {
      std::set<std::string> seen;
      for (const std::string& name : in.fields) {
        auto it = schema.fields.find(name);
        if (it == schema.fields.end()) {
          return Err(where, ": unknown field ", Quote(name), " (fields: ", KeyList(schema.fields),
                     ")");
        }
        if (it->second.space != in.space) {
          return Err(where, ": field ", Quote(name), " is in space ", Quote(it->second.space),
                     ", not ", Quote(in.space));
        }
        if (!seen.insert(name).second) {
          return Err(where, ": field ", Quote(name), " is listed twice");
        }
        fields.push_back(name);
      }
    }
    for (const std::string& name : fields) {
      auto [it, inserted] = targeted_by.emplace(name, i);
      if (!inserted) {
        return Err(where, ": field ", Quote(name), " is already targeted by inputs[", it->second,
                   "] (a field may be targeted by one input only)");
      }
    }
  }
  for (const auto& [name, w] : request.weights) {
    if (!schema.fields.count(name)) {
      return Err("query: weights: unknown field ", Quote(name),
                 " (fields: ", KeyList(schema.fields), ")");
    }
    if (!targeted_by.count(name)) {
      return Err("query: weights: field ", Quote(name), " is not targeted by any input");
    }
    RETURN_IF_ERROR(CheckWeight(w, absl::StrCat("query: weights: field ", Quote(name))));
  }
  for (const Predicate& pred : request.filter.predicates) {
    RETURN_IF_ERROR(ValidatePredicate(schema, pred));
  }
  for (const std::string& name : request.filter.has_fields) {
    if (!schema.fields.count(name)) {
      return Err("query: filter: has_fields: unknown field ", Quote(name),
                 " (fields: ", KeyList(schema.fields), ")");
    }
  }

  for (size_t i = 0; i < request.inputs.size(); ++i) {
    QueryInput& in = request.inputs[i];
    in.fields = std::move(targets[i]);
    if (schema.spaces.at(in.space).metric == Metric::kCosine) NormalizeInPlace(in.vector);
  }
  return absl::OkStatus();
}

}  // namespace rosetta
