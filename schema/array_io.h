// Readers and writers for dense arrays in the formats embedding pipelines produce:
//   .npy   NumPy format 1.0/2.0/3.0, little-endian, C order, 2-D (or 1-D = one row),
//          dtype <f4 (float32), <f2 (float16, widened), <f8 (float64, narrowed; must fit),
//          <i4 / <i8 (integer ground truth).
//   .fvecs / .ivecs   TEXMEX: per row an int32 dimension, then dim float32 / int32 values.
//
// Readers load the whole file with one read (no text parsing: importing 1M x 768 vectors is bound
// by disk and validation, not by JSON) and check the header and the size against the data,
// failing with InvalidArgument that names the file and the problem.
//
// Details of what is accepted (everything else is InvalidArgument naming the file, e.g.
// `"/data/x.npy": big-endian dtype ">f4" is not supported (convert with arr.astype('<f4'))`):
//   .npy   magic "\x93NUMPY", version 1.0 (2-byte header length), 2.0 or 3.0 (4-byte length);
//          the header is the Python dict NumPy writes, parsed strictly: exactly the keys 'descr'
//          (a string), 'fortran_order' (True/False) and 'shape' (a tuple of non-negative ints),
//          any order, optional trailing comma, ending in '\n'. fortran_order must be False.
//          Shape (n,) is 1 row of n; (r, c) is r rows of c; 0-D and 3-D+ are rejected, and so
//          are rows of zero width. The data must fill the rest of the file exactly (truncated
//          files and trailing bytes are errors). float16 is widened exactly (subnormals, inf and
//          NaN included); a finite float64 beyond the float32 range is an error naming its row
//          and column; NaN/inf pass through (validation rejects them with a message).
//   .fvecs/.ivecs   the first row's dimension d must be positive, the file size a multiple of
//          4 * (1 + d), and every row's dimension word equal to d (an error names the row). An
//          empty file is 0 rows. The file type is chosen by extension: ReadFloatMatrix takes
//          .npy (float dtypes) and .fvecs, ReadIntMatrix .npy (<i4, <i8) and .ivecs.
// A file that does not exist is NotFound.
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

// Writes a float32 .npy in NumPy's version 1.0 layout (header padded with spaces so the data is
// 64-byte aligned, ending in '\n'); ReadFloatMatrix reads it back bit for bit. InvalidArgument
// if m.data.size() != rows * cols. The file is written beside `path` (path + ".tmp") and renamed
// into place, so a failure never leaves a partial file at `path`.
absl::Status WriteNpy(const std::string& path, const Matrix<float>& m);

}  // namespace rosetta
