// Readers and writers for dense arrays in the formats embedding pipelines produce:
//   .npy   NumPy format 1.0/2.0/3.0, little-endian, C order, 2-D (or 1-D = one row),
//          dtype <f4 (float32), <f2 (float16, widened), <f8 (float64, narrowed; must fit),
//          <i4 / <i8 (integer ground truth).
//   .fvecs / .ivecs   TEXMEX: per row an int32 dimension, then dim float32 / int32 values.
//
// Readers load the whole file with one read (no text parsing: importing 1M x 768 vectors is bound
// by disk and validation, not by JSON) and check the header and the size against the data,
// failing with InvalidArgument that names the file and the problem.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rosetta {

template <typename T>
struct Matrix {
  size_t rows = 0;
  size_t cols = 0;
  std::vector<T> data;  // row-major rows x cols.
  const T* row(size_t i) const { return data.data() + i * cols; }
};

// Reads float vectors from .npy or .fvecs (chosen by the file extension).
absl::StatusOr<Matrix<float>> ReadFloatMatrix(const std::string& path);

// Reads integer matrices (ground truth) from .npy (<i4, <i8) or .ivecs.
absl::StatusOr<Matrix<int64_t>> ReadIntMatrix(const std::string& path);

// Writes a float32 .npy (version 1.0). Used by tools and tests.
absl::Status WriteNpy(const std::string& path, const Matrix<float>& m);

}  // namespace rosetta
