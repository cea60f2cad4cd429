// IVF-PQ: an inverted-file index with product-quantized residuals, the CPU kernel layer behind
// the engine's `"index": {"type": "ivf_pq"}` fields.
//
// Structure. A coarse quantizer (k-means, `nlist` centroids c_l) partitions the vectors into
// inverted lists; each vector x in list l is stored as a caller-supplied uint32 id plus the PQ code
// of its residual r = x - c_l: r is cut into `m` sub-vectors of dsub = d / m dimensions, and each
// sub-vector is replaced by the index of its nearest centroid in that sub-space's codebook of
// ksub = 2^nbits centroids. The reconstruction of x is c_l + [y_1(code_1), ..., y_m(code_m)].
//
// Search (asymmetric distance computation, ADC). A query q probes the `nprobe` lists whose
// centroids score best for the metric (L2: smallest ||q - c||^2; inner product: largest <q, c>),
// and scores every stored vector of those lists against its reconstruction with lookup tables:
//   * L2, 8-bit: once per query, T[j][i] = -2<q_j, y_j(i)>; distance = ||q - c_l||^2 + e_v +
//     sum_j T[j][code_j], with e_v = ||y||^2 + 2<c_l, y> stored per vector (4 bytes).
//   * L2, 4-bit: per probed list, T[j][i] = ||(q - c_l)_j - y_j(i)||^2 (residual tables).
//   * Inner product: once per query, T[j][i] = <q_j, y_j(i)>; score = <q, c_l> + sum_j T[j][code_j].
// nbits = 8 sums float tables (an unrolled scalar loop on every level: measured faster than
// AVX2 / AVX-512 gathers on Zen 4, see bench/ivf_pq_bench.cc). nbits = 4 uses the fast-scan
// layout: codes of 32 vectors are interleaved per pair of sub-quantizers so that one in-register
// byte shuffle (pshufb / vpshufb) looks up 32 (AVX2) or 64 (AVX-512BW) table entries at once,
// with the tables quantised to uint8 and the sums accumulated exactly in uint16; only candidates
// whose sum can still enter the top-k leave the registers.
//
// Scores follow FlatSearch (kernels/flat_search.h): inner product = higher is better; L2 score =
// -distance. They are approximations of the exact scores (the engine re-ranks the best `refine`
// candidates with the raw vectors). Results are ordered best first, exact ties by smaller id.
//
// Metrics: FlatMetric::kInnerProduct (also used for cosine on normalised vectors) and kL2. Both
// train the coarse quantizer and assign vectors to lists by L2 (smallest residual, hence the most
// accurate codes); only list probing and scoring follow the metric.
//
// SIMD: the level is resolved like the other kernels (ActiveSimdLevel(), ROSETTA_SIMD caps it);
// searches may pin a level (IvfPqSearchParams::simd_level) for tests and benchmarks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernels/flat_search.h"
#include "kernels/kmeans.h"
#include "kernels/simd.h"
#include "kernels/topk.h"

