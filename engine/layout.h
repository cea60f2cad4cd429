// Internal to the engine: the immutable, resolved form of a collection's schema.
//
// Field ids are the index of the field in the schema's name-ordered field map (schemas are
// immutable, so the ids never change); they are the `field` ids used in storage keys (uint16) and
// the field indices used everywhere in the engine.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "schema/types.h"

namespace rosetta::engine {

struct FieldSpec {
  std::string name;
  uint16_t id = 0;  // == index in Layout::fields.
  std::string space;
  std::string modality;
  Metric metric = Metric::kCosine;
  size_t dim = 0;
  float weight = 1.0f;  // the schema's default fusion weight.
  IndexSpec index;      // the schema's index for this field.
};

struct Layout {
  CollectionSchema schema;
  std::vector<FieldSpec> fields;                             // by field id.
  std::map<std::string, size_t> field_index;                 // name -> id.
  std::vector<uint16_t> all_field_ids;                       // 0 .. fields.size()-1.
  std::map<std::string, std::vector<size_t>> space_fields;   // space -> field ids.

  // Resolves `schema` (assumed valid: ValidateSchema passed). InvalidArgument if it has more
  // fields than a uint16 field id can address.
  static absl::StatusOr<std::shared_ptr<const Layout>> Make(const CollectionSchema& schema);

  const FieldSpec* FindField(const std::string& name) const {
    auto it = field_index.find(name);
    return it == field_index.end() ? nullptr : &fields[it->second];
  }
};

// A 64-bit hash of a record id (FNV-1a followed by a SplitMix64 finaliser). Used for the
// deterministic calibration samples: it depends only on the id bytes, never on insertion order,
// process or platform.
uint64_t IdHash(std::string_view id);

}  // namespace rosetta::engine
