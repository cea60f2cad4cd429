#include "schema/json.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "schema/validate.h"
#include "tests/testing/testing.h"

namespace rosetta {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
constexpr auto kInvalid = absl::StatusCode::kInvalidArgument;

Json MustParse(const std::string& text) {
  absl::StatusOr<Json> j = ParseJsonText(text, "test");
  EXPECT_TRUE(j.ok()) << j.status();
  return j.ok() ? *j : Json();
}

// ---------------------------------------------------------------------------------------------
// ParseJsonText
// ---------------------------------------------------------------------------------------------

TEST(ParseJsonTextTest, ParsesAndKeepsKeyOrder) {
  ASSERT_OK_AND_ASSIGN(Json j, ParseJsonText(R"({"b": 1, "a": [true, null, "x"]})", "doc"));
  EXPECT_EQ(DumpJson(j), R"({"b":1,"a":[true,null,"x"]})");
}

TEST(ParseJsonTextTest, MalformedNamesWhatAndByte) {
  EXPECT_STATUS(ParseJsonText(R"({"id": "p1", oops})", "line 7"), kInvalid,
                "line 7: malformed JSON at byte 14: syntax error while parsing object key");
  EXPECT_STATUS(ParseJsonText("", "line 3"), kInvalid, "line 3: malformed JSON");
  EXPECT_STATUS(ParseJsonText("{} {}", "line 1"), kInvalid, "line 1: malformed JSON at byte 4");
  EXPECT_STATUS(ParseJsonText("[1, 2,]", "x"), kInvalid, "x: malformed JSON at byte 7");
  EXPECT_STATUS(ParseJsonText("{\"a\": NaN}", "x"), kInvalid, "x: malformed JSON at byte 7");
  // Multi-line documents also get a line and column.
  EXPECT_STATUS(ParseJsonText("{\n  \"name\": \"x\",\n  oops\n}", "schema file"), kInvalid,
                "schema file: malformed JSON at byte 20 (line 3, column 3): syntax error");
  // Invalid UTF-8 inside a string is malformed JSON.
  EXPECT_STATUS(ParseJsonText("{\"id\": \"\xFF\"}", "line 2"), kInvalid, "line 2: malformed JSON");
}

TEST(ParseJsonTextTest, RejectsDuplicateKeysWithPath) {
  EXPECT_STATUS(ParseJsonText(R"({"k": 1, "k": 2})", "query file"), kInvalid,
                "query file: duplicate key \"k\" at k");
  EXPECT_STATUS(ParseJsonText(R"({"inputs": [{"space": "a"}, {"space": "a", "space": "b"}]})", "q"),
                kInvalid, "q: duplicate key \"space\" at inputs[1].space");
  // The same key in sibling objects is fine.
  EXPECT_OK(ParseJsonText(R"([{"a": 1}, {"a": 2}, {"b": {"a": 3}}])", "q"));
}

TEST(ParseJsonTextTest, RejectsDeepNesting) {
  std::string deep(65, '[');
  deep += std::string(65, ']');
  EXPECT_STATUS(ParseJsonText(deep, "x"), kInvalid, "x: nesting deeper than 64 levels");
  std::string ok(64, '[');
  ok += std::string(64, ']');
  EXPECT_OK(ParseJsonText(ok, "x"));
  // Very deep input is rejected without recursion trouble.
  std::string huge(1000000, '[');
  EXPECT_STATUS(ParseJsonText(huge, "x"), kInvalid, "nesting deeper than 64 levels");
}

TEST(DumpJsonTest, NeverThrowsOnInvalidUtf8) {
  Json j = Json::object();
  j["id"] = std::string("bad\xFF");
  std::string out;
  EXPECT_NO_THROW(out = DumpJson(j));
  EXPECT_EQ(out, "{\"id\":\"bad\xEF\xBF\xBD\"}");  // U+FFFD.
}

// ---------------------------------------------------------------------------------------------
// FloatToJson
// ---------------------------------------------------------------------------------------------

TEST(FloatToJsonTest, ShortestForm) {
  EXPECT_EQ(DumpJson(FloatToJson(0.1f)), "0.1");
  EXPECT_EQ(DumpJson(FloatToJson(0.6f)), "0.6");
  EXPECT_EQ(DumpJson(FloatToJson(-1.5f)), "-1.5");
  EXPECT_EQ(DumpJson(FloatToJson(1.0f)), "1.0");
  EXPECT_EQ(DumpJson(FloatToJson(0.0f)), "0.0");
  EXPECT_EQ(DumpJson(FloatToJson(1e-7f)), "1e-07");
  EXPECT_EQ(DumpJson(FloatToJson(0.33333334f)), "0.33333334");
  EXPECT_EQ(DumpJson(FloatToJson(16777216.0f)), "16777216.0");
  EXPECT_EQ(DumpJson(FloatToJson(std::numeric_limits<float>::quiet_NaN())), "null");
  EXPECT_EQ(DumpJson(FloatToJson(std::numeric_limits<float>::infinity())), "null");
  EXPECT_EQ(DumpJson(FloatToJson(-std::numeric_limits<float>::infinity())), "null");
}

float ParseBackAsFloat(const std::string& text) {
  double d = 0;
  std::from_chars(text.data(), text.data() + text.size(), d);
  return static_cast<float>(d);
}

TEST(FloatToJsonTest, RoundTripsEveryKindOfFloat) {
  const uint64_t seed = testing::TestSeed(20250809);
  SCOPED_TRACE(testing::SeedTrace(seed));
  std::mt19937_64 rng(seed);
  std::vector<float> values = {std::numeric_limits<float>::max(),
                               std::numeric_limits<float>::lowest(),
                               std::numeric_limits<float>::min(),
                               std::numeric_limits<float>::denorm_min(),
                               -0.0f,
                               1.0f / 3,
                               0.2f,
                               123456.789f};
  for (int i = 0; i < 200000; ++i) {
    // Random bit patterns cover every exponent; skip NaN/inf.
    uint32_t bits = static_cast<uint32_t>(rng());
    float f;
    std::memcpy(&f, &bits, sizeof(f));
    if (std::isfinite(f)) values.push_back(f);
  }
  std::uniform_real_distribution<float> unit(-1, 1);
  for (int i = 0; i < 100000; ++i) values.push_back(unit(rng));  // embedding-like values.
  // Significant digits of a decimal text: leading and trailing zeros of the mantissa dropped.
  const auto significant = [](std::string_view t) {
    t = t.substr(0, t.find_first_of("eE"));
    std::string d;
    for (char c : t) {
      if (c >= '0' && c <= '9') d += c;
    }
    const size_t a = d.find_first_not_of('0');
    if (a == std::string::npos) return size_t{1};
    return d.find_last_not_of('0') - a + 1;
  };
  for (float f : values) {
    const std::string text = DumpJson(FloatToJson(f));
    const float back = ParseBackAsFloat(text);
    ASSERT_EQ(std::memcmp(&back, &f, sizeof(f)), 0) << "f=" << f << " text=" << text;
    // Also through the JSON parser, as a client would read it.
    ASSERT_OK_AND_ASSIGN(Json j, ParseJsonText(text, "float"));
    ASSERT_EQ(static_cast<float>(j.get<double>()), f) << text;
    // Shortest: no more significant digits than std::to_chars(float), the shortest form.
    char buf[32];
    auto res = std::to_chars(buf, buf + sizeof(buf), f);
    ASSERT_EQ(significant(text), significant(std::string_view(buf, res.ptr - buf)))
        << "f=" << std::string_view(buf, res.ptr - buf) << " text=" << text;
  }
}

TEST(DumpJsonTest, LayoutMatchesNlohmann) {
  // Apart from float digits, DumpJson writes what nlohmann's dump writes.
  const Json j = MustParse(R"({"a": [1, -2, {"b": "x\n\u0001\"\\/é"}, [], {}], "c": true,
                               "d": null, "e": 18446744073709551615, "f": -9223372036854775808})");
  EXPECT_EQ(DumpJson(j), j.dump());
  EXPECT_EQ(DumpJson(j, 2), j.dump(2));
  EXPECT_EQ(DumpJson(j, 0), j.dump(0));
  EXPECT_EQ(DumpJson(Json::array()), "[]");
  EXPECT_EQ(DumpJson(Json(1e300)), "1e+300");
  // nlohmann's own dump writes this one as 0.15813111999999999 (Grisu2 is not always shortest).
  EXPECT_EQ(DumpJson(FloatToJson(0.15813112f)), "0.15813112");
}

