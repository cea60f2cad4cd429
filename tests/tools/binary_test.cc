// Runs the real `rosetta` executable end to end (create, import, search via stdin), so that the
// binary itself, not only the library behind it, is exercised. The build directory comes from
// ROSETTA_TEST_BIN_DIR (set by tests/CMakeLists.txt); the test skips when the binary is absent.
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "schema/array_io.h"
#include "tests/testing/testing.h"

namespace rosetta::testing {
namespace {

namespace fs = std::filesystem;

std::string Slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string Quoted(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

struct Proc {
  int exit_code = -1;
  std::string out, err;
};

class BinaryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* dir = std::getenv("ROSETTA_TEST_BIN_DIR");
    if (dir == nullptr || *dir == '\0') GTEST_SKIP() << "ROSETTA_TEST_BIN_DIR is not set";
    bin_ = (fs::path(dir) / "tools" / "rosetta").string();
    if (!fs::exists(bin_)) GTEST_SKIP() << "the rosetta binary is missing at " << bin_;
  }
  // Runs the binary through /bin/sh with `args` (already quoted) and stdin from `stdin_file`.
  Proc Exec(const std::string& args, const std::string& stdin_file = "/dev/null") {
    const fs::path out = tmp_.path() / "stdout", err = tmp_.path() / "stderr";
    const std::string cmd = Quoted(bin_) + " " + args + " < " + Quoted(stdin_file) + " > " +
                            Quoted(out.string()) + " 2> " + Quoted(err.string());
    int status = std::system(cmd.c_str());
    Proc p;
    p.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    p.out = Slurp(out);
    p.err = Slurp(err);
    return p;
  }
  std::string Path(const std::string& name) const { return (tmp_.path() / name).string(); }

  TempDir tmp_;
  std::string bin_;
};

TEST_F(BinaryTest, CreateImportSearchFromStdin) {
  const std::string data = Quoted(Path("db"));
  std::ofstream(Path("schema.json"))
      << R"({"name": "bin", "spaces": {"s": {"dim": 3, "metric": "l2", "encoder": "e@1"}},
             "fields": {"v": {"space": "s", "modality": "m"}}})";
  Matrix<float> m{4, 3, {0, 0, 0, 1, 0, 0, 0, 5, 0, 9, 9, 9}};
  ASSERT_OK(WriteNpy(Path("v.npy"), m));
  std::ofstream(Path("q.json"))
      << R"({"k": 2, "normalize": "none", "inputs": [{"vector": [0, 4, 0], "space": "s"}]})";

  Proc c = Exec("--data " + data + " --json create-collection --schema " + Quoted(Path("schema.json")));
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_EQ(nlohmann::json::parse(c.out), nlohmann::json::parse(R"({"created": "bin"})"));
  Proc i = Exec("--data " + data + " --json import bin --field v --vectors " +
                Quoted(Path("v.npy")) + " --id-prefix r");
  ASSERT_EQ(i.exit_code, 0) << i.err;
  EXPECT_EQ(nlohmann::json::parse(i.out),
            nlohmann::json::parse(R"({"written": 4, "created": 4, "batches": 1})"));
  Proc s = Exec("--data " + data + " --json search bin --query -", Path("q.json"));
  ASSERT_EQ(s.exit_code, 0) << s.err;
  EXPECT_EQ(s.err, "");
  nlohmann::json j = nlohmann::json::parse(s.out);
  ASSERT_EQ(j["results"].size(), 2u) << s.out;
  // [0,4,0]: r2 = [0,5,0] at squared distance 1, then r0 and r1 at 16 and 17.
  EXPECT_EQ(j["results"][0]["id"], "r2");
  EXPECT_EQ(j["results"][0]["score"], -1.0);
  EXPECT_EQ(j["results"][1]["id"], "r0");
  EXPECT_EQ(j["results"][1]["score"], -16.0);

  // Exit statuses of the process: 1 for a failed command, 2 for a usage error.
  Proc nf = Exec("--data " + data + " describe nope");
  EXPECT_EQ(nf.exit_code, 1);
  EXPECT_EQ(nf.out, "");
  EXPECT_EQ(nf.err.rfind("error: NOT_FOUND: ", 0), 0u) << nf.err;
  Proc usage = Exec("--data " + data + " describe");
  EXPECT_EQ(usage.exit_code, 2);
  EXPECT_EQ(usage.err.rfind("error: INVALID_ARGUMENT: ", 0), 0u) << usage.err;
  Proc version = Exec("--version");
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_EQ(version.out, "rosetta 0.1.0\n");
}

}  // namespace
}  // namespace rosetta::testing
