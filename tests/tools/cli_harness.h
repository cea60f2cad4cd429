// Drives the CLI in-process for the tools tests.
#pragma once

#include <sstream>
#include <string>
#include <vector>

#include "tools/cli/cli.h"

namespace rosetta::testing {

struct CliRun {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs `rosetta ARGS` (without the program name) with `stdin_text` on stdin.
inline CliRun RunRosetta(const std::vector<std::string>& args, const std::string& stdin_text = "") {
  std::istringstream in(stdin_text);
  std::ostringstream out, err;
  CliRun r;
  r.exit_code = rosetta::cli::RunCli(args, in, out, err);
  r.out = out.str();
  r.err = err.str();
  return r;
}

// Prepends `--data DIR` (and --json when asked) to `args`.
inline CliRun RunOn(const std::string& data_dir, std::vector<std::string> args,
                    const std::string& stdin_text = "", bool json = true) {
  std::vector<std::string> full = {"--data", data_dir};
  if (json) full.push_back("--json");
  full.insert(full.end(), args.begin(), args.end());
  return RunRosetta(full, stdin_text);
}

// A readable description of a run for assertion messages.
inline std::string Describe(const CliRun& r) {
  return "exit " + std::to_string(r.exit_code) + "\n--- stdout ---\n" + r.out +
         "--- stderr ---\n" + r.err;
}

}  // namespace rosetta::testing
