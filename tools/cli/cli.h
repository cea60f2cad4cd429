// The `rosetta` command-line interface, as a library so that tests drive it in-process.
//
//   rosetta [global flags] COMMAND [args and flags]
//
// Global flags (before the command):
//   --data DIR          embedded mode on DIR (created if missing). Default: ./rosetta-data.
//   --server HOST:PORT  talk to a rosettad server (net/remote_client.h); output is identical to
//                       embedded mode.
//   --token T           authentication token for --server.
//   --json              print exactly one JSON document on stdout per command.
//   --sync always|none  embedded write sync policy (storage::SyncPolicy). Default: always.
//   --device auto|cpu|cuda  embedded search device (engine::DatabaseOptions::device).
//                       Default: auto.
//   --help, --version
//
// Exit status: 0 on success; 1 when the command failed; 2 for a usage error (unknown command or
// flag, missing or malformed flag value, wrong number of arguments). On failure exactly one line
// `error: <CODE>: <message>` is written to stderr (CODE = absl::StatusCodeToString, e.g.
// INVALID_ARGUMENT), nothing is written to stdout, and nothing is written to the database (input
// files are read and validated in full before the first write; see each command's --help for the
// batch semantics of large inputs).
#pragma once

#include <istream>
#include <ostream>
#include <string>
#include <vector>

namespace rosetta::cli {

// Runs the CLI; argv[0] is the program name. Reads `-` inputs from std::cin.
int RunCli(int argc, char** argv, std::ostream& out, std::ostream& err);

// The same with explicit arguments (without the program name) and stdin, for tests.
int RunCli(const std::vector<std::string>& args, std::istream& in, std::ostream& out,
           std::ostream& err);

}  // namespace rosetta::cli
