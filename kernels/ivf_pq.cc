// IVF-PQ index: training, adding, searching (8-bit ADC and 4-bit fast-scan), serialization.
//
// Scoring choices (why):
//  * 8-bit, L2. The residual table ||(q - c)_j - y||^2 of a probed list costs d x 256 x 2 flops to
//    build, as much as scanning a few hundred codes, so building one per probed list would
//    dominate the search. Instead we expand
//        ||q - c - y||^2 = ||q - c||^2 + (||y||^2 + 2<c, y>) - 2<q, y>
//    where ||q - c||^2 comes with the probe (the coarse search computes it), the middle term is
//    one float per stored vector (computed when the vector is added or the index is loaded, never
//    serialised), and -2<q, y> is one table per query: sum_j -2<q_j, y_j(code_j)>. FAISS gets the
//    same effect with a precomputed nlist x m x 256 table; ours costs 4 bytes per vector instead.
//  * 4-bit, L2. Fast-scan needs per-candidate scores that are plain sums of table entries (so
//    that a uint16 threshold can reject candidates in-register), which a per-vector term would
//    break; its tables are 16x smaller, so a residual table per probed list is cheap.
//  * Inner product. <q, c + y> = <q, c> + sum_j <q_j, y_j>: one table per query, the list's
//    <q, c> (the probe's score) added per list.
//
// Fast-scan quantisation: with D[j][i] the distance-like table (L2: the table; IP: minus it, so
// smaller is always better), entries are stored as round((D[j][i] - lo_j) * scale) with one
// scale per table: scale = qmax / max_j (max_i D[j][i] - lo_j), qmax = min(255, floor(65535 / m))
// so that a sum of m entries never exceeds uint16. Then
//     approximate distance = sum_j lo_j + acc / scale,
// with an error of at most m / (2 scale). For IP tables (signed, once per query) lo_j is the row
// minimum. For L2 residual tables (non-negative, one per probed list, so their cost counts) lo_j =
// 0: it skips a horizontal reduction per row and measured no recall loss on SIFT10K (4-bit,
// m = 32, nprobe 25/50: raw recall@10 0.672/0.675 either way; refine 40: 0.964/0.976). The current k-th best score is turned into the largest
// accumulator that can still enter (a binary search over the exact float expression, so the
// in-register test rejects exactly the candidates the top-k would reject), and the kernel reports
// only the accumulators at or below it.
#include "kernels/ivf_pq.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/cpu/pq_kernels.h"
#include "kernels/parallel.h"

static_assert(std::endian::native == std::endian::little,
              "IVF-PQ serialization writes the native byte order, assumed little-endian");

