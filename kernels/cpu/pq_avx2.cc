// AVX2 + FMA PQ kernels (compiled with -mavx2 -mfma; dispatched only when the CPU supports them).
// Rules: see kernel_tables.h (intrinsics and internal-linkage functions only).
//
// Fast-scan: one 256-bit register holds the codes of 32 vectors for a pair of sub-quantizers
// (lane 0: sub-quantizer 2p, lane 1: 2p + 1; low nibbles = vectors 0..15, high = 16..31), and
// another the pair's two 16-entry uint8 tables. vpshufb looks up 32 entries per instruction.
// The uint8 results are summed in uint16 without unpacking: adding the register as 16-bit words
// accumulates (even byte + 256 * odd byte); a second accumulator sums the odd bytes alone (words
// shifted right by 8). At the end even = words - (odd << 8) modulo 2^16, which is exact because
// the caller keeps every true sum <= 65535. Per pair and block: 1 load, 3 masks/shifts,
// 2 shuffles, 2 shifts, 4 adds.
//
// 8-bit ADC: two variants, an unrolled scalar loop (as pq_scalar.cc) and a gather loop (8 vectors
// x 8 sub-quantizers per step: one vpgatherdps per vector and step, then an 8 x 8 transpose-add).
// The table uses whichever was faster in bench/ivf_pq_bench.cc (see kAdcUsesGather).
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cpu/pq_kernels.h"
#include "kernels/simd.h"

namespace rosetta::kernels::internal {
namespace {

constexpr size_t kLanes = 8;

void L2Table(const float* x, const float* cbt, size_t m, size_t ksub, size_t dsub, float* table) {
  for (size_t j = 0; j < m; ++j) {
    const float* xs = x + j * dsub;
    const float* cj = cbt + j * dsub * ksub;
    float* row = table + j * ksub;
    for (size_t i = 0; i < ksub; i += 2 * kLanes) {
      __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
      for (size_t t = 0; t < dsub; ++t) {
        const __m256 xt = _mm256_set1_ps(xs[t]);
        const float* c = cj + t * ksub + i;
        const __m256 d0 = _mm256_sub_ps(xt, _mm256_loadu_ps(c));
        const __m256 d1 = _mm256_sub_ps(xt, _mm256_loadu_ps(c + kLanes));
        a0 = _mm256_fmadd_ps(d0, d0, a0);
        a1 = _mm256_fmadd_ps(d1, d1, a1);
      }
      _mm256_storeu_ps(row + i, a0);
      _mm256_storeu_ps(row + i + kLanes, a1);
    }
  }
}

void IpTable(const float* x, const float* cbt, size_t m, size_t ksub, size_t dsub, float* table) {
  for (size_t j = 0; j < m; ++j) {
    const float* xs = x + j * dsub;
    const float* cj = cbt + j * dsub * ksub;
    float* row = table + j * ksub;
    for (size_t i = 0; i < ksub; i += 2 * kLanes) {
      __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
      for (size_t t = 0; t < dsub; ++t) {
        const __m256 xt = _mm256_set1_ps(xs[t]);
        const float* c = cj + t * ksub + i;
        a0 = _mm256_fmadd_ps(xt, _mm256_loadu_ps(c), a0);
        a1 = _mm256_fmadd_ps(xt, _mm256_loadu_ps(c + kLanes), a1);
      }
      _mm256_storeu_ps(row + i, a0);
      _mm256_storeu_ps(row + i + kLanes, a1);
    }
  }
}

// Running first minimum per lane: strict less keeps the earliest index of equal values.
struct Best {
  __m256 value;
  __m256i index;
};

inline Best InitBest() {
  return Best{_mm256_set1_ps(__builtin_inff()), _mm256_setzero_si256()};
}

inline void Update(Best& b, __m256 cur, __m256i idx) {
  const __m256 lt = _mm256_cmp_ps(cur, b.value, _CMP_LT_OQ);
  b.value = _mm256_blendv_ps(b.value, cur, lt);
  b.index = _mm256_castps_si256(
      _mm256_blendv_ps(_mm256_castsi256_ps(b.index), _mm256_castsi256_ps(idx), lt));
}

// The minimum of the 8 lanes, in every lane.
inline __m256 LaneMin(__m256 v) {
  v = _mm256_min_ps(v, _mm256_permute2f128_ps(v, v, 1));
  v = _mm256_min_ps(v, _mm256_shuffle_ps(v, v, 0x4E));
  return _mm256_min_ps(v, _mm256_shuffle_ps(v, v, 0xB1));
}

inline __m256i LaneMinEpi32(__m256i v) {
  v = _mm256_min_epi32(v, _mm256_permute2x128_si256(v, v, 1));
  v = _mm256_min_epi32(v, _mm256_shuffle_epi32(v, 0x4E));
  return _mm256_min_epi32(v, _mm256_shuffle_epi32(v, 0xB1));
}

// The first minimum over the lanes: the smallest index among the lanes at the minimum value.
inline uint32_t Reduce(const Best& b, float* min_value) {
  const __m256 mv = LaneMin(b.value);
  const __m256 at = _mm256_cmp_ps(b.value, mv, _CMP_EQ_OQ);
  if (_mm256_movemask_ps(at) == 0) {  // NaN entries (unspecified choice): lane 0
    *min_value = _mm256_cvtss_f32(b.value);
    return static_cast<uint32_t>(_mm256_cvtsi256_si32(b.index));
  }
  const __m256i candidates = _mm256_castps_si256(_mm256_blendv_ps(
      _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF)), _mm256_castsi256_ps(b.index), at));
  *min_value = _mm256_cvtss_f32(mv);
  return static_cast<uint32_t>(_mm256_cvtsi256_si32(LaneMinEpi32(candidates)));
}

