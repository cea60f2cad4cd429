#include "net/protocol.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <string_view>
#include <type_traits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/database.h"
#include "flatbuffers/flatbuffers.h"
#include "schema/protocol_generated.h"
#include "schema/status_macros.h"

// Float vectors are copied (or viewed) as raw bytes: flatbuffers stores them little-endian.
static_assert(FLATBUFFERS_LITTLEENDIAN, "the wire codec assumes a little-endian host");
static_assert(sizeof(float) == 4);

namespace rosetta::net {
namespace {

namespace fb = ::flatbuffers;
namespace w = ::rosetta::wire;

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

// =============================================================================================
// Enum conversions
// =============================================================================================

w::Metric ToWire(Metric m) {
  switch (m) {
    case Metric::kCosine:
      return w::Metric::Cosine;
    case Metric::kIp:
      return w::Metric::Ip;
    case Metric::kL2:
      return w::Metric::L2;
  }
  return w::Metric::Cosine;
}
w::ValueType ToWire(AttributeType t) {
  switch (t) {
    case AttributeType::kString:
      return w::ValueType::String;
    case AttributeType::kInt:
      return w::ValueType::Int;
    case AttributeType::kFloat:
      return w::ValueType::Float;
    case AttributeType::kBool:
      return w::ValueType::Bool;
    case AttributeType::kStringList:
      return w::ValueType::StringList;
  }
  return w::ValueType::String;
}
w::Fusion ToWire(Fusion f) {
  switch (f) {
    case Fusion::kWeighted:
      return w::Fusion::Weighted;
    case Fusion::kRrf:
      return w::Fusion::Rrf;
    case Fusion::kMax:
      return w::Fusion::Max;
  }
  return w::Fusion::Weighted;
}
w::Normalize ToWire(Normalize n) {
  switch (n) {
    case Normalize::kNone:
      return w::Normalize::Raw;
    case Normalize::kMinMax:
      return w::Normalize::MinMax;
    case Normalize::kZScore:
      return w::Normalize::ZScore;
    case Normalize::kCalibrated:
      return w::Normalize::Calibrated;
  }
  return w::Normalize::Calibrated;
}
w::Missing ToWire(Missing m) {
  switch (m) {
    case Missing::kRenormalize:
      return w::Missing::Renormalize;
    case Missing::kZero:
      return w::Missing::Zero;
    case Missing::kRequire:
      return w::Missing::Require;
  }
  return w::Missing::Renormalize;
}
w::FilterOp ToWire(FilterOp op) {
  switch (op) {
    case FilterOp::kEq:
      return w::FilterOp::Eq;
    case FilterOp::kNe:
      return w::FilterOp::Ne;
    case FilterOp::kIn:
      return w::FilterOp::In;
    case FilterOp::kGt:
      return w::FilterOp::Gt;
    case FilterOp::kGte:
      return w::FilterOp::Gte;
    case FilterOp::kLt:
      return w::FilterOp::Lt;
    case FilterOp::kLte:
      return w::FilterOp::Lte;
  }
  return w::FilterOp::Eq;
}
w::PredicateTarget ToWire(Predicate::Target t) {
  return t == Predicate::Target::kProvenance ? w::PredicateTarget::Provenance
                                             : w::PredicateTarget::Attribute;
}
w::IndexType ToWire(IndexType t) {
  switch (t) {
    case IndexType::kFlat:
      return w::IndexType::Flat;
    case IndexType::kIvfPq:
      return w::IndexType::IvfPq;
  }
  return w::IndexType::Flat;
}
w::Role ToWire(Role r) {
  switch (r) {
    case Role::kRead:
      return w::Role::Read;
    case Role::kWrite:
      return w::Role::Write;
    case Role::kAdmin:
      return w::Role::Admin;
  }
  return w::Role::Read;
}

// The wire -> model direction is a table lookup after the range check (DecodeEnum), so adding a
// wire value without a model value fails these static checks rather than decoding garbage.
constexpr Metric kMetrics[] = {Metric::kCosine, Metric::kIp, Metric::kL2};
constexpr AttributeType kAttributeTypes[] = {AttributeType::kString, AttributeType::kInt,
                                             AttributeType::kFloat, AttributeType::kBool,
                                             AttributeType::kStringList};
constexpr Fusion kFusions[] = {Fusion::kWeighted, Fusion::kRrf, Fusion::kMax};
constexpr Normalize kNormalizes[] = {Normalize::kNone, Normalize::kMinMax, Normalize::kZScore,
                                     Normalize::kCalibrated};
constexpr Missing kMissings[] = {Missing::kRenormalize, Missing::kZero, Missing::kRequire};
constexpr FilterOp kFilterOps[] = {FilterOp::kEq, FilterOp::kNe,  FilterOp::kIn, FilterOp::kGt,
                                   FilterOp::kGte, FilterOp::kLt, FilterOp::kLte};
constexpr Predicate::Target kTargets[] = {Predicate::Target::kAttribute,
                                          Predicate::Target::kProvenance};
constexpr Role kRoles[] = {Role::kRead, Role::kWrite, Role::kAdmin};
constexpr IndexType kIndexTypes[] = {IndexType::kFlat, IndexType::kIvfPq};
static_assert(std::size(kMetrics) == static_cast<size_t>(w::Metric::MAX) + 1);
static_assert(std::size(kAttributeTypes) == static_cast<size_t>(w::ValueType::MAX) + 1);
static_assert(std::size(kFusions) == static_cast<size_t>(w::Fusion::MAX) + 1);
static_assert(std::size(kNormalizes) == static_cast<size_t>(w::Normalize::MAX) + 1);
static_assert(std::size(kMissings) == static_cast<size_t>(w::Missing::MAX) + 1);
static_assert(std::size(kFilterOps) == static_cast<size_t>(w::FilterOp::MAX) + 1);
static_assert(std::size(kTargets) == static_cast<size_t>(w::PredicateTarget::MAX) + 1);
static_assert(std::size(kRoles) == static_cast<size_t>(w::Role::MAX) + 1);
static_assert(std::size(kIndexTypes) == static_cast<size_t>(w::IndexType::MAX) + 1);

// =============================================================================================
// Size estimation (before building: flatbuffers must never be asked to exceed 2 GiB)
// =============================================================================================

// `lower` counts only payload bytes that must appear in the frame (string bytes, vector
// elements): a frame is at least that big. `upper` adds generous per-object overheads (offsets,
// length fields, terminators, alignment padding, tables and their vtables): a frame is at most
// that big (tests/net/protocol_codec_test.cc checks upper >= actual on many messages).
struct SizeBound {
  size_t lower = 0;
  size_t upper = 0;
  void Add(const SizeBound& o) {
    lower += o.lower;
    upper += o.upper;
  }
};

constexpr size_t kStringOverhead = 16;   // offset 4 + length 4 + terminator 1 + padding <= 7.
constexpr size_t kVectorOverhead = 16;   // offset 4 + length 4 + padding <= 8.
size_t TableOverhead(size_t fields) { return 32 + 12 * fields; }  // soffset, vtable, slots, pad.

SizeBound Bound(const std::string& s) { return {s.size(), s.size() + kStringOverhead}; }
SizeBound FloatsBound(size_t n) { return {4 * n, 4 * n + kVectorOverhead}; }
SizeBound TableBound(size_t fields) { return {0, TableOverhead(fields)}; }
SizeBound VectorBound(size_t n) { return {0, kVectorOverhead + 4 * n}; }

SizeBound Bound(const std::vector<std::string>& list, bool as_items) {
  SizeBound b = VectorBound(list.size());
  for (const std::string& s : list) {
    b.Add(Bound(s));
    if (as_items) b.Add(TableBound(1));
  }
  return b;
}

SizeBound Bound(const AttributeValue& v) {
  SizeBound b = TableBound(6);
  if (const auto* s = std::get_if<std::string>(&v)) b.Add(Bound(*s));
  if (const auto* l = std::get_if<std::vector<std::string>>(&v)) b.Add(Bound(*l, true));
  return b;
}
SizeBound Bound(const FilterValue& v) {
  SizeBound b = TableBound(6);
  if (const auto* s = std::get_if<std::string>(&v)) b.Add(Bound(*s));
  return b;
}

SizeBound Bound(const std::map<std::string, AttributeValue>& attributes) {
  SizeBound b = VectorBound(attributes.size());
  for (const auto& [name, value] : attributes) {
    b.Add(TableBound(2));
    b.Add(Bound(name));
    b.Add(Bound(value));
  }
  return b;
}

SizeBound Bound(const std::map<std::string, float>& weights) {
  SizeBound b = VectorBound(weights.size());
  for (const auto& [name, w] : weights) {
    b.Add(TableBound(2));
    b.Add(Bound(name));
  }
  return b;
}

SizeBound Bound(const Provenance& p) {
  SizeBound b = TableBound(5);
  b.Add(Bound(p.source));
  b.Add(Bound(p.collected_at));
  b.Add(Bound(p.steps, true));
  b.Add(Bound(p.dataset_version));
  b.Add(Bound(p.encoder));
  return b;
}

SizeBound Bound(const Record& r, bool with_vectors) {
  SizeBound b = TableBound(5);
  b.Add(Bound(r.id));
  b.Add(VectorBound(r.vectors.size()));
  if (with_vectors) {
    for (const auto& [field, v] : r.vectors) {
      b.Add(TableBound(2));
      b.Add(Bound(field));
      b.Add(FloatsBound(v.size()));
    }
  }
  b.Add(Bound(r.weights));
  b.Add(Bound(r.attributes));
  b.Add(Bound(r.provenance));
  return b;
}

SizeBound Bound(const CollectionSchema& s) {
  SizeBound b = TableBound(4);
  b.Add(Bound(s.name));
  b.Add(VectorBound(s.spaces.size()));
  for (const auto& [name, space] : s.spaces) {
    b.Add(TableBound(4));
    b.Add(Bound(space.name));
    b.Add(Bound(space.encoder));
  }
  b.Add(VectorBound(s.fields.size()));
  for (const auto& [name, field] : s.fields) {
    b.Add(TableBound(5));
    b.Add(Bound(field.name));
    b.Add(Bound(field.space));
    b.Add(Bound(field.modality));
    b.Add(TableBound(4));  // the IndexSpec, when not the default.
  }
  b.Add(VectorBound(s.attributes.size()));
  for (const auto& [name, type] : s.attributes) {
    b.Add(TableBound(2));
    b.Add(Bound(name));
  }
  return b;
}

SizeBound Bound(const SearchRequest& r) {
  SizeBound b = TableBound(12);
  b.Add(VectorBound(r.inputs.size()));
  for (const QueryInput& in : r.inputs) {
    b.Add(TableBound(5));
    b.Add(FloatsBound(in.vector.size()));
    b.Add(Bound(in.space));
    b.Add(Bound(in.modality));
    b.Add(Bound(in.fields, true));
  }
  b.Add(Bound(r.weights));
  b.Add(TableBound(2));
  b.Add(VectorBound(r.filter.predicates.size()));
  for (const Predicate& p : r.filter.predicates) {
    b.Add(TableBound(4));
    b.Add(Bound(p.key));
    b.Add(VectorBound(p.values.size()));
    for (const FilterValue& v : p.values) b.Add(Bound(v));
  }
  b.Add(Bound(r.filter.has_fields, true));
  return b;
}

SizeBound Bound(const SearchResponse& r) {
  SizeBound b = TableBound(4);
  b.Add(VectorBound(r.plan.size()));
  for (const FieldPlan& p : r.plan) {
    b.Add(TableBound(6));
    b.Add(Bound(p.field));
    b.Add(Bound(p.index));
  }
  b.Add(VectorBound(r.results.size()));
  for (const Hit& h : r.results) {
    b.Add(TableBound(5));
    b.Add(Bound(h.id));
    b.Add(VectorBound(h.fields.size()));
    for (const auto& [field, e] : h.fields) {
      b.Add(TableBound(7));
      b.Add(Bound(field));
    }
    b.Add(Bound(h.attributes));
    b.Add(Bound(h.provenance));
  }
  return b;
}

SizeBound Bound(const CollectionInfo& info) {
  SizeBound b = TableBound(11);
  b.Add(VectorBound(info.segment_list.size()));
  for (const SegmentInfo& si : info.segment_list) {
    b.Add(TableBound(5));
    b.Add(Bound(si.state));
    b.Add(VectorBound(si.fields.size()));
    for (const SegmentFieldIndex& f : si.fields) {
      b.Add(TableBound(8));
      b.Add(Bound(f.field));
      b.Add(Bound(f.index));
      b.Add(Bound(f.state));
    }
  }
  b.Add(Bound(info.schema));
  b.Add(VectorBound(info.field_vectors.size()));
  for (const auto& [field, count] : info.field_vectors) {
    b.Add(TableBound(2));
    b.Add(Bound(field));
  }
  b.Add(Bound(info.storage));
  b.Add(Bound(info.kernel_backend));
  if (!info.device.empty()) b.Add(Bound(info.device));
  b.Add(VectorBound(info.calibration.size()));
  for (const CalibrationStats& c : info.calibration) {
    b.Add(TableBound(7));
    b.Add(Bound(c.modality));
    b.Add(Bound(c.field));
  }
  return b;
}

SizeBound MessageBound(const Message& message) {
  SizeBound b = TableBound(3);  // the Frame.
  b.upper += 16;                // root offset, file identifier, final alignment.
  b.Add(std::visit(
      Overloaded{
          [](const msg::Hello& m) {
            SizeBound s = TableBound(3);
            s.Add(Bound(m.token));
            s.Add(Bound(m.client));
            return s;
          },
          [](const msg::CreateCollection& m) {
            SizeBound s = TableBound(1);
            s.Add(Bound(m.schema));
            return s;
          },
          [](const msg::ListCollections&) { return TableBound(0); },
          [](const msg::Describe& m) {
            SizeBound s = TableBound(1);
            s.Add(Bound(m.collection));
            return s;
          },
          [](const msg::DropCollection& m) {
            SizeBound s = TableBound(1);
            s.Add(Bound(m.collection));
            return s;
          },
          [](const msg::Upsert& m) {
            SizeBound s = TableBound(2);
            s.Add(Bound(m.collection));
            s.Add(VectorBound(m.records.size()));
            for (const Record& r : m.records) s.Add(Bound(r, true));
            return s;
          },
          [](const msg::Import& m) {
            SizeBound s = TableBound(8);
            s.Add(Bound(m.request.collection));
            s.Add(Bound(m.request.field));
            s.Add(FloatsBound(m.request.data.size()));
            s.Add(Bound(m.request.id_prefix));
            s.Add(Bound(m.request.provenance));
            return s;
          },
          [](const msg::Get& m) {
            SizeBound s = TableBound(3);
            s.Add(Bound(m.collection));
            s.Add(Bound(m.ids, false));
            return s;
          },
          [](const msg::Delete& m) {
            SizeBound s = TableBound(2);
            s.Add(Bound(m.collection));
            s.Add(Bound(m.ids, false));
            return s;
          },
          [](const msg::Search& m) {
            SizeBound s = TableBound(2);
            s.Add(Bound(m.collection));
            s.Add(VectorBound(m.requests.size()));
            for (const SearchRequest& r : m.requests) s.Add(Bound(r));
            return s;
          },
          [](const msg::HelloReply& m) {
            SizeBound s = TableBound(8);
            s.Add(Bound(m.server_version));
            s.Add(Bound(m.kernel_backend));
            s.Add(Bound(m.data_dir));
            if (!m.device.empty()) s.Add(Bound(m.device));
            return s;
          },
          [](const msg::Ok&) { return TableBound(0); },
          [](const WriteResult&) { return TableBound(3); },
          [](const msg::CollectionList& m) {
            SizeBound s = TableBound(1);
            s.Add(Bound(m.names, false));
            return s;
          },
          [](const CollectionInfo& m) { return Bound(m); },
          [](const GetResult& m) {
            SizeBound s = TableBound(2);
            s.Add(VectorBound(m.records.size()));
            for (const Record& r : m.records) s.Add(Bound(r, true));
            s.Add(Bound(m.not_found, false));
            return s;
          },
          [](const msg::SearchResults& m) {
            SizeBound s = TableBound(1);
            s.Add(VectorBound(m.responses.size()));
            for (const SearchResponse& r : m.responses) s.Add(Bound(r));
            return s;
          },
          [](const msg::Error& m) {
            SizeBound s = TableBound(2);
            s.Add({std::min(m.message.size(), kMaxErrorMessageBytes),
                   kMaxErrorMessageBytes + kStringOverhead});
            return s;
          },
          [](const msg::BuildIndex& m) {
            SizeBound s = TableBound(2);
            s.Add(Bound(m.collection));
            s.Add(Bound(m.field));
            return s;
          },
          [](const msg::IndexProgress& m) {
            SizeBound s = TableBound(1);
            s.Add(Bound(m.collection));
            return s;
          },
          [](const IndexBuildProgress&) { return TableBound(5); },
          [](const msg::Stats&) { return TableBound(0); },
          [](const DatabaseStats& m) {
            SizeBound s = TableBound(14);
            if (!m.device.empty()) s.Add(Bound(m.device));
            s.Add(TableBound(9));  // DeviceStats.
            for (const auto* list : {&m.operations, &m.requests}) {
              s.Add(VectorBound(list->size()));
              for (const LatencyStats& l : *list) {
                s.Add(TableBound(8));
                s.Add(Bound(l.operation));
              }
            }
            return s;
          },
      },
      message));
  return b;
}

// =============================================================================================
// Encoding
// =============================================================================================

using fb::Offset;
using fb::Vector;
template <class T>
using OffsetVector = Offset<Vector<Offset<T>>>;

class Encoder {
 public:
  explicit Encoder(size_t initial_size) : fbb_(std::max<size_t>(initial_size, 1024)) {}

