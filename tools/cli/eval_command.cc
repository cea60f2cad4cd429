// eval: recall, throughput and latency of a collection for a set of query vectors.
#include <algorithm>
#include <chrono>
#include <set>
#include <span>
#include <utility>

#include "absl/strings/str_cat.h"
#include "schema/array_io.h"
#include "schema/json.h"
#include "schema/status_macros.h"
#include "schema/validate.h"
#include "tools/cli/command.h"
#include "tools/cli/eval.h"

namespace rosetta::cli {
namespace {

// The options of --query-file: a query object whose inputs are ignored (each row of --queries
// becomes the single input). The object is parsed with a placeholder input so that the strict
// parser accepts a file without "inputs".
absl::StatusOr<SearchRequest> ParseQueryOptions(CliContext& ctx, const std::string& path,
                                                bool* has_k) {
  ASSIGN_OR_RETURN(std::string text, ctx.ReadInput(path, "query file"));
  const std::string what = path == "-" ? "query (stdin)" : absl::StrCat("query file ", path);
  ASSIGN_OR_RETURN(Json j, ParseJsonText(text, what));
  if (!j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": expected a JSON object"));
  }
  *has_k = j.contains("k");
  Json input = Json::object();
  input["vector"] = Json::array({1.0});
  input["space"] = "placeholder";
  j["inputs"] = Json::array({input});
  absl::StatusOr<SearchRequest> r = SearchRequestFromJson(j);
  if (!r.ok()) return Annotate(r.status(), what);
  r->inputs.clear();
  return r;
}

absl::Status RunEval(CliContext& ctx, const ParsedArgs& args) {
  const std::string& collection = args.positional[0];
  const std::string queries_path = args.Get("queries");
  const std::string space_name = args.Get("space");
  const std::string truth_arg = args.Get("truth");
  const std::string prefix = args.Get("id-prefix");
  QueryInput input_template;
  input_template.space = space_name;
  input_template.modality = args.Get("modality");
  if (args.Has("fields")) {
    ASSIGN_OR_RETURN(input_template.fields, ParseListFlag("fields", args.Get("fields")));
  }
  SearchRequest base;
  bool query_file_has_k = false;
  if (args.Has("query-file")) {
    ASSIGN_OR_RETURN(base, ParseQueryOptions(ctx, args.Get("query-file"), &query_file_has_k));
  }
  int64_t k = query_file_has_k ? base.k : 10;
  if (args.Has("k")) {
    ASSIGN_OR_RETURN(k, ParseIntFlag("k", args.Get("k"), 1, kMaxK));
  }
  base.k = static_cast<int>(std::max<int64_t>(k, 10));
  base.explain = false;          // only the ids are needed; measure the search, not rendering.
  base.with_attributes = false;

  // Inputs: the queries and the truth, whole, before any search.
  if (queries_path == "-") return UsageError("--queries: reading arrays from stdin is not supported");
  ASSIGN_OR_RETURN(Matrix<float> queries, ReadFloatMatrix(queries_path));
  if (queries.rows == 0) return absl::InvalidArgumentError(absl::StrCat(queries_path, ": no rows"));
  const bool pairs = truth_arg == "pairs";
  Matrix<int64_t> truth;
  if (!pairs) {
    ASSIGN_OR_RETURN(truth, ReadIntMatrix(truth_arg));
    if (truth.rows != queries.rows) {
      return absl::InvalidArgumentError(absl::StrCat("--truth ", truth_arg, ": ", truth.rows,
                                                     " rows for ", queries.rows, " queries in ",
                                                     queries_path));
    }
    if (truth.cols == 0) {
      return absl::InvalidArgumentError(absl::StrCat("--truth ", truth_arg, ": no columns"));
    }
  }

  // Check the space and every query vector against the schema up front.
  ASSIGN_OR_RETURN(Client * client, ctx.client());
  ASSIGN_OR_RETURN(CollectionInfo info, client->Describe(collection));
  auto sit = info.schema.spaces.find(space_name);
  if (sit == info.schema.spaces.end()) {
    return absl::NotFoundError(
        absl::StrCat("collection \"", collection, "\" has no space \"", space_name, "\""));
  }
  if (queries.cols != static_cast<size_t>(sit->second.dim)) {
    return absl::InvalidArgumentError(absl::StrCat(queries_path, ": rows have ", queries.cols,
                                                   " components; space \"", space_name,
                                                   "\" expects ", sit->second.dim));
  }
  for (size_t i = 0; i < queries.rows; ++i) {
    RETURN_IF_ERROR(ValidateVector(sit->second, std::span<const float>(queries.row(i), queries.cols),
                                   absl::StrCat(queries_path, ": row ", i)));
  }
  auto make_request = [&](size_t i) {
    SearchRequest r = base;
    QueryInput in = input_template;
    in.vector.assign(queries.row(i), queries.row(i) + queries.cols);
    r.inputs.push_back(std::move(in));
    return r;
  };
  {
    SearchRequest probe = make_request(0);
    RETURN_IF_ERROR(Annotate(ValidateAndNormalizeQuery(info.schema, probe), "query"));
  }

  // Run the queries one by one, so that every latency is one query's.
  std::vector<int64_t> ks = {1, 5, 10};
  if (std::find(ks.begin(), ks.end(), k) == ks.end()) ks.push_back(k);
  std::sort(ks.begin(), ks.end());
  std::vector<double> recall_sum(ks.size(), 0.0);
  std::vector<double> latency_us;
  latency_us.reserve(queries.rows);
  using Clock = std::chrono::steady_clock;
  const Clock::time_point start = Clock::now();
  for (size_t i = 0; i < queries.rows; ++i) {
    std::vector<SearchRequest> one;
    one.push_back(make_request(i));
    const Clock::time_point t0 = Clock::now();
    absl::StatusOr<std::vector<SearchResponse>> r = client->Search(collection, std::move(one));
    const Clock::time_point t1 = Clock::now();
    if (!r.ok()) return Annotate(r.status(), absl::StrCat("query row ", i));
    latency_us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    std::vector<std::string> ids;
    for (const Hit& h : r->at(0).results) ids.push_back(h.id);
    for (size_t j = 0; j < ks.size(); ++j) {
      const size_t kk = static_cast<size_t>(ks[j]);
      recall_sum[j] += pairs ? PairRecall(ids, absl::StrCat(prefix, i), kk)
                             : RowRecall(ids, prefix,
                                         std::span<const int64_t>(truth.row(i), truth.cols), kk);
    }
  }
  const double total_s = std::chrono::duration<double>(Clock::now() - start).count();
  const double n = static_cast<double>(queries.rows);
  const double qps = total_s > 0 ? n / total_s : 0.0;
  const double p50 = Percentile(latency_us, 50), p99 = Percentile(latency_us, 99);

  if (ctx.json()) {
    Json out = Json::object();
    out["queries"] = static_cast<int64_t>(queries.rows);
    for (size_t j = 0; j < ks.size(); ++j) out[absl::StrCat("recall@", ks[j])] = recall_sum[j] / n;
    out["qps"] = qps;
    out["latency_us"] = Json::object();
    out["latency_us"]["p50"] = p50;
    out["latency_us"]["p99"] = p99;
    ctx.EmitJson(out);
  } else {
    std::ostream& os = ctx.out();
    os << "queries: " << queries.rows << "\n";
    for (size_t j = 0; j < ks.size(); ++j) {
      os << "recall@" << ks[j] << ": " << FormatNumber(recall_sum[j] / n) << "\n";
    }
    os << "qps: " << FormatNumber(qps) << "\n";
    os << "latency p50: " << FormatNumber(p50) << " us\n";
    os << "latency p99: " << FormatNumber(p99) << " us\n";
  }
  return absl::OkStatus();
}

}  // namespace