// Lanes [0, r) set.
inline __m256i TailMask(size_t r) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(r)),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

uint32_t ArgminNormIp(const float* norms, const float* ip, size_t n, float* min_value) {
  const __m256 minus2 = _mm256_set1_ps(-2.0f);
  const __m256i step = _mm256_set1_epi32(static_cast<int>(kLanes));
  Best b = InitBest();
  __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  size_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    Update(b, _mm256_fmadd_ps(minus2, _mm256_loadu_ps(ip + i), _mm256_loadu_ps(norms + i)), idx);
    idx = _mm256_add_epi32(idx, step);
  }
  if (i < n) {
    const __m256i valid = TailMask(n - i);
    const __m256 w = _mm256_fmadd_ps(minus2, _mm256_maskload_ps(ip + i, valid),
                                     _mm256_maskload_ps(norms + i, valid));
    Update(b, _mm256_blendv_ps(_mm256_set1_ps(__builtin_inff()), w, _mm256_castsi256_ps(valid)),
           idx);
  }
  return Reduce(b, min_value);
}

// Four groups of 8 centroids per step: four independent multiply-add chains over t.
uint32_t NearestTransposed(const float* x, const float* ct, size_t d, size_t kpad, size_t k,
                           float* min_value) {
  const __m256i step = _mm256_set1_epi32(static_cast<int>(kLanes));
  const __m256 inf = _mm256_set1_ps(__builtin_inff());
  Best b = InitBest();
  __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  size_t i = 0;
  for (; i + 4 * kLanes <= k; i += 4 * kLanes) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    for (size_t t = 0; t < d; ++t) {
      const __m256 xt = _mm256_set1_ps(x[t]);
      const float* c = ct + t * kpad + i;
      const __m256 d0 = _mm256_sub_ps(xt, _mm256_loadu_ps(c));
      const __m256 d1 = _mm256_sub_ps(xt, _mm256_loadu_ps(c + kLanes));
      const __m256 d2 = _mm256_sub_ps(xt, _mm256_loadu_ps(c + 2 * kLanes));
      const __m256 d3 = _mm256_sub_ps(xt, _mm256_loadu_ps(c + 3 * kLanes));
      a0 = _mm256_fmadd_ps(d0, d0, a0);
      a1 = _mm256_fmadd_ps(d1, d1, a1);
      a2 = _mm256_fmadd_ps(d2, d2, a2);
      a3 = _mm256_fmadd_ps(d3, d3, a3);
    }
    Update(b, a0, idx);
    idx = _mm256_add_epi32(idx, step);
    Update(b, a1, idx);
    idx = _mm256_add_epi32(idx, step);
    Update(b, a2, idx);
    idx = _mm256_add_epi32(idx, step);
    Update(b, a3, idx);
    idx = _mm256_add_epi32(idx, step);
  }
  for (; i < k; i += kLanes) {
    __m256 a0 = _mm256_setzero_ps();
    for (size_t t = 0; t < d; ++t) {
      const __m256 d0 = _mm256_sub_ps(_mm256_set1_ps(x[t]), _mm256_loadu_ps(ct + t * kpad + i));
      a0 = _mm256_fmadd_ps(d0, d0, a0);
    }
    if (i + kLanes > k) {
      a0 = _mm256_blendv_ps(inf, a0, _mm256_castsi256_ps(TailMask(k - i)));
    }
    Update(b, a0, idx);
    idx = _mm256_add_epi32(idx, step);
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

// {sum(a0), ..., sum(a7)}: a transpose-add of eight accumulators.
__m256 Sum8x8(const __m256* a) {
  const __m256 s01 = _mm256_hadd_ps(a[0], a[1]);
  const __m256 s23 = _mm256_hadd_ps(a[2], a[3]);
  const __m256 s45 = _mm256_hadd_ps(a[4], a[5]);
  const __m256 s67 = _mm256_hadd_ps(a[6], a[7]);
  const __m256 s0123 = _mm256_hadd_ps(s01, s23);  // lane halves: (0,1,2,3) low, (0,1,2,3) high
  const __m256 s4567 = _mm256_hadd_ps(s45, s67);
  const __m256 lo = _mm256_permute2f128_ps(s0123, s4567, 0x20);
  const __m256 hi = _mm256_permute2f128_ps(s0123, s4567, 0x31);
  return _mm256_add_ps(lo, hi);
}

// Lookup offsets j * 256 for the 8 sub-quantizers of one step.
inline __m256i StepOffsets(size_t j) {
  return _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(j * 256)),
                          _mm256_setr_epi32(0, 256, 512, 768, 1024, 1280, 1536, 1792));
}