  fb::FlatBufferBuilder& fbb() { return fbb_; }

  Offset<fb::String> Str(const std::string& s) { return fbb_.CreateString(s); }

  OffsetVector<fb::String> Strings(const std::vector<std::string>& list) {
    std::vector<Offset<fb::String>> items;
    items.reserve(list.size());
    for (const std::string& s : list) items.push_back(Str(s));
    return fbb_.CreateVector(items);
  }

  OffsetVector<w::StringItem> Items(const std::vector<std::string>& list) {
    std::vector<Offset<w::StringItem>> items;
    items.reserve(list.size());
    for (const std::string& s : list) {
      auto value = Str(s);
      w::StringItemBuilder b(fbb_);
      b.add_value(value);
      items.push_back(b.Finish());
    }
    return fbb_.CreateVector(items);
  }

  Offset<Vector<float>> Floats(const float* data, size_t n) {
    static const float kNone = 0;  // never a null pointer into CreateVector's memcpy.
    return fbb_.CreateVector(n > 0 ? data : &kNone, n);
  }

  Offset<w::Value> Value(const AttributeValue& v) {
    return std::visit(
        Overloaded{
            [&](const std::string& s) { return StringValue(s); },
            [&](int64_t i) { return IntValue(i); },
            [&](double d) { return FloatValue(d); },
            [&](bool x) { return BoolValue(x); },
            [&](const std::vector<std::string>& list) {
              auto items = Items(list);
              w::ValueBuilder b(fbb_);
              b.add_type(w::ValueType::StringList);
              b.add_string_list(items);
              return b.Finish();
            },
        },
        v);
  }

  Offset<w::Value> Value(const FilterValue& v) {
    return std::visit(Overloaded{
                          [&](const std::string& s) { return StringValue(s); },
                          [&](int64_t i) { return IntValue(i); },
                          [&](double d) { return FloatValue(d); },
                          [&](bool x) { return BoolValue(x); },
                      },
                      v);
  }

  OffsetVector<w::Attribute> Attributes(const std::map<std::string, AttributeValue>& attributes) {
    std::vector<Offset<w::Attribute>> items;
    items.reserve(attributes.size());
    for (const auto& [name, value] : attributes) {
      auto n = Str(name);
      auto v = Value(value);
      w::AttributeBuilder b(fbb_);
      b.add_name(n);
      b.add_value(v);
      items.push_back(b.Finish());
    }
    return fbb_.CreateVector(items);
  }

  OffsetVector<w::WeightEntry> Weights(const std::map<std::string, float>& weights) {
    std::vector<Offset<w::WeightEntry>> items;
    items.reserve(weights.size());
    for (const auto& [field, weight] : weights) {
      auto f = Str(field);
      w::WeightEntryBuilder b(fbb_);
      b.add_field(f);
      b.add_weight(weight);
      items.push_back(b.Finish());
    }
    return fbb_.CreateVector(items);
  }

  // Null offset (absent) for an empty provenance.
  Offset<w::Provenance> Prov(const Provenance& p) {
    if (p.empty()) return 0;
    Offset<fb::String> source, collected_at, dataset_version, encoder;
    OffsetVector<w::StringItem> steps;
    if (!p.source.empty()) source = Str(p.source);
    if (!p.collected_at.empty()) collected_at = Str(p.collected_at);
    if (!p.steps.empty()) steps = Items(p.steps);
    if (!p.dataset_version.empty()) dataset_version = Str(p.dataset_version);
    if (!p.encoder.empty()) encoder = Str(p.encoder);
    w::ProvenanceBuilder b(fbb_);
    if (!source.IsNull()) b.add_source(source);
    if (!collected_at.IsNull()) b.add_collected_at(collected_at);
    if (!steps.IsNull()) b.add_steps(steps);
    if (!dataset_version.IsNull()) b.add_dataset_version(dataset_version);
    if (!encoder.IsNull()) b.add_encoder(encoder);
    return b.Finish();
  }

  Offset<w::Record> Rec(const Record& r) {
    auto id = Str(r.id);
    OffsetVector<w::VectorEntry> vectors;
    if (!r.vectors.empty()) {
      std::vector<Offset<w::VectorEntry>> items;
      items.reserve(r.vectors.size());
      for (const auto& [field, v] : r.vectors) {
        auto f = Str(field);
        auto values = Floats(v.data(), v.size());
        w::VectorEntryBuilder b(fbb_);
        b.add_field(f);
        b.add_values(values);
        items.push_back(b.Finish());
      }
      vectors = fbb_.CreateVector(items);
    }
    OffsetVector<w::WeightEntry> weights;
    if (!r.weights.empty()) weights = Weights(r.weights);
    OffsetVector<w::Attribute> attributes;
    if (!r.attributes.empty()) attributes = Attributes(r.attributes);
    auto provenance = Prov(r.provenance);
    w::RecordBuilder b(fbb_);
    b.add_id(id);
    if (!vectors.IsNull()) b.add_vectors(vectors);
    if (!weights.IsNull()) b.add_weights(weights);
    if (!attributes.IsNull()) b.add_attributes(attributes);
    if (!provenance.IsNull()) b.add_provenance(provenance);
    return b.Finish();
  }

  OffsetVector<w::Record> Records(const std::vector<Record>& records) {
    std::vector<Offset<w::Record>> items;
    items.reserve(records.size());
    for (const Record& r : records) items.push_back(Rec(r));
    return fbb_.CreateVector(items);
  }

