// IVF-PQ search on the GPU (kernels/gpu_ivf_pq.h): the device copy of an IvfPqIndex, its search
// contexts, the kernels and the search driver.
//
// Per block of queries (sized so that its scratch fits IvfPqRequest::scratch_bytes):
//   1. coarse scores: one cuBLAS SGEMM of the queries against the centroids (true fp32, no TF32);
//   2. probe selection: one warp per query streams its nlist scores (L2: 2<q,c> - ||c||^2, the
//      order of -||q - c||^2; IP: <q,c>) through a selection queue (select_network.h) and keeps
//      the nprobe best lists (every list, without selection, when nprobe == nlist);
//   3. inner product only: one lookup table per query, T[j][i] = <q_j, y_j(i)> (global memory);
//   4. list scans: persistent blocks walk the (query, probed list) pairs; per pair the block puts
//      the table in shared memory (L2: built there for the residual q - c_l,
//      T[j][i] = ||(q - c_l)_j - y_j(i)||^2; IP: copied from step 3), scores the list's codes in
//      chunks of 512 (one thread per code, 16 code bytes per load) and warp 0 k-selects them with
//      the skip bitmap checked only for entries that pass the threshold. The pair's best
//      `candidates` entries go to global memory;
//   5. merge: LaunchMerge (common_kernels.cu) combines each query's nprobe partial lists;
//   6. optional exact re-ranking: one block per query scores its candidates against the stored
//      raw vectors (one warp per candidate) and selects the final k.
// Tables that do not fit shared memory (e.g. m = 192 with 8-bit codes) stay in global memory
// (L2: one per resident block), read through the caches.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <vector>

#include "kernels/cuda/ivf_pq_backend.cuh"
#include "kernels/cuda/search_internal.cuh"

namespace rosetta::kernels::gpu {

struct IvfContext {
  cudaStream_t stream = nullptr;
  cudaEvent_t timing[2] = {nullptr, nullptr};
  cublasHandle_t cublas = nullptr;
  DeviceBuffer queries;       // nqb x d
  DeviceBuffer coarse;        // nqb x nlist
  DeviceBuffer probes;        // nqb x nprobe
  DeviceBuffer ip_luts;       // IP: nqb x m x ksub
  DeviceBuffer block_luts;    // L2 with global tables: blocks x m x ksub
  DeviceBuffer parts;         // nqb x nprobe x candidates
  DeviceBuffer merged;        // nqb x QueueCapacity(candidates)
  DeviceBuffer final_queues;  // nqb x QueueCapacity(k) (refine only)
  DeviceBuffer merge_scratch;
  DeviceBuffer skip;

  ~IvfContext() {
    if (cublas != nullptr) cublasDestroy(cublas);
    for (cudaEvent_t e : timing) {
      if (e != nullptr) cudaEventDestroy(e);
    }
    if (stream != nullptr) cudaStreamDestroy(stream);
  }
};

struct IvfPqDeviceIndex {
  int device = 0;
  size_t d = 0, nlist = 0, m = 0, ksub = 0, dsub = 0, n = 0, code_stride = 0;
  bool l2 = true;
  int32_t max_id = -1;
  size_t refine_rows = 0;
  DeviceBuffer centroids, centroid_norms, codebooks, offsets, codes, ids, refine_vectors;
  size_t bytes = 0;
  int multiprocessors = 0;
  size_t smem_optin = 0;
  std::mutex mu;
  std::vector<IvfContext*> idle;  // guarded by mu

