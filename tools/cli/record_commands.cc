// upsert, import, get, delete.
//
// Writes follow one rule: read and validate the whole input before the first write. Inputs
// larger than one engine batch (engine::kMaxBatchRecords) are sent as several batches, each
// atomic; since everything was validated first, a later batch can fail only for reasons outside
// the input (disk full, a concurrent drop), and the error then says which batches were written.
#include <algorithm>
#include <map>
#include <span>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/database.h"
#include "schema/array_io.h"
#include "schema/json.h"
#include "schema/status_macros.h"
#include "schema/validate.h"
#include "tools/cli/command.h"

namespace rosetta::cli {
namespace {

constexpr size_t kBatch = engine::kMaxBatchRecords;
// An import batch also carries at most this many bytes of vectors, so that one batch fits in one
// protocol frame in server mode (the default frame limit is 256 MiB) whatever the dimension.
constexpr size_t kMaxImportBatchBytes = size_t{64} << 20;

// Rows per import batch for vectors of `dim` components: at most kBatch rows and
// kMaxImportBatchBytes bytes (at least one row).
size_t ImportBatchRows(size_t dim) {
  return std::max<size_t>(1, std::min(kBatch, kMaxImportBatchBytes / (dim * sizeof(float))));
}

// The error of batch `b` (0-based) of `batches`, saying what was written before it.
absl::Status BatchError(const absl::Status& status, size_t b, size_t batches, size_t first_item,
                        size_t last_item, const std::string& unit, int64_t written_before) {
  if (batches == 1) return status;
  return Annotate(status, absl::StrCat("batch ", b + 1, " of ", batches, " (", unit, " ",
                                       first_item, "..", last_item, "; the ", written_before,
                                       " records of the previous ", b,
                                       " batch(es) were written)"));
}

absl::StatusOr<CollectionSchema> FetchSchema(Client* client, const std::string& collection) {
  ASSIGN_OR_RETURN(CollectionInfo info, client->Describe(collection));
  return std::move(info.schema);
}

// ---- upsert -----------------------------------------------------------------------------------

absl::Status RunUpsert(CliContext& ctx, const ParsedArgs& args) {
  const std::string& collection = args.positional[0];
  const std::string path = args.Get("file");
  ASSIGN_OR_RETURN(std::string text, ctx.ReadInput(path, "records file"));

  // 1. Parse every line.
  std::vector<Record> records;
  std::vector<size_t> line_of;  // 1-based line number of records[i].
  std::map<std::string, size_t> id_line;
  size_t line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;  // blank line.
    const std::string where = absl::StrCat("line ", line_no);
    ASSIGN_OR_RETURN(Json j, ParseJsonText(line, where));
    absl::StatusOr<Record> record = RecordFromJson(j);
    if (!record.ok()) return Annotate(record.status(), where);
    auto [it, inserted] = id_line.emplace(record->id, line_no);
    if (!inserted) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": duplicate id \"", record->id,
                                                     "\" (first on line ", it->second, ")"));
    }
    records.push_back(*std::move(record));
    line_of.push_back(line_no);
  }
  if (records.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("records file ", path == "-" ? "(stdin)" : path, ": no records"));
  }

  // 2. Validate every record against the schema before the first write.
  ASSIGN_OR_RETURN(Client * client, ctx.client());
  ASSIGN_OR_RETURN(CollectionSchema schema, FetchSchema(client, collection));
  for (size_t i = 0; i < records.size(); ++i) {
    Record copy = records[i];  // validation normalises cosine vectors; send the originals.
    RETURN_IF_ERROR(
        Annotate(ValidateAndNormalizeRecord(schema, copy), absl::StrCat("line ", line_of[i])));
  }

  // 3. Write, in atomic batches.
  const size_t batches = (records.size() + kBatch - 1) / kBatch;
  WriteResult total;
  for (size_t b = 0; b < batches; ++b) {
    const size_t begin = b * kBatch, end = std::min(records.size(), begin + kBatch);
    std::vector<Record> batch(std::make_move_iterator(records.begin() + begin),
                              std::make_move_iterator(records.begin() + end));
    absl::StatusOr<WriteResult> r = client->Upsert(collection, std::move(batch));
    if (!r.ok()) {
      return BatchError(r.status(), b, batches, line_of[begin], line_of[end - 1], "lines",
                        total.written);
    }
    total.written += r->written;
    total.created += r->created;
  }
  if (ctx.json()) {
    Json out = Json::object();
    out["written"] = total.written;
    out["created"] = total.created;
    ctx.EmitJson(out);
  } else {
    ctx.out() << "wrote " << total.written << " records to " << collection << " ("
              << total.created << " new)\n";
  }
  return absl::OkStatus();
}

// ---- import -----------------------------------------------------------------------------------