// ---------------------------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------------------------

constexpr const char* kSchemaText = R"({
  "name": "photos",
  "spaces": {"clip": {"dim": 512, "metric": "cosine", "encoder": "tinyclip-vit40m-32@laion400m"},
             "clap": {"dim": 3, "metric": "ip"}},
  "fields": {"image": {"space": "clip", "modality": "image", "weight": 0.6},
             "caption": {"space": "clip", "modality": "text"},
             "audio": {"space": "clap", "modality": "audio", "weight": 2}},
  "attributes": {"lang": "string", "year": "int", "score": "float", "ok": "bool",
                 "tags": "string[]"}
})";

TEST(SchemaJsonTest, ParsesTheDocumentedForm) {
  ASSERT_OK_AND_ASSIGN(CollectionSchema s, SchemaFromJson(MustParse(kSchemaText)));
  EXPECT_EQ(s.name, "photos");
  ASSERT_EQ(s.spaces.size(), 2u);
  EXPECT_EQ(s.spaces["clip"].name, "clip");
  EXPECT_EQ(s.spaces["clip"].dim, 512);
  EXPECT_EQ(s.spaces["clip"].metric, Metric::kCosine);
  EXPECT_EQ(s.spaces["clip"].encoder, "tinyclip-vit40m-32@laion400m");
  EXPECT_EQ(s.spaces["clap"].metric, Metric::kIp);
  EXPECT_EQ(s.spaces["clap"].encoder, "");
  ASSERT_EQ(s.fields.size(), 3u);
  EXPECT_EQ(s.fields["image"].name, "image");
  EXPECT_EQ(s.fields["image"].space, "clip");
  EXPECT_EQ(s.fields["image"].modality, "image");
  EXPECT_EQ(s.fields["image"].weight, 0.6f);
  EXPECT_EQ(s.fields["caption"].weight, 1.0f);  // default.
  EXPECT_EQ(s.fields["audio"].weight, 2.0f);    // an integer is a number.
  EXPECT_EQ(s.attributes["lang"], AttributeType::kString);
  EXPECT_EQ(s.attributes["year"], AttributeType::kInt);
  EXPECT_EQ(s.attributes["score"], AttributeType::kFloat);
  EXPECT_EQ(s.attributes["ok"], AttributeType::kBool);
  EXPECT_EQ(s.attributes["tags"], AttributeType::kStringList);
  EXPECT_OK(ValidateSchema(s));
}

TEST(SchemaJsonTest, RoundTrip) {
  ASSERT_OK_AND_ASSIGN(CollectionSchema s, SchemaFromJson(MustParse(kSchemaText)));
  const Json out = SchemaToJson(s);
  EXPECT_EQ(DumpJson(out),
            R"({"name":"photos","spaces":{"clap":{"dim":3,"metric":"ip","encoder":""},)"
            R"("clip":{"dim":512,"metric":"cosine","encoder":"tinyclip-vit40m-32@laion400m"}},)"
            R"("fields":{"audio":{"space":"clap","modality":"audio","weight":2.0},)"
            R"("caption":{"space":"clip","modality":"text","weight":1.0},)"
            R"("image":{"space":"clip","modality":"image","weight":0.6}},)"
            R"("attributes":{"lang":"string","ok":"bool","score":"float","tags":"string[]",)"
            R"("year":"int"}})");
  ASSERT_OK_AND_ASSIGN(Json reparsed, ParseJsonText(DumpJson(out), "again"));
  ASSERT_OK_AND_ASSIGN(CollectionSchema back, SchemaFromJson(reparsed));
  EXPECT_EQ(DumpJson(SchemaToJson(back)), DumpJson(out));
  EXPECT_EQ(back.fields["image"].weight, 0.6f);
  // Without attributes: written as {}, read back as none.
  Json minimal = MustParse(R"({"name": "m", "spaces": {"s": {"dim": 2, "metric": "l2"}},
                                "fields": {"f": {"space": "s", "modality": "xy"}}})");
  ASSERT_OK_AND_ASSIGN(CollectionSchema m, SchemaFromJson(minimal));
  EXPECT_TRUE(m.attributes.empty());
  EXPECT_EQ(m.spaces["s"].metric, Metric::kL2);
  EXPECT_EQ(DumpJson(SchemaToJson(m)["attributes"]), "{}");
}

