// Validation of schemas, records and queries against a schema.
//
// Every error is absl::InvalidArgumentError (or NotFoundError for unknown names) whose message
// names what is wrong and where, e.g. `record "p7": field "image": expected 512 components, got
// 511`. Validation never mutates its input except where documented (cosine normalisation).
#pragma once

#include <span>
#include <string>

#include "absl/status/status.h"
#include "schema/types.h"

namespace rosetta {

inline constexpr int kMaxDim = 65536;
inline constexpr size_t kMaxIdBytes = 1024;
inline constexpr int kMaxK = 10000;
inline constexpr size_t kMaxNameBytes = 128;

// Checks names (collection, spaces, fields, attributes: [A-Za-z_][A-Za-z0-9_.-]*, at most
// kMaxNameBytes), dims, metrics, that every field names an existing space, weights are finite and
// non-negative, and that there is at least one field.
absl::Status ValidateSchema(const CollectionSchema& schema);

// Checks one vector for `space`: exact dimension, all components finite, and (cosine) non-zero.
// `what` prefixes the message, e.g. `record "p1": field "image"`.
absl::Status ValidateVector(const Space& space, std::span<const float> v, const std::string& what);

// Normalises `v` to unit L2 norm in place (used for cosine spaces). Precondition: finite, non-zero.
void NormalizeInPlace(std::span<float> v);

// Checks a record against the schema: id, known fields, vectors (ValidateVector), weights (known
// fields, finite, >= 0), attributes (declared, right type), provenance (collected_at is RFC 3339).
// For cosine spaces, normalises the record's vectors in place.
absl::Status ValidateAndNormalizeRecord(const CollectionSchema& schema, Record& record);

// Checks a query against the schema: k range, at least one input, every input's space exists and
// its vector is valid (cosine query vectors are normalised in place), targeted fields exist and
// belong to the input's space, no field targeted twice, weights name targeted fields and are
// finite and >= 0, filters name declared attributes / known provenance members / known fields and
// compare with values of the right type.
absl::Status ValidateAndNormalizeQuery(const CollectionSchema& schema, SearchRequest& request);

// Parses an RFC 3339 timestamp ("2025-08-09T10:00:00Z", "2025-08-09T12:00:00.5+02:00") to
// microseconds since the Unix epoch (UTC).
absl::StatusOr<int64_t> ParseTimestampMicros(const std::string& rfc3339);

}  // namespace rosetta
