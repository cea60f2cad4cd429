// Encodings of storage keys and values: order properties, round trips, rejection of damage.
#include "storage/keys.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "storage/store.h"
#include "tests/storage/status_expect.h"
#include "tests/testing/testing.h"

namespace rosetta::storage {
namespace {

using internal::ParseRecordKey;
using internal::ParseVectorKey;
using internal::RecordKey;
using internal::VectorKey;

std::string RandomId(std::mt19937_64& rng) {
  // Short ids so that equal lengths (and equal prefixes) are common; every byte value, 0x00 and
  // 0xFF included, so that signed-char comparisons would show up.
  std::uniform_int_distribution<int> len(0, 6);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> pick(0, 3);
  std::string id(len(rng), '\0');
  for (auto& c : id) {
    const int p = pick(rng);
    c = static_cast<char>(p == 0 ? 0x00 : p == 1 ? 0xFF : byte(rng));
  }
  return id;
}

// (length, bytes as unsigned) order: the documented id order.
bool IdLess(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return a.size() < b.size();
  return std::memcmp(a.data(), b.data(), a.size()) < 0;
}

// RocksDB's default comparator: unsigned bytewise.
bool BytewiseLess(const std::string& a, const std::string& b) {
  const int c = std::memcmp(a.data(), b.data(), std::min(a.size(), b.size()));
  return c < 0 || (c == 0 && a.size() < b.size());
}

TEST(KeysTest, EncodedOrderMatchesCollectionThenLengthThenBytes) {
  const uint64_t seed = testing::TestSeed(20250809);
  SCOPED_TRACE(testing::SeedTrace(seed));
  std::mt19937_64 rng(seed);
  const uint32_t collections[] = {0, 1, 2, 255, 256, 0x01000000, 0xFFFFFFFF};
  std::uniform_int_distribution<int> pick_c(0, std::size(collections) - 1);
  std::uniform_int_distribution<int> pick_f(0, 0xFFFF);

  struct Item {
    uint32_t collection;
    std::string id;
    uint16_t field;
  };
  std::vector<Item> items;
  for (int i = 0; i < 3000; ++i) {
    items.push_back({collections[pick_c(rng)], RandomId(rng),
                     static_cast<uint16_t>(i % 3 == 0 ? pick_f(rng) : i % 4)});
  }
  auto ref_less = [](const Item& a, const Item& b) {
    if (a.collection != b.collection) return a.collection < b.collection;
    if (a.id != b.id) return IdLess(a.id, b.id);
    return a.field < b.field;
  };
  for (size_t i = 0; i + 1 < items.size(); ++i) {
    const Item& a = items[i];
    const Item& b = items[i + 1];
    const std::string ra = RecordKey(a.collection, a.id), rb = RecordKey(b.collection, b.id);
    const bool same_record = a.collection == b.collection && a.id == b.id;
    // Records: strict order agrees with the reference (ignoring fields).
    EXPECT_EQ(BytewiseLess(ra, rb),
              !same_record && ref_less({a.collection, a.id, 0}, {b.collection, b.id, 0}))
        << "records keys " << i;
    EXPECT_EQ(ra == rb, same_record);
    // Vectors: the same order, refined by field.
    const std::string va = VectorKey(a.collection, a.id, a.field);
    const std::string vb = VectorKey(b.collection, b.id, b.field);
    EXPECT_EQ(BytewiseLess(va, vb), ref_less(a, b)) << "vectors keys " << i;
    // A vectors key starts with its records key, and with no other record's key.
    EXPECT_EQ(va.substr(0, ra.size()), ra);
    EXPECT_EQ(va.substr(0, rb.size()) == rb, same_record);
  }

  // Sorting the encoded keys gives the reference order, for records and vectors alike.
  std::vector<Item> by_ref = items;
  std::stable_sort(by_ref.begin(), by_ref.end(), ref_less);
  std::vector<std::string> vkeys;
  for (const auto& it : items) vkeys.push_back(VectorKey(it.collection, it.id, it.field));
  std::sort(vkeys.begin(), vkeys.end(), BytewiseLess);
  ASSERT_EQ(vkeys.size(), by_ref.size());
  for (size_t i = 0; i < vkeys.size(); ++i) {
    ASSERT_OK_AND_ASSIGN(auto pv, ParseVectorKey(vkeys[i]));
    EXPECT_EQ(pv.collection, by_ref[i].collection);
    EXPECT_EQ(std::string(pv.id), by_ref[i].id);
    EXPECT_EQ(pv.field, by_ref[i].field);
    ASSERT_OK_AND_ASSIGN(auto pr, ParseRecordKey(pv.record));
    EXPECT_EQ(std::string(pr.id), by_ref[i].id);
    EXPECT_EQ(pr.collection, by_ref[i].collection);
  }
}

TEST(KeysTest, LayoutIsAsDocumented) {
  EXPECT_EQ(RecordKey(0x01020304, "ab"), std::string("\x01\x01\x02\x03\x04\x00\x02"
                                                     "ab",
                                                     9));
  EXPECT_EQ(VectorKey(0x01020304, "ab", 0x0506), std::string("\x01\x01\x02\x03\x04\x00\x02"
                                                             "ab\x05\x06",
                                                             11));
  EXPECT_EQ(internal::StatKey(7, "calib"), std::string("\x01\x00\x00\x00\x07"
                                                       "calib",
                                                       10));
  EXPECT_EQ(internal::CatalogKey("c"), std::string("\x01"
                                                   "c",
                                                   2));
  EXPECT_EQ(internal::CollectionPrefix(7), std::string("\x01\x00\x00\x00\x07", 5));
  EXPECT_EQ(internal::CollectionPrefixEnd(7), std::string("\x01\x00\x00\x00\x08", 5));
  EXPECT_EQ(internal::CollectionPrefixEnd(0xFFFFFFFF), std::string("\x02", 1));
  EXPECT_EQ(internal::PrefixSuccessor(std::string("a\xff\xff", 3)), "b");
  EXPECT_EQ(internal::PrefixSuccessor(std::string("\xff", 1)), "");
  // Internal catalog keys cannot collide with collection names (which start with 0x01).
  EXPECT_EQ(internal::kFormatVersionKey[0], '\0');
  EXPECT_EQ(internal::kNextCollectionIdKey[0], '\0');
}

TEST(KeysTest, MalformedKeysAreDataLoss) {
  EXPECT_STATUS_IS(ParseRecordKey(""), absl::StatusCode::kDataLoss, "malformed records key");
  EXPECT_STATUS_IS(ParseRecordKey(std::string("\x02\0\0\0\1\0\0", 7)), absl::StatusCode::kDataLoss,
                   "malformed");
  std::string k = RecordKey(1, "abc");
  EXPECT_STATUS_IS(ParseRecordKey(k + "x"), absl::StatusCode::kDataLoss, "id length 3");
  EXPECT_STATUS_IS(ParseRecordKey(k.substr(0, k.size() - 1)), absl::StatusCode::kDataLoss,
                   "id length 3");
  std::string v = VectorKey(1, "abc", 9);
  EXPECT_STATUS_IS(ParseVectorKey(v.substr(0, v.size() - 1)), absl::StatusCode::kDataLoss,
                   "malformed vectors key");
  EXPECT_STATUS_IS(ParseVectorKey(k), absl::StatusCode::kDataLoss, "malformed vectors key");
}

// --- vector values -------------------------------------------------------------------------------

uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float FromBits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

std::vector<float> SpecialFloats() {
  return {0.0f,
          -0.0f,
          1.0f,
          -1.5f,
          std::numeric_limits<float>::denorm_min(),
          -std::numeric_limits<float>::denorm_min(),
          FromBits(0x007FFFFF),  // largest denormal
          std::numeric_limits<float>::min(),
          std::numeric_limits<float>::max(),
          std::numeric_limits<float>::lowest(),
          std::numeric_limits<float>::infinity(),
          -std::numeric_limits<float>::infinity(),
          FromBits(0x7FC00001),  // quiet NaN with a payload
          FromBits(0xFFC12345),  // negative NaN with a payload
          3.14159265f};
}

TEST(KeysTest, VectorValueIsBitExactLittleEndianFloat32) {
  const std::vector<float> v = SpecialFloats();
  const std::string enc = internal::EncodeVectorValue(v);
  ASSERT_EQ(enc.size(), 1 + 4 * v.size());
  EXPECT_EQ(enc[0], '\x01');
  // 1.0f = 0x3F800000, little-endian at index 2.
  EXPECT_EQ(enc.substr(1 + 4 * 2, 4), std::string("\x00\x00\x80\x3f", 4));
  ASSERT_OK_AND_ASSIGN(auto dec, internal::DecodeVectorValue(enc));
  ASSERT_EQ(dec.size(), v.size());
  for (size_t i = 0; i < v.size(); ++i) EXPECT_EQ(Bits(dec[i]), Bits(v[i])) << i;

  ASSERT_OK_AND_ASSIGN(auto empty, internal::DecodeVectorValue(internal::EncodeVectorValue({})));
  EXPECT_TRUE(empty.empty());
}

TEST(KeysTest, DamagedVectorValuesAreDataLoss) {
  const std::string enc = internal::EncodeVectorValue(std::vector<float>{1, 2, 3});
  EXPECT_STATUS_IS(internal::DecodeVectorValue(""), absl::StatusCode::kDataLoss, "empty");
  EXPECT_STATUS_IS(internal::DecodeVectorValue(enc.substr(0, enc.size() - 1)),
                   absl::StatusCode::kDataLoss, "not a multiple of 4");
  std::string bad_version = enc;
  bad_version[0] = 0x02;
  EXPECT_STATUS_IS(internal::DecodeVectorValue(bad_version), absl::StatusCode::kDataLoss,
                   "unknown format version 2");
}

// --- catalog values ------------------------------------------------------------------------------

TEST(KeysTest, CollectionMetaRoundTripAndDamage) {
  CollectionMeta m{0xDEADBEEF, "pictures \xC3\xA9t\xC3\xA9", R"({"name":"x","fields":{}})"};
  const std::string enc = internal::EncodeCollectionMeta(m);
  ASSERT_OK_AND_ASSIGN(auto dec, internal::DecodeCollectionMeta(enc));
  EXPECT_EQ(dec.id, m.id);
  EXPECT_EQ(dec.name, m.name);
  EXPECT_EQ(dec.schema_json, m.schema_json);
  for (size_t n = 0; n < enc.size(); ++n) {
    SCOPED_TRACE(n);
    EXPECT_STATUS_IS(internal::DecodeCollectionMeta(enc.substr(0, n)), absl::StatusCode::kDataLoss,
                     "catalog entry");
  }
  EXPECT_STATUS_IS(internal::DecodeCollectionMeta(enc + "z"), absl::StatusCode::kDataLoss,
                   "trailing");
  EXPECT_STATUS_IS(internal::DecodeU32("abc", "counter"), absl::StatusCode::kDataLoss, "counter");
}

// --- RecordMeta ----------------------------------------------------------------------------------

// Bitwise equality (NaN == NaN with the same payload; -0.0 != 0.0).
void ExpectSameMeta(const RecordMeta& a, const RecordMeta& b) {
  ASSERT_EQ(a.weights.size(), b.weights.size());
  for (auto ia = a.weights.begin(), ib = b.weights.begin(); ia != a.weights.end(); ++ia, ++ib) {
    EXPECT_EQ(ia->first, ib->first);
    EXPECT_EQ(Bits(ia->second), Bits(ib->second)) << ia->first;
  }
  ASSERT_EQ(a.attributes.size(), b.attributes.size());
  for (auto ia = a.attributes.begin(), ib = b.attributes.begin(); ia != a.attributes.end();
       ++ia, ++ib) {
    EXPECT_EQ(ia->first, ib->first);
    ASSERT_EQ(ia->second.index(), ib->second.index()) << ia->first;
    if (const double* d = std::get_if<double>(&ia->second)) {
      uint64_t x, y;
      std::memcpy(&x, d, 8);
      std::memcpy(&y, &std::get<double>(ib->second), 8);
      EXPECT_EQ(x, y) << ia->first;
    } else {
      EXPECT_TRUE(ia->second == ib->second) << ia->first;
    }
  }
  EXPECT_EQ(a.provenance, b.provenance);
}

RecordMeta RichMeta() {
  RecordMeta m;
  m.weights = {{"caption", 0.5f},
               {"image", 1.0f},
               {"neg_zero", -0.0f},
               {"tiny", std::numeric_limits<float>::denorm_min()},
               {"big", std::numeric_limits<float>::max()},
               {"inf", std::numeric_limits<float>::infinity()},
               {"nan", FromBits(0x7FC0BEEF)},
               {"", 2.0f}};
  m.attributes = {
      {"title", std::string("Ünïcødé ✓ 日本語 🚀")},
      {"empty_string", std::string()},
      {"nul", std::string("a\0b", 3)},
      {"count", int64_t{42}},
      {"min", std::numeric_limits<int64_t>::min()},
      {"max", std::numeric_limits<int64_t>::max()},
      {"zero", int64_t{0}},
      {"score", 0.125},
      {"dneg0", -0.0},
      {"dden", std::numeric_limits<double>::denorm_min()},
      {"dmax", std::numeric_limits<double>::max()},
      {"dinf", -std::numeric_limits<double>::infinity()},
      {"dnan", std::numeric_limits<double>::quiet_NaN()},
      {"yes", true},
      {"no", false},
      {"tags", std::vector<std::string>{"a", "", "ß", std::string(300, 'x')}},
      {"no_tags", std::vector<std::string>{}},
      {std::string(200, 'k'), int64_t{-1}},
  };
  m.provenance.source = "flickr8k";
  m.provenance.collected_at = "2025-08-09T10:00:00Z";
  m.provenance.steps = {"resize 224", "center-crop", ""};
  m.provenance.dataset_version = "v1";
  m.provenance.encoder = "tinyclip-vit40m-32@laion400m";
  return m;
}

TEST(RecordMetaTest, RoundTripsEveryType) {
  const RecordMeta m = RichMeta();
  const std::string enc = EncodeRecordMeta(m);
  ASSERT_OK_AND_ASSIGN(RecordMeta dec, DecodeRecordMeta(enc));
  ExpectSameMeta(m, dec);
  EXPECT_EQ(EncodeRecordMeta(dec), enc);  // canonical: re-encoding is byte-identical.
}

TEST(RecordMetaTest, RoundTripsEmptyAndEachProvenanceMemberAlone) {
  RecordMeta empty;
  const std::string enc = EncodeRecordMeta(empty);
  // version, 0 weights, 0 attributes, 5 empty provenance members (one with a count).
  EXPECT_EQ(enc, std::string("\x01\x00\x00\x00\x00\x00\x00\x00", 8));
  ASSERT_OK_AND_ASSIGN(RecordMeta dec, DecodeRecordMeta(enc));
  ExpectSameMeta(empty, dec);
  EXPECT_TRUE(dec.provenance.empty());

  for (int member = 0; member < 5; ++member) {
    RecordMeta m;
    switch (member) {
      case 0:
        m.provenance.source = "s";
        break;
      case 1:
        m.provenance.collected_at = "t";
        break;
      case 2:
        m.provenance.steps = {"x"};
        break;
      case 3:
        m.provenance.dataset_version = "v";
        break;
      case 4:
        m.provenance.encoder = "e";
        break;
    }
    ASSERT_OK_AND_ASSIGN(RecordMeta d, DecodeRecordMeta(EncodeRecordMeta(m)));
    EXPECT_EQ(d.provenance, m.provenance) << member;
  }
}

TEST(RecordMetaTest, LongStringsUseMultiByteVarints) {
  RecordMeta m;
  m.attributes["blob"] = std::string(70000, '\xAB');
  m.provenance.steps.assign(200, "s");
  ASSERT_OK_AND_ASSIGN(RecordMeta d, DecodeRecordMeta(EncodeRecordMeta(m)));
  ExpectSameMeta(m, d);
}

TEST(RecordMetaTest, EveryTruncationIsDataLoss) {
  const std::string enc = EncodeRecordMeta(RichMeta());
  for (size_t n = 0; n < enc.size(); ++n) {
    auto r = DecodeRecordMeta(std::string_view(enc.data(), n));
    ASSERT_FALSE(r.ok()) << "prefix of " << n << " bytes decoded";
    EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
  }
}

TEST(RecordMetaTest, TrailingBytesVersionAndTagsAreChecked) {
  const std::string enc = EncodeRecordMeta(RichMeta());
  EXPECT_STATUS_IS(DecodeRecordMeta(enc + std::string(1, '\0')), absl::StatusCode::kDataLoss,
                   "1 trailing bytes");
  std::string v2 = enc;
  v2[0] = 0x02;
  EXPECT_STATUS_IS(DecodeRecordMeta(v2), absl::StatusCode::kDataLoss, "unknown format version 2");

  // Hand-built: one attribute "a" with tag 9.
  const std::string bad_tag(
      "\x01\x00\x01\x01"
      "a"
      "\x09",
      6);
  EXPECT_STATUS_IS(DecodeRecordMeta(bad_tag), absl::StatusCode::kDataLoss,
                   "unknown attribute type tag 9");
  // A bool stored as 2.
  const std::string bad_bool(
      "\x01\x00\x01\x01"
      "a"
      "\x03\x02"
      "\0\0\0\0\0",
      12);
  EXPECT_STATUS_IS(DecodeRecordMeta(bad_bool), absl::StatusCode::kDataLoss, "bool");
  // Two attributes out of order ("b" then "a"), both bool true.
  const std::string unordered(
      "\x01\x00\x02\x01"
      "b"
      "\x03\x01\x01"
      "a"
      "\x03\x01"
      "\0\0\0\0\0",
      16);
  EXPECT_STATUS_IS(DecodeRecordMeta(unordered), absl::StatusCode::kDataLoss, "out of order");
  // A duplicated weight.
  const std::string dup(
      "\x01\x02\x01"
      "w"
      "\0\0\x80\x3f"
      "\x01"
      "w"
      "\0\0\x80\x3f"
      "\0\0\0\0\0\0",
      20);
  EXPECT_STATUS_IS(DecodeRecordMeta(dup), absl::StatusCode::kDataLoss, "out of order");
  // A count far beyond the bytes present must not allocate: 2^40 weights.
  const std::string huge("\x01\x80\x80\x80\x80\x80\x20", 7);
  EXPECT_STATUS_IS(DecodeRecordMeta(huge), absl::StatusCode::kDataLoss, "exceeds");
  // A varint longer than 64 bits.
  const std::string overflow("\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 11);
  EXPECT_STATUS_IS(DecodeRecordMeta(overflow), absl::StatusCode::kDataLoss, "varint");
  // A non-canonical varint (0 written as two bytes).
  const std::string overlong("\x01\x80\x00\x00\x00\x00\x00\x00\x00\x00", 10);
  EXPECT_STATUS_IS(DecodeRecordMeta(overlong), absl::StatusCode::kDataLoss, "non-canonical");
}

// Random bytes and random mutations of valid encodings never crash the decoder; whatever it
// accepts is canonical (re-encodes to the same bytes), so acceptance is never "lossy".
TEST(RecordMetaTest, RandomGarbageNeverCrashesAndAcceptedBytesAreCanonical) {
  const uint64_t seed = testing::TestSeed(424242);
  SCOPED_TRACE(testing::SeedTrace(seed));
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> small(0, 48);
  const std::string valid = EncodeRecordMeta(RichMeta());
  int accepted = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::string bytes;
    if (iter % 2 == 0) {
      bytes.resize(small(rng));
      for (auto& c : bytes) c = static_cast<char>(byte(rng) % 8 == 0 ? 0 : byte(rng));
      if (!bytes.empty() && iter % 4 == 0) bytes[0] = 0x01;  // get past the version byte.
    } else {
      bytes = valid;
      const int flips = 1 + iter % 3;
      std::uniform_int_distribution<size_t> pos(0, bytes.size() - 1);
      for (int f = 0; f < flips; ++f) bytes[pos(rng)] = static_cast<char>(byte(rng));
    }
    auto r = DecodeRecordMeta(bytes);
    if (r.ok()) {
      ++accepted;
      ASSERT_EQ(EncodeRecordMeta(*r), bytes) << "iteration " << iter;
    } else {
      ASSERT_EQ(r.status().code(), absl::StatusCode::kDataLoss)
          << "iteration " << iter << ": " << r.status();
    }
  }
  // Mutations of string bytes or float bits stay valid, so some inputs must have been accepted:
  // otherwise the canonical check above never ran.
  EXPECT_GT(accepted, 0);
}

}  // namespace
}  // namespace rosetta::storage
