// Portable PQ kernels (baseline ISA): the fallback level and the reference the SIMD levels are
// tested against (fast-scan: identical sums; float tables and ADC: within rounding).
#include <cstddef>
#include <cstdint>

#include <immintrin.h>  // SSE2 (x86-64 baseline) conversions only

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

uint32_t ArgminNormIp(const float* norms, const float* ip, size_t n, float* min_value) {
  float b = __builtin_inff();
  size_t best = 0;
  for (size_t i = 0; i < n; ++i) {
    const float w = norms[i] - 2.0f * ip[i];
    if (w < b) {
      b = w;
      best = i;
    }
  }
  *min_value = b;
  return static_cast<uint32_t>(best);
}

uint32_t NearestTransposed(const float* x, const float* ct, size_t d, size_t kpad, size_t k,
                           float* min_value) {
  float b = __builtin_inff();
  size_t best = 0;
  for (size_t i = 0; i < k; ++i) {
    float s = 0;
    for (size_t t = 0; t < d; ++t) {
      const float diff = x[t] - ct[t * kpad + i];
      s += diff * diff;
    }
    if (s < b) {
      b = s;
      best = i;
    }
  }
  *min_value = b;
  return static_cast<uint32_t>(best);
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

bool QuantizeLut(const float* table, size_t m, bool row_min, uint8_t* lut, float* bias,
                 float* inv_scale) {
  float range = 0;
  double sum_lo = 0;
  for (size_t j = 0; j < m; ++j) {
    const float* row = table + j * 16;
    float lo = row[0], hi = row[0];
    for (size_t i = 0; i < 16; ++i) {
      if (!(row[i] * 0.0f == 0.0f)) return false;  // NaN or infinite
      lo = row[i] < lo ? row[i] : lo;
      hi = row[i] > hi ? row[i] : hi;
    }
    if (!row_min) lo = 0;
    const float r = hi - lo;
    range = r > range ? r : range;
    sum_lo += lo;
  }
  const int qmax = 65535 / static_cast<int>(m > 0 ? m : 1) < 255
                       ? 65535 / static_cast<int>(m > 0 ? m : 1)
                       : 255;
  const float scale = range > 0 ? static_cast<float>(qmax) / range : 0.0f;
  const size_t pairs = (m + 1) / 2;
  for (size_t j = 0; j < 2 * pairs; ++j) {
    uint8_t* out = lut + (j / 2) * 32 + (j % 2) * 16;
    if (j >= m) {
      for (size_t i = 0; i < 16; ++i) out[i] = 0;
      continue;
    }
    const float* row = table + j * 16;
    float lo = 0;
    if (row_min) {
      lo = row[0];
      for (size_t i = 1; i < 16; ++i) lo = row[i] < lo ? row[i] : lo;
    }
    for (size_t i = 0; i < 16; ++i) {
      // cvtss2si rounds to nearest even (the default MXCSR mode), as the SIMD conversions do.
      const int q = _mm_cvtss_si32(_mm_set_ss((row[i] - lo) * scale));
      out[i] = static_cast<uint8_t>(q < 0 ? 0 : (q < qmax ? q : qmax));
    }
  }
  *bias = static_cast<float>(sum_lo);
  *inv_scale = scale > 0 ? 1.0f / scale : 0.0f;
  return true;
}

}  // namespace

constinit const PqKernelTable kScalarPqKernels = {
    SimdLevel::kScalar, &L2Table,  &IpTable, &NearestTransposed,
    &ArgminNormIp,      &AdcScan8, &FastScan,         &QuantizeLut,
};

void (*const kScalarAdcScan8)(const uint8_t*, size_t, size_t, const float*, float*) = &AdcScan8;

}  // namespace rosetta::kernels::internal
