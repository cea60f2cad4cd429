#include "tools/cli/eval.h"

#include <algorithm>
#include <cmath>
#include <set>

namespace rosetta::cli {

double PairRecall(const std::vector<std::string>& ids, const std::string& relevant, size_t k) {
  const size_t n = std::min(k, ids.size());
  for (size_t i = 0; i < n; ++i) {
    if (ids[i] == relevant) return 1.0;
  }
  return 0.0;
}

std::optional<int64_t> RowOfId(const std::string& id, const std::string& prefix) {
  if (id.size() <= prefix.size() || id.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
  const std::string digits = id.substr(prefix.size());
  if (digits.size() > 18) return std::nullopt;  // beyond any row count; avoids overflow.
  if (digits.size() > 1 && digits[0] == '0') return std::nullopt;
  int64_t v = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

double RowRecall(const std::vector<std::string>& ids, const std::string& prefix,
                 std::span<const int64_t> truth, size_t k) {
  std::set<int64_t> relevant;
  for (size_t i = 0; i < std::min(k, truth.size()); ++i) {
    if (truth[i] >= 0) relevant.insert(truth[i]);
  }
  const size_t c = relevant.size();
  if (c == 0) return 0.0;
  size_t hits = 0;
  std::set<int64_t> counted;  // a row found twice (two ids mapping to it) counts once.
  const size_t n = std::min(k, ids.size());
  for (size_t i = 0; i < n; ++i) {
    std::optional<int64_t> row = RowOfId(ids[i], prefix);
    if (row && relevant.count(*row) && counted.insert(*row).second) ++hits;
  }
  return static_cast<double>(hits) / static_cast<double>(c);
}

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  double rank = std::ceil(p / 100.0 * static_cast<double>(values.size()));
  size_t idx = rank < 1 ? 0 : static_cast<size_t>(rank) - 1;
  return values[std::min(idx, values.size() - 1)];
}

}  // namespace rosetta::cli
