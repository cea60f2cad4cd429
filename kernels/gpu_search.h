// Exact batched top-k search on a CUDA GPU over a device-resident base matrix (issue 6, kernels 1
// and 2). Usable from any code: this header includes no CUDA header, and the library links whether
// or not the build compiled the CUDA kernels (kernels/gpu_search_cuda.cc with kernels/cuda/*.cu
// when nvcc was found; kernels/gpu_search_nocuda.cc otherwise, whose functions all return
// Unavailable).
//
// Scores follow FlatSearch (kernels/flat_search.h): kInnerProduct score = <q, b> (the cosine for
// normalised vectors); kL2 score = -||q - b||^2, computed as 2<q,b> - ||b||^2 - ||q||^2 with the
// base norms computed once at upload, clamped to <= 0.
//
// Storage and arithmetic:
//   - GpuStorage::kFloat32: base and queries in fp32, products and sums in fp32 (no TF32). Scores
//     differ from FlatSearch's only by the order of the fp32 additions.
//   - GpuStorage::kFloat16: the base is rounded to fp16 at upload and every query is rounded to
//     fp16 on the device (round to nearest even; GpuRoundToHalf gives the same values on the
//     host), products and sums in fp32 (tensor cores with fp32 accumulation). The scores are those
//     of FlatSearch run on the fp16-rounded base and queries, up to the order of the additions.
//     L2 norms are those of the rounded vectors.
//
// Result: per query, min(k, non-excluded base rows) entries, best first, ids being base row
// indices. Selection is exact over the scores as the device computed them: the k best under
// (score descending, id ascending), so equal computed scores are always ordered by id and the
// result is deterministic for a given path, batch tiling and device. Across paths (fused vs tiled),
// tile sizes or devices the computed scores can differ in the last bits (different summation
// order), so near-ties may order differently there; with exactly representable sums (e.g. small
// integer data) every path returns exactly FlatSearch's result. NaN scores are never returned.
//
// Two execution paths (GpuSearchParams::path):
//   - fused (batches of at most fused_max_batch queries, default 16: the memory-bound regime): one
//     kernel streams the base once, each block scoring a contiguous range of rows for all queries
//     (tensor-core mma for fp16, CUDA cores for fp32) and k-selecting them in shared memory; the
//     blocks' candidates are merged by a second kernel. No score matrix is written.
//   - tiled (larger batches): cuBLAS GEMM over tiles of (up to 2048) queries x base rows into a
//     bounded scratch, a k-selection kernel per tile that updates running per-(query, segment)
//     candidate queues, and a final merge. The full nq x nb score matrix is never materialised.
//     Two tiles alternate on two streams so that a tile's selection may overlap the next tile's
//     GEMM; cuBLAS's GEMM kernels on an H100 occupy every multiprocessor, so in practice they
//     mostly run back to back (see bench/results/2026-11-25-gpu-h100).
//   kAuto takes the fused path when nq <= fused_max_batch and all nq queries' selection state
//   fits one block's shared memory: per query (k' + max(k', 256)) x 8 bytes, plus a score tile of
//   up to 16 KiB (e.g. 16 queries at k = 10 need 53 KiB; at k = 1024 an H100 fits 13 queries per
//   pass), else the tiled path.
//
// k is bucketed: the device keeps queues of k' = max(32, next power of two >= k) entries (buckets
// 32, 64, ..., 1024, sized at run time in shared memory); k must be in [1, 1024].
//
// Threading: a GpuMatrix is immutable after Upload. GpuFlatSearch may be called concurrently from
// any number of threads on the same matrix: each call takes a search context (two CUDA streams, a
// cuBLAS handle, scratch buffers) from the matrix's pool, creating one when all are in use, and
// returns it afterwards, so concurrent calls run on separate streams. Destroying the matrix while
// a search on it is running is not allowed. Calls block the calling thread until the results are
// on the host. The calling thread's current CUDA device is restored on return.
//
// Memory: the matrix holds rows x round_up(d, 32 (fp16) / 16 (fp32)) elements (rows are zero-padded
// to 64 bytes) plus 4 bytes per row of norms; Upload temporarily uses up to 64 MiB more for
// staging. Each search context keeps its scratch between calls (grown on demand, freed with the
// matrix): the packed queries (nq x padded d x 6 bytes), the skip bitmap (nb / 8 bytes), per-query
// queues (nq x segments x k' x 8 bytes: segments <= 64 on the tiled path, one per resident block
// (1-2 per multiprocessor) on the fused path), a merge scratch of about sqrt(segments) x the
// queues, and on the tiled path two score tiles of scratch_bytes / 2 each (default 256 MiB in
// all). Out of device memory is reported as ResourceExhausted; the matrix and
// other contexts stay usable.
//
// Errors: every CUDA / cuBLAS failure becomes a Status (kInternal, naming the call and CUDA's
// message; a sticky device fault makes later calls fail too); nothing aborts or throws.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernels/flat_search.h"
#include "kernels/topk.h"

