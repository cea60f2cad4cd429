// Fused multi-field scoring on the GPU (kernels/gpu_fused.h): the device field set and one kernel
// that, in a single pass over the rows, scores every targeted field of each row for a group of
// queries, applies weights, record weights, the missing policy and the skip bitmap
// (fused_fields_math.cuh, shared with the CPU reference), and k-selects the fused scores in
// shared memory; LaunchMerge (common_kernels.cu) then combines the blocks' queues.
//
// Layout: one thread per row (a stripe of 256 rows per block iteration). A thread reads its row's
// fields as float4 (rows padded to 4 floats) and the queries through the read-only cache (every
// lane of a warp reads the same query element: a broadcast). Rows lacking a field skip that
// field's bytes entirely. The fused scores of a stripe go to a shared tile that the block's warps
// stream through their queries' selection queues (warp w owns queries w, w + 8), as the flat fused
// kernel does (fused_search.cu). Ineligible rows score NaN, which never passes the selection.
#include <algorithm>
#include <memory>
#include <new>
#include <vector>

#include "kernels/cuda/fused_fields_backend.cuh"
#include "kernels/cuda/fused_fields_device.cuh"
#include "kernels/cuda/fused_fields_math.cuh"
#include "kernels/cuda/search_internal.cuh"

namespace rosetta::kernels::gpu {

namespace {

constexpr int kFfThreads = 256;
constexpr int kFfWarps = kFfThreads / 32;
constexpr int kFfMaxTerms = 16;

struct TermDev {
  const float* data;
  const uint64_t* present;  // null = every row
  const float* weights;     // null = 1
  const float* queries;     // nq x dp
  const double* scale;      // nq or null
  const double* offset;     // nq or null
  double weight;
  uint32_t dp;
  uint32_t l2;
};

struct FfParams {
  const TermDev* terms;
  int term_count;
  int missing;
  size_t rows;
  size_t rows_per_block;  // multiple of kFfThreads
  size_t q0;              // first query of the pass
  int nq;                 // queries in the pass
  const uint64_t* skip;   // covers every row, or null
  SelEntry* queues;       // [nq][gridDim.x][queue_cap]
  uint32_t queue_cap, cand_cap, k;
};

template <int NQ>
__global__ void __launch_bounds__(kFfThreads) FusedFieldsKernel(FfParams p) {
  extern __shared__ __align__(16) unsigned char ff_smem[];
  __shared__ TermDev terms[kFfMaxTerms];
  float* tile = reinterpret_cast<float*>(ff_smem);  // [NQ][kFfThreads]
  SelEntry* state = reinterpret_cast<SelEntry*>(tile + NQ * kFfThreads);
  const int warp = static_cast<int>(threadIdx.x / 32);
  const WarpExec ex{threadIdx.x % 32};
  const uint32_t per_query = p.queue_cap + p.cand_cap;
  if (static_cast<int>(threadIdx.x) < p.term_count) terms[threadIdx.x] = p.terms[threadIdx.x];
  for (size_t i = threadIdx.x; i < size_t(p.nq) * per_query; i += kFfThreads) {
    if (i % per_query < p.queue_cap) state[i] = SentinelEntry();
  }
  __syncthreads();

  constexpr int kOwned = (NQ + kFfWarps - 1) / kFfWarps;
  WarpStream streams[kOwned];
#pragma unroll
  for (int j = 0; j < kOwned; ++j) {
    SelEntry* q_state = state + size_t(warp + j * kFfWarps) * per_query;
    streams[j] = WarpStream{q_state, q_state + p.queue_cap, p.queue_cap, p.cand_cap, p.k, 0,
                            -INFINITY};
  }

  const size_t row_begin = blockIdx.x * p.rows_per_block;
  const size_t row_end = min(p.rows, row_begin + p.rows_per_block);
  for (size_t stripe = row_begin; stripe < row_end; stripe += kFfThreads) {
    const size_t r = stripe + threadIdx.x;
    const bool in_range = r < row_end && !Skipped(p.skip, static_cast<int32_t>(r));
    FusedWeights w;
    if (in_range) {
      for (int t = 0; t < p.term_count; ++t) {
        const TermDev& term = terms[t];
        FusedAddField(w, FieldHas(term.present, r), term.weight,
                      term.weights != nullptr ? term.weights[r] : 1.f);
      }
    }
    const bool eligible = in_range && FusedEligible(w, p.missing, p.term_count);
    double sum[NQ];
#pragma unroll
    for (int q = 0; q < NQ; ++q) sum[q] = 0.0;
    if (eligible) {
      const double factor = FusedFactor(w, p.missing);
      for (int t = 0; t < p.term_count; ++t) {
        const TermDev& term = terms[t];
        if (!FieldHas(term.present, r)) continue;
        const bool l2 = term.l2 != 0;
        const float4* row = reinterpret_cast<const float4*>(term.data + r * term.dp);
        const float4* qbase = reinterpret_cast<const float4*>(term.queries + p.q0 * term.dp);
        const size_t q_stride = term.dp / 4;
        float acc[NQ];
        RowRawScores<NQ>(row, qbase, q_stride, term.dp, p.nq, l2, acc);
        const float rw = term.weights != nullptr ? term.weights[r] : 1.f;
#pragma unroll
        for (int q = 0; q < NQ; ++q) {
          if (q < p.nq) {
            const float raw = l2 ? -acc[q] : acc[q];
            const double scale = term.scale != nullptr ? term.scale[p.q0 + q] : 1.0;
            const double offset = term.offset != nullptr ? term.offset[p.q0 + q] : 0.0;
            sum[q] = FusedAccumulate(
                sum[q], FusedContribution(term.weight, rw, factor, scale, offset, raw));
          }
        }
      }
    }
#pragma unroll
    for (int q = 0; q < NQ; ++q) {
      tile[q * kFfThreads + threadIdx.x] =
          eligible ? static_cast<float>(sum[q]) : __int_as_float(0x7fc00000);
    }
    __syncthreads();
#pragma unroll
    for (int j = 0; j < kOwned; ++j) {
      const int q = warp + j * kFfWarps;
      if (q >= p.nq) continue;  // warp-uniform
#pragma unroll
      for (int c = 0; c < kFfThreads / static_cast<int>(kScanChunk); ++c) {
        float score[4];
        int32_t id[4];
        bool valid[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const int e = c * kScanChunk + ex.lane * 4 + i;
          score[i] = tile[q * kFfThreads + e];
          id[i] = static_cast<int32_t>(stripe + e);
          valid[i] = true;  // rows past the range scored NaN
        }
        WarpOfferChunk(streams[j], score, id, valid, nullptr, ex);
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int j = 0; j < kOwned; ++j) {
    const int q = warp + j * kFfWarps;
    if (q >= p.nq) continue;
    WarpFlush(streams[j], ex);
    __syncwarp();
    WarpStoreQueue(streams[j], p.queues + (size_t(q) * gridDim.x + blockIdx.x) * p.queue_cap, ex);
  }
}

using FfFn = void (*)(FfParams);

int TemplateQueries(size_t nq) { return nq <= 1 ? 1 : nq <= 4 ? 4 : 16; }

FfFn KernelFor(int nq_template) {
  return nq_template == 1   ? FusedFieldsKernel<1>
         : nq_template == 4 ? FusedFieldsKernel<4>
                            : FusedFieldsKernel<16>;
}

size_t SharedBytes(size_t nq, uint32_t queue_cap, uint32_t cand_cap) {
  return size_t(TemplateQueries(nq)) * kFfThreads * sizeof(float) +
         nq * size_t{queue_cap + cand_cap} * sizeof(SelEntry);
}

}  // namespace

Error CreateFieldSetDevice(size_t rows, const FieldHostData* fields, size_t count, int device,
                           FieldSetDevice** out) {
  DeviceGuard guard;
  ROSETTA_GPU_RETURN_IF_ERROR(guard.Set(device));
  std::unique_ptr<FieldSetDevice> set(new (std::nothrow) FieldSetDevice);
  if (!set) return Error{kResourceExhausted, "out of host memory for a device field set"};
  set->device = device;
  set->rows = rows;
  cudaDeviceProp prop;
  ROSETTA_GPU_CUDA(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  set->multiprocessors = prop.multiProcessorCount;
  set->smem_optin = prop.sharedMemPerBlockOptin;
  const size_t words = (rows + 63) / 64;
  for (size_t f = 0; f < count; ++f) {
    const FieldHostData& h = fields[f];
    std::unique_ptr<FieldDevice> fd(new (std::nothrow) FieldDevice);
    if (!fd) return Error{kResourceExhausted, "out of host memory for a device field"};
    fd->dim = h.dim;
    fd->dp = (h.dim + 3) / 4 * 4;
    if (rows > 0) {
      // Reserve zero-fills: the padding columns stay zero.
      ROSETTA_GPU_RETURN_IF_ERROR(
          fd->data.Reserve(rows * fd->dp * sizeof(float), "cudaMalloc(field vectors)"));
      ROSETTA_GPU_CUDA(cudaMemcpy2D(fd->data.ptr, fd->dp * sizeof(float), h.vectors,
                                    h.dim * sizeof(float), h.dim * sizeof(float), rows,
                                    cudaMemcpyHostToDevice),
                       "cudaMemcpy2D(field vectors)");
      if (h.present != nullptr) {
        ROSETTA_GPU_RETURN_IF_ERROR(fd->present.Reserve(words * 8, "cudaMalloc(field presence)"));
        ROSETTA_GPU_CUDA(cudaMemcpy(fd->present.ptr, h.present, words * 8, cudaMemcpyHostToDevice),
                         "cudaMemcpy(field presence)");
      }
      if (h.record_weights != nullptr) {
        ROSETTA_GPU_RETURN_IF_ERROR(
            fd->weights.Reserve(rows * sizeof(float), "cudaMalloc(record weights)"));
        ROSETTA_GPU_CUDA(cudaMemcpy(fd->weights.ptr, h.record_weights, rows * sizeof(float),
                                    cudaMemcpyHostToDevice),
                         "cudaMemcpy(record weights)");
      }
    }
    set->bytes += fd->data.capacity + fd->present.capacity + fd->weights.capacity;
    set->fields.push_back(std::move(fd));
  }
  *out = set.release();
  return Error{};
}

void DestroyFieldSetDevice(FieldSetDevice* set) { delete set; }

size_t FieldSetDeviceBytes(const FieldSetDevice* set) { return set->bytes; }

Error FusedSearch(FieldSetDevice* set, const FusedRequest& r, SelEntry* out, FusedStats* stats) {
  if (r.nq == 0) return Error{};
  if (set->rows == 0) {
    for (size_t i = 0; i < r.nq * r.k; ++i) out[i] = SentinelEntry();
    return Error{};
  }
  DeviceGuard guard;
  ROSETTA_GPU_RETURN_IF_ERROR(guard.Set(set->device));
  // Declared before the stream owner, so that on every return the stream is synchronised (by
  // ~FieldStreamOwner) before these buffers are freed.
  DeviceBuffer queries, norms, term_buf, skip, queues, final_queues, merge_scratch;
  FieldStreamOwner so;
  ROSETTA_GPU_CUDA(cudaStreamCreateWithFlags(&so.stream, cudaStreamNonBlocking),
                   "cudaStreamCreateWithFlags");
  for (cudaEvent_t& e : so.timing) ROSETTA_GPU_CUDA(cudaEventCreate(&e), "cudaEventCreate");
  cudaStream_t s = so.stream;
  const bool timed = r.want_stats && stats != nullptr;
  if (timed) ROSETTA_GPU_CUDA(cudaEventRecord(so.timing[0], s), "cudaEventRecord");

  // Queries (padded per term), normalisation parameters and term descriptors.
  std::vector<size_t> query_offset(r.term_count), norm_offset(r.term_count);
  size_t query_floats = 0, norm_doubles = 0;
  for (size_t t = 0; t < r.term_count; ++t) {
    query_offset[t] = query_floats;
    query_floats += r.nq * set->fields[r.terms[t].field]->dp;
    norm_offset[t] = norm_doubles;
    norm_doubles += 2 * r.nq;
  }
  ROSETTA_GPU_RETURN_IF_ERROR(queries.Reserve(query_floats * 4, "cudaMalloc(fused queries)"));
  ROSETTA_GPU_RETURN_IF_ERROR(norms.Reserve(norm_doubles * 8, "cudaMalloc(normalisation)"));
  ROSETTA_GPU_RETURN_IF_ERROR(
      term_buf.Reserve(r.term_count * sizeof(TermDev), "cudaMalloc(term descriptors)"));
  std::vector<TermDev> host_terms(r.term_count);
  for (size_t t = 0; t < r.term_count; ++t) {
    const FusedTermRequest& tr = r.terms[t];
    const FieldDevice& fd = *set->fields[tr.field];
    float* qdst = queries.as<float>() + query_offset[t];
    ROSETTA_GPU_CUDA(cudaMemcpy2DAsync(qdst, fd.dp * 4, tr.queries, fd.dim * 4, fd.dim * 4, r.nq,
                                       cudaMemcpyHostToDevice, s),
                     "cudaMemcpy2DAsync(fused queries)");
    double* ndst = norms.as<double>() + norm_offset[t];
    if (tr.scale != nullptr) {
      ROSETTA_GPU_CUDA(cudaMemcpyAsync(ndst, tr.scale, r.nq * 8, cudaMemcpyHostToDevice, s),
                       "cudaMemcpyAsync(scale)");
    }
    if (tr.offset != nullptr) {
      ROSETTA_GPU_CUDA(
          cudaMemcpyAsync(ndst + r.nq, tr.offset, r.nq * 8, cudaMemcpyHostToDevice, s),
          "cudaMemcpyAsync(offset)");
    }
    TermDev& d = host_terms[t];
    d.data = fd.data.as<float>();
    d.present = fd.present.ptr != nullptr ? fd.present.as<uint64_t>() : nullptr;
    d.weights = fd.weights.ptr != nullptr ? fd.weights.as<float>() : nullptr;
    d.queries = qdst;
    d.scale = tr.scale != nullptr ? ndst : nullptr;
    d.offset = tr.offset != nullptr ? ndst + r.nq : nullptr;
    d.weight = tr.weight;
    d.dp = static_cast<uint32_t>(fd.dp);
    d.l2 = tr.l2 ? 1u : 0u;
  }
  ROSETTA_GPU_CUDA(cudaMemcpyAsync(term_buf.ptr, host_terms.data(),
                                   host_terms.size() * sizeof(TermDev), cudaMemcpyHostToDevice, s),
                   "cudaMemcpyAsync(term descriptors)");
  const uint64_t* skip_dev = nullptr;
  if (r.skip != nullptr && r.skip_words > 0) {
    const size_t words = (set->rows + 63) / 64;
    const size_t given = std::min(words, r.skip_words);
    ROSETTA_GPU_RETURN_IF_ERROR(skip.Reserve(words * 8, "cudaMalloc(skip bitmap)"));
    ROSETTA_GPU_CUDA(cudaMemcpyAsync(skip.ptr, r.skip, given * 8, cudaMemcpyHostToDevice, s),
                     "cudaMemcpyAsync(skip bitmap)");
    skip_dev = skip.as<uint64_t>();  // words past `given` stay zero (fresh, zero-filled buffer)
  }

  const uint32_t queue_cap = QueueCapacity(r.k);
  const uint32_t cand_cap = CandCapacity(queue_cap);
  size_t per_pass = 0;
  for (size_t nq = 1; nq <= 16; ++nq) {
    // The kernel's static shared memory (the term descriptors) counts against the same limit.
    if (SharedBytes(nq, queue_cap, cand_cap) + sizeof(TermDev) * kFfMaxTerms <=
        set->smem_optin) {
      per_pass = nq;
    }
  }
  if (per_pass == 0) {
    return Error{kResourceExhausted,
                 "fused scoring: one query's selection state does not fit shared memory"};
  }
  ROSETTA_GPU_RETURN_IF_ERROR(
      final_queues.Reserve(r.nq * queue_cap * sizeof(SelEntry), "cudaMalloc(result queues)"));
  size_t passes = 0;
  for (size_t q0 = 0; q0 < r.nq; q0 += per_pass) {
    const size_t nq = std::min(per_pass, r.nq - q0);
    const FfFn kernel = KernelFor(TemplateQueries(nq));
    const size_t smem = SharedBytes(nq, queue_cap, cand_cap);
    ROSETTA_GPU_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          static_cast<int>(smem)),
                     "cudaFuncSetAttribute(FusedFieldsKernel)");
    int per_sm = 0;
    ROSETTA_GPU_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kFfThreads,
                                                                   smem),
                     "cudaOccupancyMaxActiveBlocksPerMultiprocessor(FusedFieldsKernel)");
    per_sm = std::max(per_sm, 1);
    const size_t stripes = (set->rows + kFfThreads - 1) / kFfThreads;
    size_t blocks = std::min(stripes, size_t(per_sm) * set->multiprocessors);
    const size_t stripes_per_block = (stripes + blocks - 1) / blocks;
    blocks = (stripes + stripes_per_block - 1) / stripes_per_block;
    ROSETTA_GPU_RETURN_IF_ERROR(queues.Reserve(nq * blocks * queue_cap * sizeof(SelEntry),
                                               "cudaMalloc(fused queues)"));
    FfParams p;
    p.terms = term_buf.as<TermDev>();
    p.term_count = static_cast<int>(r.term_count);
    p.missing = r.missing;
    p.rows = set->rows;
    p.rows_per_block = stripes_per_block * kFfThreads;
    p.q0 = q0;
    p.nq = static_cast<int>(nq);
    p.skip = skip_dev;
    p.queues = queues.as<SelEntry>();
    p.queue_cap = queue_cap;
    p.cand_cap = cand_cap;
    p.k = r.k;
    kernel<<<static_cast<unsigned>(blocks), kFfThreads, smem, s>>>(p);
    ROSETTA_GPU_LAUNCHED("FusedFieldsKernel launch");
    ROSETTA_GPU_RETURN_IF_ERROR(LaunchMerge(queues.as<SelEntry>(), nq, blocks, queue_cap, r.k,
                                            final_queues.as<SelEntry>() + q0 * queue_cap,
                                            queue_cap, r.k, set->smem_optin, &merge_scratch, s));
    ++passes;
  }
  if (timed) ROSETTA_GPU_CUDA(cudaEventRecord(so.timing[1], s), "cudaEventRecord");
  ROSETTA_GPU_CUDA(cudaMemcpy2DAsync(out, r.k * sizeof(SelEntry), final_queues.ptr,
                                     queue_cap * sizeof(SelEntry), r.k * sizeof(SelEntry), r.nq,
                                     cudaMemcpyDeviceToHost, s),
                   "cudaMemcpy2DAsync(fused results)");
  ROSETTA_GPU_CUDA(cudaStreamSynchronize(s), "fused scoring (cudaStreamSynchronize)");
  if (timed) {
    float ms = 0;
    ROSETTA_GPU_CUDA(cudaEventElapsedTime(&ms, so.timing[0], so.timing[1]),
                     "cudaEventElapsedTime");
    stats->device_ms = ms;
    stats->passes = passes;
  }
  return Error{};
}

}  // namespace rosetta::kernels::gpu