namespace rosetta::kernels {
namespace {

using internal::kFastScanBlock;
using internal::PqKernelTable;

constexpr size_t kMaxNlist = 65536;
constexpr size_t kAddChunk = 16384;        // vectors assigned and encoded per step of Add
constexpr size_t kAdcChunk = 256;          // 8-bit codes scored per kernel call
constexpr size_t kFastScanChunkBlocks = 4; // fast-scan blocks per kernel call (limit refresh)
constexpr size_t kCoarseQueries = 16;      // queries per coarse inner-product call
constexpr char kMagic[8] = {'R', 'S', 'I', 'V', 'F', 'P', 'Q', '1'};

// ---------------------------------------------------------------------------------------------
// Small helpers.
// ---------------------------------------------------------------------------------------------

uint64_t SplitMix(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// `count` distinct indices of [0, n), seeded, sorted ascending.
std::vector<size_t> SampleSorted(size_t n, size_t count, uint64_t seed) {
  std::vector<size_t> idx(n);
  std::iota(idx.begin(), idx.end(), size_t{0});
  uint64_t state = seed;
  for (size_t i = 0; i < count; ++i) {
    const size_t j =
        i + static_cast<size_t>((static_cast<unsigned __int128>(SplitMix(state)) * (n - i)) >> 64);
    std::swap(idx[i], idx[j]);
  }
  idx.resize(count);
  std::sort(idx.begin(), idx.end());
  return idx;
}

absl::Status CheckFinite(const float* x, size_t n, size_t d, const char* what) {
  for (size_t i = 0; i < n * d; ++i) {
    if (!std::isfinite(x[i])) {
      return absl::InvalidArgumentError(absl::StrCat("IVF-PQ: ", what, " ", i / d,
                                                     " has a non-finite value at dimension ",
                                                     i % d));
    }
  }
  return absl::OkStatus();
}

// Fast-scan layout accessors (see kernels/cpu/pq_kernels.h).
uint8_t* FastScanByte(uint8_t* blocks, size_t pairs, size_t v, size_t j) {
  return blocks + (v / kFastScanBlock) * pairs * 32 + (j / 2) * 32 + (j % 2) * 16 + (v % 16);
}
const uint8_t* FastScanByte(const uint8_t* blocks, size_t pairs, size_t v, size_t j) {
  return blocks + (v / kFastScanBlock) * pairs * 32 + (j / 2) * 32 + (j % 2) * 16 + (v % 16);
}

inline bool Skipped(const IvfPqSearchParams& p, uint32_t id) {
  if (!p.skip.empty() && id / 64 < p.skip.size() && ((p.skip[id / 64] >> (id % 64)) & 1u) != 0) {
    return true;
  }
  return p.skip_if && p.skip_if(id);
}

// A quantised fast-scan table (see the file comment). score(acc) = offset - (bias + acc * inv).
struct QuantizedLut {
  std::vector<uint8_t> lut;  // pairs x 32
  float bias = 0;
  float inv_scale = 0;
};

void QuantizeLut(const PqKernelTable& pk, const float* dist_table, size_t m, size_t pairs,
                 bool row_min, QuantizedLut& q) {
  q.lut.resize(pairs * 32);
  if (!pk.quantize_lut(dist_table, m, row_min, q.lut.data(), &q.bias, &q.inv_scale)) {
    // A non-finite query: nothing can be scored; NaN scores are never admitted.
    q.bias = std::numeric_limits<float>::quiet_NaN();
    q.inv_scale = 0;
  }
}

inline float FastScanScore(float offset, const QuantizedLut& q, uint32_t acc) {
  return offset - (q.bias + static_cast<float>(acc) * q.inv_scale);
}

// RanksBefore as an object, so that the standard algorithms inline it.
constexpr auto kRanks = [](const Scored& a, const Scored& b) { return RanksBefore(a, b); };

// Top-k selection by reservoir: candidates at or above the threshold are appended to a buffer of
// 2k; when it fills, nth_element keeps the k best and the threshold becomes the k-th best score.
// O(1) per accepted candidate instead of a heap's O(log k) (scans accept many candidates early
// and, with the coarse 4-bit scores, many ties). Exact: a candidate is dropped only when k others
// rank before it, and the final order is the total order of RanksBefore (score, then id).
class Reservoir {
 public:
  explicit Reservoir(size_t k) : k_(k), capacity_(std::max<size_t>(2 * k, k + 32)) {}

  // Candidates scoring below this cannot enter (+infinity when k == 0).
  float threshold() const { return threshold_; }

  // Precondition: score >= threshold() (so not NaN).
  void Push(float score, int64_t id) {
    if (buffer_.empty()) buffer_.reserve(capacity_);
    buffer_.push_back(Scored{score, id});
    if (buffer_.size() == capacity_) Shrink();
  }

  void Merge(const Reservoir& other) {
    for (const Scored& s : other.buffer_) {
      if (s.score >= threshold_) Push(s.score, s.id);
    }
  }

  std::vector<Scored> TakeSorted() {
    std::sort(buffer_.begin(), buffer_.end(), kRanks);
    if (buffer_.size() > k_) buffer_.resize(k_);
    return std::move(buffer_);
  }

 private:
  void Shrink() {
    std::nth_element(buffer_.begin(), buffer_.begin() + (k_ - 1), buffer_.end(), kRanks);
    buffer_.resize(k_);
    threshold_ = buffer_[k_ - 1].score;
  }

  size_t k_;
  size_t capacity_;
  float threshold_ = k_ == 0 ? std::numeric_limits<float>::infinity()
                             : -std::numeric_limits<float>::infinity();
  std::vector<Scored> buffer_;
};

// The largest accumulator whose score is >= threshold, or -1 when even acc = 0 scores below it.
// score(acc) is non-increasing in acc (every float operation involved is monotone), so the
// analytic estimate (threshold solved for acc) is corrected by stepping while the exact float
// expression disagrees: the result is exactly the boundary the top-k's own comparison draws.
int32_t AccLimit(float offset, const QuantizedLut& q, float threshold) {
  if (!(FastScanScore(offset, q, 0) >= threshold)) return -1;
  if (FastScanScore(offset, q, 65535) >= threshold) return 65535;
  // Here inv_scale > 0 (else every score would equal score(0)) and threshold is finite.
  const double est = (static_cast<double>(offset) - q.bias - threshold) / q.inv_scale;
  int32_t a = static_cast<int32_t>(std::clamp(std::floor(est), 0.0, 65534.0));
  while (a < 65535 && FastScanScore(offset, q, static_cast<uint32_t>(a) + 1) >= threshold) ++a;
  while (a > 0 && !(FastScanScore(offset, q, static_cast<uint32_t>(a)) >= threshold)) --a;
  return a;
}

// ---------------------------------------------------------------------------------------------
// Checksum: a 64-bit non-cryptographic hash, 4 independent multiply-rotate lanes over 32-byte
// stripes (fast: ~8 bytes per cycle), then the tail and a final avalanche. Detects accidental
// corruption and truncation; not meant to resist deliberate forgery.
// ---------------------------------------------------------------------------------------------

constexpr uint64_t kP1 = 0x9E3779B185EBCA87ull;
constexpr uint64_t kP2 = 0xC2B2AE3D27D4EB4Full;
constexpr uint64_t kP3 = 0x165667B19E3779F9ull;

inline uint64_t Rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
inline uint64_t Load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
inline uint64_t Lane(uint64_t acc, uint64_t w) { return Rotl(acc + w * kP2, 31) * kP1; }

uint64_t Checksum64(const uint8_t* p, size_t n) {
  uint64_t a = kP1 + kP2 + n, b = kP2 ^ n, c = 0x243F6A8885A308D3ull, e = kP3 - n;
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a = Lane(a, Load64(p + i));
    b = Lane(b, Load64(p + i + 8));
    c = Lane(c, Load64(p + i + 16));
    e = Lane(e, Load64(p + i + 24));
  }
  uint64_t h = Rotl(a, 1) + Rotl(b, 7) + Rotl(c, 12) + Rotl(e, 18);
  for (; i + 8 <= n; i += 8) h = Rotl(h ^ Lane(0, Load64(p + i)), 27) * kP1 + kP3;
  for (; i < n; ++i) h = Rotl(h ^ (p[i] * kP3), 11) * kP1;
  h ^= h >> 33;
  h *= kP2;
  h ^= h >> 29;
  h *= kP3;
  h ^= h >> 32;
  return h;
}

// ---------------------------------------------------------------------------------------------
// Serialization helpers.
// ---------------------------------------------------------------------------------------------

class Writer {
 public:
  void Bytes(const void* p, size_t n) { out_.append(static_cast<const char*>(p), n); }
  void U32(uint32_t v) { Bytes(&v, 4); }
  void U64(uint64_t v) { Bytes(&v, 8); }
  std::string& out() { return out_; }