namespace rosetta::kernels {

enum class GpuStorage { kFloat32, kFloat16 };

enum class GpuPath {
  kAuto,   // fused for small batches (see the top of this file), tiled otherwise.
  kFused,  // force the fused pass (batches larger than fit one pass run as several passes).
  kTiled,  // force the cuBLAS-tiled path.
};

inline constexpr size_t kGpuMaxK = 1024;
inline constexpr size_t kGpuDefaultFusedMaxBatch = 16;
inline constexpr size_t kGpuDefaultScratchBytes = size_t{256} << 20;

struct GpuMatrixOptions {
  GpuStorage storage = GpuStorage::kFloat32;
  // CUDA device ordinal.
  int device = 0;
};

struct GpuSearchParams;

// A base matrix resident in device memory. Create with Upload; movable only through the
// unique_ptr. See the top of this file for threading and memory.
class GpuMatrix {
 public:
  // Copies n row-major vectors of dimension d (n x d floats at `vectors`) to the device, stored
  // as options.storage. n may be 0 (searches then return empty lists); d must be >= 1; n must be
  // below 2^31 - 1 (ids are int32 on the device). Errors: InvalidArgument (bad sizes, null
  // vectors with n > 0, bad device ordinal), Unavailable (no CUDA build or no usable device),
  // ResourceExhausted (device memory), Internal (other CUDA failures). Reads `vectors` only after
  // the device allocation succeeded.
  static absl::StatusOr<std::unique_ptr<GpuMatrix>> Upload(const float* vectors, size_t n,
                                                           size_t d,
                                                           const GpuMatrixOptions& options = {});
  ~GpuMatrix();
  GpuMatrix(const GpuMatrix&) = delete;
  GpuMatrix& operator=(const GpuMatrix&) = delete;

  size_t rows() const;
  size_t dim() const;
  GpuStorage storage() const;
  int device() const;
  // Device bytes held by the matrix itself (padded rows and norms), excluding search contexts.
  size_t device_bytes() const;

  struct Impl;

 private:
  friend absl::StatusOr<std::vector<std::vector<Scored>>> GpuFlatSearch(
      const GpuMatrix& base, const float* queries, size_t nq, size_t d,
      const GpuSearchParams& params);
  friend absl::StatusOr<double> GpuTimeGemmOnly(const GpuMatrix& base, size_t nq, int reps);
  explicit GpuMatrix(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// What one search did (optional output, GpuSearchParams::stats).
struct GpuSearchStats {
  GpuPath path = GpuPath::kAuto;  // kFused or kTiled: the path taken (kAuto: none ran, empty)
  // Device time from the query upload to the result being ready for download (CUDA events on the
  // search's stream; excludes the download, the host's conversion and context acquisition).
  double device_ms = 0;
  size_t passes = 0;  // fused: passes over the base (query groups); tiled: query blocks
  size_t tiles = 0;   // tiled: GEMM tiles in all (0 on the fused path)
};

struct GpuSearchParams {
  // Number of results per query: 1..kGpuMaxK.
  size_t k = 10;
  FlatMetric metric = FlatMetric::kInnerProduct;
  // Optional: bit i of skip[i / 64] set = base row i is excluded (FlatSearchParams::skip's
  // convention). Rows beyond the bitmap are not excluded; words beyond the rows are ignored.
  std::span<const uint64_t> skip = {};
  GpuPath path = GpuPath::kAuto;
  // kAuto: batches of at most this many queries take the fused path (when their selection state
  // fits shared memory).
  size_t fused_max_batch = kGpuDefaultFusedMaxBatch;
  // Tiled path: device bytes for the two score tiles together (each query block x base tile of
  // fp32 scores takes half). 0 = kGpuDefaultScratchBytes. At least 2 x 128 x 4 bytes are used.
  size_t scratch_bytes = 0;
  // Tiled path, for tests: base rows per tile (rounded up to a multiple of 128); 0 = derived from
  // scratch_bytes.
  size_t tile_rows = 0;
  // Optional: filled when the search succeeds (adds two event records to the search).
  GpuSearchStats* stats = nullptr;
};

// For each of the nq queries (row-major, nq x d floats), the k best rows of `base` (see the top of
// this file for scores, ties and paths). nq may be 0. Errors: InvalidArgument (k outside
// [1, kGpuMaxK], d != base.dim(), null queries with nq > 0, nq too large for int32 indexing),
// ResourceExhausted (device memory for the scratch), Internal (CUDA / cuBLAS failures).
absl::StatusOr<std::vector<std::vector<Scored>>> GpuFlatSearch(const GpuMatrix& base,
                                                               const float* queries, size_t nq,
                                                               size_t d,
                                                               const GpuSearchParams& params);

// The value x takes in fp16 storage (round to nearest even; the device's conversion), as a float.
// Available in every build.
float GpuRoundToHalf(float x);

struct GpuDeviceInfo {
  int device = 0;
  std::string name;
  int compute_major = 0;
  int compute_minor = 0;
  int multiprocessors = 0;
  size_t total_bytes = 0;
  size_t free_bytes = 0;
  size_t shared_bytes_per_block = 0;  // opt-in maximum per block
  size_t l2_bytes = 0;
  int driver_version = 0;   // e.g. 13000 for CUDA 13.0
  int runtime_version = 0;
};

// Properties and current free memory of a device. Unavailable without CUDA or device;
// InvalidArgument for a bad ordinal.
absl::StatusOr<GpuDeviceInfo> GetGpuDeviceInfo(int device = 0);

// --- Measurements for benchmarks (bench/gpu_bench.cc); they allocate their own buffers. ---

// Device-to-device cudaMemcpy of `bytes` between two fresh buffers: the median over `reps` timed
// copies (after one warm-up), in seconds. Bandwidth = 2 x bytes / time (bytes read + written).
absl::StatusOr<double> GpuTimeDeviceCopy(int device, size_t bytes, int reps);

// One cuBLAS GEMM of the whole base (rows x padded d, as stored) against nq device-resident random
// queries of the same storage type, fp32 output (rows x nq, written to device memory), fp32
// accumulation: the arithmetic floor of the tiled path. The median over `reps` timed GEMMs (after
// one warm-up), in seconds. ResourceExhausted when the rows x nq output does not fit.
absl::StatusOr<double> GpuTimeGemmOnly(const GpuMatrix& base, size_t nq, int reps);

}  // namespace rosetta::kernels
