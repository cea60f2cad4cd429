// Portable PQ kernels (baseline ISA): the fallback level and the reference the SIMD levels are
// tested against (fast-scan: identical sums; float tables and ADC: within rounding).
#include <cstddef>
#include <cstdint>

#include "kernels/cpu/pq_kernels.h"
#include "kernels/simd.h"

namespace rosetta::kernels::internal {
namespace {

// Tables are built centroid-major in the inner loop (cbt rows are contiguous over centroids), so
// the compiler can vectorise them with the baseline ISA; the order over t stays sequential.
void L2Table(const float* x, const float* cbt, size_t m, size_t ksub, size_t dsub, float* table) {
  for (size_t j = 0; j < m; ++j) {
    float* row = table + j * ksub;
    for (size_t i = 0; i < ksub; ++i) row[i] = 0.0f;
    for (size_t t = 0; t < dsub; ++t) {
      const float xt = x[j * dsub + t];
      const float* c = cbt + (j * dsub + t) * ksub;
      for (size_t i = 0; i < ksub; ++i) {
        const float diff = xt - c[i];
        row[i] += diff * diff;
      }
    }
  }
}

void IpTable(const float* x, const float* cbt, size_t m, size_t ksub, size_t dsub, float* table) {
  for (size_t j = 0; j < m; ++j) {
    float* row = table + j * ksub;
    for (size_t i = 0; i < ksub; ++i) row[i] = 0.0f;
    for (size_t t = 0; t < dsub; ++t) {
      const float xt = x[j * dsub + t];
      const float* c = cbt + (j * dsub + t) * ksub;
      for (size_t i = 0; i < ksub; ++i) row[i] += xt * c[i];
    }
  }
}

void ArgminRows(const float* table, size_t m, size_t ksub, uint8_t* codes) {
  for (size_t j = 0; j < m; ++j) {
    const float* row = table + j * ksub;
    size_t best = 0;
    for (size_t i = 1; i < ksub; ++i) {
      if (row[i] < row[best]) best = i;
    }
    codes[j] = static_cast<uint8_t>(best);
  }
}

// Four vectors at a time, each with two partial sums: eight independent load-add chains keep the
// load ports busy (the sums are latency-bound otherwise).
void AdcScan8(const uint8_t* codes, size_t n, size_t m, const float* table, float* out) {
  size_t v = 0;
  for (; v + 4 <= n; v += 4) {
    const uint8_t* c0 = codes + v * m;
    const uint8_t* c1 = c0 + m;
    const uint8_t* c2 = c1 + m;
    const uint8_t* c3 = c2 + m;
    float a0 = 0, a1 = 0, a2 = 0, a3 = 0, b0 = 0, b1 = 0, b2 = 0, b3 = 0;
    size_t j = 0;
    for (; j + 2 <= m; j += 2) {
      const float* t0 = table + j * 256;
      const float* t1 = t0 + 256;
      a0 += t0[c0[j]];
      a1 += t0[c1[j]];
      a2 += t0[c2[j]];
      a3 += t0[c3[j]];
      b0 += t1[c0[j + 1]];
      b1 += t1[c1[j + 1]];
      b2 += t1[c2[j + 1]];
      b3 += t1[c3[j + 1]];
    }
    if (j < m) {
      const float* t0 = table + j * 256;
      a0 += t0[c0[j]];
      a1 += t0[c1[j]];
      a2 += t0[c2[j]];
      a3 += t0[c3[j]];
    }
    out[v] = a0 + b0;
    out[v + 1] = a1 + b1;
    out[v + 2] = a2 + b2;
    out[v + 3] = a3 + b3;
  }
  for (; v < n; ++v) {
    const uint8_t* c = codes + v * m;
    float a = 0, b = 0;
    size_t j = 0;
    for (; j + 2 <= m; j += 2) {
      a += table[j * 256 + c[j]];
      b += table[(j + 1) * 256 + c[j + 1]];
    }
    if (j < m) a += table[j * 256 + c[j]];
    out[v] = a + b;
  }
}

size_t FastScan(const uint8_t* blocks, size_t n, size_t pairs, const uint8_t* lut, uint16_t limit,
                uint16_t* acc, uint32_t* hits) {
  const size_t nblocks = (n + kFastScanBlock - 1) / kFastScanBlock;
  size_t nhits = 0;
  for (size_t b = 0; b < nblocks; ++b) {
    const uint8_t* block = blocks + b * pairs * 32;
    uint16_t* out = acc + b * kFastScanBlock;
    for (size_t v = 0; v < kFastScanBlock; ++v) {
      const size_t byte = v % 16;
      const int shift = v < 16 ? 0 : 4;
      uint32_t sum = 0;
      for (size_t p = 0; p < pairs; ++p) {
        const uint8_t* codes = block + p * 32;
        const uint8_t* table = lut + p * 32;
        sum += table[(codes[byte] >> shift) & 15];
        sum += table[16 + ((codes[16 + byte] >> shift) & 15)];
      }
      out[v] = static_cast<uint16_t>(sum);
    }
    for (size_t v = 0; v < kFastScanBlock; ++v) {
      const size_t idx = b * kFastScanBlock + v;
      if (idx < n && out[v] <= limit) hits[nhits++] = static_cast<uint32_t>(idx);
    }
  }
  return nhits;
}

}  // namespace

constinit const PqKernelTable kScalarPqKernels = {
    SimdLevel::kScalar, &L2Table, &IpTable, &ArgminRows, &AdcScan8, &FastScan,
};

void (*const kScalarAdcScan8)(const uint8_t*, size_t, size_t, const float*, float*) = &AdcScan8;

}  // namespace rosetta::kernels::internal
