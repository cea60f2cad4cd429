// Key and value encodings. See storage/store.h for the layout and storage/keys.h for the API.
//
// Every decoder here reads bytes that came from disk, so it treats them as untrusted: lengths
// and counts are checked against the bytes actually left before anything is allocated, and any
// inconsistency is DataLoss rather than a crash or a silently wrong value.
#include "storage/keys.h"

#include <cstring>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace rosetta::storage {
namespace internal {
namespace {

void PutU16BE(std::string* out, uint16_t v) {
  out->push_back(static_cast<char>(v >> 8));
  out->push_back(static_cast<char>(v & 0xFF));
}

void PutU32BE(std::string* out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out->push_back(static_cast<char>((v >> shift) & 0xFF));
}

uint16_t GetU16BE(std::string_view b) {
  return static_cast<uint16_t>((static_cast<uint8_t>(b[0]) << 8) | static_cast<uint8_t>(b[1]));
}

uint32_t GetU32BE(std::string_view b) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(b[i]);
  return v;
}

// Short printable form of a damaged key for error messages.
std::string KeyForMessage(std::string_view key) {
  constexpr size_t kMax = 64;
  std::string hex = absl::BytesToHexString(Sv(key.substr(0, kMax)));
  if (key.size() > kMax) hex += "...";
  return hex;
}

}  // namespace

// --- little helpers shared by the value codecs ---------------------------------------------------

void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

void PutLengthPrefixed(std::string* out, std::string_view s) {
  PutVarint(out, s.size());
  out->append(s.data(), s.size());
}

template <typename T>
void PutFixedLE(std::string* out, T v) {
  // Host is little-endian (static_assert in keys.h), so the in-memory bytes are the LE bytes.
  char buf[sizeof(T)];
  std::memcpy(buf, &v, sizeof(T));
  out->append(buf, sizeof(T));
}

// Reads a value encoding front to back. Every failure names what was being read and the byte
// offset, prefixed by `what_` (e.g. "record metadata").
class Reader {
 public:
  Reader(std::string_view bytes, std::string_view what) : all_(bytes), rest_(bytes), what_(what) {}

  size_t remaining() const { return rest_.size(); }
  size_t offset() const { return all_.size() - rest_.size(); }

  absl::Status Error(std::string_view detail) const {
    return absl::DataLossError(absl::StrCat(Sv(what_), " is corrupt: ", Sv(detail), " at byte ",
                                            offset(), " of ", all_.size()));
  }
  absl::Status Truncated(std::string_view reading) const {
    return absl::DataLossError(absl::StrCat(Sv(what_), " is truncated: ", Sv(reading), " at byte ",
                                            offset(), " of ", all_.size()));
  }

  absl::Status Byte(uint8_t* out, std::string_view reading) {
    if (rest_.empty()) return Truncated(reading);
    *out = static_cast<uint8_t>(rest_[0]);
    rest_.remove_prefix(1);
    return absl::OkStatus();
  }

  absl::Status Varint(uint64_t* out, std::string_view reading) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (rest_.empty()) return Truncated(reading);
      const uint8_t b = static_cast<uint8_t>(rest_[0]);
      rest_.remove_prefix(1);
      if (shift == 63 && (b & 0x7E) != 0)
        return Error(absl::StrCat("varint overflow in ", Sv(reading)));
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if ((b & 0x80) == 0) {
        // The encoder never emits a trailing zero group; one here means damaged bytes.
        if (b == 0 && shift > 0)
          return Error(absl::StrCat("non-canonical varint in ", Sv(reading)));
        *out = v;
        return absl::OkStatus();
      }
    }
    return Error(absl::StrCat("varint too long in ", Sv(reading)));
  }

  // A count of items each taking at least `min_item_bytes`: bounded by the bytes left, so that
  // garbage cannot make us reserve gigabytes.
  absl::Status Count(uint64_t* out, size_t min_item_bytes, std::string_view reading) {
    if (auto s = Varint(out, reading); !s.ok()) return s;
    if (*out > rest_.size() / min_item_bytes) {
      return Error(
          absl::StrCat(Sv(reading), " count ", *out, " exceeds the ", rest_.size(), " bytes left"));
    }
    return absl::OkStatus();
  }

  absl::Status String(std::string* out, std::string_view reading) {
    uint64_t n = 0;
    if (auto s = Varint(&n, reading); !s.ok()) return s;
    if (n > rest_.size()) return Truncated(reading);
    out->assign(rest_.data(), n);
    rest_.remove_prefix(n);
    return absl::OkStatus();
  }

  absl::Status U32BE(uint32_t* out, std::string_view reading) {
    if (rest_.size() < 4) return Truncated(reading);
    *out = GetU32BE(rest_);
    rest_.remove_prefix(4);
    return absl::OkStatus();
  }

  template <typename T>
  absl::Status FixedLE(T* out, std::string_view reading) {
    if (rest_.size() < sizeof(T)) return Truncated(reading);
    std::memcpy(out, rest_.data(), sizeof(T));
    rest_.remove_prefix(sizeof(T));
    return absl::OkStatus();
  }

  absl::Status Version(std::string_view reading) {
    uint8_t v = 0;
    if (auto s = Byte(&v, reading); !s.ok()) return s;
    if (v != static_cast<uint8_t>(kKeyVersion)) {
      return absl::DataLossError(absl::StrCat(Sv(what_), " has unknown format version ", int{v},
                                              " (this build reads version ", int{kKeyVersion},
                                              ")"));
    }
    return absl::OkStatus();
  }

  absl::Status End() const {
    if (!rest_.empty()) return Error(absl::StrCat(rest_.size(), " trailing bytes"));
    return absl::OkStatus();
  }

 private:
  std::string_view all_;
  std::string_view rest_;
  std::string_view what_;
};