  ~IvfPqDeviceIndex() {
    DeviceGuard guard;
    guard.Set(device);
    for (IvfContext* c : idle) delete c;
    for (DeviceBuffer* b : {&centroids, &centroid_norms, &codebooks, &offsets, &codes, &ids,
                            &refine_vectors}) {
      b->Free();
    }
  }
};

namespace {

constexpr int kScanThreads = 128;
constexpr uint32_t kListChunk = kScanThreads * 4;  // codes scored per round (4 per thread)
constexpr int kRerankThreads = 128;
constexpr int kRerankWarps = kRerankThreads / 32;

__device__ inline float NaNf() { return __int_as_float(0x7fc00000); }

__device__ inline uint32_t WordOf(const uint4& v, int i) {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

// Rounds a byte count up to 16 (shared-memory sections stay 16-byte aligned).
__host__ __device__ inline size_t Align16(size_t bytes) { return (bytes + 15) / 16 * 16; }

// --- Probe selection ---

__global__ void ProbeSelectKernel(const float* coarse, size_t nqb, size_t nlist,
                                  const float* centroid_norms, uint32_t nprobe, uint32_t queue_cap,
                                  uint32_t cand_cap, int32_t* probes) {
  extern __shared__ __align__(16) unsigned char probe_smem[];
  const uint32_t warp = threadIdx.x / 32;
  const WarpExec ex{threadIdx.x % 32};
  const size_t q = size_t{blockIdx.x} * (blockDim.x / 32) + warp;
  if (q >= nqb) return;  // whole warp; no block barrier below
  SelEntry* smem = reinterpret_cast<SelEntry*>(probe_smem) + size_t{warp} * (queue_cap + cand_cap);
  WarpStream ws = WarpStreamFrom(nullptr, smem, queue_cap, cand_cap, nprobe, ex);
  const float* row = coarse + q * nlist;
  for (size_t e0 = 0; e0 < nlist; e0 += kScanChunk) {
    float score[4];
    int32_t id[4];
    bool valid[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const size_t e = e0 + ex.lane * 4 + i;
      valid[i] = e < nlist;
      float s = NaNf();
      if (valid[i]) {
        const float dot = row[e];
        s = centroid_norms != nullptr ? 2.f * dot - centroid_norms[e] : dot;
      }
      score[i] = s;
      id[i] = valid[i] ? static_cast<int32_t>(e) : kSentinelId;
    }
    WarpOfferChunk(ws, score, id, valid, nullptr, ex);
  }
  WarpFlush(ws, ex);
  __syncwarp();
  for (uint32_t t = ex.lane; t < nprobe; t += 32) probes[q * nprobe + t] = ws.queue[t].id;
}

__global__ void ProbeAllKernel(size_t nqb, size_t nlist, int32_t* probes) {
  for (size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x; i < nqb * nlist;
       i += size_t{gridDim.x} * blockDim.x) {
    probes[i] = static_cast<int32_t>(i % nlist);
  }
}

// --- Inner-product tables: T[q][j][i] = <q_j, y_j(i)> ---

__global__ void IpLutKernel(const float* queries, size_t d, const float* codebooks, size_t m,
                            size_t ksub, size_t dsub, float* luts) {
  const size_t q = blockIdx.x;
  const size_t lut_size = m * ksub;
  for (size_t e = threadIdx.x; e < lut_size; e += blockDim.x) {
    const size_t j = e / ksub;
    const float* y = codebooks + e * dsub;
    const float* x = queries + q * d + j * dsub;
    float acc = 0.f;
    for (size_t t = 0; t < dsub; ++t) acc = fmaf(x[t], y[t], acc);
    luts[q * lut_size + e] = acc;
  }
}

// --- List scans ---

struct ScanParams {
  const float* queries;     // nqb x d
  const float* centroids;   // nlist x d
  const float* codebooks;   // m x ksub x dsub
  const uint64_t* offsets;  // nlist + 1
  const uint8_t* codes;     // n x code_stride
  const int32_t* ids;       // n
  const int32_t* probes;    // nqb x nprobe
  const float* ip_luts;     // IP: nqb x lut_size; null for L2
  float* block_luts;        // L2 with global tables: gridDim.x x lut_size
  const uint64_t* skip;     // device bitmap over ids (covers max_id) or null
  size_t nqb, nprobe, d, m, ksub, dsub, code_stride;
  bool l2;
  uint32_t cand, queue_cap, cand_cap;
  SelEntry* parts;  // nqb x nprobe x cand
};

// Shared memory of the scan kernel: selection state, a chunk of scores and ids, the query (or
// residual), a 4-float reduction slot, and the table when it is shared.
size_t ScanSharedBytes(const ScanParams& p, bool shared_lut) {
  size_t bytes = Align16(size_t{p.queue_cap + p.cand_cap} * sizeof(SelEntry));
  bytes += kListChunk * sizeof(float) + kListChunk * sizeof(int32_t);
  bytes += Align16(p.d * sizeof(float)) + 16;
  if (shared_lut) bytes += p.m * p.ksub * sizeof(float);
  return bytes;
}

template <bool kSharedLut>
__global__ void __launch_bounds__(kScanThreads) ScanKernel(ScanParams p) {
  extern __shared__ __align__(16) unsigned char scan_smem[];
  SelEntry* state = reinterpret_cast<SelEntry*>(scan_smem);
  unsigned char* cursor = scan_smem + Align16(size_t{p.queue_cap + p.cand_cap} * sizeof(SelEntry));
  float* chunk_score = reinterpret_cast<float*>(cursor);
  int32_t* chunk_id = reinterpret_cast<int32_t*>(cursor + kListChunk * sizeof(float));
  cursor += kListChunk * (sizeof(float) + sizeof(int32_t));
  float* residual = reinterpret_cast<float*>(cursor);
  cursor += Align16(p.d * sizeof(float));
  float* reduce = reinterpret_cast<float*>(cursor);
  cursor += 16;
  float* shared_lut = reinterpret_cast<float*>(cursor);

  const int warp = static_cast<int>(threadIdx.x / 32);
  const WarpExec ex{threadIdx.x % 32};
  const size_t lut_size = p.m * p.ksub;
  const size_t pairs = p.nqb * p.nprobe;

  for (size_t pair = blockIdx.x; pair < pairs; pair += gridDim.x) {
    __syncthreads();  // the previous pair's shared data is no longer read
    const size_t q = pair / p.nprobe;
    const int32_t l = p.probes[pair];
    SelEntry* out = p.parts + pair * p.cand;
    if (l == kSentinelId) {  // fewer lists than probes could be chosen (non-finite query)
      for (uint32_t t = threadIdx.x; t < p.cand; t += kScanThreads) out[t] = SentinelEntry();
      continue;
    }
    const float* qv = p.queries + q * p.d;
    const float* c = p.centroids + size_t(l) * p.d;
    float partial = 0.f;
    for (size_t t = threadIdx.x; t < p.d; t += kScanThreads) {
      const float x = qv[t];
      residual[t] = p.l2 ? x - c[t] : x;
      partial = fmaf(x, c[t], partial);
    }
    float offset = 0.f;
    if (!p.l2) {  // <q, c_l>, added to every code's table sum
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) partial += __shfl_xor_sync(kFullMask, partial, o);
      if (ex.lane == 0) reduce[warp] = partial;
    }
    __syncthreads();
    if (!p.l2) offset = (reduce[0] + reduce[1]) + (reduce[2] + reduce[3]);

    const float* lut;
    if (kSharedLut) {
      if (p.l2) {
        for (size_t e = threadIdx.x; e < lut_size; e += kScanThreads) {
          const float* y = p.codebooks + e * p.dsub;
          const float* r = residual + (e / p.ksub) * p.dsub;
          float acc = 0.f;
          for (size_t t = 0; t < p.dsub; ++t) {
            const float diff = r[t] - y[t];
            acc = fmaf(diff, diff, acc);
          }
          shared_lut[e] = acc;
        }
      } else {
        const float4* src = reinterpret_cast<const float4*>(p.ip_luts + q * lut_size);
        float4* dst = reinterpret_cast<float4*>(shared_lut);
        for (size_t e = threadIdx.x; e < lut_size / 4; e += kScanThreads) dst[e] = src[e];
      }
      lut = shared_lut;
    } else if (p.l2) {
      float* g = p.block_luts + size_t{blockIdx.x} * lut_size;
      for (size_t e = threadIdx.x; e < lut_size; e += kScanThreads) {
        const float* y = p.codebooks + e * p.dsub;
        const float* r = residual + (e / p.ksub) * p.dsub;
        float acc = 0.f;
        for (size_t t = 0; t < p.dsub; ++t) {
          const float diff = r[t] - y[t];
          acc = fmaf(diff, diff, acc);
        }
        g[e] = acc;
      }
      lut = g;
    } else {
      lut = p.ip_luts + q * lut_size;
    }
    __syncthreads();

    WarpStream ws{};
    if (warp == 0) ws = WarpStreamFrom(nullptr, state, p.queue_cap, p.cand_cap, p.cand, ex);
    const size_t begin = p.offsets[l];
    const size_t end = p.offsets[l + 1];
    const size_t words = p.code_stride / 16;
    for (size_t v0 = begin; v0 < end; v0 += kListChunk) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const uint32_t local = threadIdx.x + i * kScanThreads;
        const size_t v = v0 + local;
        float s = NaNf();
        int32_t id = kSentinelId;
        if (v < end) {
          const uint4* code = reinterpret_cast<const uint4*>(p.codes + v * p.code_stride);
          float acc = 0.f;
          for (size_t w = 0; w < words; ++w) {
            const uint4 bytes = __ldg(code + w);
#pragma unroll
            for (int b = 0; b < 16; ++b) {
              const size_t j = w * 16 + b;
              if (j < p.m) {
                const uint32_t byte = (WordOf(bytes, b / 4) >> (8 * (b % 4))) & 0xffu;
                acc += lut[j * p.ksub + byte];
              }
            }
          }
          s = p.l2 ? -acc : offset + acc;
          id = p.ids[v];
        }
        chunk_score[local] = s;
        chunk_id[local] = id;
      }
      __syncthreads();
      if (warp == 0) {
#pragma unroll 1
        for (uint32_t c0 = 0; c0 < kListChunk; c0 += kScanChunk) {
          float score[4];
          int32_t id[4];
          bool valid[4];
#pragma unroll
          for (int i = 0; i < 4; ++i) {
            const uint32_t e = c0 + ex.lane * 4 + i;
            score[i] = chunk_score[e];
            id[i] = chunk_id[e];
            valid[i] = true;  // padding scores NaN with the sentinel id: never passes
          }
          WarpOfferChunk(ws, score, id, valid, p.skip, ex);
        }
      }
      __syncthreads();
    }
    if (warp == 0) {
      WarpFlush(ws, ex);
      __syncwarp();
      for (uint32_t t = ex.lane; t < p.cand; t += 32) out[t] = ws.queue[t];
    }
  }
}

