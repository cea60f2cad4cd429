// The Rosetta data model: collection schemas, records, queries and results.
//
// These are plain value types shared by every layer (storage, engine, net, tools). They carry no
// behaviour beyond small helpers; validation lives in schema/validate.h and the JSON forms in
// schema/json.h. All maps are ordered (std::map) so that iteration order, JSON output and the field
// ids derived from it are deterministic.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace rosetta {

// ---------------------------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------------------------

// How scores are computed in a space. Larger score = better for every metric: for kL2 the score
// is the negated squared Euclidean distance, so that ranking and fusion treat all metrics alike.
enum class Metric {
  kCosine,  // vectors are L2-normalised at insert; score = inner product in [-1, 1].
  kIp,      // raw inner product.
  kL2,      // score = -||q - v||^2.
};

// An embedding space: every vector that lives in it has `dim` components and was produced by
// `encoder`. Query vectors declare their space and are only scored against fields of that space.
struct Space {
  std::string name;
  int dim = 0;                      // 1 .. 65536.
  Metric metric = Metric::kCosine;
  std::string encoder;              // "name@version", e.g. "tinyclip-vit40m-32@laion400m".
};

// A field stores one modality's vectors in one space. Several fields may share a space (CLIP image
// and caption), which is what makes cross-modal search meaningful.
// How a field's vectors are indexed in sealed segments (the growing segment is always scanned
// exhaustively). See docs/query-semantics.md, "Indexes".
enum class IndexType {
  kFlat,   // exhaustive scan everywhere. Default.
  kIvfPq,  // IVF-PQ per sealed segment (kernels/ivf_pq.h); candidates are re-ranked exactly.
};

struct IndexSpec {
  IndexType type = IndexType::kFlat;
  // ivf_pq only (must be 0 for flat). 0 = the default, chosen when a segment's index is built:
  int64_t nlist = 0;  // coarse lists, 1 .. 65536; default kernels::DefaultNlist(segment vectors),
                      // capped at the vectors the segment holds.
  int64_t m = 0;      // sub-quantizers, must divide the space's dim; default kernels::DefaultM(dim).
  int64_t nbits = 0;  // bits per code: 8, or 4 (fast-scan layout); 0 = 8.
  bool operator==(const IndexSpec&) const = default;
};

struct Field {
  std::string name;
  std::string space;
  std::string modality;             // free-form label: "text", "image", "audio", ...
  float weight = 1.0f;              // default fusion weight. Default: 1.0; must be finite, >= 0.
  IndexSpec index;                  // default: flat.
};

enum class AttributeType { kString, kInt, kFloat, kBool, kStringList };

struct CollectionSchema {
  std::string name;
  std::map<std::string, Space> spaces;             // keyed by Space::name.
  std::map<std::string, Field> fields;             // keyed by Field::name.
  std::map<std::string, AttributeType> attributes; // declared attribute names and types.
};

// ---------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------

// A typed attribute value. kInt -> int64_t, kFloat -> double, kBool -> bool,
// kString -> std::string, kStringList -> std::vector<std::string>.
using AttributeValue = std::variant<std::string, int64_t, double, bool, std::vector<std::string>>;

// Where a sample came from. Every member is optional; an empty string / list means "not given".
struct Provenance {
  std::string source;           // e.g. "flickr8k".
  std::string collected_at;     // RFC 3339 UTC timestamp, e.g. "2025-08-09T10:00:00Z".
  std::vector<std::string> steps;  // preprocessing steps in order, e.g. {"resize 224", "center-crop"}.
  std::string dataset_version;  // e.g. "v1".
  std::string encoder;          // encoder that produced the vectors, if it differs per record.

  bool empty() const {
    return source.empty() && collected_at.empty() && steps.empty() && dataset_version.empty() &&
           encoder.empty();
  }
  friend bool operator==(const Provenance&, const Provenance&) = default;
};