  Offset<w::CollectionSchema> Schema(const CollectionSchema& s) {
    auto name = Str(s.name);
    std::vector<Offset<w::Space>> spaces;
    for (const auto& [key, space] : s.spaces) {
      auto n = Str(space.name);
      auto e = Str(space.encoder);
      w::SpaceBuilder b(fbb_);
      b.add_name(n);
      b.add_dim(space.dim);
      b.add_metric(ToWire(space.metric));
      b.add_encoder(e);
      spaces.push_back(b.Finish());
    }
    auto spaces_v = fbb_.CreateVector(spaces);
    std::vector<Offset<w::Field>> fields;
    for (const auto& [key, field] : s.fields) {
      auto n = Str(field.name);
      auto sp = Str(field.space);
      auto mo = Str(field.modality);
      // Absent for the default (flat, no parameters): schemas without indexes encode as before.
      Offset<w::IndexSpec> index;
      if (!(field.index == IndexSpec{})) {
        w::IndexSpecBuilder ib(fbb_);
        ib.add_type(ToWire(field.index.type));
        ib.add_nlist(field.index.nlist);
        ib.add_m(field.index.m);
        ib.add_nbits(field.index.nbits);
        index = ib.Finish();
      }
      w::FieldBuilder b(fbb_);
      b.add_name(n);
      b.add_space(sp);
      b.add_modality(mo);
      b.add_weight(field.weight);
      if (!index.IsNull()) b.add_index(index);
      fields.push_back(b.Finish());
    }
    auto fields_v = fbb_.CreateVector(fields);
    std::vector<Offset<w::AttributeDecl>> attributes;
    for (const auto& [key, type] : s.attributes) {
      auto n = Str(key);
      w::AttributeDeclBuilder b(fbb_);
      b.add_name(n);
      b.add_type(ToWire(type));
      attributes.push_back(b.Finish());
    }
    auto attributes_v = fbb_.CreateVector(attributes);
    w::CollectionSchemaBuilder b(fbb_);
    b.add_name(name);
    b.add_spaces(spaces_v);
    b.add_fields(fields_v);
    b.add_attributes(attributes_v);
    return b.Finish();
  }

  Offset<w::SearchRequest> Request(const SearchRequest& r) {
    std::vector<Offset<w::QueryInput>> inputs;
    inputs.reserve(r.inputs.size());
    for (const QueryInput& in : r.inputs) {
      auto vector = Floats(in.vector.data(), in.vector.size());
      auto space = Str(in.space);
      auto modality = Str(in.modality);
      OffsetVector<w::StringItem> fields;
      if (!in.fields.empty()) fields = Items(in.fields);
      w::QueryInputBuilder b(fbb_);
      b.add_vector(vector);
      b.add_space(space);
      b.add_modality(modality);
      if (!fields.IsNull()) b.add_fields(fields);
      b.add_weight(in.weight);
      inputs.push_back(b.Finish());
    }
    auto inputs_v = fbb_.CreateVector(inputs);
    OffsetVector<w::WeightEntry> weights;
    if (!r.weights.empty()) weights = Weights(r.weights);
    Offset<w::Filter> filter;
    if (!r.filter.empty()) {
      std::vector<Offset<w::Predicate>> predicates;
      for (const Predicate& p : r.filter.predicates) {
        auto key = Str(p.key);
        std::vector<Offset<w::Value>> values;
        for (const FilterValue& v : p.values) values.push_back(Value(v));
        auto values_v = fbb_.CreateVector(values);
        w::PredicateBuilder b(fbb_);
        b.add_target(ToWire(p.target));
        b.add_key(key);
        b.add_op(ToWire(p.op));
        b.add_values(values_v);
        predicates.push_back(b.Finish());
      }
      auto predicates_v = fbb_.CreateVector(predicates);
      OffsetVector<w::StringItem> has_fields;
      if (!r.filter.has_fields.empty()) has_fields = Items(r.filter.has_fields);
      w::FilterBuilder b(fbb_);
      b.add_predicates(predicates_v);
      if (!has_fields.IsNull()) b.add_has_fields(has_fields);
      filter = b.Finish();
    }
    w::SearchRequestBuilder b(fbb_);
    b.add_k(r.k);
    b.add_inputs(inputs_v);
    if (!weights.IsNull()) b.add_weights(weights);
    b.add_fusion(ToWire(r.fusion));
    b.add_normalize(ToWire(r.normalize));
    b.add_missing(ToWire(r.missing));
    if (!filter.IsNull()) b.add_filter(filter);
    b.add_exact(r.exact);
    b.add_explain(r.explain);
    b.add_with_attributes(r.with_attributes);
    b.add_nprobe(r.nprobe);
    b.add_refine(r.refine);
    return b.Finish();
  }

  Offset<w::SearchResponse> Response(const SearchResponse& r) {
    std::vector<Offset<w::Hit>> hits;
    hits.reserve(r.results.size());
    for (const Hit& h : r.results) {
      auto id = Str(h.id);
      std::vector<Offset<w::FieldExplanation>> fields;
      fields.reserve(h.fields.size());
      for (const auto& [field, e] : h.fields) {
        auto f = Str(field);
        w::FieldExplanationBuilder b(fbb_);
        b.add_field(f);
        b.add_missing(e.missing);
        b.add_raw(e.raw);
        b.add_normalized(e.normalized);
        b.add_weight(e.weight);
        b.add_contribution(e.contribution);
        b.add_rank(e.rank);
        fields.push_back(b.Finish());
      }
      auto fields_v = fbb_.CreateVector(fields);
      OffsetVector<w::Attribute> attributes;
      if (!h.attributes.empty()) attributes = Attributes(h.attributes);
      auto provenance = Prov(h.provenance);
      w::HitBuilder b(fbb_);
      b.add_id(id);
      b.add_score(h.score);
      b.add_fields(fields_v);
      if (!attributes.IsNull()) b.add_attributes(attributes);
      if (!provenance.IsNull()) b.add_provenance(provenance);
      hits.push_back(b.Finish());
    }
    auto hits_v = fbb_.CreateVector(hits);
    OffsetVector<w::FieldPlan> plan;
    if (!r.plan.empty()) {
      std::vector<Offset<w::FieldPlan>> items;
      items.reserve(r.plan.size());
      for (const FieldPlan& p : r.plan) {
        auto f = Str(p.field);
        auto ix = Str(p.index);
        w::FieldPlanBuilder b(fbb_);
        b.add_field(f);
        b.add_index(ix);
        b.add_nprobe(p.nprobe);
        b.add_indexed_segments(p.indexed_segments);
        b.add_scanned_rows(p.scanned_rows);
        b.add_candidates(p.candidates);
        items.push_back(b.Finish());
      }
      plan = fbb_.CreateVector(items);
    }
    w::SearchResponseBuilder b(fbb_);
    b.add_results(hits_v);
    b.add_took_us(r.took_us);
    b.add_exact(r.exact);
    if (!plan.IsNull()) b.add_plan(plan);
    return b.Finish();
  }

  Offset<w::CollectionInfo> Info(const CollectionInfo& info) {
    auto schema = Schema(info.schema);
    std::vector<Offset<w::FieldCount>> counts;
    for (const auto& [field, count] : info.field_vectors) {
      auto f = Str(field);
      w::FieldCountBuilder b(fbb_);
      b.add_field(f);
      b.add_count(count);
      counts.push_back(b.Finish());
    }
    auto counts_v = fbb_.CreateVector(counts);
    auto storage = Str(info.storage);
    auto backend = Str(info.kernel_backend);
    std::vector<Offset<w::CalibrationStats>> calibration;
    for (const CalibrationStats& c : info.calibration) {
      auto m = Str(c.modality);
      auto f = Str(c.field);
      w::CalibrationStatsBuilder b(fbb_);
      b.add_modality(m);
      b.add_field(f);
      b.add_samples(c.samples);
      b.add_at_vectors(c.at_vectors);
      b.add_mean(c.mean);
      b.add_stddev(c.stddev);
      b.add_top1_mean(c.top1_mean);
      calibration.push_back(b.Finish());
    }
    auto calibration_v = fbb_.CreateVector(calibration);
    OffsetVector<w::SegmentInfo> segments;
    if (!info.segment_list.empty()) {
      std::vector<Offset<w::SegmentInfo>> items;
      items.reserve(info.segment_list.size());
      for (const SegmentInfo& si : info.segment_list) {
        std::vector<Offset<w::SegmentFieldIndex>> fields;
        fields.reserve(si.fields.size());
        for (const SegmentFieldIndex& f : si.fields) {
          auto name = Str(f.field);
          auto ix = Str(f.index);
          auto state = Str(f.state);
          w::SegmentFieldIndexBuilder b(fbb_);
          b.add_field(name);
          b.add_index(ix);
          b.add_state(state);
          b.add_vectors(f.vectors);
          b.add_nlist(f.nlist);
          b.add_m(f.m);
          b.add_nbits(f.nbits);
          b.add_bytes_per_vector(f.bytes_per_vector);
          fields.push_back(b.Finish());
        }
        auto fields_v = fbb_.CreateVector(fields);
        auto state = Str(si.state);
        w::SegmentInfoBuilder b(fbb_);
        b.add_id(si.id);
        b.add_state(state);
        b.add_rows(si.rows);
        b.add_live(si.live);
        b.add_fields(fields_v);
        items.push_back(b.Finish());
      }
      segments = fbb_.CreateVector(items);
    }
    // Absent when empty, like the other optional strings: a decoder reads "" either way.
    Offset<fb::String> device;
    if (!info.device.empty()) device = Str(info.device);
    w::CollectionInfoBuilder b(fbb_);
    b.add_schema(schema);
    b.add_records(info.records);
    b.add_field_vectors(counts_v);
    b.add_segments(info.segments);
    b.add_storage(storage);
    b.add_kernel_backend(backend);
    b.add_calibration(calibration_v);
    if (!segments.IsNull()) b.add_segment_list(segments);
    if (!device.IsNull()) b.add_device(device);
    b.add_device_rows(info.device_rows);
    b.add_device_bytes(info.device_bytes);
    return b.Finish();
  }

  OffsetVector<w::LatencyStats> Latencies(const std::vector<LatencyStats>& list) {
    std::vector<Offset<w::LatencyStats>> items;
    items.reserve(list.size());
    for (const LatencyStats& l : list) {
      auto op = Str(l.operation);
      w::LatencyStatsBuilder b(fbb_);
      b.add_operation(op);
      b.add_count(l.count);
      b.add_errors(l.errors);
      b.add_mean_us(l.mean_us);
      b.add_p50_us(l.p50_us);
      b.add_p90_us(l.p90_us);
      b.add_p99_us(l.p99_us);
      b.add_max_us(l.max_us);
      items.push_back(b.Finish());
    }
    return fbb_.CreateVector(items);
  }

