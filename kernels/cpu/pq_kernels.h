// Internal to kernels/: the per-ISA product-quantization kernels (lookup tables, encoding, 8-bit
// ADC scans and the 4-bit fast-scan), one table per SIMD level.
//
// The tables live in kernels/cpu/pq_scalar.cc, pq_avx2.cc and pq_avx512.cc, which follow the rules
// of kernel_tables.h (ISA TUs: intrinsics and internal-linkage functions only, constant-initialised
// tables, no inline functions or templates from shared headers). All scratch memory is passed in
// by the caller. Pointers need no particular alignment.
//
// Fast-scan layout (nbits = 4). Codes of 32 vectors form a block; within a block, sub-quantizers
// are taken in pairs (j = 2p, 2p + 1; an odd m is padded with a sub-quantizer whose codes and table
// are zero), and each pair p occupies 32 consecutive bytes:
//   byte i      (i < 16): low nibble = code of vector i for sub-quantizer 2p,
//                         high nibble = code of vector i + 16 for sub-quantizer 2p
//   byte 16 + i (i < 16): the same for sub-quantizer 2p + 1.
// A block is `pairs` x 32 bytes; block b of a list starts at byte b * pairs * 32. The quantised
// lookup table has the matching layout: pair p = 32 bytes, entries 0..15 for sub-quantizer 2p,
// 16..31 for 2p + 1, so that one 128-bit lane of a shuffle holds one sub-quantizer's table.
// Accumulations are exact uint16 sums of the table entries (the caller keeps every sum <= 65535,
// i.e. m * max entry <= 65535), so every level computes identical values.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/simd.h"

namespace rosetta::kernels::internal {

inline constexpr size_t kFastScanBlock = 32;  // vectors per fast-scan block

struct PqKernelTable {
  SimdLevel level;
  // Tables of one vector x (d = m * dsub floats) against codebooks given transposed, m x dsub x
  // ksub floats (centroid index fastest); ksub is a multiple of 16. Output m x ksub floats:
  //   l2_table: table[j * ksub + i] = sum_t (x[j * dsub + t] - cbt[(j * dsub + t) * ksub + i])^2
  //   ip_table: table[j * ksub + i] = sum_t  x[j * dsub + t] * cbt[(j * dsub + t) * ksub + i]
  // Summed over t in increasing order (the SIMD levels with fused multiply-adds).
  void (*l2_table)(const float* x, const float* cbt, size_t m, size_t ksub, size_t dsub,
                   float* table);
  void (*ip_table)(const float* x, const float* cbt, size_t m, size_t ksub, size_t dsub,
                   float* table);
  // The nearest of k centroids to x (d floats), the centroids given transposed (ct: d x kpad
  // floats, centroid index fastest, kpad >= k a multiple of 16): the smallest index i < k
  // minimising sum_t (x[t] - ct[t * kpad + i])^2 (summed over t in increasing order; the SIMD
  // levels with fused multiply-adds). *min_value = that sum. Used to encode PQ sub-vectors
  // (k = ksub) and by k-means for few dimensions.
  uint32_t (*nearest_transposed)(const float* x, const float* ct, size_t d, size_t kpad, size_t k,
                                 float* min_value);
  // The smallest i < n (n >= 1) minimising w[i] = norms[i] - 2 * ip[i] (*min_value = w[i]): the
  // nearest-centroid step of k-means after a GEMM. The doubling is exact, so w has one rounding
  // on every level, with or without fused multiply-add: identical results on every level for
  // NaN-free input (with NaN: some index < n). On equal minima the smallest index wins.
  uint32_t (*argmin_norm_ip)(const float* norms, const float* ip, size_t n, float* min_value);
  // 8-bit ADC: out[v] = sum_j table[j * 256 + codes[v * m + j]] for v < n (any summation order:
  // the levels agree within float rounding).
  void (*adc_scan8)(const uint8_t* codes, size_t n, size_t m, const float* table, float* out);
  // 4-bit fast-scan over the ceil(n / 32) blocks of one list (layout above) with the quantised
  // table `lut` (pairs x 32 bytes). Writes the uint16 sum of every vector of every block to
  // acc[0 .. 32 * ceil(n / 32)) (padding vectors included), and the indices v < n with
  // acc[v] <= limit, in increasing order, to hits[]. Returns the number of hits (<= n).
  size_t (*fastscan)(const uint8_t* blocks, size_t n, size_t pairs, const uint8_t* lut,
                     uint16_t limit, uint16_t* acc, uint32_t* hits);
  // Quantises a fast-scan distance table D (m x 16 floats, smaller = better) into `lut`
  // ((m + 1) / 2 x 32 bytes, the pair layout above; a padding sub-quantizer's entries are 0):
  //   lo_j = row_min ? min_i D[j][i] : 0, range = max_j (max_i D[j][i] - lo_j),
  //   qmax = min(255, floor(65535 / m)), scale = range > 0 ? qmax / range : 0,
  //   lut entry = clamp(round_to_nearest_even((D[j][i] - lo_j) * scale), 0, qmax),
  //   *bias = sum_j lo_j (accumulated in double, j increasing), *inv_scale = 1 / scale (or 0),
  // so that sum_j D[j][code_j] ~= bias + (sum of lut entries) * inv_scale, within m / (2 scale).
  // row_min = false skips the per-row minima (horizontal reductions, the costly part) and suits
  // non-negative tables such as L2 distances, whose rows start near 0 anyway (negative entries
  // are clamped to 0). Identical output on every level. Returns false (outputs unspecified) when
  // an entry of D is not finite.
  bool (*quantize_lut)(const float* table, size_t m, bool row_min, uint8_t* lut, float* bias,
                       float* inv_scale);
};

extern const PqKernelTable kScalarPqKernels;
extern const PqKernelTable kAvx2PqKernels;
extern const PqKernelTable kAvx512PqKernels;

// The table for `level`, clamped down to what the CPU supports (as GetKernelTable).
const PqKernelTable& GetPqKernelTable(SimdLevel level);

// The 8-bit ADC variants of each SIMD level, for benchmarks that pick the faster one (the table
// of each level uses the faster on the CPUs measured; see pq_avx2.cc): AVX2 / AVX-512 gathers.
extern void (*const kAvx2AdcScan8Gather)(const uint8_t*, size_t, size_t, const float*, float*);
extern void (*const kAvx512AdcScan8Gather)(const uint8_t*, size_t, size_t, const float*, float*);
// The unrolled scalar variant, compiled with baseline flags.
extern void (*const kScalarAdcScan8)(const uint8_t*, size_t, size_t, const float*, float*);

}  // namespace rosetta::kernels::internal
