#include "schema/json.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <system_error>
#include <unordered_set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "schema/status_macros.h"
#include "schema/text.h"

namespace rosetta {
namespace {

// The smallest double magnitude that rounds to float32 infinity: halfway between FLT_MAX and
// 2^128 (2^128 - 2^103). Anything below rounds to a finite float, FLT_MAX's own shortest text
// "3.4028235e+38" included (it is slightly above FLT_MAX).
constexpr double kFloatOverflow = 0x1.ffffffp127;

// ---------------------------------------------------------------------------------------------
// Parsing text
// ---------------------------------------------------------------------------------------------

constexpr int kMaxJsonDepth = 64;

// A SAX pass run before building the DOM. nlohmann silently keeps one of two duplicate keys and
// has no depth limit; a strict format wants both rejected, with the path where it happened. The
// pass builds nothing, so a hostile document (deep nesting, duplicates) costs no memory.
class StrictnessChecker {
 public:
  using string_t = Json::string_t;

  bool null() { return Value(); }
  bool boolean(bool) { return Value(); }
  bool number_integer(Json::number_integer_t) { return Value(); }
  bool number_unsigned(Json::number_unsigned_t) { return Value(); }
  bool number_float(Json::number_float_t, const string_t&) { return Value(); }
  bool string(string_t&) { return Value(); }
  bool binary(Json::binary_t&) { return Value(); }
  bool start_object(std::size_t) { return Push(true); }
  bool start_array(std::size_t) { return Push(false); }
  bool end_object() { return Pop(); }
  bool end_array() { return Pop(); }
  bool key(string_t& k) {
    Frame& f = frames_.back();
    f.key = k;
    if (!f.keys.insert(k).second) {
      error_ = absl::StrCat("duplicate key ", Quote(k), " at ", Path());
      return false;
    }
    return true;
  }
  template <class Exception>
  bool parse_error(std::size_t position, const std::string&, const Exception& ex) {
    syntax_error_ = true;
    byte_ = position;
    // nlohmann's message is "[json.exception.parse_error.101] parse error at line 1, column 2:
    // syntax error while parsing value - ..."; keep only the part after the position.
    std::string_view what = ex.what();
    const size_t bracket = what.find("] ");
    if (bracket != std::string_view::npos) what.remove_prefix(bracket + 2);
    const size_t colon = what.find(": ");
    if (colon != std::string_view::npos) what.remove_prefix(colon + 2);
    error_ = std::string(what);
    return false;
  }

  bool syntax_error() const { return syntax_error_; }
  size_t byte() const { return byte_; }
  const std::string& error() const { return error_; }

 private:
  struct Frame {
    bool object;
    std::unordered_set<std::string> keys;
    std::string key;
    size_t index = 0;
  };

  bool Value() {
    if (!frames_.empty() && !frames_.back().object) ++frames_.back().index;
    return true;
  }
  bool Push(bool object) {
    if (frames_.size() >= kMaxJsonDepth) {
      error_ = absl::StrCat("nesting deeper than ", kMaxJsonDepth, " levels at ", Path());
      return false;
    }
    frames_.push_back(Frame{object, {}, {}, 0});
    return true;
  }
  bool Pop() {
    frames_.pop_back();
    return Value();
  }
  std::string Path() const {
    std::string path;
    for (const Frame& f : frames_) {
      if (f.object) {
        absl::StrAppend(&path, path.empty() ? "" : ".", f.key);
      } else {
        absl::StrAppend(&path, "[", f.index, "]");
      }
    }
    return path.empty() ? "the top level" : path;
  }

  std::vector<Frame> frames_;
  bool syntax_error_ = false;
  size_t byte_ = 0;
  std::string error_;
};

// ---------------------------------------------------------------------------------------------
// Reading documents: paths and typed getters
// ---------------------------------------------------------------------------------------------

// "a.b" / "a[3]" path building. Keys that are not plain names are written ["key"] so a path
// stays readable whatever a document contains.
std::string Child(const std::string& path, std::string_view key) {
  if (IsValidName(key))
    return path.empty() ? std::string(key) : absl::StrCat(path, ".", std::string(key));
  return absl::StrCat(path, "[", Quote(key), "]");
}
std::string Index(const std::string& path, size_t i) { return absl::StrCat(path, "[", i, "]"); }

const char* TypeName(const Json& j) {
  switch (j.type()) {
    case Json::value_t::null:
      return "null";
    case Json::value_t::object:
      return "an object";
    case Json::value_t::array:
      return "an array";
    case Json::value_t::string:
      return "a string";
    case Json::value_t::boolean:
      return "a bool";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
      return "an integer";
    case Json::value_t::number_float:
      return "a number";
    default:
      return "a binary value";
  }
}

// The document being read ("query", `record "p1"`) and its error format:
// `<doc>: <path>: <problem>`, or `<doc>: <problem>` at the top level.
struct Doc {
  std::string name;

  absl::Status Error(const std::string& path, const std::string& problem) const {
    if (path.empty()) return absl::InvalidArgumentError(absl::StrCat(name, ": ", problem));
    return absl::InvalidArgumentError(absl::StrCat(name, ": ", path, ": ", problem));
  }
  absl::Status TypeError(const std::string& path, const std::string& expected,
                         const Json& got) const {
    return Error(path, absl::StrCat("expected ", expected, ", got ", TypeName(got)));
  }

