// Portable kernels (baseline ISA): the fallback level and the behaviour the SIMD levels must match.
//
// Eight independent accumulators break the loop-carried dependency of a single running sum, so
// even without SIMD the loop is not latency-bound; the compiler may still vectorise it with the
// baseline ISA (SSE2), which is fine: nothing here needs more than the x86-64 baseline.
#include <cstddef>
#include <cstring>

#include "kernels/cpu/kernel_tables.h"
#include "kernels/simd.h"

namespace rosetta::kernels::internal {
namespace {

float Dot(const float* a, const float* b, size_t d) {
  float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  for (; i + 8 <= d; i += 8) {
    for (int l = 0; l < 8; ++l) s[l] += a[i + l] * b[i + l];
  }
  for (int l = 0; i < d; ++i, ++l) s[l] += a[i] * b[i];
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

float L2Sqr(const float* a, const float* b, size_t d) {
  float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  for (; i + 8 <= d; i += 8) {
    for (int l = 0; l < 8; ++l) {
      const float t = a[i + l] - b[i + l];
      s[l] += t * t;
    }
  }
  for (int l = 0; i < d; ++i, ++l) {
    const float t = a[i] - b[i];
    s[l] += t * t;
  }
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

// Blocks of base vectors small enough to stay in L1/L2 while every query passes over them.
constexpr size_t kBaseBlock = 16;

void InnerProducts(const float* queries, size_t nq, const float* base, size_t nb, size_t d,
                   float* out, size_t ldo) {
  for (size_t j0 = 0; j0 < nb; j0 += kBaseBlock) {
    const size_t j1 = j0 + kBaseBlock < nb ? j0 + kBaseBlock : nb;
    for (size_t i = 0; i < nq; ++i) {
      const float* q = queries + i * d;
      for (size_t j = j0; j < j1; ++j) out[i * ldo + j] = Dot(q, base + j * d, d);
    }
  }
}

// The scalar "packed" layout is the plain row-major copy.
size_t PackedQueriesFloats(size_t nq, size_t d) { return nq * d; }

void PackQueries(const float* queries, size_t nq, size_t d, float* packed) {
  if (nq * d != 0) std::memcpy(packed, queries, nq * d * sizeof(float));
}

}  // namespace

constinit const KernelTable kScalarKernels = {
    SimdLevel::kScalar, &Dot,        &L2Sqr,        &InnerProducts, &PackedQueriesFloats,
    &PackQueries,       &InnerProducts,
};

}  // namespace rosetta::kernels::internal