CommandSpec EvalCommand() {
  CommandSpec c;
  c.name = "eval";
  c.summary = "measure recall@k, throughput and latency for a set of query vectors";
  c.positionals = "COLLECTION";
  c.min_positional = c.max_positional = 1;
  c.flags = {
      {"queries", "FILE.npy|FILE.fvecs", "one query vector per row", true},
      {"space", "S", "the space of the query vectors", true},
      {"modality", "M", "the queries' modality (used by calibration)", false},
      {"fields", "F,...", "fields to search. Default: every field of the space", false},
      {"truth", "pairs|FILE.ivecs|FILE.npy", "the ground truth (described above)", true},
      {"id-prefix", "P", "prefix of the record ids (as given to import). Default: \"\"", false},
      {"k", "K", "also report recall@K. Default: the query file's k, else 10", false},
      {"query-file", "Q.json", "query options: k, weights, fusion, normalize, missing, filter "
                               "(its inputs are ignored)", false},
  };
  c.description =
      "Each row i of --queries becomes the single input {vector, space, modality, fields} of a\n"
      "query built from --query-file's options, searched with k = max(K, 10). The queries run\n"
      "one at a time, so every latency is one query's end-to-end time through the client.\n"
      "Only the ids are needed, so the searches run without explanations and attributes\n"
      "(explain and with_attributes false).\n"
      "\n"
      "--truth pairs: the relevant record of query i is P + i (e.g. caption i <-> image i);\n"
      "  recall@k is the fraction of queries whose relevant record is in the top k.\n"
      "--truth FILE: row i lists the base rows of query i's true neighbours, best first\n"
      "  (.ivecs, or .npy of int32/int64). Result ids map back to rows by stripping P and\n"
      "  parsing the decimal rest (ids that do not parse are misses). recall@k = |top-k ∩ true\n"
      "  top-k| / k, averaged over the queries (when the truth has fewer than k columns, the\n"
      "  denominator is its column count).\n"
      "\n"
      "Prints the number of queries, recall@1, @5, @10 (and @K), qps = queries / total wall\n"
      "time, and the p50 / p99 per-query latency in microseconds. --json prints\n"
      "{\"queries\", \"recall@1\", \"recall@5\", \"recall@10\", \"qps\",\n"
      " \"latency_us\": {\"p50\", \"p99\"}} (plus \"recall@K\").\n";
  c.example =
      "  rosetta --data ./db eval photos --queries text_emb.npy --space clip --modality text \\\n"
      "    --fields image --truth pairs --id-prefix p --k 10\n"
      "  rosetta --data ./db eval sift --queries siftsmall_query.fvecs --space sift \\\n"
      "    --truth siftsmall_groundtruth.ivecs --k 100\n";
  c.run = RunEval;
  return c;
}

}  // namespace rosetta::cli
