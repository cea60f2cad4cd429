// AVX-512 (F/DQ/BW/VL) PQ kernels, compiled with those flags and dispatched only when the CPU and
// the OS support them. Rules: see kernel_tables.h (intrinsics and internal-linkage functions only).
//
// Fast-scan: as pq_avx2.cc, with two sub-quantizer pairs per 512-bit register (the four 128-bit
// lanes hold sub-quantizers 2p .. 2p + 3), so one vpshufb looks up 64 entries; an odd pair count
// ends with one pair zero-extended to 512 bits (its upper table lanes are zero and add nothing).
// The limit test uses a mask compare (vpcmpuw) instead of compare + pack + movemask.
//
// 8-bit ADC: unrolled scalar or gathers (8 vectors x 16 sub-quantizers per step, masked gathers
// for the sub-quantizer tail); the table uses whichever was faster (see kAdcUsesGather).
#include <immintrin.h>

// GCC 12 reports -Wmaybe-uninitialized inside avx512fintrin.h for the 256-bit extract/insert
// intrinsics (their masked builtins take an _mm256_undefined_* operand): a false positive.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include <cstddef>
#include <cstdint>

#include "kernels/cpu/pq_kernels.h"
#include "kernels/simd.h"

namespace rosetta::kernels::internal {
namespace {

constexpr size_t kLanes = 16;

void L2Table(const float* x, const float* cbt, size_t m, size_t ksub, size_t dsub, float* table) {
  for (size_t j = 0; j < m; ++j) {
    const float* xs = x + j * dsub;
    const float* cj = cbt + j * dsub * ksub;
    float* row = table + j * ksub;
    size_t i = 0;
    for (; i + 2 * kLanes <= ksub; i += 2 * kLanes) {
      __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
      for (size_t t = 0; t < dsub; ++t) {
        const __m512 xt = _mm512_set1_ps(xs[t]);
        const float* c = cj + t * ksub + i;
        const __m512 d0 = _mm512_sub_ps(xt, _mm512_loadu_ps(c));
        const __m512 d1 = _mm512_sub_ps(xt, _mm512_loadu_ps(c + kLanes));
        a0 = _mm512_fmadd_ps(d0, d0, a0);
        a1 = _mm512_fmadd_ps(d1, d1, a1);
      }
      _mm512_storeu_ps(row + i, a0);
      _mm512_storeu_ps(row + i + kLanes, a1);
    }
    for (; i < ksub; i += kLanes) {  // ksub = 16
      __m512 a0 = _mm512_setzero_ps();
      for (size_t t = 0; t < dsub; ++t) {
        const __m512 d0 = _mm512_sub_ps(_mm512_set1_ps(xs[t]), _mm512_loadu_ps(cj + t * ksub + i));
        a0 = _mm512_fmadd_ps(d0, d0, a0);
      }
      _mm512_storeu_ps(row + i, a0);
    }
  }
}

void IpTable(const float* x, const float* cbt, size_t m, size_t ksub, size_t dsub, float* table) {
  for (size_t j = 0; j < m; ++j) {
    const float* xs = x + j * dsub;
    const float* cj = cbt + j * dsub * ksub;
    float* row = table + j * ksub;
    size_t i = 0;
    for (; i + 2 * kLanes <= ksub; i += 2 * kLanes) {
      __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
      for (size_t t = 0; t < dsub; ++t) {
        const __m512 xt = _mm512_set1_ps(xs[t]);
        const float* c = cj + t * ksub + i;
        a0 = _mm512_fmadd_ps(xt, _mm512_loadu_ps(c), a0);
        a1 = _mm512_fmadd_ps(xt, _mm512_loadu_ps(c + kLanes), a1);
      }
      _mm512_storeu_ps(row + i, a0);
      _mm512_storeu_ps(row + i + kLanes, a1);
    }
    for (; i < ksub; i += kLanes) {
      __m512 a0 = _mm512_setzero_ps();
      for (size_t t = 0; t < dsub; ++t) {
        a0 = _mm512_fmadd_ps(_mm512_set1_ps(xs[t]), _mm512_loadu_ps(cj + t * ksub + i), a0);
      }
      _mm512_storeu_ps(row + i, a0);
    }
  }
}

// Running first minimum per lane: strict less keeps the earliest index of equal values.
struct Best {
  __m512 value;
  __m512i index;
};

inline Best InitBest() {
  return Best{_mm512_set1_ps(__builtin_inff()), _mm512_setzero_si512()};
}

inline void Update(Best& b, __m512 cur, __m512i idx) {
  const __mmask16 lt = _mm512_cmp_ps_mask(cur, b.value, _CMP_LT_OQ);
  b.value = _mm512_mask_blend_ps(lt, b.value, cur);
  b.index = _mm512_mask_blend_epi32(lt, b.index, idx);
}

// The first minimum over the lanes: the smallest index among the lanes at the minimum value.
inline uint32_t Reduce(const Best& b, float* min_value) {
  const float mv = _mm512_reduce_min_ps(b.value);
  const __mmask16 at = _mm512_cmp_ps_mask(b.value, _mm512_set1_ps(mv), _CMP_EQ_OQ);
  if (at == 0) {  // NaN entries (unspecified choice): lane 0
    *min_value = _mm512_cvtss_f32(b.value);
    return static_cast<uint32_t>(_mm_cvtsi128_si32(_mm512_castsi512_si128(b.index)));
  }
  *min_value = mv;
  return static_cast<uint32_t>(_mm512_mask_reduce_min_epi32(at, b.index));
}

inline __m512i Iota() {
  return _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}

uint32_t ArgminNormIp(const float* norms, const float* ip, size_t n, float* min_value) {
  const __m512 minus2 = _mm512_set1_ps(-2.0f);
  const __m512i step = _mm512_set1_epi32(static_cast<int>(kLanes));
  Best b = InitBest();
  __m512i idx = Iota();
  size_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    Update(b, _mm512_fmadd_ps(minus2, _mm512_loadu_ps(ip + i), _mm512_loadu_ps(norms + i)), idx);
    idx = _mm512_add_epi32(idx, step);
  }
  if (i < n) {
    const __mmask16 valid = static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512 w = _mm512_fmadd_ps(minus2, _mm512_maskz_loadu_ps(valid, ip + i),
                                     _mm512_maskz_loadu_ps(valid, norms + i));
    Update(b, _mm512_mask_blend_ps(valid, _mm512_set1_ps(__builtin_inff()), w), idx);
  }
  return Reduce(b, min_value);
}

// Four groups of 16 centroids per step: four independent multiply-add chains over t.
uint32_t NearestTransposed(const float* x, const float* ct, size_t d, size_t kpad, size_t k,
                           float* min_value) {
  const __m512i step = _mm512_set1_epi32(static_cast<int>(kLanes));
  const __m512 inf = _mm512_set1_ps(__builtin_inff());
  Best b = InitBest();
  __m512i idx = Iota();
  size_t i = 0;
  for (; i + 4 * kLanes <= k; i += 4 * kLanes) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    __m512 a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    for (size_t t = 0; t < d; ++t) {
      const __m512 xt = _mm512_set1_ps(x[t]);
      const float* c = ct + t * kpad + i;
      const __m512 d0 = _mm512_sub_ps(xt, _mm512_loadu_ps(c));
      const __m512 d1 = _mm512_sub_ps(xt, _mm512_loadu_ps(c + kLanes));
      const __m512 d2 = _mm512_sub_ps(xt, _mm512_loadu_ps(c + 2 * kLanes));
      const __m512 d3 = _mm512_sub_ps(xt, _mm512_loadu_ps(c + 3 * kLanes));
      a0 = _mm512_fmadd_ps(d0, d0, a0);
      a1 = _mm512_fmadd_ps(d1, d1, a1);
      a2 = _mm512_fmadd_ps(d2, d2, a2);
      a3 = _mm512_fmadd_ps(d3, d3, a3);
    }
    Update(b, a0, idx);
    idx = _mm512_add_epi32(idx, step);
    Update(b, a1, idx);
    idx = _mm512_add_epi32(idx, step);
    Update(b, a2, idx);
    idx = _mm512_add_epi32(idx, step);
    Update(b, a3, idx);
    idx = _mm512_add_epi32(idx, step);
  }
  for (; i < k; i += kLanes) {
    __m512 a0 = _mm512_setzero_ps();
    for (size_t t = 0; t < d; ++t) {
      const __m512 d0 = _mm512_sub_ps(_mm512_set1_ps(x[t]), _mm512_loadu_ps(ct + t * kpad + i));
      a0 = _mm512_fmadd_ps(d0, d0, a0);
    }
    if (i + kLanes > k) {
      a0 = _mm512_mask_blend_ps(static_cast<__mmask16>((1u << (k - i)) - 1), inf, a0);
    }
    Update(b, a0, idx);
    idx = _mm512_add_epi32(idx, step);
  }
  return Reduce(b, min_value);
}