TEST(SchemaJsonTest, StrictErrors) {
  struct Case {
    const char* text;
    const char* message;
  };
  const Case cases[] = {
      {R"([])", "schema: expected an object, got an array"},
      {R"({"name": "x", "spaces": {}, "fields": {}, "colour": 1})",
       "schema: colour: unknown key (expected one of: name, spaces, fields, attributes)"},
      {R"({"spaces": {}, "fields": {}})", "schema: name: is required"},
      {R"({"name": 5, "spaces": {}, "fields": {}})",
       "schema: name: expected a string, got an integer"},
      {R"({"name": "x", "fields": {}})", "schema: spaces: is required"},
      {R"({"name": "x", "spaces": {}})", "schema: fields: is required"},
      {R"({"name": "x", "spaces": [], "fields": {}})",
       "schema: spaces: expected an object, got an array"},
      {R"({"name": "x", "spaces": {"clip": {"dim": 4, "metrc": "ip"}}, "fields": {}})",
       "schema: spaces.clip.metrc: unknown key (expected one of: dim, metric, encoder)"},
      {R"({"name": "x", "spaces": {"clip": {"metric": "ip"}}, "fields": {}})",
       "schema: spaces.clip.dim: is required"},
      {R"({"name": "x", "spaces": {"clip": {"dim": 4}}, "fields": {}})",
       "schema: spaces.clip.metric: is required"},
      {R"({"name": "x", "spaces": {"clip": {"dim": "512", "metric": "ip"}}, "fields": {}})",
       "schema: spaces.clip.dim: expected an integer, got a string"},
      {R"({"name": "x", "spaces": {"clip": {"dim": 5.5, "metric": "ip"}}, "fields": {}})",
       "schema: spaces.clip.dim: expected an integer, got a number"},
      {R"({"name": "x", "spaces": {"clip": {"dim": 99999999999, "metric": "ip"}}, "fields": {}})",
       "schema: spaces.clip.dim: integer 99999999999 is out of range"},
      {R"({"name": "x", "spaces": {"clip": {"dim": 4, "metric": "dot"}}, "fields": {}})",
       "schema: spaces.clip.metric: unknown value \"dot\" (expected cosine, ip or l2)"},
      {R"({"name": "x", "spaces": {"clip": {"dim": 4, "metric": "ip", "encoder": null}}, "fields": {}})",
       "schema: spaces.clip.encoder: expected a string, got null"},
      {R"({"name": "x", "spaces": {}, "fields": {"f": {"space": "s"}}})",
       "schema: fields.f.modality: is required"},
      {R"({"name": "x", "spaces": {}, "fields": {"f": {"modality": "s"}}})",
       "schema: fields.f.space: is required"},
      {R"({"name": "x", "spaces": {}, "fields": {"f": {"space": "s", "modality": "m", "weight": "1"}}})",
       "schema: fields.f.weight: expected a number, got a string"},
      {R"({"name": "x", "spaces": {}, "fields": {"f": {"space": "s", "modality": "m", "weight": 1e39}}})",
       "schema: fields.f.weight: number 1e+39 is out of float32 range"},
      {R"({"name": "x", "spaces": {}, "fields": {"f": {"space": "s", "modality": "m", "dim": 3}}})",
       "schema: fields.f.dim: unknown key (expected one of: space, modality, weight, index)"},
      {R"({"name": "x", "spaces": {}, "fields": {"a b": 7}})",
       "schema: fields[\"a b\"]: expected an object, got an integer"},
      {R"({"name": "x", "spaces": {}, "fields": {}, "attributes": {"t": "list"}})",
       "schema: attributes.t: unknown value \"list\" (expected string, int, float, bool or "
       "string[])"},
      {R"({"name": "x", "spaces": {}, "fields": {}, "attributes": ["a"]})",
       "schema: attributes: expected an object, got an array"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    EXPECT_STATUS(SchemaFromJson(MustParse(c.text)), kInvalid, c.message);
  }
}

// ---------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------

TEST(RecordJsonTest, ParsesEveryMember) {
  const Json j = MustParse(R"({"id": "p1", "vectors": {"image": [0.5, -1, 2e-3]},
      "weights": {"caption": 0.5},
      "attributes": {"lang": "en", "year": 2020, "score": 2.5, "whole": 2.0, "ok": true,
                     "tags": ["a", "b"], "none": [], "neg": -7},
      "provenance": {"source": "flickr8k", "collected_at": "2025-08-09T10:00:00Z",
                     "steps": ["resize 224", "center-crop"], "dataset_version": "v1",
                     "encoder": "tinyclip@1"}})");
  ASSERT_OK_AND_ASSIGN(Record r, RecordFromJson(j));
  EXPECT_EQ(r.id, "p1");
  EXPECT_THAT(r.vectors["image"], ElementsAre(0.5f, -1.0f, 2e-3f));
  EXPECT_EQ(r.weights["caption"], 0.5f);
  EXPECT_EQ(std::get<std::string>(r.attributes["lang"]), "en");
  EXPECT_EQ(std::get<int64_t>(r.attributes["year"]), 2020);
  EXPECT_EQ(std::get<int64_t>(r.attributes["neg"]), -7);
  EXPECT_EQ(std::get<double>(r.attributes["score"]), 2.5);
  EXPECT_EQ(std::get<double>(r.attributes["whole"]), 2.0);  // 2.0 is not an integer literal.
  EXPECT_EQ(std::get<bool>(r.attributes["ok"]), true);
  EXPECT_THAT(std::get<std::vector<std::string>>(r.attributes["tags"]), ElementsAre("a", "b"));
  EXPECT_TRUE(std::get<std::vector<std::string>>(r.attributes["none"]).empty());
  EXPECT_EQ(r.provenance.source, "flickr8k");
  EXPECT_EQ(r.provenance.collected_at, "2025-08-09T10:00:00Z");
  EXPECT_THAT(r.provenance.steps, ElementsAre("resize 224", "center-crop"));
  EXPECT_EQ(r.provenance.dataset_version, "v1");
  EXPECT_EQ(r.provenance.encoder, "tinyclip@1");
}

