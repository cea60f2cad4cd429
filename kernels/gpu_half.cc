// GpuRoundToHalf: compiled in every build (the conversion is plain C++, kernels/cuda/half_bits.h).
#include "kernels/cuda/half_bits.h"
#include "kernels/gpu_search.h"

namespace rosetta::kernels {

float GpuRoundToHalf(float x) { return gpu::RoundThroughHalf(x); }

}  // namespace rosetta::kernels