// One item with any subset of the collection's fields (a missing key = a missing modality).
struct Record {
  std::string id;                                     // 1 .. 1024 bytes, any UTF-8.
  std::map<std::string, std::vector<float>> vectors;  // field name -> vector (dim of its space).
  std::map<std::string, float> weights;               // per-record fusion weights. Default: 1.0.
  std::map<std::string, AttributeValue> attributes;   // must match the schema's declared types.
  Provenance provenance;
};

// ---------------------------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------------------------

enum class Fusion {
  kWeighted,  // score = sum over fields of weight * normalized score.
  kRrf,       // score = sum over fields of weight / (60 + rank in that field).
  kMax,       // score = max over fields of weight * normalized score.
};
enum class Normalize {
  kNone,        // raw scores.
  kMinMax,      // per query and field: (s - min) / (max - min) over the scored records.
  kZScore,      // per query and field: (s - mean) / stddev over the scored records.
  kCalibrated,  // per (query modality, field) from the collection's own score distributions.
};
enum class Missing {
  kRenormalize,  // weights re-spread over the targeted fields the record has. Default.
  kZero,         // a missing field contributes 0.
  kRequire,      // only records that have every targeted field are returned.
};

// One query vector. It targets `fields` (all fields of `space` when empty).
struct QueryInput {
  std::vector<float> vector;
  std::string space;
  std::string modality;             // the query's modality label (used by calibration).
  std::vector<std::string> fields;  // empty = every field of `space`.
  float weight = 1.0f;              // input weight, multiplies the field weights. Default: 1.0.
};

// A value a filter compares against.
using FilterValue = std::variant<std::string, int64_t, double, bool>;

enum class FilterOp { kEq, kNe, kIn, kGt, kGte, kLt, kLte };

// One predicate on an attribute or a provenance field. For string-list attributes, kEq/kIn match
// when any element matches.
struct Predicate {
  enum class Target { kAttribute, kProvenance };
  Target target = Target::kAttribute;
  std::string key;                  // attribute name, or provenance member name.
  FilterOp op = FilterOp::kEq;
  std::vector<FilterValue> values;  // exactly one, except for kIn (one or more).
};

// A conjunction: every predicate holds and the record has every field in `has_fields`.
struct Filter {
  std::vector<Predicate> predicates;
  std::vector<std::string> has_fields;
  bool empty() const { return predicates.empty() && has_fields.empty(); }
};

struct SearchRequest {
  int k = 10;                            // 1 .. 10000.
  std::vector<QueryInput> inputs;        // at least one; a field is targeted by at most one input.
  std::map<std::string, float> weights;  // per-query field weights, override the schema's.
  Fusion fusion = Fusion::kWeighted;
  Normalize normalize = Normalize::kCalibrated;
  Missing missing = Missing::kRenormalize;
  Filter filter;
  // false (default): fields with built IVF-PQ indexes yield candidates from them (plus an exact
  // scan of the rows no index covers yet), and fusion runs on the exact scores of the union of
  // the candidates (docs/query-semantics.md, "Indexes"). true: exhaustive, the true top-k of the
  // fused score over every live record. Without any built index both give the same result.
  bool exact = false;
  int nprobe = 0;  // IVF lists probed per segment and field; 0 = kernels::DefaultNprobe(nlist).
  int refine = 0;  // candidates per field and segment re-scored exactly; 0 = max(4k, 40).
  bool explain = true;                   // include per-field explanations in the results.
  bool with_attributes = true;           // include attributes and provenance in the hits.
};

// How one field contributed to one hit.
struct FieldExplanation {
  bool missing = false;      // the record has no vector for this field; other members are 0.
  float raw = 0;             // the metric's score (for kL2: -squared distance).
  float normalized = 0;      // after the query's normalisation.
  float weight = 0;          // effective weight (query x input x record, renormalised if so).
  float contribution = 0;    // this field's part of the fused score.
  int64_t rank = 0;          // 1-based rank of the record in this field alone.
};

struct Hit {
  std::string id;
  float score = 0;
  std::map<std::string, FieldExplanation> fields;  // every targeted field; empty if !explain.
  std::map<std::string, AttributeValue> attributes;
  Provenance provenance;
};