// Sum of the entries of one vector's codes for sub-quantizers [j0, m), scalar.
inline float TailSum(const uint8_t* c, size_t j0, size_t m, const float* table) {
  float s = 0;
  for (size_t j = j0; j < m; ++j) s += table[j * 256 + c[j]];
  return s;
}

void AdcScan8Gather(const uint8_t* codes, size_t n, size_t m, const float* table, float* out) {
  const size_t m8 = m / kLanes * kLanes;
  size_t v = 0;
  for (; v + kLanes <= n; v += kLanes) {
    __m256 acc[kLanes];
    for (size_t r = 0; r < kLanes; ++r) acc[r] = _mm256_setzero_ps();
    for (size_t j = 0; j < m8; j += kLanes) {
      const __m256i off = StepOffsets(j);
      for (size_t r = 0; r < kLanes; ++r) {
        const __m128i c8 =
            _mm_loadl_epi64(reinterpret_cast<const __m128i*>(codes + (v + r) * m + j));
        const __m256i idx = _mm256_add_epi32(_mm256_cvtepu8_epi32(c8), off);
        acc[r] = _mm256_add_ps(acc[r], _mm256_i32gather_ps(table, idx, 4));
      }
    }
    __m256 sums = Sum8x8(acc);
    if (m8 < m) {
      alignas(32) float tails[kLanes];
      for (size_t r = 0; r < kLanes; ++r) tails[r] = TailSum(codes + (v + r) * m, m8, m, table);
      sums = _mm256_add_ps(sums, _mm256_load_ps(tails));
    }
    _mm256_storeu_ps(out + v, sums);
  }
  for (; v < n; ++v) {
    const uint8_t* c = codes + v * m;
    __m256 acc = _mm256_setzero_ps();
    for (size_t j = 0; j < m8; j += kLanes) {
      const __m128i c8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(c + j));
      const __m256i idx = _mm256_add_epi32(_mm256_cvtepu8_epi32(c8), StepOffsets(j));
      acc = _mm256_add_ps(acc, _mm256_i32gather_ps(table, idx, 4));
    }
    const __m128 h = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    const __m128 h2 = _mm_add_ps(h, _mm_movehl_ps(h, h));
    const __m128 h1 = _mm_add_ss(h2, _mm_shuffle_ps(h2, h2, 1));
    out[v] = _mm_cvtss_f32(h1) + TailSum(c, m8, m, table);
  }
}

