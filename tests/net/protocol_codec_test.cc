// The wire codec (net/protocol.h): round trips of every message, defaults of absent fields,
// exact float bits, framing helpers, size limits, and the fixed wire numbering.
#include "net/protocol.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "flatbuffers/flatbuffers.h"
#include "gtest/gtest.h"
#include "schema/protocol_generated.h"
#include "tests/net/protocol_testing.h"
#include "tests/testing/testing.h"

namespace rosetta::net {
namespace {

namespace w = ::rosetta::wire;
using testing::Canon;

std::vector<float> ImportData() {
  std::vector<float> v(12);
  for (size_t i = 0; i < v.size(); ++i) v[i] = 0.25f * static_cast<float>(i) - 1.0f;
  return v;
}

TEST(ProtocolCodecTest, EveryMessageRoundTrips) {
  const std::vector<float> data = ImportData();
  std::vector<Message> messages = testing::AllSampleMessages(data);
  // Every alternative of the variant is covered.
  std::vector<bool> seen(std::variant_size_v<Message>, false);
  uint64_t request_id = 1;
  for (const Message& m : messages) {
    seen[m.index()] = true;
    SCOPED_TRACE(Canon(m));
    request_id = request_id * 6364136223846793005ULL + 1442695040888963407ULL;
    ASSERT_OK_AND_ASSIGN(std::string body, EncodeFrame(request_id, m));
    DecodeFailure failure;
    absl::StatusOr<Frame> frame = DecodeFrame(body, {}, &failure);
    ASSERT_TRUE(frame.ok()) << frame.status();
    EXPECT_EQ(frame->request_id, request_id);
    EXPECT_EQ(frame->message.index(), m.index());
    EXPECT_EQ(Canon(frame->message), Canon(m));
    EXPECT_STREQ(MessageName(frame->message), MessageName(m));
    EXPECT_EQ(IsRequest(frame->message), IsRequest(m));
    // The bounds used to refuse oversized frames before building them hold.
    const EncodedSize bound = EstimateEncodedSize(m);
    EXPECT_LE(bound.lower, body.size());
    EXPECT_GE(bound.upper, body.size());
  }
  for (size_t i = 0; i < seen.size(); ++i) EXPECT_TRUE(seen[i]) << "variant alternative " << i;
}

TEST(ProtocolCodecTest, RequestsAndRepliesAreClassified) {
  const std::vector<float> data = ImportData();
  for (const Message& m : testing::AllSampleMessages(data)) {
    const std::string name = MessageName(m);
    const bool reply = name == "HelloReply" || name == "Ok" || name == "WriteResult" ||
                       name == "CollectionList" || name == "CollectionInfo" ||
                       name == "GetResult" || name == "SearchResults" || name == "Error" ||
                       name == "IndexProgressReply" || name == "StatsReply";
    EXPECT_EQ(IsRequest(m), !reply) << name;
  }
}

TEST(ProtocolCodecTest, FloatBitsSurviveExactly) {
  // NaN payloads, signed zeros, infinities, denormals: the codec moves bits, it never rounds or
  // canonicalises (validation, not the codec, rejects non-finite values).
  std::vector<float> special = {
      std::bit_cast<float>(0x7fc00001u), std::bit_cast<float>(0xffbfffffu), -0.0f, 0.0f,
      std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
      std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::max(),
      std::nextafter(1.0f, 2.0f)};
  Record r;
  r.id = "bits";
  r.vectors["image"] = special;
  r.weights["image"] = std::bit_cast<float>(0x7f800001u);
  r.attributes["score"] = std::bit_cast<double>(0x7ff0000000000001ull);
  msg::Upsert upsert{"c", {r}};
  ASSERT_OK_AND_ASSIGN(std::string body, EncodeFrame(7, upsert));
  ASSERT_OK_AND_ASSIGN(Frame frame, DecodeFrame(body));
  const auto& got = std::get<msg::Upsert>(frame.message).records.at(0);
  ASSERT_EQ(got.vectors.at("image").size(), special.size());
  EXPECT_EQ(std::memcmp(got.vectors.at("image").data(), special.data(), 4 * special.size()), 0);
  EXPECT_EQ(std::bit_cast<uint32_t>(got.weights.at("image")), 0x7f800001u);
  EXPECT_EQ(std::bit_cast<uint64_t>(std::get<double>(got.attributes.at("score"))),
            0x7ff0000000000001ull);
}

TEST(ProtocolCodecTest, RandomRecordsRoundTrip) {
  const uint64_t seed = rosetta::testing::TestSeed(20250809);
  SCOPED_TRACE(rosetta::testing::SeedTrace(seed));
  std::mt19937_64 rng(seed);
  auto rand_string = [&](size_t max_len) {
    std::string s(rng() % (max_len + 1), '\0');
    for (char& c : s) c = static_cast<char>(rng() % 256);  // any bytes: the codec is binary-safe.
    return s;
  };
  for (int round = 0; round < 50; ++round) {
    std::vector<Record> records(rng() % 20);
    for (Record& r : records) {
      r.id = rand_string(40);
      const int nv = static_cast<int>(rng() % 4);
      for (int f = 0; f < nv; ++f) {
        std::vector<float> v(rng() % 300);
        for (float& x : v) x = std::bit_cast<float>(static_cast<uint32_t>(rng()));
        r.vectors[rand_string(8)] = std::move(v);
      }
      const int na = static_cast<int>(rng() % 6);
      for (int a = 0; a < na; ++a) {
        AttributeValue value;
        switch (rng() % 5) {
          case 0:
            value = rand_string(30);
            break;
          case 1:
            value = static_cast<int64_t>(rng());
            break;
          case 2:
            value = std::bit_cast<double>(rng());
            break;
          case 3:
            value = (rng() & 1) != 0;
            break;
          default: {
            std::vector<std::string> list(rng() % 4);
            for (std::string& s : list) s = rand_string(10);
            value = std::move(list);
          }
        }
        r.attributes[rand_string(6)] = std::move(value);
      }
      if (rng() % 2) r.provenance.source = rand_string(10);
      if (rng() % 2) r.provenance.steps = {rand_string(5), rand_string(5)};
    }
    const Message m = msg::Upsert{rand_string(12), std::move(records)};
    ASSERT_OK_AND_ASSIGN(std::string body, EncodeFrame(round, m));
    ASSERT_OK_AND_ASSIGN(Frame frame, DecodeFrame(body));
    EXPECT_EQ(Canon(frame.message), Canon(m));
    const EncodedSize bound = EstimateEncodedSize(m);
    EXPECT_LE(bound.lower, body.size());
    EXPECT_GE(bound.upper, body.size());
  }
}

TEST(ProtocolCodecTest, ImportDataIsViewedWhenAlignedAndCopiedOtherwise) {
  const std::vector<float> data = ImportData();
  msg::Import m;
  m.request.collection = "c";
  m.request.field = "image";
  m.request.data = data;
  m.request.rows = 3;
  m.request.dim = 4;
  const Message sent(std::move(m));
  ASSERT_OK_AND_ASSIGN(std::string body, EncodeFrame(1, sent));
  {
    ASSERT_OK_AND_ASSIGN(Frame frame, DecodeFrame(body));
    const auto& got = std::get<msg::Import>(frame.message);
    const char* p = reinterpret_cast<const char*>(got.request.data.data());
    EXPECT_TRUE(p >= body.data() && p < body.data() + body.size()) << "expected a zero-copy view";
    EXPECT_TRUE(got.storage.empty());
    EXPECT_EQ(Canon(frame.message), Canon(sent));
  }
  // The same body at an odd address: decoded into owned storage.
  std::string shifted = " " + body;
  std::string_view odd(shifted.data() + 1, body.size());
  ASSERT_OK_AND_ASSIGN(Frame frame, DecodeFrame(odd));
  const auto& got = std::get<msg::Import>(frame.message);
  EXPECT_EQ(got.storage.size(), data.size());
  EXPECT_EQ(got.request.data.data(), got.storage.data());
  EXPECT_EQ(std::vector<float>(got.request.data.begin(), got.request.data.end()), data);
}

using testing::RawFrame;

TEST(ProtocolCodecTest, AbsentFieldsMeanTheModelDefaults) {
  // A Search whose request sets only one input vector: every other member takes the defaults of
  // schema/types.h (k 10, weighted, calibrated, renormalize, exact false, nprobe and refine 0,
  // explain and with_attributes true).
  std::string body = RawFrame(5, w::Message::Search, [](flatbuffers::FlatBufferBuilder& fbb) {
    auto vec = fbb.CreateVector(std::vector<float>{1, 2});
    w::QueryInputBuilder qi(fbb);
    qi.add_vector(vec);
    auto input = qi.Finish();
    auto inputs = fbb.CreateVector(std::vector<flatbuffers::Offset<w::QueryInput>>{input});
    w::SearchRequestBuilder rb(fbb);
    rb.add_inputs(inputs);
    auto request = rb.Finish();
    auto requests = fbb.CreateVector(std::vector<flatbuffers::Offset<w::SearchRequest>>{request});
    auto name = fbb.CreateString("c");
    w::SearchBuilder sb(fbb);
    sb.add_collection(name);
    sb.add_requests(requests);
    return sb.Finish().Union();
  });
  ASSERT_OK_AND_ASSIGN(Frame frame, DecodeFrame(body));
  EXPECT_EQ(frame.request_id, 5u);
  const auto& search = std::get<msg::Search>(frame.message);
  ASSERT_EQ(search.requests.size(), 1u);
  SearchRequest want;
  QueryInput in;
  in.vector = {1, 2};
  want.inputs.push_back(in);
  EXPECT_EQ(Canon(search.requests[0]), Canon(want));

  // A schema whose field has no weight: 1.0; a space without encoder: "".
  body = RawFrame(6, w::Message::CreateCollection, [](flatbuffers::FlatBufferBuilder& fbb) {
    auto sname = fbb.CreateString("s");
    w::SpaceBuilder spb(fbb);
    spb.add_name(sname);
    spb.add_dim(3);
    auto space = spb.Finish();
    auto fname = fbb.CreateString("f");
    auto fspace = fbb.CreateString("s");
    auto fmod = fbb.CreateString("text");
    w::FieldBuilder fb(fbb);
    fb.add_name(fname);
    fb.add_space(fspace);
    fb.add_modality(fmod);
    auto field = fb.Finish();
    auto spaces = fbb.CreateVector(std::vector<flatbuffers::Offset<w::Space>>{space});
    auto fields = fbb.CreateVector(std::vector<flatbuffers::Offset<w::Field>>{field});
    auto cname = fbb.CreateString("c");
    w::CollectionSchemaBuilder sb(fbb);
    sb.add_name(cname);
    sb.add_spaces(spaces);
    sb.add_fields(fields);
    auto schema = sb.Finish();
    w::CreateCollectionBuilder cb(fbb);
    cb.add_schema(schema);
    return cb.Finish().Union();
  });
  ASSERT_OK_AND_ASSIGN(frame, DecodeFrame(body));
  const auto& schema = std::get<msg::CreateCollection>(frame.message).schema;
  EXPECT_EQ(schema.fields.at("f").weight, 1.0f);
  EXPECT_EQ(schema.spaces.at("s").encoder, "");
  EXPECT_EQ(schema.spaces.at("s").metric, Metric::kCosine);
  EXPECT_TRUE(schema.attributes.empty());
}

std::string FromHex(std::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

// Frames built by an independent encoder: `flatc -b schema/protocol.fbs frame.json` from the
// JSON shown (flatc lays tables out differently from our builder). What a client in another
// language sends must decode the same.
TEST(ProtocolCodecTest, FramesBuiltByFlatcDecode) {
  // {"request_id": 1, "body_type": "Hello",
  //  "body": {"protocol_version": 1, "token": "tok", "client": "py"}}
  ASSERT_OK_AND_ASSIGN(
      Frame hello,
      DecodeFrame(FromHex("140000005253544100000a001a000c00070008000a000000000000011c00000001000000"
                          "000000000000000000000a001000040008000c000a0000000100000010000000040000"
                          "00020000007079000003000000746f6b00")));
  EXPECT_EQ(hello.request_id, 1u);
  EXPECT_EQ(Canon(hello.message), Canon(msg::Hello{1, "tok", "py"}));
  // {"request_id": 3, "body_type": "Search", "body": {"collection": "photos", "requests": [
  //   {"k": 2, "inputs": [{"vector": [0.5, -1.0], "space": "clip",
  //                        "fields": [{"value": "image"}]}],
  //    "filter": {"predicates": [{"key": "year", "op": "Gte",
  //                               "values": [{"type": "Int", "int_value": 2020}]}]}}]}}
  ASSERT_OK_AND_ASSIGN(
      Frame search,
      DecodeFrame(FromHex(
          "140000005253544100000a0014000c00070008000a0000000000000b14000000030000000000000008000c"
          "000400080008000000f00000000400000001000000180000000000120010000400080000000000000000"
          "000c001200000002000000640000000400000076ffffff0400000001000000100000000c001000000008"
          "0007000c000c000000000000042c00000004000000010000001000000000000a001000070000000800"
          "0a00000000000001e40700000000000004000000796561720000000001000000100000000c00100004"
          "00080000000c000c0000003c0000002c00000004000000010000000c000000000006000800040006"
          "0000000400000005000000696d61676500000004000000636c697000000000020000000000003f00"
          "0080bf0600000070686f746f730000")));
  EXPECT_EQ(search.request_id, 3u);
  SearchRequest want;
  want.k = 2;
  QueryInput in;
  in.vector = {0.5f, -1.0f};
  in.space = "clip";
  in.fields = {"image"};
  want.inputs.push_back(in);
  want.filter.predicates.push_back(
      Predicate{Predicate::Target::kAttribute, "year", FilterOp::kGte, {int64_t{2020}}});
  EXPECT_EQ(Canon(search.message), Canon(msg::Search{"photos", {want}}));
}

TEST(ProtocolCodecTest, FrameLengthIsLittleEndian) {
  unsigned char b[4];
  EncodeFrameLength(0x01020304u, b);
  EXPECT_EQ(b[0], 0x04);
  EXPECT_EQ(b[1], 0x03);
  EXPECT_EQ(b[2], 0x02);
  EXPECT_EQ(b[3], 0x01);
  EXPECT_EQ(DecodeFrameLength(b), 0x01020304u);
  const unsigned char max[4] = {0xff, 0xff, 0xff, 0xff};
  EXPECT_EQ(DecodeFrameLength(max), 0xffffffffu);

  const std::string prefixed = WithLengthPrefix("abcde");
  ASSERT_EQ(prefixed.size(), 9u);
  EXPECT_EQ(DecodeFrameLength(reinterpret_cast<const unsigned char*>(prefixed.data())), 5u);
  EXPECT_EQ(prefixed.substr(4), "abcde");
}

TEST(ProtocolCodecTest, FrameLengthLimits) {
  EXPECT_STATUS(CheckFrameLength(0, 1000), absl::StatusCode::kInvalidArgument,
                "malformed frame: empty frame (length 0)");
  EXPECT_OK(CheckFrameLength(1, 1000));
  EXPECT_OK(CheckFrameLength(1000, 1000));
  EXPECT_STATUS(CheckFrameLength(1001, 1000), absl::StatusCode::kResourceExhausted,
                "frame of 1001 bytes exceeds the limit of 1000 bytes");
  EXPECT_STATUS(CheckFrameLength(0xffffffffu, kDefaultMaxFrameBytes),
                absl::StatusCode::kResourceExhausted,
                "frame of 4294967295 bytes exceeds the limit of 268435456 bytes");
  // The limit itself never exceeds the format's ceiling.
  EXPECT_STATUS(CheckFrameLength(0xffffffffu, SIZE_MAX), absl::StatusCode::kResourceExhausted,
                absl::StrCat("exceeds the limit of ", kMaxFrameBytesCeiling, " bytes"));
}

TEST(ProtocolCodecTest, OversizedFramesAreRefusedWithTheirSize) {
  msg::Upsert upsert{"c", testing::SampleRecords()};
  ASSERT_OK_AND_ASSIGN(std::string body, EncodeFrame(1, upsert));
  // Exactly at the limit: fine; one byte less: refused, naming sizes.
  EXPECT_OK(EncodeFrame(1, upsert, body.size()));
  EXPECT_STATUS(EncodeFrame(1, upsert, body.size() - 1), absl::StatusCode::kResourceExhausted,
                absl::StrCat("Upsert frame of ", body.size(),
                             " bytes exceeds the maximum frame size of ", body.size() - 1,
                             " bytes"));
  // Payload alone over the limit: refused before building.
  Record big;
  big.id = "big";
  big.vectors["image"] = std::vector<float>(1 << 20);
  const absl::StatusOr<std::string> refused = EncodeFrame(1, msg::Upsert{"c", {big}}, 1 << 20);
  EXPECT_STATUS(refused, absl::StatusCode::kResourceExhausted, "Upsert frame of at least ");
  EXPECT_STATUS(refused, absl::StatusCode::kResourceExhausted,
                " bytes exceeds the maximum frame size of 1048576 bytes");
}

TEST(ProtocolCodecTest, ErrorFrames) {
  for (int code = 1; code <= 16; ++code) {
    const absl::Status status(static_cast<absl::StatusCode>(code), absl::StrCat("m", code));
    ASSERT_OK_AND_ASSIGN(Frame frame, DecodeFrame(EncodeErrorFrame(99, status)));
    EXPECT_EQ(frame.request_id, 99u);
    const auto& error = std::get<msg::Error>(frame.message);
    EXPECT_EQ(error.ToStatus(), status);
    EXPECT_EQ(StatusCodeToWire(status.code()), static_cast<uint32_t>(code));
  }
  // An OK status cannot be an error: it is sent as UNKNOWN.
  ASSERT_OK_AND_ASSIGN(Frame frame, DecodeFrame(EncodeErrorFrame(1, absl::OkStatus())));
  EXPECT_EQ(std::get<msg::Error>(frame.message).code, absl::StatusCode::kUnknown);
  // Long messages are cut at a UTF-8 boundary and marked.
  std::string long_message;
  while (long_message.size() < 2 * kMaxErrorMessageBytes) long_message += "\xC3\xA9";  // é
  ASSERT_OK_AND_ASSIGN(frame, DecodeFrame(EncodeErrorFrame(
                                  1, absl::InternalError(long_message))));
  const std::string& got = std::get<msg::Error>(frame.message).message;
  EXPECT_LE(got.size(), kMaxErrorMessageBytes);
  ASSERT_GE(got.size(), 5u);
  EXPECT_EQ(got.substr(got.size() - 3), "...");
  EXPECT_EQ(got.substr(0, got.size() - 3).size() % 2, 0u) << "cut inside a 2-byte character";
}

// The wire numbering is fixed forever (docs/PROTOCOL.md "Versioning"): union values, enum values
// and the vtable slots (4 + 2 * id) of fields. A renumbering breaks every deployed peer, so it
// must fail here first.
TEST(ProtocolCodecTest, WireNumberingIsFixed) {
  EXPECT_EQ(kProtocolVersion, 1u);
  EXPECT_STREQ(kFileIdentifier, "RSTA");
  EXPECT_STREQ(w::FrameIdentifier(), "RSTA");
  const std::pair<w::Message, int> messages[] = {
      {w::Message::Hello, 1},           {w::Message::HelloReply, 2},
      {w::Message::CreateCollection, 3}, {w::Message::ListCollections, 4},
      {w::Message::Describe, 5},        {w::Message::DropCollection, 6},
      {w::Message::Upsert, 7},          {w::Message::Import, 8},
      {w::Message::Get, 9},             {w::Message::Delete, 10},
      {w::Message::Search, 11},         {w::Message::Ok, 12},
      {w::Message::WriteResult, 13},    {w::Message::CollectionList, 14},
      {w::Message::CollectionInfo, 15}, {w::Message::GetResult, 16},
      {w::Message::SearchResults, 17},  {w::Message::Error, 18},
      {w::Message::BuildIndex, 19},     {w::Message::IndexProgress, 20},
      {w::Message::IndexProgressReply, 21}, {w::Message::Stats, 22},
      {w::Message::StatsReply, 23},
  };
  for (auto [m, v] : messages) EXPECT_EQ(static_cast<int>(m), v) << w::EnumNameMessage(m);
  EXPECT_EQ(static_cast<int>(w::Message::MAX), 23);
  EXPECT_EQ(static_cast<int>(w::IndexType::Flat), 0);
  EXPECT_EQ(static_cast<int>(w::IndexType::IvfPq), 1);
  EXPECT_EQ(static_cast<int>(w::IndexType::MAX), 1);
  EXPECT_EQ(static_cast<int>(w::Metric::L2), 2);
  EXPECT_EQ(static_cast<int>(w::ValueType::StringList), 4);
  EXPECT_EQ(static_cast<int>(w::Fusion::Max), 2);
  EXPECT_EQ(static_cast<int>(w::Normalize::Calibrated), 3);
  EXPECT_EQ(static_cast<int>(w::Missing::Require), 2);
  EXPECT_EQ(static_cast<int>(w::FilterOp::Lte), 6);
  EXPECT_EQ(static_cast<int>(w::PredicateTarget::Provenance), 1);
  EXPECT_EQ(static_cast<int>(w::Role::Admin), 2);
  // Field slots = 4 + 2 * id.
  EXPECT_EQ(w::Frame::VT_REQUEST_ID, 4);
  EXPECT_EQ(w::Frame::VT_BODY_TYPE, 6);
  EXPECT_EQ(w::Frame::VT_BODY, 8);
  EXPECT_EQ(w::Hello::VT_PROTOCOL_VERSION, 4);
  EXPECT_EQ(w::Hello::VT_TOKEN, 6);
  EXPECT_EQ(w::Error::VT_CODE, 4);
  EXPECT_EQ(w::Error::VT_MESSAGE, 6);
  EXPECT_EQ(w::Import::VT_DATA, 12);
  EXPECT_EQ(w::Import::VT_PROVENANCE, 18);
  EXPECT_EQ(w::Record::VT_PROVENANCE, 12);
  EXPECT_EQ(w::SearchRequest::VT_WITH_ATTRIBUTES, 22);
  EXPECT_EQ(w::HelloReply::VT_ROLE, 16);
  EXPECT_EQ(w::Value::VT_STRING_LIST, 14);
  // The index and telemetry additions.
  EXPECT_EQ(w::Field::VT_INDEX, 12);
  EXPECT_EQ(w::IndexSpec::VT_NBITS, 10);
  EXPECT_EQ(w::SearchRequest::VT_EXACT, 18);
  EXPECT_EQ(w::SearchRequest::VT_NPROBE, 24);
  EXPECT_EQ(w::SearchRequest::VT_REFINE, 26);
  EXPECT_EQ(w::SearchResponse::VT_EXACT, 8);
  EXPECT_EQ(w::SearchResponse::VT_PLAN, 10);
  EXPECT_EQ(w::FieldPlan::VT_CANDIDATES, 14);
  EXPECT_EQ(w::CollectionInfo::VT_SEGMENT_LIST, 18);
  EXPECT_EQ(w::SegmentInfo::VT_FIELDS, 12);
  EXPECT_EQ(w::SegmentFieldIndex::VT_BYTES_PER_VECTOR, 18);
  EXPECT_EQ(w::BuildIndex::VT_FIELD, 6);
  EXPECT_EQ(w::IndexProgressReply::VT_GROWING_ROWS, 12);
  EXPECT_EQ(w::LatencyStats::VT_MAX_US, 18);
  EXPECT_EQ(w::StatsReply::VT_REQUESTS, 16);
  EXPECT_EQ(w::StatsReply::VT_BYTES_SENT, 26);
  // The search device additions (issue 6), appended to their tables.
  EXPECT_EQ(w::HelloReply::VT_DEVICE, 18);
  EXPECT_EQ(w::CollectionInfo::VT_DEVICE, 20);
  EXPECT_EQ(w::CollectionInfo::VT_DEVICE_ROWS, 22);
  EXPECT_EQ(w::CollectionInfo::VT_DEVICE_BYTES, 24);
  EXPECT_EQ(w::StatsReply::VT_DEVICE, 28);
  EXPECT_EQ(w::StatsReply::VT_DEVICE_STATS, 30);
  EXPECT_EQ(w::DeviceStats::VT_SEARCHES, 4);
  EXPECT_EQ(w::DeviceStats::VT_UNMIRRORED_ROWS, 20);
}

// `exact` changed its default from true to false when the indexes came (before any release:
// docs/PROTOCOL.md "Versioning"), so that an absent field means what it means in C++ and JSON.
TEST(ProtocolCodecTest, ExactDefaultsAgreeWithTheDataModel) {
  // (A request without the member decodes as SearchRequest{}: AbsentFieldsMeanTheModelDefaults.)
  EXPECT_FALSE(SearchRequest{}.exact);
  // A response without the member: exhaustive, as SearchResponse{} says.
  EXPECT_TRUE(SearchResponse{}.exact);
  std::string body = RawFrame(9, w::Message::SearchResults, [](flatbuffers::FlatBufferBuilder& fbb) {
    w::SearchResponseBuilder rb(fbb);
    rb.add_took_us(5);
    auto response = rb.Finish();
    auto responses =
        fbb.CreateVector(std::vector<flatbuffers::Offset<w::SearchResponse>>{response});
    w::SearchResultsBuilder b(fbb);
    b.add_responses(responses);
    return b.Finish().Union();
  });
  ASSERT_OK_AND_ASSIGN(Frame frame, DecodeFrame(body));
  const auto& results = std::get<msg::SearchResults>(frame.message);
  ASSERT_EQ(results.responses.size(), 1u);
  EXPECT_TRUE(results.responses[0].exact);
  EXPECT_TRUE(results.responses[0].plan.empty());
  // Both values of `exact` survive a round trip in both directions (one of them is the
  // default and travels as an absent field).
  for (bool exact : {false, true}) {
    SearchRequest r;
    r.exact = exact;
    QueryInput in;
    in.vector = {1};
    r.inputs.push_back(in);
    ASSERT_OK_AND_ASSIGN(std::string enc, EncodeFrame(1, msg::Search{"c", {r}}));
    ASSERT_OK_AND_ASSIGN(Frame f, DecodeFrame(enc));
    EXPECT_EQ(std::get<msg::Search>(f.message).requests.at(0).exact, exact);
    SearchResponse response;
    response.exact = exact;
    ASSERT_OK_AND_ASSIGN(enc, EncodeFrame(1, msg::SearchResults{{response}}));
    ASSERT_OK_AND_ASSIGN(f, DecodeFrame(enc));
    EXPECT_EQ(std::get<msg::SearchResults>(f.message).responses.at(0).exact, exact);
  }
}

// A schema without index specs encodes exactly as before the indexes (no IndexSpec table), and
// a field without one decodes as flat.
TEST(ProtocolCodecTest, FlatFieldsCarryNoIndexSpec) {
  CollectionSchema schema = testing::SampleSchema();
  for (auto& [name, field] : schema.fields) field.index = IndexSpec{};
  ASSERT_OK_AND_ASSIGN(std::string body, EncodeFrame(1, msg::CreateCollection{schema}));
  const auto* frame = flatbuffers::GetRoot<w::Frame>(body.data());
  for (const w::Field* f : *frame->body_as_CreateCollection()->schema()->fields()) {
    EXPECT_EQ(f->index(), nullptr) << f->name()->str();
  }
  ASSERT_OK_AND_ASSIGN(Frame decoded, DecodeFrame(body));
  for (const auto& [name, field] : std::get<msg::CreateCollection>(decoded.message).schema.fields) {
    EXPECT_EQ(field.index, IndexSpec{}) << name;
  }
  // An indexed field carries its spec, parameters included.
  schema = testing::SampleSchema();
  ASSERT_OK_AND_ASSIGN(body, EncodeFrame(1, msg::CreateCollection{schema}));
  ASSERT_OK_AND_ASSIGN(decoded, DecodeFrame(body));
  EXPECT_EQ(std::get<msg::CreateCollection>(decoded.message).schema.fields.at("image").index,
            (IndexSpec{IndexType::kIvfPq, 16, 2, 4}));
}

// The search device's fields, member by member (Canon covers them too; this names each one, so
// that a swapped pair of counters fails here with the member's name).
TEST(ProtocolCodecTest, DeviceFieldsRoundTrip) {
  const DatabaseStats stats = testing::SampleStats();
  ASSERT_OK_AND_ASSIGN(std::string body, EncodeFrame(2, stats));
  ASSERT_OK_AND_ASSIGN(Frame frame, DecodeFrame(body));
  const auto& s = std::get<DatabaseStats>(frame.message);
  EXPECT_EQ(s.device, "cuda:0 NVIDIA H100 80GB HBM3");
  const DeviceStats& d = s.device_stats;
  EXPECT_EQ(d.searches, 101);
  EXPECT_EQ(d.batches, 7);
  EXPECT_EQ(d.fallbacks, 3);
  EXPECT_EQ(d.boundary_fallbacks, 2);
  EXPECT_EQ(d.cpu_queries, 55);
  EXPECT_EQ(d.mirrored_rows, 3'000'000'001);
  EXPECT_EQ(d.mirror_bytes, 12'288'000'004'096);
  EXPECT_EQ(d.memory_budget_bytes, 64'424'509'440);
  EXPECT_EQ(d.unmirrored_rows, 42);

  const CollectionInfo info = testing::SampleCollectionInfo();
  ASSERT_OK_AND_ASSIGN(body, EncodeFrame(3, info));
  ASSERT_OK_AND_ASSIGN(frame, DecodeFrame(body));
  const auto& i = std::get<CollectionInfo>(frame.message);
  EXPECT_EQ(i.device, "cuda:1 NVIDIA H100 80GB HBM3");
  EXPECT_EQ(i.device_rows, 3'000'000'001);
  EXPECT_EQ(i.device_bytes, 9'216'000'003'072);

  msg::HelloReply hello;
  hello.server_version = "0.1.0";
  hello.device = "cpu";
  ASSERT_OK_AND_ASSIGN(body, EncodeFrame(4, hello));
  ASSERT_OK_AND_ASSIGN(frame, DecodeFrame(body));
  EXPECT_EQ(std::get<msg::HelloReply>(frame.message).device, "cpu");
}

// Replies of a server from before the device fields (none of them set) decode as the data
// model's defaults: device "" and every counter 0.
TEST(ProtocolCodecTest, AbsentDeviceFieldsMeanUnknownAndZero) {
  std::string body = RawFrame(7, w::Message::StatsReply, [](flatbuffers::FlatBufferBuilder& fbb) {
    w::StatsReplyBuilder b(fbb);
    b.add_uptime_s(2.5);
    b.add_records(9);
    return b.Finish().Union();
  });
  ASSERT_OK_AND_ASSIGN(Frame frame, DecodeFrame(body));
  const auto& s = std::get<DatabaseStats>(frame.message);
  EXPECT_EQ(s.records, 9);
  EXPECT_EQ(s.device, "");
  EXPECT_EQ(Canon(s.device_stats), Canon(DeviceStats{}));

  body = RawFrame(8, w::Message::CollectionInfo, [](flatbuffers::FlatBufferBuilder& fbb) {
    auto sname = fbb.CreateString("s");
    w::SpaceBuilder spb(fbb);
    spb.add_name(sname);
    spb.add_dim(2);
    auto space = spb.Finish();
    auto spaces = fbb.CreateVector(std::vector<flatbuffers::Offset<w::Space>>{space});
    auto cname = fbb.CreateString("c");
    w::CollectionSchemaBuilder sb(fbb);
    sb.add_name(cname);
    sb.add_spaces(spaces);
    auto schema = sb.Finish();
    w::CollectionInfoBuilder b(fbb);
    b.add_schema(schema);
    b.add_records(4);
    return b.Finish().Union();
  });
  ASSERT_OK_AND_ASSIGN(frame, DecodeFrame(body));
  const auto& i = std::get<CollectionInfo>(frame.message);
  EXPECT_EQ(i.records, 4);
  EXPECT_EQ(i.device, "");
  EXPECT_EQ(i.device_rows, 0);
  EXPECT_EQ(i.device_bytes, 0);

  // And a CPU database's stats (device "cpu", zero counters) survive as they are.
  DatabaseStats cpu;
  cpu.device = "cpu";
  ASSERT_OK_AND_ASSIGN(body, EncodeFrame(9, cpu));
  ASSERT_OK_AND_ASSIGN(frame, DecodeFrame(body));
  EXPECT_EQ(Canon(std::get<DatabaseStats>(frame.message)), Canon(cpu));
}

}  // namespace
}  // namespace rosetta::net