// How one targeted field produced its candidates (SearchResponse::plan).
struct FieldPlan {
  std::string field;
  std::string index;           // "ivf_pq" when sealed indexes were searched, else "flat".
  int64_t nprobe = 0;          // lists probed per indexed segment (ivf_pq).
  int64_t indexed_segments = 0;  // segments whose index was searched.
  int64_t scanned_rows = 0;    // rows scanned exhaustively (those no built index covers).
  int64_t candidates = 0;      // distinct records this field contributed to the union.
};

struct SearchResponse {
  std::vector<Hit> results;  // best first; ties broken by id ascending.
  int64_t took_us = 0;
  // True when the results are the exact fused top-k over every live record; false when indexes
  // narrowed the candidates (the fused top-k is then exact over the union of the candidates).
  bool exact = true;
  std::vector<FieldPlan> plan;  // one per targeted field when an index was used; else empty.
};

// ---------------------------------------------------------------------------------------------
// Operation results (what the client interface returns; the CLI prints them)
// ---------------------------------------------------------------------------------------------

// Calibration statistics for one (query modality, field) pair. See docs/query-semantics.md.
struct CalibrationStats {
  std::string modality;    // query modality.
  std::string field;       // target field.
  int64_t samples = 0;     // number of (query, vector) scores the statistics were taken from.
  int64_t at_vectors = 0;  // the field's vector count when the statistics were computed.
  double mean = 0;         // mean raw score of a random (query, vector) pair: "background".
  double stddev = 0;       // standard deviation of those scores.
  double top1_mean = 0;    // mean over sample queries of their best raw score: "a good match".
};

// One field's index in one sealed segment (describe).
struct SegmentFieldIndex {
  std::string field;
  std::string index;             // "ivf_pq" | "flat".
  std::string state;             // "building" | "ready" | "failed: <reason>".
  int64_t vectors = 0;           // vectors of the field in the segment (indexed ones when ready).
  int64_t nlist = 0, m = 0, nbits = 0;  // resolved parameters (ivf_pq, once built).
  double bytes_per_vector = 0;   // index memory per vector (ivf_pq, once built).
};

struct SegmentInfo {
  int64_t id = 0;                // unique within the collection, never reused.
  std::string state;             // "growing" | "building" | "ready".
  int64_t rows = 0;              // record versions in the segment (deleted ones included).
  int64_t live = 0;              // live records.
  std::vector<SegmentFieldIndex> fields;  // sealed segments: one per ivf_pq field.
};

struct CollectionInfo {
  CollectionSchema schema;
  int64_t records = 0;                           // live records.
  std::map<std::string, int64_t> field_vectors;  // live vectors per field (every field listed).
  int64_t segments = 0;
  std::string storage;                           // e.g. "rocksdb 7.8.3 (sync: always)".
  std::string kernel_backend;                    // "avx512" | "avx2" | "scalar".
  // Search device of the database: "cpu", or the accelerator (e.g. "cuda:0 NVIDIA H100 80GB
  // HBM3"); see DatabaseStats::device.
  std::string device;
  // Rows of this collection mirrored to the device (a prefix of its row space, deleted rows
  // included) and the device bytes the mirror holds; 0 on the CPU.
  int64_t device_rows = 0;
  int64_t device_bytes = 0;
  std::vector<CalibrationStats> calibration;     // one entry per (modality, field) pair.
  std::vector<SegmentInfo> segment_list;         // sealed segments in id order, then the growing one.
};

// Progress of index builds in a collection (build-index).
struct IndexBuildProgress {
  int64_t segments = 0;        // sealed segments.
  int64_t ready = 0;           // of which every ivf_pq field index is built.
  int64_t building = 0;        // of which a build is queued or running.
  int64_t failed = 0;          // of which a build failed (describe says why).
  int64_t growing_rows = 0;    // rows not yet in a sealed segment.
  bool done() const { return building == 0; }
};

