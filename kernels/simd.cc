// Runtime SIMD detection and dispatch. Compiled with baseline flags: nothing here may execute an
// AVX instruction, since it runs before we know the CPU has them.
#include "kernels/simd.h"

#include <cpuid.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "kernels/cpu/kernel_tables.h"

namespace rosetta::kernels {
namespace {

// XCR0 via xgetbv, in inline assembly: the _xgetbv intrinsic would need -mxsave for this TU.
uint64_t ReadXcr0() {
  uint32_t eax = 0, edx = 0;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

struct CpuFeatures {
  bool avx2 = false;    // AVX2 + FMA + F16C, with OS-saved YMM state.
  bool avx512 = false;  // AVX-512 F/DQ/BW/VL (the flags of *_avx512.cc), with OS-saved ZMM state.
};

CpuFeatures DetectCpuFeatures() {
  CpuFeatures f;
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return f;
  const bool osxsave = (ecx & bit_OSXSAVE) != 0;
  const bool avx = (ecx & bit_AVX) != 0;
  const bool fma = (ecx & bit_FMA) != 0;
  const bool f16c = (ecx & bit_F16C) != 0;
  // Without OSXSAVE, xgetbv is undefined and the OS does not save the wide registers.
  if (!osxsave || !avx) return f;
  const uint64_t xcr0 = ReadXcr0();
  const bool os_ymm = (xcr0 & 0x6) == 0x6;    // SSE and AVX state.
  const bool os_zmm = (xcr0 & 0xE6) == 0xE6;  // + opmask, ZMM_Hi256, Hi16_ZMM state.
  __cpuid_count(7, 0, eax, ebx, ecx, edx);
  const bool avx2 = (ebx & bit_AVX2) != 0;
  const bool avx512 = (ebx & bit_AVX512F) && (ebx & bit_AVX512DQ) && (ebx & bit_AVX512BW) &&
                      (ebx & bit_AVX512VL);
  // Cross-check with the compiler's own view (libgcc's cpu model), belt and braces.
  __builtin_cpu_init();
  f.avx2 = os_ymm && avx2 && fma && f16c && __builtin_cpu_supports("avx2") &&
           __builtin_cpu_supports("fma");
  f.avx512 = f.avx2 && os_zmm && avx512 && __builtin_cpu_supports("avx512f") &&
             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl");
  return f;
}

const std::vector<SimdLevel>& SupportedLevelsOnce() {
  static const std::vector<SimdLevel>* const levels = [] {
    const CpuFeatures f = DetectCpuFeatures();
    auto* v = new std::vector<SimdLevel>{SimdLevel::kScalar};
    if (f.avx2) v->push_back(SimdLevel::kAvx2);
    if (f.avx512) v->push_back(SimdLevel::kAvx512);
    return v;
  }();
  return *levels;
}

bool ParseLevel(const char* s, SimdLevel* out) {
  static constexpr struct {
    const char* name;
    SimdLevel level;
  } kNames[] = {{"scalar", SimdLevel::kScalar},
                {"avx2", SimdLevel::kAvx2},
                {"avx512", SimdLevel::kAvx512}};
  for (const auto& n : kNames) {
    if (strcasecmp(s, n.name) == 0) {
      *out = n.level;
      return true;
    }
  }
  return false;
}

struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};

}  // namespace

const char* SimdLevelName(SimdLevel level) {
  switch (level) {
    case SimdLevel::kScalar:
      return "scalar";
    case SimdLevel::kAvx2:
      return "avx2";
    case SimdLevel::kAvx512:
      return "avx512";
  }
  return "unknown";
}

std::vector<SimdLevel> SupportedSimdLevels() { return SupportedLevelsOnce(); }

SimdLevel ResolveSimdLevel(const char* requested, const std::vector<SimdLevel>& supported,
                           std::string* note) {
  if (note != nullptr) note->clear();
  const SimdLevel best = supported.empty() ? SimdLevel::kScalar : supported.back();
  if (requested == nullptr || *requested == '\0') return best;
  SimdLevel want;
  if (!ParseLevel(requested, &want)) {
    if (note != nullptr) {
      *note = std::string("rosetta: ROSETTA_SIMD='") + requested +
              "' is not one of scalar|avx2|avx512; using " + SimdLevelName(best);
    }
    return best;
  }
  if (static_cast<int>(want) > static_cast<int>(best)) {
    if (note != nullptr) {
      *note = std::string("rosetta: ROSETTA_SIMD=") + requested +
              " is not supported by this CPU; using " + SimdLevelName(best);
    }
    return best;
  }
  // Capped: the best supported level not above the request (the levels are nested).
  SimdLevel chosen = SimdLevel::kScalar;
  for (SimdLevel l : supported) {
    if (static_cast<int>(l) <= static_cast<int>(want)) chosen = l;
  }
  return chosen;
}

SimdLevel ActiveSimdLevel() {
  static const SimdLevel level = [] {
    std::string note;
    const SimdLevel l = ResolveSimdLevel(std::getenv("ROSETTA_SIMD"), SupportedLevelsOnce(), &note);
    if (!note.empty()) std::fprintf(stderr, "%s\n", note.c_str());
    return l;
  }();
  return level;
}

const KernelTable& GetKernelTable(SimdLevel level) {
  // Clamp down to a supported level: handing out a table the CPU cannot run would crash later
  // with SIGILL, far from the mistake.
  SimdLevel chosen = SimdLevel::kScalar;
  for (SimdLevel l : SupportedLevelsOnce()) {
    if (static_cast<int>(l) <= static_cast<int>(level)) chosen = l;
  }
  switch (chosen) {
    case SimdLevel::kAvx512:
      return internal::kAvx512Kernels;
    case SimdLevel::kAvx2:
      return internal::kAvx2Kernels;
    case SimdLevel::kScalar:
      break;
  }
  return internal::kScalarKernels;
}

const KernelTable& ActiveKernels() {
  static const KernelTable* const table = &GetKernelTable(ActiveSimdLevel());
  return *table;
}

namespace internal {

float* ThreadScratch(size_t floats) {
  thread_local std::unique_ptr<float, FreeDeleter> buffer;
  thread_local size_t capacity = 0;
  if (floats > capacity || !buffer) {
    // Round up to whole cache lines; aligned_alloc needs a multiple of the alignment.
    const size_t want = ((floats < 16 ? 16 : floats) + 15) / 16 * 16;
    buffer.reset(static_cast<float*>(std::aligned_alloc(64, want * sizeof(float))));
    if (!buffer) throw std::bad_alloc();  // like any other allocation in the kernels.
    capacity = want;
  }
  return buffer.get();
}

}  // namespace internal
}  // namespace rosetta::kernels
