// Runtime SIMD dispatch for the CPU kernels.
//
// One binary runs everywhere: each ISA's kernels live in their own translation unit compiled with
// that ISA's flags (kernels/cpu/*_avx2.cc with -mavx2 -mfma, *_avx512.cc with -mavx512f ...), and
// the level is resolved once per process. Hot loops never branch on the ISA: callers fetch a
// function table once (GetKernelTable) and call through it.
//
// Override for tests and benchmarks: the environment variable ROSETTA_SIMD = scalar | avx2 |
// avx512 caps the level. A request above what the CPU supports is clamped to the best supported
// level (with one line on stderr), never executed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace rosetta::kernels {

enum class SimdLevel { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

const char* SimdLevelName(SimdLevel level);  // "scalar" | "avx2" | "avx512"

// Levels this CPU can execute (always includes kScalar), lowest first.
std::vector<SimdLevel> SupportedSimdLevels();

// The level in use: the best supported level, capped by ROSETTA_SIMD. Resolved once; thread-safe.
SimdLevel ActiveSimdLevel();

// Function table of one SIMD level. All pointers are non-null. `d` is any size >= 1 (tails are
// handled); pointers need no particular alignment.
struct KernelTable {
  SimdLevel level;
  float (*dot)(const float* a, const float* b, size_t d);
  float (*l2sqr)(const float* a, const float* b, size_t d);
  // Inner products of `nq` queries (row-major, stride d) with `nb` base vectors (row-major,
  // stride d): out[i * ldo + j] = <q_i, b_j>. Blocked for cache reuse; single-threaded. Entries
  // j >= nb of each output row are not touched. Float accumulation (results match exact products
  // within rounding, and exactly for small-integer data); a product's value does not depend on
  // its position in the output, only on the level and on nq's regime (< 4, < 16, >= 16 queries).
  // For nq >= 16 the SIMD levels pack queries into a per-thread buffer of at most ~272 x d floats,
  // kept for reuse by the thread.
  void (*inner_products)(const float* queries, size_t nq, const float* base, size_t nb, size_t d,
                         float* out, size_t ldo);

  // The same products with the queries packed once into a level-specific layout, for callers that
  // score one set of queries against many base blocks (FlatSearch): the packing is then paid once
  // instead of once per block. Usage:
  //   std::vector<float> packed(t.packed_queries_floats(nq, d));
  //   t.pack_queries(queries, nq, d, packed.data());
  //   t.inner_products_packed(packed.data(), nq, base, nb, d, out, ldo);  // == inner_products
  // The layout depends on (level, nq, d) only; `nq` and `d` must be the same in all three calls.
  // Results are bit-identical to inner_products with the same arguments.
  size_t (*packed_queries_floats)(size_t nq, size_t d);
  void (*pack_queries)(const float* queries, size_t nq, size_t d, float* packed);
  void (*inner_products_packed)(const float* packed, size_t nq, const float* base, size_t nb,
                                size_t d, float* out, size_t ldo);
};

// The table for `level`. Precondition: `level` is in SupportedSimdLevels(); an unsupported level
// is clamped down to the best supported level below it (never executed).
const KernelTable& GetKernelTable(SimdLevel level);

// How ActiveSimdLevel() resolves ROSETTA_SIMD, exposed for tests. `requested` is the variable's
// value (nullptr or "" = unset), `supported` the levels of this CPU (lowest first, non-empty).
// Returns the best supported level, capped at the requested one. When the request names a level
// above the best supported one, or is not one of scalar|avx2|avx512 (case-insensitive), the best
// supported level is used and `*note` (if non-null) receives a one-line explanation; otherwise
// `*note` is cleared.
SimdLevel ResolveSimdLevel(const char* requested, const std::vector<SimdLevel>& supported,
                           std::string* note);

// The table for ActiveSimdLevel().
const KernelTable& ActiveKernels();

}  // namespace rosetta::kernels