// Latency telemetry of one kind of operation since the process started (engine/telemetry.h):
// percentiles are within 6.25 % (log-linear histogram buckets), in microseconds.
struct LatencyStats {
  std::string operation;  // e.g. "search", "upsert"; server requests: "request.search".
  int64_t count = 0;      // operations completed, failed ones included.
  int64_t errors = 0;     // of which failed (returned a non-OK status).
  double mean_us = 0, p50_us = 0, p90_us = 0, p99_us = 0, max_us = 0;
};

// The search device's counters since the database was opened (all 0 on the CPU).
struct DeviceStats {
  int64_t searches = 0;      // queries whose candidates the device produced.
  int64_t batches = 0;       // device search calls (searches / batches = mean batch size).
  int64_t fallbacks = 0;     // eligible queries answered on the CPU after a device error.
  int64_t boundary_fallbacks = 0;  // ... or because near-ties at the k-th score exceeded the
                                   // device's candidate margin (docs/query-semantics.md).
  int64_t cpu_queries = 0;   // exhaustive queries the device path does not take (their shape).
  int64_t mirrored_rows = 0;       // rows mirrored, all collections.
  int64_t mirror_bytes = 0;        // device bytes of the mirrors.
  int64_t memory_budget_bytes = 0;  // the mirrors' budget.
  int64_t unmirrored_rows = 0;     // published rows not mirrored (over budget or pending).
};

// Counters of a database (and, through a server, of the server) since it was opened.
struct DatabaseStats {
  double uptime_s = 0;
  int64_t collections = 0;
  int64_t records = 0;                  // live records, all collections.
  std::vector<LatencyStats> operations;  // engine operations, in a fixed order (see docs/cli.md).
  int64_t commit_batches = 0;           // write batches made durable (or failed)...
  int64_t commit_groups = 0;            // ...in this many WAL writes (each one fsync).
  // Search device: "cpu", or the accelerator in use ("cuda:<ordinal> <name>"), as resolved from
  // the requested device (--device auto | cpu | cuda) at open.
  std::string device;
  DeviceStats device_stats;
  // Server only (absent / zero in embedded mode): per request type, from a complete request frame
  // to its reply handed to the socket, and the transport's counters.
  std::vector<LatencyStats> requests;
  int64_t connections_open = 0;
  int64_t connections_accepted = 0;
  int64_t connections_refused = 0;
  int64_t bytes_received = 0;
  int64_t bytes_sent = 0;
};

struct WriteResult {
  int64_t written = 0;  // records written (upsert) or vectors set (import) or records deleted.
  int64_t created = 0;  // records that did not exist before (upsert / import).
  int64_t not_found = 0;  // delete: ids that did not exist.
};

struct GetResult {
  std::vector<Record> records;          // in the order asked, found ones only.
  std::vector<std::string> not_found;   // ids that do not exist.
};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const char* MetricName(Metric m);          // "cosine" | "ip" | "l2"
const char* AttributeTypeName(AttributeType t);  // "string" | "int" | "float" | "bool" | "string[]"
const char* FusionName(Fusion f);          // "weighted" | "rrf" | "max"
const char* NormalizeName(Normalize n);    // "none" | "minmax" | "zscore" | "calibrated"
const char* MissingName(Missing m);        // "renormalize" | "zero" | "require"
const char* FilterOpName(FilterOp op);     // "eq" | "ne" | "in" | "gt" | "gte" | "lt" | "lte"

// The inverses of the *Name helpers (exact, case-sensitive match); std::nullopt for an unknown
// name. Used by the JSON parsers and the CLI's flags.
std::optional<Metric> MetricFromName(std::string_view name);
std::optional<AttributeType> AttributeTypeFromName(std::string_view name);
std::optional<Fusion> FusionFromName(std::string_view name);
std::optional<Normalize> NormalizeFromName(std::string_view name);
std::optional<Missing> MissingFromName(std::string_view name);
std::optional<FilterOp> FilterOpFromName(std::string_view name);

}  // namespace rosetta
