#include "engine/device_search.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iostream>
#include <limits>
#include <map>
#include <string_view>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/filter.h"
#include "engine/search.h"
#include "schema/status_macros.h"
#include "kernels/gpu_search.h"

namespace rosetta::engine {

struct MirrorChunk {
  size_t begin = 0, end = 0;  // rows, multiples of kPageRows.
  std::unique_ptr<DeviceChunk> dev;
};

class DeviceMirror {
 public:
  explicit DeviceMirror(std::shared_ptr<std::atomic<int64_t>> used) : used_(std::move(used)) {}
  // A dropped collection's chunks leave the budget with it.
  ~DeviceMirror() { used_->fetch_sub(bytes); }

  mutable std::mutex mu;
  std::vector<std::shared_ptr<const MirrorChunk>> chunks;  // contiguous from row 0; guarded.
  size_t covered = 0;       // rows mirrored; guarded.
  int64_t bytes = 0;        // device bytes of the chunks; guarded.
  bool building = false;    // an upload runs; guarded.
  size_t failed_target = 0;  // an upload up to this row failed: not retried until more rows.
  bool queued = false;       // a refresh job is queued on the upload thread; guarded.

 private:
  std::shared_ptr<std::atomic<int64_t>> used_;  // the searcher's bytes in use, all mirrors.
};

namespace {

void LogDevice(const std::string& line) {
  // One line per event, like the server's other diagnostics (stderr).
  std::cerr << "rosetta: device: " << line << std::endl;
}

kernels::FlatMetric ToFlat(Metric m) {
  return m == Metric::kL2 ? kernels::FlatMetric::kL2 : kernels::FlatMetric::kInnerProduct;
}

kernels::FusedMissing ToFused(Missing m) {
  switch (m) {
    case Missing::kRenormalize:
      return kernels::FusedMissing::kRenormalize;
    case Missing::kZero:
      return kernels::FusedMissing::kZero;
    case Missing::kRequire:
      return kernels::FusedMissing::kRequire;
  }
  return kernels::FusedMissing::kRenormalize;
}

}  // namespace

struct DeviceSearcher::Prepared {
  const Layout* layout = nullptr;
  const Snapshot* snap = nullptr;
  const SearchRequest* req = nullptr;
  std::vector<std::shared_ptr<const MirrorChunk>> chunks;
  size_t mirrored = 0;
  struct Term {
    size_t field = 0;
    const FieldSpec* spec = nullptr;
    const float* query = nullptr;
    double weight = 1.0;
    bool affine = false;
    double scale = 1.0, offset = 0.0;
  };
  std::vector<Term> terms;  // field id (= summation) order.
  size_t k = 0, kprime = 0;
  bool filtered = false;
  // Bit r set = row r is not a candidate (tombstoned or rejected by the filter), rows [0, rows).
  std::vector<uint64_t> skip;
  std::string key;  // batching shape; empty = never batched.
  // Device results: per chunk, this query's candidates (chunk row ids, device scores).
  absl::Status device_status;
  std::vector<std::vector<kernels::Scored>> per_chunk;
  size_t k_used = 0;  // the k the device calls ran with.
};

struct DeviceSearcher::Batch {
  std::string key;
  std::vector<Prepared*> items;
  bool closed = false;
  bool done = false;
};

DeviceSearcher::DeviceSearcher(std::shared_ptr<DeviceBackend> backend, DeviceSearchOptions options)
    : backend_(std::move(backend)), options_(options), name_(backend_->Name()) {
  options_.max_batch = std::clamp<size_t>(options_.max_batch, 1, kernels::kGpuMaxK);
  options_.chunk_rows = std::max<size_t>(options_.chunk_rows, kPageRows);
}

DeviceSearcher::~DeviceSearcher() {
  {
    std::lock_guard<std::mutex> lock(jobs_mu_);
    stopping_ = true;
    jobs_.clear();
  }
  jobs_cv_.notify_all();
  if (uploader_.joinable()) uploader_.join();
}

bool DeviceSearcher::Stale(DeviceMirror& mirror, const Snapshot& snap) {
  const size_t target = snap.rows / kPageRows * kPageRows;
  std::lock_guard<std::mutex> lock(mirror.mu);
  if (mirror.building || mirror.queued || target < mirror.covered + options_.chunk_rows) {
    return false;
  }
  return mirror.failed_target == 0 || target >= mirror.failed_target + options_.chunk_rows;
}

void DeviceSearcher::ScheduleRefresh(DeviceMirror& mirror, std::function<void()> refresh) {
  {
    std::lock_guard<std::mutex> lock(mirror.mu);
    if (mirror.queued) return;
    mirror.queued = true;
  }
  DeviceMirror* m = &mirror;
  std::lock_guard<std::mutex> lock(jobs_mu_);
  if (stopping_) return;
  // The job owns what keeps the mirror alive (the collection, captured by `refresh`); it clears
  // `queued` before refreshing so that rows arriving during the upload schedule the next one.
  jobs_.push_back([m, refresh = std::move(refresh)] {
    {
      std::lock_guard<std::mutex> l(m->mu);
      m->queued = false;
    }
    refresh();
  });
  if (!uploader_.joinable()) {
    uploader_ = std::thread([this] {
      std::unique_lock<std::mutex> lock(jobs_mu_);
      while (true) {
        jobs_cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
        if (stopping_) return;
        std::function<void()> job = std::move(jobs_.front());
        jobs_.pop_front();
        lock.unlock();
        job();
        job = nullptr;  // releases what it captured outside the lock.
        lock.lock();
      }
    });
  }
  jobs_cv_.notify_one();
}

std::shared_ptr<DeviceMirror> DeviceSearcher::NewMirror() {
  return std::make_shared<DeviceMirror>(used_bytes_);
}

absl::Status DeviceSearcher::Refresh(DeviceMirror& mirror, const Layout& layout,
                                     const Snapshot& snap, bool force) {
  // Whole pages only: every row of a page below the snapshot's row count is published, so its
  // vectors and presence bits no longer change.
  const size_t target = snap.rows / kPageRows * kPageRows;
  size_t begin;
  bool merge;
  {
    std::lock_guard<std::mutex> lock(mirror.mu);
    const size_t least = force ? kPageRows : options_.chunk_rows;
    if (mirror.building || target < mirror.covered + least) return absl::OkStatus();
    if (!force && mirror.failed_target != 0 &&
        target < mirror.failed_target + options_.chunk_rows) {
      return absl::OkStatus();
    }
    merge = mirror.chunks.size() >= kMaxChunks;
    begin = merge ? 0 : mirror.covered;
    mirror.building = true;
  }
  auto finish = [&](size_t failed) {
    std::lock_guard<std::mutex> lock(mirror.mu);
    mirror.building = false;
    if (failed != 0) mirror.failed_target = failed;
  };

  // Device bytes per page of rows (every field), to fit the budget.
  std::vector<kernels::FusedFieldData> shape(layout.fields.size());
  for (size_t f = 0; f < layout.fields.size(); ++f) {
    shape[f].dim = layout.fields[f].dim;
  }
  size_t page_bytes = backend_->EstimateBytes(kPageRows, shape);
  if (snap.any_record_weights) {
    page_bytes += layout.fields.size() * kPageRows * sizeof(float);
  }
  int64_t freed = 0;
  if (merge) {
    std::lock_guard<std::mutex> lock(mirror.mu);
    freed = mirror.bytes;  // released once the merged chunk replaces them.
  }
  const int64_t used = used_bytes_->load();
  const int64_t room = static_cast<int64_t>(options_.memory_budget) - used;
  size_t end = target;
  if (page_bytes > 0) {
    const size_t pages_fit = room <= 0 ? 0 : static_cast<size_t>(room) / page_bytes;
    end = std::min(target, begin + pages_fit * kPageRows);
  }
  if (merge && end < target) {
    // Cannot hold the merged copy next to the old chunks: append instead.
    std::lock_guard<std::mutex> lock(mirror.mu);
    merge = false;
    begin = mirror.covered;
    freed = 0;
    const size_t pages_fit = room <= 0 ? 0 : static_cast<size_t>(room) / page_bytes;
    end = std::min(target, begin + pages_fit * kPageRows);
  }
  if (end <= begin) {
    finish(target);  // over budget: these rows stay on the CPU (Stats: unmirrored_rows).
    return absl::OkStatus();
  }

  // Host copies of rows [begin, end) of every field.
  const size_t rows = end - begin;
  std::vector<std::vector<float>> vectors(layout.fields.size());
  std::vector<std::vector<uint64_t>> present(layout.fields.size());
  std::vector<std::vector<float>> weights(layout.fields.size());
  std::vector<kernels::FusedFieldData> fields(layout.fields.size());
  try {
    for (size_t f = 0; f < layout.fields.size(); ++f) {
      const size_t d = layout.fields[f].dim;
      vectors[f].assign(rows * d, 0.0f);
      present[f].assign(rows / 64, 0);
      if (snap.any_record_weights) weights[f].assign(rows, 1.0f);
      for (size_t p = begin / kPageRows; p < end / kPageRows; ++p) {
        const Page& page = snap.page(p);
        const size_t local = p * kPageRows - begin;
        if (const float* data = page.FieldData(f); data != nullptr) {
          std::memcpy(vectors[f].data() + local * d, data, kPageRows * d * sizeof(float));
        }
        for (size_t w = 0; w < kPageWords; ++w) present[f][local / 64 + w] = page.PresentWord(f, w);
        if (snap.any_record_weights) {
          for (size_t i = 0; i < kPageRows; ++i) {
            weights[f][local + i] = page.row(i).meta->FieldWeight(f);
          }
        }
      }
      fields[f].vectors = vectors[f].data();
      fields[f].dim = d;
      fields[f].present = present[f];
      fields[f].record_weights = weights[f];
    }
  } catch (const std::bad_alloc&) {
    finish(target);
    LogDevice("mirror: out of host memory staging rows " + std::to_string(begin) + ".." +
              std::to_string(end) + "; they are searched on the CPU");
    return absl::ResourceExhaustedError("device mirror: out of host memory");
  }
  absl::StatusOr<std::unique_ptr<DeviceChunk>> dev = backend_->Upload(rows, fields);
  if (!dev.ok()) {
    finish(target);
    LogDevice(absl::StrCat("mirror upload of rows ", begin, "..", end, " failed (", name_, "): ",
                           dev.status().ToString(), "; they are searched on the CPU"));
    return dev.status();
  }
  auto chunk = std::make_shared<MirrorChunk>();
  chunk->begin = begin;
  chunk->end = end;
  chunk->dev = std::move(*dev);
  const int64_t added = static_cast<int64_t>(chunk->dev->device_bytes());
  {
    std::lock_guard<std::mutex> lock(mirror.mu);
    if (merge) mirror.chunks.clear();
    mirror.chunks.push_back(std::move(chunk));
    mirror.covered = end;
    mirror.bytes = mirror.bytes - freed + added;
    mirror.building = false;
    mirror.failed_target = end < target ? target : 0;
  }
  used_bytes_->fetch_add(added - freed);
  return absl::OkStatus();
}

bool DeviceSearcher::Eligible(const Layout& layout, const Snapshot& snap,
                              const SearchRequest& request) const {
  if (request.fusion != Fusion::kWeighted) return false;
  if (request.normalize != Normalize::kNone && request.normalize != Normalize::kCalibrated) {
    return false;
  }
  const size_t k = static_cast<size_t>(std::max(request.k, 1));
  if (k + kDeviceMargin > kernels::kGpuMaxK) return false;
  size_t terms = 0;
  for (const QueryInput& in : request.inputs) {
    for (const std::string& name : in.fields) {
      const FieldSpec* spec = layout.FindField(name);
      if (spec == nullptr) return false;
      ++terms;
      if (request.normalize == Normalize::kCalibrated) {
        // The zscore fallback (docs/query-semantics.md) needs every candidate's score first.
        if (snap.field_vectors[spec->id] < 2) return false;
        const std::string modality = in.modality.empty() ? spec->modality : in.modality;
        if (snap.calibration->find({modality, spec->id}) == snap.calibration->end()) return false;
      }
    }
  }
  return terms >= 1 && terms <= kernels::kFusedMaxTerms;
}

absl::StatusOr<std::vector<std::vector<std::vector<kernels::Scored>>>> DeviceSearcher::RunDevice(
    const std::vector<Prepared*>& group) {
  const Prepared& first = *group.front();
  const size_t nq = group.size();
  size_t k = 0;
  for (const Prepared* p : group) k = std::max(k, p->kprime);
  // Queries, scales and offsets per term, query-major.
  const size_t nt = first.terms.size();
  std::vector<std::vector<float>> queries(nt);
  std::vector<std::vector<double>> scales(nt), offsets(nt);
  std::vector<kernels::FusedTerm> terms(nt);
  for (size_t t = 0; t < nt; ++t) {
    const Prepared::Term& term = first.terms[t];
    const size_t d = term.spec->dim;
    queries[t].resize(nq * d);
    for (size_t q = 0; q < nq; ++q) {
      std::memcpy(queries[t].data() + q * d, group[q]->terms[t].query, d * sizeof(float));
      if (term.affine) {
        scales[t].push_back(group[q]->terms[t].scale);
        offsets[t].push_back(group[q]->terms[t].offset);
      }
    }
    terms[t].field = term.field;
    terms[t].metric = ToFlat(term.spec->metric);
    terms[t].weight = term.weight;
    terms[t].queries = queries[t].data();
    terms[t].scale = scales[t];
    terms[t].offset = offsets[t];
  }
  // out[q][chunk]
  std::vector<std::vector<std::vector<kernels::Scored>>> out(
      nq, std::vector<std::vector<kernels::Scored>>(first.chunks.size()));
  for (size_t c = 0; c < first.chunks.size(); ++c) {
    const MirrorChunk& chunk = *first.chunks[c];
    kernels::FusedParams params;
    params.k = k;
    params.terms = terms;
    params.missing = ToFused(first.req->missing);
    params.skip = std::span<const uint64_t>(first.skip).subspan(chunk.begin / 64,
                                                                 (chunk.end - chunk.begin) / 64);
    ASSIGN_OR_RETURN(std::vector<std::vector<kernels::Scored>> r,
                     backend_->Search(*chunk.dev, nq, params));
    if (r.size() != nq) return absl::InternalError("device search returned a short batch");
    for (size_t q = 0; q < nq; ++q) out[q][c] = std::move(r[q]);
  }
  batches_.fetch_add(1, std::memory_order_relaxed);
  return out;
}

void DeviceSearcher::RunAndStore(const std::vector<Prepared*>& group) {
  absl::StatusOr<std::vector<std::vector<std::vector<kernels::Scored>>>> r = RunDevice(group);
  size_t k = 0;
  for (const Prepared* p : group) k = std::max(k, p->kprime);
  for (size_t q = 0; q < group.size(); ++q) {
    group[q]->k_used = k;
    if (r.ok()) {
      group[q]->per_chunk = std::move((*r)[q]);
    } else {
      group[q]->device_status = r.status();
    }
  }
}

std::optional<absl::StatusOr<SearchResponse>> DeviceSearcher::Finish(Prepared& p,
                                                                     kernels::ThreadPool* pool) {
  const Snapshot& snap = *p.snap;
  if (!p.device_status.ok()) {
    fallbacks_.fetch_add(1, std::memory_order_relaxed);
    LogDevice(absl::StrCat("search failed on ", name_, ": ", p.device_status.ToString(),
                           "; answered on the CPU"));
    return std::nullopt;
  }
  // 3. Boundary check over the device scores.
  std::vector<float> all;
  for (const auto& list : p.per_chunk) {
    for (const kernels::Scored& s : list) all.push_back(s.score);
  }
  if (all.size() >= p.k) {
    std::nth_element(all.begin(), all.begin() + static_cast<ptrdiff_t>(p.k - 1), all.end(),
                     std::greater<float>());
    const double kth = all[p.k - 1];
    const double best = *std::max_element(all.begin(), all.end());
    const double tol = kDeviceTolerance * std::max({1.0, std::fabs(kth), std::fabs(best)});
    for (const auto& list : p.per_chunk) {
      if (list.size() >= p.k_used && static_cast<double>(list.back().score) >= kth - tol) {
        boundary_fallbacks_.fetch_add(1, std::memory_order_relaxed);
        return std::nullopt;
      }
    }
  }
  // 4. Exact re-scoring of the candidates and the unmirrored rows.
  std::vector<uint32_t> rows;
  for (size_t c = 0; c < p.per_chunk.size(); ++c) {
    for (const kernels::Scored& s : p.per_chunk[c]) {
      rows.push_back(static_cast<uint32_t>(p.chunks[c]->begin + static_cast<size_t>(s.id)));
    }
  }
  std::sort(rows.begin(), rows.end());
  rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
  for (size_t r = p.mirrored; r < snap.rows; ++r) {
    if (!((p.skip[r >> 6] >> (r & 63)) & 1)) rows.push_back(static_cast<uint32_t>(r));
  }
  absl::StatusOr<SearchResponse> response =
      ExecuteSearch(*p.layout, snap, *p.req, rows.size() > 4 * kPageRows ? pool : nullptr,
                    nullptr, &rows);
  if (!response.ok()) return response;
  // 5. Ranks over every candidate: the restricted search counted them among its own rows only.
  if (p.req->explain && !response->results.empty()) {
    absl::flat_hash_map<std::string_view, uint32_t> row_of;
    for (uint32_t r : rows) row_of.emplace(snap.row(r).id, r);
    for (const Prepared::Term& term : p.terms) {
      const FieldSpec& spec = *term.spec;
      std::vector<size_t> hits;  // indices into results having the field.
      std::vector<float> thresholds;
      for (size_t h = 0; h < response->results.size(); ++h) {
        const Hit& hit = response->results[h];
        auto e = hit.fields.find(spec.name);
        if (e == hit.fields.end() || e->second.missing) continue;
        auto it = row_of.find(hit.id);
        if (it == row_of.end()) return absl::InternalError("device path: hit without a row");
        hits.push_back(h);
        thresholds.push_back(kernels::FusedRawScore(
            ToFlat(spec.metric), term.query, snap.Vector(spec.id, spec.dim, it->second), spec.dim));
      }
      if (hits.empty()) continue;
      std::vector<kernels::RankCount> counts(hits.size());
      kernels::RankCountParams params;
      params.field = spec.id;
      params.metric = ToFlat(spec.metric);
      params.queries = term.query;
      params.thresholds = thresholds;
      for (const auto& chunk : p.chunks) {
        params.skip = std::span<const uint64_t>(p.skip).subspan(chunk->begin / 64,
                                                               (chunk->end - chunk->begin) / 64);
        absl::StatusOr<std::vector<kernels::RankCount>> c =
            backend_->RankCounts(*chunk->dev, 1, params);
        if (!c.ok() || c->size() != hits.size()) {
          fallbacks_.fetch_add(1, std::memory_order_relaxed);
          LogDevice(absl::StrCat("rank counts failed on ", name_, ": ",
                                 c.ok() ? "short result" : c.status().ToString(),
                                 "; answered on the CPU"));
          return std::nullopt;
        }
        for (size_t j = 0; j < hits.size(); ++j) {
          counts[j].greater += (*c)[j].greater;
          counts[j].equal += (*c)[j].equal;
        }
      }
      // The unmirrored rows, with the same arithmetic.
      std::vector<float> tail_scores;
      for (size_t r = p.mirrored; r < snap.rows; ++r) {
        if (((p.skip[r >> 6] >> (r & 63)) & 1) || !snap.Present(spec.id, r)) continue;
        const float s = kernels::FusedRawScore(ToFlat(spec.metric), term.query,
                                               snap.Vector(spec.id, spec.dim, r), spec.dim);
        if (!std::isnan(s)) tail_scores.push_back(s);
      }
      std::sort(tail_scores.begin(), tail_scores.end());
      for (size_t j = 0; j < hits.size(); ++j) {
        const float t = thresholds[j];
        auto lo = std::lower_bound(tail_scores.begin(), tail_scores.end(), t);
        auto hi = std::upper_bound(tail_scores.begin(), tail_scores.end(), t);
        counts[j].greater += tail_scores.end() - hi;
        counts[j].equal += hi - lo;
      }
      for (size_t j = 0; j < hits.size(); ++j) {
        // The hit itself is the one row equal to its own score; another one would have to be
        // ordered by id, which the device does not know.
        if (counts[j].equal != 1) {
          boundary_fallbacks_.fetch_add(1, std::memory_order_relaxed);
          return std::nullopt;
        }
        response->results[hits[j]].fields[spec.name].rank = counts[j].greater + 1;
      }
    }
  }
  searches_.fetch_add(1, std::memory_order_relaxed);
  return response;
}

absl::Status DeviceSearcher::Prepare(const Layout& layout, const Snapshot& snap,
                                     const SearchRequest& request, DeviceMirror& mirror,
                                     Prepared* p) const {
  p->layout = &layout;
  p->snap = &snap;
  p->req = &request;
  {
    std::lock_guard<std::mutex> lock(mirror.mu);
    p->chunks = mirror.chunks;
    p->mirrored = mirror.covered;
  }
  // A mirror never covers rows this snapshot does not have (it may have been refreshed from a
  // newer snapshot): use the chunks within it only.
  while (!p->chunks.empty() && p->chunks.back()->end > snap.rows) p->chunks.pop_back();
  p->mirrored = p->chunks.empty() ? 0 : p->chunks.back()->end;
  for (const QueryInput& in : request.inputs) {
    for (const std::string& name : in.fields) {
      const FieldSpec* spec = layout.FindField(name);
      if (spec == nullptr) return absl::InvalidArgumentError("unknown field \"" + name + "\"");
      Prepared::Term t;
      t.field = spec->id;
      t.spec = spec;
      t.query = in.vector.data();
      auto qw = request.weights.find(name);
      t.weight = (qw != request.weights.end() ? qw->second : spec->weight) *
                 static_cast<double>(in.weight);
      if (request.normalize == Normalize::kCalibrated) {
        // Executor::ComputeNormalisation's calibrated map, n = (raw - mean) / band, as an
        // affine map scale x raw + offset.
        const std::string modality = in.modality.empty() ? spec->modality : in.modality;
        auto it = snap.calibration->find({modality, spec->id});
        if (it == snap.calibration->end()) return absl::InternalError("no calibration");
        const CalibrationStats& c = it->second;
        const double band = c.top1_mean - c.mean;
        const double denom = band >= 1e-6 ? band : (c.stddev > 0 ? c.stddev : 1.0);
        t.affine = true;
        t.scale = 1.0 / denom;
        t.offset = -c.mean / denom;
      }
      p->terms.push_back(t);
    }
  }
  std::sort(p->terms.begin(), p->terms.end(),
            [](const Prepared::Term& a, const Prepared::Term& b) { return a.field < b.field; });
  p->k = static_cast<size_t>(std::max(request.k, 1));
  p->kprime = std::min(p->k + kDeviceMargin, kernels::kGpuMaxK);
  ASSIGN_OR_RETURN(CompiledFilter filter, CompiledFilter::Compile(request.filter, layout));
  p->filtered = !request.filter.empty();
  // Candidates as ExecuteSearch defines them (live, passing the filter), complemented.
  const size_t words = (snap.rows + 63) / 64;
  p->skip.assign(words, ~uint64_t{0});
  for (size_t w = 0; w < words; ++w) {
    uint64_t bits = snap.RowMask(w) & ~snap.TombstoneWord(w);
    if (p->filtered) {
      const Page& page = snap.page(w / kPageWords);
      for (size_t f : filter.has_fields()) bits &= page.PresentWord(f, w % kPageWords);
      if (filter.has_predicates()) {
        uint64_t keep = 0;
        for (uint64_t b = bits; b; b &= b - 1) {
          const size_t bit = static_cast<size_t>(__builtin_ctzll(b));
          const size_t i = (w % kPageWords) * 64 + bit;
          if (filter.Matches(*page.row(i).meta)) keep |= uint64_t{1} << bit;
        }
        bits = keep;
      }
    }
    p->skip[w] = ~bits;
  }
  if (!p->filtered) {
    // The batching shape: same mirror state, snapshot and targets (queries, scales and offsets
    // are per query in a device call; weights, missing policy and the skip bitmap are shared).
    p->key = absl::StrCat(reinterpret_cast<uintptr_t>(&mirror), "/", snap.seq, "/", p->mirrored,
                          "/", p->chunks.size(), "/", static_cast<int>(request.missing), "/",
                          static_cast<int>(request.normalize));
    for (const Prepared::Term& t : p->terms) {
      uint64_t bits;
      std::memcpy(&bits, &t.weight, sizeof(bits));
      absl::StrAppend(&p->key, "/", t.field, ":", bits);
    }
  }
  return absl::OkStatus();
}

std::vector<std::optional<absl::StatusOr<SearchResponse>>> DeviceSearcher::SearchMany(
    DeviceMirror& mirror, const Layout& layout, const Snapshot& snap,
    const std::vector<const SearchRequest*>& requests, kernels::ThreadPool* pool) {
  std::vector<std::optional<absl::StatusOr<SearchResponse>>> out(requests.size());
  std::vector<std::unique_ptr<Prepared>> prepared(requests.size());
  std::map<std::string, std::vector<Prepared*>> groups;
  std::vector<Prepared*> alone;
  for (size_t i = 0; i < requests.size(); ++i) {
    prepared[i] = std::make_unique<Prepared>();
    if (absl::Status s = Prepare(layout, snap, *requests[i], mirror, prepared[i].get()); !s.ok()) {
      out[i] = s;
      prepared[i].reset();
      continue;
    }
    if (prepared[i]->mirrored == 0) {
      cpu_queries_.fetch_add(1, std::memory_order_relaxed);
      prepared[i].reset();
      continue;
    }
    if (prepared[i]->key.empty()) {
      alone.push_back(prepared[i].get());
    } else {
      groups[prepared[i]->key].push_back(prepared[i].get());
    }
  }
  for (auto& [key, members] : groups) {
    for (size_t b = 0; b < members.size(); b += options_.max_batch) {
      RunAndStore(std::vector<Prepared*>(
          members.begin() + static_cast<ptrdiff_t>(b),
          members.begin() + static_cast<ptrdiff_t>(std::min(members.size(), b + options_.max_batch))));
    }
  }
  for (Prepared* p : alone) RunAndStore({p});
  for (size_t i = 0; i < requests.size(); ++i) {
    if (prepared[i]) out[i] = Finish(*prepared[i], pool);
  }
  return out;
}

std::optional<absl::StatusOr<SearchResponse>> DeviceSearcher::SearchOne(
    DeviceMirror& mirror, const Layout& layout, const Snapshot& snap,
    const SearchRequest& request, kernels::ThreadPool* pool) {
  Prepared p;
  if (absl::Status s = Prepare(layout, snap, request, mirror, &p); !s.ok()) return s;
  if (p.mirrored == 0) {
    cpu_queries_.fetch_add(1, std::memory_order_relaxed);
    return std::nullopt;
  }
  if (p.key.empty() || options_.max_batch == 1) {
    RunAndStore({&p});
    return Finish(p, pool);
  }
  // Dynamic batching: join a forming batch of the same shape, or lead a new one.
  std::unique_lock<std::mutex> lock(batch_mu_);
  std::shared_ptr<Batch> batch;
  for (const std::shared_ptr<Batch>& b : open_batches_) {
    if (!b->closed && b->key == p.key && b->items.size() < options_.max_batch) {
      batch = b;
      break;
    }
  }
  if (batch != nullptr) {
    batch->items.push_back(&p);
    if (batch->items.size() >= options_.max_batch) {
      batch->closed = true;
      batch_cv_.notify_all();
    }
    batch_cv_.wait(lock, [&] { return batch->done; });
    lock.unlock();
    return Finish(p, pool);
  }
  batch = std::make_shared<Batch>();
  batch->key = p.key;
  batch->items.push_back(&p);
  open_batches_.push_back(batch);
  if (options_.batch_wait.count() > 0) {
    batch_cv_.wait_for(lock, options_.batch_wait, [&] { return batch->closed; });
  }
  batch->closed = true;
  open_batches_.erase(std::find(open_batches_.begin(), open_batches_.end(), batch));
  std::vector<Prepared*> items = batch->items;
  lock.unlock();
  RunAndStore(items);
  lock.lock();
  batch->done = true;
  batch_cv_.notify_all();
  lock.unlock();
  return Finish(p, pool);
}

DeviceStats DeviceSearcher::Stats(
    const std::vector<std::pair<std::shared_ptr<DeviceMirror>, size_t>>& published_rows) const {
  DeviceStats s;
  s.searches = searches_.load();
  s.batches = batches_.load();
  s.fallbacks = fallbacks_.load();
  s.boundary_fallbacks = boundary_fallbacks_.load();
  s.cpu_queries = cpu_queries_.load();
  s.memory_budget_bytes = static_cast<int64_t>(options_.memory_budget);
  for (const auto& [mirror, rows] : published_rows) {
    if (mirror == nullptr) continue;
    std::lock_guard<std::mutex> lock(mirror->mu);
    s.mirrored_rows += static_cast<int64_t>(mirror->covered);
    s.mirror_bytes += mirror->bytes;
    s.unmirrored_rows += static_cast<int64_t>(rows - std::min(rows, mirror->covered));
  }
  return s;
}

std::pair<int64_t, int64_t> DeviceSearcher::MirrorSize(const DeviceMirror& mirror) {
  std::lock_guard<std::mutex> lock(mirror.mu);
  return {static_cast<int64_t>(mirror.covered), mirror.bytes};
}

}  // namespace rosetta::engine
