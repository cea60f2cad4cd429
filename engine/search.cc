#include "engine/search.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/status/status.h"
#include "engine/filter.h"
#include "kernels/parallel.h"
#include "kernels/simd.h"
#include "kernels/topk.h"

namespace rosetta::engine {
namespace {

constexpr double kRrfK = 60.0;
// Pages per parallel task: 1024 rows amortise the task overhead; small enough to balance.
constexpr size_t kPagesPerTask = 4;

struct PageStats {
  int64_t count = 0;
  double sum = 0;
  float min = std::numeric_limits<float>::infinity();
  float max = -std::numeric_limits<float>::infinity();

  void Add(float s) {
    ++count;
    sum += s;
    min = std::min(min, s);
    max = std::max(max, s);
  }
};

enum class NormKind { kIdentity, kAffine, kConstant };

struct TargetField {
  size_t field = 0;
  const FieldSpec* spec = nullptr;
  const float* query = nullptr;
  std::string modality;      // the query modality used for calibration.
  double base_weight = 1.0;  // (query weight or schema weight) x input weight.
  std::vector<uint64_t> mask;  // candidate positions having the field.
  // Raw scores by position (valid where mask is set): computed into raw_owned, or precomputed
  // by the caller (SearchBatch's grouped scoring).
  std::unique_ptr<float[]> raw_owned;
  const float* raw = nullptr;
  std::vector<PageStats> page_stats;  // per block.
  // Whether the query's normalisation needs the score statistics (minmax, zscore, and calibrated
  // when it falls back to zscore); without them the scoring pass skips its per-row statistics.
  bool stats = true;
  std::vector<double> page_sq;
  int64_t count = 0;
  double mean = 0;
  NormKind norm = NormKind::kIdentity;
  double center = 0;
  double denom = 1;
  double constant = 0;
  std::vector<uint32_t> rank;  // rrf: 1-based rank per position (valid where mask is set).

  bool Has(size_t r) const { return (mask[r >> 6] >> (r & 63)) & 1; }
  double Normalize(float raw_score) const {
    switch (norm) {
      case NormKind::kIdentity:
        return raw_score;
      case NormKind::kAffine:
        return (static_cast<double>(raw_score) - center) / denom;
      case NormKind::kConstant:
        return constant;
    }
    return raw_score;
  }
};

bool IdLess(const std::string& a, const std::string& b) { return a < b; }

class Executor {
 public:
  Executor(const Layout& layout, const Snapshot& snap, const SearchRequest& request,
           kernels::ThreadPool* pool, const float* precomputed_raw,
           const std::vector<uint32_t>* restrict_rows)
      : layout_(layout), snap_(snap), req_(request), pool_(pool),
        precomputed_raw_(precomputed_raw), restrict_(restrict_rows) {}

  absl::StatusOr<SearchResponse> Run();

 private:
  // fn(first block, end block) over every block, in parallel.
  void ForBlocks(const std::function<void(size_t, size_t)>& fn) const {
    if (pool_ == nullptr || blocks_ <= kPagesPerTask) {
      if (blocks_ > 0) fn(0, blocks_);
      return;
    }
    pool_->ParallelFor(blocks_, kPagesPerTask, fn);
  }
  // Candidates and raw scores of one block: a page of rows (exhaustive), or kPageRows
  // candidate positions (restricted).
  void ScorePage(size_t p, const CompiledFilter& filter);
  void ScoreRestrictedBlock(size_t b, const CompiledFilter& filter);
  void ComputeNormalisation();
  // Whether ComputeNormalisation will read t's score statistics (it uses the same rules).
  bool NeedsStats(const TargetField& t) const;
  // Calibration statistics for t, or nullptr when calibrated normalisation falls back to zscore.
  const CalibrationStats* CalibrationFor(const TargetField& t) const;
  void ComputeRrfRanks();
  // Fused score of row r; false if the row is not eligible (no targeted field, or `require`
  // and a field missing). `expl` (optional, one per target) receives the explanation.
  bool FuseRow(size_t r, float* score, FieldExplanation* expl) const;
  // Rank of each hit (sorted best first) in each field, for the explanations.
  std::vector<std::vector<int64_t>> HitRanks(const std::vector<size_t>& hits) const;
  size_t RowOf(size_t pos) const { return restrict_ != nullptr ? (*restrict_)[pos] : pos; }
  const std::string& Id(size_t pos) const { return snap_.row(RowOf(pos)).id; }
  // Position r ranks before position s in field t: raw desc, then id asc.
  bool RanksBefore(const TargetField& t, size_t r, size_t s) const {
    const float a = t.raw[r], b = t.raw[s];
    if (a != b) return a > b;
    return IdLess(Id(r), Id(s));
  }