// --- Exact re-ranking ---

__global__ void __launch_bounds__(kRerankThreads)
    RerankKernel(const float* queries, size_t d, const float* vectors, const SelEntry* merged,
                 uint32_t merged_cap, uint32_t cand, bool l2, SelEntry* final_queues,
                 uint32_t queue_cap, uint32_t cand_cap, uint32_t k) {
  extern __shared__ __align__(16) unsigned char rerank_smem[];
  SelEntry* state = reinterpret_cast<SelEntry*>(rerank_smem);
  const uint32_t padded = (cand + kScanChunk - 1) / kScanChunk * kScanChunk;
  SelEntry* exact = state + queue_cap + cand_cap;  // padded entries
  const size_t q = blockIdx.x;
  const int warp = static_cast<int>(threadIdx.x / 32);
  const WarpExec ex{threadIdx.x % 32};
  const float* qv = queries + q * d;
  for (uint32_t i = warp; i < padded; i += kRerankWarps) {
    const int32_t id = i < cand ? merged[q * merged_cap + i].id : kSentinelId;
    float s = NaNf();
    if (id != kSentinelId) {
      const float* v = vectors + size_t(id) * d;
      float acc = 0.f;
      for (size_t t = ex.lane; t < d; t += 32) {
        const float x = qv[t], y = v[t];
        acc = l2 ? fmaf(x - y, x - y, acc) : fmaf(x, y, acc);
      }
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(kFullMask, acc, o);
      s = l2 ? -acc : acc;
    }
    if (ex.lane == 0) exact[i] = SelEntry{s, id};
  }
  __syncthreads();
  if (warp != 0) return;
  WarpStream ws = WarpStreamFrom(nullptr, state, queue_cap, cand_cap, k, ex);
  for (uint32_t e0 = 0; e0 < padded; e0 += kScanChunk) {
    float score[4];
    int32_t id[4];
    bool valid[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const SelEntry e = exact[e0 + ex.lane * 4 + i];
      score[i] = e.score;
      id[i] = e.id;
      valid[i] = true;
    }
    WarpOfferChunk(ws, score, id, valid, nullptr, ex);
  }
  WarpFlush(ws, ex);
  __syncwarp();
  WarpStoreQueue(ws, final_queues + q * queue_cap, ex);
}

