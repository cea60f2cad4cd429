// search: one query object or an array of queries, from a file or stdin.
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "schema/json.h"
#include "schema/status_macros.h"
#include "tools/cli/command.h"

namespace rosetta::cli {
namespace {

// One table for one response: a row per (hit, targeted field), so every field's raw score,
// normalised score, weight, contribution and rank sit under one another.
void PrintResponse(const SearchResponse& response, std::ostream& os) {
  os << response.results.size() << (response.results.size() == 1 ? " result" : " results")
     << " (took " << response.took_us << " us)\n";
  if (!response.exact) {
    // Indexes narrowed the candidates: say how, per field (docs/query-semantics.md, "Indexes").
    os << "plan (indexed: the fused top-k is exact over the union of the candidates):\n";
    TextTable plan({"field", "index", "nprobe", "indexed_segments", "scanned_rows", "candidates"});
    for (const FieldPlan& p : response.plan) {
      plan.AddRow({p.field, p.index, std::to_string(p.nprobe), std::to_string(p.indexed_segments),
                   std::to_string(p.scanned_rows), std::to_string(p.candidates)});
    }
    plan.Print(os);
  }
  if (response.results.empty()) return;
  bool explained = false;
  for (const Hit& h : response.results) explained |= !h.fields.empty();
  if (!explained) {
    TextTable table({"rank", "id", "score"});
    for (size_t i = 0; i < response.results.size(); ++i) {
      const Hit& h = response.results[i];
      table.AddRow({std::to_string(i + 1), h.id, FormatNumber(h.score)});
    }
    table.Print(os);
    return;
  }
  TextTable table({"rank", "id", "score", "field", "raw", "normalized", "weight", "contribution",
                   "field_rank"});
  for (size_t i = 0; i < response.results.size(); ++i) {
    const Hit& h = response.results[i];
    bool first = true;
    for (const auto& [field, e] : h.fields) {
      std::vector<std::string> row;
      if (first) {
        row = {std::to_string(i + 1), h.id, FormatNumber(h.score)};
      } else {
        row = {"", "", ""};
      }
      first = false;
      row.push_back(field);
      if (e.missing) {
        row.insert(row.end(), {"missing", "", "", "", ""});
      } else {
        row.insert(row.end(), {FormatNumber(e.raw), FormatNumber(e.normalized),
                               FormatNumber(e.weight), FormatNumber(e.contribution),
                               std::to_string(e.rank)});
      }
      table.AddRow(std::move(row));
    }
  }
  table.Print(os);
}

// --exact, --nprobe, --refine: applied to every query, over what the query JSON says.
absl::Status ApplySearchFlags(const ParsedArgs& args, std::vector<SearchRequest>* requests) {
  std::optional<int64_t> nprobe, refine;
  if (args.Has("nprobe")) {
    ASSIGN_OR_RETURN(nprobe, ParseIntFlag("nprobe", args.Get("nprobe"), 1, 65536));
  }
  if (args.Has("refine")) {
    ASSIGN_OR_RETURN(refine, ParseIntFlag("refine", args.Get("refine"), 1, 100000));
  }
  for (SearchRequest& r : *requests) {
    if (args.Has("exact")) r.exact = true;
    if (nprobe) r.nprobe = static_cast<int>(*nprobe);
    if (refine) r.refine = static_cast<int>(*refine);
  }
  return absl::OkStatus();
}

absl::Status RunSearch(CliContext& ctx, const ParsedArgs& args) {
  const std::string& collection = args.positional[0];
  const std::string path = args.Get("query");
  ASSIGN_OR_RETURN(std::string text, ctx.ReadInput(path, "query file"));
  const std::string what = path == "-" ? "query (stdin)" : absl::StrCat("query file ", path);
  ASSIGN_OR_RETURN(Json j, ParseJsonText(text, what));
  std::vector<SearchRequest> requests;
  const bool many = j.is_array();
  if (many) {
    if (j.empty()) return absl::InvalidArgumentError(absl::StrCat(what, ": empty array"));
    for (size_t i = 0; i < j.size(); ++i) {
      absl::StatusOr<SearchRequest> r = SearchRequestFromJson(j[i]);
      if (!r.ok()) return Annotate(r.status(), absl::StrCat(what, ": queries[", i, "]"));
      requests.push_back(*std::move(r));
    }
  } else {
    absl::StatusOr<SearchRequest> r = SearchRequestFromJson(j);
    if (!r.ok()) return Annotate(r.status(), what);
    requests.push_back(*std::move(r));
  }
  RETURN_IF_ERROR(ApplySearchFlags(args, &requests));
  ASSIGN_OR_RETURN(Client * client, ctx.client());
  ASSIGN_OR_RETURN(std::vector<SearchResponse> responses,
                   client->Search(collection, std::move(requests)));
  if (ctx.json()) {
    if (many) {
      Json out = Json::object();
      out["responses"] = Json::array();
      for (const SearchResponse& r : responses) out["responses"].push_back(SearchResponseToJson(r));
      ctx.EmitJson(out);
    } else {
      ctx.EmitJson(SearchResponseToJson(responses.at(0)));
    }
  } else {
    for (size_t i = 0; i < responses.size(); ++i) {
      if (many) ctx.out() << (i ? "\n" : "") << "query " << i + 1 << ": ";
      PrintResponse(responses[i], ctx.out());
    }
  }
  return absl::OkStatus();
}

}  // namespace

CommandSpec SearchCommand() {
  CommandSpec c;
  c.name = "search";
  c.summary = "run a query (or an array of queries) and explain the hits";
  c.positionals = "COLLECTION";
  c.min_positional = c.max_positional = 1;
  c.flags = {
      {"query", "FILE|-", "a query JSON object, or an array of them (- reads stdin)", true},
      {"exact", "", "exhaustive search: the true fused top-k, ignoring the indexes"},
      {"nprobe", "N", "IVF lists probed per indexed segment and field, 1..65536"},
      {"refine", "N", "candidates per field and segment re-scored exactly, k..100000"},
  };
  c.description =
      "A query: {\"k\": 10, \"inputs\": [{\"vector\": [...], \"space\": S, \"modality\": M,\n"
      "\"fields\": [F, ...]}], \"weights\": {F: w}, \"fusion\": weighted|rrf|max,\n"
      "\"normalize\": none|minmax|zscore|calibrated, \"missing\": renormalize|zero|require,\n"
      "\"filter\": {...}, \"exact\": false, \"nprobe\": N, \"refine\": N}\n"
      "(docs/query-semantics.md). The output lists, per hit, every targeted field's raw score,\n"
      "normalised score, effective weight, contribution and rank in that field.\n"
      "\n"
      "Fields with built ivf_pq indexes are searched through them by default (\"exact\": false):\n"
      "each field proposes candidates (nprobe lists probed per segment, refine candidates per\n"
      "field and segment; defaults from the index size and k), and the union is re-scored\n"
      "exactly on every targeted field before fusion. The output then shows the plan: per\n"
      "field the index used, nprobe, the indexed segments searched, the rows scanned\n"
      "exhaustively and the candidates it contributed. --exact (or \"exact\": true) searches\n"
      "exhaustively. --exact, --nprobe and --refine apply to every query and override the\n"
      "query JSON.\n"
      "\n"
      "--json prints the response {\"results\": [...], \"took_us\": T} (plus \"exact\": false\n"
      "and \"plan\": [...] when indexes were used), or {\"responses\": [...]} for an array of\n"
      "queries.\n";
  c.example =
      "  rosetta --data ./db search photos --query q.json\n"
      "  echo '{\"k\": 5, \"inputs\": [{\"vector\": [0.1, 0.2, 0.3, 0.4], \"space\": \"clip\",\n"
      "         \"modality\": \"text\"}]}' | rosetta --data ./db search photos --query -\n"
      "  rosetta --data ./db search photos --query q.json --nprobe 32 --refine 200\n";
  c.run = RunSearch;
  return c;
}

}  // namespace rosetta::cli