void AdcScan8Unrolled(const uint8_t* codes, size_t n, size_t m, const float* table, float* out) {
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

// {sum(a0), ..., sum(a7)} of eight 256-bit accumulators.
__m256 Sum8x8(const __m256* a) {
  const __m256 s01 = _mm256_hadd_ps(a[0], a[1]);
  const __m256 s23 = _mm256_hadd_ps(a[2], a[3]);
  const __m256 s45 = _mm256_hadd_ps(a[4], a[5]);
  const __m256 s67 = _mm256_hadd_ps(a[6], a[7]);
  const __m256 s0123 = _mm256_hadd_ps(s01, s23);
  const __m256 s4567 = _mm256_hadd_ps(s45, s67);
  const __m256 lo = _mm256_permute2f128_ps(s0123, s4567, 0x20);
  const __m256 hi = _mm256_permute2f128_ps(s0123, s4567, 0x31);
  return _mm256_add_ps(lo, hi);
}

inline __m512i StepOffsets(size_t j) {
  return _mm512_add_epi32(
      _mm512_set1_epi32(static_cast<int>(j * 256)),
      _mm512_setr_epi32(0, 256, 512, 768, 1024, 1280, 1536, 1792, 2048, 2304, 2560, 2816, 3072,
                        3328, 3584, 3840));
}

// Gathers the entries of sub-quantizers [j, j + 16) of one code (lanes beyond m are masked: no
// code byte or table entry is read for them) and adds them to acc.
inline __m512 GatherStep(const uint8_t* c, size_t j, size_t m, const float* table, __m512 acc) {
  const size_t left = m - j;
  if (left >= kLanes) {
    const __m128i c16 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(c + j));
    const __m512i idx = _mm512_add_epi32(_mm512_cvtepu8_epi32(c16), StepOffsets(j));
    return _mm512_add_ps(acc, _mm512_i32gather_ps(idx, table, 4));
  }
  const __mmask16 k = static_cast<__mmask16>((1u << left) - 1);
  const __m128i c16 = _mm_maskz_loadu_epi8(k, c + j);
  const __m512i idx = _mm512_add_epi32(_mm512_cvtepu8_epi32(c16), StepOffsets(j));
  return _mm512_add_ps(acc, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), k, idx, table, 4));
}

