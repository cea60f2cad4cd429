// The `rosetta` command-line tool; all logic is in tools/cli (see tools/cli/cli.h).
#include <iostream>

#include "tools/cli/cli.h"

int main(int argc, char** argv) {
  std::ios::sync_with_stdio(false);
  return rosetta::cli::RunCli(argc, argv, std::cout, std::cerr);
}
