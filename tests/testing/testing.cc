#include "tests/testing/testing.h"

#include <cstdlib>
#include <unistd.h>

#include <sstream>

namespace rosetta::testing {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/rosetta-test-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp failed for " << tmpl;
  }
  path_ = buf.data();
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string SharedDataDir(const std::string& name) {
  std::filesystem::path p = std::filesystem::path(ROSETTA_SHARED_DATA_DIR) / name;
  std::error_code ec;
  if (!std::filesystem::is_directory(p, ec)) return "";
  return std::filesystem::canonical(p, ec).string();
}

uint64_t TestSeed(uint64_t fallback) {
  const char* s = std::getenv("ROSETTA_TEST_SEED");
  if (s && *s) return std::strtoull(s, nullptr, 10);
  return fallback;
}

std::string SeedTrace(uint64_t seed) {
  std::ostringstream os;
  os << "seed=" << seed << " (replay: ROSETTA_TEST_SEED=" << seed << " <test binary>)";
  return os.str();
}

std::vector<float> RandomVectors(size_t n, size_t d, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g(0.f, 1.f);
  std::vector<float> v(n * d);
  for (auto& x : v) x = g(rng);
  return v;
}

std::vector<float> ClusteredVectors(size_t n, size_t d, size_t clusters, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g(0.f, 1.f);
  std::vector<float> centres(clusters * d);
  for (auto& x : centres) x = g(rng);
  std::uniform_int_distribution<size_t> pick(0, clusters - 1);
  std::vector<float> v(n * d);
  for (size_t i = 0; i < n; ++i) {
    const float* c = centres.data() + pick(rng) * d;
    for (size_t j = 0; j < d; ++j) v[i * d + j] = c[j] + 0.3f * g(rng);
  }
  return v;
}

}  // namespace rosetta::testing