absl::Status RunImport(CliContext& ctx, const ParsedArgs& args) {
  const std::string& collection = args.positional[0];
  const std::string field_name = args.Get("field");
  const std::string path = args.Get("vectors");
  ImportRequest request;
  request.collection = collection;
  request.field = field_name;
  request.id_prefix = args.Get("id-prefix");
  if (args.Has("id-offset")) {
    ASSIGN_OR_RETURN(request.id_offset, ParseIntFlag("id-offset", args.Get("id-offset"), 0,
                                                     int64_t{1} << 53));
  }
  if (args.Has("provenance")) {
    ASSIGN_OR_RETURN(Json pj, ParseJsonText(args.Get("provenance"), "--provenance"));
    absl::StatusOr<Provenance> p = ProvenanceFromJson(pj);
    if (!p.ok()) return Annotate(p.status(), "--provenance");
    if (!p->collected_at.empty()) {
      absl::StatusOr<int64_t> t = ParseTimestampMicros(p->collected_at);
      if (!t.ok()) return Annotate(t.status(), "--provenance: collected_at");
    }
    request.provenance = *std::move(p);
  }
  if (path == "-") return UsageError("--vectors: reading arrays from stdin is not supported");

  // 1. Read the whole array.
  ASSIGN_OR_RETURN(Matrix<float> m, ReadFloatMatrix(path));
  if (m.rows == 0) return absl::InvalidArgumentError(absl::StrCat(path, ": no rows"));

  // 2. Check the field, the dimension and every row before the first write.
  ASSIGN_OR_RETURN(Client * client, ctx.client());
  ASSIGN_OR_RETURN(CollectionSchema schema, FetchSchema(client, collection));
  auto fit = schema.fields.find(field_name);
  if (fit == schema.fields.end()) {
    return absl::NotFoundError(
        absl::StrCat("collection \"", collection, "\" has no field \"", field_name, "\""));
  }
  auto sit = schema.spaces.find(fit->second.space);
  if (sit == schema.spaces.end()) {
    return absl::InternalError(absl::StrCat("field \"", field_name, "\" names unknown space \"",
                                            fit->second.space, "\""));
  }
  const Space& space = sit->second;
  if (m.cols != static_cast<size_t>(space.dim)) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": rows have ", m.cols, " components; field \"", field_name, "\" (space \"",
        space.name, "\") expects ", space.dim));
  }
  for (size_t i = 0; i < m.rows; ++i) {
    RETURN_IF_ERROR(ValidateVector(
        space, std::span<const float>(m.row(i), m.cols),
        absl::StrCat(path, ": row ", i, " (id \"", request.id_prefix,
                     request.id_offset + static_cast<int64_t>(i), "\")")));
  }

  // 3. Write, in atomic batches.
  const size_t batch_rows = ImportBatchRows(m.cols);
  const size_t batches = (m.rows + batch_rows - 1) / batch_rows;
  WriteResult total;
  for (size_t b = 0; b < batches; ++b) {
    const size_t begin = b * batch_rows, end = std::min(m.rows, begin + batch_rows);
    ImportRequest batch = request;
    batch.data = std::span<const float>(m.row(begin), (end - begin) * m.cols);
    batch.rows = end - begin;
    batch.dim = m.cols;
    batch.id_offset = request.id_offset + static_cast<int64_t>(begin);
    absl::StatusOr<WriteResult> r = client->Import(batch);
    if (!r.ok()) return BatchError(r.status(), b, batches, begin, end - 1, "rows", total.written);
    total.written += r->written;
    total.created += r->created;
  }
  if (ctx.json()) {
    Json out = Json::object();
    out["written"] = total.written;
    out["created"] = total.created;
    out["batches"] = static_cast<int64_t>(batches);
    ctx.EmitJson(out);
  } else {
    ctx.out() << "imported " << total.written << " vectors into " << collection << "."
              << field_name << " (" << total.created << " new records, " << batches
              << (batches == 1 ? " batch" : " batches") << ")\n";
  }
  return absl::OkStatus();
}

// ---- get / delete -----------------------------------------------------------------------------

absl::Status RunGet(CliContext& ctx, const ParsedArgs& args) {
  const std::string& collection = args.positional[0];
  std::vector<std::string> ids(args.positional.begin() + 1, args.positional.end());
  const bool with_vectors = args.Has("with-vectors");
  ASSIGN_OR_RETURN(Client * client, ctx.client());
  ASSIGN_OR_RETURN(GetResult result, client->Get(collection, ids, with_vectors));
  if (ctx.json()) {
    Json out = Json::object();
    out["records"] = Json::array();
    for (const Record& r : result.records) out["records"].push_back(RecordToJson(r, with_vectors));
    out["not_found"] = Json::array();
    for (const std::string& id : result.not_found) out["not_found"].push_back(id);
    ctx.EmitJson(out);
  } else {
    // One record per line in the upsert format (so the output can be edited and fed back).
    for (const Record& r : result.records) {
      ctx.out() << DumpJson(RecordToJson(r, with_vectors)) << "\n";
    }
    for (const std::string& id : result.not_found) ctx.out() << "not found: " << id << "\n";
  }
  return absl::OkStatus();
}