 private:
  std::string out_;
};

class Reader {
 public:
  Reader(std::string_view in, size_t end) : in_(in), end_(end) {}
  size_t pos() const { return pos_; }
  size_t left() const { return end_ - pos_; }
  absl::Status Take(size_t n, const char* what, const char** out) {
    if (n > left()) {
      return absl::DataLossError(absl::StrCat("IVF-PQ index: truncated at byte offset ", pos_,
                                              ": ", what, " needs ", n, " bytes, ", left(),
                                              " left"));
    }
    *out = in_.data() + pos_;
    pos_ += n;
    return absl::OkStatus();
  }
  absl::Status U32(const char* what, uint32_t* v) {
    const char* p;
    if (absl::Status s = Take(4, what, &p); !s.ok()) return s;
    std::memcpy(v, p, 4);
    return absl::OkStatus();
  }
  absl::Status U64(const char* what, uint64_t* v) {
    const char* p;
    if (absl::Status s = Take(8, what, &p); !s.ok()) return s;
    std::memcpy(v, p, 8);
    return absl::OkStatus();
  }

 private:
  std::string_view in_;
  size_t end_;
  size_t pos_ = 0;
};

#define IVF_RETURN_IF_ERROR(expr)             \
  do {                                        \
    ::absl::Status ivf_status_ = (expr);      \
    if (!ivf_status_.ok()) return ivf_status_; \
  } while (0)

// a * b, or false on overflow.
bool MulOk(size_t a, size_t b, size_t* out) { return !__builtin_mul_overflow(a, b, out); }

}  // namespace

// ---------------------------------------------------------------------------------------------
// Defaults.
// ---------------------------------------------------------------------------------------------

size_t DefaultNlist(size_t n) {
  if (n == 0) return 1;
  const size_t v = static_cast<size_t>(std::llround(4.0 * std::sqrt(static_cast<double>(n))));
  return std::clamp<size_t>(v, 1, std::min(n, kMaxNlist));
}

size_t DefaultM(size_t d) {
  if (d == 0) return 1;
  const double target = static_cast<double>(d) / 4.0;
  size_t best = 1;
  double best_gap = std::numeric_limits<double>::infinity();
  for (size_t m = 1; m <= d; ++m) {
    if (d % m != 0) continue;
    const double gap = std::fabs(static_cast<double>(m) - target);
    if (gap <= best_gap) {  // ascending m: ties go to the larger
      best_gap = gap;
      best = m;
    }
  }
  return best;
}

size_t DefaultNprobe(size_t nlist) {
  if (nlist == 0) return 1;
  const size_t v = static_cast<size_t>(std::llround(2.5 * std::sqrt(static_cast<double>(nlist))));
  return std::clamp<size_t>(v, 1, nlist);
}

size_t DefaultRefine(size_t k, size_t nbits) {
  return nbits == 4 ? std::max<size_t>(10 * k, 100) : std::max<size_t>(4 * k, 40);
}

// ---------------------------------------------------------------------------------------------
// Training and adding.
// ---------------------------------------------------------------------------------------------

absl::StatusOr<IvfPqIndex> IvfPqIndex::Train(const float* x, size_t n, size_t d,
                                             const IvfPqParams& params, ThreadPool* pool) {
  if (n == 0) return absl::InvalidArgumentError("IVF-PQ: no training vectors");
  if (d == 0) return absl::InvalidArgumentError("IVF-PQ: dimension d is 0");
  if (params.nbits != 4 && params.nbits != 8) {
    return absl::InvalidArgumentError(
        absl::StrCat("IVF-PQ: nbits = ", params.nbits, " (supported: 4 or 8)"));
  }
  const size_t m = params.m != 0 ? params.m : DefaultM(d);
  if (d % m != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("IVF-PQ: dimension ", d, " is not divisible by m = ", m));
  }
  // Training sample.
  std::vector<float> sample;
  const float* train = x;
  size_t nt = n;
  if (params.max_training_points != 0 && n > params.max_training_points) {
    nt = params.max_training_points;
    const std::vector<size_t> rows = SampleSorted(n, nt, params.seed ^ 0x7F4A7C15F39CC060ull);
    sample.resize(nt * d);
    for (size_t i = 0; i < nt; ++i) {
      std::memcpy(sample.data() + i * d, x + rows[i] * d, d * sizeof(float));
    }
    train = sample.data();
  }
  IVF_RETURN_IF_ERROR(CheckFinite(train, nt, d, sample.empty() ? "training vector"
                                                                 : "sampled training vector"));
  const size_t nlist = params.nlist != 0 ? params.nlist : DefaultNlist(nt);
  if (nlist > kMaxNlist) {
    return absl::InvalidArgumentError(
        absl::StrCat("IVF-PQ: nlist = ", nlist, " exceeds the maximum of ", kMaxNlist));
  }
  if (nlist > nt) {
    return absl::InvalidArgumentError(absl::StrCat(
        "IVF-PQ: nlist = ", nlist, " exceeds the ", nt, " training vectors"));
  }
  const size_t ksub = size_t{1} << params.nbits;
  if (nt < ksub) {
    return absl::InvalidArgumentError(absl::StrCat(
        "IVF-PQ: ", nt, " training vectors; PQ with nbits = ", params.nbits, " needs at least ",
        ksub, " (use a flat index for so few vectors)"));
  }