size_t FastScan(const uint8_t* blocks, size_t n, size_t pairs, const uint8_t* lut, uint16_t limit,
                uint16_t* acc, uint32_t* hits) {
  const size_t nblocks = (n + 31) / 32;
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  const __m128i lim = _mm_set1_epi16(static_cast<short>(limit));
  size_t nhits = 0;
  for (size_t b = 0; b < nblocks; ++b) {
    const uint8_t* block = blocks + b * pairs * 32;
    __m256i a_lo = _mm256_setzero_si256(), o_lo = _mm256_setzero_si256();
    __m256i a_hi = _mm256_setzero_si256(), o_hi = _mm256_setzero_si256();
    for (size_t p = 0; p < pairs; ++p) {
      const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + p * 32));
      const __m256i t = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lut + p * 32));
      const __m256i r_lo = _mm256_shuffle_epi8(t, _mm256_and_si256(c, low4));
      const __m256i r_hi = _mm256_shuffle_epi8(t, _mm256_and_si256(_mm256_srli_epi16(c, 4), low4));
      a_lo = _mm256_add_epi16(a_lo, r_lo);
      o_lo = _mm256_add_epi16(o_lo, _mm256_srli_epi16(r_lo, 8));
      a_hi = _mm256_add_epi16(a_hi, r_hi);
      o_hi = _mm256_add_epi16(o_hi, _mm256_srli_epi16(r_hi, 8));
    }
    // Lanes hold the two sub-quantizers of each pair: add them, then split even and odd vectors.
    const __m128i al = _mm_add_epi16(_mm256_castsi256_si128(a_lo), _mm256_extracti128_si256(a_lo, 1));
    const __m128i ol = _mm_add_epi16(_mm256_castsi256_si128(o_lo), _mm256_extracti128_si256(o_lo, 1));
    const __m128i ah = _mm_add_epi16(_mm256_castsi256_si128(a_hi), _mm256_extracti128_si256(a_hi, 1));
    const __m128i oh = _mm_add_epi16(_mm256_castsi256_si128(o_hi), _mm256_extracti128_si256(o_hi, 1));
    const __m128i el = _mm_sub_epi16(al, _mm_slli_epi16(ol, 8));
    const __m128i eh = _mm_sub_epi16(ah, _mm_slli_epi16(oh, 8));
    const __m128i v0 = _mm_unpacklo_epi16(el, ol);  // vectors 0..7
    const __m128i v1 = _mm_unpackhi_epi16(el, ol);  // 8..15
    const __m128i v2 = _mm_unpacklo_epi16(eh, oh);  // 16..23
    const __m128i v3 = _mm_unpackhi_epi16(eh, oh);  // 24..31
    __m128i* out = reinterpret_cast<__m128i*>(acc + b * 32);
    _mm_storeu_si128(out, v0);
    _mm_storeu_si128(out + 1, v1);
    _mm_storeu_si128(out + 2, v2);
    _mm_storeu_si128(out + 3, v3);
    const __m128i le0 = _mm_cmpeq_epi16(_mm_min_epu16(v0, lim), v0);
    const __m128i le1 = _mm_cmpeq_epi16(_mm_min_epu16(v1, lim), v1);
    const __m128i le2 = _mm_cmpeq_epi16(_mm_min_epu16(v2, lim), v2);
    const __m128i le3 = _mm_cmpeq_epi16(_mm_min_epu16(v3, lim), v3);
    uint32_t mask = static_cast<uint32_t>(_mm_movemask_epi8(_mm_packs_epi16(le0, le1))) |
                    (static_cast<uint32_t>(_mm_movemask_epi8(_mm_packs_epi16(le2, le3))) << 16);
    const size_t base = b * 32;
    if (n - base < 32) mask &= (uint32_t{1} << (n - base)) - 1;
    while (mask != 0) {
      hits[nhits++] = static_cast<uint32_t>(base + __builtin_ctz(mask));
      mask &= mask - 1;
    }
  }
  return nhits;
}

inline __m256 LaneMax(__m256 v) {
  v = _mm256_max_ps(v, _mm256_permute2f128_ps(v, v, 1));
  v = _mm256_max_ps(v, _mm256_shuffle_ps(v, v, 0x4E));
  return _mm256_max_ps(v, _mm256_shuffle_ps(v, v, 0xB1));
}