#define STORAGE_RETURN_IF_ERROR_(expr) \
  do {                                 \
    absl::Status s_ = (expr);          \
    if (!s_.ok()) return s_;           \
  } while (0)

// --- keys ----------------------------------------------------------------------------------------

std::string CatalogKey(std::string_view name) {
  std::string k;
  k.reserve(1 + name.size());
  k.push_back(kKeyVersion);
  k.append(name.data(), name.size());
  return k;
}

std::string CollectionPrefix(uint32_t collection) {
  std::string k;
  k.reserve(5);
  k.push_back(kKeyVersion);
  PutU32BE(&k, collection);
  return k;
}

std::string CollectionPrefixEnd(uint32_t collection) {
  if (collection == 0xFFFFFFFFu) return std::string(1, static_cast<char>(kKeyVersion + 1));
  return CollectionPrefix(collection + 1);
}

std::string RecordKey(uint32_t collection, std::string_view id) {
  std::string k;
  k.reserve(7 + id.size() + 2);  // + 2: VectorKey appends the field without reallocating.
  k.push_back(kKeyVersion);
  PutU32BE(&k, collection);
  PutU16BE(&k, static_cast<uint16_t>(id.size()));
  k.append(id.data(), id.size());
  return k;
}

std::string VectorKey(uint32_t collection, std::string_view id, uint16_t field) {
  std::string k = RecordKey(collection, id);
  PutU16BE(&k, field);
  return k;
}

std::string StatKey(uint32_t collection, std::string_view name) {
  std::string k = CollectionPrefix(collection);
  k.append(name.data(), name.size());
  return k;
}

std::string PrefixSuccessor(std::string_view prefix) {
  std::string s(prefix);
  while (!s.empty()) {
    auto& c = reinterpret_cast<unsigned char&>(s.back());
    if (c != 0xFF) {
      ++c;
      return s;
    }
    s.pop_back();
  }
  return s;
}

absl::StatusOr<ParsedRecordKey> ParseRecordKey(std::string_view key) {
  if (key.size() < 7 || key[0] != kKeyVersion) {
    return absl::DataLossError(absl::StrCat("malformed records key ", KeyForMessage(key)));
  }
  const uint16_t len = GetU16BE(key.substr(5, 2));
  if (key.size() != 7u + len) {
    return absl::DataLossError(absl::StrCat("malformed records key ", KeyForMessage(key),
                                            ": id length ", len, " but ", key.size() - 7,
                                            " id bytes"));
  }
  ParsedRecordKey p;
  p.collection = GetU32BE(key.substr(1, 4));
  p.id = key.substr(7, len);
  p.record = key;
  return p;
}

absl::StatusOr<ParsedVectorKey> ParseVectorKey(std::string_view key) {
  if (key.size() < 9 || key[0] != kKeyVersion) {
    return absl::DataLossError(absl::StrCat("malformed vectors key ", KeyForMessage(key)));
  }
  const uint16_t len = GetU16BE(key.substr(5, 2));
  if (key.size() != 9u + len) {
    return absl::DataLossError(absl::StrCat("malformed vectors key ", KeyForMessage(key),
                                            ": id length ", len, " but ", key.size() - 9,
                                            " id bytes"));
  }
  ParsedVectorKey p;
  p.collection = GetU32BE(key.substr(1, 4));
  p.id = key.substr(7, len);
  p.record = key.substr(0, 7 + len);
  p.field = GetU16BE(key.substr(7 + len, 2));
  return p;
}

// --- values --------------------------------------------------------------------------------------

std::string EncodeVectorValue(std::span<const float> v) {
  std::string out;
  out.resize(1 + v.size() * sizeof(float));
  out[0] = kKeyVersion;
  if (!v.empty()) std::memcpy(out.data() + 1, v.data(), v.size() * sizeof(float));
  return out;
}

