// Byte-level encodings of Rosetta's RocksDB keys and values (storage-internal; no RocksDB types).
//
// The layout is documented in storage/store.h. This header exists so that the encodings can be
// unit-tested on their own (key order, round trips, rejection of damaged bytes); nothing outside
// storage/ and tests/storage/ should include it.
#pragma once

#include <bit>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "storage/store.h"

namespace rosetta::storage::internal {

// Vectors are stored as raw float32 in host order, which must be little-endian IEEE 754.
static_assert(std::endian::native == std::endian::little,
              "Rosetta's on-disk vector format is little-endian float32; big-endian hosts are "
              "not supported");
static_assert(sizeof(float) == 4 && std::numeric_limits<float>::is_iec559,
              "float must be IEEE 754 binary32");
static_assert(sizeof(double) == 8 && std::numeric_limits<double>::is_iec559,
              "double must be IEEE 754 binary64");

// Version byte that starts every key and every versioned value of format 1.
inline constexpr char kKeyVersion = 0x01;
// Catalog keys starting with this byte are Rosetta's own bookkeeping, not collections.
inline constexpr char kInternalKeyTag = 0x00;
// Catalog key holding the database format version (u32 big-endian).
inline constexpr std::string_view kFormatVersionKey{"\0format_version", 15};
// Catalog key holding the next collection id to hand out (u32 big-endian). Never decreases.
inline constexpr std::string_view kNextCollectionIdKey{"\0next_collection_id", 19};
static_assert(kFormatVersionKey[0] == kInternalKeyTag &&
              kNextCollectionIdKey[0] == kInternalKeyTag);
// The on-disk format this build writes and reads.
inline constexpr uint32_t kFormatVersion = 1;
// Longest record id a key can hold (the id length is a u16).
inline constexpr size_t kMaxIdBytes = 0xFFFF;

// Abseil 20220623 (Debian) has its own string_view type; StrCat & co. need this conversion.
inline absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// --- keys --------------------------------------------------------------------------------------

// catalog: [0x01][name]
std::string CatalogKey(std::string_view name);
// [0x01][collection u32 BE]: the prefix of every records/vectors/stats key of a collection.
std::string CollectionPrefix(uint32_t collection);
// The exclusive upper bound of CollectionPrefix(collection) (works for collection 0xFFFFFFFF).
std::string CollectionPrefixEnd(uint32_t collection);
// records: [0x01][collection u32 BE][id length u16 BE][id]. Requires id.size() <= kMaxIdBytes.
std::string RecordKey(uint32_t collection, std::string_view id);
// vectors: RecordKey(collection, id) + [field u16 BE].
std::string VectorKey(uint32_t collection, std::string_view id, uint16_t field);
// stats: [0x01][collection u32 BE][name]
std::string StatKey(uint32_t collection, std::string_view name);

// The smallest key greater than every key that starts with `prefix` ("" if there is none, i.e.
// the prefix is all 0xFF bytes).
std::string PrefixSuccessor(std::string_view prefix);

struct ParsedRecordKey {
  uint32_t collection = 0;
  std::string_view id;      // points into the parsed key.
  std::string_view record;  // the RecordKey part of the parsed key.
};
// Parses a records key; DataLoss if malformed.
absl::StatusOr<ParsedRecordKey> ParseRecordKey(std::string_view key);

struct ParsedVectorKey {
  uint32_t collection = 0;
  std::string_view id;      // points into the parsed key.
  std::string_view record;  // the RecordKey part of the parsed key.
  uint16_t field = 0;
};
// Parses a vectors key; DataLoss if malformed.
absl::StatusOr<ParsedVectorKey> ParseVectorKey(std::string_view key);

// --- values ------------------------------------------------------------------------------------

// [0x01][float32 LE ...], bit-exact.
std::string EncodeVectorValue(std::span<const float> v);
absl::StatusOr<std::vector<float>> DecodeVectorValue(std::string_view bytes);

// [0x01][id u32 BE][name: varint length + bytes][schema_json: varint length + bytes]
std::string EncodeCollectionMeta(const CollectionMeta& meta);
absl::StatusOr<CollectionMeta> DecodeCollectionMeta(std::string_view bytes);

// Big-endian u32, used for the internal catalog values.
std::string EncodeU32(uint32_t v);
absl::StatusOr<uint32_t> DecodeU32(std::string_view bytes, std::string_view what);

}  // namespace rosetta::storage::internal
