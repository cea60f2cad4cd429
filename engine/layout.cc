#include "engine/layout.h"

#include <limits>

#include "absl/status/status.h"

namespace rosetta::engine {

absl::StatusOr<std::shared_ptr<const Layout>> Layout::Make(const CollectionSchema& schema) {
  if (schema.fields.size() > std::numeric_limits<uint16_t>::max()) {
    return absl::InvalidArgumentError("collection \"" + schema.name + "\": too many fields (" +
                                      std::to_string(schema.fields.size()) + ", at most 65535)");
  }
  auto layout = std::make_shared<Layout>();
  layout->schema = schema;
  for (const auto& [name, field] : schema.fields) {
    auto space_it = schema.spaces.find(field.space);
    if (space_it == schema.spaces.end()) {
      return absl::InvalidArgumentError("collection \"" + schema.name + "\": field \"" + name +
                                        "\" names unknown space \"" + field.space + "\"");
    }
    FieldSpec spec;
    spec.name = name;
    spec.id = static_cast<uint16_t>(layout->fields.size());
    spec.space = field.space;
    spec.modality = field.modality;
    spec.metric = space_it->second.metric;
    spec.dim = static_cast<size_t>(space_it->second.dim);
    spec.weight = field.weight;
    spec.index = field.index;
    layout->field_index[name] = spec.id;
    layout->all_field_ids.push_back(spec.id);
    layout->space_fields[field.space].push_back(spec.id);
    layout->fields.push_back(std::move(spec));
  }
  return std::shared_ptr<const Layout>(std::move(layout));
}

uint64_t IdHash(std::string_view id) {
  // FNV-1a gives every byte a say; the SplitMix64 finaliser spreads FNV's weak low bits so that
  // "the k smallest hashes" is a uniform sample even for sequential ids like p0, p1, ...
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : id) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  h ^= h >> 31;
  return h;
}

}  // namespace rosetta::engine
