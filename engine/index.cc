#include "engine/index.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "engine/filter.h"
#include "kernels/parallel.h"
#include "kernels/simd.h"
#include "kernels/topk.h"
#include "schema/status_macros.h"

namespace rosetta::engine {

namespace {

constexpr char kMagic[8] = {'R', 'S', 'S', 'E', 'G', '0', '0', '1'};

uint64_t Fnv1a(const void* data, size_t n, uint64_t h = 0xcbf29ce484222325ull) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

class Writer {
 public:
  void Bytes(const void* p, size_t n) { out_.append(static_cast<const char*>(p), n); }
  template <typename T>
  void Put(T v) {
    static_assert(std::is_trivially_copyable_v<T>);
    Bytes(&v, sizeof(T));  // little-endian hosts only (storage static_asserts it too).
  }
  void Str32(std::string_view s) {
    Put<uint32_t>(static_cast<uint32_t>(s.size()));
    Bytes(s.data(), s.size());
  }
  std::string Finish() {
    const uint64_t sum = Fnv1a(out_.data(), out_.size());
    Put(sum);
    return std::move(out_);
  }

 private:
  std::string out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  template <typename T>
  absl::StatusOr<T> Get(const char* what) {
    if (in_.size() - pos_ < sizeof(T)) return Short(what);
    T v;
    std::memcpy(&v, in_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  absl::StatusOr<std::string_view> Take(uint64_t n, const char* what) {
    if (n > in_.size() - pos_) return Short(what);
    std::string_view v = in_.substr(pos_, n);
    pos_ += n;
    return v;
  }
  size_t left() const { return in_.size() - pos_; }
  size_t pos() const { return pos_; }

 private:
  absl::Status Short(const char* what) const {
    return absl::DataLossError("segment artifact truncated reading " + std::string(what) +
                               " at byte " + std::to_string(pos_));
  }
  std::string_view in_;
  size_t pos_ = 0;
};

}  // namespace

uint64_t VectorFingerprint(const float* v, size_t dim) {
  const uint64_t h = Fnv1a(v, dim * sizeof(float));
  return h == 0 ? 1 : h;
}

std::string SegmentStatKey(uint64_t id) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%016" PRIx64, id);
  return std::string(kSegmentStatPrefix) + buf;
}

kernels::IvfPqParams ResolveIvfPqParams(const FieldSpec& field, size_t vectors) {
  kernels::IvfPqParams p;
  const IndexSpec& spec = field.index;
  p.nlist = spec.nlist > 0 ? std::min<size_t>(static_cast<size_t>(spec.nlist), vectors)
                           : kernels::DefaultNlist(vectors);
  p.m = spec.m > 0 ? static_cast<size_t>(spec.m) : kernels::DefaultM(field.dim);
  p.nbits = spec.nbits > 0 ? static_cast<size_t>(spec.nbits) : 8;
  p.metric = field.metric == Metric::kL2 ? kernels::FlatMetric::kL2
                                         : kernels::FlatMetric::kInnerProduct;
  // Deterministic per field: the same rows give the same index in every process.
  p.seed = 0x5eed0000ull + field.id;
  return p;
}

absl::StatusOr<std::shared_ptr<SealedSegment>> BuildSealedSegment(
    const Layout& layout, const Snapshot& snapshot, uint64_t id, std::vector<uint32_t> member_rows,
    std::string* artifact, kernels::ThreadPool* pool, const std::atomic<bool>* cancel) {
  auto seg = std::make_shared<SealedSegment>();
  seg->id = id;
  seg->member_rows = std::move(member_rows);
  const auto& members = seg->member_rows;
  Writer w;
  w.Bytes(kMagic, sizeof kMagic);
  w.Put<uint32_t>(kSegmentFormatVersion);
  w.Put<uint64_t>(id);
  w.Put<uint64_t>(members.size());
  for (uint32_t row : members) w.Str32(snapshot.row(row).id);

  std::vector<std::string> index_blobs;
  std::vector<std::vector<uint64_t>> fingerprints;
  for (const FieldSpec& f : layout.fields) {
    if (f.index.type != IndexType::kIvfPq) continue;
    if (cancel != nullptr && cancel->load()) return absl::CancelledError("index build cancelled");
    std::vector<uint64_t> fp(members.size(), 0);
    std::vector<uint32_t> ids;
    std::vector<float> data;
    for (size_t i = 0; i < members.size(); ++i) {
      const size_t r = members[i];
      if (!snapshot.Present(f.id, r)) continue;
      const float* v = snapshot.Vector(f.id, f.dim, r);
      fp[i] = VectorFingerprint(v, f.dim);
      ids.push_back(static_cast<uint32_t>(i));
      data.insert(data.end(), v, v + f.dim);
    }
    if (ids.size() < kMinIndexVectors) {
      seg->flat_fields.push_back(f.id);
      continue;
    }
    const kernels::IvfPqParams params = ResolveIvfPqParams(f, ids.size());
    absl::StatusOr<kernels::IvfPqIndex> built =
        kernels::IvfPqIndex::Build(data.data(), ids.data(), ids.size(), f.dim, params, pool);
    if (!built.ok()) {
      return absl::Status(built.status().code(), "field \"" + f.name + "\": building its ivf_pq index: " +
                                                     std::string(built.status().message()));
    }
    auto index = std::make_shared<const kernels::IvfPqIndex>(*std::move(built));
    seg->bytes += static_cast<int64_t>(index->MemoryBytes());
    seg->fields.push_back(SealedFieldIndex{f.id, index, static_cast<int64_t>(ids.size())});
    index_blobs.push_back(index->Serialize());
    fingerprints.push_back(std::move(fp));
  }
  w.Put<uint32_t>(static_cast<uint32_t>(seg->fields.size()));
  for (size_t i = 0; i < seg->fields.size(); ++i) {
    const FieldSpec& f = layout.fields[seg->fields[i].field];
    w.Put<uint16_t>(f.id);
    w.Str32(f.name);
    w.Bytes(fingerprints[i].data(), fingerprints[i].size() * sizeof(uint64_t));
    w.Put<uint64_t>(index_blobs[i].size());
    w.Bytes(index_blobs[i].data(), index_blobs[i].size());
  }
  *artifact = w.Finish();
  return seg;
}

absl::StatusOr<std::shared_ptr<SealedSegment>> LoadSealedSegment(
    const Layout& layout, std::string_view artifact,
    const std::function<std::optional<size_t>(const std::string&)>& row_of_id,
    const std::function<const float*(size_t field, size_t row)>& vector_of) {
  if (artifact.size() < sizeof kMagic + 8) {
    return absl::DataLossError("segment artifact of " + std::to_string(artifact.size()) +
                               " bytes is too short");
  }
  uint64_t stored_sum;
  std::memcpy(&stored_sum, artifact.data() + artifact.size() - 8, 8);
  const std::string_view body = artifact.substr(0, artifact.size() - 8);
  if (Fnv1a(body.data(), body.size()) != stored_sum) {
    return absl::DataLossError("segment artifact checksum mismatch (damaged)");
  }
  Reader r(body);
  ASSIGN_OR_RETURN(std::string_view magic, r.Take(sizeof kMagic, "the magic"));
  if (magic != std::string_view(kMagic, sizeof kMagic)) {
    return absl::DataLossError("segment artifact has a bad magic");
  }
  ASSIGN_OR_RETURN(uint32_t version, r.Get<uint32_t>("the version"));
  if (version != kSegmentFormatVersion) {
    return absl::UnimplementedError("segment artifact format version " + std::to_string(version) +
                                    " (this build reads " +
                                    std::to_string(kSegmentFormatVersion) + ")");
  }
  auto seg = std::make_shared<SealedSegment>();
  ASSIGN_OR_RETURN(seg->id, r.Get<uint64_t>("the segment id"));
  ASSIGN_OR_RETURN(uint64_t count, r.Get<uint64_t>("the member count"));
  if (count > r.left() / 4) return absl::DataLossError("segment artifact member count too large");
  std::vector<std::string> ids(count);
  for (auto& id : ids) {
    ASSIGN_OR_RETURN(uint32_t len, r.Get<uint32_t>("a member id length"));
    ASSIGN_OR_RETURN(std::string_view bytes, r.Take(len, "a member id"));
    id.assign(bytes);
  }
  seg->member_rows.assign(count, kDeadMember);
  for (size_t i = 0; i < count; ++i) {
    if (auto row = row_of_id(ids[i])) seg->member_rows[i] = static_cast<uint32_t>(*row);
  }
  ASSIGN_OR_RETURN(uint32_t nindex, r.Get<uint32_t>("the index count"));
  std::vector<bool> indexed(layout.fields.size(), false);
  for (uint32_t k = 0; k < nindex; ++k) {
    ASSIGN_OR_RETURN(uint16_t fid, r.Get<uint16_t>("a field id"));
    ASSIGN_OR_RETURN(uint32_t name_len, r.Get<uint32_t>("a field name length"));
    ASSIGN_OR_RETURN(std::string_view name, r.Take(name_len, "a field name"));
    if (fid >= layout.fields.size() || layout.fields[fid].name != name ||
        layout.fields[fid].index.type != IndexType::kIvfPq || indexed[fid]) {
      return absl::DataLossError("segment artifact indexes field \"" + std::string(name) + "\" (id " +
                                 std::to_string(fid) + "), which the schema has not as an ivf_pq field");
    }
    indexed[fid] = true;
    const FieldSpec& f = layout.fields[fid];
    ASSIGN_OR_RETURN(std::string_view fps, r.Take(count * 8, "fingerprints"));
    for (size_t i = 0; i < count; ++i) {
      const uint32_t row = seg->member_rows[i];
      if (row == kDeadMember) continue;
      uint64_t want;
      std::memcpy(&want, fps.data() + i * 8, 8);
      const float* v = vector_of(fid, row);
      const uint64_t have = v == nullptr ? 0 : VectorFingerprint(v, f.dim);
      if (have != want) seg->member_rows[i] = kDeadMember;  // changed since the build.
    }
    ASSIGN_OR_RETURN(uint64_t len, r.Get<uint64_t>("an index length"));
    ASSIGN_OR_RETURN(std::string_view blob, r.Take(len, "an index"));
    absl::StatusOr<kernels::IvfPqIndex> index = kernels::IvfPqIndex::Deserialize(blob);
    if (!index.ok()) {
      return absl::Status(index.status().code(), "field \"" + f.name + "\": " +
                                                     std::string(index.status().message()));
    }
    if (index->d() != f.dim) {
      return absl::DataLossError("field \"" + f.name + "\": index dimension " +
                                 std::to_string(index->d()) + " != " + std::to_string(f.dim));
    }
    auto shared = std::make_shared<const kernels::IvfPqIndex>(*std::move(index));
    seg->bytes += static_cast<int64_t>(shared->MemoryBytes());
    seg->fields.push_back(SealedFieldIndex{fid, shared, static_cast<int64_t>(shared->size())});
  }
  if (r.left() != 0) {
    return absl::DataLossError("segment artifact has " + std::to_string(r.left()) +
                               " trailing bytes");
  }
  // A member changed in any indexed field is dead for all (its current version is scanned).
  std::sort(seg->fields.begin(), seg->fields.end(),
            [](const SealedFieldIndex& a, const SealedFieldIndex& b) { return a.field < b.field; });
  for (const FieldSpec& f : layout.fields) {
    if (f.index.type == IndexType::kIvfPq && !indexed[f.id]) seg->flat_fields.push_back(f.id);
  }
  return seg;
}

std::shared_ptr<const CoveredRows> ComputeCovered(const Layout& layout, const SealedList& sealed,
                                                  const Segment& segment, size_t rows) {
  auto covered = std::make_shared<CoveredRows>(layout.fields.size());
  const size_t words = (rows + 63) / 64;
  std::vector<std::shared_ptr<FieldCoverage>> cov(layout.fields.size());
  for (const auto& seg : sealed) {
    for (const SealedFieldIndex& fi : seg->fields) {
      if (!cov[fi.field]) {
        cov[fi.field] = std::make_shared<FieldCoverage>();
        cov[fi.field]->rows = rows;
        cov[fi.field]->bits.assign(words, 0);
      }
      auto& b = cov[fi.field]->bits;
      const kernels::IvfPqIndex& index = *fi.index;
      // Only members that are in the index are covered (members without the field are not in
      // it, and have nothing to cover).
      for (size_t l = 0; l < index.nlist(); ++l) {
        for (uint32_t member : index.list_ids(l)) {
          const uint32_t row = seg->member_rows[member];
          if (row == kDeadMember || row >= rows) continue;
          b[row >> 6] |= uint64_t{1} << (row & 63);
        }
      }
    }
  }
  // Open pages: whole pages below `rows` with a vector of the field that is not covered.
  const size_t whole_pages = rows / kPageRows;
  for (size_t f = 0; f < cov.size(); ++f) {
    if (!cov[f]) continue;
    for (size_t p = 0; p < whole_pages; ++p) {
      uint64_t open = 0;
      for (size_t w = p * kPageWords; w < (p + 1) * kPageWords; ++w) {
        open |= segment.WriterPresentWord(f, w) & ~cov[f]->bits[w];
      }
      if (open != 0) cov[f]->open_pages.push_back(static_cast<uint32_t>(p));
    }
    (*covered)[f] = std::move(cov[f]);
  }
  return covered;
}

namespace {

struct TargetQuery {
  const FieldSpec* spec;
  const float* query;
};

// The `k` best rows of the exhaustive part of one field: live, passing the filter, having the
// field, not covered by an index. Visits only the pages the field's coverage leaves open (every
// page when no index covers the field).
std::vector<kernels::Scored> ScanUncovered(const Snapshot& snap, const TargetQuery& t,
                                           const CompiledFilter& filter, size_t k,
                                           kernels::ThreadPool* pool, int64_t* scanned) {
  const kernels::KernelTable& kt = kernels::ActiveKernels();
  const size_t pages = snap.num_pages();
  const size_t f = t.spec->id, d = t.spec->dim;
  const FieldCoverage* cov =
      snap.covered && f < snap.covered->size() ? (*snap.covered)[f].get() : nullptr;
  // The pages to visit: the open ones, then every page from the coverage's end on.
  std::vector<uint32_t> visit;
  if (cov != nullptr) {
    for (uint32_t p : cov->open_pages) {
      if (p < pages) visit.push_back(p);
    }
    for (size_t p = cov->rows / kPageRows; p < pages; ++p) visit.push_back(static_cast<uint32_t>(p));
  }
  const size_t n = cov != nullptr ? visit.size() : pages;
  std::mutex mu;
  kernels::TopK merged(k);
  std::atomic<int64_t> total{0};
  auto run = [&](size_t vb, size_t ve) {
    kernels::TopK top(k);
    int64_t count = 0;
    for (size_t v = vb; v < ve; ++v) {
      const size_t p = cov != nullptr ? visit[v] : v;
      const Page& page = snap.page(p);
      const size_t begin = p * kPageRows;
      const size_t rows = std::min(kPageRows, snap.rows - begin);
      const float* data = page.FieldData(f);
      if (data == nullptr) continue;
      for (size_t w = 0; w < kPageWords; ++w) {
        const size_t gw = p * kPageWords + w;
        uint64_t bits = snap.RowMask(gw) & ~snap.TombstoneWord(gw) & page.PresentWord(f, w);
        if (cov != nullptr && gw < cov->bits.size()) bits &= ~cov->bits[gw];
        for (size_t hf : filter.has_fields()) bits &= page.PresentWord(hf, w);
        for (uint64_t b = bits; b; b &= b - 1) {
          const size_t i = w * 64 + static_cast<size_t>(__builtin_ctzll(b));
          if (i >= rows) break;
          if (filter.has_predicates() && !filter.Matches(*page.row(i).meta)) continue;
          const float* vec = data + i * d;
          const float s = t.spec->metric == Metric::kL2 ? 0.0f - kt.l2sqr(t.query, vec, d)
                                                        : kt.dot(t.query, vec, d);
          top.Push(s, static_cast<int64_t>(begin + i));
          ++count;
        }
      }
    }
    total += count;
    std::lock_guard<std::mutex> lock(mu);
    merged.Merge(top);
  };
  if (pool == nullptr || n <= 16) {
    if (n > 0) run(0, n);
  } else {
    pool->ParallelFor(n, 16, run);
  }
  *scanned = total.load();
  return merged.TakeSorted();
}

// Every (field, ready index) a non-exact search of `request` uses, in field id order.
absl::StatusOr<std::vector<TargetQuery>> Targets(const Layout& layout, const SearchRequest& request) {
  std::vector<TargetQuery> targets;
  for (const QueryInput& in : request.inputs) {
    for (const std::string& name : in.fields) {
      const FieldSpec* spec = layout.FindField(name);
      if (spec == nullptr) return absl::InvalidArgumentError("unknown field \"" + name + "\"");
      targets.push_back(TargetQuery{spec, in.vector.data()});
    }
  }
  std::sort(targets.begin(), targets.end(),
            [](const TargetQuery& a, const TargetQuery& b) { return a.spec->id < b.spec->id; });
  return targets;
}

size_t ProbesFor(const SearchRequest& request, const kernels::IvfPqIndex& index) {
  return request.nprobe > 0 ? static_cast<size_t>(request.nprobe)
                            : kernels::DefaultNprobe(index.nlist());
}

// The code bytes the probed lists of every targeted field's ready indexes hold.
size_t IndexScanBytes(const Snapshot& snap, const SearchRequest& request,
                      const std::vector<TargetQuery>& targets) {
  size_t bytes = 0;
  for (const TargetQuery& t : targets) {
    for (const auto& seg : *snap.sealed) {
      const SealedFieldIndex* fi = seg->Find(t.spec->id);
      if (fi == nullptr || fi->index->nlist() == 0) continue;
      const kernels::IvfPqIndex& index = *fi->index;
      const size_t probes = std::min(ProbesFor(request, index), index.nlist());
      const size_t code_bytes = (index.m() * index.nbits() + 7) / 8;
      bytes += index.size() * probes / index.nlist() * code_bytes;
    }
  }
  return bytes;
}

}  // namespace

absl::StatusOr<std::optional<CandidateUnion>> GatherCandidates(const Layout& layout,
                                                               const Snapshot& snap,
                                                               const SearchRequest& request,
                                                               kernels::ThreadPool* pool) {
  if (request.exact || !snap.sealed || snap.sealed->empty()) return std::nullopt;
  ASSIGN_OR_RETURN(std::vector<TargetQuery> targets, Targets(layout, request));
  bool any_index = false;
  for (const TargetQuery& t : targets) {
    for (const auto& seg : *snap.sealed) any_index |= seg->Find(t.spec->id) != nullptr;
  }
  if (!any_index) return std::nullopt;
  ASSIGN_OR_RETURN(CompiledFilter filter, CompiledFilter::Compile(request.filter, layout));
  CandidateUnion out;
  if (IndexScanBytes(snap, request, targets) < kParallelIndexScanBytes) pool = nullptr;
  out.pool = pool;

  const size_t k = static_cast<size_t>(request.k);
  const size_t refine = request.refine > 0 ? static_cast<size_t>(request.refine)
                                           : kernels::DefaultRefine(k);
  // Whether a row may be a candidate: live and passing the filter (has-field conditions
  // included). The field's own presence is implied by being in its index.
  auto eligible = [&](size_t row) {
    if (row >= snap.rows || !snap.Live(row)) return false;
    for (size_t hf : filter.has_fields()) {
      if (!snap.Present(hf, row)) return false;
    }
    return !filter.has_predicates() || filter.Matches(*snap.row(row).meta);
  };
  std::vector<uint32_t> field_rows;
  for (const TargetQuery& t : targets) {
    FieldPlan plan;
    plan.field = t.spec->name;
    field_rows.clear();
    for (const auto& seg : *snap.sealed) {
      const SealedFieldIndex* fi = seg->Find(t.spec->id);
      if (fi == nullptr) continue;
      kernels::IvfPqSearchParams p;
      // 4-bit codes rank coarser than 8-bit ones: their default re-ranks more candidates.
      p.k = request.refine > 0 ? static_cast<size_t>(request.refine)
                               : kernels::DefaultRefine(k, fi->index->nbits());
      p.nprobe = ProbesFor(request, *fi->index);
      p.pool = pool;
      const SealedSegment* s = seg.get();
      p.skip_if = [&, s](uint32_t member) {
        const uint32_t row = s->member_rows[member];
        return row == kDeadMember || !eligible(row);
      };
      plan.index = "ivf_pq";
      plan.nprobe = static_cast<int64_t>(std::min(p.nprobe, fi->index->nlist()));
      ++plan.indexed_segments;
      std::vector<std::vector<kernels::Scored>> res = fi->index->Search(t.query, 1, p);
      for (const kernels::Scored& c : res[0]) {
        field_rows.push_back(s->member_rows[static_cast<size_t>(c.id)]);
      }
    }
    if (plan.index.empty()) plan.index = "flat";
    for (const kernels::Scored& c : ScanUncovered(snap, t, filter, refine, pool, &plan.scanned_rows)) {
      field_rows.push_back(static_cast<uint32_t>(c.id));
    }
    // A row is a member of at most one segment and the uncovered scan skips covered rows, so
    // duplicates should not occur; deduplicating costs little and does not rely on it.
    std::sort(field_rows.begin(), field_rows.end());
    field_rows.erase(std::unique(field_rows.begin(), field_rows.end()), field_rows.end());
    plan.candidates = static_cast<int64_t>(field_rows.size());
    out.rows.insert(out.rows.end(), field_rows.begin(), field_rows.end());
    out.plan.push_back(std::move(plan));
  }
  std::sort(out.rows.begin(), out.rows.end());
  out.rows.erase(std::unique(out.rows.begin(), out.rows.end()), out.rows.end());
  return std::optional<CandidateUnion>(std::move(out));
}

}  // namespace rosetta::engine