  // The union member: its type tag and offset.
  std::pair<w::Message, Offset<void>> Body(const Message& message) {
    return std::visit(
        Overloaded{
            [&](const msg::Hello& m) -> std::pair<w::Message, Offset<void>> {
              auto token = Str(m.token);
              auto client = Str(m.client);
              w::HelloBuilder b(fbb_);
              b.add_protocol_version(m.protocol_version);
              b.add_token(token);
              b.add_client(client);
              return {w::Message::Hello, b.Finish().Union()};
            },
            [&](const msg::CreateCollection& m) -> std::pair<w::Message, Offset<void>> {
              auto schema = Schema(m.schema);
              w::CreateCollectionBuilder b(fbb_);
              b.add_schema(schema);
              return {w::Message::CreateCollection, b.Finish().Union()};
            },
            [&](const msg::ListCollections&) -> std::pair<w::Message, Offset<void>> {
              w::ListCollectionsBuilder b(fbb_);
              return {w::Message::ListCollections, b.Finish().Union()};
            },
            [&](const msg::Describe& m) -> std::pair<w::Message, Offset<void>> {
              auto c = Str(m.collection);
              w::DescribeBuilder b(fbb_);
              b.add_collection(c);
              return {w::Message::Describe, b.Finish().Union()};
            },
            [&](const msg::DropCollection& m) -> std::pair<w::Message, Offset<void>> {
              auto c = Str(m.collection);
              w::DropCollectionBuilder b(fbb_);
              b.add_collection(c);
              return {w::Message::DropCollection, b.Finish().Union()};
            },
            [&](const msg::Upsert& m) -> std::pair<w::Message, Offset<void>> {
              auto c = Str(m.collection);
              auto records = Records(m.records);
              w::UpsertBuilder b(fbb_);
              b.add_collection(c);
              b.add_records(records);
              return {w::Message::Upsert, b.Finish().Union()};
            },
            [&](const msg::Import& m) -> std::pair<w::Message, Offset<void>> {
              const ImportRequest& r = m.request;
              auto c = Str(r.collection);
              auto f = Str(r.field);
              auto data = Floats(r.data.data(), r.data.size());
              auto prefix = Str(r.id_prefix);
              auto provenance = Prov(r.provenance);
              w::ImportBuilder b(fbb_);
              b.add_collection(c);
              b.add_field(f);
              b.add_rows(r.rows);
              b.add_dim(r.dim);
              b.add_data(data);
              b.add_id_prefix(prefix);
              b.add_id_offset(r.id_offset);
              if (!provenance.IsNull()) b.add_provenance(provenance);
              return {w::Message::Import, b.Finish().Union()};
            },
            [&](const msg::Get& m) -> std::pair<w::Message, Offset<void>> {
              auto c = Str(m.collection);
              auto ids = Strings(m.ids);
              w::GetBuilder b(fbb_);
              b.add_collection(c);
              b.add_ids(ids);
              b.add_with_vectors(m.with_vectors);
              return {w::Message::Get, b.Finish().Union()};
            },
            [&](const msg::Delete& m) -> std::pair<w::Message, Offset<void>> {
              auto c = Str(m.collection);
              auto ids = Strings(m.ids);
              w::DeleteBuilder b(fbb_);
              b.add_collection(c);
              b.add_ids(ids);
              return {w::Message::Delete, b.Finish().Union()};
            },
            [&](const msg::Search& m) -> std::pair<w::Message, Offset<void>> {
              auto c = Str(m.collection);
              std::vector<Offset<w::SearchRequest>> requests;
              requests.reserve(m.requests.size());
              for (const SearchRequest& r : m.requests) requests.push_back(Request(r));
              auto requests_v = fbb_.CreateVector(requests);
              w::SearchBuilder b(fbb_);
              b.add_collection(c);
              b.add_requests(requests_v);
              return {w::Message::Search, b.Finish().Union()};
            },
            [&](const msg::HelloReply& m) -> std::pair<w::Message, Offset<void>> {
              auto version = Str(m.server_version);
              auto backend = Str(m.kernel_backend);
              Offset<fb::String> data_dir;
              if (!m.data_dir.empty()) data_dir = Str(m.data_dir);
              Offset<fb::String> device;
              if (!m.device.empty()) device = Str(m.device);
              w::HelloReplyBuilder b(fbb_);
              b.add_server_version(version);
              b.add_protocol_version(m.protocol_version);
              b.add_kernel_backend(backend);
              if (!data_dir.IsNull()) b.add_data_dir(data_dir);
              b.add_collections(m.collections);
              b.add_max_frame_bytes(m.max_frame_bytes);
              b.add_role(ToWire(m.role));
              if (!device.IsNull()) b.add_device(device);
              return {w::Message::HelloReply, b.Finish().Union()};
            },
            [&](const msg::Ok&) -> std::pair<w::Message, Offset<void>> {
              w::OkBuilder b(fbb_);
              return {w::Message::Ok, b.Finish().Union()};
            },
            [&](const WriteResult& m) -> std::pair<w::Message, Offset<void>> {
              w::WriteResultBuilder b(fbb_);
              b.add_written(m.written);
              b.add_created(m.created);
              b.add_not_found(m.not_found);
              return {w::Message::WriteResult, b.Finish().Union()};
            },
            [&](const msg::CollectionList& m) -> std::pair<w::Message, Offset<void>> {
              auto names = Strings(m.names);
              w::CollectionListBuilder b(fbb_);
              b.add_names(names);
              return {w::Message::CollectionList, b.Finish().Union()};
            },
            [&](const CollectionInfo& m) -> std::pair<w::Message, Offset<void>> {
              return {w::Message::CollectionInfo, Info(m).Union()};
            },
            [&](const GetResult& m) -> std::pair<w::Message, Offset<void>> {
              auto records = Records(m.records);
              auto not_found = Strings(m.not_found);
              w::GetResultBuilder b(fbb_);
              b.add_records(records);
              b.add_not_found(not_found);
              return {w::Message::GetResult, b.Finish().Union()};
            },
            [&](const msg::SearchResults& m) -> std::pair<w::Message, Offset<void>> {
              std::vector<Offset<w::SearchResponse>> responses;
              responses.reserve(m.responses.size());
              for (const SearchResponse& r : m.responses) responses.push_back(Response(r));
              auto responses_v = fbb_.CreateVector(responses);
              w::SearchResultsBuilder b(fbb_);
              b.add_responses(responses_v);
              return {w::Message::SearchResults, b.Finish().Union()};
            },
            [&](const msg::Error& m) -> std::pair<w::Message, Offset<void>> {
              return {w::Message::Error, ErrorBody(m.code, m.message).Union()};
            },
            [&](const msg::BuildIndex& m) -> std::pair<w::Message, Offset<void>> {
              auto c = Str(m.collection);
              Offset<fb::String> f;
              if (!m.field.empty()) f = Str(m.field);
              w::BuildIndexBuilder b(fbb_);
              b.add_collection(c);
              if (!f.IsNull()) b.add_field(f);
              return {w::Message::BuildIndex, b.Finish().Union()};
            },
            [&](const msg::IndexProgress& m) -> std::pair<w::Message, Offset<void>> {
              auto c = Str(m.collection);
              w::IndexProgressBuilder b(fbb_);
              b.add_collection(c);
              return {w::Message::IndexProgress, b.Finish().Union()};
            },
            [&](const IndexBuildProgress& m) -> std::pair<w::Message, Offset<void>> {
              w::IndexProgressReplyBuilder b(fbb_);
              b.add_segments(m.segments);
              b.add_ready(m.ready);
              b.add_building(m.building);
              b.add_failed(m.failed);
              b.add_growing_rows(m.growing_rows);
              return {w::Message::IndexProgressReply, b.Finish().Union()};
            },
            [&](const msg::Stats&) -> std::pair<w::Message, Offset<void>> {
              w::StatsBuilder b(fbb_);
              return {w::Message::Stats, b.Finish().Union()};
            },
            [&](const DatabaseStats& m) -> std::pair<w::Message, Offset<void>> {
              auto operations = Latencies(m.operations);
              auto requests = Latencies(m.requests);
              Offset<fb::String> device;
              if (!m.device.empty()) device = Str(m.device);
              const DeviceStats& d = m.device_stats;
              w::DeviceStatsBuilder db(fbb_);
              db.add_searches(d.searches);
              db.add_batches(d.batches);
              db.add_fallbacks(d.fallbacks);
              db.add_boundary_fallbacks(d.boundary_fallbacks);
              db.add_cpu_queries(d.cpu_queries);
              db.add_mirrored_rows(d.mirrored_rows);
              db.add_mirror_bytes(d.mirror_bytes);
              db.add_memory_budget_bytes(d.memory_budget_bytes);
              db.add_unmirrored_rows(d.unmirrored_rows);
              auto device_stats = db.Finish();
              w::StatsReplyBuilder b(fbb_);
              b.add_uptime_s(m.uptime_s);
              b.add_collections(m.collections);
              b.add_records(m.records);
              b.add_operations(operations);
              b.add_commit_batches(m.commit_batches);
              b.add_commit_groups(m.commit_groups);
              b.add_requests(requests);
              b.add_connections_open(m.connections_open);
              b.add_connections_accepted(m.connections_accepted);
              b.add_connections_refused(m.connections_refused);
              b.add_bytes_received(m.bytes_received);
              b.add_bytes_sent(m.bytes_sent);
              if (!device.IsNull()) b.add_device(device);
              b.add_device_stats(device_stats);
              return {w::Message::StatsReply, b.Finish().Union()};
            },
        },
        message);
  }

  Offset<w::Error> ErrorBody(absl::StatusCode code, absl::string_view message) {
    std::string text(message);
    if (text.size() > kMaxErrorMessageBytes) {
      // Cut at a UTF-8 boundary: step back over continuation bytes (10xxxxxx).
      size_t cut = kMaxErrorMessageBytes - 3;
      while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
      text.resize(cut);
      text += "...";
    }
    auto m = fbb_.CreateString(text);
    w::ErrorBuilder b(fbb_);
    b.add_code(StatusCodeToWire(code));
    b.add_message(m);
    return b.Finish();
  }

  std::string Finish(uint64_t request_id, w::Message type, Offset<void> body) {
    w::FrameBuilder b(fbb_);
    b.add_request_id(request_id);
    b.add_body_type(type);
    b.add_body(body);
    fbb_.Finish(b.Finish(), kFileIdentifier);
    return std::string(reinterpret_cast<const char*>(fbb_.GetBufferPointer()), fbb_.GetSize());
  }

 private:
  Offset<w::Value> StringValue(const std::string& s) {
    auto str = Str(s);
    w::ValueBuilder b(fbb_);
    b.add_type(w::ValueType::String);
    b.add_string_value(str);
    return b.Finish();
  }
  Offset<w::Value> IntValue(int64_t i) {
    w::ValueBuilder b(fbb_);
    b.add_type(w::ValueType::Int);
    b.add_int_value(i);
    return b.Finish();
  }
  Offset<w::Value> FloatValue(double d) {
    w::ValueBuilder b(fbb_);
    b.add_type(w::ValueType::Float);
    b.add_float_value(d);
    return b.Finish();
  }
  Offset<w::Value> BoolValue(bool x) {
    w::ValueBuilder b(fbb_);
    b.add_type(w::ValueType::Bool);
    b.add_bool_value(x);
    return b.Finish();
  }

  fb::FlatBufferBuilder fbb_;
};

// =============================================================================================
// Decoding
// =============================================================================================

// A lazily rendered location in the frame ("Upsert.records[3].vectors[0].field"): building
// strings for every element of a 65536-record batch would cost more than decoding it.
struct Path {
  const Path* parent = nullptr;
  const char* name = "";
  int64_t index = -1;  // >= 0: rendered as name[index].

  Path Child(const char* child) const { return Path{this, child, -1}; }
  std::string Render() const {
    std::string prefix = parent ? parent->Render() : std::string();
    std::string self = index >= 0 ? absl::StrCat(name, "[", index, "]") : std::string(name);
    if (prefix.empty()) return self;
    return absl::StrCat(prefix, ".", self);
  }
};

absl::Status Bad(const Path& p, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(p.Render(), ": ", what));
}

// Approximate heap cost of a std::map node beyond its key and value.
constexpr size_t kMapNodeBytes = 48;

class Decoder {
 public:
  // `view_import_data`: msg::Import may view the frame's floats (the body outlives the message).
  Decoder(size_t budget, bool view_import_data)
      : budget_(budget), view_import_data_(view_import_data) {}

  bool budget_exceeded() const { return budget_exceeded_; }

  absl::Status Charge(size_t bytes, const Path& p) {
    used_ += bytes;
    if (used_ > budget_) {
      budget_exceeded_ = true;
      return absl::InvalidArgumentError(absl::StrCat(
          "malformed frame: decoding exceeds the budget of ", budget_, " bytes at ", p.Render(),
          " (a frame may decode to at most 64 bytes per frame byte; are offsets shared?)"));
    }
    return absl::OkStatus();
  }

  absl::Status String(const fb::String* s, const Path& p, bool required, std::string* out) {
    if (s == nullptr) {
      if (required) return Bad(p, "missing");
      out->clear();
      return absl::OkStatus();
    }
    RETURN_IF_ERROR(Charge(sizeof(std::string) + s->size(), p));
    out->assign(s->c_str(), s->size());
    return absl::OkStatus();
  }

  absl::Status Floats(const Vector<float>* v, const Path& p, bool required,
                      std::vector<float>* out) {
    if (v == nullptr) {
      if (required) return Bad(p, "missing");
      out->clear();
      return absl::OkStatus();
    }
    const size_t n = v->size();
    RETURN_IF_ERROR(Charge(sizeof(std::vector<float>) + 4 * n, p));
    out->resize(n);
    if (n > 0) std::memcpy(out->data(), v->Data(), 4 * n);
    return absl::OkStatus();
  }