int GridFor(size_t items, int threads, int max_blocks = 65535) {
  const size_t blocks = (items + threads - 1) / threads;
  return static_cast<int>(std::max<size_t>(1, std::min<size_t>(blocks, max_blocks)));
}

Error CreateIvfContext(IvfContext** out) {
  std::unique_ptr<IvfContext> ctx(new (std::nothrow) IvfContext);
  if (!ctx) return Error{kResourceExhausted, "out of host memory for an IVF-PQ search context"};
  ROSETTA_GPU_CUDA(cudaStreamCreateWithFlags(&ctx->stream, cudaStreamNonBlocking),
                   "cudaStreamCreateWithFlags");
  for (cudaEvent_t& e : ctx->timing) ROSETTA_GPU_CUDA(cudaEventCreate(&e), "cudaEventCreate");
  ROSETTA_GPU_CUBLAS(cublasCreate(&ctx->cublas), "cublasCreate");
  ROSETTA_GPU_CUBLAS(cublasSetStream(ctx->cublas, ctx->stream), "cublasSetStream");
  // True fp32 coarse scores (no TF32), so that the probed lists match the CPU's but for ties.
  ROSETTA_GPU_CUBLAS(cublasSetMathMode(ctx->cublas, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
  *out = ctx.release();
  return Error{};
}

template <typename T>
Error Copy(DeviceBuffer* dst, const T* src, size_t count, const char* what) {
  if (count == 0) return Error{};
  ROSETTA_GPU_RETURN_IF_ERROR(dst->Reserve(count * sizeof(T), what));
  ROSETTA_GPU_CUDA(cudaMemcpy(dst->ptr, src, count * sizeof(T), cudaMemcpyHostToDevice), what);
  return Error{};
}

Error SearchBlock(IvfPqDeviceIndex* x, IvfContext* ctx, const IvfPqRequest& r, size_t q0,
                  size_t nqb, const uint64_t* skip, SelEntry* out, bool* shared_lut_used) {
  cudaStream_t s = ctx->stream;
  const size_t d = x->d;
  const uint32_t nprobe = r.nprobe;
  const uint32_t cand = r.candidates;
  const uint32_t cand_queue = QueueCapacity(cand);
  const size_t lut_size = x->m * x->ksub;

  ROSETTA_GPU_RETURN_IF_ERROR(ctx->queries.Reserve(nqb * d * 4, "cudaMalloc(queries)"));
  ROSETTA_GPU_CUDA(cudaMemcpyAsync(ctx->queries.ptr, r.queries + q0 * d, nqb * d * 4,
                                   cudaMemcpyHostToDevice, s),
                   "cudaMemcpyAsync(queries)");
  const float* queries = ctx->queries.as<float>();

  // 1-2. Probes.
  ROSETTA_GPU_RETURN_IF_ERROR(ctx->probes.Reserve(nqb * nprobe * 4, "cudaMalloc(probes)"));
  int32_t* probes = ctx->probes.as<int32_t>();
  if (nprobe == x->nlist) {
    ProbeAllKernel<<<GridFor(nqb * nprobe, 256, 4096), 256, 0, s>>>(nqb, x->nlist, probes);
    ROSETTA_GPU_LAUNCHED("ProbeAllKernel launch");
  } else {
    ROSETTA_GPU_RETURN_IF_ERROR(
        ctx->coarse.Reserve(nqb * x->nlist * 4, "cudaMalloc(coarse scores)"));
    const float one = 1.f, zero = 0.f;
    ROSETTA_GPU_CUBLAS(cublasSgemm(ctx->cublas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(x->nlist),
                                   static_cast<int>(nqb), static_cast<int>(d), &one,
                                   x->centroids.as<float>(), static_cast<int>(d), queries,
                                   static_cast<int>(d), &zero, ctx->coarse.as<float>(),
                                   static_cast<int>(x->nlist)),
                       "cublasSgemm(coarse scores)");
    const uint32_t queue_cap = QueueCapacity(nprobe);
    const uint32_t cand_cap = CandCapacity(queue_cap);
    const size_t per_warp = size_t{queue_cap + cand_cap} * sizeof(SelEntry);
    const size_t warps = std::max<size_t>(1, std::min<size_t>(4, x->smem_optin / per_warp));
    const size_t smem = warps * per_warp;
    if (smem > 48 * 1024) {
      ROSETTA_GPU_CUDA(cudaFuncSetAttribute(ProbeSelectKernel,
                                            cudaFuncAttributeMaxDynamicSharedMemorySize,
                                            static_cast<int>(smem)),
                       "cudaFuncSetAttribute(ProbeSelectKernel)");
    }
    const size_t blocks = (nqb + warps - 1) / warps;
    ProbeSelectKernel<<<static_cast<unsigned>(blocks), static_cast<unsigned>(warps * 32), smem,
                        s>>>(ctx->coarse.as<float>(), nqb, x->nlist,
                             x->l2 ? x->centroid_norms.as<float>() : nullptr, nprobe, queue_cap,
                             cand_cap, probes);
    ROSETTA_GPU_LAUNCHED("ProbeSelectKernel launch");
  }

  // 3. Inner-product tables.
  if (!x->l2) {
    ROSETTA_GPU_RETURN_IF_ERROR(
        ctx->ip_luts.Reserve(nqb * lut_size * 4, "cudaMalloc(lookup tables)"));
    IpLutKernel<<<static_cast<unsigned>(nqb), 256, 0, s>>>(queries, d, x->codebooks.as<float>(),
                                                          x->m, x->ksub, x->dsub,
                                                          ctx->ip_luts.as<float>());
    ROSETTA_GPU_LAUNCHED("IpLutKernel launch");
  }

  // 4. Scans.
  ROSETTA_GPU_RETURN_IF_ERROR(ctx->parts.Reserve(nqb * nprobe * cand * sizeof(SelEntry),
                                                 "cudaMalloc(partial candidates)"));
  ScanParams p;
  p.queries = queries;
  p.centroids = x->centroids.as<float>();
  p.codebooks = x->codebooks.as<float>();
  p.offsets = x->offsets.as<uint64_t>();
  p.codes = x->codes.as<uint8_t>();
  p.ids = x->ids.as<int32_t>();
  p.probes = probes;
  p.ip_luts = x->l2 ? nullptr : ctx->ip_luts.as<float>();
  p.block_luts = nullptr;
  p.skip = skip;
  p.nqb = nqb;
  p.nprobe = nprobe;
  p.d = d;
  p.m = x->m;
  p.ksub = x->ksub;
  p.dsub = x->dsub;
  p.code_stride = x->code_stride;
  p.l2 = x->l2;
  p.cand = cand;
  p.queue_cap = cand_queue;
  p.cand_cap = CandCapacity(cand_queue);
  p.parts = ctx->parts.as<SelEntry>();
  const bool shared_lut = ScanSharedBytes(p, true) <= x->smem_optin;
  *shared_lut_used = shared_lut;
  const size_t smem = ScanSharedBytes(p, shared_lut);
  using ScanFn = void (*)(ScanParams);
  const ScanFn kernel = shared_lut ? ScanKernel<true> : ScanKernel<false>;
  if (smem > x->smem_optin) {
    return Error{kResourceExhausted, "IVF-PQ scan: the selection state does not fit the "
                                     "device's shared memory"};
  }
  ROSETTA_GPU_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(smem)),
                   "cudaFuncSetAttribute(ScanKernel)");
  int per_sm = 0;
  ROSETTA_GPU_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kScanThreads, smem),
                   "cudaOccupancyMaxActiveBlocksPerMultiprocessor(ScanKernel)");
  per_sm = std::max(per_sm, 1);
  const size_t pairs = nqb * nprobe;
  size_t blocks = std::min(pairs, size_t(per_sm) * x->multiprocessors);
  if (!shared_lut && x->l2) {
    // One table per resident block in global memory: at most 64 MiB of them.
    blocks = std::min(blocks, std::max<size_t>(1, (size_t{64} << 20) / (lut_size * 4)));
    ROSETTA_GPU_RETURN_IF_ERROR(
        ctx->block_luts.Reserve(blocks * lut_size * 4, "cudaMalloc(lookup tables)"));
    p.block_luts = ctx->block_luts.as<float>();
  }
  kernel<<<static_cast<unsigned>(blocks), kScanThreads, smem, s>>>(p);
  ROSETTA_GPU_LAUNCHED("ScanKernel launch");

  // 5. Merge.
  ROSETTA_GPU_RETURN_IF_ERROR(ctx->merged.Reserve(nqb * cand_queue * sizeof(SelEntry),
                                                  "cudaMalloc(merged candidates)"));
  ROSETTA_GPU_RETURN_IF_ERROR(LaunchMerge(ctx->parts.as<SelEntry>(), nqb, nprobe, cand, cand,
                                          ctx->merged.as<SelEntry>(), cand_queue, cand,
                                          x->smem_optin, &ctx->merge_scratch, s));
  const SelEntry* result = ctx->merged.as<SelEntry>();
  uint32_t result_cap = cand_queue;

  // 6. Re-ranking.
  if (r.refine) {
    const uint32_t queue_cap = QueueCapacity(r.k);
    const uint32_t cand_cap = CandCapacity(queue_cap);
    const uint32_t padded = (cand + kScanChunk - 1) / kScanChunk * kScanChunk;
    const size_t rsmem = size_t{queue_cap + cand_cap + padded} * sizeof(SelEntry);
    if (rsmem > x->smem_optin) {
      return Error{kResourceExhausted, "IVF-PQ re-ranking: the candidates do not fit the "
                                       "device's shared memory"};
    }
    if (rsmem > 48 * 1024) {
      ROSETTA_GPU_CUDA(cudaFuncSetAttribute(RerankKernel,
                                            cudaFuncAttributeMaxDynamicSharedMemorySize,
                                            static_cast<int>(rsmem)),
                       "cudaFuncSetAttribute(RerankKernel)");
    }
    ROSETTA_GPU_RETURN_IF_ERROR(ctx->final_queues.Reserve(nqb * queue_cap * sizeof(SelEntry),
                                                          "cudaMalloc(result queues)"));
    RerankKernel<<<static_cast<unsigned>(nqb), kRerankThreads, rsmem, s>>>(
        queries, d, x->refine_vectors.as<float>(), ctx->merged.as<SelEntry>(), cand_queue, cand,
        x->l2, ctx->final_queues.as<SelEntry>(), queue_cap, cand_cap, r.k);
    ROSETTA_GPU_LAUNCHED("RerankKernel launch");
    result = ctx->final_queues.as<SelEntry>();
    result_cap = queue_cap;
  }
  ROSETTA_GPU_CUDA(cudaMemcpy2DAsync(out + q0 * r.k, r.k * sizeof(SelEntry), result,
                                     result_cap * sizeof(SelEntry), r.k * sizeof(SelEntry), nqb,
                                     cudaMemcpyDeviceToHost, s),
                   "cudaMemcpy2DAsync(results)");
  return Error{};
}

