// Validation of schemas, records and queries against a schema.
//
// Every error is absl::InvalidArgumentError (unknown names included: they are a fault of the
// request, not a missing resource) whose message names what is wrong and where, e.g.
// `record "p7": field "image": expected 512 components, got 511`. Validation never mutates its
// input except where documented (cosine normalisation, int -> float attribute values, filling in
// a query input's fields). Names and values in messages are quoted with Quote() (schema/text.h).
#pragma once

#include <span>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "schema/types.h"

namespace rosetta {

inline constexpr int kMaxDim = 65536;
inline constexpr size_t kMaxIdBytes = 1024;
inline constexpr int kMaxK = 10000;
inline constexpr size_t kMaxNameBytes = 128;
// The largest magnitude a vector component may have. Real embeddings are many orders of magnitude
// smaller; the bound guarantees that every score the kernels compute in float32 (inner products
// and squared distances over up to kMaxDim components) is finite, so a ranking never meets NaN.
inline constexpr float kMaxComponentMagnitude = 1e16f;
// The largest fusion weight (schema, record, query and input weights alike). Weights multiply,
// and the bound keeps every product and the renormalisation sums finite in float32.
inline constexpr float kMaxWeight = 1e9f;

// Checks names (collection, spaces, fields, attributes: [A-Za-z_][A-Za-z0-9_.-]*, at most
// kMaxNameBytes), that map keys equal the names they hold (spaces["clip"].name == "clip"), dims
// (1 .. kMaxDim), metrics, encoders (valid UTF-8 without control characters, at most
// kMaxNameBytes; may be empty), that every field names an existing space and has a non-empty
// modality label (valid UTF-8 without control characters, at most kMaxNameBytes), field weights
// are finite and in 0 .. kMaxWeight, attribute types are known, and that there is at least one
// field.
absl::Status ValidateSchema(const CollectionSchema& schema);

// Checks one vector for `space`: exact dimension, all components finite and at most
// kMaxComponentMagnitude in magnitude, and (cosine) non-zero. `what` prefixes the message, e.g.
// `record "p1": field "image"` gives `record "p1": field "image": component 3 is NaN`.
absl::Status ValidateVector(const Space& space, std::span<const float> v, const std::string& what);

// Normalises `v` to unit L2 norm in place (used for cosine spaces). Precondition: finite, non-zero.
void NormalizeInPlace(std::span<float> v);

// Checks a record against the schema: id (1 .. kMaxIdBytes bytes, valid UTF-8, no control
// characters), known fields, vectors (ValidateVector), weights (known fields, finite, 0 .. kMaxWeight),
// attributes (declared, right type; strings valid UTF-8; floats finite), provenance (valid UTF-8
// strings; collected_at, when set, is RFC 3339). Messages start with `record "<id>": `.
// Mutations: for cosine spaces, normalises the record's vectors in place; an int value of a
// "float" attribute is converted to double (so stored values always have the declared type).
absl::Status ValidateAndNormalizeRecord(const CollectionSchema& schema, Record& record);

// Checks a query against the schema: k in 1 .. kMaxK, at least one input, every input's space
// (required) exists and its vector is valid (cosine query vectors are normalised in place),
// targeted fields exist and belong to the input's space (`query: inputs[0]: field "audio" is in
// space "clap", not "clip"`), no field targeted twice, input and query weights finite and in 0 ..
// kMaxWeight, query weights name targeted fields, enums in range, and filters:
//   - attribute predicates name declared attributes; values: string for "string" and "string[]",
//     int or float for "int" and "float" (compared numerically; floats finite), bool for "bool";
//     order comparisons (gt/gte/lt/lte) only on string, int and float attributes;
//   - provenance predicates name source | collected_at | steps | dataset_version | encoder, with
//     string values; collected_at values must be RFC 3339 (any operator; compared as timestamps);
//     steps (a list) allows eq/ne/in only;
//   - kIn has one or more values, every other operator exactly one;
//   - has_fields names known fields.
// Mutation: an input with empty `fields` gets every field of its space, in name order, so the
// engine always sees the explicit targeted set.
absl::Status ValidateAndNormalizeQuery(const CollectionSchema& schema, SearchRequest& request);

// Parses an RFC 3339 timestamp ("2025-08-09T10:00:00Z", "2025-08-09T12:00:00.5+02:00") to
// microseconds since the Unix epoch (UTC). Grammar (RFC 3339 section 5.6):
//   YYYY-MM-DD ("T" | "t") hh:mm:ss [ "." 1*DIGIT ] ( "Z" | "z" | ("+" | "-") hh:mm )
// Years 0000 .. 9999; month, day (leap years: divisible by 4, except centuries not divisible by
// 400), hour (00..23), minute (00..59), second (00..60) and offset (00..23:00..59) are range
// checked. A leap second (:60) is folded into the next minute. Fractional digits beyond the
// sixth are truncated (toward the earlier instant). At most 64 bytes. Errors are InvalidArgument
// naming the value, e.g. `"2025-02-29T00:00:00Z" is not an RFC 3339 timestamp: day 29 is out of
// range for 2025-02`.
absl::StatusOr<int64_t> ParseTimestampMicros(const std::string& rfc3339);

}  // namespace rosetta
