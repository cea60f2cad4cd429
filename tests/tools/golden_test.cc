// Golden tests of the CLI: every tests/golden/*.test file is a script of rosetta invocations with
// their expected exit status, stdout and stderr. The format is described in tests/golden/README.md.
//
// Regenerate the expectations with ROSETTA_UPDATE_GOLDEN=1 (then review the diff by hand: a
// golden file is only as right as the person who read it).
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "engine/database.h"
#include "gtest/gtest.h"
#include "net/auth.h"
#include "net/embedded_client.h"
#include "net/server.h"
#include "net/service.h"
#include "nlohmann/json.hpp"
#include "tests/testing/testing.h"
#include "tests/tools/cli_harness.h"

namespace rosetta::testing {
namespace {

namespace fs = std::filesystem;
using OJson = nlohmann::ordered_json;

const std::set<std::string>& Directives() {
  static const std::set<std::string> d = {"case",          "command",       "stdin",
                                          "write-file",    "write-fvecs",   "expect-exit",
                                          "expect-stdout", "expect-stderr"};
  return d;
}

// "name: value" / "name:" for a known directive.
bool ParseDirective(const std::string& line, std::string* name, std::string* value) {
  size_t colon = line.find(':');
  if (colon == std::string::npos) return false;
  std::string n = line.substr(0, colon);
  if (!Directives().count(n)) return false;
  std::string v = line.substr(colon + 1);
  if (!v.empty() && v[0] == ' ') v = v.substr(1);
  *name = n;
  *value = v;
  return true;
}

struct Block {
  int first_line = 0;
  std::vector<std::string> kept;  // every line except the expectations, reproduced on update.
  std::string name;
  std::string command;
  std::optional<std::string> stdin_text;
  std::vector<std::pair<std::string, std::string>> files;  // write-file: name -> content.
  std::vector<std::string> fvecs;  // write-fvecs: "NAME ROWS DIM SEED".
  std::optional<int> expect_exit;
  std::optional<std::string> expect_stdout;  // lines joined with '\n', no trailing newline.
  std::optional<std::string> expect_stderr;
};

std::string Join(const std::vector<std::string>& lines) {
  std::string s;
  for (size_t i = 0; i < lines.size(); ++i) s += (i ? "\n" : "") + lines[i];
  return s;
}

bool IsBlank(const std::string& line) {
  return line.find_first_not_of(" \t\r") == std::string::npos;
}

// Splits a file into blocks (separated by blank lines) and parses each block's directives.
std::vector<Block> ParseGoldenFile(const std::string& path) {
  std::ifstream f(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(f, line);) lines.push_back(line);
  std::vector<Block> blocks;
  size_t i = 0;
  while (i < lines.size()) {
    if (IsBlank(lines[i])) {
      ++i;
      continue;
    }
    Block b;
    b.first_line = static_cast<int>(i + 1);
    std::string section;               // the open multi-line section, if any.
    std::vector<std::string> content;  // its lines.
    std::string section_arg;
    auto close = [&]() {
      if (section == "stdin") b.stdin_text = Join(content) + (content.empty() ? "" : "\n");
      if (section == "write-file") b.files.emplace_back(section_arg, Join(content) + "\n");
      if (section == "expect-stdout") b.expect_stdout = Join(content);
      section.clear();
      content.clear();
    };
    for (; i < lines.size() && !IsBlank(lines[i]); ++i) {
      const std::string& line = lines[i];
      std::string name, value;
      const bool directive = ParseDirective(line, &name, &value);
      if (!directive && !section.empty()) {
        content.push_back(line);
        if (section != "expect-stdout") b.kept.push_back(line);
        continue;
      }
      if (!directive && line.rfind("#", 0) == 0) {
        b.kept.push_back(line);
        continue;
      }
      if (!directive) {
        ADD_FAILURE() << path << ":" << i + 1 << ": not a directive: " << line;
        continue;
      }
      close();
      if (name == "case") {
        b.name = value;
      } else if (name == "command") {
        b.command = value;
      } else if (name == "stdin" || name == "write-file" || name == "expect-stdout") {
        section = name;
        section_arg = value;
      } else if (name == "write-fvecs") {
        b.fvecs.push_back(value);
      } else if (name == "expect-exit") {
        b.expect_exit = std::atoi(value.c_str());
      } else if (name == "expect-stderr") {
        b.expect_stderr = value;
      }
      if (name.rfind("expect-", 0) != 0) b.kept.push_back(line);
    }
    close();
    blocks.push_back(std::move(b));
  }
  return blocks;
}

// Shell-like splitting: whitespace separates; '...' is literal; "..." allows \" and \\.
std::vector<std::string> SplitCommand(const std::string& s) {
  std::vector<std::string> args;
  std::string cur;
  bool in_arg = false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == ' ' || c == '\t') {
      if (in_arg) args.push_back(cur), cur.clear(), in_arg = false;
    } else if (c == '\'') {
      in_arg = true;
      size_t end = s.find('\'', i + 1);
      EXPECT_NE(end, std::string::npos) << "unterminated ' in: " << s;
      if (end == std::string::npos) end = s.size();
      cur += s.substr(i + 1, end - i - 1);
      i = end;
    } else if (c == '"') {
      in_arg = true;
      for (++i; i < s.size() && s[i] != '"'; ++i) {
        if (s[i] == '\\' && i + 1 < s.size()) ++i;
        cur += s[i];
      }
    } else {
      in_arg = true;
      cur += c;
    }
  }
  if (in_arg) args.push_back(cur);
  return args;
}