// Device bytes of scratch one query needs in a query block (see SearchBlock).
size_t ScratchPerQuery(const IvfPqDeviceIndex& x, const IvfPqRequest& r) {
  const size_t cand_queue = QueueCapacity(r.candidates);
  size_t groups = 1;
  while (groups * groups < r.nprobe) ++groups;
  size_t bytes = x.d * 4 + size_t{r.nprobe} * 4 + size_t{r.nprobe} * r.candidates * 8 +
                 cand_queue * 8 * (1 + groups) + size_t{QueueCapacity(r.k)} * 8;
  if (r.nprobe != x.nlist) bytes += x.nlist * 4;
  if (!x.l2) bytes += x.m * x.ksub * 4;
  return bytes;
}

Error SearchWith(IvfPqDeviceIndex* x, IvfContext* ctx, const IvfPqRequest& r, SelEntry* out,
                 IvfPqStats* stats) {
  cudaStream_t s = ctx->stream;
  if (stats != nullptr) ROSETTA_GPU_CUDA(cudaEventRecord(ctx->timing[0], s), "cudaEventRecord");
  const uint64_t* skip = nullptr;
  if (r.skip != nullptr && r.skip_words > 0 && x->max_id >= 0) {
    const size_t words = static_cast<size_t>(x->max_id) / 64 + 1;
    const size_t given = std::min(words, r.skip_words);
    ROSETTA_GPU_RETURN_IF_ERROR(ctx->skip.Reserve(words * 8, "cudaMalloc(skip bitmap)"));
    ROSETTA_GPU_CUDA(cudaMemcpyAsync(ctx->skip.ptr, r.skip, given * 8, cudaMemcpyHostToDevice, s),
                     "cudaMemcpyAsync(skip bitmap)");
    if (given < words) {
      ROSETTA_GPU_CUDA(cudaMemsetAsync(ctx->skip.as<uint64_t>() + given, 0, (words - given) * 8, s),
                       "cudaMemsetAsync(skip bitmap)");
    }
    skip = ctx->skip.as<uint64_t>();
  }
  const size_t per_query = ScratchPerQuery(*x, r);
  // Also keeps nqb x nprobe pairs and nqb x nlist scores well inside int / grid limits.
  const size_t cap = std::max<size_t>(1, std::min<size_t>(r.scratch_bytes / per_query, 65536));
  const size_t nqb_max = std::min(r.nq, cap);
  bool shared_lut = true;
  size_t blocks = 0;
  for (size_t q0 = 0; q0 < r.nq; q0 += nqb_max) {
    const size_t nqb = std::min(nqb_max, r.nq - q0);
    ROSETTA_GPU_RETURN_IF_ERROR(SearchBlock(x, ctx, r, q0, nqb, skip, out, &shared_lut));
    ++blocks;
  }
  if (stats != nullptr) ROSETTA_GPU_CUDA(cudaEventRecord(ctx->timing[1], s), "cudaEventRecord");
  ROSETTA_GPU_CUDA(cudaStreamSynchronize(s), "IVF-PQ search (cudaStreamSynchronize)");
  if (stats != nullptr) {
    float ms = 0;
    ROSETTA_GPU_CUDA(cudaEventElapsedTime(&ms, ctx->timing[0], ctx->timing[1]),
                     "cudaEventElapsedTime");
    stats->device_ms = ms;
    stats->query_blocks = blocks;
    stats->shared_lut = shared_lut;
  }
  return Error{};
}

}  // namespace

