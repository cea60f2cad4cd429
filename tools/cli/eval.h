// The measurements of `rosetta eval`, as pure functions (tested on their own in
// tests/tools/eval_metrics_test.cc).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace rosetta::cli {

// --truth pairs: 1 if `relevant` is among the first k ids, else 0.
double PairRecall(const std::vector<std::string>& ids, const std::string& relevant, size_t k);

// The base row an id stands for: `prefix` + a decimal number (digits only, no sign, no leading
// zeros except "0" itself); nullopt otherwise (such a result counts as a miss).
std::optional<int64_t> RowOfId(const std::string& id, const std::string& prefix);

// --truth FILE: |first k ids (as rows) ∩ T| / |T| where T is the set of the first min(k,
// truth.size()) truth rows, i.e. |top-k ∩ true top-k| / k whenever the truth has at least k
// (distinct) columns. Negative truth entries (padding) are ignored. 0 when T is empty.
double RowRecall(const std::vector<std::string>& ids, const std::string& prefix,
                 std::span<const int64_t> truth, size_t k);

// Nearest-rank percentile (p in (0, 100]) of `values`; 0 for an empty input.
double Percentile(std::vector<double> values, double p);

}  // namespace rosetta::cli