absl::Status RunDelete(CliContext& ctx, const ParsedArgs& args) {
  const std::string& collection = args.positional[0];
  std::vector<std::string> ids(args.positional.begin() + 1, args.positional.end());
  ASSIGN_OR_RETURN(Client * client, ctx.client());
  ASSIGN_OR_RETURN(WriteResult r, client->Delete(collection, ids));
  if (ctx.json()) {
    Json out = Json::object();
    out["deleted"] = r.written;
    out["not_found"] = r.not_found;
    ctx.EmitJson(out);
  } else {
    ctx.out() << "deleted " << r.written << " records (" << r.not_found << " not found)\n";
  }
  return absl::OkStatus();
}

}  // namespace

CommandSpec UpsertCommand() {
  CommandSpec c;
  c.name = "upsert";
  c.summary = "insert or replace records from a JSON Lines file";
  c.positionals = "COLLECTION";
  c.min_positional = c.max_positional = 1;
  c.flags = {{"file", "FILE.jsonl|-", "one record per line (- reads stdin)", true}};
  c.description = absl::StrCat(
      "Each non-blank line is one whole record:\n"
      "  {\"id\": ..., \"vectors\": {FIELD: [...]}, \"weights\": {FIELD: w},\n"
      "   \"attributes\": {...}, \"provenance\": {\"source\", \"collected_at\", \"steps\",\n"
      "   \"dataset_version\", \"encoder\"}}\n"
      "A record replaces any record with the same id (fields it lacks are gone).\n"
      "\n"
      "The whole file is read, parsed and validated against the schema (dimensions, finite\n"
      "components, known fields, attribute types, duplicate ids) before anything is written;\n"
      "an error names the line (\"line 7: ...\") and nothing is written. The records are then\n"
      "sent in batches of at most ",
      kBatch,
      " records, each batch atomic (all or nothing), in file order.\n"
      "A file of at most that many records is therefore written all or nothing.\n"
      "--json prints {\"written\": N, \"created\": NEW}.\n");
  c.example =
      "  rosetta --data ./db upsert photos --file records.jsonl\n"
      "  echo '{\"id\": \"p1\", \"vectors\": {\"image\": [0.1, 0.2, 0.3, 0.4]}}' | \\\n"
      "    rosetta --data ./db upsert photos --file -\n";
  c.run = RunUpsert;
  return c;
}

CommandSpec ImportCommand() {
  CommandSpec c;
  c.name = "import";
  c.summary = "set one field of many records from a .npy or .fvecs array";
  c.positionals = "COLLECTION";
  c.min_positional = c.max_positional = 1;
  c.flags = {
      {"field", "F", "the field the vectors go to", true},
      {"vectors", "FILE.npy|FILE.fvecs", "rows x dim float array (.npy float32/16/64, .fvecs)",
       true},
      {"id-prefix", "P", "record ids are P + decimal(row + offset). Default: \"\"", false},
      {"id-offset", "N", "added to the row number. Default: 0", false},
      {"provenance", "JSON", "provenance of the records, e.g. '{\"source\": \"flickr8k\"}'",
       false},
  };
  c.description = absl::StrCat(
      "Row i becomes field F of record P + (i + N). Records that do not exist are created\n"
      "(with only this field); existing records keep their other fields and metadata, and get\n"
      "the provenance when --provenance is given.\n"
      "\n"
      "The whole array is read and every row is checked (the field's dimension, finite\n"
      "components, non-zero in a cosine space) before anything is written; an error names the\n"
      "row and nothing is written. The rows are then sent in batches of at most ",
      kBatch, " rows\nand ", kMaxImportBatchBytes >> 20,
      " MiB of vectors, each batch atomic (all or nothing), in row order.\n"
      "--json prints {\"written\": N, \"created\": NEW, \"batches\": B}.\n");
  c.example =
      "  rosetta --data ./db import photos --field image --vectors image_emb.npy --id-prefix p \\\n"
      "    --provenance '{\"source\": \"flickr8k\", \"dataset_version\": \"v1\"}'\n";
  c.run = RunImport;
  return c;
}

CommandSpec GetCommand() {
  CommandSpec c;
  c.name = "get";
  c.summary = "fetch records by id";
  c.positionals = "COLLECTION ID...";
  c.min_positional = 2;
  c.max_positional = -1;
  c.flags = {{"with-vectors", "", "include the vectors", false}};
  c.description =
      "Prints each record found as one JSON line (the upsert format), then 'not found: ID'\n"
      "lines. --json prints {\"records\": [...], \"not_found\": [ID, ...]}. Use -- before ids\n"
      "that start with '-'.\n";
  c.example = "  rosetta --data ./db get photos p1 p2 --with-vectors\n";
  c.run = RunGet;
  return c;
}

CommandSpec DeleteCommand() {
  CommandSpec c;
  c.name = "delete";
  c.summary = "delete records by id";
  c.positionals = "COLLECTION ID...";
  c.min_positional = 2;
  c.max_positional = -1;
  c.description =
      "Deletes the records atomically; ids that do not exist are counted, not an error.\n"
      "--json prints {\"deleted\": N, \"not_found\": M}. Use -- before ids that start with '-'.\n";
  c.example = "  rosetta --data ./db delete photos p1 p2\n";
  c.run = RunDelete;
  return c;
}

}  // namespace rosetta::cli