  absl::Status Strings(const Vector<Offset<fb::String>>* v, const Path& p,
                       std::vector<std::string>* out) {
    out->clear();
    if (v == nullptr) return absl::OkStatus();
    RETURN_IF_ERROR(Charge(sizeof(std::string) * v->size(), p));
    out->resize(v->size());
    for (fb::uoffset_t i = 0; i < v->size(); ++i) {
      const fb::String* s = v->Get(i);
      if (s == nullptr) return Bad(Path{p.parent, p.name, static_cast<int64_t>(i)}, "missing");
      RETURN_IF_ERROR(Charge(s->size(), p));
      (*out)[i].assign(s->c_str(), s->size());
    }
    return absl::OkStatus();
  }

  absl::Status Items(const Vector<Offset<w::StringItem>>* v, const Path& p,
                     std::vector<std::string>* out) {
    out->clear();
    if (v == nullptr) return absl::OkStatus();
    RETURN_IF_ERROR(Charge(sizeof(std::string) * v->size(), p));
    out->resize(v->size());
    for (fb::uoffset_t i = 0; i < v->size(); ++i) {
      const w::StringItem* item = v->Get(i);
      const Path ip{p.parent, p.name, static_cast<int64_t>(i)};
      if (item == nullptr) return Bad(ip, "missing");
      const fb::String* s = item->value();
      if (s == nullptr) return Bad(ip.Child("value"), "missing");
      RETURN_IF_ERROR(Charge(s->size(), p));
      (*out)[i].assign(s->c_str(), s->size());
    }
    return absl::OkStatus();
  }

  template <class E, size_t N, class T>
  absl::Status Enum(E value, const T (&table)[N], const Path& p, T* out) {
    const auto raw = static_cast<std::underlying_type_t<E>>(value);
    if (static_cast<size_t>(raw) >= N) {
      return Bad(p, absl::StrCat("unknown value ", static_cast<unsigned>(raw), " (valid: 0 .. ",
                                 N - 1, ")"));
    }
    *out = table[raw];
    return absl::OkStatus();
  }

  // A typed value. `attribute`: string lists are allowed (attribute values), else not (filters).
  absl::Status Value(const w::Value* v, const Path& p, bool attribute, AttributeValue* out) {
    if (v == nullptr) return Bad(p, "missing");
    AttributeType type = AttributeType::kString;
    RETURN_IF_ERROR(Enum(v->type(), kAttributeTypes, p.Child("type"), &type));
    // Exactly the member named by `type` may be present.
    struct Member {
      AttributeType type;
      fb::voffset_t slot;
      const char* name;
    };
    static constexpr Member kMembers[] = {
        {AttributeType::kString, w::Value::VT_STRING_VALUE, "string_value"},
        {AttributeType::kInt, w::Value::VT_INT_VALUE, "int_value"},
        {AttributeType::kFloat, w::Value::VT_FLOAT_VALUE, "float_value"},
        {AttributeType::kBool, w::Value::VT_BOOL_VALUE, "bool_value"},
        {AttributeType::kStringList, w::Value::VT_STRING_LIST, "string_list"},
    };
    for (const Member& m : kMembers) {
      // Generated tables derive privately from flatbuffers::Table (same address, no state of
      // their own); a C-style cast is the sanctioned way to reach its presence check.
      const auto* table = (const fb::Table*)v;  // NOLINT(google-readability-casting)
      if (m.type != type && table->CheckField(m.slot)) {
        return Bad(p, absl::StrCat("type is ", w::EnumNameValueType(v->type()), " but ", m.name,
                                   " is set"));
      }
    }
    switch (type) {
      case AttributeType::kString: {
        std::string s;
        RETURN_IF_ERROR(String(v->string_value(), p.Child("string_value"), true, &s));
        *out = std::move(s);
        return absl::OkStatus();
      }
      case AttributeType::kInt:
        *out = static_cast<int64_t>(v->int_value());
        return absl::OkStatus();
      case AttributeType::kFloat:
        *out = v->float_value();
        return absl::OkStatus();
      case AttributeType::kBool:
        *out = v->bool_value();
        return absl::OkStatus();
      case AttributeType::kStringList: {
        if (!attribute) return Bad(p, "a filter value cannot be a StringList");
        if (v->string_list() == nullptr) return Bad(p.Child("string_list"), "missing");
        std::vector<std::string> list;
        RETURN_IF_ERROR(Items(v->string_list(), p.Child("string_list"), &list));
        *out = std::move(list);
        return absl::OkStatus();
      }
    }
    return Bad(p, "unreachable value type");
  }

  absl::Status Attributes(const Vector<Offset<w::Attribute>>* v, const Path& p,
                          std::map<std::string, AttributeValue>* out) {
    out->clear();
    if (v == nullptr) return absl::OkStatus();
    for (fb::uoffset_t i = 0; i < v->size(); ++i) {
      const Path ip{p.parent, p.name, static_cast<int64_t>(i)};
      const w::Attribute* a = v->Get(i);
      if (a == nullptr) return Bad(ip, "missing");
      RETURN_IF_ERROR(Charge(kMapNodeBytes + sizeof(std::string) + sizeof(AttributeValue), ip));
      std::string name;
      RETURN_IF_ERROR(String(a->name(), ip.Child("name"), true, &name));
      AttributeValue value;
      RETURN_IF_ERROR(Value(a->value(), ip.Child("value"), true, &value));
      if (!out->emplace(name, std::move(value)).second) {
        return Bad(ip.Child("name"), absl::StrCat("duplicate attribute \"", name, "\""));
      }
    }
    return absl::OkStatus();
  }

  absl::Status Weights(const Vector<Offset<w::WeightEntry>>* v, const Path& p,
                       std::map<std::string, float>* out) {
    out->clear();
    if (v == nullptr) return absl::OkStatus();
    for (fb::uoffset_t i = 0; i < v->size(); ++i) {
      const Path ip{p.parent, p.name, static_cast<int64_t>(i)};
      const w::WeightEntry* e = v->Get(i);
      if (e == nullptr) return Bad(ip, "missing");
      RETURN_IF_ERROR(Charge(kMapNodeBytes + sizeof(std::string) + sizeof(float), ip));
      std::string field;
      RETURN_IF_ERROR(String(e->field(), ip.Child("field"), true, &field));
      if (!out->emplace(field, e->weight()).second) {
        return Bad(ip.Child("field"), absl::StrCat("duplicate field \"", field, "\""));
      }
    }
    return absl::OkStatus();
  }

  absl::Status Prov(const w::Provenance* v, const Path& p, Provenance* out) {
    *out = Provenance{};
    if (v == nullptr) return absl::OkStatus();
    RETURN_IF_ERROR(String(v->source(), p.Child("source"), false, &out->source));
    RETURN_IF_ERROR(String(v->collected_at(), p.Child("collected_at"), false, &out->collected_at));
    RETURN_IF_ERROR(Items(v->steps(), p.Child("steps"), &out->steps));
    RETURN_IF_ERROR(
        String(v->dataset_version(), p.Child("dataset_version"), false, &out->dataset_version));
    RETURN_IF_ERROR(String(v->encoder(), p.Child("encoder"), false, &out->encoder));
    return absl::OkStatus();
  }

  absl::Status Rec(const w::Record* v, const Path& p, Record* out) {
    if (v == nullptr) return Bad(p, "missing");
    RETURN_IF_ERROR(String(v->id(), p.Child("id"), true, &out->id));
    out->vectors.clear();
    if (const auto* vectors = v->vectors()) {
      for (fb::uoffset_t i = 0; i < vectors->size(); ++i) {
        const Path ip{&p, "vectors", static_cast<int64_t>(i)};
        const w::VectorEntry* e = vectors->Get(i);
        if (e == nullptr) return Bad(ip, "missing");
        RETURN_IF_ERROR(Charge(kMapNodeBytes, ip));
        std::string field;
        RETURN_IF_ERROR(String(e->field(), ip.Child("field"), true, &field));
        std::vector<float> values;
        RETURN_IF_ERROR(Floats(e->values(), ip.Child("values"), true, &values));
        if (!out->vectors.emplace(field, std::move(values)).second) {
          return Bad(ip.Child("field"), absl::StrCat("duplicate field \"", field, "\""));
        }
      }
    }
    RETURN_IF_ERROR(Weights(v->weights(), p.Child("weights"), &out->weights));
    RETURN_IF_ERROR(Attributes(v->attributes(), p.Child("attributes"), &out->attributes));
    RETURN_IF_ERROR(Prov(v->provenance(), p.Child("provenance"), &out->provenance));
    return absl::OkStatus();
  }

  absl::Status Records(const Vector<Offset<w::Record>>* v, const Path& p,
                       std::vector<Record>* out) {
    out->clear();
    if (v == nullptr) return absl::OkStatus();
    RETURN_IF_ERROR(Charge(sizeof(Record) * v->size(), p));
    out->resize(v->size());
    for (fb::uoffset_t i = 0; i < v->size(); ++i) {
      RETURN_IF_ERROR(Rec(v->Get(i), Path{p.parent, p.name, static_cast<int64_t>(i)}, &(*out)[i]));
    }
    return absl::OkStatus();
  }

  absl::Status Schema(const w::CollectionSchema* v, const Path& p, CollectionSchema* out) {
    if (v == nullptr) return Bad(p, "missing");
    RETURN_IF_ERROR(Charge(sizeof(CollectionSchema), p));
    RETURN_IF_ERROR(String(v->name(), p.Child("name"), true, &out->name));
    if (const auto* spaces = v->spaces()) {
      for (fb::uoffset_t i = 0; i < spaces->size(); ++i) {
        const Path ip{&p, "spaces", static_cast<int64_t>(i)};
        const w::Space* s = spaces->Get(i);
        if (s == nullptr) return Bad(ip, "missing");
        RETURN_IF_ERROR(Charge(kMapNodeBytes + sizeof(Space) + sizeof(std::string), ip));
        Space space;
        RETURN_IF_ERROR(String(s->name(), ip.Child("name"), true, &space.name));
        space.dim = s->dim();
        RETURN_IF_ERROR(Enum(s->metric(), kMetrics, ip.Child("metric"), &space.metric));
        RETURN_IF_ERROR(String(s->encoder(), ip.Child("encoder"), false, &space.encoder));
        const std::string key = space.name;
        if (!out->spaces.emplace(key, std::move(space)).second) {
          return Bad(ip.Child("name"), absl::StrCat("duplicate space \"", key, "\""));
        }
      }
    }
    if (const auto* fields = v->fields()) {
      for (fb::uoffset_t i = 0; i < fields->size(); ++i) {
        const Path ip{&p, "fields", static_cast<int64_t>(i)};
        const w::Field* f = fields->Get(i);
        if (f == nullptr) return Bad(ip, "missing");
        RETURN_IF_ERROR(Charge(kMapNodeBytes + sizeof(Field) + sizeof(std::string), ip));
        Field field;
        RETURN_IF_ERROR(String(f->name(), ip.Child("name"), true, &field.name));
        RETURN_IF_ERROR(String(f->space(), ip.Child("space"), true, &field.space));
        RETURN_IF_ERROR(String(f->modality(), ip.Child("modality"), true, &field.modality));
        field.weight = f->weight();
        if (const w::IndexSpec* ix = f->index()) {
          const Path xp = ip.Child("index");
          RETURN_IF_ERROR(Enum(ix->type(), kIndexTypes, xp.Child("type"), &field.index.type));
          field.index.nlist = ix->nlist();
          field.index.m = ix->m();
          field.index.nbits = ix->nbits();
        }
        const std::string key = field.name;
        if (!out->fields.emplace(key, std::move(field)).second) {
          return Bad(ip.Child("name"), absl::StrCat("duplicate field \"", key, "\""));
        }
      }
    }
    if (const auto* attributes = v->attributes()) {
      for (fb::uoffset_t i = 0; i < attributes->size(); ++i) {
        const Path ip{&p, "attributes", static_cast<int64_t>(i)};
        const w::AttributeDecl* a = attributes->Get(i);
        if (a == nullptr) return Bad(ip, "missing");
        RETURN_IF_ERROR(Charge(kMapNodeBytes + sizeof(std::string), ip));
        std::string name;
        RETURN_IF_ERROR(String(a->name(), ip.Child("name"), true, &name));
        AttributeType type = AttributeType::kString;
        RETURN_IF_ERROR(Enum(a->type(), kAttributeTypes, ip.Child("type"), &type));
        if (!out->attributes.emplace(name, type).second) {
          return Bad(ip.Child("name"), absl::StrCat("duplicate attribute \"", name, "\""));
        }
      }
    }
    return absl::OkStatus();
  }