// write-fvecs: ROWS x DIM float32 vectors in .fvecs format, clustered (16 centres in [-1, 1]^DIM,
// each row a centre plus noise of +-0.05 per component), from a fixed integer generator so that
// every machine writes the same bytes for the same SEED. Big enough data sets for an index
// (1000+ vectors) cannot be written out in a golden file.
bool WriteFvecs(const std::string& path, const std::string& spec, std::string* error) {
  std::istringstream in(spec);
  std::string name;
  int64_t rows = 0, dim = 0;
  uint64_t seed = 0;
  if (!(in >> name >> rows >> dim >> seed) || rows < 1 || dim < 1 || rows * dim > (1 << 24)) {
    *error = "write-fvecs: expected NAME ROWS DIM SEED, got \"" + spec + "\"";
    return false;
  }
  uint64_t state = seed * 0x9E3779B97F4A7C15ULL + 1;
  auto uniform = [&state]() {  // [-1, 1), from the top 24 bits of a 64-bit LCG.
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<float>(static_cast<double>(state >> 40) / 8388608.0 - 1.0);
  };
  constexpr int kCentres = 16;
  std::vector<float> centres(static_cast<size_t>(kCentres * dim));
  for (float& c : centres) c = uniform();
  std::ofstream f(path, std::ios::binary);
  const int32_t d = static_cast<int32_t>(dim);
  for (int64_t r = 0; r < rows; ++r) {
    const float* centre = &centres[static_cast<size_t>((r % kCentres) * dim)];
    f.write(reinterpret_cast<const char*>(&d), 4);
    for (int64_t j = 0; j < dim; ++j) {
      const float v = centre[j] + 0.05f * uniform();
      f.write(reinterpret_cast<const char*>(&v), 4);
    }
  }
  return static_cast<bool>(f);
}

void ReplaceAll(std::string& s, const std::string& from, const std::string& to) {
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) {
    s.replace(p, from.size(), to);
  }
}

// Values that differ from run to run (timings) or machine to machine (the SIMD backend, the
// search device and what it mirrors).
const std::set<std::string>& MaskedKeys() {
  static const std::set<std::string> k = {"took_us",        "qps",    "p50",
                                          "p99",            "kernel_backend", "device",
                                          "device_rows",    "device_bytes"};
  return k;
}

void MaskJson(OJson& j) {
  if (j.is_object()) {
    for (auto& [key, value] : j.items()) {
      if (MaskedKeys().count(key)) {
        value = "<masked>";
      } else {
        MaskJson(value);
      }
    }
  } else if (j.is_array()) {
    for (auto& v : j) MaskJson(v);
  }
}

std::string MaskText(std::string s) {
  static const std::vector<std::pair<std::regex, std::string>> rules = {
      {std::regex("took [0-9]+ us"), "took <masked> us"},
      {std::regex("kernel backend: [^\n]*"), "kernel backend: <masked>"},
      {std::regex("\ndevice: [^\n]*"), "\ndevice: <masked>"},
      {std::regex("qps: [^\n]*"), "qps: <masked>"},
      {std::regex("latency (p50|p99): [^\n]*"), "latency $1: <masked>"},
  };
  for (const auto& [re, repl] : rules) s = std::regex_replace(s, re, repl);
  return s;
}

