// JSON forms of the data model (see docs/query-semantics.md and docs/cli.md for the formats).
//
// Parsing is strict: unknown keys, wrong types and out-of-range values are InvalidArgument errors
// whose message names the document and the offending path, e.g.
// `query: inputs[0].vector[3]: expected a number, got a string` or
// `schema: spaces.clip.metrc: unknown key (expected one of: dim, metric, encoder)`.
// Parsing checks the *shape* of a document; checks that need the schema (dims, field names,
// attribute types, value ranges such as k or dim) are in schema/validate.h. No function here
// throws: every nlohmann / std exception is caught and converted.
//
// Output is deterministic (ordered maps, fixed key order) so the CLI's golden tests are stable.
// Floats are written with the shortest representation that round-trips a float32 (FloatToJson
// + DumpJson); doubles (calibration statistics, float attributes) with the shortest form that
// round-trips the double.
// Non-finite numbers never appear in output (validation rejects them); if present they are null.
//
// ---------------------------------------------------------------------------------------------
// Formats (keys in the order they are written; "?" = optional on input, with its default)
// ---------------------------------------------------------------------------------------------
//
// Schema:
//   {"name": "photos",
//    "spaces": {"clip": {"dim": 512, "metric": "cosine"|"ip"|"l2", "encoder"?: "name@version"}},
//    "fields": {"image": {"space": "clip", "modality": "image", "weight"?: 1.0}},
//    "attributes"?: {"lang": "string", "year": "int", "score": "float", "ok": "bool",
//                    "tags": "string[]"}}
//   Required: name, spaces, fields, and per space dim and metric, per field space and modality.
//   Output always writes encoder (possibly "") and attributes (possibly {}).
//
// Record (one line of an upsert JSONL file):
//   {"id": "p1", "vectors"?: {"image": [0.1, ...]}, "weights"?: {"caption": 0.5},
//    "attributes"?: {"lang": "en", "year": 2020, "tags": ["a", "b"]},
//    "provenance"?: {...}}
//   Attribute values: JSON integers -> int64, other numbers -> double (validation converts an
//   int given for a "float" attribute), strings, bools, arrays of strings -> string list (an
//   empty array is an empty list; any other array, null or an object is an error).
//   RecordToJson writes id, vectors (only when with_vectors), weights (omitted when empty),
//   attributes (always, {} when none), provenance (omitted when empty).
//
// Provenance:
//   {"source"?: "flickr8k", "collected_at"?: "2025-08-09T10:00:00Z",
//    "steps"?: ["resize 224", "center-crop"], "dataset_version"?: "v1", "encoder"?: "..."}
//   Output has only the members that are set.
//
// Query (SearchRequest):
//   {"k"?: 10,
//    "inputs": [{"vector": [...], "space": "clip", "modality"?: "text",
//                "fields"?: ["image", "caption"] | "field"?: "image", "weight"?: 1.0}],
//    "weights"?: {"image": 0.7},
//    "fusion"?: "weighted"|"rrf"|"max",                        default weighted
//    "normalize"?: "none"|"minmax"|"zscore"|"calibrated",      default calibrated
//    "missing"?: "renormalize"|"zero"|"require",               default renormalize
//    "filter"?: {"attributes"?: {...}, "provenance"?: {...}, "has_fields"?: ["caption"]},
//    "exact"?: true, "explain"?: true, "with_attributes"?: true}
//   "field" and "fields" are exclusive; neither = every field of the space (filled in by
//   ValidateAndNormalizeQuery). "space" is required by validation (parsing leaves it "" when
//   absent so the message comes from one place). "exact": false is accepted.
//   Filter members map a key (attribute name / provenance member) to:
//     a scalar (string, number, bool)        -> one eq predicate;
//     an operator object {"gte": 2020, "lt": 2024, "in": ["a", "b"]}
//                                            -> one predicate per operator, in document order;
//                                               ops: eq, ne, in (an array), gt, gte, lt, lte;
//     an array of operator objects           -> all of their predicates (for repeated
//                                               operators, e.g. [{"ne": "a"}, {"ne": "b"}]).
//   A bare array of values is an error (write {"in": [...]}). JSON integers are int64 values,
//   other numbers doubles.
//   SearchRequestToJson writes k, inputs (vector, space, modality if set, fields if non-empty,
//   weight), weights (if non-empty), fusion, normalize, missing, filter (if non-empty; grouped
//   by key in the most compact of the three forms above), exact, explain, with_attributes.
//   Parsing its output gives back the same request (predicates grouped by key).
//
// SearchResponse:
//   {"results": [{"id": "p17", "score": 1.234,
//                 "fields": {"image": {"raw": 0.31, "normalized": 1.42, "weight": 0.6,
//                                      "contribution": 0.852, "rank": 1},
//                            "caption": {"missing": true}},
//                 "attributes": {"lang": "en"},
//                 "provenance": {"source": "flickr8k"}}],
//    "took_us": 812}
//   "fields" is always present ({} when explain was false); "attributes" always ({} when none);
//   "provenance" omitted when empty.
//
// CollectionInfo:
//   {"name": "photos", "schema": {...}, "records": 1000, "field_vectors": {"image": 1000},
//    "segments": 1, "storage": "rocksdb 7.8.3 (sync: always)", "kernel_backend": "avx2",
//    "device": "cpu", "device_rows": 0, "device_bytes": 0,
//    "calibration": [{"modality": "text", "field": "image", "samples": 1048576,
//                     "at_vectors": 1000, "mean": 0.18, "stddev": 0.03, "top1_mean": 0.31}]}
//   "device", "device_rows" and "device_bytes" (CollectionInfo::device...) are present when
//   `device` is non-empty (the engine always names it), absent otherwise.
//
// WriteResult: {"written": 3, "created": 2} plus "not_found": N only when N != 0.
//
// GetResult: {"records": [<RecordToJson>...], "not_found": ["p9"]} ("not_found" always present).
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "schema/types.h"