TEST(RecordJsonTest, OnlyIdIsRequired) {
  ASSERT_OK_AND_ASSIGN(Record r, RecordFromJson(MustParse(R"({"id": "x"})")));
  EXPECT_EQ(r.id, "x");
  EXPECT_TRUE(r.vectors.empty());
  EXPECT_TRUE(r.attributes.empty());
  EXPECT_TRUE(r.provenance.empty());
}

TEST(RecordJsonTest, Float32RangeEdges) {
  // FLT_MAX's shortest text is slightly above FLT_MAX but still rounds to it.
  ASSERT_OK_AND_ASSIGN(
      Record r, RecordFromJson(MustParse(R"({"id": "x", "vectors": {"v": [3.4028235e38, -3.4028235e+38, 1e-46]}})")));
  EXPECT_THAT(r.vectors["v"], ElementsAre(std::numeric_limits<float>::max(),
                                          std::numeric_limits<float>::lowest(), 0.0f));
  EXPECT_STATUS(RecordFromJson(MustParse(R"({"id": "x", "vectors": {"v": [3.4028236e38]}})")),
                kInvalid, "record \"x\": vectors.v[0]: number 3.40282e+38 is out of float32 range");
}

TEST(RecordJsonTest, RoundTrip) {
  Record r;
  r.id = "p\"1";
  r.vectors["image"] = {0.1f, -0.2f, 1e-8f};
  r.vectors["caption"] = {3.0f};
  r.weights["image"] = 0.7f;
  r.attributes["lang"] = std::string("en");
  r.attributes["year"] = int64_t{-3};
  r.attributes["score"] = 0.1;
  r.attributes["ok"] = false;
  r.attributes["tags"] = std::vector<std::string>{"x"};
  r.provenance.source = "s";
  r.provenance.steps = {"a", "b"};
  const Json out = RecordToJson(r, /*with_vectors=*/true);
  EXPECT_EQ(DumpJson(out),
            R"({"id":"p\"1","vectors":{"caption":[3.0],"image":[0.1,-0.2,1e-08]},)"
            R"("weights":{"image":0.7},"attributes":{"lang":"en","ok":false,"score":0.1,)"
            R"("tags":["x"],"year":-3},"provenance":{"source":"s","steps":["a","b"]}})");
  ASSERT_OK_AND_ASSIGN(Json reparsed, ParseJsonText(DumpJson(out), "line 1"));
  ASSERT_OK_AND_ASSIGN(Record back, RecordFromJson(reparsed));
  EXPECT_EQ(back.id, r.id);
  EXPECT_EQ(back.vectors, r.vectors);
  EXPECT_EQ(back.weights, r.weights);
  EXPECT_EQ(back.attributes, r.attributes);
  EXPECT_EQ(back.provenance, r.provenance);

  // Without vectors; empty weights and provenance are omitted, attributes always present.
  Record bare;
  bare.id = "b";
  bare.vectors["image"] = {1};
  EXPECT_EQ(DumpJson(RecordToJson(bare, /*with_vectors=*/false)), R"({"id":"b","attributes":{}})");
}

TEST(RecordJsonTest, StrictErrors) {
  struct Case {
    const char* text;
    const char* message;
  };
  const Case cases[] = {
      {R"("p1")", "record: expected an object, got a string"},
      {R"({"vectors": {}})", "record: id: is required"},
      {R"({"id": 7})", "record: id: expected a string, got an integer"},
      {R"({"id": "p1", "vector": {}})",
       "record \"p1\": vector: unknown key (expected one of: id, vectors, weights, attributes, "
       "provenance)"},
      {R"({"id": "p1", "vectors": [1, 2]})",
       "record \"p1\": vectors: expected an object, got an array"},
      {R"({"id": "p1", "vectors": {"image": [0.1, 0.2, 0.3, "x"]}})",
       "record \"p1\": vectors.image[3]: expected a number, got a string"},
      {R"({"id": "p1", "vectors": {"image": [0.1, null]}})",
       "record \"p1\": vectors.image[1]: expected a number, got null"},
      {R"({"id": "p1", "vectors": {"image": 0.1}})",
       "record \"p1\": vectors.image: expected an array of numbers, got a number"},
      {R"({"id": "p1", "vectors": {"image": [1e39]}})",
       "record \"p1\": vectors.image[0]: number 1e+39 is out of float32 range"},
      {R"({"id": "p1", "weights": {"image": "high"}})",
       "record \"p1\": weights.image: expected a number, got a string"},
      {R"({"id": "p1", "attributes": {"x": null}})",
       "record \"p1\": attributes.x: expected a string, number, bool or array of strings, got "
       "null"},
      {R"({"id": "p1", "attributes": {"x": {"a": 1}}})",
       "record \"p1\": attributes.x: expected a string, number, bool or array of strings, got an "
       "object"},
      {R"({"id": "p1", "attributes": {"tags": ["a", 2]}})",
       "record \"p1\": attributes.tags[1]: expected a string (array values are string[] "
       "attributes), "
       "got an integer"},
      {R"({"id": "p1", "attributes": {"big": 18446744073709551615}})",
       "record \"p1\": attributes.big: integer 18446744073709551615 is out of range"},
      {R"({"id": "p1", "provenance": {"origin": "x"}})",
       "record \"p1\": provenance.origin: unknown key (expected one of: source, collected_at, "
       "steps, "
       "dataset_version, encoder)"},
      {R"({"id": "p1", "provenance": {"steps": "resize"}})",
       "record \"p1\": provenance.steps: expected an array of strings, got a string"},
      {R"({"id": "p1", "provenance": {"steps": ["a", 1]}})",
       "record \"p1\": provenance.steps[1]: expected a string, got an integer"},
      {R"({"id": "p1", "provenance": {"collected_at": 1754733600}})",
       "record \"p1\": provenance.collected_at: expected a string, got an integer"},
      {R"({"id": "p1", "provenance": []})",
       "record \"p1\": provenance: expected an object, got an array"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    EXPECT_STATUS(RecordFromJson(MustParse(c.text)), kInvalid, c.message);
  }
}

TEST(ProvenanceJsonTest, OnlySetMembersAreWritten) {
  Provenance p;
  EXPECT_EQ(DumpJson(ProvenanceToJson(p)), "{}");
  p.dataset_version = "v1";
  p.collected_at = "2025-08-09T10:00:00Z";
  EXPECT_EQ(DumpJson(ProvenanceToJson(p)),
            R"({"collected_at":"2025-08-09T10:00:00Z","dataset_version":"v1"})");
  ASSERT_OK_AND_ASSIGN(Provenance back, ProvenanceFromJson(ProvenanceToJson(p)));
  EXPECT_EQ(back, p);
  EXPECT_STATUS(ProvenanceFromJson(MustParse(R"({"when": "now"})")), kInvalid,
                "provenance: when: unknown key");
}

// ---------------------------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------------------------

constexpr const char* kQueryText = R"({"k": 7,
  "inputs": [{"vector": [0.1, 0.2], "space": "clip", "modality": "text",
              "fields": ["image", "caption"], "weight": 0.5},
             {"vector": [1, 2, 3], "space": "clap", "field": "audio"}],
  "weights": {"image": 0.7},
  "fusion": "rrf", "normalize": "zscore", "missing": "require",
  "filter": {"attributes": {"lang": "en", "year": {"gte": 2020, "lt": 2024},
                            "tags": {"in": ["a", "b"]}, "score": 0.5, "ok": true},
             "provenance": {"dataset_version": "v1",
                            "collected_at": {"gte": "2025-01-01T00:00:00Z"}},
             "has_fields": ["caption"]},
  "exact": false, "explain": false, "with_attributes": false})";

