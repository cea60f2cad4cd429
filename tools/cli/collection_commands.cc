// create-collection, list-collections, describe, drop-collection.
#include <utility>

#include "absl/strings/str_cat.h"
#include "schema/json.h"
#include "schema/status_macros.h"
#include "schema/validate.h"
#include "tools/cli/command.h"

namespace rosetta::cli {
namespace {

absl::Status RunCreateCollection(CliContext& ctx, const ParsedArgs& args) {
  const std::string path = args.Get("schema");
  ASSIGN_OR_RETURN(std::string text, ctx.ReadInput(path, "schema file"));
  const std::string what = path == "-" ? "schema (stdin)" : absl::StrCat("schema file ", path);
  ASSIGN_OR_RETURN(Json j, ParseJsonText(text, what));
  absl::StatusOr<CollectionSchema> schema = SchemaFromJson(j);
  if (!schema.ok()) return Annotate(schema.status(), what);
  RETURN_IF_ERROR(Annotate(ValidateSchema(*schema), what));
  ASSIGN_OR_RETURN(Client * client, ctx.client());
  RETURN_IF_ERROR(client->CreateCollection(*schema));
  if (ctx.json()) {
    Json out = Json::object();
    out["created"] = schema->name;
    ctx.EmitJson(out);
  } else {
    ctx.out() << "created collection " << schema->name << "\n";
  }
  return absl::OkStatus();
}

absl::Status RunListCollections(CliContext& ctx, const ParsedArgs& args) {
  ASSIGN_OR_RETURN(Client * client, ctx.client());
  ASSIGN_OR_RETURN(std::vector<std::string> names, client->ListCollections());
  if (ctx.json()) {
    Json out = Json::object();
    out["collections"] = Json::array();
    for (const std::string& n : names) out["collections"].push_back(n);
    ctx.EmitJson(out);
  } else {
    for (const std::string& n : names) ctx.out() << n << "\n";
  }
  return absl::OkStatus();
}

void PrintInfo(const CollectionInfo& info, std::ostream& os) {
  const CollectionSchema& s = info.schema;
  os << "collection: " << s.name << "\n";
  os << "records: " << info.records << "\n";
  os << "segments: " << info.segments << "\n";
  os << "storage: " << info.storage << "\n";
  os << "kernel backend: " << info.kernel_backend << "\n";
  if (!info.device.empty()) {
    os << "device: " << info.device;
    // The mirror only on an accelerator: on the CPU there is none.
    if (info.device != "cpu") {
      os << ", mirrored rows " << info.device_rows << ", " << info.device_bytes << " bytes";
    }
    os << "\n";
  }
  for (const auto& [name, space] : s.spaces) {
    os << "space " << name << ": dim " << space.dim << ", metric " << MetricName(space.metric)
       << ", encoder " << (space.encoder.empty() ? "(none)" : space.encoder) << "\n";
  }
  for (const auto& [name, field] : s.fields) {
    auto it = info.field_vectors.find(name);
    const int64_t vectors = it == info.field_vectors.end() ? 0 : it->second;
    os << "field " << name << ": space " << field.space << ", modality "
       << (field.modality.empty() ? "(none)" : field.modality) << ", weight "
       << FormatNumber(field.weight) << ", vectors " << vectors;
    // Only for indexed fields, so that collections without indexes read as they always did.
    if (field.index.type == IndexType::kIvfPq) {
      os << ", index ivf_pq";
      if (field.index.nlist != 0) os << " nlist " << field.index.nlist;
      if (field.index.m != 0) os << " m " << field.index.m;
      if (field.index.nbits != 0) os << " nbits " << field.index.nbits;
    }
    os << "\n";
  }
  for (const auto& [name, type] : s.attributes) {
    os << "attribute " << name << ": " << AttributeTypeName(type) << "\n";
  }
  for (const CalibrationStats& c : info.calibration) {
    os << "calibration " << c.modality << " -> " << c.field << ": mean " << FormatNumber(c.mean)
       << ", stddev " << FormatNumber(c.stddev) << ", top1_mean " << FormatNumber(c.top1_mean)
       << ", samples " << c.samples << ", at_vectors " << c.at_vectors << "\n";
  }
  // Collections with indexes: sealed segments in id order, then the growing one.
  for (const SegmentInfo& si : info.segment_list) {
    if (si.state == "growing") {
      os << "segment growing: rows " << si.rows << " (not yet sealed, scanned exhaustively)\n";
      continue;
    }
    os << "segment " << si.id << ": " << si.state << ", rows " << si.rows << ", live " << si.live
       << "\n";
    for (const SegmentFieldIndex& f : si.fields) {
      os << "segment " << si.id << " field " << f.field << ": " << f.index << ", " << f.state;
      if (f.index == "ivf_pq" && f.state == "ready") {
        os << ", vectors " << f.vectors << ", nlist " << f.nlist << ", m " << f.m << ", nbits "
           << f.nbits << ", bytes/vector " << FormatNumber(f.bytes_per_vector);
      }
      os << "\n";
    }
  }
}

absl::Status RunDescribe(CliContext& ctx, const ParsedArgs& args) {
  ASSIGN_OR_RETURN(Client * client, ctx.client());
  ASSIGN_OR_RETURN(CollectionInfo info, client->Describe(args.positional[0]));
  if (ctx.json()) {
    ctx.EmitJson(CollectionInfoToJson(info));
  } else {
    PrintInfo(info, ctx.out());
  }
  return absl::OkStatus();
}

absl::Status RunDropCollection(CliContext& ctx, const ParsedArgs& args) {
  const std::string& name = args.positional[0];
  ASSIGN_OR_RETURN(Client * client, ctx.client());
  RETURN_IF_ERROR(client->DropCollection(name));
  if (ctx.json()) {
    Json out = Json::object();
    out["dropped"] = name;
    ctx.EmitJson(out);
  } else {
    ctx.out() << "dropped collection " << name << "\n";
  }
  return absl::OkStatus();
}

}  // namespace

CommandSpec CreateCollectionCommand() {
  CommandSpec c;
  c.name = "create-collection";
  c.summary = "create a collection from a JSON schema";
  c.flags = {{"schema", "FILE|-", "the schema, a JSON object (- reads stdin)", true}};
  c.description =
      "The schema names the collection, its embedding spaces (dim, metric cosine|ip|l2,\n"
      "encoder name@version), its fields (one modality each, in one space, with a default\n"
      "fusion weight) and its typed attributes (string, int, float, bool, string[]).\n"
      "The schema is validated in full before anything is created.\n"
      "--json prints {\"created\": NAME}.\n";
  c.example =
      "  rosetta --data ./db create-collection --schema photos.json\n"
      "  where photos.json is\n"
      "  {\"name\": \"photos\",\n"
      "   \"spaces\": {\"clip\": {\"dim\": 512, \"metric\": \"cosine\", \"encoder\": "
      "\"tinyclip-vit40m-32@laion400m\"}},\n"
      "   \"fields\": {\"image\": {\"space\": \"clip\", \"modality\": \"image\", \"weight\": 0.6},\n"
      "              \"caption\": {\"space\": \"clip\", \"modality\": \"text\", \"weight\": 0.4}},\n"
      "   \"attributes\": {\"lang\": \"string\", \"year\": \"int\"}}\n";
  c.run = RunCreateCollection;
  return c;
}

CommandSpec ListCollectionsCommand() {
  CommandSpec c;
  c.name = "list-collections";
  c.summary = "list the collections, sorted by name";
  c.description = "Prints one name per line; --json prints {\"collections\": [NAME, ...]}.\n";
  c.example = "  rosetta --data ./db list-collections\n";
  c.run = RunListCollections;
  return c;
}

CommandSpec DescribeCommand() {
  CommandSpec c;
  c.name = "describe";
  c.summary = "show a collection's schema, counts, storage, calibration statistics and segments";
  c.positionals = "COLLECTION";
  c.min_positional = c.max_positional = 1;
  c.description =
      "Prints the schema (spaces, fields, attributes), the number of live records and of\n"
      "vectors per field, the segments, the storage engine and sync policy, the CPU kernel\n"
      "backend, the search device (\"cpu\", or e.g. \"cuda:0 NVIDIA H100 80GB HBM3\" with the\n"
      "rows and bytes of the collection mirrored to it), and the calibration statistics per (query modality, field): mean (background\n"
      "score), stddev, top1_mean (typical best match), samples, and the field's vector count\n"
      "when they were computed.\n"
      "For collections with ivf_pq indexes, the segments: per sealed segment its id, state\n"
      "(building, ready, failed), rows and live records, and per field the index (ivf_pq, or\n"
      "flat where the field has too few vectors in the segment), its state (building, ready,\n"
      "failed: reason) and, once built, vectors, nlist, m, nbits and index bytes per vector;\n"
      "then the rows of the growing segment (not yet sealed).\n"
      "--json prints the same as one JSON object (segments under \"segment_list\"; the device\n"
      "as \"device\", \"device_rows\", \"device_bytes\").\n";
  c.example = "  rosetta --data ./db describe photos\n";
  c.run = RunDescribe;
  return c;
}

CommandSpec DropCollectionCommand() {
  CommandSpec c;
  c.name = "drop-collection";
  c.summary = "delete a collection and all its records";
  c.positionals = "COLLECTION";
  c.min_positional = c.max_positional = 1;
  c.description =
      "Removes the collection, its records, vectors and statistics, atomically.\n"
      "--json prints {\"dropped\": NAME}.\n";
  c.example = "  rosetta --data ./db drop-collection photos\n";
  c.run = RunDropCollection;
  return c;
}

}  // namespace rosetta::cli
