// The CLI's interface: commands, flags, help, exit statuses, the error contract, import from
// .npy / .fvecs, and batch splitting. Output formats are pinned by the golden files
// (golden_test.cc); these tests cover what a golden file cannot express well (binary inputs,
// large inputs, the filesystem).
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "schema/array_io.h"
#include "tests/testing/testing.h"
#include "tests/tools/cli_harness.h"

namespace rosetta::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using J = nlohmann::json;

const std::vector<std::string> kCommands = {
    "create-collection", "list-collections", "describe", "drop-collection", "upsert",
    "import",            "get",              "delete",   "search",          "build-index",
    "eval",              "stats"};

// A 4-d ip space with two fields and a 2-d l2 space with one.
constexpr char kSchema[] = R"({"name": "docs",
  "spaces": {"s": {"dim": 4, "metric": "ip", "encoder": "toy@1"},
             "g": {"dim": 2, "metric": "l2", "encoder": "geo@1"}},
  "fields": {"image": {"space": "s", "modality": "image", "weight": 0.75},
             "text": {"space": "s", "modality": "text", "weight": 0.25},
             "loc": {"space": "g", "modality": "geo"}},
  "attributes": {"lang": "string"}})";

J ParseOut(const CliRun& r) {
  try {
    return J::parse(r.out);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "stdout is not one JSON document: " << e.what() << "\n" << Describe(r);
    return J();
  }
}

// Checks the error contract: exit status, one stderr line with the code, nothing on stdout.
void ExpectError(const CliRun& r, int exit_code, const std::string& code,
                 const std::string& substr) {
  EXPECT_EQ(r.exit_code, exit_code) << Describe(r);
  EXPECT_EQ(r.out, "") << Describe(r);
  // An empty `code` accepts any code (for errors whose code belongs to another module).
  EXPECT_THAT(r.err, StartsWith(code.empty() ? "error: " : "error: " + code + ": "))
      << Describe(r);
  EXPECT_THAT(r.err, HasSubstr(substr)) << Describe(r);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << Describe(r);
  EXPECT_EQ(r.err.back(), '\n') << Describe(r);
}

void WriteFvecs(const std::string& path, const std::vector<std::vector<float>>& rows) {
  std::ofstream f(path, std::ios::binary);
  for (const auto& row : rows) {
    int32_t d = static_cast<int32_t>(row.size());
    f.write(reinterpret_cast<const char*>(&d), 4);
    f.write(reinterpret_cast<const char*>(row.data()), 4 * row.size());
  }
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override { data_ = (tmp_.path() / "data").string(); }
  CliRun Run(std::vector<std::string> args, const std::string& stdin_text = "") {
    return RunOn(data_, std::move(args), stdin_text);
  }
  void CreateDocs() {
    CliRun r = Run({"create-collection", "--schema", "-"}, kSchema);
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
  }
  std::string Path(const std::string& name) const { return (tmp_.path() / name).string(); }
  int64_t Records(const std::string& collection = "docs") {
    CliRun r = Run({"describe", collection});
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    return ParseOut(r).value("records", int64_t{-1});
  }

  TempDir tmp_;
  std::string data_;
};

// ---- help, version, usage errors --------------------------------------------------------------

TEST_F(CliTest, HelpForEveryCommand) {
  for (const std::string& cmd : kCommands) {
    SCOPED_TRACE(cmd);
    CliRun r = RunRosetta({"--data", data_, cmd, "--help"});
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    EXPECT_EQ(r.err, "");
    EXPECT_THAT(r.out, StartsWith("usage: rosetta [global flags] " + cmd));
    EXPECT_THAT(r.out, HasSubstr("\nflags:\n"));
    EXPECT_THAT(r.out, HasSubstr("\nexample:\n  rosetta "));
    EXPECT_THAT(r.out, HasSubstr("--help"));
    // --help wins over missing or bad arguments.
    CliRun bad = RunRosetta({"--data", data_, cmd, "--nonsense", "--help"});
    EXPECT_EQ(bad.exit_code, 0) << Describe(bad);
    EXPECT_EQ(bad.out, r.out);
  }
  // Nothing was opened or created for help.
  EXPECT_FALSE(fs::exists(data_));
}