TEST(QueryJsonTest, ParsesTheDocumentedForm) {
  ASSERT_OK_AND_ASSIGN(SearchRequest q, SearchRequestFromJson(MustParse(kQueryText)));
  EXPECT_EQ(q.k, 7);
  ASSERT_EQ(q.inputs.size(), 2u);
  EXPECT_THAT(q.inputs[0].vector, ElementsAre(0.1f, 0.2f));
  EXPECT_EQ(q.inputs[0].space, "clip");
  EXPECT_EQ(q.inputs[0].modality, "text");
  EXPECT_THAT(q.inputs[0].fields, ElementsAre("image", "caption"));
  EXPECT_EQ(q.inputs[0].weight, 0.5f);
  EXPECT_THAT(q.inputs[1].fields, ElementsAre("audio"));  // "field" form.
  EXPECT_EQ(q.inputs[1].weight, 1.0f);
  EXPECT_EQ(q.inputs[1].modality, "");
  EXPECT_EQ(q.weights.at("image"), 0.7f);
  EXPECT_EQ(q.fusion, Fusion::kRrf);
  EXPECT_EQ(q.normalize, Normalize::kZScore);
  EXPECT_EQ(q.missing, Missing::kRequire);
  EXPECT_FALSE(q.exact);
  EXPECT_FALSE(q.explain);
  EXPECT_FALSE(q.with_attributes);
  EXPECT_THAT(q.filter.has_fields, ElementsAre("caption"));
  const auto& p = q.filter.predicates;
  ASSERT_EQ(p.size(), 8u);  // in document order, two for "year".
  EXPECT_EQ(p[0].key, "lang");
  EXPECT_EQ(p[0].op, FilterOp::kEq);
  EXPECT_EQ(p[0].target, Predicate::Target::kAttribute);
  EXPECT_EQ(std::get<std::string>(p[0].values.at(0)), "en");
  EXPECT_EQ(p[1].key, "year");
  EXPECT_EQ(p[1].op, FilterOp::kGte);
  EXPECT_EQ(std::get<int64_t>(p[1].values.at(0)), 2020);
  EXPECT_EQ(p[2].op, FilterOp::kLt);
  EXPECT_EQ(p[3].key, "tags");
  EXPECT_EQ(p[3].op, FilterOp::kIn);
  ASSERT_EQ(p[3].values.size(), 2u);
  EXPECT_EQ(std::get<std::string>(p[3].values[1]), "b");
  EXPECT_EQ(std::get<double>(p[4].values.at(0)), 0.5);
  EXPECT_EQ(std::get<bool>(p[5].values.at(0)), true);
  EXPECT_EQ(p[6].target, Predicate::Target::kProvenance);
  EXPECT_EQ(p[6].key, "dataset_version");
  EXPECT_EQ(p[7].key, "collected_at");
  EXPECT_EQ(p[7].op, FilterOp::kGte);
}

TEST(QueryJsonTest, Defaults) {
  ASSERT_OK_AND_ASSIGN(
      SearchRequest q,
      SearchRequestFromJson(MustParse(R"({"inputs": [{"vector": [1], "space": "s"}]})")));
  EXPECT_EQ(q.k, 10);
  EXPECT_EQ(q.fusion, Fusion::kWeighted);
  EXPECT_EQ(q.normalize, Normalize::kCalibrated);
  EXPECT_EQ(q.missing, Missing::kRenormalize);
  EXPECT_FALSE(q.exact);  // indexes are used where built.
  EXPECT_EQ(q.nprobe, 0);
  EXPECT_EQ(q.refine, 0);
  EXPECT_TRUE(q.explain);
  EXPECT_TRUE(q.with_attributes);
  EXPECT_TRUE(q.filter.empty());
  EXPECT_TRUE(q.weights.empty());
  EXPECT_TRUE(q.inputs[0].fields.empty());
}

bool SamePredicates(const std::vector<Predicate>& a, const std::vector<Predicate>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].target != b[i].target || a[i].key != b[i].key || a[i].op != b[i].op ||
        a[i].values != b[i].values) {
      return false;
    }
  }
  return true;
}