void AdcScan8Gather(const uint8_t* codes, size_t n, size_t m, const float* table, float* out) {
  size_t v = 0;
  for (; v + 8 <= n; v += 8) {
    __m512 acc[8];
    for (size_t r = 0; r < 8; ++r) acc[r] = _mm512_setzero_ps();
    for (size_t j = 0; j < m; j += kLanes) {
      for (size_t r = 0; r < 8; ++r) acc[r] = GatherStep(codes + (v + r) * m, j, m, table, acc[r]);
    }
    __m256 half[8];
    for (size_t r = 0; r < 8; ++r) {
      half[r] = _mm256_add_ps(_mm512_castps512_ps256(acc[r]), _mm512_extractf32x8_ps(acc[r], 1));
    }
    _mm256_storeu_ps(out + v, Sum8x8(half));
  }
  for (; v < n; ++v) {
    __m512 acc = _mm512_setzero_ps();
    for (size_t j = 0; j < m; j += kLanes) acc = GatherStep(codes + v * m, j, m, table, acc);
    out[v] = _mm512_reduce_add_ps(acc);
  }
}

size_t FastScan(const uint8_t* blocks, size_t n, size_t pairs, const uint8_t* lut, uint16_t limit,
                uint16_t* acc, uint32_t* hits) {
  const size_t nblocks = (n + 31) / 32;
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  const __m512i lim = _mm512_set1_epi16(static_cast<short>(limit));
  const size_t quads = pairs / 2;
  size_t nhits = 0;
  for (size_t b = 0; b < nblocks; ++b) {
    const uint8_t* block = blocks + b * pairs * 32;
    __m512i a_lo = _mm512_setzero_si512(), o_lo = _mm512_setzero_si512();
    __m512i a_hi = _mm512_setzero_si512(), o_hi = _mm512_setzero_si512();
    for (size_t q = 0; q <= quads; ++q) {
      __m512i c, t;
      if (q < quads) {
        c = _mm512_loadu_si512(block + q * 64);
        t = _mm512_loadu_si512(lut + q * 64);
      } else if (pairs % 2 == 1) {
        c = _mm512_inserti64x4(_mm512_setzero_si512(),
                               _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + q * 64)),
                               0);
        t = _mm512_inserti64x4(_mm512_setzero_si512(),
                               _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lut + q * 64)),
                               0);
      } else {
        break;
      }
      const __m512i r_lo = _mm512_shuffle_epi8(t, _mm512_and_si512(c, low4));
      const __m512i r_hi = _mm512_shuffle_epi8(t, _mm512_and_si512(_mm512_srli_epi16(c, 4), low4));
      a_lo = _mm512_add_epi16(a_lo, r_lo);
      o_lo = _mm512_add_epi16(o_lo, _mm512_srli_epi16(r_lo, 8));
      a_hi = _mm512_add_epi16(a_hi, r_hi);
      o_hi = _mm512_add_epi16(o_hi, _mm512_srli_epi16(r_hi, 8));
    }
    // Sum the four lanes (sub-quantizers), then split even and odd vectors.
    const __m256i al8 = _mm256_add_epi16(_mm512_castsi512_si256(a_lo), _mm512_extracti64x4_epi64(a_lo, 1));
    const __m256i ol8 = _mm256_add_epi16(_mm512_castsi512_si256(o_lo), _mm512_extracti64x4_epi64(o_lo, 1));
    const __m256i ah8 = _mm256_add_epi16(_mm512_castsi512_si256(a_hi), _mm512_extracti64x4_epi64(a_hi, 1));
    const __m256i oh8 = _mm256_add_epi16(_mm512_castsi512_si256(o_hi), _mm512_extracti64x4_epi64(o_hi, 1));
    const __m128i al = _mm_add_epi16(_mm256_castsi256_si128(al8), _mm256_extracti128_si256(al8, 1));
    const __m128i ol = _mm_add_epi16(_mm256_castsi256_si128(ol8), _mm256_extracti128_si256(ol8, 1));
    const __m128i ah = _mm_add_epi16(_mm256_castsi256_si128(ah8), _mm256_extracti128_si256(ah8, 1));
    const __m128i oh = _mm_add_epi16(_mm256_castsi256_si128(oh8), _mm256_extracti128_si256(oh8, 1));
    const __m128i el = _mm_sub_epi16(al, _mm_slli_epi16(ol, 8));
    const __m128i eh = _mm_sub_epi16(ah, _mm_slli_epi16(oh, 8));
    const __m256i v_lo = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_unpacklo_epi16(el, ol)),
                                                 _mm_unpackhi_epi16(el, ol), 1);  // vectors 0..15
    const __m256i v_hi = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_unpacklo_epi16(eh, oh)),
                                                 _mm_unpackhi_epi16(eh, oh), 1);  // 16..31
    const __m512i all = _mm512_inserti64x4(_mm512_castsi256_si512(v_lo), v_hi, 1);
    _mm512_storeu_si512(acc + b * 32, all);
    uint32_t mask = static_cast<uint32_t>(_mm512_cmple_epu16_mask(all, lim));
    const size_t base = b * 32;
    if (n - base < 32) mask &= (uint32_t{1} << (n - base)) - 1;
    while (mask != 0) {
      hits[nhits++] = static_cast<uint32_t>(base + __builtin_ctz(mask));
      mask &= mask - 1;
    }
  }
  return nhits;
}