TEST_F(CliTest, HelpDocumentsFlagsAndBatches) {
  CliRun up = RunRosetta({"upsert", "--help"});
  EXPECT_THAT(up.out, HasSubstr("--file FILE.jsonl|-"));
  EXPECT_THAT(up.out, HasSubstr("65536"));
  EXPECT_THAT(up.out, HasSubstr("atomic"));
  CliRun im = RunRosetta({"import", "--help"});
  for (const char* flag : {"--field F", "--vectors", "--id-prefix P", "--id-offset N",
                           "--provenance JSON"}) {
    EXPECT_THAT(im.out, HasSubstr(flag));
  }
  EXPECT_THAT(im.out, HasSubstr("65536"));
  CliRun ev = RunRosetta({"eval", "--help"});
  for (const char* flag : {"--queries", "--space S", "--modality M", "--fields F,...", "--truth",
                           "--id-prefix P", "--k K", "--query-file Q.json"}) {
    EXPECT_THAT(ev.out, HasSubstr(flag));
  }
}

TEST_F(CliTest, GlobalHelpListsEveryCommand) {
  CliRun r = RunRosetta({"--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, StartsWith("usage: rosetta"));
  for (const std::string& cmd : kCommands) EXPECT_THAT(r.out, HasSubstr("\n  " + cmd + " "));
  for (const char* flag : {"--data DIR", "--server HOST:PORT", "--token T", "--json",
                           "--sync always|none", "--version"}) {
    EXPECT_THAT(r.out, HasSubstr(flag));
  }
}

TEST_F(CliTest, Version) {
  CliRun r = RunRosetta({"--version"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "rosetta 0.1.0\n");
  CliRun j = RunRosetta({"--json", "--version"});
  EXPECT_EQ(ParseOut(j)["version"], "0.1.0");
}

TEST_F(CliTest, UsageErrorsExitTwo) {
  struct Case {
    std::vector<std::string> args;
    std::string substr;
  };
  const std::vector<Case> cases = {
      {{}, "no command"},
      {{"frobnicate"}, "unknown command \"frobnicate\""},
      {{"--frob", "list-collections"}, "unknown global flag \"--frob\""},
      {{"list-collections", "--frob"}, "unknown flag \"--frob\""},
      {{"list-collections", "extra"}, "expected no arguments, got 1"},
      {{"list-collections", "--json"}, "--json is a global flag: put it before the command"},
      {{"describe"}, "expected COLLECTION, got 0"},
      {{"get", "docs"}, "expected COLLECTION ID..., got 1"},
      {{"upsert", "docs"}, "missing required flag --file"},
      {{"upsert", "docs", "--file"}, "--file: missing value"},
      {{"upsert", "docs", "--file", "a", "--file", "b"}, "--file given twice"},
      {{"get", "docs", "x", "--with-vectors=yes"}, "--with-vectors takes no value"},
      {{"--data"}, "--data: missing value"},
      {{"--sync", "sometimes", "list-collections"}, "--sync: expected always or none"},
      {{"--server", "nohost", "list-collections"}, "--server: expected HOST:PORT"},
      {{"--server", "h:99999", "list-collections"}, "port in 1..65535"},
      {{"--data", "d", "--server", "h:1", "list-collections"}, "exclusive"},
      {{"--token", "t", "list-collections"}, "--token requires --server"},
      {{"import", "docs", "--field", "f", "--vectors", "v.npy", "--id-offset", "x"},
       "--id-offset: expected an integer"},
      {{"eval", "docs", "--queries", "q.npy", "--space", "s", "--truth", "pairs", "--k", "0"},
       "--k: expected an integer in 1..10000"},
      {{"eval", "docs", "--queries", "q.npy", "--space", "s", "--truth", "pairs", "--fields",
        "a,,b"},
       "--fields: empty item"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = c.args;
    SCOPED_TRACE(::testing::PrintToString(args));
    ExpectError(RunRosetta(args), 2, "INVALID_ARGUMENT", c.substr);
  }
  EXPECT_FALSE(fs::exists("d"));
}

TEST_F(CliTest, ServerThatDoesNotAnswerIsUnavailable) {
  // Port 1 (tcpmux) has no listener on a test machine: the connection is refused.
  CliRun r = RunRosetta({"--server", "127.0.0.1:1", "--token", "secret", "list-collections"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err.rfind("error: UNAVAILABLE: cannot connect to 127.0.0.1:1", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST_F(CliTest, FlagEqualsFormAndDoubleDash) {
  CliRun r = RunRosetta({"--data=" + data_, "--json", "create-collection", "--schema=-"}, kSchema);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  ASSERT_EQ(Run({"upsert", "docs", "--file", "-"},
                R"({"id": "-x", "vectors": {"loc": [1, 2]}})")
                .exit_code,
            0);
  CliRun get = Run({"get", "docs", "--", "-x", "--nope"});
  ASSERT_EQ(get.exit_code, 0) << Describe(get);
  J j = ParseOut(get);
  EXPECT_EQ(j["records"].size(), 1u);
  EXPECT_EQ(j["records"][0]["id"], "-x");
  EXPECT_EQ(j["not_found"], J::array({"--nope"}));
}

// ---- the data directory -----------------------------------------------------------------------

TEST_F(CliTest, DataDirectoryIsCreatedWithParents) {
  const std::string nested = (tmp_.path() / "a" / "b" / "db").string();
  CliRun r = RunOn(nested, {"list-collections"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(ParseOut(r), J::parse(R"({"collections": []})"));
  EXPECT_TRUE(fs::is_directory(nested));
}

TEST_F(CliTest, DefaultDataDirectory) {
  const fs::path old = fs::current_path();
  fs::current_path(tmp_.path());
  CliRun r = RunRosetta({"--json", "create-collection", "--schema", "-"}, kSchema);
  CliRun list = RunRosetta({"list-collections"});
  fs::current_path(old);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(fs::is_directory(tmp_.path() / "rosetta-data"));
  EXPECT_EQ(list.out, "docs\n");
}

TEST_F(CliTest, InputErrorsDoNotTouchTheDataDirectory) {
  ExpectError(Run({"upsert", "docs", "--file", Path("missing.jsonl")}), 1, "NOT_FOUND",
              "missing.jsonl");
  ExpectError(Run({"create-collection", "--schema", "-"}, "{not json"), 1, "INVALID_ARGUMENT",
              "schema");
  ExpectError(Run({"import", "docs", "--field", "image", "--vectors", Path("none.npy")}), 1, "",
              "none.npy");
  EXPECT_FALSE(fs::exists(data_));
}

TEST_F(CliTest, SyncNone) {
  CliRun r = RunRosetta({"--data", data_, "--sync", "none", "--json", "create-collection",
                         "--schema", "-"},
                        kSchema);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  CliRun d = RunRosetta({"--data", data_, "--sync", "none", "--json", "describe", "docs"});
  EXPECT_THAT(ParseOut(d)["storage"].get<std::string>(), HasSubstr("none"));
  CliRun d2 = RunRosetta({"--data", data_, "--json", "describe", "docs"});
  EXPECT_THAT(ParseOut(d2)["storage"].get<std::string>(), HasSubstr("always"));
}

// ---- import -----------------------------------------------------------------------------------

TEST_F(CliTest, ImportNpy) {
  CreateDocs();
  Matrix<float> m;
  m.rows = 3;
  m.cols = 4;
  m.data = {1, 0, 0, 0, 0.5f, 0.25f, 0, 0, -1, 2, 3, 4};
  ASSERT_OK(WriteNpy(Path("v.npy"), m));
  CliRun r = Run({"import", "docs", "--field", "image", "--vectors", Path("v.npy"), "--id-prefix",
                  "p", "--id-offset", "10", "--provenance",
                  R"({"source": "unit", "dataset_version": "v2"})"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(ParseOut(r), J::parse(R"({"written": 3, "created": 3, "batches": 1})"));
  CliRun get = Run({"get", "docs", "p10", "p12", "p13", "--with-vectors"});
  ASSERT_EQ(get.exit_code, 0) << Describe(get);
  J j = ParseOut(get);
  ASSERT_EQ(j["records"].size(), 2u) << get.out;
  EXPECT_EQ(j["records"][0]["id"], "p10");
  EXPECT_EQ(j["records"][0]["vectors"]["image"], J::parse("[1.0, 0.0, 0.0, 0.0]"));
  EXPECT_EQ(j["records"][1]["vectors"]["image"], J::parse("[-1.0, 2.0, 3.0, 4.0]"));
  EXPECT_EQ(j["records"][1]["provenance"]["source"], "unit");
  EXPECT_EQ(j["records"][1]["provenance"]["dataset_version"], "v2");
  EXPECT_EQ(j["not_found"], J::array({"p13"}));

  // Importing another field keeps the first one; existing records are not "created".
  Matrix<float> t = m;
  ASSERT_OK(WriteNpy(Path("t.npy"), t));
  CliRun r2 = Run({"import", "docs", "--field", "text", "--vectors", Path("t.npy"), "--id-prefix",
                   "p", "--id-offset", "11"});
  ASSERT_EQ(r2.exit_code, 0) << Describe(r2);
  EXPECT_EQ(ParseOut(r2), J::parse(R"({"written": 3, "created": 1, "batches": 1})"));
  J both = ParseOut(Run({"get", "docs", "p11", "--with-vectors"}));
  EXPECT_EQ(both["records"][0]["vectors"]["image"], J::parse("[0.5, 0.25, 0.0, 0.0]"));
  EXPECT_EQ(both["records"][0]["vectors"]["text"], J::parse("[1.0, 0.0, 0.0, 0.0]"));
  EXPECT_EQ(Records(), 4);
}

TEST_F(CliTest, ImportFvecsAndTextOutput) {
  CreateDocs();
  WriteFvecs(Path("v.fvecs"), {{1, 2}, {3, 4}, {5, 6}});
  CliRun r = RunOn(data_, {"import", "docs", "--field", "loc", "--vectors", Path("v.fvecs")}, "",
                   /*json=*/false);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out, "imported 3 vectors into docs.loc (3 new records, 1 batch)\n");
  J j = ParseOut(Run({"get", "docs", "0", "2", "--with-vectors"}));
  ASSERT_EQ(j["records"].size(), 2u);
  EXPECT_EQ(j["records"][0]["vectors"]["loc"], J::parse("[1.0, 2.0]"));
  EXPECT_EQ(j["records"][1]["vectors"]["loc"], J::parse("[5.0, 6.0]"));
}

TEST_F(CliTest, ImportRejectsNaNRowAndWritesNothing) {
  CreateDocs();
  Matrix<float> m;
  m.rows = 5;
  m.cols = 4;
  m.data.assign(20, 1.0f);
  m.data[3 * 4 + 2] = std::numeric_limits<float>::quiet_NaN();
  ASSERT_OK(WriteNpy(Path("nan.npy"), m));
  CliRun r = Run({"import", "docs", "--field", "image", "--vectors", Path("nan.npy"), "--id-prefix",
                  "n"});
  ExpectError(r, 1, "INVALID_ARGUMENT", "row 3");
  EXPECT_THAT(r.err, HasSubstr("nan.npy"));
  EXPECT_EQ(Records(), 0);
  J j = ParseOut(Run({"get", "docs", "n0", "n1", "n2"}));
  EXPECT_EQ(j["records"].size(), 0u);
}

TEST_F(CliTest, ImportRejectsWrongDimensionUnknownFieldAndCollection) {
  CreateDocs();
  WriteFvecs(Path("v3.fvecs"), {{1, 2, 3}, {4, 5, 6}});
  ExpectError(Run({"import", "docs", "--field", "image", "--vectors", Path("v3.fvecs")}), 1,
              "INVALID_ARGUMENT", "rows have 3 components; field \"image\" (space \"s\") expects 4");
  ExpectError(Run({"import", "docs", "--field", "audio", "--vectors", Path("v3.fvecs")}), 1,
              "NOT_FOUND", "no field \"audio\"");
  ExpectError(Run({"import", "nope", "--field", "image", "--vectors", Path("v3.fvecs")}), 1,
              "NOT_FOUND", "nope");
  ExpectError(Run({"import", "docs", "--field", "loc", "--vectors", Path("v3.fvecs"),
                   "--provenance", "{\"source\": 3}"}),
              1, "INVALID_ARGUMENT", "--provenance");
  ExpectError(Run({"import", "docs", "--field", "loc", "--vectors", Path("v3.fvecs"),
                   "--provenance", "{\"collected_at\": \"yesterday\"}"}),
              1, "INVALID_ARGUMENT", "collected_at");
  EXPECT_EQ(Records(), 0);
}

TEST_F(CliTest, ImportSplitsIntoAtomicBatches) {
  CreateDocs();
  const size_t rows = 65536 + 1000;
  Matrix<float> m;
  m.rows = rows;
  m.cols = 2;
  m.data.resize(rows * 2);
  for (size_t i = 0; i < rows; ++i) {
    m.data[2 * i] = static_cast<float>(i);
    m.data[2 * i + 1] = 1.0f;
  }
  ASSERT_OK(WriteNpy(Path("big.npy"), m));
  CliRun r = Run({"import", "docs", "--field", "loc", "--vectors", Path("big.npy"), "--id-prefix",
                  "b"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  J j = ParseOut(r);
  EXPECT_EQ(j["written"], rows);
  EXPECT_EQ(j["created"], rows);
  EXPECT_EQ(j["batches"], 2);
  EXPECT_EQ(Records(), static_cast<int64_t>(rows));
  J last = ParseOut(Run({"get", "docs", "b66535", "b65536", "--with-vectors"}));
  ASSERT_EQ(last["records"].size(), 2u);
  EXPECT_EQ(last["records"][0]["vectors"]["loc"], J::parse("[66535.0, 1.0]"));
  EXPECT_EQ(last["records"][1]["vectors"]["loc"], J::parse("[65536.0, 1.0]"));
}

TEST_F(CliTest, ImportBatchesAreAlsoBoundedInBytes) {
  // 4096-d vectors: 64 MiB / 16 KiB = 4096 rows per batch, so 4100 rows take two batches (one
  // 65536-row batch would be 1 GiB, more than a protocol frame may carry).
  ASSERT_EQ(Run({"create-collection", "--schema", "-"},
                R"({"name": "wide", "spaces": {"s": {"dim": 4096, "metric": "ip"}},
                    "fields": {"v": {"space": "s", "modality": "text"}}})")
                .exit_code,
            0);
  const size_t rows = 4100, dim = 4096;
  Matrix<float> m{rows, dim, std::vector<float>(rows * dim, 0.5f)};
  for (size_t i = 0; i < rows; ++i) m.data[i * dim] = static_cast<float>(i);
  ASSERT_OK(WriteNpy(Path("wide.npy"), m));
  CliRun r = Run({"import", "wide", "--field", "v", "--vectors", Path("wide.npy")});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  J j = ParseOut(r);
  EXPECT_EQ(j["written"], rows);
  EXPECT_EQ(j["batches"], 2);
  J last = ParseOut(Run({"get", "wide", "4099", "--with-vectors"}));
  ASSERT_EQ(last["records"].size(), 1u);
  EXPECT_EQ(last["records"][0]["vectors"]["v"][0], 4099.0);
}

// ---- upsert -----------------------------------------------------------------------------------

TEST_F(CliTest, UpsertLargeFileValidatesEverythingFirst) {
  CreateDocs();
  // 70000 valid records and one bad one at the very end: nothing may be written, even though
  // the first 65536 form a complete batch.
  std::string text;
  for (int i = 0; i < 70000; ++i) {
    text += "{\"id\": \"r" + std::to_string(i) + "\", \"vectors\": {\"loc\": [" +
            std::to_string(i) + ", 0]}}\n";
  }
  std::string bad = text + "{\"id\": \"last\", \"vectors\": {\"loc\": [1, 2, 3]}}\n";
  ExpectError(Run({"upsert", "docs", "--file", "-"}, bad), 1, "INVALID_ARGUMENT", "line 70001: ");
  EXPECT_EQ(Records(), 0);
  // Without the bad line, both batches go in.
  CliRun ok = Run({"upsert", "docs", "--file", "-"}, text);
  ASSERT_EQ(ok.exit_code, 0) << Describe(ok);
  EXPECT_EQ(ParseOut(ok), J::parse(R"({"written": 70000, "created": 70000})"));
  EXPECT_EQ(Records(), 70000);
}

TEST_F(CliTest, UpsertFromFileWithBlankLinesAndCrlf) {
  CreateDocs();
  std::ofstream(Path("r.jsonl")) << "\n{\"id\": \"a\", \"vectors\": {\"loc\": [1, 2]}}\r\n\n"
                                    "  \n{\"id\": \"b\", \"vectors\": {\"loc\": [3, 4]}}";
  CliRun r = Run({"upsert", "docs", "--file", Path("r.jsonl")});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(ParseOut(r), J::parse(R"({"written": 2, "created": 2})"));
  // An error names the physical line, blank lines included.
  std::ofstream(Path("bad.jsonl")) << "\n{\"id\": \"c\", \"vectors\": {\"loc\": [1, 2]}}\n\n"
                                      "{\"id\": \"d\", \"vectors\": {\"loc\": [1]}}\n";
  ExpectError(Run({"upsert", "docs", "--file", Path("bad.jsonl")}), 1, "INVALID_ARGUMENT",
              "line 4: ");
  ExpectError(Run({"upsert", "docs", "--file", "-"}, "\n\n"), 1, "INVALID_ARGUMENT", "no records");
  EXPECT_EQ(Records(), 2);
}

// ---- human-readable output --------------------------------------------------------------------

TEST_F(CliTest, TextOutput) {
  CreateDocs();
  ASSERT_EQ(Run({"upsert", "docs", "--file", "-"},
                "{\"id\": \"a\", \"vectors\": {\"image\": [1, 0, 0, 0], \"text\": [1, 0, 0, 0]}}\n"
                "{\"id\": \"c\", \"vectors\": {\"text\": [0.5, 0, 0, 0]}}\n")
                .exit_code,
            0);
  CliRun d = RunOn(data_, {"describe", "docs"}, "", false);
  ASSERT_EQ(d.exit_code, 0) << Describe(d);
  EXPECT_THAT(d.out, StartsWith("collection: docs\nrecords: 2\n"));
  EXPECT_THAT(d.out, HasSubstr("space s: dim 4, metric ip, encoder toy@1\n"));
  EXPECT_THAT(d.out, HasSubstr("field image: space s, modality image, weight 0.75, vectors 1\n"));
  EXPECT_THAT(d.out, HasSubstr("field text: space s, modality text, weight 0.25, vectors 2\n"));
  EXPECT_THAT(d.out, HasSubstr("attribute lang: string\n"));

  CliRun s = RunOn(data_, {"search", "docs", "--query", "-"},
                   R"({"k": 5, "normalize": "none", "inputs": [{"vector": [1, 0, 0, 0],
                      "space": "s", "modality": "text"}]})",
                   false);
  ASSERT_EQ(s.exit_code, 0) << Describe(s);
  // a: 0.75 * 1 + 0.25 * 1 = 1; c (no image, renormalised): 1.0 * 0.5 = 0.5.
  std::istringstream lines(s.out);
  std::vector<std::string> l;
  for (std::string line; std::getline(lines, line);) l.push_back(line);
  ASSERT_EQ(l.size(), 6u) << s.out;
  EXPECT_THAT(l[0], ::testing::MatchesRegex("2 results \\(took [0-9]+ us\\)"));
  EXPECT_EQ(l[1], "rank  id  score  field  raw      normalized  weight  contribution  field_rank");
  EXPECT_EQ(l[2], "1     a   1      image  1        1           0.75    0.75          1");
  EXPECT_EQ(l[3], "                 text   1        1           0.25    0.25          1");
  EXPECT_EQ(l[4], "2     c   0.5    image  missing");
  EXPECT_EQ(l[5], "                 text   0.5      0.5         1       0.5           2");

  CliRun list = RunOn(data_, {"list-collections"}, "", false);
  EXPECT_EQ(list.out, "docs\n");
  CliRun del = RunOn(data_, {"delete", "docs", "a", "zz"}, "", false);
  EXPECT_EQ(del.out, "deleted 1 records (1 not found)\n");
  CliRun get = RunOn(data_, {"get", "docs", "c", "a"}, "", false);
  EXPECT_THAT(get.out, StartsWith("{\"id\":\"c\""));
  EXPECT_THAT(get.out, ::testing::EndsWith("\nnot found: a\n"));
}

}  // namespace
}  // namespace rosetta::testing
