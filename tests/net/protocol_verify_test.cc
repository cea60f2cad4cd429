// Decoding hostile or broken frames (net/protocol.h DecodeFrame): structural failures are
// "malformed" (the server closes the connection), semantic ones are not (it answers and keeps
// the connection). Every case asserts the exact classification and the message.
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "flatbuffers/flatbuffers.h"
#include "gtest/gtest.h"
#include "net/protocol.h"
#include "schema/protocol_generated.h"
#include "tests/net/protocol_testing.h"
#include "tests/testing/testing.h"

namespace rosetta::net {
namespace {

namespace w = ::rosetta::wire;
namespace fb = ::flatbuffers;
using testing::Canon;
using testing::RawFrame;
using ::testing::HasSubstr;

struct Outcome {
  absl::Status status;
  DecodeFailure failure;
};

Outcome Decode(std::string_view body, const DecodeOptions& options = {}) {
  Outcome o;
  absl::StatusOr<Frame> frame = DecodeFrame(body, options, &o.failure);
  o.status = frame.status();
  return o;
}

void ExpectMalformed(std::string_view body, const std::string& substr,
                     const DecodeOptions& options = {}) {
  Outcome o = Decode(body, options);
  EXPECT_EQ(o.status.code(), absl::StatusCode::kInvalidArgument) << o.status;
  EXPECT_TRUE(o.failure.malformed) << o.status;
  EXPECT_THAT(std::string(o.status.message()), HasSubstr("malformed frame: "));
  EXPECT_THAT(std::string(o.status.message()), HasSubstr(substr));
}

// A semantic error: InvalidArgument with exactly `message`, not malformed, request id read.
void ExpectSemantic(std::string_view body, const std::string& message, uint64_t request_id) {
  Outcome o = Decode(body);
  EXPECT_EQ(o.status.code(), absl::StatusCode::kInvalidArgument) << o.status;
  EXPECT_FALSE(o.failure.malformed) << o.status;
  EXPECT_EQ(std::string(o.status.message()), message);
  EXPECT_EQ(o.failure.request_id, request_id);
}

std::string Valid(const Message& m, uint64_t request_id = 42) {
  absl::StatusOr<std::string> body = EncodeFrame(request_id, m);
  EXPECT_TRUE(body.ok()) << body.status();
  return body.ok() ? *body : std::string();
}

std::string SampleUpsertFrame() { return Valid(msg::Upsert{"photos", testing::SampleRecords()}); }

// ---------------------------------------------------------------------------------------------
// Structure
// ---------------------------------------------------------------------------------------------

TEST(ProtocolVerifyTest, TooShortBodies) {
  const std::string body = SampleUpsertFrame();
  for (size_t n = 0; n < 16; ++n) {
    SCOPED_TRACE(n);
    ExpectMalformed(body.substr(0, n), absl::StrCat("body of ", n, " bytes is too short"));
  }
}

TEST(ProtocolVerifyTest, WrongFileIdentifier) {
  std::string body = SampleUpsertFrame();
  std::memcpy(body.data() + 4, "XXXX", 4);
  ExpectMalformed(body, "wrong file identifier \"XXXX\" (expected \"RSTA\")");
  body[4] = '\0';
  body[5] = '\x7f';
  ExpectMalformed(body, "wrong file identifier \"\\x00\\x7fXX\"");
  // A buffer of another schema (no identifier at all).
  fb::FlatBufferBuilder fbb;
  auto s = fbb.CreateString("hello");
  fbb.Finish(s);
  ExpectMalformed(std::string_view(reinterpret_cast<const char*>(fbb.GetBufferPointer()),
                                   fbb.GetSize()),
                  "wrong file identifier");
}

TEST(ProtocolVerifyTest, EveryTruncationFailsOrOnlyDropsPadding) {
  const std::vector<float> data(12, 0.5f);
  for (const Message& m : testing::AllSampleMessages(data)) {
    SCOPED_TRACE(MessageName(m));
    const std::string body = Valid(m);
    const std::string want = Canon(m);
    for (size_t n = 0; n < body.size(); ++n) {
      absl::StatusOr<Frame> frame = DecodeFrame(std::string_view(body.data(), n));
      if (frame.ok()) {
        // Possible only when the cut removed trailing alignment padding.
        EXPECT_EQ(Canon(frame->message), want) << "truncated to " << n;
      } else {
        EXPECT_EQ(frame.status().code(), absl::StatusCode::kInvalidArgument);
      }
    }
  }
}

TEST(ProtocolVerifyTest, BadRootOffsets) {
  const std::string valid = SampleUpsertFrame();
  for (uint32_t root : {0u, 1u, 3u, static_cast<uint32_t>(valid.size()),
                        static_cast<uint32_t>(valid.size() + 100), 0x7fffffffu, 0xffffffffu}) {
    SCOPED_TRACE(root);
    std::string body = valid;
    std::memcpy(body.data(), &root, 4);
    ExpectMalformed(body, "flatbuffers verification failed");
  }
}

TEST(ProtocolVerifyTest, HugeVectorLengthsAreRejectedByTheVerifier) {
  // Patch the length field of a vector to claim far more elements than the buffer holds.
  const std::vector<float> floats(16, 1.0f);
  msg::Import imp;
  imp.request.collection = "c";
  imp.request.field = "f";
  imp.request.data = floats;
  imp.request.rows = 4;
  imp.request.dim = 4;
  std::string body = Valid(Message(std::move(imp)));
  const auto* frame = fb::GetRoot<w::Frame>(body.data());
  const size_t at = reinterpret_cast<const char*>(frame->body_as_Import()->data()) - body.data();
  // (A slightly larger length can still fall inside the buffer, over the bytes that follow the
  // vector: then the frame is structurally valid and Import's length check rejects it.)
  for (uint32_t n : {static_cast<uint32_t>(body.size() / 4), 1u << 20, 0x3fffffffu, 0x7fffffffu,
                     0xffffffffu}) {
    SCOPED_TRACE(n);
    std::string patched = body;
    std::memcpy(patched.data() + at, &n, 4);
    ExpectMalformed(patched, "flatbuffers verification failed");
  }

  std::string get = Valid(msg::Get{"c", {"a", "b", "c"}, false});
  const auto* gframe = fb::GetRoot<w::Frame>(get.data());
  const size_t ids_at = reinterpret_cast<const char*>(gframe->body_as_Get()->ids()) - get.data();
  const uint32_t huge = 0x40000000u;
  std::memcpy(get.data() + ids_at, &huge, 4);
  ExpectMalformed(get, "flatbuffers verification failed");
}

TEST(ProtocolVerifyTest, RandomBytesNeverCrash) {
  const uint64_t seed = rosetta::testing::TestSeed(7);
  SCOPED_TRACE(rosetta::testing::SeedTrace(seed));
  std::mt19937_64 rng(seed);
  int decoded = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string body(rng() % 600, '\0');
    for (char& c : body) c = static_cast<char>(rng());
    if (body.size() >= 8 && (i % 2) == 0) std::memcpy(body.data() + 4, "RSTA", 4);
    absl::StatusOr<Frame> frame = DecodeFrame(body);
    if (frame.ok()) {
      ++decoded;
    } else {
      ASSERT_EQ(frame.status().code(), absl::StatusCode::kInvalidArgument) << frame.status();
    }
  }
  // Random bytes essentially never form a valid frame.
  EXPECT_LT(decoded, 10);
}

TEST(ProtocolVerifyTest, MutatedFramesNeverCrashAndDecodeConsistently) {
  const uint64_t seed = rosetta::testing::TestSeed(11);
  SCOPED_TRACE(rosetta::testing::SeedTrace(seed));
  std::mt19937_64 rng(seed);
  const std::vector<float> data(12, 0.5f);
  for (const Message& m : testing::AllSampleMessages(data)) {
    SCOPED_TRACE(MessageName(m));
    const std::string valid = Valid(m);
    for (int i = 0; i < 300; ++i) {
      std::string body = valid;
      const int edits = 1 + static_cast<int>(rng() % 4);
      for (int e = 0; e < edits; ++e) {
        const size_t at = rng() % body.size();
        if (rng() % 2) {
          body[at] = static_cast<char>(body[at] ^ (1 << (rng() % 8)));
        } else {
          body[at] = static_cast<char>(rng());
        }
      }
      DecodeFailure failure;
      absl::StatusOr<Frame> frame = DecodeFrame(body, {}, &failure);
      if (!frame.ok()) {
        ASSERT_EQ(frame.status().code(), absl::StatusCode::kInvalidArgument) << frame.status();
        continue;
      }
      // Whatever decoded re-encodes and decodes to the same thing.
      absl::StatusOr<std::string> again = EncodeFrame(frame->request_id, frame->message);
      ASSERT_TRUE(again.ok()) << again.status();
      absl::StatusOr<Frame> frame2 = DecodeFrame(*again);
      ASSERT_TRUE(frame2.ok()) << frame2.status();
      EXPECT_EQ(Canon(frame2->message), Canon(frame->message));
    }
  }
}

TEST(ProtocolVerifyTest, FrameWithoutMessageIsMalformed) {
  std::string body = RawFrame(3, w::Message::NONE, [](fb::FlatBufferBuilder&) {
    return fb::Offset<void>();
  });
  ExpectMalformed(body, "the frame carries no message");
  // A type tag without a body.
  body = RawFrame(3, w::Message::Describe, [](fb::FlatBufferBuilder&) {
    return fb::Offset<void>();
  });
  ExpectMalformed(body, "the frame carries no message");
}

TEST(ProtocolVerifyTest, UnknownMessageTypeIsASemanticError) {
  // A newer peer's message: answered, connection kept.
  for (int type : {24, 99, 255}) {
    std::string body = RawFrame(77, static_cast<w::Message>(type), [](fb::FlatBufferBuilder& fbb) {
      w::OkBuilder b(fbb);
      return b.Finish().Union();
    });
    ExpectSemantic(body,
                   absl::StrCat("unknown message type ", type,
                                " (this peer speaks protocol version 1)"),
                   77);
  }
}

// ---------------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------------

TEST(ProtocolVerifyTest, DepthLimit) {
  // SearchResults -> SearchResponse -> Hit -> Attribute -> Value -> StringItem: 7 tables deep.
  SearchResponse r = testing::SampleSearchResponse();
  const std::string body = Valid(msg::SearchResults{{r}});
  EXPECT_TRUE(DecodeFrame(body).ok());
  DecodeOptions shallow;
  shallow.max_depth = 6;
  ExpectMalformed(body, "over the limits of depth 6", shallow);
  shallow.max_depth = 7;
  EXPECT_TRUE(DecodeFrame(body, shallow).ok());
}

TEST(ProtocolVerifyTest, TableLimit) {
  const std::string body = SampleUpsertFrame();
  DecodeOptions few;
  few.max_tables = 5;
  ExpectMalformed(body, "and 5 tables", few);
}

// One Record table referenced many times from Upsert.records: honest encoders never share
// tables, and the default table limit (body / 4 + 64) stops the verifier from walking the same
// table over and over.
TEST(ProtocolVerifyTest, SharedTablesHitTheDefaultTableLimit) {
  constexpr int kRefs = 20000;
  std::string body = RawFrame(1, w::Message::Upsert, [](fb::FlatBufferBuilder& fbb) {
    auto field = fbb.CreateString("f");
    auto values = fbb.CreateVector(std::vector<float>{1, 2});
    w::VectorEntryBuilder vb(fbb);
    vb.add_field(field);
    vb.add_values(values);
    auto entry = vb.Finish();
    auto entries = fbb.CreateVector(std::vector<fb::Offset<w::VectorEntry>>{entry});
    auto id = fbb.CreateString("x");
    w::RecordBuilder rb(fbb);
    rb.add_id(id);
    rb.add_vectors(entries);
    auto record = rb.Finish();
    auto records = fbb.CreateVector(std::vector<fb::Offset<w::Record>>(kRefs, record));
    auto c = fbb.CreateString("c");
    w::UpsertBuilder ub(fbb);
    ub.add_collection(c);
    ub.add_records(records);
    return ub.Finish().Union();
  });
  // 4 bytes per reference, 2 tables visited per reference: over body / 4 + 64.
  ExpectMalformed(body, "flatbuffers verification failed");
}

// One big float vector referenced from many records passes the verifier (each visit is cheap)
// but would decode to gigabytes: the decode budget stops it before allocating.
TEST(ProtocolVerifyTest, SharedVectorsHitTheDecodeBudget) {
  constexpr int kRefs = 2000;
  constexpr size_t kFloats = 1 << 18;  // 1 MiB, decoded 2000 times = 2 GiB.
  std::string body = RawFrame(9, w::Message::Upsert, [](fb::FlatBufferBuilder& fbb) {
    auto values = fbb.CreateVector(std::vector<float>(kFloats, 0.5f));
    auto field = fbb.CreateString("f");
    w::VectorEntryBuilder vb(fbb);
    vb.add_field(field);
    vb.add_values(values);
    auto entry = vb.Finish();
    auto entries = fbb.CreateVector(std::vector<fb::Offset<w::VectorEntry>>{entry});
    std::vector<fb::Offset<w::Record>> records;
    for (int i = 0; i < kRefs; ++i) {
      auto id = fbb.CreateString(absl::StrCat("r", i));
      w::RecordBuilder rb(fbb);
      rb.add_id(id);
      rb.add_vectors(entries);
      records.push_back(rb.Finish());
    }
    auto records_v = fbb.CreateVector(records);
    auto c = fbb.CreateString("c");
    w::UpsertBuilder ub(fbb);
    ub.add_collection(c);
    ub.add_records(records_v);
    return ub.Finish().Union();
  });
  Outcome o = Decode(body);
  EXPECT_TRUE(o.failure.malformed) << o.status;
  EXPECT_EQ(o.failure.request_id, 9u);
  EXPECT_THAT(std::string(o.status.message()),
              HasSubstr(absl::StrCat("malformed frame: decoding exceeds the budget of ",
                                     64 * body.size() + (1 << 20), " bytes at Upsert.records[")));
}

// ---------------------------------------------------------------------------------------------
// Semantics
// ---------------------------------------------------------------------------------------------

fb::Offset<w::CollectionSchema> OneSpaceSchema(fb::FlatBufferBuilder& fbb, w::Metric metric,
                                               w::ValueType attribute_type) {
  auto sname = fbb.CreateString("s");
  w::SpaceBuilder spb(fbb);
  spb.add_name(sname);
  spb.add_dim(3);
  spb.add_metric(metric);
  auto space = spb.Finish();
  auto aname = fbb.CreateString("a");
  w::AttributeDeclBuilder ab(fbb);
  ab.add_name(aname);
  ab.add_type(attribute_type);
  auto attribute = ab.Finish();
  auto spaces = fbb.CreateVector(std::vector<fb::Offset<w::Space>>{space});
  auto attributes = fbb.CreateVector(std::vector<fb::Offset<w::AttributeDecl>>{attribute});
  auto name = fbb.CreateString("c");
  w::CollectionSchemaBuilder sb(fbb);
  sb.add_name(name);
  sb.add_spaces(spaces);
  sb.add_attributes(attributes);
  return sb.Finish();
}

std::string CreateWith(w::Metric metric, w::ValueType type) {
  return RawFrame(12, w::Message::CreateCollection, [&](fb::FlatBufferBuilder& fbb) {
    auto schema = OneSpaceSchema(fbb, metric, type);
    w::CreateCollectionBuilder b(fbb);
    b.add_schema(schema);
    return b.Finish().Union();
  });
}

TEST(ProtocolVerifyTest, UnknownEnumValuesInSchemas) {
  EXPECT_TRUE(DecodeFrame(CreateWith(w::Metric::L2, w::ValueType::StringList)).ok());
  ExpectSemantic(CreateWith(static_cast<w::Metric>(3), w::ValueType::String),
                 "CreateCollection.schema.spaces[0].metric: unknown value 3 (valid: 0 .. 2)", 12);
  ExpectSemantic(CreateWith(w::Metric::Ip, static_cast<w::ValueType>(200)),
                 "CreateCollection.schema.attributes[0].type: unknown value 200 (valid: 0 .. 4)",
                 12);
}

// A Search with one request; `tweak` adjusts the request builder (enums) and `predicate` (if
// given) builds one predicate.
template <class Tweak>
std::string SearchWith(Tweak&& tweak, w::PredicateTarget target, w::FilterOp op,
                       fb::Offset<w::Value> (*value)(fb::FlatBufferBuilder&)) {
  return RawFrame(21, w::Message::Search, [&](fb::FlatBufferBuilder& fbb) {
    auto v = value(fbb);
    auto values = fbb.CreateVector(std::vector<fb::Offset<w::Value>>{v});
    auto key = fbb.CreateString("lang");
    w::PredicateBuilder pb(fbb);
    pb.add_target(target);
    pb.add_key(key);
    pb.add_op(op);
    pb.add_values(values);
    auto predicate = pb.Finish();
    auto predicates = fbb.CreateVector(std::vector<fb::Offset<w::Predicate>>{predicate});
    w::FilterBuilder fbld(fbb);
    fbld.add_predicates(predicates);
    auto filter = fbld.Finish();
    auto vec = fbb.CreateVector(std::vector<float>{1, 2, 3});
    auto space = fbb.CreateString("s");
    w::QueryInputBuilder qb(fbb);
    qb.add_vector(vec);
    qb.add_space(space);
    auto input = qb.Finish();
    auto inputs = fbb.CreateVector(std::vector<fb::Offset<w::QueryInput>>{input});
    w::SearchRequestBuilder rb(fbb);
    rb.add_inputs(inputs);
    rb.add_filter(filter);
    tweak(rb);
    auto request = rb.Finish();
    auto requests = fbb.CreateVector(std::vector<fb::Offset<w::SearchRequest>>{request});
    auto c = fbb.CreateString("c");
    w::SearchBuilder sb(fbb);
    sb.add_collection(c);
    sb.add_requests(requests);
    return sb.Finish().Union();
  });
}

fb::Offset<w::Value> StringValue(fb::FlatBufferBuilder& fbb) {
  auto s = fbb.CreateString("en");
  w::ValueBuilder b(fbb);
  b.add_type(w::ValueType::String);
  b.add_string_value(s);
  return b.Finish();
}
fb::Offset<w::Value> IntWithString(fb::FlatBufferBuilder& fbb) {
  auto s = fbb.CreateString("en");
  w::ValueBuilder b(fbb);
  b.add_type(w::ValueType::Int);
  b.add_string_value(s);
  return b.Finish();
}
fb::Offset<w::Value> StringWithoutString(fb::FlatBufferBuilder& fbb) {
  w::ValueBuilder b(fbb);
  b.add_type(w::ValueType::String);
  return b.Finish();
}
fb::Offset<w::Value> StringWithBool(fb::FlatBufferBuilder& fbb) {
  auto s = fbb.CreateString("en");
  w::ValueBuilder b(fbb);
  b.add_string_value(s);
  b.add_bool_value(true);
  return b.Finish();
}
fb::Offset<w::Value> ListValue(fb::FlatBufferBuilder& fbb) {
  auto list = fbb.CreateVector(std::vector<fb::Offset<w::StringItem>>{});
  w::ValueBuilder b(fbb);
  b.add_type(w::ValueType::StringList);
  b.add_string_list(list);
  return b.Finish();
}
fb::Offset<w::Value> BadTypeValue(fb::FlatBufferBuilder& fbb) {
  w::ValueBuilder b(fbb);
  b.add_type(static_cast<w::ValueType>(5));
  return b.Finish();
}

constexpr auto kNoTweak = [](w::SearchRequestBuilder&) {};

TEST(ProtocolVerifyTest, UnknownEnumValuesInQueries) {
  using T = w::PredicateTarget;
  using Op = w::FilterOp;
  EXPECT_TRUE(DecodeFrame(SearchWith(kNoTweak, T::Provenance, Op::Lte, StringValue)).ok());
  ExpectSemantic(SearchWith([](w::SearchRequestBuilder& b) { b.add_fusion(static_cast<w::Fusion>(3)); },
                            T::Attribute, Op::Eq, StringValue),
                 "Search.requests[0].fusion: unknown value 3 (valid: 0 .. 2)", 21);
  ExpectSemantic(
      SearchWith([](w::SearchRequestBuilder& b) { b.add_normalize(static_cast<w::Normalize>(4)); },
                 T::Attribute, Op::Eq, StringValue),
      "Search.requests[0].normalize: unknown value 4 (valid: 0 .. 3)", 21);
  ExpectSemantic(
      SearchWith([](w::SearchRequestBuilder& b) { b.add_missing(static_cast<w::Missing>(255)); },
                 T::Attribute, Op::Eq, StringValue),
      "Search.requests[0].missing: unknown value 255 (valid: 0 .. 2)", 21);
  ExpectSemantic(SearchWith(kNoTweak, static_cast<T>(2), Op::Eq, StringValue),
                 "Search.requests[0].filter.predicates[0].target: unknown value 2 (valid: 0 .. 1)",
                 21);
  ExpectSemantic(SearchWith(kNoTweak, T::Attribute, static_cast<Op>(7), StringValue),
                 "Search.requests[0].filter.predicates[0].op: unknown value 7 (valid: 0 .. 6)", 21);
  ExpectSemantic(SearchWith(kNoTweak, T::Attribute, Op::Eq, BadTypeValue),
                 "Search.requests[0].filter.predicates[0].values[0].type: unknown value 5 "
                 "(valid: 0 .. 4)",
                 21);
}

TEST(ProtocolVerifyTest, TypedValuesMustMatchTheirTag) {
  using T = w::PredicateTarget;
  using Op = w::FilterOp;
  ExpectSemantic(SearchWith(kNoTweak, T::Attribute, Op::Eq, IntWithString),
                 "Search.requests[0].filter.predicates[0].values[0]: type is Int but "
                 "string_value is set",
                 21);
  ExpectSemantic(SearchWith(kNoTweak, T::Attribute, Op::Eq, StringWithBool),
                 "Search.requests[0].filter.predicates[0].values[0]: type is String but "
                 "bool_value is set",
                 21);
  ExpectSemantic(SearchWith(kNoTweak, T::Attribute, Op::Eq, StringWithoutString),
                 "Search.requests[0].filter.predicates[0].values[0].string_value: missing", 21);
  ExpectSemantic(SearchWith(kNoTweak, T::Attribute, Op::In, ListValue),
                 "Search.requests[0].filter.predicates[0].values[0]: a filter value cannot be a "
                 "StringList",
                 21);
}

TEST(ProtocolVerifyTest, OtherEnumsAndCodes) {
  std::string body = RawFrame(4, w::Message::HelloReply, [](fb::FlatBufferBuilder& fbb) {
    w::HelloReplyBuilder b(fbb);
    b.add_role(static_cast<w::Role>(3));
    return b.Finish().Union();
  });
  ExpectSemantic(body, "HelloReply.role: unknown value 3 (valid: 0 .. 2)", 4);
  for (uint32_t code : {0u, 17u, 0xffffffffu}) {
    body = RawFrame(5, w::Message::Error, [&](fb::FlatBufferBuilder& fbb) {
      auto m = fbb.CreateString("x");
      w::ErrorBuilder b(fbb);
      b.add_code(code);
      b.add_message(m);
      return b.Finish().Union();
    });
    ExpectSemantic(body, absl::StrCat("Error.code: unknown status code ", code, " (valid: 1 .. 16)"),
                   5);
  }
}

TEST(ProtocolVerifyTest, RequiredFields) {
  // A record without an id.
  std::string body = RawFrame(8, w::Message::Upsert, [](fb::FlatBufferBuilder& fbb) {
    w::RecordBuilder rb(fbb);
    auto record = rb.Finish();
    auto records = fbb.CreateVector(std::vector<fb::Offset<w::Record>>{record});
    auto c = fbb.CreateString("c");
    w::UpsertBuilder ub(fbb);
    ub.add_collection(c);
    ub.add_records(records);
    return ub.Finish().Union();
  });
  ExpectSemantic(body, "Upsert.records[0].id: missing", 8);
  // A vector entry without values.
  body = RawFrame(8, w::Message::Upsert, [](fb::FlatBufferBuilder& fbb) {
    auto f = fbb.CreateString("image");
    w::VectorEntryBuilder vb(fbb);
    vb.add_field(f);
    auto entry = vb.Finish();
    auto entries = fbb.CreateVector(std::vector<fb::Offset<w::VectorEntry>>{entry});
    auto id = fbb.CreateString("p1");
    w::RecordBuilder rb(fbb);
    rb.add_id(id);
    rb.add_vectors(entries);
    auto record = rb.Finish();
    auto records = fbb.CreateVector(std::vector<fb::Offset<w::Record>>{record});
    auto c = fbb.CreateString("c");
    w::UpsertBuilder ub(fbb);
    ub.add_collection(c);
    ub.add_records(records);
    return ub.Finish().Union();
  });
  ExpectSemantic(body, "Upsert.records[0].vectors[0].values: missing", 8);
  // Collection names, schemas, import data.
  body = RawFrame(2, w::Message::Describe, [](fb::FlatBufferBuilder& fbb) {
    w::DescribeBuilder b(fbb);
    return b.Finish().Union();
  });
  ExpectSemantic(body, "Describe.collection: missing", 2);
  body = RawFrame(2, w::Message::CreateCollection, [](fb::FlatBufferBuilder& fbb) {
    w::CreateCollectionBuilder b(fbb);
    return b.Finish().Union();
  });
  ExpectSemantic(body, "CreateCollection.schema: missing", 2);
  body = RawFrame(2, w::Message::Import, [](fb::FlatBufferBuilder& fbb) {
    auto c = fbb.CreateString("c");
    auto f = fbb.CreateString("f");
    w::ImportBuilder b(fbb);
    b.add_collection(c);
    b.add_field(f);
    return b.Finish().Union();
  });
  ExpectSemantic(body, "Import.data: missing", 2);
}

TEST(ProtocolVerifyTest, DuplicateNames) {
  std::string body = RawFrame(3, w::Message::Upsert, [](fb::FlatBufferBuilder& fbb) {
    std::vector<fb::Offset<w::Attribute>> attributes;
    for (int i = 0; i < 2; ++i) {
      auto name = fbb.CreateString("lang");
      auto s = fbb.CreateString(i == 0 ? "en" : "fr");
      w::ValueBuilder vb(fbb);
      vb.add_string_value(s);
      auto value = vb.Finish();
      w::AttributeBuilder ab(fbb);
      ab.add_name(name);
      ab.add_value(value);
      attributes.push_back(ab.Finish());
    }
    auto attributes_v = fbb.CreateVector(attributes);
    auto id = fbb.CreateString("p1");
    w::RecordBuilder rb(fbb);
    rb.add_id(id);
    rb.add_attributes(attributes_v);
    auto record = rb.Finish();
    auto records = fbb.CreateVector(std::vector<fb::Offset<w::Record>>{record});
    auto c = fbb.CreateString("c");
    w::UpsertBuilder ub(fbb);
    ub.add_collection(c);
    ub.add_records(records);
    return ub.Finish().Union();
  });
  ExpectSemantic(body, "Upsert.records[0].attributes[1].name: duplicate attribute \"lang\"", 3);

  body = RawFrame(3, w::Message::CreateCollection, [](fb::FlatBufferBuilder& fbb) {
    std::vector<fb::Offset<w::Space>> spaces;
    for (int i = 0; i < 2; ++i) {
      auto n = fbb.CreateString("clip");
      w::SpaceBuilder b(fbb);
      b.add_name(n);
      b.add_dim(4 + i);
      spaces.push_back(b.Finish());
    }
    auto spaces_v = fbb.CreateVector(spaces);
    auto name = fbb.CreateString("c");
    w::CollectionSchemaBuilder sb(fbb);
    sb.add_name(name);
    sb.add_spaces(spaces_v);
    auto schema = sb.Finish();
    w::CreateCollectionBuilder cb(fbb);
    cb.add_schema(schema);
    return cb.Finish().Union();
  });
  ExpectSemantic(body, "CreateCollection.schema.spaces[1].name: duplicate space \"clip\"", 3);
}

std::string ImportFrame(uint64_t rows, uint64_t dim, size_t floats) {
  return RawFrame(6, w::Message::Import, [&](fb::FlatBufferBuilder& fbb) {
    auto c = fbb.CreateString("c");
    auto f = fbb.CreateString("f");
    auto data = fbb.CreateVector(std::vector<float>(floats, 1.0f));
    w::ImportBuilder b(fbb);
    b.add_collection(c);
    b.add_field(f);
    b.add_rows(rows);
    b.add_dim(dim);
    b.add_data(data);
    return b.Finish().Union();
  });
}

TEST(ProtocolVerifyTest, ImportShapes) {
  EXPECT_TRUE(DecodeFrame(ImportFrame(3, 4, 12)).ok());
  EXPECT_TRUE(DecodeFrame(ImportFrame(0, 4, 0)).ok());
  // The embedded client's messages, so both modes fail alike.
  ExpectSemantic(ImportFrame(3, 4, 11), "import: 11 floats given for 3 rows of 4 components", 6);
  ExpectSemantic(ImportFrame(3, 4, 13), "import: 13 floats given for 3 rows of 4 components", 6);
  ExpectSemantic(ImportFrame(0, 4, 1), "import: 1 floats given for 0 rows of 4 components", 6);
  // rows * dim overflows 64 bits: still a mismatch, not a wrap-around match.
  ExpectSemantic(ImportFrame(65536, uint64_t{1} << 48, 0),
                 "import: 0 floats given for 65536 rows of 281474976710656 components", 6);
  ExpectSemantic(ImportFrame(65537, 1, 65537),
                 "import: 65537 rows in one call; at most 65536 per atomic batch", 6);
  ExpectSemantic(ImportFrame(uint64_t{1} << 40, 1, 0),
                 "import: 1099511627776 rows in one call; at most 65536 per atomic batch", 6);
}

TEST(ProtocolVerifyTest, UpsertBatchLimit) {
  std::vector<Record> records(65537);
  for (size_t i = 0; i < records.size(); ++i) records[i].id = absl::StrCat(i);
  const std::string body = Valid(msg::Upsert{"c", std::move(records)}, 31);
  ExpectSemantic(body, "upsert: 65537 records in one call; at most 65536 per atomic batch", 31);
}

TEST(ProtocolVerifyTest, HelloSizes) {
  msg::Hello hello;
  hello.token = std::string(kMaxTokenBytes, 't');
  hello.client = std::string(kMaxClientNameBytes, 'c');
  const std::string ok = Valid(hello, 1);
  EXPECT_LE(ok.size(), kMaxPreHelloFrameBytes);  // the longest Hello fits before the handshake.
  EXPECT_TRUE(DecodeFrame(ok).ok());
  hello.token.push_back('t');
  ExpectSemantic(Valid(hello, 1), "Hello.token: 1025 bytes; at most 1024", 1);
  hello.token.pop_back();
  hello.client.push_back('c');
  ExpectSemantic(Valid(hello, 1), "Hello.client: 257 bytes; at most 256", 1);
}

// ---------------------------------------------------------------------------------------------
// Indexes and telemetry (BuildIndex, IndexProgress, Stats and their replies; index specs, search
// plans and segment lists)
// ---------------------------------------------------------------------------------------------

namespace telemetry_cases {

std::string CreateWithIndexType(w::IndexType type) {
  return RawFrame(13, w::Message::CreateCollection, [&](fb::FlatBufferBuilder& fbb) {
    auto sname = fbb.CreateString("s");
    w::SpaceBuilder spb(fbb);
    spb.add_name(sname);
    spb.add_dim(4);
    auto space = spb.Finish();
    w::IndexSpecBuilder ib(fbb);
    ib.add_type(type);
    ib.add_nlist(8);
    auto index = ib.Finish();
    auto fname = fbb.CreateString("f");
    auto fspace = fbb.CreateString("s");
    auto fmod = fbb.CreateString("image");
    w::FieldBuilder fb(fbb);
    fb.add_name(fname);
    fb.add_space(fspace);
    fb.add_modality(fmod);
    fb.add_index(index);
    auto field = fb.Finish();
    auto spaces = fbb.CreateVector(std::vector<fb::Offset<w::Space>>{space});
    auto fields = fbb.CreateVector(std::vector<fb::Offset<w::Field>>{field});
    auto name = fbb.CreateString("c");
    w::CollectionSchemaBuilder sb(fbb);
    sb.add_name(name);
    sb.add_spaces(spaces);
    sb.add_fields(fields);
    auto schema = sb.Finish();
    w::CreateCollectionBuilder cb(fbb);
    cb.add_schema(schema);
    return cb.Finish().Union();
  });
}

// A SearchResults with one response whose plan has entries for `fields` (nullptr = no field).
std::string ResultsWithPlan(const std::vector<const char*>& fields) {
  return RawFrame(14, w::Message::SearchResults, [&](fb::FlatBufferBuilder& fbb) {
    std::vector<fb::Offset<w::FieldPlan>> plan;
    for (const char* f : fields) {
      fb::Offset<fb::String> name;
      if (f != nullptr) name = fbb.CreateString(f);
      auto ix = fbb.CreateString("ivf_pq");
      w::FieldPlanBuilder b(fbb);
      if (f != nullptr) b.add_field(name);
      b.add_index(ix);
      b.add_candidates(40);
      plan.push_back(b.Finish());
    }
    auto plan_v = fbb.CreateVector(plan);
    w::SearchResponseBuilder rb(fbb);
    rb.add_exact(false);
    rb.add_plan(plan_v);
    auto response = rb.Finish();
    auto responses = fbb.CreateVector(std::vector<fb::Offset<w::SearchResponse>>{response});
    w::SearchResultsBuilder b(fbb);
    b.add_responses(responses);
    return b.Finish().Union();
  });
}

// A CollectionInfo whose one segment lists indexes of `fields` (nullptr = no field name).
std::string InfoWithSegmentFields(const std::vector<const char*>& fields) {
  return RawFrame(15, w::Message::CollectionInfo, [&](fb::FlatBufferBuilder& fbb) {
    auto schema = OneSpaceSchema(fbb, w::Metric::Ip, w::ValueType::Int);
    std::vector<fb::Offset<w::SegmentFieldIndex>> indexes;
    for (const char* f : fields) {
      fb::Offset<fb::String> name;
      if (f != nullptr) name = fbb.CreateString(f);
      w::SegmentFieldIndexBuilder b(fbb);
      if (f != nullptr) b.add_field(name);
      b.add_vectors(3);
      indexes.push_back(b.Finish());
    }
    auto indexes_v = fbb.CreateVector(indexes);
    auto state = fbb.CreateString("ready");
    w::SegmentInfoBuilder sb(fbb);
    sb.add_id(1);
    sb.add_state(state);
    sb.add_fields(indexes_v);
    auto segment = sb.Finish();
    auto segments = fbb.CreateVector(std::vector<fb::Offset<w::SegmentInfo>>{segment});
    w::CollectionInfoBuilder b(fbb);
    b.add_schema(schema);
    b.add_segment_list(segments);
    return b.Finish().Union();
  });
}

// A StatsReply whose `requests` list has the given operation names (nullptr = none given).
std::string StatsWithRequests(const std::vector<const char*>& operations) {
  return RawFrame(16, w::Message::StatsReply, [&](fb::FlatBufferBuilder& fbb) {
    std::vector<fb::Offset<w::LatencyStats>> list;
    for (const char* op : operations) {
      fb::Offset<fb::String> name;
      if (op != nullptr) name = fbb.CreateString(op);
      w::LatencyStatsBuilder b(fbb);
      if (op != nullptr) b.add_operation(name);
      b.add_count(1);
      list.push_back(b.Finish());
    }
    auto list_v = fbb.CreateVector(list);
    w::StatsReplyBuilder b(fbb);
    b.add_requests(list_v);
    return b.Finish().Union();
  });
}

}  // namespace telemetry_cases

TEST(ProtocolVerifyTest, IndexTypeOutOfRange) {
  using telemetry_cases::CreateWithIndexType;
  ASSERT_OK_AND_ASSIGN(Frame ok, DecodeFrame(CreateWithIndexType(w::IndexType::IvfPq)));
  const Field& f = std::get<msg::CreateCollection>(ok.message).schema.fields.at("f");
  EXPECT_EQ(f.index, (IndexSpec{IndexType::kIvfPq, 8, 0, 0}));
  ExpectSemantic(CreateWithIndexType(static_cast<w::IndexType>(2)),
                 "CreateCollection.schema.fields[0].index.type: unknown value 2 (valid: 0 .. 1)",
                 13);
  ExpectSemantic(CreateWithIndexType(static_cast<w::IndexType>(255)),
                 "CreateCollection.schema.fields[0].index.type: unknown value 255 (valid: 0 .. 1)",
                 13);
}

TEST(ProtocolVerifyTest, IndexAndStatsRequiredFields) {
  std::string body = RawFrame(17, w::Message::BuildIndex, [](fb::FlatBufferBuilder& fbb) {
    auto f = fbb.CreateString("image");
    w::BuildIndexBuilder b(fbb);
    b.add_field(f);
    return b.Finish().Union();
  });
  ExpectSemantic(body, "BuildIndex.collection: missing", 17);
  // The field is optional: absent = every ivf_pq field.
  body = RawFrame(17, w::Message::BuildIndex, [](fb::FlatBufferBuilder& fbb) {
    auto c = fbb.CreateString("photos");
    w::BuildIndexBuilder b(fbb);
    b.add_collection(c);
    return b.Finish().Union();
  });
  ASSERT_OK_AND_ASSIGN(Frame build, DecodeFrame(body));
  EXPECT_EQ(Canon(build.message), Canon(msg::BuildIndex{"photos", ""}));
  body = RawFrame(18, w::Message::IndexProgress, [](fb::FlatBufferBuilder& fbb) {
    w::IndexProgressBuilder b(fbb);
    return b.Finish().Union();
  });
  ExpectSemantic(body, "IndexProgress.collection: missing", 18);
  // Replies: names in plans, segment lists and latency lists are required.
  ExpectSemantic(telemetry_cases::ResultsWithPlan({"image", nullptr}),
                 "SearchResults.responses[0].plan[1].field: missing", 14);
  ExpectSemantic(telemetry_cases::InfoWithSegmentFields({nullptr}),
                 "CollectionInfo.segment_list[0].fields[0].field: missing", 15);
  ExpectSemantic(telemetry_cases::StatsWithRequests({"request.search", nullptr}),
                 "StatsReply.requests[1].operation: missing", 16);
  // Empty messages and replies decode to the defaults.
  body = RawFrame(19, w::Message::Stats, [](fb::FlatBufferBuilder& fbb) {
    w::StatsBuilder b(fbb);
    return b.Finish().Union();
  });
  ASSERT_OK_AND_ASSIGN(Frame stats, DecodeFrame(body));
  EXPECT_TRUE(std::holds_alternative<msg::Stats>(stats.message));
  body = RawFrame(20, w::Message::IndexProgressReply, [](fb::FlatBufferBuilder& fbb) {
    w::IndexProgressReplyBuilder b(fbb);
    b.add_building(2);
    return b.Finish().Union();
  });
  ASSERT_OK_AND_ASSIGN(Frame progress, DecodeFrame(body));
  EXPECT_EQ(Canon(progress.message), Canon(IndexBuildProgress{0, 0, 2, 0, 0}));
  body = RawFrame(21, w::Message::StatsReply, [](fb::FlatBufferBuilder& fbb) {
    w::StatsReplyBuilder b(fbb);
    return b.Finish().Union();
  });
  ASSERT_OK_AND_ASSIGN(Frame empty_stats, DecodeFrame(body));
  EXPECT_EQ(Canon(empty_stats.message), Canon(DatabaseStats{}));
}

TEST(ProtocolVerifyTest, IndexAndStatsDuplicateNames) {
  EXPECT_TRUE(DecodeFrame(telemetry_cases::ResultsWithPlan({"image", "caption"})).ok());
  ExpectSemantic(telemetry_cases::ResultsWithPlan({"image", "caption", "image"}),
                 "SearchResults.responses[0].plan[2].field: duplicate field \"image\"", 14);
  EXPECT_TRUE(DecodeFrame(telemetry_cases::InfoWithSegmentFields({"a", "b"})).ok());
  ExpectSemantic(telemetry_cases::InfoWithSegmentFields({"a", "a"}),
                 "CollectionInfo.segment_list[0].fields[1].field: duplicate field \"a\"", 15);
  EXPECT_TRUE(DecodeFrame(telemetry_cases::StatsWithRequests({"request.get", "request.search"}))
                  .ok());
  ExpectSemantic(telemetry_cases::StatsWithRequests({"request.get", "request.get"}),
                 "StatsReply.requests[1].operation: duplicate operation \"request.get\"", 16);
}

// Shared tables cannot inflate a latency list: a StatsReply whose 200000 entries all point at
// one LatencyStats table (with a long name) stops at the second entry, a duplicate, before
// decoding the rest; the decode budget would stop it otherwise.
TEST(ProtocolVerifyTest, SharedLatencyEntriesStopAtTheFirstDuplicate) {
  const std::string body = RawFrame(22, w::Message::StatsReply, [](fb::FlatBufferBuilder& fbb) {
    auto name = fbb.CreateString(std::string(400, 'x'));
    w::LatencyStatsBuilder lb(fbb);
    lb.add_operation(name);
    auto one = lb.Finish();
    std::vector<fb::Offset<w::LatencyStats>> list(200000, one);
    auto list_v = fbb.CreateVector(list);
    w::StatsReplyBuilder b(fbb);
    b.add_operations(list_v);
    return b.Finish().Union();
  });
  ExpectSemantic(body,
                 absl::StrCat("StatsReply.operations[1].operation: duplicate operation \"",
                              std::string(400, 'x'), "\""),
                 22);
}

}  // namespace
}  // namespace rosetta::net