  const Layout& layout_;
  const Snapshot& snap_;
  const SearchRequest& req_;
  kernels::ThreadPool* pool_;
  const float* precomputed_raw_;
  const std::vector<uint32_t>* restrict_;  // candidate rows, or nullptr for every row.
  const kernels::KernelTable& kt_ = kernels::ActiveKernels();
  size_t positions_ = 0;  // rows (exhaustive) or candidates (restricted).
  size_t blocks_ = 0;     // ceil(positions_ / kPageRows).
  std::vector<TargetField> targets_;
  std::vector<uint64_t> candidates_;
};

void Executor::ScorePage(size_t p, const CompiledFilter& filter) {
  const Page& page = snap_.page(p);
  const size_t begin = p * kPageRows;
  const size_t rows = std::min(kPageRows, snap_.rows - begin);
  uint64_t cand[kPageWords];
  for (size_t w = 0; w < kPageWords; ++w) {
    const size_t gw = p * kPageWords + w;
    uint64_t bits = snap_.RowMask(gw) & ~snap_.TombstoneWord(gw);
    for (size_t f : filter.has_fields()) bits &= page.PresentWord(f, w);
    if (filter.has_predicates()) {
      uint64_t keep = 0;
      for (uint64_t b = bits; b; b &= b - 1) {
        const size_t i = w * 64 + static_cast<size_t>(__builtin_ctzll(b));
        if (filter.Matches(*page.row(i).meta)) keep |= uint64_t{1} << (i & 63);
      }
      bits = keep;
    }
    cand[w] = bits;
    if (gw < candidates_.size()) candidates_[gw] = bits;
  }
  for (TargetField& t : targets_) {
    PageStats& st = t.page_stats[p];
    uint64_t fmask[kPageWords];
    bool any = false;
    for (size_t w = 0; w < kPageWords; ++w) {
      const size_t gw = p * kPageWords + w;
      fmask[w] = cand[w] & page.PresentWord(t.field, w);
      if (gw < t.mask.size()) t.mask[gw] = fmask[w];
      any |= fmask[w] != 0;
    }
    if (!any) continue;
    const float* data = page.FieldData(t.field);
    const size_t d = t.spec->dim;
    float* out = t.raw_owned ? t.raw_owned.get() + begin : nullptr;
    const float* scores = t.raw + begin;
    if (out == nullptr) {
      // Precomputed by the caller.
    } else if (t.spec->metric == Metric::kL2) {
      for (size_t w = 0; w < kPageWords; ++w) {
        for (uint64_t b = fmask[w]; b; b &= b - 1) {
          const size_t i = w * 64 + static_cast<size_t>(__builtin_ctzll(b));
          // 0 - d, not -d: an exact match scores +0, never -0 (the sign would otherwise leak into
          // sums and JSON depending on the fusion path).
          out[i] = 0.0f - kt_.l2sqr(t.query, data + i * d, d);
        }
      }
    } else {
      // The whole page (rows without the field are zero and ignored): one blocked pass.
      kt_.inner_products(t.query, 1, data, rows, d, out, rows);
    }
    if (!t.stats) continue;
    for (size_t w = 0; w < kPageWords; ++w) {
      for (uint64_t b = fmask[w]; b; b &= b - 1) {
        st.Add(scores[w * 64 + static_cast<size_t>(__builtin_ctzll(b))]);
      }
    }
  }
}

void Executor::ScoreRestrictedBlock(size_t b, const CompiledFilter& filter) {
  const size_t begin = b * kPageRows;
  const size_t end = std::min(positions_, begin + kPageRows);
  for (size_t w = b * kPageWords; w < (b + 1) * kPageWords && w < candidates_.size(); ++w) {
    uint64_t bits = 0;
    for (size_t pos = w * 64; pos < std::min(end, w * 64 + 64); ++pos) {
      const size_t r = RowOf(pos);
      if (r >= snap_.rows || !snap_.Live(r)) continue;
      const Page& page = snap_.page(r >> kPageShift);
      const size_t i = r & (kPageRows - 1);
      bool ok = true;
      for (size_t f : filter.has_fields()) ok = ok && page.Present(f, i);
      if (!ok || (filter.has_predicates() && !filter.Matches(*page.row(i).meta))) continue;
      bits |= uint64_t{1} << (pos & 63);
    }
    candidates_[w] = bits;
    for (TargetField& t : targets_) {
      PageStats& st = t.page_stats[b];
      uint64_t fmask = 0;
      for (uint64_t m = bits; m; m &= m - 1) {
        const size_t pos = w * 64 + static_cast<size_t>(__builtin_ctzll(m));
        const size_t r = RowOf(pos);
        const Page& page = snap_.page(r >> kPageShift);
        const size_t i = r & (kPageRows - 1);
        if (!page.Present(t.field, i)) continue;
        fmask |= uint64_t{1} << (pos & 63);
        const size_t d = t.spec->dim;
        const float* v = page.FieldData(t.field) + i * d;
        float s;
        if (t.spec->metric == Metric::kL2) {
          s = 0.0f - kt_.l2sqr(t.query, v, d);  // +0 for an exact match, as in ScorePage.
        } else {
          // The one-query kernel the exhaustive pass uses, so a row's raw score does not depend
          // on whether an index proposed it.
          kt_.inner_products(t.query, 1, v, 1, d, &s, 1);
        }
        t.raw_owned[pos] = s;
        if (t.stats) st.Add(s);
      }
      t.mask[w] = fmask;
    }
  }
}

const CalibrationStats* Executor::CalibrationFor(const TargetField& t) const {
  if (snap_.field_vectors[t.field] < 2) return nullptr;
  auto it = snap_.calibration->find({t.modality, t.field});
  return it != snap_.calibration->end() ? &it->second : nullptr;
}

bool Executor::NeedsStats(const TargetField& t) const {
  switch (req_.normalize) {
    case Normalize::kNone:
      return false;
    case Normalize::kCalibrated:
      return CalibrationFor(t) == nullptr;  // the zscore fallback.
    case Normalize::kMinMax:
    case Normalize::kZScore:
      return true;
  }
  return true;
}

void Executor::ComputeNormalisation() {
  std::vector<TargetField*> need_sq;
  for (TargetField& t : targets_) {
    PageStats total;
    for (const PageStats& s : t.page_stats) {
      total.count += s.count;
      total.sum += s.sum;
      total.min = std::min(total.min, s.min);
      total.max = std::max(total.max, s.max);
    }
    t.count = total.count;
    t.mean = total.count > 0 ? total.sum / static_cast<double>(total.count) : 0.0;
    Normalize mode = req_.normalize;
    if (mode == Normalize::kCalibrated) {
      const CalibrationStats* stats = CalibrationFor(t);
      if (stats == nullptr) {
        mode = Normalize::kZScore;  // documented fallback.
      } else {
        t.norm = NormKind::kAffine;
        t.center = stats->mean;
        const double band = stats->top1_mean - stats->mean;
        t.denom = band >= 1e-6 ? band : (stats->stddev > 0 ? stats->stddev : 1.0);
        continue;
      }
    }
    switch (mode) {
      case Normalize::kNone:
        t.norm = NormKind::kIdentity;
        break;
      case Normalize::kMinMax:
        if (total.count > 0 && total.max > total.min) {
          t.norm = NormKind::kAffine;
          t.center = total.min;
          t.denom = static_cast<double>(total.max) - static_cast<double>(total.min);
        } else {
          t.norm = NormKind::kConstant;
          t.constant = 1.0;
        }
        break;
      case Normalize::kZScore:
        need_sq.push_back(&t);
        break;
      case Normalize::kCalibrated:
        break;  // handled above.
    }
  }
  if (need_sq.empty()) return;
  for (TargetField* t : need_sq) t->page_sq.assign(blocks_, 0.0);
  ForBlocks([&](size_t pb, size_t pe) {
    for (TargetField* t : need_sq) {
      for (size_t p = pb; p < pe; ++p) {
        if (t->page_stats[p].count == 0) continue;
        double sq = 0;
        for (size_t w = p * kPageWords; w < (p + 1) * kPageWords && w < t->mask.size(); ++w) {
          for (uint64_t b = t->mask[w]; b; b &= b - 1) {
            const double dev = t->raw[w * 64 + static_cast<size_t>(__builtin_ctzll(b))] - t->mean;
            sq += dev * dev;
          }
        }
        t->page_sq[p] = sq;
      }
    }
  });
  for (TargetField* t : need_sq) {
    double sq = 0;
    for (double s : t->page_sq) sq += s;
    const double stddev = t->count > 0 ? std::sqrt(sq / static_cast<double>(t->count)) : 0.0;
    if (stddev > 0) {
      t->norm = NormKind::kAffine;
      t->center = t->mean;
      t->denom = stddev;
    } else {
      t->norm = NormKind::kConstant;
      t->constant = 0.0;
    }
  }
}

void Executor::ComputeRrfRanks() {
  for (TargetField& t : targets_) {
    std::vector<uint32_t> rows;
    rows.reserve(static_cast<size_t>(t.count));
    for (size_t w = 0; w < t.mask.size(); ++w) {
      for (uint64_t b = t.mask[w]; b; b &= b - 1) {
        rows.push_back(static_cast<uint32_t>(w * 64 + static_cast<size_t>(__builtin_ctzll(b))));
      }
    }
    std::sort(rows.begin(), rows.end(),
              [&](uint32_t a, uint32_t b) { return RanksBefore(t, a, b); });
    t.rank.assign(positions_, 0);
    for (size_t i = 0; i < rows.size(); ++i) t.rank[rows[i]] = static_cast<uint32_t>(i + 1);
  }
}

bool Executor::FuseRow(size_t r, float* score, FieldExplanation* expl) const {
  const size_t nt = targets_.size();
  size_t present = 0;
  for (const TargetField& t : targets_) present += t.Has(r);
  if (present == 0) return false;
  if (req_.missing == Missing::kRequire && present != nt) return false;
  const RowMeta* meta = snap_.any_record_weights ? snap_.row(RowOf(r)).meta.get() : nullptr;
  // Effective weights w_f(r); S_T (record weight 1 for missing fields) and S_P.
  double s_t = 0, s_p = 0;
  double w[64];
  std::unique_ptr<double[]> w_heap;
  double* wf = w;
  if (nt > 64) {
    w_heap.reset(new double[nt]);
    wf = w_heap.get();
  }
  for (size_t i = 0; i < nt; ++i) {
    const TargetField& t = targets_[i];
    if (t.Has(r)) {
      wf[i] = meta == nullptr ? t.base_weight
                              : t.base_weight * static_cast<double>(meta->FieldWeight(t.field));
      s_p += wf[i];
    } else {
      wf[i] = t.base_weight;
    }
    s_t += wf[i];
  }
  double sum = 0;
  float best = -std::numeric_limits<float>::infinity();
  bool any_missing = false;
  for (size_t i = 0; i < nt; ++i) {
    const TargetField& t = targets_[i];
    if (!t.Has(r)) {
      any_missing = true;
      if (expl != nullptr) expl[i] = FieldExplanation{.missing = true};
      continue;
    }
    double wp = wf[i];
    if (req_.missing == Missing::kRenormalize) wp = s_p == 0 ? 0.0 : wf[i] * s_t / s_p;
    const float raw = t.raw[r];
    const double n = t.Normalize(raw);
    float contribution;
    if (req_.fusion == Fusion::kRrf) {
      contribution = static_cast<float>(wp / (kRrfK + static_cast<double>(t.rank[r])));
    } else {
      contribution = static_cast<float>(wp * n);
    }
    sum += static_cast<double>(contribution);
    best = std::max(best, contribution);
    if (expl != nullptr) {
      FieldExplanation& e = expl[i];
      e.missing = false;
      e.raw = raw;
      e.normalized = static_cast<float>(n);
      e.weight = static_cast<float>(wp);
      e.contribution = contribution;
      e.rank = req_.fusion == Fusion::kRrf ? t.rank[r] : 0;
    }
  }
  if (req_.fusion == Fusion::kMax) {
    // zero: a missing field contributes 0, which takes part in the max.
    if (req_.missing == Missing::kZero && any_missing) best = std::max(best, 0.0f);
    *score = best;
  } else {
    *score = static_cast<float>(sum);
  }
  return true;
}

std::vector<std::vector<int64_t>> Executor::HitRanks(const std::vector<size_t>& hits) const {
  std::vector<std::vector<int64_t>> ranks(targets_.size(),
                                          std::vector<int64_t>(hits.size(), 0));
  for (size_t ti = 0; ti < targets_.size(); ++ti) {
    const TargetField& t = targets_[ti];
    if (req_.fusion == Fusion::kRrf) {
      for (size_t h = 0; h < hits.size(); ++h) {
        if (t.Has(hits[h])) ranks[ti][h] = t.rank[hits[h]];
      }
      continue;
    }
    // The hits having the field, in field order; each candidate c adds one to the rank of every
    // hit it ranks before (a suffix of that order, found by binary search).
    std::vector<size_t> order;  // indices into hits.
    for (size_t h = 0; h < hits.size(); ++h) {
      if (t.Has(hits[h])) order.push_back(h);
    }
    if (order.empty()) continue;
    std::sort(order.begin(), order.end(),
              [&](size_t a, size_t b) { return RanksBefore(t, hits[a], hits[b]); });
    const float worst = t.raw[hits[order.back()]];
    std::vector<int64_t> diff(order.size() + 1, 0);
    std::mutex mu;
    ForBlocks([&](size_t pb, size_t pe) {
      std::vector<int64_t> local(order.size() + 1, 0);
      bool touched = false;
      for (size_t w = pb * kPageWords; w < pe * kPageWords && w < t.mask.size(); ++w) {
        for (uint64_t b = t.mask[w]; b; b &= b - 1) {
          const size_t c = w * 64 + static_cast<size_t>(__builtin_ctzll(b));
          if (t.raw[c] < worst) continue;  // ranks before no hit.
          // First position j such that c ranks before hits[order[j]].
          const size_t j = static_cast<size_t>(
              std::partition_point(order.begin(), order.end(),
                                   [&](size_t h) { return !RanksBefore(t, c, hits[h]); }) -
              order.begin());
          ++local[j];
          touched = true;
        }
      }
      if (!touched) return;
      std::lock_guard<std::mutex> lock(mu);
      for (size_t j = 0; j < local.size(); ++j) diff[j] += local[j];
    });
    int64_t before = 0;
    for (size_t j = 0; j < order.size(); ++j) {
      before += diff[j];
      ranks[ti][order[j]] = before + 1;
    }
  }
  return ranks;
}

absl::StatusOr<SearchResponse> Executor::Run() {
  absl::StatusOr<CompiledFilter> filter = CompiledFilter::Compile(req_.filter, layout_);
  if (!filter.ok()) return filter.status();

  // Targeted fields, in field id (= name) order, which is also the summation order.
  for (const QueryInput& in : req_.inputs) {
    for (const std::string& name : in.fields) {
      const FieldSpec* spec = layout_.FindField(name);
      if (spec == nullptr) return absl::InvalidArgumentError("unknown field \"" + name + "\"");
      TargetField t;
      t.field = spec->id;
      t.spec = spec;
      t.query = in.vector.data();
      t.modality = in.modality.empty() ? spec->modality : in.modality;
      auto qw = req_.weights.find(name);
      const double fw = qw != req_.weights.end() ? qw->second : spec->weight;
      t.base_weight = fw * static_cast<double>(in.weight);
      targets_.push_back(std::move(t));
    }
  }
  std::sort(targets_.begin(), targets_.end(),
            [](const TargetField& a, const TargetField& b) { return a.field < b.field; });
  for (size_t i = 1; i < targets_.size(); ++i) {
    if (targets_[i].field == targets_[i - 1].field) {
      return absl::InvalidArgumentError("field \"" + targets_[i].spec->name +
                                        "\" is targeted by more than one input");
    }
  }
  SearchResponse response;
  if (targets_.empty() || snap_.rows == 0) return response;

  if (restrict_ != nullptr) {
    // Candidate rows beyond the snapshot cannot be read: drop them from the end (ascending).
    size_t c = restrict_->size();
    while (c > 0 && (*restrict_)[c - 1] >= snap_.rows) --c;
    positions_ = c;
  } else {
    positions_ = snap_.rows;
  }
  blocks_ = (positions_ + kPageRows - 1) / kPageRows;
  if (positions_ == 0) return response;
  const size_t words = (positions_ + 63) / 64;
  const size_t slots = blocks_ * kPageRows;
  candidates_.assign(words, 0);
  for (TargetField& t : targets_) {
    t.mask.assign(words, 0);
    if (precomputed_raw_ != nullptr && targets_.size() == 1 && restrict_ == nullptr) {
      t.raw = precomputed_raw_;
    } else {
      t.raw_owned.reset(new float[slots]);
      t.raw = t.raw_owned.get();
    }
    t.page_stats.assign(blocks_, PageStats{});
    t.stats = NeedsStats(t);
  }

  // 1-2. Candidates and raw scores.
  ForBlocks([&](size_t pb, size_t pe) {
    for (size_t p = pb; p < pe; ++p) {
      if (restrict_ != nullptr) {
        ScoreRestrictedBlock(p, *filter);
      } else {
        ScorePage(p, *filter);
      }
    }
  });
  // 3-4. Normalisation, ranks.
  ComputeNormalisation();
  if (req_.fusion == Fusion::kRrf) ComputeRrfRanks();

  // 5. Fused scores and top-k by (score, row).
  const size_t k = static_cast<size_t>(std::max(req_.k, 1));
  std::unique_ptr<float[]> scores(new float[slots]);
  // One targeted field, no record weights, not rrf: a row's fused score is its one contribution,
  // float(w * normalized), with w the same for every row (FuseRow with S_T = S_P = w).
  const bool single =
      targets_.size() == 1 && req_.fusion != Fusion::kRrf && !snap_.any_record_weights;
  double single_weight = 0;
  if (single) {
    const double wf = targets_[0].base_weight;
    single_weight = req_.missing == Missing::kRenormalize ? (wf == 0 ? 0.0 : wf * wf / wf) : wf;
  }
  std::vector<uint64_t> eligible(words, 0);
  kernels::TopK best(k);
  std::mutex mu;
  ForBlocks([&](size_t pb, size_t pe) {
    kernels::TopK local(k);
    for (size_t w = pb * kPageWords; w < pe * kPageWords && w < words; ++w) {
      uint64_t ok = 0;
      if (single) {
        // FuseRow for one field and no record weights, inlined: the same double arithmetic.
        const TargetField& t = targets_[0];
        for (uint64_t b = candidates_[w] & t.mask[w]; b; b &= b - 1) {
          const size_t bit = static_cast<size_t>(__builtin_ctzll(b));
          const size_t r = w * 64 + bit;
          const float s = static_cast<float>(single_weight * t.Normalize(t.raw[r]));
          if (std::isnan(s)) continue;
          scores[r] = s;
          ok |= uint64_t{1} << bit;
          local.Push(s, static_cast<int64_t>(r));
        }
        eligible[w] = ok;
        continue;
      }
      for (uint64_t b = candidates_[w]; b; b &= b - 1) {
        const size_t bit = static_cast<size_t>(__builtin_ctzll(b));
        const size_t r = w * 64 + bit;
        float s;
        if (!FuseRow(r, &s, nullptr) || std::isnan(s)) continue;
        scores[r] = s;
        ok |= uint64_t{1} << bit;
        local.Push(s, static_cast<int64_t>(r));
      }
      eligible[w] = ok;
    }
    std::lock_guard<std::mutex> lock(mu);
    best.Merge(local);
  });

  // 6. Ties by id: everything scoring >= the k-th best score, sorted by (score desc, id asc).
  const bool full = best.size() >= k;
  const float threshold = full ? best.Threshold() : -std::numeric_limits<float>::infinity();
  std::vector<size_t> hits;
  if (!full) {
    for (const kernels::Scored& s : best.TakeSorted()) hits.push_back(static_cast<size_t>(s.id));
  } else {
    for (size_t w = 0; w < words; ++w) {
      for (uint64_t b = eligible[w]; b; b &= b - 1) {
        const size_t r = w * 64 + static_cast<size_t>(__builtin_ctzll(b));
        if (scores[r] >= threshold) hits.push_back(r);
      }
    }
  }
  std::sort(hits.begin(), hits.end(), [&](size_t a, size_t b) {
    if (scores[a] != scores[b]) return scores[a] > scores[b];
    return IdLess(Id(a), Id(b));
  });
  if (hits.size() > k) hits.resize(k);

  // 7. Hits and explanations.
  std::vector<std::vector<int64_t>> ranks;
  if (req_.explain) ranks = HitRanks(hits);
  std::vector<FieldExplanation> expl(targets_.size());
  response.results.reserve(hits.size());
  for (size_t h = 0; h < hits.size(); ++h) {
    const size_t r = hits[h];
    const RowInfo& row = snap_.row(RowOf(r));
    Hit hit;
    hit.id = row.id;
    float s = 0;
    FuseRow(r, &s, expl.data());
    hit.score = s;
    if (req_.explain) {
      for (size_t i = 0; i < targets_.size(); ++i) {
        FieldExplanation e = expl[i];
        if (!e.missing) e.rank = ranks[i][h];
        hit.fields.emplace(targets_[i].spec->name, e);
      }
    }
    if (req_.with_attributes) {
      hit.attributes = row.meta->meta.attributes;
      hit.provenance = row.meta->meta.provenance;
    }
    response.results.push_back(std::move(hit));
  }
  return response;
}

}  // namespace

absl::StatusOr<SearchResponse> ExecuteSearch(const Layout& layout, const Snapshot& snapshot,
                                             const SearchRequest& request,
                                             kernels::ThreadPool* pool,
                                             const float* precomputed_raw,
                                             const std::vector<uint32_t>* restrict_rows) {
  Executor executor(layout, snapshot, request, pool, precomputed_raw, restrict_rows);
  return executor.Run();
}

bool GroupableQuery(const Layout& layout, const SearchRequest& request) {
  if (request.inputs.size() != 1 || request.inputs[0].fields.size() != 1) return false;
  if (!request.filter.empty()) return false;
  const FieldSpec* spec = layout.FindField(request.inputs[0].fields[0]);
  return spec != nullptr && spec->metric != Metric::kL2;
}

void ScoreFieldGroup(const Snapshot& snapshot, const FieldSpec& field, const float* queries,
                     size_t nq, const std::vector<float*>& out, kernels::ThreadPool* pool) {
  const kernels::KernelTable& kt = kernels::ActiveKernels();
  const size_t pages = snapshot.num_pages();
  const size_t d = field.dim;
  // Each query is scored with its own one-query kernel call, exactly the call a single Search
  // makes for this page, so grouped raw scores are bit-identical to Search's whatever summation
  // order the kernels use for other batch sizes. The group still reads each page's slab from
  // memory once: the slab (kPageRows rows) stays in cache across the group's queries.
  auto run = [&](size_t pb, size_t pe) {
    for (size_t p = pb; p < pe; ++p) {
      const float* data = snapshot.page(p).FieldData(field.id);
      if (data == nullptr) continue;
      const size_t begin = p * kPageRows;
      const size_t rows = std::min(kPageRows, snapshot.rows - begin);
      for (size_t q = 0; q < nq; ++q) {
        kt.inner_products(queries + q * d, 1, data, rows, d, out[q] + begin, rows);
      }
    }
  };
  if (pool == nullptr || pages <= kPagesPerTask) {
    if (pages > 0) run(0, pages);
  } else {
    pool->ParallelFor(pages, kPagesPerTask, run);
  }
}

}  // namespace rosetta::engine