  absl::Status Request(const w::SearchRequest* v, const Path& p, SearchRequest* out) {
    if (v == nullptr) return Bad(p, "missing");
    out->k = v->k();
    if (const auto* inputs = v->inputs()) {
      RETURN_IF_ERROR(Charge(sizeof(QueryInput) * inputs->size(), p));
      out->inputs.resize(inputs->size());
      for (fb::uoffset_t i = 0; i < inputs->size(); ++i) {
        const Path ip{&p, "inputs", static_cast<int64_t>(i)};
        const w::QueryInput* in = inputs->Get(i);
        if (in == nullptr) return Bad(ip, "missing");
        QueryInput& q = out->inputs[i];
        RETURN_IF_ERROR(Floats(in->vector(), ip.Child("vector"), true, &q.vector));
        RETURN_IF_ERROR(String(in->space(), ip.Child("space"), false, &q.space));
        RETURN_IF_ERROR(String(in->modality(), ip.Child("modality"), false, &q.modality));
        RETURN_IF_ERROR(Items(in->fields(), ip.Child("fields"), &q.fields));
        q.weight = in->weight();
      }
    }
    RETURN_IF_ERROR(Weights(v->weights(), p.Child("weights"), &out->weights));
    RETURN_IF_ERROR(Enum(v->fusion(), kFusions, p.Child("fusion"), &out->fusion));
    RETURN_IF_ERROR(Enum(v->normalize(), kNormalizes, p.Child("normalize"), &out->normalize));
    RETURN_IF_ERROR(Enum(v->missing(), kMissings, p.Child("missing"), &out->missing));
    if (const w::Filter* f = v->filter()) {
      const Path fp = p.Child("filter");
      if (const auto* predicates = f->predicates()) {
        RETURN_IF_ERROR(Charge(sizeof(Predicate) * predicates->size(), fp));
        out->filter.predicates.resize(predicates->size());
        for (fb::uoffset_t i = 0; i < predicates->size(); ++i) {
          const Path ip{&fp, "predicates", static_cast<int64_t>(i)};
          const w::Predicate* wp = predicates->Get(i);
          if (wp == nullptr) return Bad(ip, "missing");
          Predicate& pred = out->filter.predicates[i];
          RETURN_IF_ERROR(Enum(wp->target(), kTargets, ip.Child("target"), &pred.target));
          RETURN_IF_ERROR(String(wp->key(), ip.Child("key"), true, &pred.key));
          RETURN_IF_ERROR(Enum(wp->op(), kFilterOps, ip.Child("op"), &pred.op));
          const auto* values = wp->values();
          if (values == nullptr) return Bad(ip.Child("values"), "missing");
          RETURN_IF_ERROR(Charge(sizeof(FilterValue) * values->size(), ip));
          pred.values.reserve(values->size());
          for (fb::uoffset_t j = 0; j < values->size(); ++j) {
            AttributeValue value;
            RETURN_IF_ERROR(Value(values->Get(j), Path{&ip, "values", static_cast<int64_t>(j)},
                                  false, &value));
            pred.values.push_back(std::visit(
                Overloaded{[](std::string&& s) -> FilterValue { return std::move(s); },
                           [](int64_t i) -> FilterValue { return i; },
                           [](double d) -> FilterValue { return d; },
                           [](bool b) -> FilterValue { return b; },
                           [](std::vector<std::string>&&) -> FilterValue {
                             return std::string();  // excluded by Value(attribute=false).
                           }},
                std::move(value)));
          }
        }
      }
      RETURN_IF_ERROR(Items(f->has_fields(), fp.Child("has_fields"), &out->filter.has_fields));
    }
    out->exact = v->exact();
    out->explain = v->explain();
    out->with_attributes = v->with_attributes();
    out->nprobe = v->nprobe();
    out->refine = v->refine();
    return absl::OkStatus();
  }

  absl::Status Response(const w::SearchResponse* v, const Path& p, SearchResponse* out) {
    if (v == nullptr) return Bad(p, "missing");
    out->took_us = v->took_us();
    if (const auto* hits = v->results()) {
      RETURN_IF_ERROR(Charge(sizeof(Hit) * hits->size(), p));
      out->results.resize(hits->size());
      for (fb::uoffset_t i = 0; i < hits->size(); ++i) {
        const Path ip{&p, "results", static_cast<int64_t>(i)};
        const w::Hit* h = hits->Get(i);
        if (h == nullptr) return Bad(ip, "missing");
        Hit& hit = out->results[i];
        RETURN_IF_ERROR(String(h->id(), ip.Child("id"), true, &hit.id));
        hit.score = h->score();
        if (const auto* fields = h->fields()) {
          for (fb::uoffset_t j = 0; j < fields->size(); ++j) {
            const Path jp{&ip, "fields", static_cast<int64_t>(j)};
            const w::FieldExplanation* e = fields->Get(j);
            if (e == nullptr) return Bad(jp, "missing");
            RETURN_IF_ERROR(
                Charge(kMapNodeBytes + sizeof(std::string) + sizeof(FieldExplanation), jp));
            std::string field;
            RETURN_IF_ERROR(String(e->field(), jp.Child("field"), true, &field));
            FieldExplanation x;
            x.missing = e->missing();
            x.raw = e->raw();
            x.normalized = e->normalized();
            x.weight = e->weight();
            x.contribution = e->contribution();
            x.rank = e->rank();
            if (!hit.fields.emplace(field, x).second) {
              return Bad(jp.Child("field"), absl::StrCat("duplicate field \"", field, "\""));
            }
          }
        }
        RETURN_IF_ERROR(Attributes(h->attributes(), ip.Child("attributes"), &hit.attributes));
        RETURN_IF_ERROR(Prov(h->provenance(), ip.Child("provenance"), &hit.provenance));
      }
    }
    out->exact = v->exact();
    out->plan.clear();
    if (const auto* plan = v->plan()) {
      RETURN_IF_ERROR(Charge(sizeof(FieldPlan) * plan->size(), p));
      out->plan.resize(plan->size());  // not resized again: `seen` views its strings.
      std::set<std::string_view> seen;
      for (fb::uoffset_t i = 0; i < plan->size(); ++i) {
        const Path ip{&p, "plan", static_cast<int64_t>(i)};
        const w::FieldPlan* fp = plan->Get(i);
        if (fp == nullptr) return Bad(ip, "missing");
        FieldPlan& x = out->plan[i];
        RETURN_IF_ERROR(String(fp->field(), ip.Child("field"), true, &x.field));
        RETURN_IF_ERROR(Charge(kMapNodeBytes, ip));
        if (!seen.insert(x.field).second) {
          return Bad(ip.Child("field"), absl::StrCat("duplicate field \"", x.field, "\""));
        }
        RETURN_IF_ERROR(String(fp->index(), ip.Child("index"), false, &x.index));
        x.nprobe = fp->nprobe();
        x.indexed_segments = fp->indexed_segments();
        x.scanned_rows = fp->scanned_rows();
        x.candidates = fp->candidates();
      }
    }
    return absl::OkStatus();
  }

  absl::Status Info(const w::CollectionInfo* v, const Path& p, CollectionInfo* out) {
    RETURN_IF_ERROR(Charge(sizeof(CollectionInfo), p));
    RETURN_IF_ERROR(Schema(v->schema(), p.Child("schema"), &out->schema));
    out->records = v->records();
    if (const auto* counts = v->field_vectors()) {
      for (fb::uoffset_t i = 0; i < counts->size(); ++i) {
        const Path ip{&p, "field_vectors", static_cast<int64_t>(i)};
        const w::FieldCount* c = counts->Get(i);
        if (c == nullptr) return Bad(ip, "missing");
        RETURN_IF_ERROR(Charge(kMapNodeBytes + sizeof(std::string), ip));
        std::string field;
        RETURN_IF_ERROR(String(c->field(), ip.Child("field"), true, &field));
        if (!out->field_vectors.emplace(field, c->count()).second) {
          return Bad(ip.Child("field"), absl::StrCat("duplicate field \"", field, "\""));
        }
      }
    }
    out->segments = v->segments();
    RETURN_IF_ERROR(String(v->storage(), p.Child("storage"), false, &out->storage));
    RETURN_IF_ERROR(
        String(v->kernel_backend(), p.Child("kernel_backend"), false, &out->kernel_backend));
    RETURN_IF_ERROR(String(v->device(), p.Child("device"), false, &out->device));
    out->device_rows = v->device_rows();
    out->device_bytes = v->device_bytes();
    if (const auto* calibration = v->calibration()) {
      RETURN_IF_ERROR(Charge(sizeof(CalibrationStats) * calibration->size(), p));
      out->calibration.resize(calibration->size());
      for (fb::uoffset_t i = 0; i < calibration->size(); ++i) {
        const Path ip{&p, "calibration", static_cast<int64_t>(i)};
        const w::CalibrationStats* c = calibration->Get(i);
        if (c == nullptr) return Bad(ip, "missing");
        CalibrationStats& s = out->calibration[i];
        RETURN_IF_ERROR(String(c->modality(), ip.Child("modality"), true, &s.modality));
        RETURN_IF_ERROR(String(c->field(), ip.Child("field"), true, &s.field));
        s.samples = c->samples();
        s.at_vectors = c->at_vectors();
        s.mean = c->mean();
        s.stddev = c->stddev();
        s.top1_mean = c->top1_mean();
      }
    }
    if (const auto* segments = v->segment_list()) {
      RETURN_IF_ERROR(Charge(sizeof(SegmentInfo) * segments->size(), p));
      out->segment_list.resize(segments->size());
      for (fb::uoffset_t i = 0; i < segments->size(); ++i) {
        const Path ip{&p, "segment_list", static_cast<int64_t>(i)};
        const w::SegmentInfo* wsi = segments->Get(i);
        if (wsi == nullptr) return Bad(ip, "missing");
        SegmentInfo& si = out->segment_list[i];
        si.id = wsi->id();
        RETURN_IF_ERROR(String(wsi->state(), ip.Child("state"), false, &si.state));
        si.rows = wsi->rows();
        si.live = wsi->live();
        if (const auto* fields = wsi->fields()) {
          RETURN_IF_ERROR(Charge(sizeof(SegmentFieldIndex) * fields->size(), ip));
          si.fields.resize(fields->size());  // not resized again: `seen` views its strings.
          std::set<std::string_view> seen;
          for (fb::uoffset_t j = 0; j < fields->size(); ++j) {
            const Path jp{&ip, "fields", static_cast<int64_t>(j)};
            const w::SegmentFieldIndex* wf = fields->Get(j);
            if (wf == nullptr) return Bad(jp, "missing");
            SegmentFieldIndex& f = si.fields[j];
            RETURN_IF_ERROR(String(wf->field(), jp.Child("field"), true, &f.field));
            RETURN_IF_ERROR(Charge(kMapNodeBytes, jp));
            if (!seen.insert(f.field).second) {
              return Bad(jp.Child("field"), absl::StrCat("duplicate field \"", f.field, "\""));
            }
            RETURN_IF_ERROR(String(wf->index(), jp.Child("index"), false, &f.index));
            RETURN_IF_ERROR(String(wf->state(), jp.Child("state"), false, &f.state));
            f.vectors = wf->vectors();
            f.nlist = wf->nlist();
            f.m = wf->m();
            f.nbits = wf->nbits();
            f.bytes_per_vector = wf->bytes_per_vector();
          }
        }
      }
    }
    return absl::OkStatus();
  }

