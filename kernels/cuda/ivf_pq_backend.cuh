// The interface between the public GPU IVF-PQ API (kernels/gpu_ivf_pq.h, implemented in
// kernels/gpu_ivf_pq_cuda.cc) and its CUDA code (kernels/cuda/ivf_pq.cu). Despite the suffix this
// header is plain C++17 with no CUDA and no Abseil header (like gpu_backend.h): the C++20 side
// includes it too. Arguments are validated by the caller; these functions assume valid sizes.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/gpu_backend.h"
#include "kernels/cuda/select_network.h"

namespace rosetta::kernels::gpu {

struct IvfPqDeviceIndex;  // defined in kernels/cuda/ivf_pq.cu

// An IVF-PQ index flattened on the host, ready to copy (all pointers host memory).
struct IvfPqHostData {
  size_t d = 0, nlist = 0, m = 0, ksub = 0;  // ksub = 2^nbits (256 or 16)
  size_t n = 0;                               // stored vectors
  bool l2 = true;                             // false: inner product
  const float* centroids = nullptr;           // nlist x d
  const float* codebooks = nullptr;           // m x ksub x dsub (ProductQuantizer layout)
  const uint64_t* list_offsets = nullptr;     // nlist + 1 (CSR): list l = [off[l], off[l + 1])
  const uint8_t* codes = nullptr;             // n x code_stride bytes, list-major, unpacked
  size_t code_stride = 0;                     // bytes per stored code: m rounded up to 16
  const int32_t* ids = nullptr;               // n caller ids, each < kSentinelId
  int32_t max_id = -1;                        // largest id (-1 when n == 0)
  const float* refine_vectors = nullptr;      // optional: refine_rows x d, row = caller id
  size_t refine_rows = 0;
  int device = 0;
};

Error CreateIvfPqDeviceIndex(const IvfPqHostData& data, IvfPqDeviceIndex** out);
void DestroyIvfPqDeviceIndex(IvfPqDeviceIndex* index);
size_t IvfPqDeviceBytes(const IvfPqDeviceIndex* index);

struct IvfPqRequest {
  const float* queries = nullptr;  // nq x d host floats
  size_t nq = 0;
  uint32_t k = 10;             // results per query (1..kMaxQueue)
  uint32_t candidates = 10;    // PQ candidates per query (>= k; == k without refine)
  bool refine = false;         // re-rank `candidates` exactly (needs refine vectors) to k
  uint32_t nprobe = 1;         // 1..nlist; either <= kMaxQueue or == nlist (every list)
  const uint64_t* skip = nullptr;  // host bitmap over caller ids (may be null)
  size_t skip_words = 0;
  size_t scratch_bytes = 256u << 20;  // bounds the per-query-block scratch
  bool want_stats = false;
};

struct IvfPqStats {
  double device_ms = 0;
  size_t query_blocks = 0;
  bool shared_lut = false;  // lookup tables in shared memory (else global memory)
};

// Writes nq x k entries to `out` (host): per query the k best, best first, padded with sentinel
// entries when fewer candidates exist. `stats` (may be null) is filled when request.want_stats.
Error IvfPqSearch(IvfPqDeviceIndex* index, const IvfPqRequest& request, SelEntry* out,
                  IvfPqStats* stats);

}  // namespace rosetta::kernels::gpu