  KMeansParams kp;
  kp.k = nlist;
  kp.iterations = params.kmeans_iterations;
  kp.seed = params.seed;
  kp.init = KMeansInit::kRandom;
  kp.max_points_per_centroid = 256;
  absl::StatusOr<KMeansResult> coarse = KMeans(train, nt, d, kp, pool);
  if (!coarse.ok()) {
    return absl::Status(coarse.status().code(),
                        absl::StrCat("IVF-PQ coarse quantizer: ", coarse.status().message()));
  }

  IvfPqIndex index;
  index.d_ = d;
  index.nlist_ = nlist;
  index.metric_ = params.metric;
  index.seed_ = params.seed;
  index.centroids_ = std::move(coarse->centroids);
  index.centroid_sqnorms_.resize(nlist);
  SquaredNorms(index.centroids_.data(), nlist, d, index.centroid_sqnorms_.data());

  // PQ on residuals of (at most) 256 x ksub training vectors: what its k-means would sample.
  const size_t npq = std::min(nt, 256 * ksub);
  std::vector<float> residuals(npq * d);
  {
    const std::vector<size_t> rows =
        npq < nt ? SampleSorted(nt, npq, params.seed ^ 0x2545F4914F6CDD1Dull) : std::vector<size_t>{};
    for (size_t i = 0; i < npq; ++i) {
      const size_t r = rows.empty() ? i : rows[i];
      std::memcpy(residuals.data() + i * d, train + r * d, d * sizeof(float));
    }
    std::vector<uint32_t> assign(npq);
    NearestCentroids(residuals.data(), npq, d, index.centroids_.data(), nlist,
                     index.centroid_sqnorms_.data(), assign.data(), nullptr, pool);
    for (size_t i = 0; i < npq; ++i) {
      const float* c = index.centroids_.data() + assign[i] * d;
      float* r = residuals.data() + i * d;
      for (size_t t = 0; t < d; ++t) r[t] -= c[t];
    }
  }
  KMeansParams pqp = kp;
  pqp.seed = params.seed + 1;
  absl::StatusOr<ProductQuantizer> pq =
      ProductQuantizer::Train(residuals.data(), npq, d, m, params.nbits, pqp, pool);
  if (!pq.ok()) {
    return absl::Status(pq.status().code(),
                        absl::StrCat("IVF-PQ codebooks: ", pq.status().message()));
  }
  index.pq_ = std::move(*pq);
  index.lists_.resize(nlist);
  return index;
}

absl::StatusOr<IvfPqIndex> IvfPqIndex::Build(const float* x, const uint32_t* ids, size_t n,
                                             size_t d, const IvfPqParams& params,
                                             ThreadPool* pool) {
  absl::StatusOr<IvfPqIndex> index = Train(x, n, d, params, pool);
  if (!index.ok()) return index.status();
  IVF_RETURN_IF_ERROR(index->Add(x, ids, n, pool));
  // Drop the growth slack of the lists (Add appends with amortised doubling).
  for (List& list : index->lists_) {
    list.ids.shrink_to_fit();
    list.codes.shrink_to_fit();
    list.terms.shrink_to_fit();
  }
  return index;
}

float IvfPqIndex::ComputeTerm(size_t l, const uint8_t* code) const {
  // ||y||^2 + 2<c, y> for the decoded residual y of `code` in list l.
  const size_t ks = pq_.ksub(), ds = pq_.dsub();
  const float* c = centroids_.data() + l * d_;
  double s = 0;
  for (size_t j = 0; j < pq_.m(); ++j) {
    const float* y = pq_.codebooks().data() + (j * ks + code[j]) * ds;
    for (size_t t = 0; t < ds; ++t) {
      s += static_cast<double>(y[t]) * (y[t] + 2.0 * c[j * ds + t]);
    }
  }
  return static_cast<float>(s);
}

bool IvfPqIndex::UsesTerms() const { return pq_.nbits() == 8 && metric_ == FlatMetric::kL2; }

void IvfPqIndex::AppendCode(List& list, const uint8_t* code) {
  const size_t m = pq_.m();
  const size_t v = list.ids.size();  // position of the new entry (its id is pushed after)
  if (pq_.nbits() == 8) {
    list.codes.insert(list.codes.end(), code, code + m);
    return;
  }
  const size_t pairs = FastScanPairs();
  if (v % kFastScanBlock == 0) list.codes.resize(list.codes.size() + pairs * 32, 0);
  for (size_t j = 0; j < m; ++j) {
    uint8_t* byte = FastScanByte(list.codes.data(), pairs, v, j);
    if ((v % kFastScanBlock) < 16) {
      *byte = static_cast<uint8_t>((*byte & 0xF0) | (code[j] & 0x0F));
    } else {
      *byte = static_cast<uint8_t>((*byte & 0x0F) | ((code[j] & 0x0F) << 4));
    }
  }
}