  // A list of latency summaries; operation names are required and unique within the list.
  absl::Status Latencies(const Vector<Offset<w::LatencyStats>>* v, const Path& p,
                         std::vector<LatencyStats>* out) {
    out->clear();
    if (v == nullptr) return absl::OkStatus();
    RETURN_IF_ERROR(Charge(sizeof(LatencyStats) * v->size(), p));
    out->resize(v->size());  // not resized again: `seen` views its strings.
    std::set<std::string_view> seen;
    for (fb::uoffset_t i = 0; i < v->size(); ++i) {
      const Path ip{p.parent, p.name, static_cast<int64_t>(i)};
      const w::LatencyStats* l = v->Get(i);
      if (l == nullptr) return Bad(ip, "missing");
      LatencyStats& x = (*out)[i];
      RETURN_IF_ERROR(String(l->operation(), ip.Child("operation"), true, &x.operation));
      RETURN_IF_ERROR(Charge(kMapNodeBytes, ip));
      if (!seen.insert(x.operation).second) {
        return Bad(ip.Child("operation"),
                   absl::StrCat("duplicate operation \"", x.operation, "\""));
      }
      x.count = l->count();
      x.errors = l->errors();
      x.mean_us = l->mean_us();
      x.p50_us = l->p50_us();
      x.p90_us = l->p90_us();
      x.p99_us = l->p99_us();
      x.max_us = l->max_us();
    }
    return absl::OkStatus();
  }

  // The message of a verified frame whose body type is in range.
  absl::Status Body(const w::Frame* frame, Message* out) {
    const Path root{nullptr, w::EnumNameMessage(frame->body_type()), -1};
    switch (frame->body_type()) {
      case w::Message::Hello: {
        const w::Hello* m = frame->body_as_Hello();
        msg::Hello hello;
        hello.protocol_version = m->protocol_version();
        if (m->token() != nullptr && m->token()->size() > kMaxTokenBytes) {
          return Bad(root.Child("token"), absl::StrCat(m->token()->size(), " bytes; at most ",
                                                       kMaxTokenBytes));
        }
        if (m->client() != nullptr && m->client()->size() > kMaxClientNameBytes) {
          return Bad(root.Child("client"), absl::StrCat(m->client()->size(), " bytes; at most ",
                                                        kMaxClientNameBytes));
        }
        RETURN_IF_ERROR(String(m->token(), root.Child("token"), false, &hello.token));
        RETURN_IF_ERROR(String(m->client(), root.Child("client"), false, &hello.client));
        *out = std::move(hello);
        return absl::OkStatus();
      }
      case w::Message::CreateCollection: {
        msg::CreateCollection create;
        RETURN_IF_ERROR(
            Schema(frame->body_as_CreateCollection()->schema(), root.Child("schema"),
                   &create.schema));
        *out = std::move(create);
        return absl::OkStatus();
      }
      case w::Message::ListCollections:
        *out = msg::ListCollections{};
        return absl::OkStatus();
      case w::Message::Describe: {
        msg::Describe describe;
        RETURN_IF_ERROR(String(frame->body_as_Describe()->collection(), root.Child("collection"),
                               true, &describe.collection));
        *out = std::move(describe);
        return absl::OkStatus();
      }
      case w::Message::DropCollection: {
        msg::DropCollection drop;
        RETURN_IF_ERROR(String(frame->body_as_DropCollection()->collection(),
                               root.Child("collection"), true, &drop.collection));
        *out = std::move(drop);
        return absl::OkStatus();
      }
      case w::Message::Upsert: {
        const w::Upsert* m = frame->body_as_Upsert();
        msg::Upsert upsert;
        RETURN_IF_ERROR(String(m->collection(), root.Child("collection"), true, &upsert.collection));
        if (m->records() != nullptr && m->records()->size() > engine::kMaxBatchRecords) {
          // The embedded client's message, so both modes fail alike.
          return absl::InvalidArgumentError(
              absl::StrCat("upsert: ", m->records()->size(), " records in one call; at most ",
                           engine::kMaxBatchRecords, " per atomic batch"));
        }
        RETURN_IF_ERROR(Records(m->records(), root.Child("records"), &upsert.records));
        *out = std::move(upsert);
        return absl::OkStatus();
      }
      case w::Message::Import: {
        const w::Import* m = frame->body_as_Import();
        msg::Import imp;
        ImportRequest& r = imp.request;
        RETURN_IF_ERROR(String(m->collection(), root.Child("collection"), true, &r.collection));
        RETURN_IF_ERROR(String(m->field(), root.Child("field"), true, &r.field));
        const uint64_t rows = m->rows(), dim = m->dim();
        if (rows > engine::kMaxBatchRecords) {
          return absl::InvalidArgumentError(absl::StrCat("import: ", rows,
                                                         " rows in one call; at most ",
                                                         engine::kMaxBatchRecords,
                                                         " per atomic batch"));
        }
        const Vector<float>* data = m->data();
        if (data == nullptr) return Bad(root.Child("data"), "missing");
        // rows <= 65536, so rows * dim overflows only for dim > 2^48: compare by division.
        const uint64_t n = data->size();
        const bool consistent = rows == 0 ? n == 0 : (n % rows == 0 && n / rows == dim);
        if (!consistent) {
          return absl::InvalidArgumentError(absl::StrCat(
              "import: ", n, " floats given for ", rows, " rows of ", dim, " components"));
        }
        r.rows = static_cast<size_t>(rows);
        r.dim = static_cast<size_t>(dim);
        const uint8_t* bytes = data->Data();
        if (view_import_data_ && reinterpret_cast<uintptr_t>(bytes) % alignof(float) == 0) {
          // Zero copy: the frame body outlives the message (documented in protocol.h).
          r.data = std::span<const float>(reinterpret_cast<const float*>(bytes), n);
        } else {
          RETURN_IF_ERROR(Charge(4 * n, root.Child("data")));
          imp.storage.resize(n);
          if (n > 0) std::memcpy(imp.storage.data(), bytes, 4 * n);
          r.data = std::span<const float>(imp.storage.data(), n);
        }
        RETURN_IF_ERROR(String(m->id_prefix(), root.Child("id_prefix"), false, &r.id_prefix));
        r.id_offset = m->id_offset();
        RETURN_IF_ERROR(Prov(m->provenance(), root.Child("provenance"), &r.provenance));
        *out = std::move(imp);
        return absl::OkStatus();
      }
      case w::Message::Get: {
        const w::Get* m = frame->body_as_Get();
        msg::Get get;
        RETURN_IF_ERROR(String(m->collection(), root.Child("collection"), true, &get.collection));
        RETURN_IF_ERROR(Strings(m->ids(), root.Child("ids"), &get.ids));
        get.with_vectors = m->with_vectors();
        *out = std::move(get);
        return absl::OkStatus();
      }
      case w::Message::Delete: {
        const w::Delete* m = frame->body_as_Delete();
        msg::Delete del;
        RETURN_IF_ERROR(String(m->collection(), root.Child("collection"), true, &del.collection));
        RETURN_IF_ERROR(Strings(m->ids(), root.Child("ids"), &del.ids));
        *out = std::move(del);
        return absl::OkStatus();
      }
      case w::Message::Search: {
        const w::Search* m = frame->body_as_Search();
        msg::Search search;
        RETURN_IF_ERROR(String(m->collection(), root.Child("collection"), true, &search.collection));
        if (const auto* requests = m->requests()) {
          RETURN_IF_ERROR(
              Charge(sizeof(SearchRequest) * requests->size(), root.Child("requests")));
          search.requests.resize(requests->size());
          for (fb::uoffset_t i = 0; i < requests->size(); ++i) {
            RETURN_IF_ERROR(Request(requests->Get(i),
                                    Path{&root, "requests", static_cast<int64_t>(i)},
                                    &search.requests[i]));
          }
        }
        *out = std::move(search);
        return absl::OkStatus();
      }
      case w::Message::HelloReply: {
        const w::HelloReply* m = frame->body_as_HelloReply();
        msg::HelloReply reply;
        RETURN_IF_ERROR(String(m->server_version(), root.Child("server_version"), false,
                               &reply.server_version));
        reply.protocol_version = m->protocol_version();
        RETURN_IF_ERROR(String(m->kernel_backend(), root.Child("kernel_backend"), false,
                               &reply.kernel_backend));
        RETURN_IF_ERROR(String(m->data_dir(), root.Child("data_dir"), false, &reply.data_dir));
        reply.collections = m->collections();
        reply.max_frame_bytes = m->max_frame_bytes();
        RETURN_IF_ERROR(Enum(m->role(), kRoles, root.Child("role"), &reply.role));
        RETURN_IF_ERROR(String(m->device(), root.Child("device"), false, &reply.device));
        *out = std::move(reply);
        return absl::OkStatus();
      }
      case w::Message::Ok:
        *out = msg::Ok{};
        return absl::OkStatus();
      case w::Message::WriteResult: {
        const w::WriteResult* m = frame->body_as_WriteResult();
        WriteResult r;
        r.written = m->written();
        r.created = m->created();
        r.not_found = m->not_found();
        *out = r;
        return absl::OkStatus();
      }
      case w::Message::CollectionList: {
        msg::CollectionList list;
        RETURN_IF_ERROR(
            Strings(frame->body_as_CollectionList()->names(), root.Child("names"), &list.names));
        *out = std::move(list);
        return absl::OkStatus();
      }
      case w::Message::CollectionInfo: {
        CollectionInfo info;
        RETURN_IF_ERROR(Info(frame->body_as_CollectionInfo(), root, &info));
        *out = std::move(info);
        return absl::OkStatus();
      }
      case w::Message::GetResult: {
        const w::GetResult* m = frame->body_as_GetResult();
        GetResult r;
        RETURN_IF_ERROR(Records(m->records(), root.Child("records"), &r.records));
        RETURN_IF_ERROR(Strings(m->not_found(), root.Child("not_found"), &r.not_found));
        *out = std::move(r);
        return absl::OkStatus();
      }
      case w::Message::SearchResults: {
        const w::SearchResults* m = frame->body_as_SearchResults();
        msg::SearchResults results;
        if (const auto* responses = m->responses()) {
          RETURN_IF_ERROR(
              Charge(sizeof(SearchResponse) * responses->size(), root.Child("responses")));
          results.responses.resize(responses->size());
          for (fb::uoffset_t i = 0; i < responses->size(); ++i) {
            RETURN_IF_ERROR(Response(responses->Get(i),
                                     Path{&root, "responses", static_cast<int64_t>(i)},
                                     &results.responses[i]));
          }
        }
        *out = std::move(results);
        return absl::OkStatus();
      }
      case w::Message::Error: {
        const w::Error* m = frame->body_as_Error();
        if (!IsValidWireStatusCode(m->code())) {
          return Bad(root.Child("code"),
                     absl::StrCat("unknown status code ", m->code(), " (valid: 1 .. 16)"));
        }
        msg::Error error;
        error.code = static_cast<absl::StatusCode>(m->code());
        RETURN_IF_ERROR(String(m->message(), root.Child("message"), false, &error.message));
        *out = std::move(error);
        return absl::OkStatus();
      }
      case w::Message::BuildIndex: {
        const w::BuildIndex* m = frame->body_as_BuildIndex();
        msg::BuildIndex build;
        RETURN_IF_ERROR(String(m->collection(), root.Child("collection"), true, &build.collection));
        RETURN_IF_ERROR(String(m->field(), root.Child("field"), false, &build.field));
        *out = std::move(build);
        return absl::OkStatus();
      }
      case w::Message::IndexProgress: {
        msg::IndexProgress progress;
        RETURN_IF_ERROR(String(frame->body_as_IndexProgress()->collection(),
                               root.Child("collection"), true, &progress.collection));
        *out = std::move(progress);
        return absl::OkStatus();
      }
      case w::Message::IndexProgressReply: {
        const w::IndexProgressReply* m = frame->body_as_IndexProgressReply();
        IndexBuildProgress p;
        p.segments = m->segments();
        p.ready = m->ready();
        p.building = m->building();
        p.failed = m->failed();
        p.growing_rows = m->growing_rows();
        *out = p;
        return absl::OkStatus();
      }
      case w::Message::Stats:
        *out = msg::Stats{};
        return absl::OkStatus();
      case w::Message::StatsReply: {
        const w::StatsReply* m = frame->body_as_StatsReply();
        DatabaseStats stats;
        stats.uptime_s = m->uptime_s();
        stats.collections = m->collections();
        stats.records = m->records();
        RETURN_IF_ERROR(Latencies(m->operations(), root.Child("operations"), &stats.operations));
        stats.commit_batches = m->commit_batches();
        stats.commit_groups = m->commit_groups();
        RETURN_IF_ERROR(Latencies(m->requests(), root.Child("requests"), &stats.requests));
        stats.connections_open = m->connections_open();
        stats.connections_accepted = m->connections_accepted();
        stats.connections_refused = m->connections_refused();
        stats.bytes_received = m->bytes_received();
        stats.bytes_sent = m->bytes_sent();
        RETURN_IF_ERROR(String(m->device(), root.Child("device"), false, &stats.device));
        if (const w::DeviceStats* d = m->device_stats()) {
          DeviceStats& x = stats.device_stats;
          x.searches = d->searches();
          x.batches = d->batches();
          x.fallbacks = d->fallbacks();
          x.boundary_fallbacks = d->boundary_fallbacks();
          x.cpu_queries = d->cpu_queries();
          x.mirrored_rows = d->mirrored_rows();
          x.mirror_bytes = d->mirror_bytes();
          x.memory_budget_bytes = d->memory_budget_bytes();
          x.unmirrored_rows = d->unmirrored_rows();
        }
        *out = std::move(stats);
        return absl::OkStatus();
      }
      case w::Message::NONE:
        break;
    }
    return Bad(root, "unexpected message type");
  }

