// AVX2 + FMA kernels (compiled with -mavx2 -mfma, dispatched only when the CPU and the OS support
// them). See kernel_tables.h for the rules this TU follows: intrinsics and
// internal-linkage functions only, no inline functions or templates from shared headers.
//
// inner_products has two regimes:
//  * few queries (nq < kGemmMinQueries): memory-bound streaming. One to three queries: base rows
//    are read strictly in order (see StreamRows). 4..15 queries: each group of 4 base rows is
//    loaded once and multiplied with every query (query rows stay in L1); each product is an
//    8-lane accumulator reduced once at the end.
//  * many queries: compute-bound, a register-blocked GEMM micro-kernel. The queries are packed
//    transposed in blocks of kQueryLanes (element k of the block's 16 queries is contiguous), so
//    one step of the inner loop is two vector loads of packed queries, kBaseRows scalar broadcasts
//    of base elements b_c[k] (straight from the unpacked base rows: no base packing), and
//    2 x kBaseRows FMAs into 2 x kBaseRows accumulators. The kBaseRows base rows stay in L1 while
//    every query block streams over them from L2, so the loop is FMA-bound. The accumulators hold
//    a (queries x base) tile transposed; it is spilled to a small buffer and scattered to `out`.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cpu/kernel_tables.h"
#include "kernels/simd.h"

namespace rosetta::kernels::internal {
namespace {

constexpr size_t kLanes = 8;

// Lanes [0, r) set; maskload never touches (nor faults on) the lanes that are not set.
inline __m256i TailMask(size_t r) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(r)),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// {sum(a), sum(b), sum(c), sum(d)}, each summed in the same fixed order.
inline __m128 Sum4(__m256 a, __m256 b, __m256 c, __m256 d) {
  const __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
  return _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
}

// The same order as one lane of Sum4, so a product does not depend on its position in a tile.
inline float Sum1(__m256 a) { return _mm_cvtss_f32(Sum4(a, a, a, a)); }

float Dot(const float* a, const float* b, size_t d) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 4 * kLanes <= d; i += 4 * kLanes) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
    s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
  }
  for (; i + kLanes <= d; i += kLanes) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
  }
  if (i < d) {
    const __m256i m = TailMask(d - i);
    s1 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m), s1);
  }
  return Sum1(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
}

float L2Sqr(const float* a, const float* b, size_t d) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 4 * kLanes <= d; i += 4 * kLanes) {
    const __m256 t0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
    const __m256 t1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
    const __m256 t2 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16));
    const __m256 t3 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24));
    s0 = _mm256_fmadd_ps(t0, t0, s0);
    s1 = _mm256_fmadd_ps(t1, t1, s1);
    s2 = _mm256_fmadd_ps(t2, t2, s2);
    s3 = _mm256_fmadd_ps(t3, t3, s3);
  }
  for (; i + kLanes <= d; i += kLanes) {
    const __m256 t = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
    s0 = _mm256_fmadd_ps(t, t, s0);
  }
  if (i < d) {
    const __m256i m = TailMask(d - i);
    const __m256 t = _mm256_sub_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m));
    s1 = _mm256_fmadd_ps(t, t, s1);
  }
  return Sum1(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
}

// ---------------------------------------------------------------------------------------------
// Few queries: streaming dot products.
// ---------------------------------------------------------------------------------------------