namespace rosetta::kernels {

class ThreadPool;

// ----------------------------------------------------------------------------------------------
// Defaults the engine uses when a schema or a query leaves numbers out. Measured (recall@10 after
// exact re-ranking of the `refine` best PQ candidates, against exact search; single thread;
// tests/kernels/ivf_pq_recall_test.cc asserts the headline figures):
//
//   data (n, d, metric)              nlist  m    nbits  nprobe  refine  recall@10
//   SIFT10K (10000, 128, L2)         400    32   8      50      40      1.000   (nprobe 25: 0.977)
//   SIFT10K                          400    32   4      50      100     0.998   (refine 40: 0.975)
//   SIFT10K                          400    16   8      50      40      0.989
//   fashion-mnist 1k (1000, 784, L2) 126    196  8      28      40      1.000   (nprobe 8: 0.982)
//   fashion-mnist 1k                 126    196  4      28      100     1.000
//   flickr8k text->image (1000, 512, IP, cross-modal queries)
//                                    126    128  8      28      40      0.964
//   flickr8k text->image             126    128  4      28      100     0.964
//   synthetic clustered (20000, 64, L2 and IP; 100 clusters of intrinsic dimension 16)
//                                    566    16   8 / 4  59      40/100  >= 0.999
//
// Recall is bounded by the probed lists far more than by the codes: without enough probes no
// refine helps (SIFT10K, nprobe 16: 0.946 whatever the refine). Cross-modal queries (text against
// image clusters) need the most probes, hence a generous rule.
// ----------------------------------------------------------------------------------------------

// nlist for n vectors: round(4 * sqrt(n)), clamped to [1, min(n, 65536)]. (n = 10k -> 400,
// n = 1M -> 4000.) Every list then averages sqrt(n) / 4 vectors.
size_t DefaultNlist(size_t n);

// m (sub-quantizers) for dimension d: the divisor of d closest to d / 4 (ties: the larger), so
// sub-vectors have about 4 dimensions (d = 128 -> 32, 768 -> 192, 512 -> 128, 784 -> 196,
// 300 -> 75). 8-bit codes then take d / 4 bytes per vector (16x smaller than float32), 4-bit
// codes d / 8. For prime d this degenerates to m = 1 (one sub-quantizer over all of d): valid but
// coarse; the schema should then name m.
size_t DefaultM(size_t d);

// nprobe for nlist lists: round(2.5 * sqrt(nlist)), clamped to [1, nlist] (400 -> 50,
// 126 -> 28, 4000 -> 158: about 12%, 22% and 4% of the lists). Grows slower than nlist because
// larger collections have proportionally more lists near each query's neighbourhood boundary.
size_t DefaultNprobe(size_t nlist);

// How many PQ candidates to re-rank exactly for a final top-k: 8-bit max(4k, 40); 4-bit (coarser
// codes) max(10k, 100).
size_t DefaultRefine(size_t k, size_t nbits = 8);

// ----------------------------------------------------------------------------------------------
// Product quantizer.
// ----------------------------------------------------------------------------------------------

class ProductQuantizer {
 public:
  ProductQuantizer() = default;

  // Trains m codebooks of 2^nbits centroids on the n row-major d-dimensional vectors x, one
  // KMeans per sub-space (params.k is overridden by 2^nbits and params.seed is offset per
  // sub-space; the other fields apply to every sub-space). The sub-spaces are trained in parallel
  // on `pool`; the result does not depend on the pool.
  // Errors (InvalidArgument): d == 0, m == 0, d not divisible by m, nbits not 4 or 8,
  // n < 2^nbits (each codebook needs at least one training vector per centroid), non-finite data.
  static absl::StatusOr<ProductQuantizer> Train(const float* x, size_t n, size_t d, size_t m,
                                                size_t nbits, const KMeansParams& params,
                                                ThreadPool* pool);

  // A quantizer from given codebooks (m x ksub x dsub floats, sub-space major), e.g. when loading.
  // Errors as Train, plus a codebook size mismatch.
  static absl::StatusOr<ProductQuantizer> FromCodebooks(size_t d, size_t m, size_t nbits,
                                                        std::vector<float> codebooks);

  size_t d() const { return d_; }
  size_t m() const { return m_; }
  size_t nbits() const { return nbits_; }
  size_t ksub() const { return size_t{1} << nbits_; }
  size_t dsub() const { return m_ == 0 ? 0 : d_ / m_; }
  // m x ksub x dsub floats: centroid i of sub-space j is codebooks()[(j * ksub + i) * dsub ...].
  const std::vector<float>& codebooks() const { return codebooks_; }

  // Codes in this API are unpacked: m bytes per vector, byte j = centroid index in sub-space j
  // (< ksub). (The IVF lists store 4-bit codes packed; see IvfPqIndex.)
  // Encodes n row-major vectors into n x m bytes: each sub-vector's nearest centroid (squared L2,
  // ties to the smaller index). Parallel over vectors on `pool` (may be nullptr).
  void Encode(const float* x, size_t n, uint8_t* codes, ThreadPool* pool = nullptr,
              std::optional<SimdLevel> level = std::nullopt) const;
  // Decodes n codes (n x m bytes) into n x d floats (the concatenated centroids).
  void Decode(const uint8_t* codes, size_t n, float* x) const;

  // Lookup tables, m x ksub floats (row j = sub-space j):
  //   L2:  table[j * ksub + i] = ||q_j - y_j(i)||^2   (distance to a code = sum of its entries)
  //   IP:  table[j * ksub + i] = <q_j, y_j(i)>         (inner product = sum of its entries)
  // q_j is the j-th sub-vector of the d-dimensional q.
  void ComputeL2Table(const float* q, float* table,
                      std::optional<SimdLevel> level = std::nullopt) const;
  void ComputeIpTable(const float* q, float* table,
                      std::optional<SimdLevel> level = std::nullopt) const;

  // Bytes held (codebooks and their transposed copy used by the table kernels).
  size_t MemoryBytes() const;