absl::StatusOr<std::vector<float>> DecodeVectorValue(std::string_view bytes) {
  if (bytes.empty()) return absl::DataLossError("vector value is empty (no version byte)");
  if (bytes[0] != kKeyVersion) {
    return absl::DataLossError(absl::StrCat("vector value has unknown format version ",
                                            int{static_cast<uint8_t>(bytes[0])}));
  }
  if ((bytes.size() - 1) % sizeof(float) != 0) {
    return absl::DataLossError(
        absl::StrCat("vector value has ", bytes.size() - 1, " payload bytes, not a multiple of 4"));
  }
  std::vector<float> v((bytes.size() - 1) / sizeof(float));
  if (!v.empty()) std::memcpy(v.data(), bytes.data() + 1, v.size() * sizeof(float));
  return v;
}

std::string EncodeCollectionMeta(const CollectionMeta& meta) {
  std::string out;
  out.push_back(kKeyVersion);
  PutU32BE(&out, meta.id);
  PutLengthPrefixed(&out, meta.name);
  PutLengthPrefixed(&out, meta.schema_json);
  return out;
}

absl::StatusOr<CollectionMeta> DecodeCollectionMeta(std::string_view bytes) {
  Reader r(bytes, "catalog entry");
  CollectionMeta m;
  STORAGE_RETURN_IF_ERROR_(r.Version("version"));
  STORAGE_RETURN_IF_ERROR_(r.U32BE(&m.id, "collection id"));
  STORAGE_RETURN_IF_ERROR_(r.String(&m.name, "name"));
  STORAGE_RETURN_IF_ERROR_(r.String(&m.schema_json, "schema"));
  STORAGE_RETURN_IF_ERROR_(r.End());
  return m;
}

std::string EncodeU32(uint32_t v) {
  std::string out;
  PutU32BE(&out, v);
  return out;
}

absl::StatusOr<uint32_t> DecodeU32(std::string_view bytes, std::string_view what) {
  if (bytes.size() != 4) {
    return absl::DataLossError(
        absl::StrCat(Sv(what), " is corrupt: ", bytes.size(), " bytes, expected 4"));
  }
  return GetU32BE(bytes);
}

}  // namespace internal

// --- RecordMeta ----------------------------------------------------------------------------------
//
// Format 1 (documented in store.h):
//   [0x01]
//   weights:    varint count, then per entry (ascending key): string key, float32 LE
//   attributes: varint count, then per entry (ascending key): string key, tag byte, payload
//               tag 0 string: string | 1 int64: 8 bytes LE | 2 double: 8 bytes LE |
//               3 bool: 1 byte (0 or 1) | 4 string list: varint count, strings
//   provenance: string source, string collected_at, varint count + strings steps,
//               string dataset_version, string encoder
// where "string" is a varint byte length followed by the bytes. Map keys must be strictly
// ascending, which both matches std::map and catches duplicated or reordered (damaged) entries.

namespace {

enum AttributeTag : uint8_t {
  kTagString = 0,
  kTagInt = 1,
  kTagDouble = 2,
  kTagBool = 3,
  kTagStringList = 4,
};

}  // namespace

std::string EncodeRecordMeta(const RecordMeta& meta) {
  using internal::PutFixedLE;
  using internal::PutLengthPrefixed;
  using internal::PutVarint;
  std::string out;
  out.push_back(internal::kKeyVersion);
  PutVarint(&out, meta.weights.size());
  for (const auto& [k, w] : meta.weights) {
    PutLengthPrefixed(&out, k);
    PutFixedLE<float>(&out, w);
  }
  PutVarint(&out, meta.attributes.size());
  for (const auto& [k, value] : meta.attributes) {
    PutLengthPrefixed(&out, k);
    if (const auto* s = std::get_if<std::string>(&value)) {
      out.push_back(static_cast<char>(kTagString));
      PutLengthPrefixed(&out, *s);
    } else if (const auto* i = std::get_if<int64_t>(&value)) {
      out.push_back(static_cast<char>(kTagInt));
      PutFixedLE<int64_t>(&out, *i);
    } else if (const auto* d = std::get_if<double>(&value)) {
      out.push_back(static_cast<char>(kTagDouble));
      PutFixedLE<double>(&out, *d);
    } else if (const auto* b = std::get_if<bool>(&value)) {
      out.push_back(static_cast<char>(kTagBool));
      out.push_back(*b ? 1 : 0);
    } else {
      const auto& list = std::get<std::vector<std::string>>(value);
      out.push_back(static_cast<char>(kTagStringList));
      PutVarint(&out, list.size());
      for (const auto& s : list) PutLengthPrefixed(&out, s);
    }
  }
  const Provenance& p = meta.provenance;
  PutLengthPrefixed(&out, p.source);
  PutLengthPrefixed(&out, p.collected_at);
  PutVarint(&out, p.steps.size());
  for (const auto& s : p.steps) PutLengthPrefixed(&out, s);
  PutLengthPrefixed(&out, p.dataset_version);
  PutLengthPrefixed(&out, p.encoder);
  return out;
}