// out[r * ldo + c] = <q_r, b_c> for r < QR, c < BR; q rows and b rows have stride d.
template <int QR, int BR>
inline void DirectTile(const float* q, const float* b, size_t d, float* out, size_t ldo) {
  __m256 acc[QR][BR];
#pragma GCC unroll 16
  for (int r = 0; r < QR; ++r) {
#pragma GCC unroll 16
    for (int c = 0; c < BR; ++c) acc[r][c] = _mm256_setzero_ps();
  }
  size_t i = 0;
  for (; i + kLanes <= d; i += kLanes) {
    __m256 bv[BR];
#pragma GCC unroll 16
    for (int c = 0; c < BR; ++c) bv[c] = _mm256_loadu_ps(b + c * d + i);
#pragma GCC unroll 16
    for (int r = 0; r < QR; ++r) {
      const __m256 qv = _mm256_loadu_ps(q + r * d + i);
#pragma GCC unroll 16
      for (int c = 0; c < BR; ++c) acc[r][c] = _mm256_fmadd_ps(qv, bv[c], acc[r][c]);
    }
  }
  if (i < d) {
    const __m256i m = TailMask(d - i);
    __m256 bv[BR];
#pragma GCC unroll 16
    for (int c = 0; c < BR; ++c) bv[c] = _mm256_maskload_ps(b + c * d + i, m);
#pragma GCC unroll 16
    for (int r = 0; r < QR; ++r) {
      const __m256 qv = _mm256_maskload_ps(q + r * d + i, m);
#pragma GCC unroll 16
      for (int c = 0; c < BR; ++c) acc[r][c] = _mm256_fmadd_ps(qv, bv[c], acc[r][c]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < QR; ++r) {
    if constexpr (BR % 4 == 0) {
#pragma GCC unroll 16
      for (int c = 0; c < BR; c += 4) {
        _mm_storeu_ps(out + r * ldo + c,
                      Sum4(acc[r][c], acc[r][c + 1], acc[r][c + 2], acc[r][c + 3]));
      }
    } else {
#pragma GCC unroll 16
      for (int c = 0; c < BR; ++c) out[r * ldo + c] = Sum1(acc[r][c]);
    }
  }
}

// All queries against BR base rows starting at b (out points at column 0 of those rows). With 16
// ymm registers, tiles stay at <= 8 accumulators.
template <int BR>
inline void DirectColumns(const float* queries, size_t nq, const float* b, size_t d, float* out,
                          size_t ldo) {
  size_t i = 0;
  if constexpr (BR <= 4) {
    for (; i + 2 <= nq; i += 2) DirectTile<2, BR>(queries + i * d, b, d, out + i * ldo, ldo);
  }
  for (; i < nq; ++i) DirectTile<1, BR>(queries + i * d, b, d, out + i * ldo, ldo);
}

// {sum(a)} of 8 lanes in a fixed order.
inline float Sum8(__m256 a) {
  const __m128 h = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  const __m128 t = _mm_add_ps(h, _mm_movehl_ps(h, h));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

// One to three queries: the base is streamed from memory strictly row after row (each row read
// once, linearly, and multiplied with every query). In this memory-bound regime the access
// pattern sets the speed: on Zen 4, reading several rows interleaved streams markedly slower than
// one row at a time. A is the number of 8-lane accumulators per query.
template <int QR, int A>
void StreamRows(const float* queries, const float* base, size_t nb, size_t d, float* out,
                size_t ldo) {
  constexpr size_t kStep = 8 * A;
  for (size_t j = 0; j < nb; ++j) {
    const float* b = base + j * d;
    __m256 acc[QR][A];
#pragma GCC unroll 4
    for (int r = 0; r < QR; ++r) {
#pragma GCC unroll 4
      for (int a = 0; a < A; ++a) acc[r][a] = _mm256_setzero_ps();
    }
    size_t i = 0;
    for (; i + kStep <= d; i += kStep) {
#pragma GCC unroll 4
      for (int a = 0; a < A; ++a) {
        const __m256 bv = _mm256_loadu_ps(b + i + 8 * a);
#pragma GCC unroll 4
        for (int r = 0; r < QR; ++r) {
          acc[r][a] = _mm256_fmadd_ps(_mm256_loadu_ps(queries + r * d + i + 8 * a), bv, acc[r][a]);
        }
      }
    }
    for (; i + 8 <= d; i += 8) {
      const __m256 bv = _mm256_loadu_ps(b + i);
#pragma GCC unroll 4
      for (int r = 0; r < QR; ++r) {
        acc[r][0] = _mm256_fmadd_ps(_mm256_loadu_ps(queries + r * d + i), bv, acc[r][0]);
      }
    }
    if (i < d) {
      const __m256i m = TailMask(d - i);
      const __m256 bv = _mm256_maskload_ps(b + i, m);
#pragma GCC unroll 4
      for (int r = 0; r < QR; ++r) {
        acc[r][A - 1] =
            _mm256_fmadd_ps(_mm256_maskload_ps(queries + r * d + i, m), bv, acc[r][A - 1]);
      }
    }
#pragma GCC unroll 4
    for (int r = 0; r < QR; ++r) {
      __m256 t = acc[r][0];
#pragma GCC unroll 4
      for (int a = 1; a < A; ++a) t = _mm256_add_ps(t, acc[r][a]);
      out[r * ldo + j] = Sum8(t);
    }
  }
}

void DirectProducts(const float* queries, size_t nq, const float* base, size_t nb, size_t d,
                    float* out, size_t ldo) {
  switch (nq) {
    case 0:
      return;
    case 1:
      StreamRows<1, 4>(queries, base, nb, d, out, ldo);
      return;
    case 2:
      StreamRows<2, 2>(queries, base, nb, d, out, ldo);
      return;
    case 3:
      StreamRows<3, 2>(queries, base, nb, d, out, ldo);
      return;
    default:
      break;
  }
  // 4..15 queries: 2 x 4 tiles (16 ymm registers), each base row group loaded once per pass.
  size_t j = 0;
  for (; j + 4 <= nb; j += 4) DirectColumns<4>(queries, nq, base + j * d, d, out + j, ldo);
  for (; j < nb; ++j) DirectColumns<1>(queries, nq, base + j * d, d, out + j, ldo);
}

// ---------------------------------------------------------------------------------------------
// Many queries: packed-query GEMM micro-kernel.
// ---------------------------------------------------------------------------------------------

constexpr size_t kGemmMinQueries = 16;
constexpr int kQueryVecs = 2;                           // accumulator vectors per base row
constexpr size_t kQueryLanes = kQueryVecs * kLanes;     // queries per packed block
constexpr int kBaseRows = 6;                            // base rows per micro-tile

// tile[c * kQueryLanes + l] = <query l of the packed block, base row c>, c < kBaseRows.
// rows[c] are the base rows (padding rows may repeat a valid row; their results are dropped).
inline void GemmMicro(const float* packed_block, const float* const* rows, size_t d,
                      float* tile) {
  __m256 acc[kBaseRows][kQueryVecs];
#pragma GCC unroll 16
  for (int c = 0; c < kBaseRows; ++c) {
#pragma GCC unroll 4
    for (int v = 0; v < kQueryVecs; ++v) acc[c][v] = _mm256_setzero_ps();
  }
  const float* r[kBaseRows];
#pragma GCC unroll 16
  for (int c = 0; c < kBaseRows; ++c) r[c] = rows[c];
  const float* qp = packed_block;
#pragma GCC unroll 2
  for (size_t k = 0; k < d; ++k, qp += kQueryLanes) {
    __m256 qv[kQueryVecs];
#pragma GCC unroll 4
    for (int v = 0; v < kQueryVecs; ++v) qv[v] = _mm256_loadu_ps(qp + v * kLanes);
#pragma GCC unroll 16
    for (int c = 0; c < kBaseRows; ++c) {
      const __m256 bb = _mm256_set1_ps(r[c][k]);
#pragma GCC unroll 4
      for (int v = 0; v < kQueryVecs; ++v) acc[c][v] = _mm256_fmadd_ps(qv[v], bb, acc[c][v]);
    }
  }
#pragma GCC unroll 16
  for (int c = 0; c < kBaseRows; ++c) {
#pragma GCC unroll 4
    for (int v = 0; v < kQueryVecs; ++v) {
      _mm256_store_ps(tile + c * kQueryLanes + v * kLanes, acc[c][v]);
    }
  }
}

size_t PackedQueriesFloats(size_t nq, size_t d) {
  if (nq < kGemmMinQueries) return nq * d;
  return (nq + kQueryLanes - 1) / kQueryLanes * kQueryLanes * d;
}

void PackQueries(const float* queries, size_t nq, size_t d, float* packed) {
  if (nq < kGemmMinQueries) {
    for (size_t i = 0; i < nq * d; ++i) packed[i] = queries[i];
    return;
  }
  const size_t blocks = (nq + kQueryLanes - 1) / kQueryLanes;
  for (size_t bi = 0; bi < blocks; ++bi) {
    float* dst = packed + bi * kQueryLanes * d;
    for (size_t l = 0; l < kQueryLanes; ++l) {
      const size_t row = bi * kQueryLanes + l;
      if (row < nq) {
        const float* src = queries + row * d;
        for (size_t k = 0; k < d; ++k) dst[k * kQueryLanes + l] = src[k];
      } else {
        for (size_t k = 0; k < d; ++k) dst[k * kQueryLanes + l] = 0.0f;
      }
    }
  }
}

void InnerProductsPacked(const float* packed, size_t nq, const float* base, size_t nb, size_t d,
                         float* out, size_t ldo) {
  if (nq < kGemmMinQueries) {
    DirectProducts(packed, nq, base, nb, d, out, ldo);
    return;
  }
  const size_t blocks = (nq + kQueryLanes - 1) / kQueryLanes;
  alignas(64) float tile[kBaseRows * kQueryLanes];
  const float* rows[kBaseRows];
  for (size_t j0 = 0; j0 < nb; j0 += kBaseRows) {
    const size_t cols = nb - j0 < kBaseRows ? nb - j0 : kBaseRows;
    for (size_t c = 0; c < kBaseRows; ++c) rows[c] = base + (j0 + (c < cols ? c : cols - 1)) * d;
    for (size_t bi = 0; bi < blocks; ++bi) {
      GemmMicro(packed + bi * kQueryLanes * d, rows, d, tile);
      const size_t i0 = bi * kQueryLanes;
      const size_t nrows = nq - i0 < kQueryLanes ? nq - i0 : kQueryLanes;
      float* o = out + i0 * ldo + j0;
      if (cols == kBaseRows) {
        for (size_t l = 0; l < nrows; ++l) {
#pragma GCC unroll 16
          for (int c = 0; c < kBaseRows; ++c) o[l * ldo + c] = tile[c * kQueryLanes + l];
        }
      } else {
        for (size_t l = 0; l < nrows; ++l) {
          for (size_t c = 0; c < cols; ++c) o[l * ldo + c] = tile[c * kQueryLanes + l];
        }
      }
    }
  }
}

void InnerProducts(const float* queries, size_t nq, const float* base, size_t nb, size_t d,
                   float* out, size_t ldo) {
  if (nq < kGemmMinQueries) {
    DirectProducts(queries, nq, base, nb, d, out, ldo);
    return;
  }
  // Queries in chunks, so that the per-thread packing scratch stays bounded (kPlainChunk x d
  // floats) whatever nq is; each chunk is still large enough to keep the micro-kernel busy.
  constexpr size_t kPlainChunk = 256;
  constexpr size_t kMaxChunk = kPlainChunk + kGemmMinQueries - 1;  // with a merged remainder
  float* packed = ThreadScratch(PackedQueriesFloats(nq < kMaxChunk ? nq : kMaxChunk, d));
  for (size_t i0 = 0; i0 < nq; i0 += kPlainChunk) {
    size_t rows = nq - i0 < kPlainChunk ? nq - i0 : kPlainChunk;
    // Keep a short remainder with the previous chunk rather than giving it the streaming path.
    if (nq - i0 - rows < kGemmMinQueries) rows = nq - i0;
    PackQueries(queries + i0 * d, rows, d, packed);
    InnerProductsPacked(packed, rows, base, nb, d, out + i0 * ldo, ldo);
    if (rows == nq - i0) break;
  }
}

}  // namespace

constinit const KernelTable kAvx2Kernels = {
    SimdLevel::kAvx2, &Dot,        &L2Sqr,        &InnerProducts, &PackedQueriesFloats,
    &PackQueries,       &InnerProductsPacked,
};

}  // namespace rosetta::kernels::internal