 private:
  void BuildTransposed();

  size_t d_ = 0, m_ = 0, nbits_ = 0;
  std::vector<float> codebooks_;    // m x ksub x dsub
  std::vector<float> transposed_;   // m x dsub x ksub (centroid index fastest: SIMD over centroids)
};

// ----------------------------------------------------------------------------------------------
// IVF-PQ index.
// ----------------------------------------------------------------------------------------------

struct IvfPqParams {
  size_t nlist = 0;   // Coarse lists; 0 = DefaultNlist(n) of the training set. At most 65536.
  size_t m = 0;       // Sub-quantizers; 0 = DefaultM(d). d must be divisible by m.
  size_t nbits = 8;   // 8 (float-table ADC) or 4 (fast-scan layout).
  FlatMetric metric = FlatMetric::kL2;
  uint64_t seed = 1234;  // Seeds all sampling and k-means initialisation.
  // Cap on the vectors used to train (a seeded uniform sample of the input; 0 = no cap). Within
  // it, the coarse k-means samples at most 256 points per list and each PQ codebook at most
  // 256 * 2^nbits residuals (KMeansParams' default), as FAISS does.
  size_t max_training_points = 0;
  size_t kmeans_iterations = 25;  // Lloyd iterations for the coarse quantizer and the codebooks.
};

struct IvfPqSearchParams {
  // Results per query (e.g. the engine's `refine` candidates when it re-ranks exactly).
  size_t k = 10;
  // Lists probed per query; 0 = DefaultNprobe(nlist). Values above nlist probe every list.
  size_t nprobe = 0;
  // Optional: bit id of skip[id / 64] set = the vector with caller id `id` is excluded. Ids
  // beyond the bitmap (id / 64 >= skip.size()) are not excluded.
  std::span<const uint64_t> skip = {};
  // Optional: returns true for caller ids to exclude. Called only for candidates that would
  // otherwise enter the current top-k (so at most a few times per result slot and list), possibly
  // from several threads at once.
  std::function<bool(uint32_t id)> skip_if = nullptr;
  // Worker pool; nullptr = the calling thread only.
  ThreadPool* pool = nullptr;
  // SIMD level of the scan kernels; nullopt = ActiveSimdLevel(). Clamped to what the CPU supports.
  std::optional<SimdLevel> simd_level = std::nullopt;
};

class IvfPqIndex {
 public:
  // Format version written by Serialize and the only one Deserialize reads.
  static constexpr uint32_t kFormatVersion = 1;

  IvfPqIndex() = default;

  // Trains the coarse quantizer and the PQ codebooks on n row-major d-dimensional vectors; the
  // returned index is empty (add vectors with Add). Deterministic for a given input, params and
  // SIMD level, whatever the pool. Runs 1 + m KMeans (see KMeansRunCount()).
  // Errors (InvalidArgument, naming the parameter and value): n == 0, d == 0, nbits not 4 or 8,
  // d not divisible by m, nlist > 65536 or > the training vectors, fewer training vectors than
  // 2^nbits (PQ needs one per codebook centroid: use a flat index for tiny sets), non-finite data.
  static absl::StatusOr<IvfPqIndex> Train(const float* x, size_t n, size_t d,
                                          const IvfPqParams& params, ThreadPool* pool);

  // Train on x, then Add all of x with the given ids (ids[i] for row i).
  static absl::StatusOr<IvfPqIndex> Build(const float* x, const uint32_t* ids, size_t n, size_t d,
                                          const IvfPqParams& params, ThreadPool* pool);

  // Encodes n more vectors (row-major, this index's d) and appends them, with their ids, to their
  // lists (nearest centroid by L2) without retraining. Vectors are appended in input order, so the
  // index contents do not depend on the pool. Ids are not checked for uniqueness: the engine owns
  // them (a duplicated id is simply returned twice when both entries score well).
  // Errors: the index is not trained; a non-finite coordinate (nothing is added then).
  // Not thread-safe with concurrent Search/Add/Serialize on the same index.
  absl::Status Add(const float* x, const uint32_t* ids, size_t n, ThreadPool* pool);

