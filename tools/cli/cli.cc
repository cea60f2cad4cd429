// RunCli: global flags, command dispatch, and the error contract (one stderr line, exit 1 or 2,
// nothing on stdout). Commands write into a buffer that reaches stdout only on success, so a
// failure half-way through formatting can never leave partial output behind.
#include "tools/cli/cli.h"

#include <unistd.h>

#include <exception>
#include <iostream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "net/embedded_client.h"
#include "schema/status_macros.h"
#include "tools/cli/command.h"

namespace rosetta::cli {
namespace {

// Splits "--name=value" into name and value; returns false when there is no '='.
bool SplitInlineValue(const std::string& arg, std::string* name, std::string* value) {
  size_t eq = arg.find('=');
  if (eq == std::string::npos) return false;
  *name = arg.substr(0, eq);
  *value = arg.substr(eq + 1);
  return true;
}

absl::Status ParseServerAddress(const std::string& value, GlobalOptions* g) {
  size_t colon = value.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == value.size()) {
    return UsageError(absl::StrCat("--server: expected HOST:PORT, got \"", value, "\""));
  }
  std::string host = value.substr(0, colon);
  // [v6-address]:port
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  int port = 0;
  if (host.empty() || !absl::SimpleAtoi(value.substr(colon + 1), &port) || port < 1 ||
      port > 65535) {
    return UsageError(
        absl::StrCat("--server: expected HOST:PORT with a port in 1..65535, got \"", value, "\""));
  }
  g->server = value;
  g->server_host = host;
  g->server_port = port;
  return absl::OkStatus();
}

enum class GlobalAction { kRun, kHelp, kVersion };

// Parses the global flags; `*next` is the index of the command.
absl::StatusOr<GlobalAction> ParseGlobals(const std::vector<std::string>& args, GlobalOptions* g,
                                          size_t* next) {
  size_t i = 0;
  std::map<std::string, bool> seen;
  for (; i < args.size(); ++i) {
    std::string arg = args[i];
    if (arg.size() < 2 || arg.compare(0, 2, "--") != 0) break;  // the command.
    std::string name = arg, value;
    bool has_inline = SplitInlineValue(arg, &name, &value);
    if (name == "--help" || name == "--version" || name == "--json") {
      if (has_inline) return UsageError(absl::StrCat(name, " takes no value"));
      if (name == "--help") return GlobalAction::kHelp;
      if (name == "--version") return GlobalAction::kVersion;
      g->json = true;
      continue;
    }
    if (name != "--data" && name != "--server" && name != "--token" && name != "--sync" &&
        name != "--device") {
      return UsageError(absl::StrCat("unknown global flag \"", name,
                                     "\" (global flags go before the command; run "
                                     "'rosetta --help')"));
    }
    if (seen[name]) return UsageError(absl::StrCat(name, " given twice"));
    seen[name] = true;
    if (!has_inline) {
      if (i + 1 >= args.size()) return UsageError(absl::StrCat(name, ": missing value"));
      value = args[++i];
    }
    if (name == "--data") {
      if (value.empty()) return UsageError("--data: empty directory name");
      g->data_dir = value;
      g->data_given = true;
    } else if (name == "--server") {
      RETURN_IF_ERROR(ParseServerAddress(value, g));
    } else if (name == "--token") {
      g->token = value;
    } else if (name == "--device") {
      absl::StatusOr<engine::DeviceKind> kind = engine::ParseDeviceKind(value);
      if (!kind.ok()) return UsageError(absl::StrCat("--device: ", kind.status().message()));
      g->device = *kind;
      g->device_given = true;
    } else {  // --sync
      if (value == "always") {
        g->sync = storage::SyncPolicy::kAlways;
      } else if (value == "none") {
        g->sync = storage::SyncPolicy::kNone;
      } else {
        return UsageError(absl::StrCat("--sync: expected always or none, got \"", value, "\""));
      }
      g->sync_given = true;
    }
  }
  *next = i;
  if (g->data_given && !g->server.empty()) {
    return UsageError("--data and --server are exclusive (embedded or remote)");
  }
  if (seen["--token"] && g->server.empty()) return UsageError("--token requires --server");
  if (g->sync_given && !g->server.empty()) {
    return UsageError("--sync applies to embedded mode (--data); the server sets its own policy");
  }
  if (g->device_given && !g->server.empty()) {
    return UsageError(
        "--device applies to embedded mode (--data); the server picks its own (rosettad --device)");
  }
  return GlobalAction::kRun;
}

absl::Status Run(const std::vector<std::string>& args, std::istream& in, std::ostream& out,
                 std::ostream& err) {
  GlobalOptions globals;
  size_t next = 0;
  ASSIGN_OR_RETURN(GlobalAction action, ParseGlobals(args, &globals, &next));
  if (action == GlobalAction::kHelp) {
    out << GlobalHelp();
    return absl::OkStatus();
  }
  if (action == GlobalAction::kVersion) {
    if (globals.json) {
      Json j = Json::object();
      j["version"] = kRosettaVersion;
      out << DumpJson(j, 2) << "\n";
    } else {
      out << "rosetta " << kRosettaVersion << "\n";
    }
    return absl::OkStatus();
  }
  if (next >= args.size()) {
    return UsageError("no command given; run 'rosetta --help' for the list of commands");
  }
  const std::string& name = args[next];
  const CommandSpec* spec = FindCommand(name);
  if (spec == nullptr) {
    return UsageError(absl::StrCat("unknown command \"", name,
                                   "\"; run 'rosetta --help' for the list of commands"));
  }
  std::vector<std::string> rest(args.begin() + next + 1, args.end());
  bool help = false;
  absl::StatusOr<ParsedArgs> parsed = ParseCommandArgs(*spec, rest, &help);
  if (help) {
    out << CommandHelp(*spec);
    return absl::OkStatus();
  }
  if (!parsed.ok()) return Annotate(parsed.status(), spec->name);
  // Progress bars only on a real terminal: never in tests (string streams) or logs.
  const bool err_is_tty = &err == &std::cerr && isatty(STDERR_FILENO) == 1;
  CliContext ctx(globals, in, &out, &err, err_is_tty);
  RETURN_IF_ERROR(spec->run(ctx, *parsed));
  out << ctx.out().str();
  out.flush();
  return absl::OkStatus();
}

}  // namespace

int RunCli(const std::vector<std::string>& args, std::istream& in, std::ostream& out,
           std::ostream& err) {
  absl::Status status;
  try {
    status = Run(args, in, out, err);
  } catch (const std::exception& e) {
    // Nothing should throw past the modules' Status boundaries; if something does, keep the
    // error contract (one line, non-zero exit) rather than aborting.
    status = absl::InternalError(absl::StrCat("unexpected exception: ", e.what()));
  }
  if (status.ok()) return 0;
  // Exactly one line, whatever the message holds.
  std::string message = absl::StrReplaceAll(status.message(), {{"\r\n", " "}, {"\n", " "}, {"\r", " "}});
  err << "error: " << absl::StatusCodeToString(status.code()) << ": " << message << "\n";
  err.flush();
  return IsUsageError(status) ? 2 : 1;
}

int RunCli(int argc, char** argv, std::ostream& out, std::ostream& err) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  return RunCli(args, std::cin, out, err);
}

}  // namespace rosetta::cli
