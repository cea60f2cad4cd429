// Test helpers for the wire protocol tests: sample values of every message and an exact canonical
// text form of messages (floats and doubles by their bits, every member, every order), so a
// round trip is checked with one EXPECT_EQ and a failure shows what differs.
#pragma once

#include <bit>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "flatbuffers/flatbuffers.h"
#include "net/client.h"
#include "net/protocol.h"
#include "net/remote_client.h"
#include "net/session.h"
#include "schema/protocol_generated.h"
#include "schema/types.h"

namespace rosetta::net::testing {

// ---------------------------------------------------------------------------------------------
// Canonical text
// ---------------------------------------------------------------------------------------------

inline std::string Bits(float f) {
  return absl::StrFormat("f%08x", std::bit_cast<uint32_t>(f));
}
inline std::string Bits(double d) {
  return absl::StrFormat("d%016x", std::bit_cast<uint64_t>(d));
}
inline std::string Q(const std::string& s) { return absl::StrCat("\"", absl::CHexEscape(s), "\""); }

inline std::string Canon(const std::vector<float>& v) {
  std::vector<std::string> parts;
  for (float f : v) parts.push_back(Bits(f));
  return absl::StrCat("[", absl::StrJoin(parts, ","), "]");
}
inline std::string Canon(const std::vector<std::string>& v) {
  std::vector<std::string> parts;
  for (const std::string& s : v) parts.push_back(Q(s));
  return absl::StrCat("[", absl::StrJoin(parts, ","), "]");
}
inline std::string Canon(const AttributeValue& v) {
  switch (v.index()) {
    case 0:
      return absl::StrCat("s:", Q(std::get<std::string>(v)));
    case 1:
      return absl::StrCat("i:", std::get<int64_t>(v));
    case 2:
      return absl::StrCat("f:", Bits(std::get<double>(v)));
    case 3:
      return absl::StrCat("b:", std::get<bool>(v) ? "true" : "false");
    default:
      return absl::StrCat("l:", Canon(std::get<std::vector<std::string>>(v)));
  }
}
inline std::string Canon(const FilterValue& v) {
  switch (v.index()) {
    case 0:
      return absl::StrCat("s:", Q(std::get<std::string>(v)));
    case 1:
      return absl::StrCat("i:", std::get<int64_t>(v));
    case 2:
      return absl::StrCat("f:", Bits(std::get<double>(v)));
    default:
      return absl::StrCat("b:", std::get<bool>(v) ? "true" : "false");
  }
}
inline std::string Canon(const std::map<std::string, AttributeValue>& m) {
  std::string out = "{";
  for (const auto& [k, v] : m) absl::StrAppend(&out, Q(k), "=", Canon(v), ";");
  return out + "}";
}
inline std::string Canon(const std::map<std::string, float>& m) {
  std::string out = "{";
  for (const auto& [k, v] : m) absl::StrAppend(&out, Q(k), "=", Bits(v), ";");
  return out + "}";
}
inline std::string Canon(const Provenance& p) {
  return absl::StrCat("prov{", Q(p.source), ",", Q(p.collected_at), ",", Canon(p.steps), ",",
                      Q(p.dataset_version), ",", Q(p.encoder), "}");
}
inline std::string Canon(const Record& r) {
  std::string out = absl::StrCat("record{", Q(r.id), ",vectors{");
  for (const auto& [k, v] : r.vectors) absl::StrAppend(&out, Q(k), "=", Canon(v), ";");
  absl::StrAppend(&out, "},", Canon(r.weights), ",", Canon(r.attributes), ",",
                  Canon(r.provenance), "}");
  return out;
}
inline std::string Canon(const std::vector<Record>& records) {
  std::string out = "[";
  for (const Record& r : records) absl::StrAppend(&out, Canon(r), "\n");
  return out + "]";
}
inline std::string Canon(const CollectionSchema& s) {
  std::string out = absl::StrCat("schema{", Q(s.name), ",spaces{");
  for (const auto& [k, sp] : s.spaces) {
    absl::StrAppend(&out, Q(k), "=", Q(sp.name), ",", sp.dim, ",", MetricName(sp.metric), ",",
                    Q(sp.encoder), ";");
  }
  absl::StrAppend(&out, "},fields{");
  for (const auto& [k, f] : s.fields) {
    absl::StrAppend(&out, Q(k), "=", Q(f.name), ",", Q(f.space), ",", Q(f.modality), ",",
                    Bits(f.weight), ",index{", static_cast<int>(f.index.type), ",", f.index.nlist,
                    ",", f.index.m, ",", f.index.nbits, "};");
  }
  absl::StrAppend(&out, "},attributes{");
  for (const auto& [k, t] : s.attributes) absl::StrAppend(&out, Q(k), "=", AttributeTypeName(t), ";");
  return out + "}}";
}
inline std::string Canon(const SearchRequest& r) {
  std::string out = absl::StrCat("request{k=", r.k, ",inputs[");
  for (const QueryInput& in : r.inputs) {
    absl::StrAppend(&out, "{", Canon(in.vector), ",", Q(in.space), ",", Q(in.modality), ",",
                    Canon(in.fields), ",", Bits(in.weight), "}");
  }
  absl::StrAppend(&out, "],weights", Canon(r.weights), ",", FusionName(r.fusion), ",",
                  NormalizeName(r.normalize), ",", MissingName(r.missing), ",filter[");
  for (const Predicate& p : r.filter.predicates) {
    absl::StrAppend(&out, "{", p.target == Predicate::Target::kProvenance ? "prov" : "attr", ",",
                    Q(p.key), ",", FilterOpName(p.op), ",[");
    for (const FilterValue& v : p.values) absl::StrAppend(&out, Canon(v), ",");
    absl::StrAppend(&out, "]}");
  }
  absl::StrAppend(&out, "],has", Canon(r.filter.has_fields), ",exact=", r.exact,
                  ",nprobe=", r.nprobe, ",refine=", r.refine, ",explain=", r.explain,
                  ",with_attributes=", r.with_attributes, "}");
  return out;
}
inline std::string Canon(const SearchResponse& r) {
  std::string out = absl::StrCat("response{took=", r.took_us, ",[");
  for (const Hit& h : r.results) {
    absl::StrAppend(&out, "hit{", Q(h.id), ",", Bits(h.score), ",fields{");
    for (const auto& [k, e] : h.fields) {
      absl::StrAppend(&out, Q(k), "=", e.missing, ",", Bits(e.raw), ",", Bits(e.normalized), ",",
                      Bits(e.weight), ",", Bits(e.contribution), ",", e.rank, ";");
    }
    absl::StrAppend(&out, "},", Canon(h.attributes), ",", Canon(h.provenance), "}\n");
  }
  absl::StrAppend(&out, "],exact=", r.exact, ",plan[");
  for (const FieldPlan& p : r.plan) {
    absl::StrAppend(&out, "{", Q(p.field), ",", Q(p.index), ",", p.nprobe, ",",
                    p.indexed_segments, ",", p.scanned_rows, ",", p.candidates, "}");
  }
  return out + "]}";
}
inline std::string Canon(const CollectionInfo& i) {
  std::string out = absl::StrCat("info{", Canon(i.schema), ",records=", i.records, ",fv{");
  for (const auto& [k, n] : i.field_vectors) absl::StrAppend(&out, Q(k), "=", n, ";");
  absl::StrAppend(&out, "},segments=", i.segments, ",", Q(i.storage), ",", Q(i.kernel_backend),
                  ",device{", Q(i.device), ",", i.device_rows, ",", i.device_bytes, "}",
                  ",calibration[");
  for (const CalibrationStats& c : i.calibration) {
    absl::StrAppend(&out, "{", Q(c.modality), ",", Q(c.field), ",", c.samples, ",", c.at_vectors,
                    ",", Bits(c.mean), ",", Bits(c.stddev), ",", Bits(c.top1_mean), "}");
  }
  absl::StrAppend(&out, "],segments[");
  for (const SegmentInfo& si : i.segment_list) {
    absl::StrAppend(&out, "{", si.id, ",", Q(si.state), ",", si.rows, ",", si.live, ",[");
    for (const SegmentFieldIndex& f : si.fields) {
      absl::StrAppend(&out, "{", Q(f.field), ",", Q(f.index), ",", Q(f.state), ",", f.vectors, ",",
                      f.nlist, ",", f.m, ",", f.nbits, ",", Bits(f.bytes_per_vector), "}");
    }
    absl::StrAppend(&out, "]}");
  }
  return out + "]}";
}
inline std::string Canon(const IndexBuildProgress& p) {
  return absl::StrCat("progress{", p.segments, ",", p.ready, ",", p.building, ",", p.failed, ",",
                      p.growing_rows, "}");
}
inline std::string Canon(const std::vector<LatencyStats>& list) {
  std::string out = "[";
  for (const LatencyStats& l : list) {
    absl::StrAppend(&out, "{", Q(l.operation), ",", l.count, ",", l.errors, ",", Bits(l.mean_us),
                    ",", Bits(l.p50_us), ",", Bits(l.p90_us), ",", Bits(l.p99_us), ",",
                    Bits(l.max_us), "}");
  }
  return out + "]";
}
inline std::string Canon(const DeviceStats& d) {
  return absl::StrCat("device_stats{", d.searches, ",", d.batches, ",", d.fallbacks, ",",
                      d.boundary_fallbacks, ",", d.cpu_queries, ",", d.mirrored_rows, ",",
                      d.mirror_bytes, ",", d.memory_budget_bytes, ",", d.unmirrored_rows, "}");
}
inline std::string Canon(const DatabaseStats& s) {
  return absl::StrCat("stats{", Bits(s.uptime_s), ",", s.collections, ",", s.records, ",",
                      Canon(s.operations), ",", s.commit_batches, ",", s.commit_groups, ",",
                      Canon(s.requests), ",", s.connections_open, ",", s.connections_accepted,
                      ",", s.connections_refused, ",", s.bytes_received, ",", s.bytes_sent, ",",
                      Q(s.device), ",", Canon(s.device_stats), "}");
}
inline std::string Canon(const WriteResult& r) {
  return absl::StrCat("write{", r.written, ",", r.created, ",", r.not_found, "}");
}
inline std::string Canon(const GetResult& r) {
  return absl::StrCat("get{", Canon(r.records), ",", Canon(r.not_found), "}");
}

inline std::string Canon(const Message& m) {
  struct Visitor {
    std::string operator()(const msg::Hello& x) {
      return absl::StrCat("Hello{", x.protocol_version, ",", Q(x.token), ",", Q(x.client), "}");
    }
    std::string operator()(const msg::CreateCollection& x) {
      return absl::StrCat("CreateCollection{", Canon(x.schema), "}");
    }
    std::string operator()(const msg::ListCollections&) { return "ListCollections{}"; }
    std::string operator()(const msg::Describe& x) {
      return absl::StrCat("Describe{", Q(x.collection), "}");
    }
    std::string operator()(const msg::DropCollection& x) {
      return absl::StrCat("DropCollection{", Q(x.collection), "}");
    }
    std::string operator()(const msg::Upsert& x) {
      return absl::StrCat("Upsert{", Q(x.collection), ",", Canon(x.records), "}");
    }
    std::string operator()(const msg::Import& x) {
      const ImportRequest& r = x.request;
      return absl::StrCat("Import{", Q(r.collection), ",", Q(r.field), ",", r.rows, ",", r.dim,
                          ",", Canon(std::vector<float>(r.data.begin(), r.data.end())), ",",
                          Q(r.id_prefix), ",", r.id_offset, ",", Canon(r.provenance), "}");
    }
    std::string operator()(const msg::Get& x) {
      return absl::StrCat("Get{", Q(x.collection), ",", Canon(x.ids), ",", x.with_vectors, "}");
    }
    std::string operator()(const msg::Delete& x) {
      return absl::StrCat("Delete{", Q(x.collection), ",", Canon(x.ids), "}");
    }
    std::string operator()(const msg::Search& x) {
      std::string out = absl::StrCat("Search{", Q(x.collection), ",[");
      for (const SearchRequest& r : x.requests) absl::StrAppend(&out, Canon(r), "\n");
      return out + "]}";
    }
    std::string operator()(const msg::HelloReply& x) {
      return absl::StrCat("HelloReply{", Q(x.server_version), ",", x.protocol_version, ",",
                          Q(x.kernel_backend), ",", Q(x.data_dir), ",", x.collections, ",",
                          x.max_frame_bytes, ",", RoleName(x.role), ",", Q(x.device), "}");
    }
    std::string operator()(const msg::Ok&) { return "Ok{}"; }
    std::string operator()(const WriteResult& x) { return Canon(x); }
    std::string operator()(const msg::CollectionList& x) {
      return absl::StrCat("CollectionList{", Canon(x.names), "}");
    }
    std::string operator()(const CollectionInfo& x) { return Canon(x); }
    std::string operator()(const GetResult& x) { return Canon(x); }
    std::string operator()(const msg::SearchResults& x) {
      std::string out = "SearchResults{";
      for (const SearchResponse& r : x.responses) absl::StrAppend(&out, Canon(r), "\n");
      return out + "}";
    }
    std::string operator()(const msg::Error& x) {
      return absl::StrCat("Error{", static_cast<int>(x.code), ",", Q(x.message), "}");
    }
    std::string operator()(const msg::BuildIndex& x) {
      return absl::StrCat("BuildIndex{", Q(x.collection), ",", Q(x.field), "}");
    }
    std::string operator()(const msg::IndexProgress& x) {
      return absl::StrCat("IndexProgress{", Q(x.collection), "}");
    }
    std::string operator()(const IndexBuildProgress& x) { return Canon(x); }
    std::string operator()(const msg::Stats&) { return "Stats{}"; }
    std::string operator()(const DatabaseStats& x) { return Canon(x); }
  };
  return std::visit(Visitor{}, m);
}

// Builds a frame body with the generated builders directly (as a client in another language
// would, or an attacker), for frames EncodeFrame would never produce. `build_body(fbb)` returns
// the body's offset.
template <class F>
std::string RawFrame(uint64_t request_id, wire::Message type, F&& build_body) {
  flatbuffers::FlatBufferBuilder fbb;
  flatbuffers::Offset<void> body = build_body(fbb);
  wire::FrameBuilder b(fbb);
  b.add_request_id(request_id);
  b.add_body_type(type);
  if (!body.IsNull()) b.add_body(body);
  fbb.Finish(b.Finish(), kFileIdentifier);
  return std::string(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
}

// A FrameTransport that hands each request straight to a Session (no sockets), as the server's
// transport would, and honours Reply::close_after like it.
class SessionTransport final : public FrameTransport {
 public:
  explicit SessionTransport(std::unique_ptr<Session> session) : session_(std::move(session)) {}

  absl::StatusOr<std::string> RoundTrip(std::string_view request, size_t max_reply_bytes) override {
    if (closed_) return absl::UnavailableError("the server closed the connection (session)");
    Reply reply = session_->OnFrame(request);
    closed_ = reply.close_after;
    if (reply.body.size() > max_reply_bytes) {
      closed_ = true;
      return absl::InternalError("reply over the client's limit");
    }
    return std::move(reply.body);
  }
  std::string name() const override { return "session"; }

 private:
  std::unique_ptr<Session> session_;
  bool closed_ = false;
};

// ---------------------------------------------------------------------------------------------
// Sample values (every optional member and every alternative somewhere)
// ---------------------------------------------------------------------------------------------

inline CollectionSchema SampleSchema() {
  CollectionSchema s;
  s.name = "photos";
  s.spaces["clip"] = Space{"clip", 4, Metric::kCosine, "tinyclip@laion"};
  s.spaces["raw"] = Space{"raw", 3, Metric::kIp, ""};
  s.spaces["geo"] = Space{"geo", 2, Metric::kL2, "latlon@1"};
  s.fields["image"] = Field{"image", "clip", "image", 0.75f, {}};
  s.fields["image"].index = IndexSpec{IndexType::kIvfPq, 16, 2, 4};
  s.fields["caption"] = Field{"caption", "clip", "text", 1.0f, {}};
  s.fields["where"] = Field{"where", "geo", "location", 0.0f, {}};
  s.attributes["lang"] = AttributeType::kString;
  s.attributes["year"] = AttributeType::kInt;
  s.attributes["score"] = AttributeType::kFloat;
  s.attributes["ok"] = AttributeType::kBool;
  s.attributes["tags"] = AttributeType::kStringList;
  return s;
}

inline Provenance FullProvenance() {
  Provenance p;
  p.source = "flickr8k";
  p.collected_at = "2025-08-09T10:00:00Z";
  p.steps = {"resize 224", "center-crop", ""};
  p.dataset_version = "v1";
  p.encoder = "tinyclip@laion";
  return p;
}

inline std::vector<Record> SampleRecords() {
  std::vector<Record> out;
  Record full;
  full.id = "p1";
  full.vectors["image"] = {0.1f, -0.2f, 0.3f, 1e-38f};
  full.vectors["caption"] = {-0.0f, 1.0f, 2.5f, -3.25f};
  full.weights["image"] = 0.5f;
  full.weights["caption"] = 2.0f;
  full.attributes["lang"] = std::string("en");
  full.attributes["year"] = int64_t{-9007199254740993};
  full.attributes["score"] = 0.1;
  full.attributes["ok"] = false;
  full.attributes["tags"] = std::vector<std::string>{"a", "b c", ""};
  full.provenance = FullProvenance();
  out.push_back(full);

  Record bare;  // only an id: every optional member absent.
  bare.id = "p2 \xE2\x9C\x93";
  out.push_back(bare);

  Record partial;  // one modality, empty list attribute, empty strings, partial provenance.
  partial.id = "p3";
  partial.vectors["where"] = {48.85f, 2.35f};
  partial.attributes["tags"] = std::vector<std::string>{};
  partial.attributes["lang"] = std::string();
  partial.attributes["ok"] = true;
  partial.provenance.source = "gps";
  partial.provenance.steps = {"round"};
  out.push_back(partial);
  return out;
}

inline SearchRequest SampleSearchRequest() {
  SearchRequest r;
  r.k = 17;
  QueryInput text;
  text.vector = {0.5f, 0.5f, -0.5f, 0.25f};
  text.space = "clip";
  text.modality = "text";
  text.fields = {"image", "caption"};
  text.weight = 0.8f;
  r.inputs.push_back(text);
  QueryInput geo;
  geo.vector = {48.0f, 2.0f};
  geo.space = "geo";
  r.inputs.push_back(geo);
  r.weights["image"] = 0.7f;
  r.weights["where"] = 0.0f;
  r.fusion = Fusion::kRrf;
  r.normalize = Normalize::kZScore;
  r.missing = Missing::kRequire;
  auto pred = [](Predicate::Target t, std::string key, FilterOp op,
                 std::vector<FilterValue> values) {
    Predicate p;
    p.target = t;
    p.key = std::move(key);
    p.op = op;
    p.values = std::move(values);
    return p;
  };
  using T = Predicate::Target;
  r.filter.predicates = {
      pred(T::kAttribute, "lang", FilterOp::kEq, {std::string("en")}),
      pred(T::kAttribute, "year", FilterOp::kGte, {int64_t{2020}}),
      pred(T::kAttribute, "year", FilterOp::kLt, {int64_t{2024}}),
      pred(T::kAttribute, "score", FilterOp::kGt, {0.25}),
      pred(T::kAttribute, "score", FilterOp::kLte, {1.5}),
      pred(T::kAttribute, "ok", FilterOp::kNe, {false}),
      pred(T::kAttribute, "tags", FilterOp::kIn, {std::string("a"), std::string("b")}),
      pred(T::kProvenance, "source", FilterOp::kIn,
           {std::string("flickr8k"), std::string("coco"), std::string()}),
      pred(T::kProvenance, "collected_at", FilterOp::kGte, {std::string("2025-01-01T00:00:00Z")}),
  };
  r.filter.has_fields = {"image", "where"};
  r.exact = true;  // not the default.
  r.nprobe = 12;
  r.refine = 345;
  r.explain = false;
  r.with_attributes = false;
  return r;
}

inline SearchResponse SampleSearchResponse() {
  SearchResponse r;
  r.took_us = 812;
  Hit a;
  a.id = "p1";
  a.score = 1.25f;
  a.fields["image"] = FieldExplanation{false, 0.31f, 1.42f, 0.6f, 0.852f, 1};
  a.fields["caption"] = FieldExplanation{true, 0, 0, 0, 0, 0};
  a.attributes["lang"] = std::string("en");
  a.attributes["tags"] = std::vector<std::string>{"x"};
  a.provenance = FullProvenance();
  r.results.push_back(a);
  Hit b;
  b.id = "p3";
  b.score = -0.5f;
  r.results.push_back(b);
  r.exact = false;
  r.plan.push_back(FieldPlan{"image", "ivf_pq", 8, 3, 2048, 73});
  r.plan.push_back(FieldPlan{"caption", "flat", 0, 0, 5000, 40});
  return r;
}

inline CollectionInfo SampleCollectionInfo() {
  CollectionInfo info;
  info.schema = SampleSchema();
  info.records = 1000;
  info.field_vectors = {{"caption", 990}, {"image", 1000}, {"where", 0}};
  info.segments = 1;
  info.storage = "rocksdb 7.8.3 (sync: always)";
  info.kernel_backend = "avx2";
  info.device = "cuda:1 NVIDIA H100 80GB HBM3";
  info.device_rows = 3'000'000'001;
  info.device_bytes = 9'216'000'003'072;
  info.calibration.push_back(CalibrationStats{"text", "image", 1048576, 1000, 0.18, 0.03, 0.31});
  info.calibration.push_back(CalibrationStats{"image", "caption", 5, 2, -1e-300, 0, 1e300});
  SegmentInfo ready;
  ready.id = 1;
  ready.state = "ready";
  ready.rows = 1200;
  ready.live = 1190;
  ready.fields.push_back(SegmentFieldIndex{"image", "ivf_pq", "ready", 1190, 139, 2, 4, 9.75});
  ready.fields.push_back(SegmentFieldIndex{"where", "flat", "ready", 0, 0, 0, 0, 0});
  SegmentInfo failed;
  failed.id = 7;
  failed.state = "failed";
  failed.rows = 3;
  failed.live = 3;
  failed.fields.push_back(
      SegmentFieldIndex{"image", "ivf_pq", "failed: k-means: out of \xE2\x9C\x93", 0, 0, 0, 0, 0});
  SegmentInfo growing;
  growing.state = "growing";
  growing.rows = 42;
  info.segment_list = {ready, failed, growing};
  return info;
}

inline DatabaseStats SampleStats() {
  DatabaseStats s;
  s.uptime_s = 3600.25;
  s.collections = 2;
  s.records = 1000000;
  s.operations.push_back(LatencyStats{"search", 100, 2, 812.5, 700, 950, 1500.125, 2000});
  s.operations.push_back(LatencyStats{"upsert", 0, 0, 0, 0, 0, 0, 0});
  s.commit_batches = 40;
  s.commit_groups = 11;
  s.requests.push_back(LatencyStats{"request.search", 100, 0, 850, 720, 1000, 1600, 2100.5});
  s.connections_open = 3;
  s.connections_accepted = 17;
  s.connections_refused = 1;
  s.bytes_received = 123456789012;
  s.bytes_sent = 987654321;
  s.device = "cuda:0 NVIDIA H100 80GB HBM3";
  // Distinct values, some beyond 32 bits, so that a swapped or truncated member shows.
  s.device_stats = DeviceStats{101, 7, 3, 2, 55, 3'000'000'001, 12'288'000'004'096,
                               64'424'509'440, 42};
  return s;
}

// One sample of every message type (Import's data lives in `import_data`, which must outlive
// the result).
inline std::vector<Message> AllSampleMessages(const std::vector<float>& import_data) {
  std::vector<Message> out;
  out.push_back(msg::Hello{kProtocolVersion, "tok-123", "rosetta-cli 0.1.0"});
  out.push_back(msg::Hello{});
  out.push_back(msg::CreateCollection{SampleSchema()});
  out.push_back(msg::ListCollections{});
  out.push_back(msg::Describe{"photos"});
  out.push_back(msg::DropCollection{"photos"});
  out.push_back(msg::Upsert{"photos", SampleRecords()});
  out.push_back(msg::Upsert{"photos", {}});
  {
    msg::Import m;
    m.request.collection = "photos";
    m.request.field = "image";
    m.request.data = import_data;
    m.request.rows = import_data.size() / 4;
    m.request.dim = 4;
    m.request.id_prefix = "img-";
    m.request.id_offset = -5;
    m.request.provenance = FullProvenance();
    out.push_back(std::move(m));
  }
  {
    msg::Import m;  // no rows, no prefix, no provenance.
    m.request.collection = "photos";
    m.request.field = "caption";
    out.push_back(std::move(m));
  }
  out.push_back(msg::Get{"photos", {"p1", "p9", ""}, true});
  out.push_back(msg::Get{"photos", {}, false});
  out.push_back(msg::Delete{"photos", {"p1", "p1", "zz"}});
  out.push_back(msg::Search{"photos", {SampleSearchRequest(), SearchRequest{}}});
  out.push_back(msg::HelloReply{"0.1.0", 1, "avx512", "/var/lib/rosetta", 3, 1 << 20, Role::kAdmin,
                                "cuda:0 NVIDIA H100 80GB HBM3"});
  out.push_back(msg::HelloReply{"0.1.0", 1, "scalar", "", 0, kDefaultMaxFrameBytes, Role::kRead});
  out.push_back(msg::HelloReply{"0.1.0", 1, "avx2", "", 7, 4096, Role::kWrite, "cpu"});
  out.push_back(msg::Ok{});
  out.push_back(WriteResult{3, 2, 1});
  out.push_back(msg::CollectionList{{"a", "b", "photos"}});
  out.push_back(msg::CollectionList{});
  out.push_back(SampleCollectionInfo());
  out.push_back(GetResult{SampleRecords(), {"p9", "p10"}});
  out.push_back(GetResult{});
  out.push_back(msg::SearchResults{{SampleSearchResponse(), SearchResponse{}}});
  out.push_back(msg::SearchResults{});
  out.push_back(msg::Error{absl::StatusCode::kNotFound, "collection \"x\" not found"});
  out.push_back(msg::Error{absl::StatusCode::kInvalidArgument, ""});
  out.push_back(msg::BuildIndex{"photos", "image"});
  out.push_back(msg::BuildIndex{"photos", ""});
  out.push_back(msg::IndexProgress{"photos"});
  out.push_back(IndexBuildProgress{5, 3, 1, 1, 1234567890123});
  out.push_back(IndexBuildProgress{});
  out.push_back(msg::Stats{});
  out.push_back(SampleStats());
  out.push_back(DatabaseStats{});
  return out;
}

// ---------------------------------------------------------------------------------------------
// A script of every Client operation
// ---------------------------------------------------------------------------------------------

// Runs a fixed script of every operation, successes and failures, and returns a transcript:
// one line per call with the canonical result or the error (code and message).
inline std::vector<std::string> ScriptTranscript(Client& c) {
  std::vector<std::string> t;
  auto status = [&](const absl::Status& s) {
    t.push_back(s.ok() ? "ok" : absl::StrCat("error: ", s.ToString()));
  };
  auto result = [&](const auto& r) {
    if (!r.ok()) {
      status(r.status());
    } else {
      t.push_back(Canon(Message(*r)));
    }
  };
  auto search = [&](const std::string& collection, std::vector<SearchRequest> requests) {
    absl::StatusOr<std::vector<SearchResponse>> r = c.Search(collection, std::move(requests));
    if (!r.ok()) return status(r.status());
    for (SearchResponse& response : *r) response.took_us = 0;  // wall time differs.
    t.push_back(Canon(Message(msg::SearchResults{std::move(*r)})));
  };
  auto list = [&] {
    absl::StatusOr<std::vector<std::string>> r = c.ListCollections();
    if (!r.ok()) return status(r.status());
    t.push_back(Canon(*r));
  };

  list();
  status(c.CreateCollection(testing::SampleSchema()));
  status(c.CreateCollection(testing::SampleSchema()));  // AlreadyExists.
  CollectionSchema bad = testing::SampleSchema();
  bad.name = "bad";
  bad.spaces["clip"].dim = 0;
  status(c.CreateCollection(bad));  // InvalidArgument.
  list();

  result(c.Upsert("photos", testing::SampleRecords()));
  std::vector<Record> wrong = testing::SampleRecords();
  wrong[0].vectors["image"].push_back(1.0f);
  result(c.Upsert("photos", wrong));  // dimension mismatch.
  result(c.Upsert("ghost", testing::SampleRecords()));  // NotFound.

  std::vector<float> rows = {1, 0, 0, 0, 0, 1, 0, 0, 0.5f, 0.5f, 0.5f, -0.5f};
  ImportRequest imp;
  imp.collection = "photos";
  imp.field = "image";
  imp.data = rows;
  imp.rows = 3;
  imp.dim = 4;
  imp.id_prefix = "img-";
  imp.id_offset = 1;
  imp.provenance = testing::FullProvenance();
  result(c.Import(imp));
  ImportRequest bad_dim = imp;
  bad_dim.rows = 4;
  bad_dim.dim = 3;
  result(c.Import(bad_dim));  // wrong dim for the space.
  ImportRequest bad_field = imp;
  bad_field.field = "audio";
  result(c.Import(bad_field));
  ImportRequest bad_size = imp;
  bad_size.rows = 2;
  result(c.Import(bad_size));  // data size mismatch.

  result(c.Get("photos", {"p1", "img-2", "nope", "p2 \xE2\x9C\x93"}, true));
  result(c.Get("photos", {"p1", "img-2"}, false));
  result(c.Get("ghost", {"p1"}, false));
  result(c.Describe("photos"));
  result(c.Describe("ghost"));

  SearchRequest simple;
  simple.k = 5;
  QueryInput in;
  in.vector = {1, 0.5f, 0, 0};
  in.space = "clip";
  in.modality = "text";
  simple.inputs.push_back(in);
  SearchRequest wide = testing::SampleSearchRequest();
  SearchRequest filtered = simple;
  filtered.filter.predicates.push_back(
      Predicate{Predicate::Target::kAttribute, "year", FilterOp::kLt, {int64_t{0}}});
  filtered.normalize = Normalize::kMinMax;
  filtered.fusion = Fusion::kMax;
  search("photos", {simple});
  search("photos", {simple, wide, filtered, simple});
  SearchRequest invalid = simple;
  invalid.k = 0;
  search("photos", {simple, invalid});
  search("ghost", {simple});
  search("photos", {});

  // Indexes: BuildIndex seals the rows into a segment and reports its build queued (the fields
  // have too few vectors to be indexed there, so they stay flat); once the build is done, the
  // progress, describe's segment list and searches are settled.
  result(c.BuildIndex("photos", ""));
  absl::StatusOr<IndexBuildProgress> waited =
      WaitForIndexes(c, "photos", std::chrono::seconds(60), std::chrono::milliseconds(5));
  result(waited);
  result(c.IndexProgress("photos"));
  result(c.BuildIndex("photos", "image"));    // nothing new to seal: no segment added.
  result(c.BuildIndex("photos", "caption"));  // flat: InvalidArgument.
  result(c.BuildIndex("photos", "audio"));    // NotFound.
  result(c.BuildIndex("ghost", ""));
  result(c.IndexProgress("ghost"));
  result(c.Describe("photos"));
  search("photos", {simple, wide});

  result(c.Delete("photos", {"p1", "zz", "p1"}));
  result(c.Delete("ghost", {"p1"}));
  search("photos", {simple});
  result(c.Describe("photos"));

  status(c.DropCollection("photos"));
  status(c.DropCollection("photos"));
  list();
  return t;
}

}  // namespace rosetta::net::testing
