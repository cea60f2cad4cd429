// The device matrix, search contexts, the search driver (query upload, path choice, result
// download), device information and the benchmark measurements.
#include <algorithm>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

#include "kernels/cuda/search_internal.cuh"

namespace rosetta::kernels::gpu {

// --- Errors and guards ---

Error CudaError(cudaError_t e, const char* what) {
  cudaGetLastError();  // clear a non-sticky error so that later launch checks do not see it.
  int code = kInternal;
  if (e == cudaErrorMemoryAllocation) code = kResourceExhausted;
  if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver) code = kUnavailable;
  if (e == cudaErrorInvalidDevice) code = kInvalidArgument;
  return Error{code, std::string(what) + ": " + cudaGetErrorName(e) + " (" +
                         cudaGetErrorString(e) + ")"};
}

Error CublasError(cublasStatus_t s, const char* what) {
  int code = kInternal;
  if (s == CUBLAS_STATUS_ALLOC_FAILED) code = kResourceExhausted;
  if (s == CUBLAS_STATUS_NOT_INITIALIZED) code = kUnavailable;
  return Error{code, std::string(what) + ": " + cublasGetStatusName(s) + " (" +
                         cublasGetStatusString(s) + ")"};
}

DeviceGuard::~DeviceGuard() {
  if (previous_ >= 0) cudaSetDevice(previous_);
}

Error DeviceGuard::Set(int device) {
  int current = 0;
  ROSETTA_GPU_CUDA(cudaGetDevice(&current), "cudaGetDevice");
  if (current != device) {
    ROSETTA_GPU_CUDA(cudaSetDevice(device), "cudaSetDevice");
    previous_ = current;
  }
  return Error{};
}

Error DeviceBuffer::Reserve(size_t bytes, const char* what) {
  if (bytes <= capacity) return Error{};
  Free();
  void* p = nullptr;
  ROSETTA_GPU_CUDA(cudaMalloc(&p, bytes), what);
  // cudaMemset runs on the legacy default stream, which the search streams (non-blocking) do not
  // wait for: finish it before the buffer is handed out.
  cudaError_t e = cudaMemset(p, 0, bytes);
  if (e == cudaSuccess) e = cudaStreamSynchronize(nullptr);
  if (e != cudaSuccess) {
    cudaFree(p);
    return CudaError(e, what);
  }
  ptr = p;
  capacity = bytes;
  return Error{};
}

void DeviceBuffer::Free() {
  if (ptr != nullptr) cudaFree(ptr);
  ptr = nullptr;
  capacity = 0;
}

// --- Contexts ---

SearchContext::~SearchContext() {
  // Buffers free themselves; streams, events and the handle are destroyed here. Errors are
  // ignored: nothing can be done about them during teardown.
  if (cublas != nullptr) cublasDestroy(cublas);
  for (int i = 0; i < 2; ++i) {
    if (gemm_done[i] != nullptr) cudaEventDestroy(gemm_done[i]);
    if (select_done[i] != nullptr) cudaEventDestroy(select_done[i]);
    if (stream[i] != nullptr) cudaStreamDestroy(stream[i]);
  }
  if (done != nullptr) cudaEventDestroy(done);
  for (cudaEvent_t e : timing) {
    if (e != nullptr) cudaEventDestroy(e);
  }
}

