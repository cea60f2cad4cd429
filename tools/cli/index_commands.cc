// build-index and stats: the index builds of a collection, and the telemetry of the engine (and,
// through a server, of the server).
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "schema/json.h"
#include "schema/status_macros.h"
#include "tools/cli/command.h"

namespace rosetta::cli {
namespace {

// How often build-index --wait asks for the progress. Each poll is one cheap request (and one
// JSON line with --json), so a build of minutes prints a few hundred lines, not thousands.
constexpr std::chrono::milliseconds kPollInterval{250};
constexpr int kBarWidth = 30;

Json ProgressToJson(const IndexBuildProgress& p) {
  Json j = Json::object();
  j["segments"] = p.segments;
  j["ready"] = p.ready;
  j["building"] = p.building;
  j["failed"] = p.failed;
  j["growing_rows"] = p.growing_rows;
  j["done"] = p.done();
  return j;
}

void PrintProgress(const IndexBuildProgress& p, std::ostream& os) {
  os << "segments: " << p.segments << " (ready " << p.ready << ", building " << p.building
     << ", failed " << p.failed << ")\n";
  os << "rows not yet sealed: " << p.growing_rows << "\n";
  os << "state: " << (p.done() ? (p.failed > 0 ? "failed" : "done") : "building") << "\n";
}

// Why builds failed, from describe: "segment 3 (image: k-means: ...)", one per failed segment.
absl::Status FailedBuildsError(Client& client, const std::string& collection,
                               const IndexBuildProgress& p) {
  std::vector<std::string> failures;
  absl::StatusOr<CollectionInfo> info = client.Describe(collection);
  if (info.ok()) {
    for (const SegmentInfo& si : info->segment_list) {
      std::vector<std::string> reasons;
      for (const SegmentFieldIndex& f : si.fields) {
        if (f.state.rfind("failed", 0) == 0) reasons.push_back(absl::StrCat(f.field, ": ", f.state));
      }
      if (si.state == "failed" || !reasons.empty()) {
        failures.push_back(
            absl::StrCat("segment ", si.id,
                         reasons.empty() ? "" : absl::StrCat(" (", absl::StrJoin(reasons, "; "), ")")));
      }
    }
  }
  std::string detail = failures.empty()
                           ? (info.ok() ? std::string("describe lists no failed segment")
                                        : absl::StrCat("describe failed: ", info.status().message()))
                           : absl::StrJoin(failures, "; ");
  return absl::AbortedError(absl::StrCat("build-index: the index build failed in ", p.failed,
                                         p.failed == 1 ? " segment: " : " segments: ", detail,
                                         "; run build-index again to retry"));
}

absl::Status RunBuildIndex(CliContext& ctx, const ParsedArgs& args) {
  const std::string& collection = args.positional[0];
  const bool wait = args.Has("wait");
  ASSIGN_OR_RETURN(Client * client, ctx.client());
  ASSIGN_OR_RETURN(IndexBuildProgress progress, client->BuildIndex(collection, args.Get("field")));
  if (!wait) {
    if (ctx.json()) {
      ctx.EmitJson(ProgressToJson(progress));
    } else {
      PrintProgress(progress, ctx.out());
    }
    return absl::OkStatus();
  }
  // The state BuildIndex returned is the first poll; then until nothing is queued or running.
  auto report = [&](const IndexBuildProgress& p) {
    if (ctx.json()) ctx.EmitLiveLine(DumpJson(ProgressToJson(p)));
    ctx.ShowProgress(absl::StrCat("build-index ", collection, ": ",
                                  FormatIndexProgressBar(p, kBarWidth)),
                     p.done());
  };
  report(progress);
  if (!progress.done()) {
    ASSIGN_OR_RETURN(progress,
                     WaitForIndexes(*client, collection, std::chrono::milliseconds::max(),
                                    kPollInterval, report));
  }
  if (progress.failed > 0) return FailedBuildsError(*client, collection, progress);
  if (!ctx.json()) PrintProgress(progress, ctx.out());
  return absl::OkStatus();
}

Json LatencyToJson(const LatencyStats& l) {
  Json j = Json::object();
  j["operation"] = l.operation;
  j["count"] = l.count;
  j["errors"] = l.errors;
  j["mean_us"] = l.mean_us;
  j["p50_us"] = l.p50_us;
  j["p90_us"] = l.p90_us;
  j["p99_us"] = l.p99_us;
  j["max_us"] = l.max_us;
  return j;
}

Json StatsToJson(const DatabaseStats& s) {
  Json j = Json::object();
  j["uptime_s"] = s.uptime_s;
  j["collections"] = s.collections;
  j["records"] = s.records;
  Json ops = Json::array();
  for (const LatencyStats& l : s.operations) ops.push_back(LatencyToJson(l));
  j["operations"] = std::move(ops);
  j["commit_batches"] = s.commit_batches;
  j["commit_groups"] = s.commit_groups;
  Json requests = Json::array();
  for (const LatencyStats& l : s.requests) requests.push_back(LatencyToJson(l));
  j["requests"] = std::move(requests);
  j["connections_open"] = s.connections_open;
  j["connections_accepted"] = s.connections_accepted;
  j["connections_refused"] = s.connections_refused;
  j["bytes_received"] = s.bytes_received;
  j["bytes_sent"] = s.bytes_sent;
  j["device"] = s.device;
  const DeviceStats& d = s.device_stats;
  Json dj = Json::object();
  dj["searches"] = d.searches;
  dj["batches"] = d.batches;
  dj["fallbacks"] = d.fallbacks;
  dj["boundary_fallbacks"] = d.boundary_fallbacks;
  dj["cpu_queries"] = d.cpu_queries;
  dj["mirrored_rows"] = d.mirrored_rows;
  dj["mirror_bytes"] = d.mirror_bytes;
  dj["memory_budget_bytes"] = d.memory_budget_bytes;
  dj["unmirrored_rows"] = d.unmirrored_rows;
  j["device_stats"] = std::move(dj);
  return j;
}

void PrintLatencies(const char* first_column, const std::vector<LatencyStats>& list,
                    std::ostream& os) {
  TextTable table({first_column, "count", "errors", "mean_us", "p50_us", "p90_us", "p99_us",
                   "max_us"});
  for (const LatencyStats& l : list) {
    table.AddRow({l.operation, std::to_string(l.count), std::to_string(l.errors),
                  FormatNumber(l.mean_us), FormatNumber(l.p50_us), FormatNumber(l.p90_us),
                  FormatNumber(l.p99_us), FormatNumber(l.max_us)});
  }
  table.Print(os);
}

absl::Status RunStats(CliContext& ctx, const ParsedArgs&) {
  ASSIGN_OR_RETURN(Client * client, ctx.client());
  ASSIGN_OR_RETURN(DatabaseStats stats, client->Stats());
  if (ctx.json()) {
    ctx.EmitJson(StatsToJson(stats));
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(ServerInfo info, client->Info());
  std::ostream& os = ctx.out();
  os << "uptime: " << FormatNumber(stats.uptime_s) << " s\n";
  os << "collections: " << stats.collections << "\n";
  os << "records: " << stats.records << "\n";
  PrintLatencies("operation", stats.operations, os);
  os << "commits: " << stats.commit_batches << " batches in " << stats.commit_groups
     << " groups (WAL writes, one fsync each)";
  if (stats.commit_groups > 0) {
    os << ", " << FormatNumber(static_cast<double>(stats.commit_batches) /
                               static_cast<double>(stats.commit_groups))
       << " batches per fsync";
  }
  os << "\n";
  // The device's counters are printed on the CPU too (all 0 there), so that the output's shape
  // does not depend on the machine.
  const DeviceStats& d = stats.device_stats;
  os << "device: " << (stats.device.empty() ? "unknown" : stats.device) << "\n";
  os << "device searches: " << d.searches << " in " << d.batches << " batches";
  if (d.batches > 0) {
    os << " (" << FormatNumber(static_cast<double>(d.searches) / static_cast<double>(d.batches))
       << " per batch)";
  }
  os << ", fallbacks " << d.fallbacks << " (+" << d.boundary_fallbacks
     << " at the boundary), cpu queries " << d.cpu_queries << "\n";
  os << "device mirror: " << d.mirrored_rows << " rows, " << d.mirror_bytes << " bytes (budget "
     << d.memory_budget_bytes << " bytes), unmirrored rows " << d.unmirrored_rows << "\n";
  if (info.mode == "server") {
    PrintLatencies("request", stats.requests, os);
    os << "connections: " << stats.connections_open << " open, " << stats.connections_accepted
       << " accepted, " << stats.connections_refused << " refused\n";
    os << "bytes: " << stats.bytes_received << " received, " << stats.bytes_sent << " sent\n";
  }
  return absl::OkStatus();
}

}  // namespace

CommandSpec BuildIndexCommand() {
  CommandSpec c;
  c.name = "build-index";
  c.summary = "seal new rows into a segment and build its IVF-PQ indexes (--wait: until done)";
  c.positionals = "COLLECTION";
  c.min_positional = c.max_positional = 1;
  c.flags = {
      {"field", "F", "check that field F has an ivf_pq index (a segment's fields are always "
                     "built together)"},
      {"wait", "", "wait until no build is queued or running, showing the progress"},
  };
  c.description =
      "Seals the rows not yet in a sealed segment (at any size) into a new segment and queues\n"
      "the builds of its ivf_pq indexes in the background, and the retry of builds that failed\n"
      "(docs/query-semantics.md, \"Indexes\"). Reads and writes go on during builds; searches\n"
      "scan the rows of a segment exhaustively until its indexes are ready.\n"
      "\n"
      "Prints the progress: sealed segments (ready, building, failed) and the rows not yet\n"
      "sealed. --json prints {\"segments\", \"ready\", \"building\", \"failed\", \"growing_rows\",\n"
      "\"done\"}.\n"
      "\n"
      "With --wait the command polls the progress until no build is queued or running; on a\n"
      "terminal it draws a progress bar on stderr. With --json it prints one such object per\n"
      "poll, one per line, as the polls happen (the first is the state right after the call,\n"
      "the last the final state). If a build failed, the exit status is 1 and the error names\n"
      "the segment and the reason (as describe shows them); JSON lines printed before stay on\n"
      "stdout.\n"
      "\n"
      "Errors: INVALID_ARGUMENT when the collection (or --field) has no ivf_pq index,\n"
      "NOT_FOUND for an unknown collection or field.\n";
  c.example =
      "  rosetta --data ./db build-index photos --wait\n"
      "  rosetta --data ./db --json build-index photos --wait   # JSON lines\n";
  c.run = RunBuildIndex;
  return c;
}

CommandSpec StatsCommand() {
  CommandSpec c;
  c.name = "stats";
  c.summary = "show latency telemetry and commit, connection and byte counters";
  c.description =
      "Counters since the database was opened (embedded: by this command, so mostly empty; use\n"
      "it with --server). Per engine operation (search, search_batch, upsert, import, get,\n"
      "delete): count, errors, and the mean, p50, p90, p99 and max latency in microseconds\n"
      "(percentiles within 6.25 %). Commits: write batches made durable and the WAL writes\n"
      "(one fsync each) they took; more batches than groups means concurrent writers shared\n"
      "fsyncs. Through a server also per request type (request.<type>, from the decoded\n"
      "request to the encoded reply), the connections (open, accepted, refused) and the\n"
      "bytes received and sent.\n"
      "--json prints {\"uptime_s\", \"collections\", \"records\", \"operations\": [{\"operation\",\n"
      "\"count\", \"errors\", \"mean_us\", \"p50_us\", \"p90_us\", \"p99_us\", \"max_us\"}],\n"
      "\"commit_batches\", \"commit_groups\", \"requests\": [...], \"connections_open\",\n"
      "\"connections_accepted\", \"connections_refused\", \"bytes_received\", \"bytes_sent\",\n"
      "\"device\", \"device_stats\": {\"searches\", \"batches\", \"fallbacks\",\n"
      "\"boundary_fallbacks\", \"cpu_queries\", \"mirrored_rows\", \"mirror_bytes\",\n"
      "\"memory_budget_bytes\", \"unmirrored_rows\"}} (server-only members are [] and 0 in\n"
      "embedded mode).\n"
      "The search device (\"cpu\", or e.g. \"cuda:0 NVIDIA H100 80GB HBM3\") and its counters:\n"
      "queries the device answered, in how many device calls, eligible queries answered on the\n"
      "CPU after a device error or because of near-ties at the k-th score (boundary), exhaustive\n"
      "queries the device path does not take, and the rows mirrored to the device (all 0 on\n"
      "the CPU).\n";
  c.example = "  rosetta --server 127.0.0.1:7700 stats\n";
  c.run = RunStats;
  return c;
}

}  // namespace rosetta::cli