  absl::Status ExpectObject(const Json& j, const std::string& path) const {
    if (!j.is_object()) return TypeError(path, "an object", j);
    return absl::OkStatus();
  }
  // Object with only `allowed` keys.
  absl::Status ExpectKeys(const Json& j, const std::string& path,
                          std::initializer_list<std::string_view> allowed) const {
    RETURN_IF_ERROR(ExpectObject(j, path));
    for (const auto& item : j.items()) {
      bool known = false;
      for (std::string_view a : allowed) known = known || item.key() == a;
      if (!known) {
        std::string list;
        for (std::string_view a : allowed) {
          absl::StrAppend(&list, list.empty() ? "" : ", ", absl::string_view(a.data(), a.size()));
        }
        return Error(Child(path, item.key()),
                     absl::StrCat("unknown key (expected one of: ", list, ")"));
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> String(const Json& j, const std::string& path) const {
    if (!j.is_string()) return TypeError(path, "a string", j);
    return j.get_ref<const std::string&>();
  }
  absl::StatusOr<bool> Bool(const Json& j, const std::string& path) const {
    if (!j.is_boolean()) return TypeError(path, "true or false", j);
    return j.get<bool>();
  }
  absl::StatusOr<int64_t> Int(const Json& j, const std::string& path) const {
    if (!j.is_number_integer()) return TypeError(path, "an integer", j);
    if (j.is_number_unsigned() &&
        j.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Error(path, absl::StrCat("integer ", j.get<uint64_t>(), " is out of range"));
    }
    return j.get<int64_t>();
  }
  absl::StatusOr<int> Int32(const Json& j, const std::string& path) const {
    ASSIGN_OR_RETURN(int64_t v, Int(j, path));
    if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max()) {
      return Error(path, absl::StrCat("integer ", v, " is out of range"));
    }
    return static_cast<int>(v);
  }
  absl::StatusOr<double> Double(const Json& j, const std::string& path) const {
    if (!j.is_number()) return TypeError(path, "a number", j);
    const double v = j.get<double>();
    if (!std::isfinite(v)) return Error(path, "expected a finite number");
    return v;
  }
  absl::StatusOr<float> Float(const Json& j, const std::string& path) const {
    ASSIGN_OR_RETURN(double v, Double(j, path));
    if (std::fabs(v) >= kFloatOverflow) {
      return Error(path, absl::StrCat("number ", v, " is out of float32 range"));
    }
    return static_cast<float>(v);
  }
  absl::StatusOr<std::vector<float>> FloatArray(const Json& j, const std::string& path) const {
    if (!j.is_array()) return TypeError(path, "an array of numbers", j);
    std::vector<float> out;
    out.reserve(j.size());
    for (size_t i = 0; i < j.size(); ++i) {
      const Json& x = j[i];
      if (!x.is_number()) return TypeError(Index(path, i), "a number", x);
      ASSIGN_OR_RETURN(float f, Float(x, Index(path, i)));
      out.push_back(f);
    }
    return out;
  }
  absl::StatusOr<std::vector<std::string>> StringArray(const Json& j,
                                                       const std::string& path) const {
    if (!j.is_array()) return TypeError(path, "an array of strings", j);
    std::vector<std::string> out;
    out.reserve(j.size());
    for (size_t i = 0; i < j.size(); ++i) {
      ASSIGN_OR_RETURN(std::string s, String(j[i], Index(path, i)));
      out.push_back(std::move(s));
    }
    return out;
  }
  // A map from names to floats: {"image": 0.5}.
  absl::StatusOr<std::map<std::string, float>> FloatMap(const Json& j,
                                                        const std::string& path) const {
    RETURN_IF_ERROR(ExpectObject(j, path));
    std::map<std::string, float> out;
    for (const auto& item : j.items()) {
      ASSIGN_OR_RETURN(float w, Float(item.value(), Child(path, item.key())));
      out[item.key()] = w;
    }
    return out;
  }
};

// Runs `body` and converts any exception into a Status: the getters above check types before
// every access, so this is a safety net that keeps the no-exception boundary unconditional.
template <typename F>
auto Guard(const std::string& doc, F&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(doc, ": ", e.what()));
  }
}

const Json* Find(const Json& j, std::string_view key) {
  auto it = j.find(key);
  return it == j.end() ? nullptr : &*it;
}

absl::StatusOr<AttributeValue> AttributeValueFromJson(const Doc& doc, const Json& j,
                                                      const std::string& path) {
  if (j.is_string()) return AttributeValue(j.get<std::string>());
  if (j.is_boolean()) return AttributeValue(j.get<bool>());
  if (j.is_number_integer()) {
    ASSIGN_OR_RETURN(int64_t v, doc.Int(j, path));
    return AttributeValue(v);
  }
  if (j.is_number_float()) {
    ASSIGN_OR_RETURN(double v, doc.Double(j, path));
    return AttributeValue(v);
  }
  if (j.is_array()) {
    std::vector<std::string> list;
    list.reserve(j.size());
    for (size_t i = 0; i < j.size(); ++i) {
      if (!j[i].is_string()) {
        return doc.TypeError(Index(path, i), "a string (array values are string[] attributes)",
                             j[i]);
      }
      list.push_back(j[i].get<std::string>());
    }
    return AttributeValue(std::move(list));
  }
  return doc.TypeError(path, "a string, number, bool or array of strings", j);
}

absl::StatusOr<Provenance> ProvenanceFromJsonAt(const Doc& doc, const Json& j,
                                                const std::string& path) {
  RETURN_IF_ERROR(
      doc.ExpectKeys(j, path, {"source", "collected_at", "steps", "dataset_version", "encoder"}));
  Provenance p;
  for (auto [key, member] : {std::pair<const char*, std::string*>{"source", &p.source},
                             {"collected_at", &p.collected_at},
                             {"dataset_version", &p.dataset_version},
                             {"encoder", &p.encoder}}) {
    if (const Json* v = Find(j, key)) {
      ASSIGN_OR_RETURN(*member, doc.String(*v, Child(path, key)));
    }
  }
  if (const Json* v = Find(j, "steps")) {
    ASSIGN_OR_RETURN(p.steps, doc.StringArray(*v, Child(path, "steps")));
  }
  return p;
}

absl::StatusOr<FilterValue> FilterValueFromJson(const Doc& doc, const Json& j,
                                                const std::string& path) {
  if (j.is_string()) return FilterValue(j.get<std::string>());
  if (j.is_boolean()) return FilterValue(j.get<bool>());
  if (j.is_number_integer()) {
    ASSIGN_OR_RETURN(int64_t v, doc.Int(j, path));
    return FilterValue(v);
  }
  if (j.is_number_float()) {
    ASSIGN_OR_RETURN(double v, doc.Double(j, path));
    return FilterValue(v);
  }
  return doc.TypeError(path, "a string, number or bool", j);
}

// One operator object: {"gte": 2020, "lt": 2024} -> two predicates.
absl::Status OperatorsFromJson(const Doc& doc, const Json& j, const std::string& path,
                               Predicate::Target target, const std::string& key,
                               std::vector<Predicate>* out) {
  RETURN_IF_ERROR(doc.ExpectObject(j, path));
  if (j.empty()) {
    return doc.Error(path, "expected at least one operator (eq, ne, in, gt, gte, lt, lte)");
  }
  for (const auto& item : j.items()) {
    const std::string op_path = Child(path, item.key());
    std::optional<FilterOp> op = FilterOpFromName(item.key());
    if (!op) {
      return doc.Error(op_path, "unknown operator (expected one of: eq, ne, in, gt, gte, lt, lte)");
    }
    Predicate pred;
    pred.target = target;
    pred.key = key;
    pred.op = *op;
    if (*op == FilterOp::kIn) {
      if (!item.value().is_array())
        return doc.TypeError(op_path, "an array of values", item.value());
      for (size_t i = 0; i < item.value().size(); ++i) {
        ASSIGN_OR_RETURN(FilterValue v,
                         FilterValueFromJson(doc, item.value()[i], Index(op_path, i)));
        pred.values.push_back(std::move(v));
      }
    } else {
      ASSIGN_OR_RETURN(FilterValue v, FilterValueFromJson(doc, item.value(), op_path));
      pred.values.push_back(std::move(v));
    }
    out->push_back(std::move(pred));
  }
  return absl::OkStatus();
}

// {"lang": "en", "year": {"gte": 2020}, "tags": [{"ne": "a"}, {"ne": "b"}]}
absl::Status PredicatesFromJson(const Doc& doc, const Json& j, const std::string& path,
                                Predicate::Target target, std::vector<Predicate>* out) {
  RETURN_IF_ERROR(doc.ExpectObject(j, path));
  for (const auto& item : j.items()) {
    const std::string key_path = Child(path, item.key());
    const Json& v = item.value();
    if (v.is_object()) {
      RETURN_IF_ERROR(OperatorsFromJson(doc, v, key_path, target, item.key(), out));
    } else if (v.is_array()) {
      // A list of operator objects, all required: the form for repeated operators.
      for (size_t i = 0; i < v.size(); ++i) {
        if (!v[i].is_object()) {
          return doc.TypeError(Index(key_path, i),
                               "an operator object such as {\"in\": [...]} (a list of values "
                               "needs an operator)",
                               v[i]);
        }
        RETURN_IF_ERROR(OperatorsFromJson(doc, v[i], Index(key_path, i), target, item.key(), out));
      }
    } else {
      Predicate pred;
      pred.target = target;
      pred.key = item.key();
      pred.op = FilterOp::kEq;
      ASSIGN_OR_RETURN(FilterValue fv, FilterValueFromJson(doc, v, key_path));
      pred.values.push_back(std::move(fv));
      out->push_back(std::move(pred));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Filter> FilterFromJson(const Doc& doc, const Json& j, const std::string& path) {
  RETURN_IF_ERROR(doc.ExpectKeys(j, path, {"attributes", "provenance", "has_fields"}));
  Filter f;
  if (const Json* v = Find(j, "attributes")) {
    RETURN_IF_ERROR(PredicatesFromJson(doc, *v, Child(path, "attributes"),
                                       Predicate::Target::kAttribute, &f.predicates));
  }
  if (const Json* v = Find(j, "provenance")) {
    RETURN_IF_ERROR(PredicatesFromJson(doc, *v, Child(path, "provenance"),
                                       Predicate::Target::kProvenance, &f.predicates));
  }
  if (const Json* v = Find(j, "has_fields")) {
    ASSIGN_OR_RETURN(f.has_fields, doc.StringArray(*v, Child(path, "has_fields")));
  }
  return f;
}

template <typename E>
absl::StatusOr<E> EnumFromJson(const Doc& doc, const Json& j, const std::string& path,
                               std::optional<E> (*from_name)(std::string_view),
                               const char* expected) {
  ASSIGN_OR_RETURN(std::string s, doc.String(j, path));
  std::optional<E> e = from_name(s);
  if (!e)
    return doc.Error(path, absl::StrCat("unknown value ", Quote(s), " (expected ", expected, ")"));
  return *e;
}

absl::StatusOr<FieldExplanation> ExplanationFromJson(const Doc& doc, const Json& j,
                                                     const std::string& path) {
  RETURN_IF_ERROR(doc.ExpectObject(j, path));
  FieldExplanation e;
  if (const Json* m = Find(j, "missing")) {
    RETURN_IF_ERROR(doc.ExpectKeys(j, path, {"missing"}));
    ASSIGN_OR_RETURN(e.missing, doc.Bool(*m, Child(path, "missing")));
    if (!e.missing) return doc.Error(Child(path, "missing"), "expected true (or no key)");
    return e;
  }
  RETURN_IF_ERROR(doc.ExpectKeys(j, path, {"raw", "normalized", "weight", "contribution", "rank"}));
  for (auto [key, member] : {std::pair<const char*, float*>{"raw", &e.raw},
                             {"normalized", &e.normalized},
                             {"weight", &e.weight},
                             {"contribution", &e.contribution}}) {
    const Json* v = Find(j, key);
    if (!v) return doc.Error(Child(path, key), "is required");
    ASSIGN_OR_RETURN(*member, doc.Float(*v, Child(path, key)));
  }
  const Json* rank = Find(j, "rank");
  if (!rank) return doc.Error(Child(path, "rank"), "is required");
  ASSIGN_OR_RETURN(e.rank, doc.Int(*rank, Child(path, "rank")));
  return e;
}

// Required member lookup.
absl::StatusOr<const Json*> Require(const Doc& doc, const Json& j, const std::string& path,
                                    std::string_view key) {
  const Json* v = Find(j, key);
  if (!v) return doc.Error(Child(path, key), "is required");
  return v;
}

absl::StatusOr<Record> RecordFromJsonAt(const Doc& outer, const Json& j, const std::string& path) {
  RETURN_IF_ERROR(outer.ExpectObject(j, path));
  Record r;
  ASSIGN_OR_RETURN(const Json* id, Require(outer, j, path, "id"));
  ASSIGN_OR_RETURN(r.id, outer.String(*id, Child(path, "id")));
  // From here on, messages name the record: `record "p1": vectors.image[3]: ...`.
  const Doc doc{path.empty() ? absl::StrCat("record ", Quote(r.id))
                             : absl::StrCat(outer.name, ": ", path, " (record ", Quote(r.id), ")")};
  const std::string p;  // paths below are relative to the record.
  RETURN_IF_ERROR(doc.ExpectKeys(j, p, {"id", "vectors", "weights", "attributes", "provenance"}));
  if (const Json* v = Find(j, "vectors")) {
    RETURN_IF_ERROR(doc.ExpectObject(*v, "vectors"));
    for (const auto& item : v->items()) {
      ASSIGN_OR_RETURN(r.vectors[item.key()],
                       doc.FloatArray(item.value(), Child("vectors", item.key())));
    }
  }
  if (const Json* v = Find(j, "weights")) {
    ASSIGN_OR_RETURN(r.weights, doc.FloatMap(*v, "weights"));
  }
  if (const Json* v = Find(j, "attributes")) {
    RETURN_IF_ERROR(doc.ExpectObject(*v, "attributes"));
    for (const auto& item : v->items()) {
      ASSIGN_OR_RETURN(r.attributes[item.key()],
                       AttributeValueFromJson(doc, item.value(), Child("attributes", item.key())));
    }
  }
  if (const Json* v = Find(j, "provenance")) {
    ASSIGN_OR_RETURN(r.provenance, ProvenanceFromJsonAt(doc, *v, "provenance"));
  }
  return r;
}

absl::StatusOr<CollectionSchema> SchemaFromJsonAt(const Doc& doc, const Json& j,
                                                  const std::string& path) {
  RETURN_IF_ERROR(doc.ExpectKeys(j, path, {"name", "spaces", "fields", "attributes"}));
  CollectionSchema s;
  ASSIGN_OR_RETURN(const Json* name, Require(doc, j, path, "name"));
  ASSIGN_OR_RETURN(s.name, doc.String(*name, Child(path, "name")));

  const std::string spaces_path = Child(path, "spaces");
  ASSIGN_OR_RETURN(const Json* spaces, Require(doc, j, path, "spaces"));
  RETURN_IF_ERROR(doc.ExpectObject(*spaces, spaces_path));
  for (const auto& item : spaces->items()) {
    const std::string sp = Child(spaces_path, item.key());
    const Json& v = item.value();
    RETURN_IF_ERROR(doc.ExpectKeys(v, sp, {"dim", "metric", "encoder"}));
    Space space;
    space.name = item.key();
    ASSIGN_OR_RETURN(const Json* dim, Require(doc, v, sp, "dim"));
    ASSIGN_OR_RETURN(space.dim, doc.Int32(*dim, Child(sp, "dim")));
    ASSIGN_OR_RETURN(const Json* metric, Require(doc, v, sp, "metric"));
    ASSIGN_OR_RETURN(space.metric, EnumFromJson<Metric>(doc, *metric, Child(sp, "metric"),
                                                        &MetricFromName, "cosine, ip or l2"));
    if (const Json* e = Find(v, "encoder")) {
      ASSIGN_OR_RETURN(space.encoder, doc.String(*e, Child(sp, "encoder")));
    }
    s.spaces[space.name] = std::move(space);
  }

  const std::string fields_path = Child(path, "fields");
  ASSIGN_OR_RETURN(const Json* fields, Require(doc, j, path, "fields"));
  RETURN_IF_ERROR(doc.ExpectObject(*fields, fields_path));
  for (const auto& item : fields->items()) {
    const std::string fp = Child(fields_path, item.key());
    const Json& v = item.value();
    RETURN_IF_ERROR(doc.ExpectKeys(v, fp, {"space", "modality", "weight", "index"}));
    Field field;
    field.name = item.key();
    ASSIGN_OR_RETURN(const Json* space, Require(doc, v, fp, "space"));
    ASSIGN_OR_RETURN(field.space, doc.String(*space, Child(fp, "space")));
    ASSIGN_OR_RETURN(const Json* modality, Require(doc, v, fp, "modality"));
    ASSIGN_OR_RETURN(field.modality, doc.String(*modality, Child(fp, "modality")));
    if (const Json* w = Find(v, "weight")) {
      ASSIGN_OR_RETURN(field.weight, doc.Float(*w, Child(fp, "weight")));
    }
    if (const Json* ix = Find(v, "index")) {
      const std::string ip = Child(fp, "index");
      // "flat" | "ivf_pq" | {"type": ..., "nlist"?, "m"?, "nbits"?}
      const Json* type = ix;
      if (ix->is_object()) {
        RETURN_IF_ERROR(doc.ExpectKeys(*ix, ip, {"type", "nlist", "m", "nbits"}));
        ASSIGN_OR_RETURN(type, Require(doc, *ix, ip, "type"));
      }
      const std::string tp = ix->is_object() ? Child(ip, "type") : ip;
      ASSIGN_OR_RETURN(std::string name, doc.String(*type, tp));
      if (name == "flat") {
        field.index.type = IndexType::kFlat;
      } else if (name == "ivf_pq") {
        field.index.type = IndexType::kIvfPq;
      } else {
        return doc.Error(tp, "unknown index type \"" + name + "\" (expected flat or ivf_pq)");
      }
      if (ix->is_object()) {
        for (auto [key, member] : {std::pair<const char*, int64_t*>{"nlist", &field.index.nlist},
                                   {"m", &field.index.m},
                                   {"nbits", &field.index.nbits}}) {
          if (const Json* n = Find(*ix, key)) {
            ASSIGN_OR_RETURN(*member, doc.Int(*n, Child(ip, key)));
          }
        }
      }
    }
    s.fields[field.name] = std::move(field);
  }

  if (const Json* attrs = Find(j, "attributes")) {
    const std::string ap = Child(path, "attributes");
    RETURN_IF_ERROR(doc.ExpectObject(*attrs, ap));
    for (const auto& item : attrs->items()) {
      ASSIGN_OR_RETURN(s.attributes[item.key()],
                       EnumFromJson<AttributeType>(doc, item.value(), Child(ap, item.key()),
                                                   &AttributeTypeFromName,
                                                   "string, int, float, bool or string[]"));
    }
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

Json FilterValueToJson(const FilterValue& v) {
  if (const auto* s = std::get_if<std::string>(&v)) return *s;
  if (const auto* i = std::get_if<int64_t>(&v)) return *i;
  if (const auto* d = std::get_if<double>(&v)) return std::isfinite(*d) ? Json(*d) : Json();
  return std::get<bool>(v);
}

Json PredicateValueToJson(const Predicate& p) {
  if (p.op == FilterOp::kIn) {
    Json arr = Json::array();
    for (const FilterValue& v : p.values) arr.push_back(FilterValueToJson(v));
    return arr;
  }
  return p.values.empty() ? Json() : FilterValueToJson(p.values.front());
}

// Writes the predicates of one target grouped by key, in order of first appearance, in the
// most compact form that parses back to the same predicates: a bare value for a lone eq, one
// operator object when the key's operators are distinct, else a list of one-operator objects.
Json PredicatesToJson(const std::vector<Predicate>& preds, Predicate::Target target) {
  std::vector<std::string> order;
  std::map<std::string, std::vector<const Predicate*>> by_key;
  for (const Predicate& p : preds) {
    if (p.target != target) continue;
    auto& list = by_key[p.key];
    if (list.empty()) order.push_back(p.key);
    list.push_back(&p);
  }
  Json out = Json::object();
  for (const std::string& key : order) {
    const auto& list = by_key[key];
    if (list.size() == 1 && list[0]->op == FilterOp::kEq && list[0]->values.size() == 1) {
      out[key] = FilterValueToJson(list[0]->values[0]);
      continue;
    }
    std::set<FilterOp> ops;
    for (const Predicate* p : list) ops.insert(p->op);
    if (ops.size() == list.size()) {
      Json obj = Json::object();
      for (const Predicate* p : list) obj[FilterOpName(p->op)] = PredicateValueToJson(*p);
      out[key] = std::move(obj);
    } else {
      Json arr = Json::array();
      for (const Predicate* p : list) {
        Json obj = Json::object();
        obj[FilterOpName(p->op)] = PredicateValueToJson(*p);
        arr.push_back(std::move(obj));
      }
      out[key] = std::move(arr);
    }
  }
  return out;
}

Json FloatMapToJson(const std::map<std::string, float>& m) {
  Json out = Json::object();
  for (const auto& [k, v] : m) out[k] = FloatToJson(v);
  return out;
}

Json AttributesToJson(const std::map<std::string, AttributeValue>& attrs) {
  Json out = Json::object();
  for (const auto& [k, v] : attrs) out[k] = AttributeValueToJson(v);
  return out;
}

// Scores print -0 as 0: an l2 distance of zero gives a raw score of -0.0f, which is correct but
// reads as noise. (Adding +0.0f maps -0 to +0 and leaves every other value unchanged.)
Json ScoreToJson(float f) { return FloatToJson(f + 0.0f); }

Json ExplanationToJson(const FieldExplanation& e) {
  Json out = Json::object();
  if (e.missing) {
    out["missing"] = true;
    return out;
  }
  out["raw"] = ScoreToJson(e.raw);
  out["normalized"] = ScoreToJson(e.normalized);
  out["weight"] = ScoreToJson(e.weight);
  out["contribution"] = ScoreToJson(e.contribution);
  out["rank"] = e.rank;
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Public functions
// ---------------------------------------------------------------------------------------------

absl::StatusOr<Json> ParseJsonText(std::string_view text, const std::string& what) {
  try {
    StrictnessChecker checker;
    const bool ok = Json::sax_parse(text.data(), text.data() + text.size(), &checker);
    if (!ok) {
      if (!checker.syntax_error())
        return absl::InvalidArgumentError(absl::StrCat(what, ": ", checker.error()));
      std::string where = absl::StrCat("at byte ", checker.byte());
      // For multi-line documents (schema files) a line and column help more than a byte offset.
      const size_t pos = std::min(checker.byte() > 0 ? checker.byte() - 1 : 0, text.size());
      const size_t newlines = std::count(text.begin(), text.begin() + pos, '\n');
      if (newlines > 0) {
        const size_t line_start = text.rfind('\n', pos == 0 ? 0 : pos - 1);
        absl::StrAppend(&where, " (line ", newlines + 1, ", column ", pos - line_start, ")");
      }
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": malformed JSON ", where, ": ", checker.error()));
    }
    Json j = Json::parse(text.data(), text.data() + text.size(), nullptr,
                         /*allow_exceptions=*/false);
    if (j.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(what, ": malformed JSON"));
    return j;
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": malformed JSON: ", e.what()));
  }
}

namespace {

// Our own serialiser, for one reason: nlohmann prints doubles with Grisu2, which is not always
// shortest (about 1 float in 1000 comes out as e.g. 0.15813111999999999 instead of 0.15813112).
// std::to_chars(double) is exactly shortest, so FloatToJson's doubles print as the float's
// shortest decimal. Everything else follows nlohmann's dump layout so output looks the same.
void AppendString(std::string* out, const std::string& s) {
  out->push_back('"');
  size_t pos = 0;
  while (pos < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[pos]);
    if (c < 0x80) {
      switch (c) {
        case '"':
          out->append("\\\"");
          break;
        case '\\':
          out->append("\\\\");
          break;
        case '\b':
          out->append("\\b");
          break;
        case '\f':
          out->append("\\f");
          break;
        case '\n':
          out->append("\\n");
          break;
        case '\r':
          out->append("\\r");
          break;
        case '\t':
          out->append("\\t");
          break;
        default:
          if (c < 0x20) {
            absl::StrAppendFormat(out, "\\u%04x", c);
          } else {
            out->push_back(static_cast<char>(c));
          }
      }
      ++pos;
      continue;
    }
    // Copy a well-formed multi-byte sequence; replace an ill-formed byte by U+FFFD.
    size_t len = 0;
    for (size_t n = 2; n <= 4 && pos + n <= s.size(); ++n) {
      if (!CheckText(std::string_view(s).substr(pos, n), /*allow_control=*/true)) {
        len = n;
        break;
      }
    }
    if (len == 0) {
      out->append("\xEF\xBF\xBD");
      ++pos;
    } else {
      out->append(s, pos, len);
      pos += len;
    }
  }
  out->push_back('"');
}

void AppendDouble(std::string* out, double d) {
  if (!std::isfinite(d)) {
    out->append("null");
    return;
  }
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof(buf), d);
  const std::string_view text(buf, res.ptr - buf);
  out->append(text);
  // Keep a float recognisable as one, as nlohmann does: 1.0, not 1.
  if (text.find_first_of(".eE") == std::string_view::npos) out->append(".0");
}

void AppendJson(std::string* out, const Json& j, int indent, int depth) {
  const auto newline = [&](int d) {
    if (indent < 0) return;
    out->push_back('\n');
    out->append(static_cast<size_t>(indent) * d, ' ');
  };
  switch (j.type()) {
    case Json::value_t::object: {
      if (j.empty()) {
        out->append("{}");
        return;
      }
      out->push_back('{');
      bool first = true;
      for (const auto& item : j.items()) {
        if (!first) out->push_back(',');
        first = false;
        newline(depth + 1);
        AppendString(out, item.key());
        out->append(indent < 0 ? ":" : ": ");
        AppendJson(out, item.value(), indent, depth + 1);
      }
      newline(depth);
      out->push_back('}');
      return;
    }
    case Json::value_t::array: {
      if (j.empty()) {
        out->append("[]");
        return;
      }
      out->push_back('[');
      for (size_t i = 0; i < j.size(); ++i) {
        if (i > 0) out->push_back(',');
        newline(depth + 1);
        AppendJson(out, j[i], indent, depth + 1);
      }
      newline(depth);
      out->push_back(']');
      return;
    }
    case Json::value_t::string:
      AppendString(out, j.get_ref<const std::string&>());
      return;
    case Json::value_t::boolean:
      out->append(j.get<bool>() ? "true" : "false");
      return;
    case Json::value_t::number_integer:
      absl::StrAppend(out, j.get<int64_t>());
      return;
    case Json::value_t::number_unsigned:
      absl::StrAppend(out, j.get<uint64_t>());
      return;
    case Json::value_t::number_float:
      AppendDouble(out, j.get<double>());
      return;
    default:
      out->append("null");
      return;  // null, binary, discarded.
  }
}

}  // namespace

std::string DumpJson(const Json& j, int indent) {
  std::string out;
  try {
    AppendJson(&out, j, indent, 0);
  } catch (const std::exception&) {
    // Only allocation can fail here; keep the no-throw promise regardless.
    return "null";
  }
  return out;
}

absl::StatusOr<CollectionSchema> SchemaFromJson(const Json& j) {
  return Guard("schema", [&] { return SchemaFromJsonAt(Doc{"schema"}, j, ""); });
}

Json SchemaToJson(const CollectionSchema& schema) {
  Json out = Json::object();
  out["name"] = schema.name;
  Json spaces = Json::object();
  for (const auto& [name, s] : schema.spaces) {
    Json sp = Json::object();
    sp["dim"] = s.dim;
    sp["metric"] = MetricName(s.metric);
    sp["encoder"] = s.encoder;
    spaces[name] = std::move(sp);
  }
  out["spaces"] = std::move(spaces);
  Json fields = Json::object();
  for (const auto& [name, f] : schema.fields) {
    Json fj = Json::object();
    fj["space"] = f.space;
    fj["modality"] = f.modality;
    fj["weight"] = FloatToJson(f.weight);
    // Written only when not the default, so schemas without indexes read as they always did.
    if (f.index.type == IndexType::kIvfPq) {
      Json ix = Json::object();
      ix["type"] = "ivf_pq";
      if (f.index.nlist != 0) ix["nlist"] = f.index.nlist;
      if (f.index.m != 0) ix["m"] = f.index.m;
      if (f.index.nbits != 0) ix["nbits"] = f.index.nbits;
      fj["index"] = std::move(ix);
    }
    fields[name] = std::move(fj);
  }
  out["fields"] = std::move(fields);
  Json attrs = Json::object();
  for (const auto& [name, t] : schema.attributes) attrs[name] = AttributeTypeName(t);
  out["attributes"] = std::move(attrs);
  return out;
}

absl::StatusOr<Record> RecordFromJson(const Json& j) {
  return Guard("record", [&] { return RecordFromJsonAt(Doc{"record"}, j, ""); });
}

Json RecordToJson(const Record& record, bool with_vectors) {
  Json out = Json::object();
  out["id"] = record.id;
  if (with_vectors) {
    Json vectors = Json::object();
    for (const auto& [name, v] : record.vectors) {
      Json arr = Json::array();
      arr.get_ref<Json::array_t&>().reserve(v.size());
      for (float x : v) arr.push_back(FloatToJson(x));
      vectors[name] = std::move(arr);
    }
    out["vectors"] = std::move(vectors);
  }
  if (!record.weights.empty()) out["weights"] = FloatMapToJson(record.weights);
  out["attributes"] = AttributesToJson(record.attributes);
  if (!record.provenance.empty()) out["provenance"] = ProvenanceToJson(record.provenance);
  return out;
}

absl::StatusOr<Provenance> ProvenanceFromJson(const Json& j) {
  return Guard("provenance", [&] { return ProvenanceFromJsonAt(Doc{"provenance"}, j, ""); });
}

Json ProvenanceToJson(const Provenance& p) {
  Json out = Json::object();
  if (!p.source.empty()) out["source"] = p.source;
  if (!p.collected_at.empty()) out["collected_at"] = p.collected_at;
  if (!p.steps.empty()) out["steps"] = p.steps;
  if (!p.dataset_version.empty()) out["dataset_version"] = p.dataset_version;
  if (!p.encoder.empty()) out["encoder"] = p.encoder;
  return out;
}

absl::StatusOr<SearchRequest> SearchRequestFromJson(const Json& j) {
  return Guard("query", [&]() -> absl::StatusOr<SearchRequest> {
    const Doc doc{"query"};
    RETURN_IF_ERROR(doc.ExpectKeys(j, "",
                                   {"k", "inputs", "weights", "fusion", "normalize", "missing",
                                    "filter", "exact", "nprobe", "refine", "explain",
                                    "with_attributes"}));
    SearchRequest r;
    if (const Json* v = Find(j, "k")) {
      ASSIGN_OR_RETURN(r.k, doc.Int32(*v, "k"));
    }
    if (const Json* v = Find(j, "nprobe")) {
      ASSIGN_OR_RETURN(r.nprobe, doc.Int32(*v, "nprobe"));
    }
    if (const Json* v = Find(j, "refine")) {
      ASSIGN_OR_RETURN(r.refine, doc.Int32(*v, "refine"));
    }
    ASSIGN_OR_RETURN(const Json* inputs, Require(doc, j, "", "inputs"));
    if (!inputs->is_array()) return doc.TypeError("inputs", "an array", *inputs);
    for (size_t i = 0; i < inputs->size(); ++i) {
      const std::string ip = Index("inputs", i);
      const Json& in = (*inputs)[i];
      RETURN_IF_ERROR(
          doc.ExpectKeys(in, ip, {"vector", "space", "modality", "field", "fields", "weight"}));
      QueryInput q;
      ASSIGN_OR_RETURN(const Json* vec, Require(doc, in, ip, "vector"));
      ASSIGN_OR_RETURN(q.vector, doc.FloatArray(*vec, Child(ip, "vector")));
      if (const Json* v = Find(in, "space")) {
        ASSIGN_OR_RETURN(q.space, doc.String(*v, Child(ip, "space")));
      }
      if (const Json* v = Find(in, "modality")) {
        ASSIGN_OR_RETURN(q.modality, doc.String(*v, Child(ip, "modality")));
      }
      const Json* field = Find(in, "field");
      const Json* fields = Find(in, "fields");
      if (field && fields) return doc.Error(ip, "give \"field\" or \"fields\", not both");
      if (field) {
        ASSIGN_OR_RETURN(std::string f, doc.String(*field, Child(ip, "field")));
        q.fields.push_back(std::move(f));
      }
      if (fields) {
        ASSIGN_OR_RETURN(q.fields, doc.StringArray(*fields, Child(ip, "fields")));
      }
      if (const Json* v = Find(in, "weight")) {
        ASSIGN_OR_RETURN(q.weight, doc.Float(*v, Child(ip, "weight")));
      }
      r.inputs.push_back(std::move(q));
    }
    if (const Json* v = Find(j, "weights")) {
      ASSIGN_OR_RETURN(r.weights, doc.FloatMap(*v, "weights"));
    }
    if (const Json* v = Find(j, "fusion")) {
      ASSIGN_OR_RETURN(r.fusion, EnumFromJson<Fusion>(doc, *v, "fusion", &FusionFromName,
                                                      "weighted, rrf or max"));
    }
    if (const Json* v = Find(j, "normalize")) {
      ASSIGN_OR_RETURN(r.normalize,
                       EnumFromJson<Normalize>(doc, *v, "normalize", &NormalizeFromName,
                                               "none, minmax, zscore or calibrated"));
    }
    if (const Json* v = Find(j, "missing")) {
      ASSIGN_OR_RETURN(r.missing, EnumFromJson<Missing>(doc, *v, "missing", &MissingFromName,
                                                        "renormalize, zero or require"));
    }
    if (const Json* v = Find(j, "filter")) {
      ASSIGN_OR_RETURN(r.filter, FilterFromJson(doc, *v, "filter"));
    }
    for (auto [key, member] : {std::pair<const char*, bool*>{"exact", &r.exact},
                               {"explain", &r.explain},
                               {"with_attributes", &r.with_attributes}}) {
      if (const Json* v = Find(j, key)) {
        ASSIGN_OR_RETURN(*member, doc.Bool(*v, key));
      }
    }
    return r;
  });
}

Json SearchRequestToJson(const SearchRequest& r) {
  Json out = Json::object();
  out["k"] = r.k;
  Json inputs = Json::array();
  for (const QueryInput& q : r.inputs) {
    Json in = Json::object();
    Json vec = Json::array();
    for (float x : q.vector) vec.push_back(FloatToJson(x));
    in["vector"] = std::move(vec);
    in["space"] = q.space;
    if (!q.modality.empty()) in["modality"] = q.modality;
    if (!q.fields.empty()) in["fields"] = q.fields;
    in["weight"] = FloatToJson(q.weight);
    inputs.push_back(std::move(in));
  }
  out["inputs"] = std::move(inputs);
  if (!r.weights.empty()) out["weights"] = FloatMapToJson(r.weights);
  out["fusion"] = FusionName(r.fusion);
  out["normalize"] = NormalizeName(r.normalize);
  out["missing"] = MissingName(r.missing);
  if (!r.filter.empty()) {
    Json filter = Json::object();
    Json attrs = PredicatesToJson(r.filter.predicates, Predicate::Target::kAttribute);
    Json prov = PredicatesToJson(r.filter.predicates, Predicate::Target::kProvenance);
    if (!attrs.empty()) filter["attributes"] = std::move(attrs);
    if (!prov.empty()) filter["provenance"] = std::move(prov);
    if (!r.filter.has_fields.empty()) filter["has_fields"] = r.filter.has_fields;
    out["filter"] = std::move(filter);
  }
  out["exact"] = r.exact;
  if (r.nprobe != 0) out["nprobe"] = r.nprobe;
  if (r.refine != 0) out["refine"] = r.refine;
  out["explain"] = r.explain;
  out["with_attributes"] = r.with_attributes;
  return out;
}

Json SearchResponseToJson(const SearchResponse& r) {
  Json results = Json::array();
  for (const Hit& h : r.results) {
    Json hit = Json::object();
    hit["id"] = h.id;
    hit["score"] = ScoreToJson(h.score);
    Json fields = Json::object();
    for (const auto& [name, e] : h.fields) fields[name] = ExplanationToJson(e);
    hit["fields"] = std::move(fields);
    hit["attributes"] = AttributesToJson(h.attributes);
    if (!h.provenance.empty()) hit["provenance"] = ProvenanceToJson(h.provenance);
    results.push_back(std::move(hit));
  }
  Json out = Json::object();
  out["results"] = std::move(results);
  out["took_us"] = r.took_us;
  // Only when indexes narrowed the candidates (exhaustive answers read as they always did).
  if (!r.exact) out["exact"] = false;
  if (!r.plan.empty()) {
    Json plan = Json::array();
    for (const FieldPlan& p : r.plan) {
      Json pj = Json::object();
      pj["field"] = p.field;
      pj["index"] = p.index;
      pj["nprobe"] = p.nprobe;
      pj["indexed_segments"] = p.indexed_segments;
      pj["scanned_rows"] = p.scanned_rows;
      pj["candidates"] = p.candidates;
      plan.push_back(std::move(pj));
    }
    out["plan"] = std::move(plan);
  }
  return out;
}

absl::StatusOr<SearchResponse> SearchResponseFromJson(const Json& j) {
  return Guard("response", [&]() -> absl::StatusOr<SearchResponse> {
    const Doc doc{"response"};
    RETURN_IF_ERROR(doc.ExpectKeys(j, "", {"results", "took_us", "exact", "plan"}));
    SearchResponse r;
    ASSIGN_OR_RETURN(const Json* results, Require(doc, j, "", "results"));
    if (!results->is_array()) return doc.TypeError("results", "an array", *results);
    for (size_t i = 0; i < results->size(); ++i) {
      const std::string hp = Index("results", i);
      const Json& hj = (*results)[i];
      RETURN_IF_ERROR(
          doc.ExpectKeys(hj, hp, {"id", "score", "fields", "attributes", "provenance"}));
      Hit h;
      ASSIGN_OR_RETURN(const Json* id, Require(doc, hj, hp, "id"));
      ASSIGN_OR_RETURN(h.id, doc.String(*id, Child(hp, "id")));
      ASSIGN_OR_RETURN(const Json* score, Require(doc, hj, hp, "score"));
      ASSIGN_OR_RETURN(h.score, doc.Float(*score, Child(hp, "score")));
      if (const Json* f = Find(hj, "fields")) {
        RETURN_IF_ERROR(doc.ExpectObject(*f, Child(hp, "fields")));
        for (const auto& item : f->items()) {
          ASSIGN_OR_RETURN(
              h.fields[item.key()],
              ExplanationFromJson(doc, item.value(), Child(Child(hp, "fields"), item.key())));
        }
      }
      if (const Json* a = Find(hj, "attributes")) {
        const std::string ap = Child(hp, "attributes");
        RETURN_IF_ERROR(doc.ExpectObject(*a, ap));
        for (const auto& item : a->items()) {
          ASSIGN_OR_RETURN(h.attributes[item.key()],
                           AttributeValueFromJson(doc, item.value(), Child(ap, item.key())));
        }
      }
      if (const Json* p = Find(hj, "provenance")) {
        ASSIGN_OR_RETURN(h.provenance, ProvenanceFromJsonAt(doc, *p, Child(hp, "provenance")));
      }
      r.results.push_back(std::move(h));
    }
    if (const Json* t = Find(j, "took_us")) {
      ASSIGN_OR_RETURN(r.took_us, doc.Int(*t, "took_us"));
    }
    if (const Json* e = Find(j, "exact")) {
      ASSIGN_OR_RETURN(r.exact, doc.Bool(*e, "exact"));
    }
    if (const Json* plan = Find(j, "plan")) {
      if (!plan->is_array()) return doc.TypeError("plan", "an array", *plan);
      for (size_t i = 0; i < plan->size(); ++i) {
        const std::string pp = Index("plan", i);
        const Json& pj = (*plan)[i];
        RETURN_IF_ERROR(doc.ExpectKeys(pj, pp, {"field", "index", "nprobe", "indexed_segments",
                                                "scanned_rows", "candidates"}));
        FieldPlan p;
        for (auto [key, member] :
             {std::pair<const char*, std::string*>{"field", &p.field}, {"index", &p.index}}) {
          ASSIGN_OR_RETURN(const Json* v, Require(doc, pj, pp, key));
          ASSIGN_OR_RETURN(*member, doc.String(*v, Child(pp, key)));
        }
        for (auto [key, member] :
             {std::pair<const char*, int64_t*>{"nprobe", &p.nprobe},
              {"indexed_segments", &p.indexed_segments},
              {"scanned_rows", &p.scanned_rows},
              {"candidates", &p.candidates}}) {
          ASSIGN_OR_RETURN(const Json* v, Require(doc, pj, pp, key));
          ASSIGN_OR_RETURN(*member, doc.Int(*v, Child(pp, key)));
        }
        r.plan.push_back(std::move(p));
      }
    }
    return r;
  });
}

Json CollectionInfoToJson(const CollectionInfo& info) {
  Json out = Json::object();
  out["name"] = info.schema.name;
  out["schema"] = SchemaToJson(info.schema);
  out["records"] = info.records;
  Json fv = Json::object();
  for (const auto& [k, v] : info.field_vectors) fv[k] = v;
  out["field_vectors"] = std::move(fv);
  out["segments"] = info.segments;
  out["storage"] = info.storage;
  out["kernel_backend"] = info.kernel_backend;
  // Only when the engine named the device (it always does; a bare CollectionInfo does not), so
  // that the form of device-less values is unchanged.
  if (!info.device.empty()) {
    out["device"] = info.device;
    out["device_rows"] = info.device_rows;
    out["device_bytes"] = info.device_bytes;
  }
  Json cal = Json::array();
  for (const CalibrationStats& c : info.calibration) {
    Json cj = Json::object();
    cj["modality"] = c.modality;
    cj["field"] = c.field;
    cj["samples"] = c.samples;
    cj["at_vectors"] = c.at_vectors;
    cj["mean"] = std::isfinite(c.mean) ? Json(c.mean) : Json();
    cj["stddev"] = std::isfinite(c.stddev) ? Json(c.stddev) : Json();
    cj["top1_mean"] = std::isfinite(c.top1_mean) ? Json(c.top1_mean) : Json();
    cal.push_back(std::move(cj));
  }
  out["calibration"] = std::move(cal);
  // Only for collections with indexes (others have one growing segment and nothing to show).
  if (!info.segment_list.empty()) {
    Json segs = Json::array();
    for (const SegmentInfo& si : info.segment_list) {
      Json sj = Json::object();
      sj["id"] = si.id;
      sj["state"] = si.state;
      sj["rows"] = si.rows;
      sj["live"] = si.live;
      Json fields = Json::array();
      for (const SegmentFieldIndex& f : si.fields) {
        Json fj = Json::object();
        fj["field"] = f.field;
        fj["index"] = f.index;
        fj["state"] = f.state;
        fj["vectors"] = f.vectors;
        fj["nlist"] = f.nlist;
        fj["m"] = f.m;
        fj["nbits"] = f.nbits;
        fj["bytes_per_vector"] = std::isfinite(f.bytes_per_vector) ? Json(f.bytes_per_vector) : Json(0);
        fields.push_back(std::move(fj));
      }
      sj["fields"] = std::move(fields);
      segs.push_back(std::move(sj));
    }
    out["segment_list"] = std::move(segs);
  }
  return out;
}

absl::StatusOr<CollectionInfo> CollectionInfoFromJson(const Json& j) {
  return Guard("collection info", [&]() -> absl::StatusOr<CollectionInfo> {
    const Doc doc{"collection info"};
    RETURN_IF_ERROR(doc.ExpectKeys(j, "",
                                   {"name", "schema", "records", "field_vectors", "segments",
                                    "storage", "kernel_backend", "device", "device_rows",
                                    "device_bytes", "calibration", "segment_list"}));
    CollectionInfo info;
    ASSIGN_OR_RETURN(const Json* schema, Require(doc, j, "", "schema"));
    ASSIGN_OR_RETURN(info.schema, SchemaFromJsonAt(doc, *schema, "schema"));
    if (const Json* n = Find(j, "name")) {
      ASSIGN_OR_RETURN(std::string name, doc.String(*n, "name"));
      if (name != info.schema.name) {
        return doc.Error("name", absl::StrCat(Quote(name), " differs from schema.name ",
                                              Quote(info.schema.name)));
      }
    }
    for (auto [key, member] : {std::pair<const char*, int64_t*>{"records", &info.records},
                               {"segments", &info.segments},
                               {"device_rows", &info.device_rows},
                               {"device_bytes", &info.device_bytes}}) {
      if (const Json* v = Find(j, key)) {
        ASSIGN_OR_RETURN(*member, doc.Int(*v, key));
      }
    }
    if (const Json* fv = Find(j, "field_vectors")) {
      RETURN_IF_ERROR(doc.ExpectObject(*fv, "field_vectors"));
      for (const auto& item : fv->items()) {
        ASSIGN_OR_RETURN(info.field_vectors[item.key()],
                         doc.Int(item.value(), Child("field_vectors", item.key())));
      }
    }
    for (auto [key, member] : {std::pair<const char*, std::string*>{"storage", &info.storage},
                               {"kernel_backend", &info.kernel_backend},
                               {"device", &info.device}}) {
      if (const Json* v = Find(j, key)) {
        ASSIGN_OR_RETURN(*member, doc.String(*v, key));
      }
    }
    if (const Json* cal = Find(j, "calibration")) {
      if (!cal->is_array()) return doc.TypeError("calibration", "an array", *cal);
      for (size_t i = 0; i < cal->size(); ++i) {
        const std::string cp = Index("calibration", i);
        const Json& cj = (*cal)[i];
        RETURN_IF_ERROR(doc.ExpectKeys(
            cj, cp, {"modality", "field", "samples", "at_vectors", "mean", "stddev", "top1_mean"}));
        CalibrationStats c;
        for (auto [key, member] :
             {std::pair<const char*, std::string*>{"modality", &c.modality}, {"field", &c.field}}) {
          ASSIGN_OR_RETURN(const Json* v, Require(doc, cj, cp, key));
          ASSIGN_OR_RETURN(*member, doc.String(*v, Child(cp, key)));
        }
        for (auto [key, member] : {std::pair<const char*, int64_t*>{"samples", &c.samples},
                                   {"at_vectors", &c.at_vectors}}) {
          ASSIGN_OR_RETURN(const Json* v, Require(doc, cj, cp, key));
          ASSIGN_OR_RETURN(*member, doc.Int(*v, Child(cp, key)));
        }
        for (auto [key, member] : {std::pair<const char*, double*>{"mean", &c.mean},
                                   {"stddev", &c.stddev},
                                   {"top1_mean", &c.top1_mean}}) {
          ASSIGN_OR_RETURN(const Json* v, Require(doc, cj, cp, key));
          ASSIGN_OR_RETURN(*member, doc.Double(*v, Child(cp, key)));
        }
        info.calibration.push_back(std::move(c));
      }
    }
    if (const Json* segs = Find(j, "segment_list")) {
      if (!segs->is_array()) return doc.TypeError("segment_list", "an array", *segs);
      for (size_t i = 0; i < segs->size(); ++i) {
        const std::string sp = Index("segment_list", i);
        const Json& sj = (*segs)[i];
        RETURN_IF_ERROR(doc.ExpectKeys(sj, sp, {"id", "state", "rows", "live", "fields"}));
        SegmentInfo si;
        for (auto [key, member] : {std::pair<const char*, int64_t*>{"id", &si.id},
                                   {"rows", &si.rows},
                                   {"live", &si.live}}) {
          ASSIGN_OR_RETURN(const Json* v, Require(doc, sj, sp, key));
          ASSIGN_OR_RETURN(*member, doc.Int(*v, Child(sp, key)));
        }
        ASSIGN_OR_RETURN(const Json* st, Require(doc, sj, sp, "state"));
        ASSIGN_OR_RETURN(si.state, doc.String(*st, Child(sp, "state")));
        ASSIGN_OR_RETURN(const Json* fields, Require(doc, sj, sp, "fields"));
        const std::string fsp = Child(sp, "fields");
        if (!fields->is_array()) return doc.TypeError(fsp, "an array", *fields);
        for (size_t k = 0; k < fields->size(); ++k) {
          const std::string fp = Index(fsp, k);
          const Json& fj = (*fields)[k];
          RETURN_IF_ERROR(doc.ExpectKeys(fj, fp, {"field", "index", "state", "vectors", "nlist",
                                                  "m", "nbits", "bytes_per_vector"}));
          SegmentFieldIndex f;
          for (auto [key, member] : {std::pair<const char*, std::string*>{"field", &f.field},
                                     {"index", &f.index},
                                     {"state", &f.state}}) {
            ASSIGN_OR_RETURN(const Json* v, Require(doc, fj, fp, key));
            ASSIGN_OR_RETURN(*member, doc.String(*v, Child(fp, key)));
          }
          for (auto [key, member] : {std::pair<const char*, int64_t*>{"vectors", &f.vectors},
                                     {"nlist", &f.nlist},
                                     {"m", &f.m},
                                     {"nbits", &f.nbits}}) {
            ASSIGN_OR_RETURN(const Json* v, Require(doc, fj, fp, key));
            ASSIGN_OR_RETURN(*member, doc.Int(*v, Child(fp, key)));
          }
          ASSIGN_OR_RETURN(const Json* b, Require(doc, fj, fp, "bytes_per_vector"));
          ASSIGN_OR_RETURN(f.bytes_per_vector, doc.Double(*b, Child(fp, "bytes_per_vector")));
          si.fields.push_back(std::move(f));
        }
        info.segment_list.push_back(std::move(si));
      }
    }
    return info;
  });
}

Json WriteResultToJson(const WriteResult& r) {
  Json out = Json::object();
  out["written"] = r.written;
  out["created"] = r.created;
  if (r.not_found != 0) out["not_found"] = r.not_found;
  return out;
}

absl::StatusOr<WriteResult> WriteResultFromJson(const Json& j) {
  return Guard("write result", [&]() -> absl::StatusOr<WriteResult> {
    const Doc doc{"write result"};
    RETURN_IF_ERROR(doc.ExpectKeys(j, "", {"written", "created", "not_found"}));
    WriteResult r;
    for (auto [key, member] : {std::pair<const char*, int64_t*>{"written", &r.written},
                               {"created", &r.created},
                               {"not_found", &r.not_found}}) {
      if (const Json* v = Find(j, key)) {
        ASSIGN_OR_RETURN(*member, doc.Int(*v, key));
      }
    }
    return r;
  });
}

Json GetResultToJson(const GetResult& r, bool with_vectors) {
  Json out = Json::object();
  Json records = Json::array();
  for (const Record& rec : r.records) records.push_back(RecordToJson(rec, with_vectors));
  out["records"] = std::move(records);
  out["not_found"] = r.not_found;
  return out;
}

absl::StatusOr<GetResult> GetResultFromJson(const Json& j) {
  return Guard("get result", [&]() -> absl::StatusOr<GetResult> {
    const Doc doc{"get result"};
    RETURN_IF_ERROR(doc.ExpectKeys(j, "", {"records", "not_found"}));
    GetResult r;
    if (const Json* recs = Find(j, "records")) {
      if (!recs->is_array()) return doc.TypeError("records", "an array", *recs);
      for (size_t i = 0; i < recs->size(); ++i) {
        ASSIGN_OR_RETURN(Record rec, RecordFromJsonAt(doc, (*recs)[i], Index("records", i)));
        r.records.push_back(std::move(rec));
      }
    }
    if (const Json* nf = Find(j, "not_found")) {
      ASSIGN_OR_RETURN(r.not_found, doc.StringArray(*nf, "not_found"));
    }
    return r;
  });
}

Json AttributeValueToJson(const AttributeValue& v) {
  if (const auto* s = std::get_if<std::string>(&v)) return *s;
  if (const auto* i = std::get_if<int64_t>(&v)) return *i;
  if (const auto* d = std::get_if<double>(&v)) return std::isfinite(*d) ? Json(*d) : Json();
  if (const auto* b = std::get_if<bool>(&v)) return *b;
  return std::get<std::vector<std::string>>(v);
}

Json FloatToJson(float f) {
  if (!std::isfinite(f)) return Json();
  // std::to_chars(float) gives the shortest decimal that reads back as this float. Stored as the
  // double nearest to that decimal, nlohmann (which prints the shortest decimal that reads back
  // as the double) prints those same digits: 0.1f -> "0.1", not "0.10000000149011612".
  char buf[32];
  const auto res = std::to_chars(buf, buf + sizeof(buf), f);
  double d = f;
  if (res.ec == std::errc()) {
    // from_chars, unlike strtod, ignores the C locale (a "," decimal separator cannot creep in).
    double parsed;
    if (std::from_chars(buf, res.ptr, parsed).ec == std::errc()) d = parsed;
  }
  return d;
}

}  // namespace rosetta