absl::Status IvfPqIndex::Add(const float* x, const uint32_t* ids, size_t n, ThreadPool* pool) {
  if (!trained()) return absl::FailedPreconditionError("IVF-PQ: Add on an untrained index");
  if (n == 0) return absl::OkStatus();
  IVF_RETURN_IF_ERROR(CheckFinite(x, n, d_, "added vector"));
  const size_t m = pq_.m();
  std::vector<uint32_t> assign;
  std::vector<float> residuals;
  std::vector<uint8_t> codes;
  for (size_t start = 0; start < n; start += kAddChunk) {
    const size_t rows = std::min(kAddChunk, n - start);
    const float* xs = x + start * d_;
    assign.resize(rows);
    NearestCentroids(xs, rows, d_, centroids_.data(), nlist_, centroid_sqnorms_.data(),
                     assign.data(), nullptr, pool);
    residuals.resize(rows * d_);
    for (size_t i = 0; i < rows; ++i) {
      const float* c = centroids_.data() + assign[i] * d_;
      for (size_t t = 0; t < d_; ++t) residuals[i * d_ + t] = xs[i * d_ + t] - c[t];
    }
    codes.resize(rows * m);
    pq_.Encode(residuals.data(), rows, codes.data(), pool);
    for (size_t i = 0; i < rows; ++i) {
      List& list = lists_[assign[i]];
      AppendCode(list, codes.data() + i * m);
      list.ids.push_back(ids[start + i]);
      if (UsesTerms()) list.terms.push_back(ComputeTerm(assign[i], codes.data() + i * m));
    }
  }
  ntotal_ += n;
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// Search.
// ---------------------------------------------------------------------------------------------

float IvfPqIndex::ProbeScore(const KernelTable& kt, const float* q, size_t l) const {
  const float* c = centroids_.data() + l * d_;
  return metric_ == FlatMetric::kInnerProduct ? kt.dot(q, c, d_) : -kt.l2sqr(q, c, d_);
}

std::vector<std::vector<Scored>> IvfPqIndex::Search(const float* queries, size_t nq,
                                                    const IvfPqSearchParams& params) const {
  std::vector<std::vector<Scored>> results(nq);
  if (nq == 0 || params.k == 0 || ntotal_ == 0) return results;
  const SimdLevel level = params.simd_level.has_value() ? *params.simd_level : ActiveSimdLevel();
  const KernelTable& kt = GetKernelTable(level);
  const PqKernelTable& pk = internal::GetPqKernelTable(level);
  const size_t nprobe =
      params.nprobe == 0 ? DefaultNprobe(nlist_) : std::min(params.nprobe, nlist_);

  // Coarse search: the nprobe best lists per query (IP: largest <q, c>; L2: smallest
  // ||q - c||^2, ranked by 2<q, c> - ||c||^2), best first, ties to the smaller list index. All
  // centroid scores of a few queries come from one inner-product call, and the best nprobe are
  // selected with nth_element (linear) rather than a heap. The products are rounded differently
  // for different numbers of queries per call (the kernels' regimes), so the scans recompute each
  // probed list's score for the query alone (ProbeScore): a query's results do not depend on the
  // batch it came in, except for which list is probed when two centroids tie within float
  // rounding at the nprobe-th place.
  std::vector<uint32_t> probes(nq * nprobe);
  {
    const size_t chunks = (nq + kCoarseQueries - 1) / kCoarseQueries;
    auto coarse = [&](size_t c_begin, size_t c_end) {
      std::vector<float> ip(std::min(nq, kCoarseQueries) * nlist_);
      std::vector<Scored> cand(nlist_);
      for (size_t c = c_begin; c < c_end; ++c) {
        const size_t q0 = c * kCoarseQueries;
        const size_t rows = std::min(kCoarseQueries, nq - q0);
        kt.inner_products(queries + q0 * d_, rows, centroids_.data(), nlist_, d_, ip.data(),
                          nlist_);
        for (size_t r = 0; r < rows; ++r) {
          const float* row = ip.data() + r * nlist_;
          for (size_t l = 0; l < nlist_; ++l) {
            float v = metric_ == FlatMetric::kInnerProduct ? row[l]
                                                           : 2.0f * row[l] - centroid_sqnorms_[l];
            // NaN (a non-finite query) would break the ordering the selection relies on.
            if (std::isnan(v)) v = -std::numeric_limits<float>::infinity();
            cand[l] = Scored{v, static_cast<int64_t>(l)};
          }
          if (nprobe < nlist_) {
            std::nth_element(cand.begin(), cand.begin() + (nprobe - 1), cand.end(), kRanks);
          }
          std::sort(cand.begin(), cand.begin() + nprobe, kRanks);
          uint32_t* out = probes.data() + (q0 + r) * nprobe;
          for (size_t p = 0; p < nprobe; ++p) out[p] = static_cast<uint32_t>(cand[p].id);
        }
      }
    };
    if (params.pool != nullptr && params.pool->threads() > 1 && chunks > 1) {
      params.pool->ParallelFor(chunks, 1, coarse);
    } else {
      coarse(0, chunks);
    }
  }

  // Work items: one per query, or per (query, range of probes) when there are few queries, so
  // that a single query still uses the pool. Each item keeps its own top-k; they are merged per
  // query at the end. Selection is exact under a total order, so the split never changes results.
  const size_t threads = params.pool != nullptr ? params.pool->threads() : 1;
  size_t splits = 1;
  if (threads > 1 && nq < 2 * threads) {
    splits = std::min(nprobe, (2 * threads + nq - 1) / nq);
  }
  const size_t items = nq * splits;
  std::vector<Reservoir> tops;
  tops.reserve(items);
  for (size_t i = 0; i < items; ++i) tops.emplace_back(params.k);

  const size_t m = pq_.m();
  const size_t ksub = pq_.ksub();
  const size_t pairs = FastScanPairs();
  const bool ip = metric_ == FlatMetric::kInnerProduct;
  std::atomic<size_t> next_item{0};

  auto participate = [&](size_t, size_t) {
    std::vector<float> table(m * ksub);
    std::vector<float> residual(d_);
    std::vector<float> scores(kAdcChunk);
    std::vector<uint16_t> acc(kFastScanChunkBlocks * kFastScanBlock);
    std::vector<uint32_t> hits(kFastScanChunkBlocks * kFastScanBlock);
    QuantizedLut qlut;
    for (size_t item = next_item.fetch_add(1, std::memory_order_relaxed); item < items;
         item = next_item.fetch_add(1, std::memory_order_relaxed)) {
      const size_t qi = item / splits;
      const size_t part = item % splits;
      const uint32_t* probe = probes.data() + qi * nprobe;
      const size_t p_begin = nprobe * part / splits;
      const size_t p_end = nprobe * (part + 1) / splits;
      if (p_begin == p_end) continue;
      const float* q = queries + qi * d_;
      Reservoir& top = tops[item];
      float threshold = top.threshold();

      if (pq_.nbits() == 8) {
        // One table per query (see the file comment): IP: <q_j, y>; L2: -2 <q_j, y>, computed as
        // <-2 q_j, y>: scaling by a power of two is exact, so this equals scaling the table
        // (m x 2^nbits values) afterwards while touching only d values.
        if (ip) {
          pq_.ComputeIpTable(q, table.data(), level);
        } else {
          for (size_t t = 0; t < d_; ++t) residual[t] = -2.0f * q[t];
          pq_.ComputeIpTable(residual.data(), table.data(), level);
        }
        for (size_t p = p_begin; p < p_end; ++p) {
          const size_t l = probe[p];
          const float probe_score = ProbeScore(kt, q, l);
          const List& list = lists_[l];
          const size_t n = list.ids.size();
          for (size_t v0 = 0; v0 < n; v0 += kAdcChunk) {
            const size_t cnt = std::min(kAdcChunk, n - v0);
            pk.adc_scan8(list.codes.data() + v0 * m, cnt, m, table.data(), scores.data());
            for (size_t i = 0; i < cnt; ++i) {
              const float score = ip ? probe_score + scores[i]
                                     : probe_score - (list.terms[v0 + i] + scores[i]);
              if (!(score >= threshold)) continue;
              const uint32_t id = list.ids[v0 + i];
              if (Skipped(params, id)) continue;
              top.Push(score, id);
              threshold = top.threshold();
            }
          }
        }
        continue;
      }

      // 4-bit fast-scan.
      if (ip) {
        pq_.ComputeIpTable(q, table.data(), level);
        for (float& t : table) t = -t;  // distance-like: smaller is better
        QuantizeLut(pk, table.data(), m, pairs, /*row_min=*/true, qlut);
      }
      for (size_t p = p_begin; p < p_end; ++p) {
        const size_t l = probe[p];
        const List& list = lists_[l];
        const size_t n = list.ids.size();
        if (n == 0) continue;
        float offset = 0;
        if (ip) {
          offset = ProbeScore(kt, q, l);
        } else {
          const float* c = centroids_.data() + l * d_;
          for (size_t t = 0; t < d_; ++t) residual[t] = q[t] - c[t];
          pq_.ComputeL2Table(residual.data(), table.data(), level);
          QuantizeLut(pk, table.data(), m, pairs, /*row_min=*/false, qlut);
        }
        const size_t chunk = kFastScanChunkBlocks * kFastScanBlock;
        for (size_t v0 = 0; v0 < n; v0 += chunk) {
          const int32_t limit = AccLimit(offset, qlut, threshold);
          if (limit < 0) break;  // nothing left in this list can enter the top-k
          const size_t cnt = std::min(chunk, n - v0);
          const size_t nh = pk.fastscan(list.codes.data() + (v0 / kFastScanBlock) * pairs * 32,
                                        cnt, pairs, qlut.lut.data(),
                                        static_cast<uint16_t>(limit), acc.data(), hits.data());
          for (size_t h = 0; h < nh; ++h) {
            const uint32_t v = hits[h];
            const float score = FastScanScore(offset, qlut, acc[v]);
            if (!(score >= threshold)) continue;
            const uint32_t id = list.ids[v0 + v];
            if (Skipped(params, id)) continue;
            top.Push(score, id);
            threshold = top.threshold();
          }
        }
      }
    }
  };
  const size_t participants = std::min(threads, items);
  if (params.pool != nullptr && participants > 1) {
    params.pool->ParallelFor(participants, 1, participate);
  } else {
    participate(0, 1);
  }
  for (size_t qi = 0; qi < nq; ++qi) {
    Reservoir& top = tops[qi * splits];
    for (size_t s = 1; s < splits; ++s) top.Merge(tops[qi * splits + s]);
    results[qi] = top.TakeSorted();
  }
  return results;
}

// ---------------------------------------------------------------------------------------------
// Inspection and memory.
// ---------------------------------------------------------------------------------------------

size_t IvfPqIndex::CodeBytesPerVector() const {
  return pq_.nbits() == 8 ? pq_.m() : (pq_.m() + 1) / 2;
}

size_t IvfPqIndex::MemoryBytes() const {
  size_t bytes = sizeof(*this) + centroids_.capacity() * sizeof(float) +
                 centroid_sqnorms_.capacity() * sizeof(float) + pq_.MemoryBytes() +
                 lists_.capacity() * sizeof(List);
  for (const List& list : lists_) {
    bytes += list.ids.capacity() * sizeof(uint32_t) + list.codes.capacity() +
             list.terms.capacity() * sizeof(float);
  }
  return bytes;
}

double IvfPqIndex::BytesPerVector() const {
  return ntotal_ == 0 ? 0.0 : static_cast<double>(MemoryBytes()) / static_cast<double>(ntotal_);
}

void IvfPqIndex::GetCode(size_t l, size_t i, uint8_t* code) const {
  const List& list = lists_[l];
  const size_t m = pq_.m();
  if (pq_.nbits() == 8) {
    std::memcpy(code, list.codes.data() + i * m, m);
    return;
  }
  const size_t pairs = FastScanPairs();
  for (size_t j = 0; j < m; ++j) {
    const uint8_t byte = *FastScanByte(list.codes.data(), pairs, i, j);
    code[j] = (i % kFastScanBlock) < 16 ? (byte & 0x0F) : (byte >> 4);
  }
}

void IvfPqIndex::Reconstruct(size_t l, size_t i, float* out) const {
  std::vector<uint8_t> code(pq_.m());
  GetCode(l, i, code.data());
  pq_.Decode(code.data(), 1, out);
  const float* c = centroids_.data() + l * d_;
  for (size_t t = 0; t < d_; ++t) out[t] += c[t];
}

// ---------------------------------------------------------------------------------------------
// Serialization.
// Layout (little-endian): magic[8] "RSIVFPQ1", u32 version, u32 metric (0 = inner product,
// 1 = L2), u64 total_bytes, u64 d, nlist, m, nbits, ntotal, seed; f32 centroids[nlist x d];
// f32 codebooks[m x 2^nbits x d/m]; u64 list_size[nlist]; then per list: u32 ids[size] and its
// codes (8-bit: size x m bytes; 4-bit: ceil(size / 32) x ceil(m / 2) x 32 bytes, fast-scan
// layout); u64 checksum of all preceding bytes.
// ---------------------------------------------------------------------------------------------

namespace {
constexpr size_t kHeaderBytes = 8 + 4 + 4 + 8 * 7;  // up to and including seed
}  // namespace

std::string IvfPqIndex::Serialize() const {
  Writer w;
  w.Bytes(kMagic, sizeof(kMagic));
  w.U32(kFormatVersion);
  w.U32(metric_ == FlatMetric::kInnerProduct ? 0 : 1);
  const size_t total_pos = w.out().size();
  w.U64(0);  // total_bytes, patched below
  w.U64(d_);
  w.U64(nlist_);
  w.U64(pq_.m());
  w.U64(pq_.nbits());
  w.U64(ntotal_);
  w.U64(seed_);
  w.Bytes(centroids_.data(), centroids_.size() * sizeof(float));
  w.Bytes(pq_.codebooks().data(), pq_.codebooks().size() * sizeof(float));
  for (const List& list : lists_) w.U64(list.ids.size());
  for (const List& list : lists_) {
    w.Bytes(list.ids.data(), list.ids.size() * sizeof(uint32_t));
    w.Bytes(list.codes.data(), list.codes.size());
  }
  std::string& out = w.out();
  const uint64_t total = out.size() + 8;
  std::memcpy(out.data() + total_pos, &total, 8);
  const uint64_t sum = Checksum64(reinterpret_cast<const uint8_t*>(out.data()), out.size());
  w.U64(sum);
  return std::move(out);
}

uint64_t IvfPqIndex::Checksum(std::string_view bytes) {
  return Checksum64(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

absl::StatusOr<IvfPqIndex> IvfPqIndex::Deserialize(std::string_view bytes) {
  if (bytes.size() < sizeof(kMagic) ||
      std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0) {
    return absl::DataLossError(absl::StrCat(
        "IVF-PQ index: bad magic (expected \"RSIVFPQ1\" at byte 0; ", bytes.size(),
        " bytes given): not an IVF-PQ index"));
  }
  if (bytes.size() < kHeaderBytes + 8) {
    return absl::DataLossError(absl::StrCat("IVF-PQ index: truncated: ", bytes.size(),
                                            " bytes, the header alone needs ", kHeaderBytes + 8));
  }
  uint32_t version;
  std::memcpy(&version, bytes.data() + 8, 4);
  if (version != kFormatVersion) {
    return absl::UnimplementedError(absl::StrCat("IVF-PQ index: format version ", version,
                                                 " is not supported (this build reads version ",
                                                 kFormatVersion, ")"));
  }
  uint64_t total;
  std::memcpy(&total, bytes.data() + 16, 8);
  if (total != bytes.size()) {
    return absl::DataLossError(absl::StrCat("IVF-PQ index: ", bytes.size(),
                                            " bytes given but the header records ", total,
                                            " (truncated or extended)"));
  }
  uint64_t stored_sum;
  std::memcpy(&stored_sum, bytes.data() + bytes.size() - 8, 8);
  const uint64_t sum =
      Checksum64(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size() - 8);
  if (sum != stored_sum) {
    return absl::DataLossError(absl::StrCat(
        "IVF-PQ index: checksum mismatch over bytes [0, ", bytes.size() - 8,
        "): the index is corrupted"));
  }

  // Parse, validating every value and size before allocating.
  Reader r(bytes, bytes.size() - 8);
  const char* p;
  IVF_RETURN_IF_ERROR(r.Take(16, "header", &p));  // magic, version (checked above)
  uint32_t metric;
  std::memcpy(&metric, bytes.data() + 12, 4);
  uint64_t total_again = 0, d = 0, nlist = 0, m = 0, nbits = 0, ntotal = 0, seed = 0;
  IVF_RETURN_IF_ERROR(r.U64("total_bytes", &total_again));
  IVF_RETURN_IF_ERROR(r.U64("d", &d));
  IVF_RETURN_IF_ERROR(r.U64("nlist", &nlist));
  IVF_RETURN_IF_ERROR(r.U64("m", &m));
  IVF_RETURN_IF_ERROR(r.U64("nbits", &nbits));
  IVF_RETURN_IF_ERROR(r.U64("ntotal", &ntotal));
  IVF_RETURN_IF_ERROR(r.U64("seed", &seed));
  auto bad = [](const std::string& what) {
    return absl::DataLossError(absl::StrCat("IVF-PQ index: ", what));
  };
  if (metric > 1) return bad(absl::StrCat("metric code ", metric, " at byte 12 is not 0 or 1"));
  if (d == 0 || d > (uint64_t{1} << 24)) return bad(absl::StrCat("dimension ", d, " at byte 24"));
  if (nbits != 4 && nbits != 8) return bad(absl::StrCat("nbits ", nbits, " at byte 48"));
  if (m == 0 || m > d || d % m != 0) {
    return bad(absl::StrCat("m = ", m, " at byte 40 does not divide the dimension ", d));
  }
  if (nlist == 0 || nlist > kMaxNlist) return bad(absl::StrCat("nlist ", nlist, " at byte 32"));
  if (ntotal > std::numeric_limits<uint32_t>::max() * uint64_t{4}) {
    return bad(absl::StrCat("vector count ", ntotal, " at byte 56"));
  }
  size_t n_centroid_floats, n_codebook_floats;
  if (!MulOk(nlist, d, &n_centroid_floats) ||
      n_centroid_floats > r.left() / sizeof(float)) {
    return bad(absl::StrCat("truncated: centroids (", nlist, " x ", d, " floats) at byte ",
                            r.pos(), " exceed the ", r.left(), " bytes left"));
  }
  IvfPqIndex index;
  index.d_ = d;
  index.nlist_ = nlist;
  index.ntotal_ = ntotal;
  index.metric_ = metric == 0 ? FlatMetric::kInnerProduct : FlatMetric::kL2;
  index.seed_ = seed;
  IVF_RETURN_IF_ERROR(r.Take(n_centroid_floats * sizeof(float), "centroids", &p));
  index.centroids_.resize(n_centroid_floats);
  std::memcpy(index.centroids_.data(), p, n_centroid_floats * sizeof(float));
  for (size_t i = 0; i < n_centroid_floats; ++i) {
    if (!std::isfinite(index.centroids_[i])) {
      return bad(absl::StrCat("centroid ", i / d, " has a non-finite value"));
    }
  }
  n_codebook_floats = (size_t{1} << nbits) * d;
  if (n_codebook_floats > r.left() / sizeof(float)) {
    return bad(absl::StrCat("truncated: codebooks at byte ", r.pos()));
  }
  IVF_RETURN_IF_ERROR(r.Take(n_codebook_floats * sizeof(float), "codebooks", &p));
  std::vector<float> codebooks(n_codebook_floats);
  std::memcpy(codebooks.data(), p, n_codebook_floats * sizeof(float));
  absl::StatusOr<ProductQuantizer> pq = ProductQuantizer::FromCodebooks(d, m, nbits,
                                                                        std::move(codebooks));
  if (!pq.ok()) return bad(std::string(pq.status().message()));
  index.pq_ = std::move(*pq);

  if (nlist > r.left() / 8) return bad(absl::StrCat("truncated: list sizes at byte ", r.pos()));
  std::vector<uint64_t> sizes(nlist);
  uint64_t sum_sizes = 0;
  for (size_t l = 0; l < nlist; ++l) {
    IVF_RETURN_IF_ERROR(r.U64("list size", &sizes[l]));
    if (sizes[l] > ntotal - sum_sizes) {
      return bad(absl::StrCat("list ", l, " size ", sizes[l], " at byte ", r.pos() - 8,
                              " exceeds the recorded vector count ", ntotal));
    }
    sum_sizes += sizes[l];
  }
  if (sum_sizes != ntotal) {
    return bad(absl::StrCat("list sizes sum to ", sum_sizes, ", not the recorded vector count ",
                            ntotal));
  }
  const size_t pairs = (m + 1) / 2;
  index.lists_.resize(nlist);
  for (size_t l = 0; l < nlist; ++l) {
    const size_t n = sizes[l];
    const size_t code_bytes =
        nbits == 8 ? n * m : (n + kFastScanBlock - 1) / kFastScanBlock * pairs * 32;
    // n <= ntotal <= 2^34 and m, pairs * 32 <= 2^24: no overflow in 64 bits.
    if (n > r.left() / 4 || code_bytes > r.left() - n * 4) {
      return bad(absl::StrCat("truncated: list ", l, " (", n, " vectors) at byte ", r.pos(),
                              " needs ", n * 4 + code_bytes, " bytes, ", r.left(), " left"));
    }
    List& list = index.lists_[l];
    IVF_RETURN_IF_ERROR(r.Take(n * 4, "list ids", &p));
    list.ids.resize(n);
    std::memcpy(list.ids.data(), p, n * 4);
    IVF_RETURN_IF_ERROR(r.Take(code_bytes, "list codes", &p));
    list.codes.assign(reinterpret_cast<const uint8_t*>(p),
                      reinterpret_cast<const uint8_t*>(p) + code_bytes);
  }
  if (r.left() != 0) {
    return bad(absl::StrCat(r.left(), " unexpected bytes after the lists at byte ", r.pos()));
  }
  index.centroid_sqnorms_.resize(nlist);
  SquaredNorms(index.centroids_.data(), nlist, d, index.centroid_sqnorms_.data());
  if (index.UsesTerms()) {
    for (size_t l = 0; l < nlist; ++l) {
      List& list = index.lists_[l];
      list.terms.resize(list.ids.size());
      for (size_t i = 0; i < list.ids.size(); ++i) {
        list.terms[i] = index.ComputeTerm(l, list.codes.data() + i * m);
      }
    }
  }
  return index;
}

}  // namespace rosetta::kernels