std::optional<OJson> ParseJsonDoc(const std::string& s) {
  try {
    return OJson::parse(s);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// Structural equality; floats equal within a relative 1e-5 (absolute 1e-6), so that the last bit
// of a SIMD reduction does not matter while any wrong score does.
bool JsonNear(const OJson& a, const OJson& b, const std::string& path, std::string* diff) {
  if (a.is_number() && b.is_number()) {
    if (a.is_number_float() || b.is_number_float()) {
      double x = a.get<double>(), y = b.get<double>();
      if (std::fabs(x - y) <= 1e-6 + 1e-5 * std::max(std::fabs(x), std::fabs(y))) return true;
    } else if (a == b) {
      return true;
    }
    *diff = path + ": expected " + a.dump() + ", got " + b.dump();
    return false;
  }
  if (a.type() != b.type()) {
    *diff = path + ": expected " + a.dump() + ", got " + b.dump();
    return false;
  }
  if (a.is_object()) {
    auto ia = a.items().begin();
    auto ib = b.items().begin();
    for (; ia != a.items().end() && ib != b.items().end(); ++ia, ++ib) {
      if (ia.key() != ib.key()) {
        *diff = path + ": expected key \"" + ia.key() + "\", got \"" + ib.key() + "\"";
        return false;
      }
      if (!JsonNear(ia.value(), ib.value(), path + "." + ia.key(), diff)) return false;
    }
    if (a.size() != b.size()) {
      *diff = path + ": expected " + std::to_string(a.size()) + " keys, got " +
              std::to_string(b.size());
      return false;
    }
    return true;
  }
  if (a.is_array()) {
    if (a.size() != b.size()) {
      *diff = path + ": expected " + std::to_string(a.size()) + " elements, got " +
              std::to_string(b.size());
      return false;
    }
    for (size_t i = 0; i < a.size(); ++i) {
      if (!JsonNear(a[i], b[i], path + "[" + std::to_string(i) + "]", diff)) return false;
    }
    return true;
  }
  if (a != b) {
    *diff = path + ": expected " + a.dump() + ", got " + b.dump();
    return false;
  }
  return true;
}

// JSON Lines (build-index --wait --json prints one object per poll): every line one JSON
// document. Returns the lines masked and compact, with consecutive identical lines collapsed
// into one, since how many polls see the same state depends on timing; std::nullopt when the
// text is not JSON Lines (or is a single line, a plain JSON document).
std::optional<std::string> NormalizedJsonLines(const std::string& out) {
  std::istringstream in(out);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    std::optional<OJson> j = ParseJsonDoc(line);
    if (!j || !j->is_object()) return std::nullopt;
    MaskJson(*j);
    std::string compact = j->dump(-1, ' ', false, OJson::error_handler_t::replace);
    if (lines.empty() || lines.back() != compact) lines.push_back(std::move(compact));
  }
  if (lines.size() < 2 && std::count(out.begin(), out.end(), '\n') < 2) return std::nullopt;
  std::string s;
  for (const std::string& l : lines) s += (s.empty() ? "" : "\n") + l;
  return s;
}

// The stdout of a run as it is written into a golden file: masked, JSON re-indented.
std::string NormalizedStdout(const std::string& out) {
  if (out.empty()) return "";
  if (std::optional<OJson> j = ParseJsonDoc(out)) {
    MaskJson(*j);
    return j->dump(2, ' ', false, OJson::error_handler_t::replace);
  }
  if (std::optional<std::string> lines = NormalizedJsonLines(out)) return *lines;
  std::string s = MaskText(out);
  if (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

std::vector<std::string> GoldenFiles() {
  std::vector<std::string> names;
  const fs::path dir = fs::path(ROSETTA_SOURCE_DIR) / "tests" / "golden";
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.path().extension() == ".test") names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

// Each golden file runs twice: against the embedded engine (`--data`), and through a rosettad
// server on loopback (`--server`), with the same expectations: the two modes must print the same
// output. Cases that name their own --data, --server or --sync are about embedded mode itself
// and run only there.
enum class Mode { kEmbedded, kServer };

// A server on 127.0.0.1 (a free port) serving an embedded client on `data_dir`, as rosettad does.
class LoopbackServer {
 public:
  explicit LoopbackServer(const std::string& data_dir) {
    absl::StatusOr<std::unique_ptr<Client>> backend =
        OpenEmbeddedClient(data_dir, engine::DatabaseOptions{});
    if (!backend.ok()) {
      status_ = backend.status();
      return;
    }
    backend_ = std::move(*backend);
    absl::StatusOr<ServerInfo> info = backend_->Info();
    if (!info.ok()) {
      status_ = info.status();
      return;
    }
    factory_ = std::make_unique<net::ServiceFactory>(backend_.get(), net::AuthConfig{}, *info);
    net::ServerOptions options;
    options.port = 0;
    options.worker_threads = 2;
    options.log = [](std::string_view) {};
    absl::StatusOr<std::unique_ptr<net::Server>> server = net::Server::Start(options, factory_.get());
    if (!server.ok()) {
      status_ = server.status();
      return;
    }
    server_ = std::move(*server);
  }
  ~LoopbackServer() {
    if (server_) server_->Stop();
  }
  const absl::Status& status() const { return status_; }
  std::string address() const { return server_->endpoint().ToString(); }

 private:
  absl::Status status_;
  std::unique_ptr<Client> backend_;
  std::unique_ptr<net::ServiceFactory> factory_;
  std::unique_ptr<net::Server> server_;
};

class GoldenTest : public ::testing::TestWithParam<std::tuple<std::string, Mode>> {};

TEST_P(GoldenTest, Matches) {
  const auto& [file, mode] = GetParam();
  const std::string path = (fs::path(ROSETTA_SOURCE_DIR) / "tests" / "golden" / file).string();
  const char* update_env = std::getenv("ROSETTA_UPDATE_GOLDEN");
  const bool update =
      update_env != nullptr && std::string(update_env) == "1" && mode == Mode::kEmbedded;
  std::vector<Block> blocks = ParseGoldenFile(path);
  ASSERT_FALSE(blocks.empty()) << path << ": no cases";
  TempDir tmp;
  const std::string data_dir = (tmp.path() / "data").string();
  std::unique_ptr<LoopbackServer> server;
  if (mode == Mode::kServer) {
    server = std::make_unique<LoopbackServer>(data_dir);
    ASSERT_TRUE(server->status().ok()) << server->status();
  }
  std::ostringstream rewritten;
  int cases = 0;
  for (size_t bi = 0; bi < blocks.size(); ++bi) {
    Block& b = blocks[bi];
    if (bi) rewritten << "\n";
    for (const std::string& line : b.kept) rewritten << line << "\n";
    if (b.command.empty()) {
      EXPECT_FALSE(b.expect_exit || b.expect_stdout || b.expect_stderr)
          << path << ":" << b.first_line << ": expectations without a command";
      continue;
    }
    ++cases;
    const std::string where = path + ":" + std::to_string(b.first_line) +
                              (b.name.empty() ? "" : " (" + b.name + ")");
    SCOPED_TRACE(where);
    for (const auto& [name, content] : b.files) {
      std::ofstream(tmp.path() / name, std::ios::binary) << content;
    }
    for (const std::string& spec : b.fvecs) {
      std::string error;
      const std::string name = spec.substr(0, spec.find(' '));
      ASSERT_TRUE(WriteFvecs((tmp.path() / name).string(), spec, &error)) << error;
    }
    std::vector<std::string> args = SplitCommand(b.command);
    bool has_target = false;
    bool embedded_only = false;
    for (std::string& a : args) {
      ReplaceAll(a, "$TMP", tmp.str());
      ReplaceAll(a, "$SRC", ROSETTA_SOURCE_DIR);
      has_target |= a == "--data" || a == "--server" || a.rfind("--data=", 0) == 0;
      embedded_only |= a == "--sync" || a.rfind("--sync=", 0) == 0;
    }
    embedded_only |= has_target;
    if (mode == Mode::kServer) {
      if (embedded_only) {  // about embedded mode itself; checked in that mode.
        --cases;
        continue;
      }
      args.insert(args.begin(), {"--server", server->address()});
    } else if (!has_target) {
      args.insert(args.begin(), {"--data", data_dir});
    }
    CliRun run = RunRosetta(args, b.stdin_text.value_or(""));

    // Invariants of every run, whatever the golden says.
    if (run.exit_code == 0) {
      EXPECT_EQ(run.err, "") << Describe(run);
      bool json = false;
      bool wait = false;  // build-index --wait --json prints JSON Lines, one object per poll.
      for (const std::string& a : args) {
        if (a == "--json") json = true;
        if (a == "--wait") wait = true;
        if (a == "--help" || a == "--version") json = false;
      }
      if (json && wait) {
        std::istringstream lines(run.out);
        int n = 0;
        for (std::string line; std::getline(lines, line); ++n) {
          EXPECT_TRUE(ParseJsonDoc(line).has_value()) << "not JSON Lines\n" << Describe(run);
        }
        EXPECT_GE(n, 1) << Describe(run);
      } else if (json) {
        EXPECT_TRUE(ParseJsonDoc(run.out).has_value()) << "not one JSON document\n"
                                                       << Describe(run);
      }
    } else {
      EXPECT_EQ(run.out, "") << "output on failure\n" << Describe(run);
      EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << Describe(run);
      EXPECT_EQ(run.err.rfind("error: ", 0), 0u) << Describe(run);
    }

    // The temporary directory differs per run: it reads $TMP in golden files.
    ReplaceAll(run.out, tmp.str(), "$TMP");
    ReplaceAll(run.err, tmp.str(), "$TMP");
    const std::string actual_out = NormalizedStdout(run.out);
    std::string actual_err = run.err;
    if (!actual_err.empty() && actual_err.back() == '\n') actual_err.pop_back();
    if (update) {
      rewritten << "expect-exit: " << run.exit_code << "\n";
      if (!actual_out.empty()) rewritten << "expect-stdout:\n" << actual_out << "\n";
      if (!actual_err.empty()) rewritten << "expect-stderr: " << actual_err << "\n";
      EXPECT_EQ(actual_out.find("\n\n"), std::string::npos)
          << "stdout with a blank line cannot be stored in a golden file";
      continue;
    }
    ASSERT_TRUE(b.expect_exit.has_value()) << "no expect-exit (run with ROSETTA_UPDATE_GOLDEN=1)";
    EXPECT_EQ(run.exit_code, *b.expect_exit) << Describe(run);
    EXPECT_EQ(actual_err, b.expect_stderr.value_or("")) << Describe(run);
    const std::string expected_out = b.expect_stdout.value_or("");
    std::optional<OJson> expected_json =
        expected_out.empty() ? std::nullopt : ParseJsonDoc(expected_out);
    if (expected_json) {
      std::optional<OJson> actual_json = ParseJsonDoc(actual_out);
      ASSERT_TRUE(actual_json.has_value()) << "expected JSON\n" << Describe(run);
      std::string diff;
      EXPECT_TRUE(JsonNear(*expected_json, *actual_json, "$", &diff))
          << diff << "\n"
          << Describe(run);
    } else {
      EXPECT_EQ(actual_out, expected_out) << Describe(run);
    }
  }
  EXPECT_GT(cases, 0) << path << ": no commands";
  if (update) {
    std::ofstream(path) << rewritten.str();
    std::cout << "updated " << path << "\n";
  }
}

INSTANTIATE_TEST_SUITE_P(
    Golden, GoldenTest,
    ::testing::Combine(::testing::ValuesIn(GoldenFiles()),
                       ::testing::Values(Mode::kEmbedded, Mode::kServer)),
    [](const ::testing::TestParamInfo<std::tuple<std::string, Mode>>& info) {
      const std::string& file = std::get<0>(info.param);
      std::string name = file.substr(0, file.rfind('.'));
      for (char& c : name) {
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
      }
      return name + (std::get<1>(info.param) == Mode::kServer ? "_server" : "_embedded");
    });

GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(GoldenTest);

// The golden directory is part of the test suite: an empty one means the glob broke.
TEST(GoldenFilesTest, Present) { EXPECT_GE(GoldenFiles().size(), 3u); }

}  // namespace
}  // namespace rosetta::testing
