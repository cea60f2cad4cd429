#include "engine/calibration.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <set>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "kernels/parallel.h"
#include "kernels/simd.h"

namespace rosetta::engine {
namespace {

struct SampleEntry {
  uint64_t hash;
  const std::string* id;
  size_t field;
  size_t row;
};

bool SampleLess(const SampleEntry& a, const SampleEntry& b) {
  if (a.hash != b.hash) return a.hash < b.hash;
  if (*a.id != *b.id) return *a.id < *b.id;
  return a.field < b.field;
}

// The (up to) `limit` live vectors of `field` with the smallest (IdHash(id), id), sorted.
std::vector<SampleEntry> SmallestHashes(const Snapshot& snap, size_t field, size_t limit) {
  std::vector<SampleEntry> out;
  auto shrink = [&]() {
    if (out.size() <= limit) return;
    std::nth_element(out.begin(), out.begin() + limit, out.end(), SampleLess);
    out.resize(limit);
  };
  const size_t words = (snap.rows + 63) / 64;
  for (size_t w = 0; w < words; ++w) {
    const size_t p = w / kPageWords;
    const Page& page = snap.page(p);
    if (page.FieldData(field) == nullptr) {
      w = (p + 1) * kPageWords - 1;  // skip the page.
      continue;
    }
    uint64_t bits = page.PresentWord(field, w % kPageWords) & snap.RowMask(w) &
                    ~snap.TombstoneWord(w);
    while (bits) {
      const size_t r = w * 64 + static_cast<size_t>(__builtin_ctzll(bits));
      bits &= bits - 1;
      const RowInfo& info = snap.row(r);
      out.push_back({info.id_hash, &info.id, field, r});
      if (out.size() >= 2 * limit + 1024) shrink();
    }
  }
  shrink();
  std::sort(out.begin(), out.end(), SampleLess);
  return out;
}

// Gathers the sampled vectors into one contiguous row-major matrix.
std::vector<float> Gather(const Layout& layout, const Snapshot& snap,
                          const std::vector<SampleEntry>& entries, size_t dim) {
  std::vector<float> m(entries.size() * dim);
  for (size_t i = 0; i < entries.size(); ++i) {
    std::memcpy(m.data() + i * dim, snap.Vector(entries[i].field, dim, entries[i].row),
                dim * sizeof(float));
  }
  return m;
}

std::optional<CalibrationStats> Compute(const Layout& layout, const Snapshot& snap,
                                        const std::string& modality, size_t field,
                                        const std::vector<SampleEntry>& queries,
                                        const std::vector<SampleEntry>& targets,
                                        kernels::ThreadPool* pool) {
  const FieldSpec& spec = layout.fields[field];
  const size_t d = spec.dim;
  const size_t nq = queries.size();
  const size_t nt = targets.size();
  if (nq == 0 || nt == 0) return std::nullopt;
  const std::vector<float> q = Gather(layout, snap, queries, d);
  const std::vector<float> t = Gather(layout, snap, targets, d);
  std::vector<float> scores(nq * nt);
  const kernels::KernelTable& kt = kernels::ActiveKernels();
  // Fixed blocks of queries, so every kernel call (and so every score, to the bit) is the same
  // whatever the number of threads and however ParallelFor splits the work.
  constexpr size_t kBlock = 16;
  const size_t blocks = (nq + kBlock - 1) / kBlock;
  auto score_blocks = [&](size_t begin, size_t end) {
    for (size_t b = begin; b < end; ++b) {
      const size_t q0 = b * kBlock;
      const size_t q1 = std::min(nq, q0 + kBlock);
      if (spec.metric == Metric::kL2) {
        for (size_t i = q0; i < q1; ++i) {
          for (size_t j = 0; j < nt; ++j) {
            scores[i * nt + j] = 0.0f - kt.l2sqr(q.data() + i * d, t.data() + j * d, d);
          }
        }
      } else {
        kt.inner_products(q.data() + q0 * d, q1 - q0, t.data(), nt, d, scores.data() + q0 * nt,
                          nt);
      }
    }
  };
  if (pool != nullptr) {
    pool->ParallelFor(blocks, 1, score_blocks);
  } else {
    score_blocks(0, blocks);
  }
  // Reductions: fixed order, double precision.
  int64_t pairs = 0;
  double sum = 0;
  double top1_sum = 0;
  int64_t top1_count = 0;
  for (size_t i = 0; i < nq; ++i) {
    double best = -std::numeric_limits<double>::infinity();
    bool any = false;
    for (size_t j = 0; j < nt; ++j) {
      if (queries[i].row == targets[j].row) continue;  // same record.
      const double s = scores[i * nt + j];
      sum += s;
      ++pairs;
      best = any ? std::max(best, s) : s;
      any = true;
    }
    if (any) {
      top1_sum += best;
      ++top1_count;
    }
  }
  if (pairs == 0) return std::nullopt;
  const double mean = sum / static_cast<double>(pairs);
  double sq = 0;
  for (size_t i = 0; i < nq; ++i) {
    for (size_t j = 0; j < nt; ++j) {
      if (queries[i].row == targets[j].row) continue;
      const double dev = scores[i * nt + j] - mean;
      sq += dev * dev;
    }
  }
  CalibrationStats stats;
  stats.modality = modality;
  stats.field = spec.name;
  stats.samples = pairs;
  stats.at_vectors = snap.field_vectors[field];
  stats.mean = mean;
  stats.stddev = std::sqrt(sq / static_cast<double>(pairs));
  stats.top1_mean = top1_sum / static_cast<double>(top1_count);
  return stats;
}

}  // namespace

std::shared_ptr<const CalibrationSet> RefreshCalibration(const Layout& layout,
                                                         const Snapshot& snapshot,
                                                         const CalibrationSet& current,
                                                         double refresh_fraction,
                                                         kernels::ThreadPool* pool,
                                                         int64_t* computed) {
  // Which (modality, field) pairs need computing.
  std::vector<std::pair<std::string, size_t>> needed;
  std::vector<std::pair<std::string, size_t>> removed;
  for (const auto& [space, fields] : layout.space_fields) {
    std::set<std::string> modalities;
    for (size_t g : fields) modalities.insert(layout.fields[g].modality);
    for (size_t f : fields) {
      const int64_t count = snapshot.field_vectors[f];
      for (const std::string& m : modalities) {
        auto it = current.find({m, f});
        const bool stale =
            it == current.end() ||
            std::abs(static_cast<double>(count - it->second.at_vectors)) >=
                refresh_fraction * static_cast<double>(it->second.at_vectors);
        if (!stale) continue;
        if (count < 2) {
          if (it != current.end()) removed.push_back({m, f});
          continue;
        }
        needed.push_back({m, f});
      }
    }
  }
  if (needed.empty() && removed.empty()) return nullptr;

  auto out = std::make_shared<CalibrationSet>(current);
  for (const auto& key : removed) out->erase(key);
  bool changed = !removed.empty();
  std::map<size_t, std::vector<SampleEntry>> per_field;  // smallest-hash lists, lazily.
  auto field_samples = [&](size_t f) -> const std::vector<SampleEntry>& {
    auto it = per_field.find(f);
    if (it == per_field.end()) {
      it = per_field.emplace(f, SmallestHashes(snapshot, f, kCalibrationTargets)).first;
    }
    return it->second;
  };
  for (const auto& [m, f] : needed) {
    // Queries: the smallest-hash vectors of every field of f's space with modality m. The union
    // of each field's first kCalibrationQueries entries holds the overall first ones.
    std::vector<SampleEntry> queries;
    for (size_t g : layout.space_fields.at(layout.fields[f].space)) {
      if (layout.fields[g].modality != m) continue;
      const auto& s = field_samples(g);
      queries.insert(queries.end(), s.begin(),
                     s.begin() + static_cast<ptrdiff_t>(std::min(s.size(), kCalibrationQueries)));
    }
    std::sort(queries.begin(), queries.end(), SampleLess);
    if (queries.size() > kCalibrationQueries) queries.resize(kCalibrationQueries);
    std::optional<CalibrationStats> stats =
        Compute(layout, snapshot, m, f, queries, field_samples(f), pool);
    if (computed != nullptr) ++*computed;
    auto it = out->find({m, f});
    if (stats.has_value()) {
      (*out)[{m, f}] = *stats;
      changed = true;
    } else if (it != out->end()) {
      out->erase(it);
      changed = true;
    }
  }
  if (!changed) return nullptr;
  return out;
}

namespace {

void PutU32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void PutU64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void PutString(std::string& out, const std::string& s) {
  PutU32(out, static_cast<uint32_t>(s.size()));
  out += s;
}
void PutDouble(std::string& out, double d) {
  uint64_t bits;
  std::memcpy(&bits, &d, sizeof bits);
  PutU64(out, bits);
}

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool U8(uint8_t& v) {
    if (in_.size() < 1) return false;
    v = static_cast<uint8_t>(in_[0]);
    in_.remove_prefix(1);
    return true;
  }
  bool U32(uint32_t& v) {
    if (in_.size() < 4) return false;
    v = 0;
    for (int i = 0; i < 4; ++i) v |= uint32_t{static_cast<uint8_t>(in_[i])} << (8 * i);
    in_.remove_prefix(4);
    return true;
  }
  bool U64(uint64_t& v) {
    if (in_.size() < 8) return false;
    v = 0;
    for (int i = 0; i < 8; ++i) v |= uint64_t{static_cast<uint8_t>(in_[i])} << (8 * i);
    in_.remove_prefix(8);
    return true;
  }
  bool String(std::string& s) {
    uint32_t n;
    if (!U32(n) || in_.size() < n) return false;
    s.assign(in_.data(), n);
    in_.remove_prefix(n);
    return true;
  }
  bool Double(double& d) {
    uint64_t bits;
    if (!U64(bits)) return false;
    std::memcpy(&d, &bits, sizeof d);
    return true;
  }
  bool done() const { return in_.empty(); }

