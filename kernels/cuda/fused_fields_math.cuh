// The per-row arithmetic of fused multi-field scoring (kernels/gpu_fused.h), shared by the CUDA
// kernel (kernels/cuda/fused_fields.cu) and the CPU reference (kernels/gpu_fused_reference.cc).
// Despite the suffix this is plain C++17 (ROSETTA_HD from select_network.h): g++ compiles it for
// the reference and the CI tests, nvcc for the kernel, so both run the very same steps.
//
// Bit-for-bit agreement between the two: every double operation goes through the helpers below,
// which on the device use the explicitly rounded intrinsics (__dmul_rn, __dadd_rn, __ddiv_rn:
// never contracted into fused multiply-adds by nvcc), and on the host plain operators (the
// reference is compiled without FMA contraction: baseline x86-64 flags). Raw scores are fp32 sums
// of fmaf steps in element order on both sides (fmaf on the device, std::fma on the host).
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/cuda/select_network.h"

namespace rosetta::kernels::gpu {

// The missing-field policy (docs/query-semantics.md, "Weights and missing modalities").
enum FusedMissingCode : int {
  kFusedRenormalize = 0,
  kFusedZero = 1,
  kFusedRequire = 2,
};

ROSETTA_HD inline double FusedMul(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}

ROSETTA_HD inline double FusedAdd(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}

ROSETTA_HD inline double FusedDiv(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __ddiv_rn(a, b);
#else
  return a / b;
#endif
}

// One step of a raw score: inner product acc + x * y, L2 acc + (x - y)^2 (the caller negates the
// L2 sum at the end), as a single-rounding fused multiply-add.
ROSETTA_HD inline float FusedRawStep(bool l2, float x, float y, float acc) {
#if defined(__CUDA_ARCH__)
  if (l2) {
    const float diff = __fsub_rn(x, y);
    return fmaf(diff, diff, acc);
  }
  return fmaf(x, y, acc);
#else
  if (l2) {
    const float diff = x - y;
    return std::fma(diff, diff, acc);
  }
  return std::fma(x, y, acc);
#endif
}

// Running state of a row's weights over the targeted fields, in term order.
struct FusedWeights {
  double sum_targeted = 0;  // S_T: w_f(r) for present fields, the query weight for missing ones
  double sum_present = 0;   // S_P: w_f(r) over the present fields
  int present = 0;          // number of targeted fields the row has
};

// Adds one targeted field: `weight` = the term's query weight, `record_weight` = the row's weight
// for the field (1 without record weights), `has` = the row has the field.
ROSETTA_HD inline void FusedAddField(FusedWeights& w, bool has, double weight,
                                     float record_weight) {
  if (has) {
    const double wr = FusedMul(weight, static_cast<double>(record_weight));
    w.sum_present = FusedAdd(w.sum_present, wr);
    w.sum_targeted = FusedAdd(w.sum_targeted, wr);
    ++w.present;
  } else {
    w.sum_targeted = FusedAdd(w.sum_targeted, weight);
  }
}

// Whether the row is a candidate: it has at least one targeted field, and every one of them
// under kFusedRequire. (Filters and the skip bitmap are checked by the caller.)
ROSETTA_HD inline bool FusedEligible(const FusedWeights& w, int missing, int fields) {
  return w.present > 0 && (missing != kFusedRequire || w.present == fields);
}

// The factor on the present fields' weights: S_T / S_P under kFusedRenormalize (0 when S_P is 0:
// all contributions and the score are then 0), 1 otherwise.
ROSETTA_HD inline double FusedFactor(const FusedWeights& w, int missing) {
  if (missing != kFusedRenormalize) return 1.0;
  if (!(w.sum_present > 0)) return 0.0;
  return FusedDiv(w.sum_targeted, w.sum_present);
}

// A present field's contribution, reported as float32: w'_f x n_f with w'_f = weight x
// record_weight x factor and n_f = scale x raw + offset, computed in double.
ROSETTA_HD inline float FusedContribution(double weight, float record_weight, double factor,
                                          double scale, double offset, float raw) {
  const double w = FusedMul(FusedMul(weight, static_cast<double>(record_weight)), factor);
  const double n = FusedAdd(FusedMul(scale, static_cast<double>(raw)), offset);
  return static_cast<float>(FusedMul(w, n));
}

// The score accumulates the float32 contributions in double, in term order, and is reported as
// the float32 of that sum.
ROSETTA_HD inline double FusedAccumulate(double sum, float contribution) {
  return FusedAdd(sum, static_cast<double>(contribution));
}

// --- Rank counts (GpuRankCounts / RankCountsReference, kernels/gpu_fused.h) ---

// below(s): the number of entries < s in `sorted` (width floats ascending, e.g. +inf-padded),
// by binary search (std::lower_bound's position). s must not be NaN.
ROSETTA_HD inline uint32_t RankBinBelow(const float* sorted, uint32_t width, float s) {
  uint32_t lo = 0, n = width;
  while (n > 0) {
    const uint32_t half = n / 2;
    if (sorted[lo + half] < s) {
      lo += half + 1;
      n -= half + 1;
    } else {
      n = half;
    }
  }
  return lo;
}

}  // namespace rosetta::kernels::gpu