Error CreateIvfPqDeviceIndex(const IvfPqHostData& h, IvfPqDeviceIndex** out) {
  DeviceGuard guard;
  ROSETTA_GPU_RETURN_IF_ERROR(guard.Set(h.device));
  std::unique_ptr<IvfPqDeviceIndex> x(new (std::nothrow) IvfPqDeviceIndex);
  if (!x) return Error{kResourceExhausted, "out of host memory for a device IVF-PQ index"};
  x->device = h.device;
  x->d = h.d;
  x->nlist = h.nlist;
  x->m = h.m;
  x->ksub = h.ksub;
  x->dsub = h.d / h.m;
  x->n = h.n;
  x->code_stride = h.code_stride;
  x->l2 = h.l2;
  x->max_id = h.max_id;
  x->refine_rows = h.refine_rows;
  cudaDeviceProp prop;
  ROSETTA_GPU_CUDA(cudaGetDeviceProperties(&prop, h.device), "cudaGetDeviceProperties");
  x->multiprocessors = prop.multiProcessorCount;
  x->smem_optin = prop.sharedMemPerBlockOptin;

  std::vector<float> norms(h.nlist);
  for (size_t l = 0; l < h.nlist; ++l) {
    float s = 0.f;
    for (size_t t = 0; t < h.d; ++t) s += h.centroids[l * h.d + t] * h.centroids[l * h.d + t];
    norms[l] = s;
  }
  ROSETTA_GPU_RETURN_IF_ERROR(Copy(&x->centroids, h.centroids, h.nlist * h.d, "upload centroids"));
  ROSETTA_GPU_RETURN_IF_ERROR(Copy(&x->centroid_norms, norms.data(), h.nlist,
                                   "upload centroid norms"));
  ROSETTA_GPU_RETURN_IF_ERROR(Copy(&x->codebooks, h.codebooks, h.m * h.ksub * x->dsub,
                                   "upload codebooks"));
  ROSETTA_GPU_RETURN_IF_ERROR(Copy(&x->offsets, h.list_offsets, h.nlist + 1,
                                   "upload list offsets"));
  ROSETTA_GPU_RETURN_IF_ERROR(Copy(&x->codes, h.codes, h.n * h.code_stride, "upload codes"));
  ROSETTA_GPU_RETURN_IF_ERROR(Copy(&x->ids, h.ids, h.n, "upload ids"));
  if (h.refine_vectors != nullptr) {
    ROSETTA_GPU_RETURN_IF_ERROR(Copy(&x->refine_vectors, h.refine_vectors, h.refine_rows * h.d,
                                     "upload refine vectors"));
  }
  x->bytes = x->centroids.capacity + x->centroid_norms.capacity + x->codebooks.capacity +
             x->offsets.capacity + x->codes.capacity + x->ids.capacity +
             x->refine_vectors.capacity;
  *out = x.release();
  return Error{};
}

