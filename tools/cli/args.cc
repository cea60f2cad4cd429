// Command-line parsing and help text. Parsing is strict on purpose: a typo in a flag name must
// not silently turn into a positional argument or a default value.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tools/cli/command.h"

namespace rosetta::cli {
namespace {

constexpr char kUsagePayload[] = "rosetta.cli/usage";

const FlagSpec* FindFlag(const CommandSpec& spec, const std::string& name) {
  for (const FlagSpec& f : spec.flags) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

std::string FlagUsage(const FlagSpec& f) {
  std::string s = "--" + f.name;
  if (!f.value_name.empty()) s += " " + f.value_name;
  return s;
}

std::string UsageLine(const CommandSpec& spec) {
  std::string line = "usage: rosetta [global flags] " + spec.name;
  if (!spec.positionals.empty()) line += " " + spec.positionals;
  for (const FlagSpec& f : spec.flags) {
    line += f.required ? " " + FlagUsage(f) : " [" + FlagUsage(f) + "]";
  }
  return line;
}

}  // namespace

absl::Status UsageError(const std::string& message) {
  absl::Status s = absl::InvalidArgumentError(message);
  s.SetPayload(kUsagePayload, absl::Cord("1"));
  return s;
}

bool IsUsageError(const absl::Status& status) {
  return status.GetPayload(kUsagePayload).has_value();
}

absl::Status Annotate(const absl::Status& status, const std::string& prefix) {
  if (status.ok()) return status;
  absl::Status out(status.code(), absl::StrCat(prefix, ": ", status.message()));
  status.ForEachPayload([&out](absl::string_view url, const absl::Cord& payload) {
    out.SetPayload(url, payload);
  });
  return out;
}

const std::vector<CommandSpec>& AllCommands() {
  static const std::vector<CommandSpec>* commands = new std::vector<CommandSpec>{
      CreateCollectionCommand(), ListCollectionsCommand(), DescribeCommand(),
      DropCollectionCommand(),   UpsertCommand(),          ImportCommand(),
      GetCommand(),              DeleteCommand(),          SearchCommand(),
      BuildIndexCommand(),       EvalCommand(),            StatsCommand()};
  return *commands;
}

const CommandSpec* FindCommand(const std::string& name) {
  for (const CommandSpec& c : AllCommands()) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

absl::StatusOr<ParsedArgs> ParseCommandArgs(const CommandSpec& spec,
                                            const std::vector<std::string>& args, bool* help) {
  *help = false;
  // --help anywhere among the flags wins, so `rosetta upsert --help` works without the rest.
  for (const std::string& a : args) {
    if (a == "--") break;
    if (a == "--help") {
      *help = true;
      return ParsedArgs{};
    }
  }
  ParsedArgs parsed;
  bool flags_done = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (flags_done || arg == "-" || arg.size() < 2 || arg[0] != '-') {
      parsed.positional.push_back(arg);
      continue;
    }
    if (arg == "--") {
      flags_done = true;
      continue;
    }
    if (arg[1] != '-') {
      return UsageError(absl::StrCat("unknown flag \"", arg, "\" (flags are --name; use -- before ",
                                     "arguments that start with '-')"));
    }
    std::string name = arg.substr(2), value;
    bool has_inline = false;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_inline = true;
    }
    const FlagSpec* flag = FindFlag(spec, name);
    if (flag == nullptr) {
      for (const char* global :
           {"data", "server", "token", "json", "sync", "device", "version"}) {
        if (name == global) {
          return UsageError(absl::StrCat("--", name, " is a global flag: put it before the ",
                                         "command (rosetta --", name, " ... ", spec.name, " ...)"));
        }
      }
      return UsageError(absl::StrCat("unknown flag \"--", name, "\"; run 'rosetta ", spec.name,
                                     " --help'"));
    }
    if (parsed.Has(name)) return UsageError(absl::StrCat("--", name, " given twice"));
    if (flag->value_name.empty()) {
      if (has_inline) return UsageError(absl::StrCat("--", name, " takes no value"));
      parsed.switches[name] = true;
      continue;
    }
    if (!has_inline) {
      if (i + 1 >= args.size()) {
        return UsageError(absl::StrCat("--", name, ": missing value (", flag->value_name, ")"));
      }
      value = args[++i];
    }
    parsed.values[name] = value;
  }
  for (const FlagSpec& f : spec.flags) {
    if (f.required && !parsed.Has(f.name)) {
      return UsageError(absl::StrCat("missing required flag --", f.name, " ", f.value_name));
    }
  }
  const int n = static_cast<int>(parsed.positional.size());
  if (n < spec.min_positional || (spec.max_positional >= 0 && n > spec.max_positional)) {
    std::string expected = spec.positionals.empty() ? "no arguments" : spec.positionals;
    return UsageError(absl::StrCat("expected ", expected, ", got ", n, " argument",
                                   n == 1 ? "" : "s", " (", UsageLine(spec).substr(7), ")"));
  }
  return parsed;
}

std::string CommandHelp(const CommandSpec& spec) {
  std::string s = UsageLine(spec) + "\n\n" + spec.summary + "\n";
  if (!spec.description.empty()) s += "\n" + spec.description;
  if (s.back() != '\n') s += "\n";
  std::vector<std::pair<std::string, std::string>> rows;
  for (const FlagSpec& f : spec.flags) {
    rows.emplace_back(FlagUsage(f), f.help + (f.required ? " (required)" : ""));
  }
  rows.emplace_back("--help", "show this help and exit");
  size_t width = 0;
  for (const auto& r : rows) width = std::max(width, r.first.size());
  s += "\nflags:\n";
  for (const auto& [usage, help] : rows) {
    s += "  " + usage + std::string(width - usage.size() + 2, ' ') + help + "\n";
  }
  s += "\nglobal flags (before the command): --data DIR, --server HOST:PORT, --token T, --json,\n"
       "  --sync always|none, --device auto|cpu|cuda; see 'rosetta --help'.\n";
  s += "\nexample:\n" + spec.example;
  if (s.back() != '\n') s += "\n";
  return s;
}

std::string GlobalHelp() {
  std::string s =
      "usage: rosetta [global flags] COMMAND [arguments] [flags]\n"
      "\n"
      "Rosetta, a cross-modal vector database: the command-line client.\n"
      "\n"
      "global flags:\n"
      "  --data DIR          work on the database in DIR, in this process (created if missing).\n"
      "                      Default: ./rosetta-data (when --server is not given either).\n"
      "  --server HOST:PORT  talk to a rosettad server over the wire protocol.\n"
      "  --token T           authentication token for --server.\n"
      "  --json              print exactly one JSON document on stdout per command.\n"
      "  --sync always|none  embedded write durability: fsync the WAL before acknowledging each\n"
      "                      batch (always, the default), or not (none: survives a process\n"
      "                      crash, not a power loss).\n"
      "  --device auto|cpu|cuda\n"
      "                      embedded search device: auto (the default) = a CUDA GPU when this\n"
      "                      build has the CUDA kernels and a GPU is usable, else the CPU; cpu;\n"
      "                      cuda = a GPU or fail. 'rosetta stats' names the device in use.\n"
      "  --help              show this help and exit.\n"
      "  --version           print the version and exit.\n"
      "\n"
      "commands:\n";
  size_t width = 0;
  for (const CommandSpec& c : AllCommands()) width = std::max(width, c.name.size());
  for (const CommandSpec& c : AllCommands()) {
    s += "  " + c.name + std::string(width - c.name.size() + 2, ' ') + c.summary + "\n";
  }
  s +=
      "\n"
      "Run 'rosetta COMMAND --help' for a command's arguments, flags and an example.\n"
      "\n"
      "Exit status: 0 on success, 1 when the command failed, 2 for a usage error. On failure one\n"
      "line 'error: CODE: message' goes to stderr, nothing to stdout, and nothing is written.\n";
  return s;
}

absl::StatusOr<int64_t> ParseIntFlag(const std::string& flag, const std::string& value,
                                     int64_t min, int64_t max) {
  int64_t v = 0;
  if (!absl::SimpleAtoi(value, &v) || v < min || v > max) {
    return UsageError(absl::StrCat("--", flag, ": expected an integer in ", min, "..", max,
                                   ", got \"", value, "\""));
  }
  return v;
}

absl::StatusOr<std::vector<std::string>> ParseListFlag(const std::string& flag,
                                                       const std::string& value) {
  std::vector<std::string> items = absl::StrSplit(value, ',');
  for (const std::string& item : items) {
    if (item.empty()) {
      return UsageError(absl::StrCat("--", flag, ": empty item in \"", value, "\""));
    }
  }
  return items;
}

std::string FormatNumber(double v) {
  if (std::isnan(v)) return "nan";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.6g", v);
  return buf;
}

std::string FormatIndexProgressBar(const IndexBuildProgress& p, int width) {
  width = std::max(width, 1);
  const int64_t finished = p.ready + p.failed;
  const int filled =
      p.segments <= 0
          ? width
          : static_cast<int>(std::min<int64_t>(width, finished * width / p.segments));
  std::string bar = "[" + std::string(filled, '#') + std::string(width - filled, '-') + "] ";
  return absl::StrCat(bar, p.ready, "/", p.segments, " segment", p.segments == 1 ? "" : "s",
                      " ready, ", p.building, " building, ", p.failed, " failed");
}

void TextTable::Print(std::ostream& os) const {
  std::vector<size_t> widths;
  for (const auto& row : rows_) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], row[c].size());
  }
  for (const auto& row : rows_) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      line += row[c];
      if (c + 1 < row.size()) line += std::string(widths[c] - row[c].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    os << line << "\n";
  }
}

}  // namespace rosetta::cli