absl::StatusOr<RecordMeta> DecodeRecordMeta(std::string_view bytes) {
  internal::Reader r(bytes, "record metadata");
  RecordMeta m;
  STORAGE_RETURN_IF_ERROR_(r.Version("version"));

  uint64_t n = 0;
  // A weight entry is at least 1 (key length) + 4 (float) bytes.
  STORAGE_RETURN_IF_ERROR_(r.Count(&n, 5, "weights"));
  for (uint64_t i = 0; i < n; ++i) {
    std::string key;
    float w = 0;
    STORAGE_RETURN_IF_ERROR_(r.String(&key, "weight name"));
    STORAGE_RETURN_IF_ERROR_(r.FixedLE(&w, "weight value"));
    if (!m.weights.empty() && !(m.weights.rbegin()->first < key)) {
      return r.Error(
          absl::StrCat("weight '", absl::CHexEscape(internal::Sv(key)), "' out of order"));
    }
    m.weights.emplace_hint(m.weights.end(), std::move(key), w);
  }

  // An attribute entry is at least 1 (key length) + 1 (tag) + 1 (smallest payload) bytes.
  STORAGE_RETURN_IF_ERROR_(r.Count(&n, 3, "attributes"));
  for (uint64_t i = 0; i < n; ++i) {
    std::string key;
    uint8_t tag = 0;
    STORAGE_RETURN_IF_ERROR_(r.String(&key, "attribute name"));
    if (!m.attributes.empty() && !(m.attributes.rbegin()->first < key)) {
      return r.Error(
          absl::StrCat("attribute '", absl::CHexEscape(internal::Sv(key)), "' out of order"));
    }
    STORAGE_RETURN_IF_ERROR_(r.Byte(&tag, "attribute type tag"));
    AttributeValue value;
    switch (tag) {
      case kTagString: {
        std::string s;
        STORAGE_RETURN_IF_ERROR_(r.String(&s, "string attribute"));
        value = std::move(s);
        break;
      }
      case kTagInt: {
        int64_t v = 0;
        STORAGE_RETURN_IF_ERROR_(r.FixedLE(&v, "int attribute"));
        value = v;
        break;
      }
      case kTagDouble: {
        double v = 0;
        STORAGE_RETURN_IF_ERROR_(r.FixedLE(&v, "float attribute"));
        value = v;
        break;
      }
      case kTagBool: {
        uint8_t b = 0;
        STORAGE_RETURN_IF_ERROR_(r.Byte(&b, "bool attribute"));
        if (b > 1) return r.Error(absl::StrCat("bool attribute has byte value ", int{b}));
        value = (b == 1);
        break;
      }
      case kTagStringList: {
        uint64_t count = 0;
        std::vector<std::string> list;
        STORAGE_RETURN_IF_ERROR_(r.Count(&count, 1, "string list attribute"));
        list.reserve(count);
        for (uint64_t j = 0; j < count; ++j) {
          std::string s;
          STORAGE_RETURN_IF_ERROR_(r.String(&s, "string list element"));
          list.push_back(std::move(s));
        }
        value = std::move(list);
        break;
      }
      default:
        return r.Error(absl::StrCat("unknown attribute type tag ", int{tag}));
    }
    m.attributes.emplace_hint(m.attributes.end(), std::move(key), std::move(value));
  }

  Provenance& p = m.provenance;
  STORAGE_RETURN_IF_ERROR_(r.String(&p.source, "provenance source"));
  STORAGE_RETURN_IF_ERROR_(r.String(&p.collected_at, "provenance collected_at"));
  STORAGE_RETURN_IF_ERROR_(r.Count(&n, 1, "provenance steps"));
  p.steps.reserve(n);
  for (uint64_t i = 0; i < n; ++i) {
    std::string s;
    STORAGE_RETURN_IF_ERROR_(r.String(&s, "provenance step"));
    p.steps.push_back(std::move(s));
  }
  STORAGE_RETURN_IF_ERROR_(r.String(&p.dataset_version, "provenance dataset_version"));
  STORAGE_RETURN_IF_ERROR_(r.String(&p.encoder, "provenance encoder"));
  STORAGE_RETURN_IF_ERROR_(r.End());
  return m;
}

#undef STORAGE_RETURN_IF_ERROR_

}  // namespace rosetta::storage