  // For each of the nq row-major queries (this index's d), up to params.k candidates, best first
  // (score desc, then id asc), with approximate scores (see the file comment). Fewer when the
  // probed lists hold fewer non-skipped vectors. Empty results when k == 0 or the index is empty.
  // Thread-safe (const): any number of concurrent Searches. Deterministic: results do not depend
  // on the pool or its thread count (they depend on the SIMD level only through float rounding of
  // the tables; 4-bit fast-scan sums of a given quantised table are identical on every level). A
  // query's results do not depend on the other queries of its batch, except for which list is
  // probed when two centroids tie within float rounding at the nprobe-th place.
  // Memory: per query and thread, nprobe list indices, one table (m x 2^nbits floats) and up to
  // 2k candidates; per coarse step, 16 x nlist floats.
  std::vector<std::vector<Scored>> Search(const float* queries, size_t nq,
                                          const IvfPqSearchParams& params) const;

  // The index as bytes: magic "RSIVFPQ1", format version, parameters, quantizers and lists,
  // closed by a 64-bit checksum of everything before it. Little-endian. Deterministic.
  std::string Serialize() const;

  // Reads Serialize's output. Errors (DataLoss for damaged input, with what is wrong and at which
  // byte offset; Unimplemented for another format version): too short, bad magic, unknown
  // version, checksum mismatch, inconsistent sizes or values. Never crashes or over-allocates on
  // garbage: every size is checked against the bytes present before anything is allocated.
  static absl::StatusOr<IvfPqIndex> Deserialize(std::string_view bytes);

  // The checksum Serialize appends: a 64-bit non-cryptographic hash of `bytes` (exposed for tests
  // that forge consistent-looking damaged input, and for tools).
  static uint64_t Checksum(std::string_view bytes);

  bool trained() const { return d_ != 0; }
  size_t d() const { return d_; }
  size_t size() const { return ntotal_; }  // vectors stored
  size_t nlist() const { return nlist_; }
  size_t m() const { return pq_.m(); }
  size_t nbits() const { return pq_.nbits(); }
  FlatMetric metric() const { return metric_; }
  const ProductQuantizer& pq() const { return pq_; }
  const std::vector<float>& centroids() const { return centroids_; }  // nlist x d

  // Bytes of one stored code: m (8-bit) or ceil(m / 2) (4-bit, packed).
  size_t CodeBytesPerVector() const;
  // Bytes held by the index: codes, ids and (8-bit L2) the per-vector terms, by allocated
  // capacity; centroids and their norms; codebooks (twice: natural and transposed); per-list
  // bookkeeping. Per vector: code bytes + 4 (id) [+ 4 (8-bit L2)] + fast-scan block padding
  // (< 32 codes per list) + the fixed parts divided by size().
  size_t MemoryBytes() const;
  // MemoryBytes() / size() (0 when empty): what `describe` shows.
  double BytesPerVector() const;

  // Inspection (tests, debugging): list sizes, ids, and the reconstruction (centroid + decoded
  // residual) of entry i of list l into out[0..d).
  size_t list_size(size_t l) const { return lists_[l].ids.size(); }
  std::span<const uint32_t> list_ids(size_t l) const { return lists_[l].ids; }
  void Reconstruct(size_t l, size_t i, float* out) const;
  // The unpacked code (m bytes) of entry i of list l.
  void GetCode(size_t l, size_t i, uint8_t* code) const;

 private:
  struct List {
    std::vector<uint32_t> ids;
    // nbits 8: size x m bytes, row-major. nbits 4: blocks of 32 vectors in the fast-scan layout
    // (ceil(size / 32) x (m_padded / 2) x 32 bytes; m_padded = m rounded up to even).
    std::vector<uint8_t> codes;
    // nbits 8 with L2 only: per vector ||y||^2 + 2<c, y> (y = decoded residual, c = the list's
    // centroid), so that L2 scans need one table per query rather than one per probed list.
    // Derived from the codes (recomputed on load, never serialised).
    std::vector<float> terms;
  };

  void AppendCode(List& list, const uint8_t* code);
  float ComputeTerm(size_t l, const uint8_t* code) const;
  // The score of list l's centroid for query q: IP <q, c>; L2 -||q - c||^2.
  float ProbeScore(const KernelTable& kt, const float* q, size_t l) const;
  bool UsesTerms() const;
  size_t FastScanPairs() const { return (pq_.m() + 1) / 2; }

  size_t d_ = 0;
  size_t nlist_ = 0;
  size_t ntotal_ = 0;
  FlatMetric metric_ = FlatMetric::kL2;
  uint64_t seed_ = 0;
  std::vector<float> centroids_;         // nlist x d
  std::vector<float> centroid_sqnorms_;  // nlist (derived, not serialised)
  ProductQuantizer pq_;
  std::vector<List> lists_;
};

}  // namespace rosetta::kernels