 private:
  std::string_view in_;
};

constexpr uint8_t kCalibrationFormat = 1;

}  // namespace

std::string EncodeCalibration(const CalibrationSet& set) {
  std::string out;
  out.push_back(static_cast<char>(kCalibrationFormat));
  PutU32(out, static_cast<uint32_t>(set.size()));
  for (const auto& [key, s] : set) {
    PutString(out, s.modality);
    PutString(out, s.field);
    PutU64(out, static_cast<uint64_t>(s.samples));
    PutU64(out, static_cast<uint64_t>(s.at_vectors));
    PutDouble(out, s.mean);
    PutDouble(out, s.stddev);
    PutDouble(out, s.top1_mean);
  }
  return out;
}

absl::StatusOr<CalibrationSet> DecodeCalibration(const Layout& layout, std::string_view bytes,
                                                 const std::string& what) {
  Reader r(bytes);
  uint8_t version;
  uint32_t n;
  if (!r.U8(version)) return absl::DataLossError(what + ": empty calibration blob");
  if (version != kCalibrationFormat) {
    return absl::DataLossError(what + ": unknown calibration format version " +
                               std::to_string(version));
  }
  if (!r.U32(n)) return absl::DataLossError(what + ": truncated calibration blob");
  CalibrationSet set;
  for (uint32_t i = 0; i < n; ++i) {
    CalibrationStats s;
    uint64_t samples, at;
    if (!r.String(s.modality) || !r.String(s.field) || !r.U64(samples) || !r.U64(at) ||
        !r.Double(s.mean) || !r.Double(s.stddev) || !r.Double(s.top1_mean)) {
      return absl::DataLossError(what + ": truncated calibration blob (entry " +
                                 std::to_string(i) + ")");
    }
    s.samples = static_cast<int64_t>(samples);
    s.at_vectors = static_cast<int64_t>(at);
    auto it = layout.field_index.find(s.field);
    if (it == layout.field_index.end()) {
      return absl::DataLossError(what + ": calibration entry for unknown field \"" + s.field +
                                 "\"");
    }
    set[{s.modality, it->second}] = std::move(s);
  }
  if (!r.done()) return absl::DataLossError(what + ": trailing bytes in calibration blob");
  return set;
}

}  // namespace rosetta::engine