TEST(QueryJsonTest, RoundTrip) {
  ASSERT_OK_AND_ASSIGN(SearchRequest q, SearchRequestFromJson(MustParse(kQueryText)));
  const std::string text = DumpJson(SearchRequestToJson(q));
  EXPECT_EQ(
      text,
      R"({"k":7,"inputs":[{"vector":[0.1,0.2],"space":"clip","modality":"text",)"
      R"("fields":["image","caption"],"weight":0.5},{"vector":[1.0,2.0,3.0],"space":"clap",)"
      R"("fields":["audio"],"weight":1.0}],"weights":{"image":0.7},"fusion":"rrf",)"
      R"("normalize":"zscore","missing":"require","filter":{"attributes":{"lang":"en",)"
      R"("year":{"gte":2020,"lt":2024},"tags":{"in":["a","b"]},"score":0.5,"ok":true},)"
      R"("provenance":{"dataset_version":"v1","collected_at":{"gte":"2025-01-01T00:00:00Z"}},)"
      R"("has_fields":["caption"]},"exact":false,"explain":false,"with_attributes":false})");
  ASSERT_OK_AND_ASSIGN(SearchRequest back, SearchRequestFromJson(MustParse(text)));
  EXPECT_EQ(DumpJson(SearchRequestToJson(back)), text);
  EXPECT_TRUE(SamePredicates(back.filter.predicates, q.filter.predicates));
}

TEST(QueryJsonTest, RepeatedOperatorsRoundTripAsAList) {
  SearchRequest q;
  q.inputs.push_back(QueryInput{{1}, "s", "", {}, 1.0f});
  q.filter.predicates = {
      {Predicate::Target::kAttribute, "lang", FilterOp::kNe, {std::string("de")}},
      {Predicate::Target::kAttribute, "year", FilterOp::kEq, {int64_t{2020}}},
      {Predicate::Target::kAttribute, "lang", FilterOp::kNe, {std::string("fr")}},
      {Predicate::Target::kAttribute, "year", FilterOp::kEq, {2021.5}},
      {Predicate::Target::kProvenance, "source", FilterOp::kIn, {std::string("a")}},
  };
  const Json j = SearchRequestToJson(q);
  EXPECT_EQ(
      DumpJson(j["filter"]),
      R"({"attributes":{"lang":[{"ne":"de"},{"ne":"fr"}],"year":[{"eq":2020},{"eq":2021.5}]},)"
      R"("provenance":{"source":{"in":["a"]}}})");
  ASSERT_OK_AND_ASSIGN(SearchRequest back, SearchRequestFromJson(MustParse(DumpJson(j))));
  // Grouped by key (a conjunction: the order of predicates does not matter).
  ASSERT_EQ(back.filter.predicates.size(), 5u);
  EXPECT_EQ(back.filter.predicates[1].key, "lang");
  EXPECT_EQ(std::get<std::string>(back.filter.predicates[1].values[0]), "fr");
  EXPECT_EQ(std::get<double>(back.filter.predicates[3].values[0]), 2021.5);
  EXPECT_EQ(DumpJson(SearchRequestToJson(back)), DumpJson(j));
}