void DestroyIvfPqDeviceIndex(IvfPqDeviceIndex* index) { delete index; }

size_t IvfPqDeviceBytes(const IvfPqDeviceIndex* index) { return index->bytes; }

Error IvfPqSearch(IvfPqDeviceIndex* x, const IvfPqRequest& r, SelEntry* out, IvfPqStats* stats) {
  if (r.nq == 0) return Error{};
  if (x->n == 0) {
    for (size_t i = 0; i < r.nq * r.k; ++i) out[i] = SentinelEntry();
    return Error{};
  }
  DeviceGuard guard;
  ROSETTA_GPU_RETURN_IF_ERROR(guard.Set(x->device));
  IvfContext* ctx = nullptr;
  {
    std::lock_guard<std::mutex> lock(x->mu);
    if (!x->idle.empty()) {
      ctx = x->idle.back();
      x->idle.pop_back();
    }
  }
  if (ctx == nullptr) {
    Error e = CreateIvfContext(&ctx);
    if (!e.ok()) {
      delete ctx;
      return e;
    }
  }
  Error e = SearchWith(x, ctx, r, out, r.want_stats ? stats : nullptr);
  // No work of this call may still run when the context is reused or destroyed.
  const cudaError_t sync = cudaStreamSynchronize(ctx->stream);
  if (e.ok() && sync != cudaSuccess) e = CudaError(sync, "IVF-PQ search (cudaStreamSynchronize)");
  if (sync != cudaSuccess || e.code == kInternal) {
    delete ctx;  // possibly in a bad state: not reused
  } else {
    std::lock_guard<std::mutex> lock(x->mu);
    x->idle.push_back(ctx);
  }
  return e;
}

}  // namespace rosetta::kernels::gpu
