// Internal to kernels/: the per-ISA kernel tables and the helpers they share.
//
// Each table is defined in its own translation unit (distance_scalar.cc, distance_avx2.cc,
// distance_avx512.cc), compiled with that ISA's flags. The tables are constant-initialised data
// (no code runs to build them), so linking an ISA's TU into a binary never executes one of its
// instructions unless the dispatcher in simd.cc hands out that table.
//
// Rule for the ISA TUs: they must not instantiate or call any inline function or template from a
// shared header (std:: containers, std::min, ...). Such functions are emitted as weak symbols, and
// the linker may keep the copy compiled with AVX-512 flags for every caller in the binary. The
// TUs use only intrinsics and their own internal-linkage functions, and get heap scratch through
// ThreadScratch below, which is compiled with baseline flags.
#pragma once

#include <cstddef>

#include "kernels/simd.h"

namespace rosetta::kernels::internal {

extern const KernelTable kScalarKernels;
extern const KernelTable kAvx2Kernels;
extern const KernelTable kAvx512Kernels;

// A per-thread buffer of at least `floats` floats, 64-byte aligned, reused across calls (grown on
// demand, never shrunk). Valid until the same thread calls ThreadScratch again.
float* ThreadScratch(size_t floats);

}  // namespace rosetta::kernels::internal