// One row = one 512-bit register. See the scalar version for the exact semantics. Without row
// minima, pass 1 is an element-wise maximum (no horizontal reduction per row).
bool QuantizeLut(const float* table, size_t m, bool row_min, uint8_t* lut, float* bias,
                 float* inv_scale) {
  const __m512 zero = _mm512_setzero_ps();
  __m512 vrange = zero;
  __mmask16 finite = 0xFFFF;
  float range = 0;
  double sum_lo = 0;
  for (size_t j = 0; j < m; ++j) {
    const __m512 a = _mm512_loadu_ps(table + j * 16);
    finite &= _mm512_cmp_ps_mask(_mm512_mul_ps(a, zero), zero, _CMP_EQ_OQ);
    if (row_min) {
      const float lo = _mm512_reduce_min_ps(a);
      const float r = _mm512_reduce_max_ps(a) - lo;
      range = r > range ? r : range;
      sum_lo += lo;
    } else {
      vrange = _mm512_max_ps(vrange, a);
    }
  }
  if (finite != 0xFFFF) return false;
  if (!row_min) range = _mm512_reduce_max_ps(vrange);  // max is exact, in any order
  const int qmax = 65535 / static_cast<int>(m > 0 ? m : 1) < 255
                       ? 65535 / static_cast<int>(m > 0 ? m : 1)
                       : 255;
  const float scale = range > 0 ? static_cast<float>(qmax) / range : 0.0f;
  const __m512 vscale = _mm512_set1_ps(scale);
  const __m512i vqmax = _mm512_set1_epi32(qmax);
  const __m512i vzero = _mm512_setzero_si512();
  const size_t pairs = (m + 1) / 2;
  for (size_t j = 0; j < 2 * pairs; ++j) {
    __m128i* out = reinterpret_cast<__m128i*>(lut + (j / 2) * 32 + (j % 2) * 16);
    if (j >= m) {
      _mm_storeu_si128(out, _mm_setzero_si128());
      continue;
    }
    const __m512 a = _mm512_loadu_ps(table + j * 16);
    const __m512 lo = row_min ? _mm512_set1_ps(_mm512_reduce_min_ps(a)) : zero;
    // cvtps2dq rounds to nearest even; clamped to [0, qmax].
    const __m512i q = _mm512_max_epi32(
        _mm512_min_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(_mm512_sub_ps(a, lo), vscale)), vqmax),
        vzero);
    _mm_storeu_si128(out, _mm512_cvtepi32_epi8(q));
  }
  *bias = static_cast<float>(sum_lo);
  *inv_scale = scale > 0 ? 1.0f / scale : 0.0f;
  return true;
}

}  // namespace

// Measured on AMD EPYC (Zen 4), m = 16..64: see bench/ivf_pq_bench.cc.
constexpr bool kAdcUsesGather = false;

constinit const PqKernelTable kAvx512PqKernels = {
    SimdLevel::kAvx512, &L2Table,
    &IpTable,           &NearestTransposed,
    &ArgminNormIp,
    kAdcUsesGather ? &AdcScan8Gather : &AdcScan8Unrolled,
    &FastScan,          &QuantizeLut,
};

void (*const kAvx512AdcScan8Gather)(const uint8_t*, size_t, size_t, const float*, float*) =
    &AdcScan8Gather;

}  // namespace rosetta::kernels::internal
