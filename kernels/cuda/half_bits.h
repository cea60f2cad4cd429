// IEEE 754 binary16 <-> binary32 conversions, written once for the host and the device.
//
// Plain C++17 with no CUDA header (usable from g++ and from nvcc, see select_network.h for the
// ROSETTA_HD macro). The device kernels convert with the hardware intrinsics (__float2half_rn),
// which implement the same rounding (to nearest, ties to even); these functions give the host the
// identical values (GpuRoundToHalf, tests, CPU references on fp16-rounded data).
#pragma once

#include <cstdint>
#include <cstring>

#include "kernels/cuda/select_network.h"

namespace rosetta::kernels::gpu {

ROSETTA_HD inline uint32_t FloatBits(float f) {
  uint32_t x;
  memcpy(&x, &f, sizeof(x));
  return x;
}

ROSETTA_HD inline float BitsFloat(uint32_t x) {
  float f;
  memcpy(&f, &x, sizeof(f));
  return f;
}

// Round to nearest, ties to even; overflow gives +-inf, NaN stays NaN (quiet), subnormal halves
// are produced (no flush to zero).
ROSETTA_HD inline uint16_t FloatToHalfBits(float f) {
  const uint32_t x = FloatBits(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t absx = x & 0x7fffffffu;
  if (absx >= 0x7f800000u) {  // inf or NaN
    if (absx == 0x7f800000u) return static_cast<uint16_t>(sign | 0x7c00u);
    return static_cast<uint16_t>(sign | 0x7e00u | ((absx >> 13) & 0x3ffu));
  }
  if (absx >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65520: inf
  if (absx < 0x38800000u) {  // below 2^-14: a subnormal half (or zero)
    if (absx < 0x33000000u) return static_cast<uint16_t>(sign);  // below 2^-25: zero
    // |f| = m * 2^(e - 150); in units of 2^-24 that is m >> (126 - e).
    const uint32_t e = absx >> 23;
    const uint32_t m = (absx & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126u - e;  // 14..24
    uint32_t q = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1u);
    const uint32_t half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (q & 1u))) ++q;  // may carry into the smallest normal
    return static_cast<uint16_t>(sign | q);
  }
  const uint32_t e = (absx >> 23) - 127u + 15u;  // 1..30
  const uint32_t m = absx & 0x7fffffu;
  uint32_t q = (e << 10) | (m >> 13);
  const uint32_t rem = m & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (q & 1u))) ++q;  // a carry bumps the exponent: correct
  return static_cast<uint16_t>(sign | q);
}

ROSETTA_HD inline float HalfBitsToFloat(uint16_t h) {
  const uint32_t sign = (static_cast<uint32_t>(h) & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1fu;
  const uint32_t m = h & 0x3ffu;
  if (e == 0) {
    // m * 2^-24, exact in float.
    const float v = static_cast<float>(m) * 5.9604644775390625e-8f;
    return sign ? -v : v;
  }
  if (e == 31) return BitsFloat(sign | 0x7f800000u | (m << 13));
  return BitsFloat(sign | ((e + 112u) << 23) | (m << 13));
}

// The value x takes when stored as fp16.
ROSETTA_HD inline float RoundThroughHalf(float x) { return HalfBitsToFloat(FloatToHalfBits(x)); }

}  // namespace rosetta::kernels::gpu
