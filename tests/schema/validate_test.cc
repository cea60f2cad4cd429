#include "schema/validate.h"

#include <cmath>
#include <limits>

#include "tests/testing/testing.h"

namespace rosetta {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
constexpr auto kInvalid = absl::StatusCode::kInvalidArgument;

CollectionSchema TestSchema() {
  CollectionSchema s;
  s.name = "photos";
  s.spaces["clip"] = Space{"clip", 4, Metric::kCosine, "tinyclip@v1"};
  s.spaces["clap"] = Space{"clap", 3, Metric::kIp, "clap@v2"};
  s.spaces["euclid"] = Space{"euclid", 2, Metric::kL2, ""};
  s.fields["image"] = Field{"image", "clip", "image", 0.6f};
  s.fields["caption"] = Field{"caption", "clip", "text", 0.4f};
  s.fields["audio"] = Field{"audio", "clap", "audio", 1.0f};
  s.fields["point"] = Field{"point", "euclid", "xy", 1.0f};
  s.attributes["lang"] = AttributeType::kString;
  s.attributes["year"] = AttributeType::kInt;
  s.attributes["score"] = AttributeType::kFloat;
  s.attributes["ok"] = AttributeType::kBool;
  s.attributes["tags"] = AttributeType::kStringList;
  return s;
}

// ---------------------------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------------------------

TEST(ValidateSchemaTest, AcceptsAValidSchema) { EXPECT_OK(ValidateSchema(TestSchema())); }

TEST(ValidateSchemaTest, Names) {
  for (const char* ok : {"a", "_x", "Photos_2.v-1", "A9"}) {
    CollectionSchema s = TestSchema();
    s.name = ok;
    SCOPED_TRACE(ok);
    EXPECT_OK(ValidateSchema(s));
  }
  CollectionSchema s = TestSchema();
  s.name = std::string(128, 'a');
  EXPECT_OK(ValidateSchema(s));
  s.name = std::string(129, 'a');
  EXPECT_STATUS(ValidateSchema(s), kInvalid, "is 129 bytes long");
  s.name = "";
  EXPECT_STATUS(ValidateSchema(s), kInvalid, "schema: collection name \"\" is empty");
  for (const char* bad : {"9lives", "a b", "-x", ".x", "a/b", "caf\xC3\xA9", "x:y"}) {
    s.name = bad;
    EXPECT_STATUS(ValidateSchema(s), kInvalid, "is not a valid name");
  }
}

TEST(ValidateSchemaTest, SpaceErrors) {
  CollectionSchema s = TestSchema();
  s.spaces["clip"].dim = 0;
  EXPECT_STATUS(ValidateSchema(s), kInvalid, "space \"clip\": dim 0 is out of range 1..65536");
  s.spaces["clip"].dim = kMaxDim + 1;
  EXPECT_STATUS(ValidateSchema(s), kInvalid, "dim 65537 is out of range");
  s.spaces["clip"].dim = kMaxDim;
  EXPECT_OK(ValidateSchema(s));

  s = TestSchema();
  s.spaces["clip"].name = "clap";
  EXPECT_STATUS(ValidateSchema(s), kInvalid, "space \"clip\": its name is \"clap\"");

  s = TestSchema();
  s.spaces["clip"].metric = static_cast<Metric>(42);
  EXPECT_STATUS(ValidateSchema(s), kInvalid, "space \"clip\": unknown metric 42");

  s = TestSchema();
  s.spaces["clip"].encoder = "bad\x01";
  EXPECT_STATUS(ValidateSchema(s), kInvalid, "space \"clip\": encoder: control character U+0001");

  s = TestSchema();
  s.spaces["bad name"] = Space{"bad name", 3, Metric::kIp, ""};
  EXPECT_STATUS(ValidateSchema(s), kInvalid, "space name \"bad name\" is not a valid name");
}

TEST(ValidateSchemaTest, FieldErrors) {
  CollectionSchema s = TestSchema();
  s.fields.clear();
  EXPECT_STATUS(ValidateSchema(s), kInvalid, "at least one field is required");

  s = TestSchema();
  s.fields["image"].space = "nope";
  EXPECT_STATUS(ValidateSchema(s), kInvalid,
                "field \"image\": unknown space \"nope\" (spaces: clap, clip, euclid)");
  s.fields["image"].space = "";
  EXPECT_STATUS(ValidateSchema(s), kInvalid, "field \"image\": space is required");

  s = TestSchema();
  s.fields["image"].modality = "";
  EXPECT_STATUS(ValidateSchema(s), kInvalid, "field \"image\": modality is required");

  s = TestSchema();
  s.fields["image"].name = "img";
  EXPECT_STATUS(ValidateSchema(s), kInvalid, "field \"image\": its name is \"img\"");

  s = TestSchema();
  s.fields["image"].weight = -0.5f;
  EXPECT_STATUS(ValidateSchema(s), kInvalid, "field \"image\": weight -0.5 is negative");
  s.fields["image"].weight = std::numeric_limits<float>::quiet_NaN();
  EXPECT_STATUS(ValidateSchema(s), kInvalid, "field \"image\": weight is NaN");
  s.fields["image"].weight = std::numeric_limits<float>::infinity();
  EXPECT_STATUS(ValidateSchema(s), kInvalid, "field \"image\": weight is infinite");
  s.fields["image"].weight = 2e9f;
  EXPECT_STATUS(ValidateSchema(s), kInvalid,
                "field \"image\": weight 2e+09 exceeds the maximum 1e+09");
  s.fields["image"].weight = 0;
  EXPECT_OK(ValidateSchema(s));

  s = TestSchema();
  s.fields["x y"] = Field{"x y", "clip", "text", 1};
  EXPECT_STATUS(ValidateSchema(s), kInvalid, "field name \"x y\" is not a valid name");
}

TEST(ValidateSchemaTest, AttributeErrors) {
  CollectionSchema s = TestSchema();
  s.attributes["9x"] = AttributeType::kInt;
  EXPECT_STATUS(ValidateSchema(s), kInvalid, "attribute name \"9x\" is not a valid name");
  s = TestSchema();
  s.attributes["x"] = static_cast<AttributeType>(9);
  EXPECT_STATUS(ValidateSchema(s), kInvalid, "attribute \"x\": unknown type 9");
}

// ---------------------------------------------------------------------------------------------
// Vectors
// ---------------------------------------------------------------------------------------------

TEST(ValidateVectorTest, DimensionAndFiniteness) {
  const Space clip{"clip", 4, Metric::kCosine, ""};
  std::vector<float> v = {1, 2, 3, 4};
  EXPECT_OK(ValidateVector(clip, v, "x"));
  std::vector<float> short_v = {1, 2, 3};
  EXPECT_STATUS(ValidateVector(clip, short_v, "record \"p7\": field \"image\""), kInvalid,
                "record \"p7\": field \"image\": expected 4 components (space \"clip\"), got 3");
  v[3] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_STATUS(ValidateVector(clip, v, "record \"p7\": field \"image\""), kInvalid,
                "record \"p7\": field \"image\": component 3 is NaN");
  v[3] = -std::numeric_limits<float>::infinity();
  EXPECT_STATUS(ValidateVector(clip, v, "w"), kInvalid, "w: component 3 is -inf");
  v[3] = std::numeric_limits<float>::infinity();
  EXPECT_STATUS(ValidateVector(clip, v, "w"), kInvalid, "w: component 3 is +inf");
  v[3] = 2e16f;
  EXPECT_STATUS(ValidateVector(clip, v, "w"), kInvalid, "component 3 is 2e+16, beyond the largest");
  v[3] = -1e16f;
  EXPECT_OK(ValidateVector(clip, v, "w"));
}

TEST(ValidateVectorTest, ZeroVectorOnlyRejectedForCosine) {
  std::vector<float> zero = {0, 0, 0, 0};
  EXPECT_STATUS(ValidateVector(Space{"clip", 4, Metric::kCosine, ""}, zero, "q"), kInvalid,
                "q: is a zero vector (space \"clip\" uses cosine");
  EXPECT_OK(ValidateVector(Space{"s", 4, Metric::kIp, ""}, zero, "q"));
  EXPECT_OK(ValidateVector(Space{"s", 4, Metric::kL2, ""}, zero, "q"));
  // Tiny but non-zero is fine: the norm is accumulated in double.
  std::vector<float> tiny = {1e-30f, 0, 0, 0};
  EXPECT_OK(ValidateVector(Space{"clip", 4, Metric::kCosine, ""}, tiny, "q"));
}

TEST(NormalizeInPlaceTest, UnitNorm) {
  std::vector<float> v = {3, 4};
  NormalizeInPlace(v);
  EXPECT_FLOAT_EQ(v[0], 0.6f);
  EXPECT_FLOAT_EQ(v[1], 0.8f);
  std::vector<float> tiny = {1e-30f, 1e-30f};
  NormalizeInPlace(tiny);
  EXPECT_NEAR(tiny[0], std::sqrt(0.5f), 1e-6);
  std::vector<float> big = {1e16f, 1e16f, 1e16f, 1e16f};
  NormalizeInPlace(big);
  EXPECT_FLOAT_EQ(big[0], 0.5f);
}

// ---------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------

Record GoodRecord() {
  Record r;
  r.id = "p7";
  r.vectors["image"] = {0, 3, 0, 4};
  r.vectors["audio"] = {1, 2, 3};
  r.vectors["point"] = {5, 6};
  r.weights["caption"] = 0.5f;
  r.attributes["lang"] = std::string("en");
  r.attributes["year"] = int64_t{2020};
  r.attributes["score"] = 0.25;
  r.attributes["ok"] = true;
  r.attributes["tags"] = std::vector<std::string>{"a", "b"};
  r.provenance.source = "flickr8k";
  r.provenance.collected_at = "2025-08-09T10:00:00Z";
  r.provenance.steps = {"resize 224"};
  return r;
}

TEST(ValidateRecordTest, AcceptsAndNormalisesCosineOnly) {
  Record r = GoodRecord();
  ASSERT_OK(ValidateAndNormalizeRecord(TestSchema(), r));
  EXPECT_THAT(r.vectors["image"], ElementsAre(0, 0.6f, 0, 0.8f));  // cosine: normalised.
  EXPECT_THAT(r.vectors["audio"], ElementsAre(1, 2, 3));           // ip: untouched.
  EXPECT_THAT(r.vectors["point"], ElementsAre(5, 6));              // l2: untouched.
}

TEST(ValidateRecordTest, IdRules) {
  const CollectionSchema schema = TestSchema();
  Record r = GoodRecord();
  r.id = "";
  EXPECT_STATUS(ValidateAndNormalizeRecord(schema, r), kInvalid, "record id is empty");
  r.id = std::string(kMaxIdBytes, 'x');
  EXPECT_OK(ValidateAndNormalizeRecord(schema, r));
  r.id = std::string(kMaxIdBytes + 1, 'x');
  EXPECT_STATUS(ValidateAndNormalizeRecord(schema, r), kInvalid,
                "is 1025 bytes long (at most 1024)");
  r.id = "bad\x07id";
  EXPECT_STATUS(ValidateAndNormalizeRecord(schema, r), kInvalid,
                "record id \"bad\\u0007id\": control character U+0007 at byte 3");
  r.id = "bad\xFFid";
  EXPECT_STATUS(ValidateAndNormalizeRecord(schema, r), kInvalid,
                "record id \"bad\\xFFid\": invalid UTF-8 at byte 3");
  r.id = "caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC / any text";  // any UTF-8 is fine.
  EXPECT_OK(ValidateAndNormalizeRecord(schema, r));
  r.id = "\xC2\x85";  // U+0085 (NEL) is a C1 control character.
  EXPECT_STATUS(ValidateAndNormalizeRecord(schema, r), kInvalid, "control character U+0085");
  r.id = "\xED\xA0\x80";  // a UTF-16 surrogate encoded in UTF-8 is not valid UTF-8.
  EXPECT_STATUS(ValidateAndNormalizeRecord(schema, r), kInvalid, "invalid UTF-8 at byte 0");
  r.id = "\xC0\xAF";  // overlong "/".
  EXPECT_STATUS(ValidateAndNormalizeRecord(schema, r), kInvalid, "invalid UTF-8 at byte 0");
}

TEST(ValidateRecordTest, FieldAndVectorErrors) {
  const CollectionSchema schema = TestSchema();
  Record r = GoodRecord();
  r.vectors["video"] = {1};
  EXPECT_STATUS(ValidateAndNormalizeRecord(schema, r), kInvalid,
                "record \"p7\": unknown field \"video\" (fields: audio, caption, image, point)");
  r = GoodRecord();
  r.vectors["image"] = {1, 2, 3};
  EXPECT_STATUS(ValidateAndNormalizeRecord(schema, r), kInvalid,
                "record \"p7\": field \"image\": expected 4 components (space \"clip\"), got 3");
  r = GoodRecord();
  r.vectors["image"][3] = std::nanf("");
  EXPECT_STATUS(ValidateAndNormalizeRecord(schema, r), kInvalid,
                "record \"p7\": field \"image\": component 3 is NaN");
  r = GoodRecord();
  r.vectors["image"] = {0, 0, 0, 0};
  EXPECT_STATUS(ValidateAndNormalizeRecord(schema, r), kInvalid,
                "record \"p7\": field \"image\": is a zero vector");
}

TEST(ValidateRecordTest, FailedValidationDoesNotNormalise) {
  Record r = GoodRecord();
  r.attributes["year"] = std::string("x");  // invalid, checked after the vectors.
  EXPECT_STATUS(ValidateAndNormalizeRecord(TestSchema(), r), kInvalid, "attribute \"year\"");
  EXPECT_THAT(r.vectors["image"], ElementsAre(0, 3, 0, 4));
}

TEST(ValidateRecordTest, WeightErrors) {
  const CollectionSchema schema = TestSchema();
  Record r = GoodRecord();
  r.weights["nope"] = 1;
  EXPECT_STATUS(ValidateAndNormalizeRecord(schema, r), kInvalid,
                "record \"p7\": weights: unknown field \"nope\"");
  r = GoodRecord();
  r.weights["image"] = -1;
  EXPECT_STATUS(ValidateAndNormalizeRecord(schema, r), kInvalid,
                "record \"p7\": weights: field \"image\": weight -1 is negative");
  r.weights["image"] = std::numeric_limits<float>::infinity();
  EXPECT_STATUS(ValidateAndNormalizeRecord(schema, r), kInvalid,
                "record \"p7\": weights: field \"image\": weight is infinite");
  r.weights["image"] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_STATUS(ValidateAndNormalizeRecord(schema, r), kInvalid, "field \"image\": weight is NaN");
}

TEST(ValidateRecordTest, AttributeTypes) {
  const CollectionSchema schema = TestSchema();
  Record r = GoodRecord();
  r.attributes["colour"] = std::string("red");
  EXPECT_STATUS(ValidateAndNormalizeRecord(schema, r), kInvalid,
                "record \"p7\": attribute \"colour\" is not declared in the schema");

  struct Case {
    const char* name;
    AttributeValue value;
    const char* message;  // nullptr = accepted.
  };
  const std::vector<Case> cases = {
      {"lang", std::string("en"), nullptr},
      {"lang", int64_t{1}, "attribute \"lang\": expected a value of type string, got int"},
      {"year", int64_t{-5}, nullptr},
      {"year", 2020.0, "attribute \"year\": expected a value of type int, got float"},
      {"year", std::string("2020"), "expected a value of type int, got string"},
      {"score", 1.5, nullptr},
      {"score", int64_t{3}, nullptr},  // int accepted for float (converted).
      {"score", std::numeric_limits<double>::infinity(),
       "attribute \"score\": value is not finite"},
      {"score", std::numeric_limits<double>::quiet_NaN(), "value is not finite"},
      {"score", true, "expected a value of type float, got bool"},
      {"ok", false, nullptr},
      {"ok", int64_t{1}, "attribute \"ok\": expected a value of type bool, got int"},
      {"tags", std::vector<std::string>{}, nullptr},
      {"tags", std::string("a"),
       "attribute \"tags\": expected a value of type string[], got string"},
      {"tags", std::vector<std::string>{"ok", "bad\xFF"},
       "attribute \"tags\": element 1: invalid UTF-8"},
      {"lang", std::string("\xC3"), "attribute \"lang\": invalid UTF-8 at byte 0"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Record rec = GoodRecord();
    rec.attributes[c.name] = c.value;
    absl::Status s = ValidateAndNormalizeRecord(schema, rec);
    if (c.message == nullptr) {
      EXPECT_OK(s);
    } else {
      EXPECT_STATUS(s, kInvalid, c.message);
    }
  }
  Record rec = GoodRecord();
  rec.attributes["score"] = int64_t{3};
  ASSERT_OK(ValidateAndNormalizeRecord(schema, rec));
  ASSERT_TRUE(std::holds_alternative<double>(rec.attributes["score"]));
  EXPECT_EQ(std::get<double>(rec.attributes["score"]), 3.0);
}

TEST(ValidateRecordTest, Provenance) {
  const CollectionSchema schema = TestSchema();
  Record r = GoodRecord();
  r.provenance.collected_at = "yesterday";
  EXPECT_STATUS(
      ValidateAndNormalizeRecord(schema, r), kInvalid,
      "record \"p7\": provenance.collected_at: \"yesterday\" is not an RFC 3339 timestamp");
  r.provenance.collected_at = "";  // not given: fine.
  EXPECT_OK(ValidateAndNormalizeRecord(schema, r));
  r.provenance.steps = {"ok", "bad\xFE"};
  EXPECT_STATUS(ValidateAndNormalizeRecord(schema, r), kInvalid,
                "record \"p7\": provenance.steps[1]: invalid UTF-8 at byte 3");
  r = GoodRecord();
  r.provenance.source = "\xC3";
  EXPECT_STATUS(ValidateAndNormalizeRecord(schema, r), kInvalid,
                "record \"p7\": provenance.source: invalid UTF-8");
}

// ---------------------------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------------------------

SearchRequest GoodQuery() {
  SearchRequest q;
  q.k = 5;
  QueryInput in;
  in.vector = {0, 0, 3, 4};
  in.space = "clip";
  in.modality = "text";
  in.fields = {"image"};
  q.inputs.push_back(in);
  return q;
}

TEST(ValidateQueryTest, AcceptsAndNormalises) {
  SearchRequest q = GoodQuery();
  ASSERT_OK(ValidateAndNormalizeQuery(TestSchema(), q));
  EXPECT_THAT(q.inputs[0].vector, ElementsAre(0, 0, 0.6f, 0.8f));
  EXPECT_THAT(q.inputs[0].fields, ElementsAre("image"));
}

TEST(ValidateQueryTest, EmptyFieldsAreFilledInNameOrder) {
  SearchRequest q = GoodQuery();
  q.inputs[0].fields.clear();
  QueryInput audio;
  audio.vector = {1, 2, 3};
  audio.space = "clap";
  q.inputs.push_back(audio);
  ASSERT_OK(ValidateAndNormalizeQuery(TestSchema(), q));
  EXPECT_THAT(q.inputs[0].fields, ElementsAre("caption", "image"));
  EXPECT_THAT(q.inputs[1].fields, ElementsAre("audio"));
  EXPECT_THAT(q.inputs[1].vector, ElementsAre(1, 2, 3));  // ip space: not normalised.
}

TEST(ValidateQueryTest, KAndInputs) {
  const CollectionSchema schema = TestSchema();
  SearchRequest q = GoodQuery();
  q.k = 0;
  EXPECT_STATUS(ValidateAndNormalizeQuery(schema, q), kInvalid,
                "query: k must be in 1..10000, got 0");
  q.k = kMaxK + 1;
  EXPECT_STATUS(ValidateAndNormalizeQuery(schema, q), kInvalid, "got 10001");
  q.k = kMaxK;
  EXPECT_OK(ValidateAndNormalizeQuery(schema, q));
  q = GoodQuery();
  q.inputs.clear();
  EXPECT_STATUS(ValidateAndNormalizeQuery(schema, q), kInvalid,
                "query: at least one input is required");
}

TEST(ValidateQueryTest, InputErrors) {
  const CollectionSchema schema = TestSchema();
  SearchRequest q = GoodQuery();
  q.inputs[0].space = "";
  EXPECT_STATUS(ValidateAndNormalizeQuery(schema, q), kInvalid,
                "query: inputs[0]: space is required");
  q.inputs[0].space = "vit";
  EXPECT_STATUS(ValidateAndNormalizeQuery(schema, q), kInvalid,
                "query: inputs[0]: unknown space \"vit\" (spaces: clap, clip, euclid)");
  q = GoodQuery();
  q.inputs[0].vector = {1, 2};
  EXPECT_STATUS(ValidateAndNormalizeQuery(schema, q), kInvalid,
                "query: inputs[0].vector: expected 4 components (space \"clip\"), got 2");
  q = GoodQuery();
  q.inputs[0].vector[1] = std::nanf("");
  EXPECT_STATUS(ValidateAndNormalizeQuery(schema, q), kInvalid,
                "query: inputs[0].vector: component 1 is NaN");
  q = GoodQuery();
  q.inputs[0].vector = {0, 0, 0, 0};
  EXPECT_STATUS(ValidateAndNormalizeQuery(schema, q), kInvalid,
                "query: inputs[0].vector: is a zero vector");
  q = GoodQuery();
  q.inputs[0].weight = -1;
  EXPECT_STATUS(ValidateAndNormalizeQuery(schema, q), kInvalid,
                "query: inputs[0]: weight -1 is negative");
  q.inputs[0].weight = std::numeric_limits<float>::infinity();
  EXPECT_STATUS(ValidateAndNormalizeQuery(schema, q), kInvalid,
                "query: inputs[0]: weight is infinite");
  q = GoodQuery();
  q.inputs[0].modality = "te\nxt";
  EXPECT_STATUS(ValidateAndNormalizeQuery(schema, q), kInvalid,
                "query: inputs[0]: modality: control character U+000A");
}

TEST(ValidateQueryTest, FieldTargeting) {
  const CollectionSchema schema = TestSchema();
  SearchRequest q = GoodQuery();
  q.inputs[0].fields = {"video"};
  EXPECT_STATUS(ValidateAndNormalizeQuery(schema, q), kInvalid,
                "query: inputs[0]: unknown field \"video\"");
  q.inputs[0].fields = {"audio"};
  EXPECT_STATUS(ValidateAndNormalizeQuery(schema, q), kInvalid,
                "query: inputs[0]: field \"audio\" is in space \"clap\", not \"clip\"");
  q.inputs[0].fields = {"image", "image"};
  EXPECT_STATUS(ValidateAndNormalizeQuery(schema, q), kInvalid,
                "query: inputs[0]: field \"image\" is listed twice");

  // Two inputs targeting the same field, explicitly or through an empty list.
  q = GoodQuery();
  q.inputs.push_back(q.inputs[0]);
  EXPECT_STATUS(ValidateAndNormalizeQuery(schema, q), kInvalid,
                "query: inputs[1]: field \"image\" is already targeted by inputs[0]");
  q.inputs[1].fields.clear();
  EXPECT_STATUS(ValidateAndNormalizeQuery(schema, q), kInvalid,
                "query: inputs[1]: field \"image\" is already targeted by inputs[0]");
  q.inputs[1].fields = {"caption"};
  EXPECT_OK(ValidateAndNormalizeQuery(schema, q));

  // A space without fields cannot be searched.
  CollectionSchema lonely = schema;
  lonely.spaces["empty"] = Space{"empty", 2, Metric::kIp, ""};
  SearchRequest e;
  e.inputs.push_back(QueryInput{{1, 2}, "empty", "", {}, 1.0f});
  EXPECT_STATUS(ValidateAndNormalizeQuery(lonely, e), kInvalid,
                "query: inputs[0]: space \"empty\" has no fields");
}

TEST(ValidateQueryTest, FailedValidationLeavesRequestUntouched) {
  SearchRequest q = GoodQuery();
  q.inputs[0].fields.clear();
  q.weights["audio"] = 1;  // not targeted: error after the inputs were processed.
  EXPECT_STATUS(ValidateAndNormalizeQuery(TestSchema(), q), kInvalid,
                "query: weights: field \"audio\" is not targeted by any input");
  EXPECT_TRUE(q.inputs[0].fields.empty());
  EXPECT_THAT(q.inputs[0].vector, ElementsAre(0, 0, 3, 4));
}

TEST(ValidateQueryTest, QueryWeights) {
  const CollectionSchema schema = TestSchema();
  SearchRequest q = GoodQuery();
  q.weights["nope"] = 1;
  EXPECT_STATUS(ValidateAndNormalizeQuery(schema, q), kInvalid,
                "query: weights: unknown field \"nope\"");
  q = GoodQuery();
  q.weights["image"] = -2;
  EXPECT_STATUS(ValidateAndNormalizeQuery(schema, q), kInvalid,
                "query: weights: field \"image\": weight -2 is negative");
  q.weights["image"] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_STATUS(ValidateAndNormalizeQuery(schema, q), kInvalid,
                "query: weights: field \"image\": weight is NaN");
  q.weights["image"] = 0;
  EXPECT_OK(ValidateAndNormalizeQuery(schema, q));
}

TEST(ValidateQueryTest, EnumsOutOfRange) {
  const CollectionSchema schema = TestSchema();
  SearchRequest q = GoodQuery();
  q.fusion = static_cast<Fusion>(9);
  EXPECT_STATUS(ValidateAndNormalizeQuery(schema, q), kInvalid, "query: unknown fusion 9");
  q = GoodQuery();
  q.normalize = static_cast<Normalize>(9);
  EXPECT_STATUS(ValidateAndNormalizeQuery(schema, q), kInvalid, "query: unknown normalize 9");
  q = GoodQuery();
  q.missing = static_cast<Missing>(9);
  EXPECT_STATUS(ValidateAndNormalizeQuery(schema, q), kInvalid, "query: unknown missing policy 9");
}

Predicate Attr(const std::string& key, FilterOp op, std::vector<FilterValue> values) {
  return Predicate{Predicate::Target::kAttribute, key, op, std::move(values)};
}
Predicate Prov(const std::string& key, FilterOp op, std::vector<FilterValue> values) {
  return Predicate{Predicate::Target::kProvenance, key, op, std::move(values)};
}

TEST(ValidateQueryTest, Filters) {
  const CollectionSchema schema = TestSchema();
  struct Case {
    Predicate pred;
    const char* message;  // nullptr = accepted.
  };
  const std::string ts = "2025-01-01T00:00:00Z";
  const std::vector<Case> cases = {
      {Attr("lang", FilterOp::kEq, {std::string("en")}), nullptr},
      {Attr("lang", FilterOp::kGte, {std::string("en")}), nullptr},  // strings order bytewise.
      {Attr("lang", FilterOp::kEq, {int64_t{1}}),
       "query: filter: attribute \"lang\": eq: expected a string, got int 1"},
      {Attr("colour", FilterOp::kEq, {std::string("red")}),
       "query: filter: attribute \"colour\" is not declared in the schema"},
      {Attr("year", FilterOp::kGte, {int64_t{2020}}), nullptr},
      {Attr("year", FilterOp::kLt, {2020.5}), nullptr},  // int vs float: compatible.
      {Attr("score", FilterOp::kGt, {int64_t{1}}), nullptr},
      {Attr("year", FilterOp::kEq, {std::string("2020")}),
       "attribute \"year\": eq: expected a number, got string \"2020\""},
      {Attr("score", FilterOp::kEq, {std::numeric_limits<double>::infinity()}),
       "attribute \"score\": eq: value is not finite"},
      {Attr("ok", FilterOp::kEq, {true}), nullptr},
      {Attr("ok", FilterOp::kEq, {int64_t{1}}), "attribute \"ok\": eq: expected a bool, got int 1"},
      {Attr("ok", FilterOp::kGt, {false}),
       "attribute \"ok\": gt: order comparisons are not defined on a bool"},
      {Attr("tags", FilterOp::kEq, {std::string("a")}), nullptr},
      {Attr("tags", FilterOp::kIn, {std::string("a"), std::string("b")}), nullptr},
      {Attr("tags", FilterOp::kNe, {std::string("a")}), nullptr},
      {Attr("tags", FilterOp::kLt, {std::string("a")}),
       "attribute \"tags\": lt: order comparisons are not defined on a list"},
      {Attr("tags", FilterOp::kIn, {std::string("a"), int64_t{2}}),
       "attribute \"tags\": in[1]: expected a string, got int 2"},
      {Attr("lang", FilterOp::kIn, {}), "attribute \"lang\": in: needs at least one value"},
      {Attr("lang", FilterOp::kEq, {}), "attribute \"lang\": eq: needs exactly one value, got 0"},
      {Attr("lang", FilterOp::kNe, {std::string("a"), std::string("b")}),
       "attribute \"lang\": ne: needs exactly one value, got 2"},
      {Attr("lang", static_cast<FilterOp>(42), {std::string("a")}),
       "attribute \"lang\": unknown operator 42"},
      {Prov("source", FilterOp::kEq, {std::string("flickr8k")}), nullptr},
      {Prov("dataset_version", FilterOp::kIn, {std::string("v1"), std::string("v2")}), nullptr},
      {Prov("encoder", FilterOp::kNe, {std::string("x")}), nullptr},
      {Prov("steps", FilterOp::kEq, {std::string("resize 224")}), nullptr},
      {Prov("steps", FilterOp::kGt, {std::string("a")}),
       "provenance \"steps\": gt: order comparisons are not defined on a list"},
      {Prov("collected_at", FilterOp::kGte, {ts}), nullptr},
      {Prov("collected_at", FilterOp::kLt, {std::string("2025-01-01T00:00:00+02:00")}), nullptr},
      {Prov("collected_at", FilterOp::kGte, {std::string("last week")}),
       "provenance \"collected_at\": gte: \"last week\" is not an RFC 3339 timestamp"},
      {Prov("collected_at", FilterOp::kIn, {ts, std::string("2025-13-01T00:00:00Z")}),
       "provenance \"collected_at\": in[1]: \"2025-13-01T00:00:00Z\" is not an RFC 3339"},
      {Prov("collected_at", FilterOp::kEq, {int64_t{5}}),
       "provenance \"collected_at\": eq: expected a string, got int 5"},
      {Prov("source", FilterOp::kEq, {true}),
       "provenance \"source\": eq: expected a string, got bool true"},
      {Prov("colour", FilterOp::kEq, {std::string("x")}),
       "query: filter: provenance \"colour\" is not a provenance member (expected one of: source, "
       "collected_at, steps, dataset_version, encoder)"},
      {Predicate{static_cast<Predicate::Target>(7), "lang", FilterOp::kEq, {std::string("x")}},
       "has an unknown target 7"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(absl::StrCat("case ", i, ": ", cases[i].pred.key));
    SearchRequest q = GoodQuery();
    q.filter.predicates.push_back(cases[i].pred);
    absl::Status s = ValidateAndNormalizeQuery(schema, q);
    if (cases[i].message == nullptr) {
      EXPECT_OK(s);
    } else {
      EXPECT_STATUS(s, kInvalid, cases[i].message);
    }
  }
}

TEST(ValidateQueryTest, HasFields) {
  const CollectionSchema schema = TestSchema();
  SearchRequest q = GoodQuery();
  q.filter.has_fields = {"caption", "audio"};  // any known field, targeted or not.
  EXPECT_OK(ValidateAndNormalizeQuery(schema, q));
  q.filter.has_fields = {"video"};
  EXPECT_STATUS(ValidateAndNormalizeQuery(schema, q), kInvalid,
                "query: filter: has_fields: unknown field \"video\"");
}

}  // namespace
}  // namespace rosetta