TEST(QueryJsonTest, StrictErrors) {
  struct Case {
    const char* text;
    const char* message;
  };
  const Case cases[] = {
      {R"([1])", "query: expected an object, got an array"},
      {R"({"k": 5})", "query: inputs: is required"},
      {R"({"inputs": {}})", "query: inputs: expected an array, got an object"},
      {R"({"inputs": [], "top_k": 5})",
       "query: top_k: unknown key (expected one of: k, inputs, weights, fusion, normalize, "
       "missing, filter, exact, nprobe, refine, explain, with_attributes)"},
      {R"({"inputs": [], "k": "5"})", "query: k: expected an integer, got a string"},
      {R"({"inputs": [], "k": 5.0})", "query: k: expected an integer, got a number"},
      {R"({"inputs": [], "k": 3000000000})", "query: k: integer 3000000000 is out of range"},
      {R"({"inputs": [{"space": "s"}]})", "query: inputs[0].vector: is required"},
      {R"({"inputs": [{"vector": [1, 2, 3, true], "space": "s"}]})",
       "query: inputs[0].vector[3]: expected a number, got a bool"},
      {R"({"inputs": [{"vector": [1], "space": "s", "field": "a", "fields": ["b"]}]})",
       "query: inputs[0]: give \"field\" or \"fields\", not both"},
      {R"({"inputs": [{"vector": [1], "space": "s", "fields": "a"}]})",
       "query: inputs[0].fields: expected an array of strings, got a string"},
      {R"({"inputs": [{"vector": [1], "space": "s", "field": ["a"]}]})",
       "query: inputs[0].field: expected a string, got an array"},
      {R"({"inputs": [{"vector": [1], "space": 3}]})", "query: inputs[0].space: expected a string"},
      {R"({"inputs": [{"vector": [1], "space": "s", "weight": "1"}]})",
       "query: inputs[0].weight: expected a number, got a string"},
      {R"({"inputs": [{"vector": [1], "space": "s", "Field": "a"}]})",
       "query: inputs[0].Field: unknown key (expected one of: vector, space, modality, field, "
       "fields, weight)"},
      {R"({"inputs": [], "weights": {"image": null}})",
       "query: weights.image: expected a number, got null"},
      {R"({"inputs": [], "fusion": "sum"})",
       "query: fusion: unknown value \"sum\" (expected weighted, rrf or max)"},
      {R"({"inputs": [], "normalize": "l2"})",
       "query: normalize: unknown value \"l2\" (expected none, minmax, zscore or calibrated)"},
      {R"({"inputs": [], "missing": "drop"})",
       "query: missing: unknown value \"drop\" (expected renormalize, zero or require)"},
      {R"({"inputs": [], "exact": 1})", "query: exact: expected true or false, got an integer"},
      {R"({"inputs": [], "explain": "yes"})",
       "query: explain: expected true or false, got a string"},
      {R"({"inputs": [], "filter": {"attrs": {}}})",
       "query: filter.attrs: unknown key (expected one of: attributes, provenance, has_fields)"},
      {R"({"inputs": [], "filter": {"attributes": {"year": {"between": [1, 2]}}}})",
       "query: filter.attributes.year.between: unknown operator (expected one of: eq, ne, in, gt, "
       "gte, lt, lte)"},
      {R"({"inputs": [], "filter": {"attributes": {"year": {}}}})",
       "query: filter.attributes.year: expected at least one operator"},
      {R"({"inputs": [], "filter": {"attributes": {"tags": ["a", "b"]}}})",
       "query: filter.attributes.tags[0]: expected an operator object such as {\"in\": [...]}"},
      {R"({"inputs": [], "filter": {"attributes": {"tags": {"in": "a"}}}})",
       "query: filter.attributes.tags.in: expected an array of values, got a string"},
      {R"({"inputs": [], "filter": {"attributes": {"tags": {"in": ["a", ["b"]]}}}})",
       "query: filter.attributes.tags.in[1]: expected a string, number or bool, got an array"},
      {R"({"inputs": [], "filter": {"attributes": {"lang": null}}})",
       "query: filter.attributes.lang: expected a string, number or bool, got null"},
      {R"({"inputs": [], "filter": {"attributes": {"lang": {"eq": {"x": 1}}}}})",
       "query: filter.attributes.lang.eq: expected a string, number or bool, got an object"},
      {R"({"inputs": [], "filter": {"provenance": []}})",
       "query: filter.provenance: expected an object, got an array"},
      {R"({"inputs": [], "filter": {"has_fields": "caption"}})",
       "query: filter.has_fields: expected an array of strings, got a string"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    EXPECT_STATUS(SearchRequestFromJson(MustParse(c.text)), kInvalid, c.message);
  }
}

// ---------------------------------------------------------------------------------------------
// Responses and operation results
// ---------------------------------------------------------------------------------------------

SearchResponse SampleResponse() {
  SearchResponse r;
  Hit h;
  h.id = "p17";
  h.score = 1.234f;
  h.fields["image"] = FieldExplanation{false, 0.31f, 1.42f, 0.6f, 0.852f, 1};
  h.fields["caption"] = FieldExplanation{true, 0, 0, 0, 0, 0};
  h.attributes["lang"] = std::string("en");
  h.provenance.source = "flickr8k";
  h.provenance.dataset_version = "v1";
  r.results.push_back(h);
  Hit bare;
  bare.id = "p2";
  bare.score = 0.5f;
  r.results.push_back(bare);
  r.took_us = 812;
  return r;
}

TEST(ResponseJsonTest, DocumentedFormAndRoundTrip) {
  const SearchResponse r = SampleResponse();
  const std::string text = DumpJson(SearchResponseToJson(r));
  EXPECT_EQ(
      text,
      R"({"results":[{"id":"p17","score":1.234,"fields":{"caption":{"missing":true},)"
      R"("image":{"raw":0.31,"normalized":1.42,"weight":0.6,"contribution":0.852,"rank":1}},)"
      R"("attributes":{"lang":"en"},"provenance":{"source":"flickr8k","dataset_version":"v1"}},)"
      R"({"id":"p2","score":0.5,"fields":{},"attributes":{}}],"took_us":812})");
  ASSERT_OK_AND_ASSIGN(SearchResponse back, SearchResponseFromJson(MustParse(text)));
  ASSERT_EQ(back.results.size(), 2u);
  const Hit& h = back.results[0];
  EXPECT_EQ(h.id, "p17");
  EXPECT_EQ(h.score, 1.234f);
  EXPECT_TRUE(h.fields.at("caption").missing);
  EXPECT_EQ(h.fields.at("image").raw, 0.31f);
  EXPECT_EQ(h.fields.at("image").contribution, 0.852f);
  EXPECT_EQ(h.fields.at("image").rank, 1);
  EXPECT_EQ(h.attributes, r.results[0].attributes);
  EXPECT_EQ(h.provenance, r.results[0].provenance);
  EXPECT_TRUE(back.results[1].fields.empty());
  EXPECT_EQ(back.took_us, 812);
  EXPECT_EQ(DumpJson(SearchResponseToJson(back)), text);
}

TEST(ResponseJsonTest, StrictErrors) {
  EXPECT_STATUS(
      SearchResponseFromJson(MustParse(R"({"results": [{"id": "a", "score": 1, "x": 2}]})")),
      kInvalid, "response: results[0].x: unknown key");
  EXPECT_STATUS(SearchResponseFromJson(MustParse(
                    R"({"results": [{"id": "a", "score": 1, "fields": {"f": {"raw": 1}}}]})")),
                kInvalid, "response: results[0].fields.f.normalized: is required");
  EXPECT_STATUS(
      SearchResponseFromJson(MustParse(
          R"({"results": [{"id": "a", "score": 1, "fields": {"f": {"missing": false}}}]})")),
      kInvalid, "response: results[0].fields.f.missing: expected true");
  EXPECT_STATUS(SearchResponseFromJson(MustParse(R"({"results": [{"score": 1}]})")), kInvalid,
                "response: results[0].id: is required");
}

TEST(CollectionInfoJsonTest, FormAndRoundTrip) {
  CollectionInfo info;
  ASSERT_OK_AND_ASSIGN(info.schema, SchemaFromJson(MustParse(kSchemaText)));
  info.records = 1000;
  info.field_vectors = {{"audio", 0}, {"caption", 1000}, {"image", 999}};
  info.segments = 1;
  info.storage = "rocksdb 7.8.3 (sync: always)";
  info.kernel_backend = "avx2";
  info.calibration.push_back(CalibrationStats{"text", "image", 1048576, 999, 0.18, 0.03, 0.3125});
  const Json j = CollectionInfoToJson(info);
  const std::string text = DumpJson(j);
  EXPECT_THAT(text, HasSubstr(R"({"name":"photos","schema":{"name":"photos",)"));
  EXPECT_THAT(text,
              HasSubstr(R"("records":1000,"field_vectors":{"audio":0,"caption":1000,)"
                        R"j("image":999},"segments":1,"storage":"rocksdb 7.8.3 (sync: always)",)j"
                        R"("kernel_backend":"avx2","calibration":[{"modality":"text",)"
                        R"("field":"image","samples":1048576,"at_vectors":999,"mean":0.18,)"
                        R"("stddev":0.03,"top1_mean":0.3125}]})"));
  ASSERT_OK_AND_ASSIGN(CollectionInfo back, CollectionInfoFromJson(MustParse(text)));
  EXPECT_EQ(DumpJson(CollectionInfoToJson(back)), text);
  EXPECT_EQ(back.calibration[0].mean, 0.18);
  Json bad = j;
  bad["name"] = "other";
  EXPECT_STATUS(CollectionInfoFromJson(bad), kInvalid,
                "collection info: name: \"other\" differs from schema.name \"photos\"");
  bad = j;
  bad["schema"]["spaces"]["clip"]["dim"] = "x";
  EXPECT_STATUS(CollectionInfoFromJson(bad), kInvalid,
                "collection info: schema.spaces.clip.dim: expected an integer, got a string");
}

TEST(WriteResultJsonTest, NotFoundOnlyWhenNonZero) {
  EXPECT_EQ(DumpJson(WriteResultToJson(WriteResult{3, 2, 0})), R"({"written":3,"created":2})");
  const Json j = WriteResultToJson(WriteResult{1, 0, 4});
  EXPECT_EQ(DumpJson(j), R"({"written":1,"created":0,"not_found":4})");
  ASSERT_OK_AND_ASSIGN(WriteResult back, WriteResultFromJson(j));
  EXPECT_EQ(back.written, 1);
  EXPECT_EQ(back.not_found, 4);
  EXPECT_STATUS(WriteResultFromJson(MustParse(R"({"written": -1.5})")), kInvalid,
                "write result: written: expected an integer, got a number");
}

TEST(GetResultJsonTest, RoundTrip) {
  GetResult g;
  Record r;
  r.id = "a";
  r.vectors["f"] = {0.25f};
  g.records.push_back(r);
  g.not_found = {"zz"};
  const std::string text = DumpJson(GetResultToJson(g, /*with_vectors=*/true));
  EXPECT_EQ(
      text,
      R"({"records":[{"id":"a","vectors":{"f":[0.25]},"attributes":{}}],"not_found":["zz"]})");
  ASSERT_OK_AND_ASSIGN(GetResult back, GetResultFromJson(MustParse(text)));
  ASSERT_EQ(back.records.size(), 1u);
  EXPECT_EQ(back.records[0].vectors, r.vectors);
  EXPECT_EQ(back.not_found, g.not_found);
  EXPECT_STATUS(GetResultFromJson(MustParse(R"({"records": [{"id": "a", "x": 1}]})")), kInvalid,
                "get result: records[0] (record \"a\"): x: unknown key");
}

TEST(AttributeValueToJsonTest, EveryAlternative) {
  EXPECT_EQ(DumpJson(AttributeValueToJson(std::string("x"))), "\"x\"");
  EXPECT_EQ(DumpJson(AttributeValueToJson(int64_t{-9007199254740993})), "-9007199254740993");
  EXPECT_EQ(DumpJson(AttributeValueToJson(0.1)), "0.1");
  EXPECT_EQ(DumpJson(AttributeValueToJson(true)), "true");
  EXPECT_EQ(DumpJson(AttributeValueToJson(std::vector<std::string>{"a", "b"})), R"(["a","b"])");
  EXPECT_EQ(DumpJson(AttributeValueToJson(std::numeric_limits<double>::quiet_NaN())), "null");
}

// ---------------------------------------------------------------------------------------------
// No exception escapes, whatever the document
// ---------------------------------------------------------------------------------------------

Json RandomJson(std::mt19937_64& rng, int depth) {
  const int kind = static_cast<int>(rng() % (depth > 3 ? 6 : 8));
  switch (kind) {
    case 0:
      return Json();
    case 1:
      return rng() % 2 == 0;
    case 2:
      return static_cast<int64_t>(rng()) >> (rng() % 64);
    case 3:
      return static_cast<uint64_t>(rng());
    case 4: {
      const double specials[] = {0.5, -1e300, 1e39, std::nan(""), INFINITY, 3.0};
      return specials[rng() % 6];
    }
    case 5: {
      const char* strings[] = {"id", "clip", "", "cosine", "\xFF", "2025-08-09T10:00:00Z", "in"};
      return strings[rng() % 7];
    }
    case 6: {
      Json arr = Json::array();
      const int n = static_cast<int>(rng() % 4);
      for (int i = 0; i < n; ++i) arr.push_back(RandomJson(rng, depth + 1));
      return arr;
    }
    default: {
      // Objects use the keys the parsers look for, so that the fuzzing reaches deep paths.
      static const char* keys[] = {
          "id",         "vectors",     "weights", "attributes", "provenance", "k",
          "inputs",     "vector",      "space",   "fields",     "field",      "filter",
          "has_fields", "gte",         "in",      "name",       "spaces",     "dim",
          "metric",     "results",     "score",   "missing",    "raw",        "schema",
          "records",    "calibration", "steps",   "modality",   "written"};
      Json obj = Json::object();
      const int n = static_cast<int>(rng() % 5);
      for (int i = 0; i < n; ++i) obj[keys[rng() % std::size(keys)]] = RandomJson(rng, depth + 1);
      return obj;
    }
  }
}

TEST(JsonRobustnessTest, NoExceptionEscapesOnRandomDocuments) {
  const uint64_t seed = testing::TestSeed(42);
  SCOPED_TRACE(testing::SeedTrace(seed));
  std::mt19937_64 rng(seed);
  for (int i = 0; i < 20000; ++i) {
    const Json j = RandomJson(rng, 0);
    EXPECT_NO_THROW({
      (void)SchemaFromJson(j);
      (void)RecordFromJson(j);
      (void)ProvenanceFromJson(j);
      (void)SearchRequestFromJson(j);
      (void)SearchResponseFromJson(j);
      (void)CollectionInfoFromJson(j);
      (void)WriteResultFromJson(j);
      (void)GetResultFromJson(j);
      (void)DumpJson(j);
    }) << DumpJson(j);
  }
  // And random text through the parser.
  const std::string alphabet = "{}[]\",:0123456789.eE-+truefalsnl \n\\u\xFF";
  for (int i = 0; i < 20000; ++i) {
    std::string text;
    const size_t n = rng() % 40;
    for (size_t c = 0; c < n; ++c) text += alphabet[rng() % alphabet.size()];
    EXPECT_NO_THROW((void)ParseJsonText(text, "fuzz")) << text;
  }
}

}  // namespace
}  // namespace rosetta