Error CreateSearchContext(SearchContext** out) {
  std::unique_ptr<SearchContext> ctx(new (std::nothrow) SearchContext);
  if (!ctx) return Error{kResourceExhausted, "out of host memory for a search context"};
  for (int i = 0; i < 2; ++i) {
    ROSETTA_GPU_CUDA(cudaStreamCreateWithFlags(&ctx->stream[i], cudaStreamNonBlocking),
                     "cudaStreamCreateWithFlags");
    ROSETTA_GPU_CUDA(cudaEventCreateWithFlags(&ctx->gemm_done[i], cudaEventDisableTiming),
                     "cudaEventCreateWithFlags");
    ROSETTA_GPU_CUDA(cudaEventCreateWithFlags(&ctx->select_done[i], cudaEventDisableTiming),
                     "cudaEventCreateWithFlags");
  }
  ROSETTA_GPU_CUDA(cudaEventCreateWithFlags(&ctx->done, cudaEventDisableTiming),
                   "cudaEventCreateWithFlags");
  for (cudaEvent_t& e : ctx->timing) ROSETTA_GPU_CUDA(cudaEventCreate(&e), "cudaEventCreate");
  ROSETTA_GPU_CUBLAS(cublasCreate(&ctx->cublas), "cublasCreate");
  ROSETTA_GPU_CUBLAS(cublasSetStream(ctx->cublas, ctx->stream[0]), "cublasSetStream");
  // Default math: CUBLAS_COMPUTE_32F stays true fp32 (no TF32); fp16 inputs use tensor cores
  // with fp32 accumulation.
  ROSETTA_GPU_CUBLAS(cublasSetMathMode(ctx->cublas, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
  *out = ctx.release();
  return Error{};
}

// --- Matrix ---

DeviceMatrix::~DeviceMatrix() {
  DeviceGuard guard;
  guard.Set(device);
  for (SearchContext* ctx : idle_contexts) delete ctx;
  if (data != nullptr) cudaFree(data);
  if (norms != nullptr) cudaFree(norms);
}

Error CreateDeviceMatrix(const float* vectors, size_t n, size_t d, bool fp16, int device,
                         DeviceMatrix** out) {
  DeviceGuard guard;
  ROSETTA_GPU_RETURN_IF_ERROR(guard.Set(device));
  std::unique_ptr<DeviceMatrix> m(new (std::nothrow) DeviceMatrix);
  if (!m) return Error{kResourceExhausted, "out of host memory for a device matrix"};
  m->device = device;
  m->n = n;
  m->d = d;
  m->dp = PaddedDim(d, fp16);
  m->fp16 = fp16;
  cudaDeviceProp prop;
  ROSETTA_GPU_CUDA(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  m->multiprocessors = prop.multiProcessorCount;
  m->smem_optin = prop.sharedMemPerBlockOptin;

  if (n > 0) {
    const size_t elem = fp16 ? 2 : 4;
    const size_t data_bytes = n * m->dp * elem;
    ROSETTA_GPU_CUDA(cudaMalloc(&m->data, data_bytes), "cudaMalloc(base matrix)");
    ROSETTA_GPU_CUDA(cudaMalloc(reinterpret_cast<void**>(&m->norms), n * sizeof(float)),
                     "cudaMalloc(base norms)");
    m->bytes = data_bytes + n * sizeof(float);

    // Stage at most ~64 MiB of fp32 rows at a time.
    const size_t chunk_rows = std::max<size_t>(1, std::min(n, (size_t{64} << 20) / (d * 4)));
    DeviceBuffer staging;
    ROSETTA_GPU_RETURN_IF_ERROR(staging.Reserve(chunk_rows * d * 4, "cudaMalloc(upload staging)"));
    cudaStream_t stream = nullptr;
    ROSETTA_GPU_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking),
                     "cudaStreamCreateWithFlags");
    std::unique_ptr<CUstream_st, cudaError_t (*)(cudaStream_t)> stream_owner(stream,
                                                                             cudaStreamDestroy);
    for (size_t r0 = 0; r0 < n; r0 += chunk_rows) {
      const size_t rows = std::min(chunk_rows, n - r0);
      ROSETTA_GPU_CUDA(cudaMemcpyAsync(staging.ptr, vectors + r0 * d, rows * d * 4,
                                       cudaMemcpyHostToDevice, stream),
                       "cudaMemcpyAsync(upload rows)");
      void* dst = static_cast<char*>(m->data) + r0 * m->dp * elem;
      ROSETTA_GPU_RETURN_IF_ERROR(LaunchPackRows(staging.as<float>(), rows, d, m->dp, rows, fp16,
                                                 dst, m->norms + r0, stream));
      // The staging buffer is reused by the next chunk.
      ROSETTA_GPU_CUDA(cudaStreamSynchronize(stream), "cudaStreamSynchronize(upload)");
    }
  }
  *out = m.release();
  return Error{};
}

void DestroyDeviceMatrix(DeviceMatrix* m) { delete m; }

size_t DeviceMatrixBytes(const DeviceMatrix* m) { return m->bytes; }

// --- Search ---

namespace {

Error SearchWith(DeviceMatrix* m, SearchContext* ctx, const SearchRequest& r, SelEntry* out,
                 SearchStats* stats) {
  const size_t nq = r.nq;
  const uint32_t k = r.k;
  if (nq == 0) return Error{};
  if (m->n == 0) {
    for (size_t i = 0; i < nq * k; ++i) out[i] = SentinelEntry();
    return Error{};
  }
  const uint32_t queue_cap = QueueCapacity(k);
  const uint32_t cand_cap = CandCapacity(queue_cap);
  cudaStream_t s0 = ctx->stream[0];
  if (stats != nullptr) {
    ROSETTA_GPU_CUDA(cudaEventRecord(ctx->timing[0], s0), "cudaEventRecord");
  }

  // Queries: upload fp32 as given, pack (convert, pad) on the device. Extra zero rows let a pass
  // of the fused kernel read a full template width of queries past the last real one.
  const size_t query_rows = (nq + 15) / 16 * 16 + 16;
  const size_t elem = m->fp16 ? 2 : 4;
  ROSETTA_GPU_RETURN_IF_ERROR(ctx->raw_queries.Reserve(nq * m->d * 4, "cudaMalloc(queries)"));
  ROSETTA_GPU_RETURN_IF_ERROR(
      ctx->packed_queries.Reserve(query_rows * m->dp * elem, "cudaMalloc(packed queries)"));
  ROSETTA_GPU_RETURN_IF_ERROR(
      ctx->query_norms.Reserve(query_rows * sizeof(float), "cudaMalloc(query norms)"));
  ROSETTA_GPU_CUDA(cudaMemcpyAsync(ctx->raw_queries.ptr, r.queries, nq * m->d * 4,
                                   cudaMemcpyHostToDevice, s0),
                   "cudaMemcpyAsync(queries)");
  ROSETTA_GPU_RETURN_IF_ERROR(LaunchPackRows(ctx->raw_queries.as<float>(), nq, m->d, m->dp,
                                             query_rows, m->fp16, ctx->packed_queries.ptr,
                                             ctx->query_norms.as<float>(), s0));

  // Skip bitmap: the caller's words, zero-extended (or cut) to cover every row.
  const uint64_t* skip = nullptr;
  if (r.skip != nullptr && r.skip_words > 0) {
    const size_t words = (m->n + 63) / 64;
    const size_t given = std::min(words, r.skip_words);
    ROSETTA_GPU_RETURN_IF_ERROR(ctx->skip.Reserve(words * 8, "cudaMalloc(skip bitmap)"));
    ROSETTA_GPU_CUDA(cudaMemcpyAsync(ctx->skip.ptr, r.skip, given * 8, cudaMemcpyHostToDevice, s0),
                     "cudaMemcpyAsync(skip bitmap)");
    if (given < words) {
      ROSETTA_GPU_CUDA(
          cudaMemsetAsync(ctx->skip.as<uint64_t>() + given, 0, (words - given) * 8, s0),
          "cudaMemsetAsync(skip bitmap)");
    }
    skip = ctx->skip.as<uint64_t>();
  }

  ROSETTA_GPU_RETURN_IF_ERROR(ctx->final_queues.Reserve(nq * queue_cap * sizeof(SelEntry),
                                                        "cudaMalloc(result queues)"));
  PathArgs a;
  a.m = m;
  a.ctx = ctx;
  a.nq = nq;
  a.query_rows = query_rows;
  a.k = k;
  a.queue_cap = queue_cap;
  a.cand_cap = cand_cap;
  a.query_norms = r.l2 ? ctx->query_norms.as<float>() : nullptr;
  a.skip = skip;
  a.final_queues = ctx->final_queues.as<SelEntry>();
  a.stats = stats;

  bool fused = false;
  switch (r.path) {
    case PathChoice::kFused:
      fused = true;
      break;
    case PathChoice::kTiled:
      fused = false;
      break;
    case PathChoice::kAuto:
      fused = nq <= r.fused_max_batch && nq <= FusedMaxQueriesPerPass(*m, queue_cap, cand_cap);
      break;
  }
  if (stats != nullptr) stats->fused = fused;
  if (fused) {
    ROSETTA_GPU_RETURN_IF_ERROR(RunFused(a));
  } else {
    ROSETTA_GPU_RETURN_IF_ERROR(RunTiled(a, r.scratch_bytes, r.tile_rows));
  }
  if (stats != nullptr) {
    ROSETTA_GPU_CUDA(cudaEventRecord(ctx->timing[1], s0), "cudaEventRecord");
  }
  ROSETTA_GPU_CUDA(cudaMemcpy2DAsync(out, k * sizeof(SelEntry), a.final_queues,
                                     queue_cap * sizeof(SelEntry), k * sizeof(SelEntry), nq,
                                     cudaMemcpyDeviceToHost, s0),
                   "cudaMemcpy2DAsync(results)");
  ROSETTA_GPU_CUDA(cudaStreamSynchronize(s0), "search (cudaStreamSynchronize)");
  if (stats != nullptr) {
    float ms = 0;
    ROSETTA_GPU_CUDA(cudaEventElapsedTime(&ms, ctx->timing[0], ctx->timing[1]),
                     "cudaEventElapsedTime");
    stats->device_ms = ms;
  }
  return Error{};
}

}  // namespace

Error Search(DeviceMatrix* m, const SearchRequest& r, SelEntry* out, SearchStats* stats) {
  DeviceGuard guard;
  ROSETTA_GPU_RETURN_IF_ERROR(guard.Set(m->device));
  SearchContext* ctx = nullptr;
  {
    std::lock_guard<std::mutex> lock(m->mu);
    if (!m->idle_contexts.empty()) {
      ctx = m->idle_contexts.back();
      m->idle_contexts.pop_back();
    }
  }
  if (ctx == nullptr) {
    Error e = CreateSearchContext(&ctx);
    if (!e.ok()) {
      delete ctx;
      return e;
    }
  }
  Error e = SearchWith(m, ctx, r, out, r.want_stats ? stats : nullptr);
  // Whatever happened, no work of this call may still be running when the context is reused or
  // destroyed.
  const cudaError_t s0 = cudaStreamSynchronize(ctx->stream[0]);
  const cudaError_t s1 = cudaStreamSynchronize(ctx->stream[1]);
  if (e.ok() && s0 != cudaSuccess) e = CudaError(s0, "search (cudaStreamSynchronize)");
  if (e.ok() && s1 != cudaSuccess) e = CudaError(s1, "search (cudaStreamSynchronize)");
  if (s0 != cudaSuccess || s1 != cudaSuccess || e.code == kInternal) {
    delete ctx;  // possibly in a bad state: do not reuse.
  } else {
    std::lock_guard<std::mutex> lock(m->mu);
    m->idle_contexts.push_back(ctx);
  }
  return e;
}

// --- Device information ---

Error QueryDeviceInfo(int device, DeviceInfo* out) {
  DeviceGuard guard;
  ROSETTA_GPU_RETURN_IF_ERROR(guard.Set(device));
  cudaDeviceProp prop;
  ROSETTA_GPU_CUDA(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  out->name = prop.name;
  out->compute_major = prop.major;
  out->compute_minor = prop.minor;
  out->multiprocessors = prop.multiProcessorCount;
  out->shared_bytes_per_block = prop.sharedMemPerBlockOptin;
  out->l2_bytes = static_cast<size_t>(prop.l2CacheSize);
  ROSETTA_GPU_CUDA(cudaMemGetInfo(&out->free_bytes, &out->total_bytes), "cudaMemGetInfo");
  ROSETTA_GPU_CUDA(cudaDriverGetVersion(&out->driver_version), "cudaDriverGetVersion");
  ROSETTA_GPU_CUDA(cudaRuntimeGetVersion(&out->runtime_version), "cudaRuntimeGetVersion");
  return Error{};
}

// --- Measurements ---

namespace {

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

struct EventPair {
  cudaEvent_t start = nullptr, stop = nullptr;
  ~EventPair() {
    if (start != nullptr) cudaEventDestroy(start);
    if (stop != nullptr) cudaEventDestroy(stop);
  }
  Error Create() {
    ROSETTA_GPU_CUDA(cudaEventCreate(&start), "cudaEventCreate");
    ROSETTA_GPU_CUDA(cudaEventCreate(&stop), "cudaEventCreate");
    return Error{};
  }
  Error Seconds(double* s) {
    ROSETTA_GPU_CUDA(cudaEventSynchronize(stop), "cudaEventSynchronize");
    float ms = 0;
    ROSETTA_GPU_CUDA(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
    *s = ms * 1e-3;
    return Error{};
  }
};

// Deterministic pseudo-random values in [-1, 1) (hash of the index), stored as T.
template <typename T>
__global__ void FillRandomKernel(T* out, size_t count, uint32_t seed) {
  for (size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x; i < count;
       i += size_t{gridDim.x} * blockDim.x) {
    uint32_t x = static_cast<uint32_t>(i) * 2654435761u ^ seed;
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    const float v = static_cast<float>(x >> 8) * (1.0f / 8388608.0f) - 1.0f;
    out[i] = static_cast<T>(v);
  }
}

}  // namespace

Error TimeDeviceCopy(int device, size_t bytes, int reps, double* seconds) {
  DeviceGuard guard;
  ROSETTA_GPU_RETURN_IF_ERROR(guard.Set(device));
  DeviceBuffer a, b;
  ROSETTA_GPU_RETURN_IF_ERROR(a.Reserve(bytes, "cudaMalloc(copy source)"));
  ROSETTA_GPU_RETURN_IF_ERROR(b.Reserve(bytes, "cudaMalloc(copy destination)"));
  FillRandomKernel<float><<<1024, 256>>>(a.as<float>(), bytes / 4, 7);
  ROSETTA_GPU_LAUNCHED("FillRandomKernel launch");
  EventPair ev;
  ROSETTA_GPU_RETURN_IF_ERROR(ev.Create());
  ROSETTA_GPU_CUDA(cudaMemcpy(b.ptr, a.ptr, bytes, cudaMemcpyDeviceToDevice), "cudaMemcpy(D2D)");
  std::vector<double> times;
  for (int i = 0; i < std::max(reps, 1); ++i) {
    ROSETTA_GPU_CUDA(cudaEventRecord(ev.start), "cudaEventRecord");
    ROSETTA_GPU_CUDA(cudaMemcpyAsync(b.ptr, a.ptr, bytes, cudaMemcpyDeviceToDevice),
                     "cudaMemcpyAsync(D2D)");
    ROSETTA_GPU_CUDA(cudaEventRecord(ev.stop), "cudaEventRecord");
    double s = 0;
    ROSETTA_GPU_RETURN_IF_ERROR(ev.Seconds(&s));
    times.push_back(s);
  }
  *seconds = Median(times);
  return Error{};
}

Error TimeGemmOnly(DeviceMatrix* m, size_t nq, int reps, double* seconds) {
  DeviceGuard guard;
  ROSETTA_GPU_RETURN_IF_ERROR(guard.Set(m->device));
  if (m->n == 0 || nq == 0) return Error{kInvalidArgument, "empty GEMM"};
  const size_t elem = m->fp16 ? 2 : 4;
  DeviceBuffer queries, scores;
  ROSETTA_GPU_RETURN_IF_ERROR(queries.Reserve(nq * m->dp * elem, "cudaMalloc(GEMM queries)"));
  ROSETTA_GPU_RETURN_IF_ERROR(scores.Reserve(m->n * nq * 4, "cudaMalloc(GEMM scores)"));
  if (m->fp16) {
    FillRandomKernel<__half><<<1024, 256>>>(queries.as<__half>(), nq * m->dp, 11);
  } else {
    FillRandomKernel<float><<<1024, 256>>>(queries.as<float>(), nq * m->dp, 11);
  }
  ROSETTA_GPU_LAUNCHED("FillRandomKernel launch");
  cublasHandle_t handle = nullptr;
  ROSETTA_GPU_CUBLAS(cublasCreate(&handle), "cublasCreate");
  std::unique_ptr<cublasContext, cublasStatus_t (*)(cublasHandle_t)> owner(handle, cublasDestroy);
  ROSETTA_GPU_CUBLAS(cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
  const cudaDataType type = m->fp16 ? CUDA_R_16F : CUDA_R_32F;
  const float one = 1.f, zero = 0.f;
  auto gemm = [&]() {
    return cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(m->n),
                        static_cast<int>(nq), static_cast<int>(m->dp), &one, m->data, type,
                        static_cast<int>(m->dp), queries.ptr, type, static_cast<int>(m->dp), &zero,
                        scores.ptr, CUDA_R_32F, static_cast<int>(m->n), CUBLAS_COMPUTE_32F,
                        CUBLAS_GEMM_DEFAULT);
  };
  ROSETTA_GPU_CUBLAS(gemm(), "cublasGemmEx (warm-up)");
  EventPair ev;
  ROSETTA_GPU_RETURN_IF_ERROR(ev.Create());
  std::vector<double> times;
  for (int i = 0; i < std::max(reps, 1); ++i) {
    ROSETTA_GPU_CUDA(cudaEventRecord(ev.start), "cudaEventRecord");
    ROSETTA_GPU_CUBLAS(gemm(), "cublasGemmEx");
    ROSETTA_GPU_CUDA(cudaEventRecord(ev.stop), "cudaEventRecord");
    double s = 0;
    ROSETTA_GPU_RETURN_IF_ERROR(ev.Seconds(&s));
    times.push_back(s);
  }
  *seconds = Median(times);
  return Error{};
}

}  // namespace rosetta::kernels::gpu