// Per row: two 8-float halves. See the scalar version for the exact semantics. Without row
// minima, pass 1 is an element-wise maximum (no horizontal reduction per row).
bool QuantizeLut(const float* table, size_t m, bool row_min, uint8_t* lut, float* bias,
                 float* inv_scale) {
  const __m256 zero = _mm256_setzero_ps();
  __m256 range = zero;
  __m256 finite = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
  double sum_lo = 0;
  for (size_t j = 0; j < m; ++j) {
    const __m256 a = _mm256_loadu_ps(table + j * 16);
    const __m256 b = _mm256_loadu_ps(table + j * 16 + 8);
    finite = _mm256_and_ps(finite, _mm256_and_ps(
        _mm256_cmp_ps(_mm256_mul_ps(a, zero), zero, _CMP_EQ_OQ),
        _mm256_cmp_ps(_mm256_mul_ps(b, zero), zero, _CMP_EQ_OQ)));
    if (row_min) {
      const __m256 lo = LaneMin(_mm256_min_ps(a, b));
      range = _mm256_max_ps(range, _mm256_sub_ps(LaneMax(_mm256_max_ps(a, b)), lo));
      sum_lo += _mm256_cvtss_f32(lo);
    } else {
      range = _mm256_max_ps(range, _mm256_max_ps(a, b));
    }
  }
  if (_mm256_movemask_ps(finite) != 0xFF) return false;
  const int qmax = 65535 / static_cast<int>(m > 0 ? m : 1) < 255
                       ? 65535 / static_cast<int>(m > 0 ? m : 1)
                       : 255;
  // Without row minima the lanes hold partial maxima: reduce them (max is exact, any order).
  const float r = _mm256_cvtss_f32(LaneMax(range));
  const float scale = r > 0 ? static_cast<float>(qmax) / r : 0.0f;
  const __m256 vscale = _mm256_set1_ps(scale);
  const __m256i vqmax = _mm256_set1_epi32(qmax);
  const size_t pairs = (m + 1) / 2;
  for (size_t j = 0; j < 2 * pairs; ++j) {
    __m128i* out = reinterpret_cast<__m128i*>(lut + (j / 2) * 32 + (j % 2) * 16);
    if (j >= m) {
      _mm_storeu_si128(out, _mm_setzero_si128());
      continue;
    }
    const __m256 a = _mm256_loadu_ps(table + j * 16);
    const __m256 b = _mm256_loadu_ps(table + j * 16 + 8);
    const __m256 lo = row_min ? LaneMin(_mm256_min_ps(a, b)) : zero;
    // cvtps2dq rounds to nearest even. Clamped to [0, qmax] (packus clamps negatives to 0).
    const __m256i qa = _mm256_min_epi32(
        _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_sub_ps(a, lo), vscale)), vqmax);
    const __m256i qb = _mm256_min_epi32(
        _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_sub_ps(b, lo), vscale)), vqmax);
    // 16 x int32 -> 16 x uint8: pack to uint16 (lanes interleave; fixed by the permute), then
    // to bytes.
    const __m256i w = _mm256_permute4x64_epi64(_mm256_packus_epi32(qa, qb), 0xD8);
    const __m128i bytes =
        _mm_packus_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
    _mm_storeu_si128(out, bytes);
  }
  *bias = static_cast<float>(sum_lo);
  *inv_scale = scale > 0 ? 1.0f / scale : 0.0f;
  return true;
}

}  // namespace

// Measured on AMD EPYC (Zen 4), m = 16..64: see bench/ivf_pq_bench.cc.
constexpr bool kAdcUsesGather = false;

constinit const PqKernelTable kAvx2PqKernels = {
    SimdLevel::kAvx2, &L2Table,
    &IpTable,         &NearestTransposed,
    &ArgminNormIp,
    kAdcUsesGather ? &AdcScan8Gather : &AdcScan8Unrolled,
    &FastScan,        &QuantizeLut,
};

void (*const kAvx2AdcScan8Gather)(const uint8_t*, size_t, size_t, const float*, float*) =
    &AdcScan8Gather;

}  // namespace rosetta::kernels::internal
