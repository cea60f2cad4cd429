// JSON forms of the data model (see docs/query-semantics.md and docs/cli.md for the formats).
//
// Parsing is strict: unknown keys, wrong types and out-of-range values are InvalidArgument errors
// whose message names the offending path, e.g. `query: inputs[0].vector[3]: expected a number`.
// Parsing checks the *shape* of a document; checks that need the schema (dims, field names,
// attribute types) are in schema/validate.h.
//
// Output is deterministic (ordered maps, fixed key order) so the CLI's golden tests are stable.
// Floats are written with the shortest representation that round-trips a float32.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "schema/types.h"

namespace rosetta {

using Json = nlohmann::ordered_json;

// Parses text into JSON; the error names `what` (e.g. "schema file", "line 7") and the position.
absl::StatusOr<Json> ParseJsonText(std::string_view text, const std::string& what);

absl::StatusOr<CollectionSchema> SchemaFromJson(const Json& j);
Json SchemaToJson(const CollectionSchema& schema);

// A record as one JSONL line of an upsert file: {"id", "vectors", "weights", "attributes",
// "provenance"}. `attribute_types` resolves int vs float for attribute values.
absl::StatusOr<Record> RecordFromJson(const Json& j);
Json RecordToJson(const Record& record, bool with_vectors);

absl::StatusOr<Provenance> ProvenanceFromJson(const Json& j);
Json ProvenanceToJson(const Provenance& p);  // only the members that are set.

absl::StatusOr<SearchRequest> SearchRequestFromJson(const Json& j);
Json SearchRequestToJson(const SearchRequest& r);

Json SearchResponseToJson(const SearchResponse& r);
Json CollectionInfoToJson(const CollectionInfo& info);
Json WriteResultToJson(const WriteResult& r);

Json AttributeValueToJson(const AttributeValue& v);

// Writes a float so that it parses back to the same float32 (shortest round-trip form).
Json FloatToJson(float f);

}  // namespace rosetta