 private:
  size_t budget_;
  bool view_import_data_;
  size_t used_ = 0;
  bool budget_exceeded_ = false;
};

std::string Printable(std::string_view bytes) {
  std::string out;
  for (unsigned char c : bytes) {
    if (c >= 0x20 && c < 0x7F && c != '"' && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      absl::StrAppend(&out, "\\x", absl::Hex(c, absl::kZeroPad2));
    }
  }
  return out;
}

}  // namespace

// =============================================================================================
// Public functions
// =============================================================================================

void EncodeFrameLength(uint32_t length, unsigned char out[kFrameHeaderBytes]) {
  out[0] = static_cast<unsigned char>(length);
  out[1] = static_cast<unsigned char>(length >> 8);
  out[2] = static_cast<unsigned char>(length >> 16);
  out[3] = static_cast<unsigned char>(length >> 24);
}

uint32_t DecodeFrameLength(const unsigned char in[kFrameHeaderBytes]) {
  return static_cast<uint32_t>(in[0]) | (static_cast<uint32_t>(in[1]) << 8) |
         (static_cast<uint32_t>(in[2]) << 16) | (static_cast<uint32_t>(in[3]) << 24);
}

absl::Status CheckFrameLength(uint32_t length, size_t max_frame_bytes) {
  if (length == 0) return absl::InvalidArgumentError("malformed frame: empty frame (length 0)");
  const size_t limit = std::min(max_frame_bytes, kMaxFrameBytesCeiling);
  if (length > limit) {
    return absl::ResourceExhaustedError(
        absl::StrCat("frame of ", length, " bytes exceeds the limit of ", limit, " bytes"));
  }
  return absl::OkStatus();
}

std::string WithLengthPrefix(std::string_view body) {
  std::string out(kFrameHeaderBytes, '\0');
  EncodeFrameLength(static_cast<uint32_t>(body.size()),
                    reinterpret_cast<unsigned char*>(out.data()));
  out.append(body);
  return out;
}

const char* MessageName(const Message& message) {
  return std::visit(Overloaded{
                        [](const msg::Hello&) { return "Hello"; },
                        [](const msg::CreateCollection&) { return "CreateCollection"; },
                        [](const msg::ListCollections&) { return "ListCollections"; },
                        [](const msg::Describe&) { return "Describe"; },
                        [](const msg::DropCollection&) { return "DropCollection"; },
                        [](const msg::Upsert&) { return "Upsert"; },
                        [](const msg::Import&) { return "Import"; },
                        [](const msg::Get&) { return "Get"; },
                        [](const msg::Delete&) { return "Delete"; },
                        [](const msg::Search&) { return "Search"; },
                        [](const msg::HelloReply&) { return "HelloReply"; },
                        [](const msg::Ok&) { return "Ok"; },
                        [](const WriteResult&) { return "WriteResult"; },
                        [](const msg::CollectionList&) { return "CollectionList"; },
                        [](const CollectionInfo&) { return "CollectionInfo"; },
                        [](const GetResult&) { return "GetResult"; },
                        [](const msg::SearchResults&) { return "SearchResults"; },
                        [](const msg::Error&) { return "Error"; },
                        [](const msg::BuildIndex&) { return "BuildIndex"; },
                        [](const msg::IndexProgress&) { return "IndexProgress"; },
                        [](const IndexBuildProgress&) { return "IndexProgressReply"; },
                        [](const msg::Stats&) { return "Stats"; },
                        [](const DatabaseStats&) { return "StatsReply"; },
                    },
                    message);
}

bool IsRequest(const Message& m) {
  return std::holds_alternative<msg::Hello>(m) ||
         std::holds_alternative<msg::CreateCollection>(m) ||
         std::holds_alternative<msg::ListCollections>(m) ||
         std::holds_alternative<msg::Describe>(m) ||
         std::holds_alternative<msg::DropCollection>(m) || std::holds_alternative<msg::Upsert>(m) ||
         std::holds_alternative<msg::Import>(m) || std::holds_alternative<msg::Get>(m) ||
         std::holds_alternative<msg::Delete>(m) || std::holds_alternative<msg::Search>(m) ||
         std::holds_alternative<msg::BuildIndex>(m) ||
         std::holds_alternative<msg::IndexProgress>(m) || std::holds_alternative<msg::Stats>(m);
}

EncodedSize EstimateEncodedSize(const Message& message) {
  const SizeBound b = MessageBound(message);
  return EncodedSize{b.lower, b.upper};
}

uint32_t StatusCodeToWire(absl::StatusCode code) { return static_cast<uint32_t>(code); }

bool IsValidWireStatusCode(uint32_t code) { return code >= 1 && code <= 16; }

absl::StatusOr<std::string> EncodeFrame(uint64_t request_id, const Message& message,
                                        size_t max_frame_bytes) {
  const size_t limit = std::min(max_frame_bytes, kMaxFrameBytesCeiling);
  const SizeBound bound = MessageBound(message);
  // Refuse before building: a frame is at least `lower` bytes, and flatbuffers cannot build
  // past 2 GiB (it would assert, or corrupt offsets with assertions off).
  if (bound.lower > limit) {
    return absl::ResourceExhaustedError(
        absl::StrCat(MessageName(message), " frame of at least ", bound.lower,
                     " bytes exceeds the maximum frame size of ", limit, " bytes"));
  }
  if (bound.upper > kMaxFrameBytesCeiling) {
    return absl::ResourceExhaustedError(absl::StrCat(
        MessageName(message), " frame of up to ", bound.upper, " bytes could exceed the ",
        kMaxFrameBytesCeiling, "-byte ceiling of the format (maximum frame size ", limit,
        " bytes)"));
  }
  Encoder encoder(bound.upper);
  auto [type, body] = encoder.Body(message);
  std::string frame = encoder.Finish(request_id, type, body);
  if (frame.size() > limit) {
    return absl::ResourceExhaustedError(absl::StrCat(MessageName(message), " frame of ",
                                                     frame.size(),
                                                     " bytes exceeds the maximum frame size of ",
                                                     limit, " bytes"));
  }
  return frame;
}

std::string EncodeErrorFrame(uint64_t request_id, const absl::Status& status) {
  Encoder encoder(1024);
  Offset<w::Error> error =
      status.ok() ? encoder.ErrorBody(absl::StatusCode::kUnknown, "error frame without an error")
                  : encoder.ErrorBody(status.code(), status.message());
  return encoder.Finish(request_id, w::Message::Error, error.Union());
}

absl::StatusOr<Frame> DecodeFrame(std::string_view body, const DecodeOptions& options,
                                  DecodeFailure* failure) {
  DecodeFailure local;
  DecodeFailure& f = failure != nullptr ? *failure : local;
  f = DecodeFailure{};
  auto malformed = [&](std::string what) {
    f.malformed = true;
    return absl::InvalidArgumentError(absl::StrCat("malformed frame: ", what));
  };

  // Root offset (4) + identifier (4) + the smallest table (4) and vtable (4).
  if (body.size() < 16) {
    return malformed(absl::StrCat("body of ", body.size(), " bytes is too short for a frame"));
  }
  if (body.size() > kMaxFrameBytesCeiling) {
    return malformed(absl::StrCat("body of ", body.size(), " bytes exceeds the ceiling of ",
                                  kMaxFrameBytesCeiling, " bytes"));
  }
  // FlatBuffers reads scalars in place, aligned relative to the buffer's start (up to 8 bytes
  // for long/double). A body at a misaligned address is decoded from an aligned copy, so no
  // misaligned load happens (undefined behaviour); Import data is then copied out of it.
  std::unique_ptr<uint64_t[]> aligned;
  const bool misaligned = reinterpret_cast<uintptr_t>(body.data()) % alignof(uint64_t) != 0;
  if (misaligned) {
    aligned.reset(new uint64_t[(body.size() + 7) / 8]);
    std::memcpy(aligned.get(), body.data(), body.size());
    body = std::string_view(reinterpret_cast<const char*>(aligned.get()), body.size());
  }
  if (!fb::BufferHasIdentifier(body.data(), kFileIdentifier)) {
    return malformed(absl::StrCat("wrong file identifier \"", Printable(body.substr(4, 4)),
                                  "\" (expected \"", kFileIdentifier, "\")"));
  }
  fb::Verifier::Options vopts;
  vopts.max_depth = static_cast<fb::uoffset_t>(options.max_depth);
  const size_t max_tables = options.max_tables != 0 ? options.max_tables : body.size() / 4 + 64;
  vopts.max_tables = static_cast<fb::uoffset_t>(
      std::min<size_t>(max_tables, std::numeric_limits<fb::uoffset_t>::max()));
  vopts.check_alignment = true;
  vopts.check_nested_flatbuffers = false;  // the schema has none.
  fb::Verifier verifier(reinterpret_cast<const uint8_t*>(body.data()), body.size(), vopts);
  if (!verifier.VerifyBuffer<w::Frame>(kFileIdentifier)) {
    return malformed(absl::StrCat(
        "flatbuffers verification failed (truncated body, an offset or length out of bounds, "
        "misaligned data, or over the limits of depth ",
        vopts.max_depth, " and ", vopts.max_tables, " tables)"));
  }
  const w::Frame* frame = fb::GetRoot<w::Frame>(body.data());
  f.request_id = frame->request_id();
  const w::Message type = frame->body_type();
  if (type == w::Message::NONE || frame->body() == nullptr) {
    return malformed("the frame carries no message");
  }
  if (static_cast<uint8_t>(type) > static_cast<uint8_t>(w::Message::MAX)) {
    // Structurally sound (the verifier accepts unknown union members without looking at them):
    // most likely a newer peer's message. A semantic error keeps the connection usable.
    return absl::InvalidArgumentError(
        absl::StrCat("unknown message type ", static_cast<unsigned>(type),
                     " (this peer speaks protocol version ", kProtocolVersion, ")"));
  }
  const size_t budget =
      options.max_decoded_bytes != 0 ? options.max_decoded_bytes : 64 * body.size() + (1 << 20);
  Decoder decoder(budget, /*view_import_data=*/!misaligned);
  Frame out;
  out.request_id = frame->request_id();
  absl::Status s = decoder.Body(frame, &out.message);
  if (!s.ok()) {
    f.malformed = decoder.budget_exceeded();
    return s;
  }
  return out;
}

}  // namespace rosetta::net
