// Internals of the CLI shared by the command implementations: the command table entry, parsed
// arguments, the per-invocation context (global options, lazily opened client, buffered output)
// and small helpers. Not a public interface: only tools/cli/*.cc include it.
#pragma once

#include <functional>
#include <istream>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/database.h"
#include "net/client.h"
#include "schema/json.h"
#include "storage/store.h"

namespace rosetta::cli {

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

// A usage error (exit status 2): InvalidArgument carrying a marker payload.
absl::Status UsageError(const std::string& message);
bool IsUsageError(const absl::Status& status);

// Prefixes a status message: "<prefix>: <message>", keeping the code (and the usage marker).
absl::Status Annotate(const absl::Status& status, const std::string& prefix);

// ---------------------------------------------------------------------------------------------
// Global options and the connection point
// ---------------------------------------------------------------------------------------------

struct GlobalOptions {
  std::string data_dir = "./rosetta-data";
  bool data_given = false;
  std::string server;  // "HOST:PORT" as given; empty = embedded.
  std::string server_host;
  int server_port = 0;
  std::string token;
  bool json = false;
  storage::SyncPolicy sync = storage::SyncPolicy::kAlways;
  bool sync_given = false;
  // Embedded mode's search device (engine::DatabaseOptions::device); a server picks its own.
  engine::DeviceKind device = engine::DeviceKind::kAuto;
  bool device_given = false;
};

// The one place where the CLI picks its Client implementation: the embedded engine for --data,
// the network client (net/remote_client.h) for --server.
absl::StatusOr<std::unique_ptr<Client>> OpenClient(const GlobalOptions& options);

// ---------------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------------

struct FlagSpec {
  std::string name;        // without the dashes: "file".
  std::string value_name;  // "FILE|-"; empty for a boolean switch.
  std::string help;
  bool required = false;
};

// The parsed arguments of one command invocation.
struct ParsedArgs {
  std::vector<std::string> positional;
  std::map<std::string, std::string> values;  // flags with a value.
  std::map<std::string, bool> switches;       // boolean flags given.

  bool Has(const std::string& flag) const { return values.count(flag) || switches.count(flag); }
  std::string Get(const std::string& flag, const std::string& fallback = "") const {
    auto it = values.find(flag);
    return it == values.end() ? fallback : it->second;
  }
};

class CliContext;

struct CommandSpec {
  std::string name;
  std::string summary;        // one line, for `rosetta --help`.
  std::string positionals;    // usage of the positional arguments: "COLLECTION ID...".
  int min_positional = 0;
  int max_positional = 0;     // -1 = unlimited.
  std::vector<FlagSpec> flags;
  std::string description;    // paragraphs for `--help`.
  std::string example;        // one or more example command lines.
  std::function<absl::Status(CliContext&, const ParsedArgs&)> run;
};

// Every command, in the order `rosetta --help` lists them.
const std::vector<CommandSpec>& AllCommands();
const CommandSpec* FindCommand(const std::string& name);

// The command table entries, one per implementation file.
CommandSpec CreateCollectionCommand();
CommandSpec ListCollectionsCommand();
CommandSpec DescribeCommand();
CommandSpec DropCollectionCommand();
CommandSpec UpsertCommand();
CommandSpec ImportCommand();
CommandSpec GetCommand();
CommandSpec DeleteCommand();
CommandSpec SearchCommand();
CommandSpec EvalCommand();
CommandSpec BuildIndexCommand();
CommandSpec StatsCommand();

// Parses a command's arguments (after the command name) against its spec. `--flag value`,
// `--flag=value`, `--` ends the flags. Returns a usage error for unknown flags, missing values,
// repeated flags, missing required flags and a wrong number of positionals. `help` is set (and
// nothing else checked) when --help is among the flags.
absl::StatusOr<ParsedArgs> ParseCommandArgs(const CommandSpec& spec,
                                            const std::vector<std::string>& args, bool* help);

std::string CommandHelp(const CommandSpec& spec);
std::string GlobalHelp();

// ---------------------------------------------------------------------------------------------
// The per-invocation context
// ---------------------------------------------------------------------------------------------

class CliContext {
 public:
  // `live_out` / `err`: the real stdout and stderr (null: none, e.g. in tests of a command);
  // `err_is_tty`: stderr is a terminal (progress bars are drawn only then).
  CliContext(const GlobalOptions& globals, std::istream& in, std::ostream* live_out = nullptr,
             std::ostream* err = nullptr, bool err_is_tty = false)
      : globals_(globals), in_(in), live_out_(live_out), err_(err), err_is_tty_(err_is_tty) {}

  const GlobalOptions& globals() const { return globals_; }
  bool json() const { return globals_.json; }

  // The client, opened on first use (so that a command failing on its input files never opens,
  // let alone creates, the data directory).
  absl::StatusOr<Client*> client();

  // Reads a whole input: `-` = stdin (at most once per invocation), else the file at `path`.
  // NotFound / InvalidArgument naming the path.
  absl::StatusOr<std::string> ReadInput(const std::string& path, const std::string& what);

  // Output is buffered and written to stdout only when the command succeeds.
  std::ostringstream& out() { return out_; }
  // Writes one JSON document (indented, one trailing newline) to the buffered output.
  void EmitJson(const Json& j);

  // Writes one line straight to stdout and flushes it, bypassing the buffer: for progress that
  // must appear as it happens (build-index --wait --json). Such lines stay on stdout even if the
  // command fails afterwards (the one exception to "nothing on stdout on failure"). Without a
  // live stdout (tests of a command), the line goes to the buffer.
  void EmitLiveLine(const std::string& line);

  // Progress drawn on stderr when it is a terminal: `text` replaces the current line (`final`
  // ends it with a newline). Nothing when stderr is not a terminal, so logs and tests see none.
  void ShowProgress(const std::string& text, bool final);

 private:
  const GlobalOptions& globals_;
  std::istream& in_;
  std::ostream* live_out_;
  std::ostream* err_;
  bool err_is_tty_;
  size_t progress_width_ = 0;  // length of the progress line drawn last.
  bool stdin_used_ = false;
  std::unique_ptr<Client> client_;
  std::ostringstream out_;
};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

// Parses a flag value as an integer in [min, max]; a usage error naming the flag otherwise.
absl::StatusOr<int64_t> ParseIntFlag(const std::string& flag, const std::string& value,
                                     int64_t min, int64_t max);

// Splits "a,b,c" (empty items are a usage error naming the flag).
absl::StatusOr<std::vector<std::string>> ParseListFlag(const std::string& flag,
                                                       const std::string& value);

// Number formatting for the human-readable output: up to 6 significant digits.
std::string FormatNumber(double v);

// A progress bar of index builds, `width` cells wide:
// "[##########----------] 1/2 segments ready, 1 building, 0 failed". The bar counts finished
// segments (ready or failed) out of all sealed ones; full when there are none.
std::string FormatIndexProgressBar(const IndexBuildProgress& p, int width);

// A text table with aligned columns (left-aligned, two spaces between columns).
class TextTable {
 public:
  explicit TextTable(std::vector<std::string> header) : rows_{std::move(header)} {}
  void AddRow(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void Print(std::ostream& os) const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace rosetta::cli