namespace rosetta {

using Json = nlohmann::ordered_json;

// Parses text into JSON; the error names `what` (e.g. "schema file", "line 7") and the position:
// `line 7: malformed JSON at byte 13: syntax error while parsing object key - ...` (byte is
// 1-based; multi-line texts add "(line L, column C)"). Also rejects duplicate object keys
// (`what: duplicate key "k" at inputs[0]`) and nesting deeper than 64 levels.
absl::StatusOr<Json> ParseJsonText(std::string_view text, const std::string& what);

// Serialises like nlohmann's dump (same layout and escaping; indent < 0: one line, else
// pretty-printed with `indent` spaces), with two differences, which is why every output of
// Rosetta should go through it rather than Json::dump:
//   - numbers with a fraction are written with std::to_chars(double), exactly the shortest
//     round-trip form, so FloatToJson values print as the float's shortest decimal (nlohmann's
//     Grisu2 writes about 1 float in 1000 with 17 digits, e.g. 0.15813111999999999);
//   - it never throws: invalid UTF-8 in strings (which validation keeps out of stored data) is
//     replaced by U+FFFD instead of raising nlohmann's type_error 316.
std::string DumpJson(const Json& j, int indent = -1);

absl::StatusOr<CollectionSchema> SchemaFromJson(const Json& j);
Json SchemaToJson(const CollectionSchema& schema);

// A record as one JSONL line of an upsert file: {"id", "vectors", "weights", "attributes",
// "provenance"}. Errors name the record: `record "p1": vectors.image[3]: expected a number`.
absl::StatusOr<Record> RecordFromJson(const Json& j);
Json RecordToJson(const Record& record, bool with_vectors);

absl::StatusOr<Provenance> ProvenanceFromJson(const Json& j);
Json ProvenanceToJson(const Provenance& p);  // only the members that are set.

absl::StatusOr<SearchRequest> SearchRequestFromJson(const Json& j);
Json SearchRequestToJson(const SearchRequest& r);

Json SearchResponseToJson(const SearchResponse& r);
absl::StatusOr<SearchResponse> SearchResponseFromJson(const Json& j);
Json CollectionInfoToJson(const CollectionInfo& info);
absl::StatusOr<CollectionInfo> CollectionInfoFromJson(const Json& j);
Json WriteResultToJson(const WriteResult& r);
absl::StatusOr<WriteResult> WriteResultFromJson(const Json& j);
Json GetResultToJson(const GetResult& r, bool with_vectors);
absl::StatusOr<GetResult> GetResultFromJson(const Json& j);

Json AttributeValueToJson(const AttributeValue& v);  // non-finite doubles -> null.

// Writes a float so that it parses back to the same float32 (shortest round-trip form):
// 0.1f is written 0.1, not 0.10000000149011612. NaN and infinities -> null.
Json FloatToJson(float f);

}  // namespace rosetta
