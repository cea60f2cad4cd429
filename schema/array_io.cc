#include "schema/array_io.h"

#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "schema/status_macros.h"
#include "schema/text.h"

namespace rosetta {
namespace {

// The smallest double magnitude that rounds to float32 infinity: halfway between FLT_MAX and
// 2^128 (2^128 - 2^103). Anything below rounds to a finite float, FLT_MAX's own shortest text
// "3.4028235e+38" included (it is slightly above FLT_MAX).
constexpr double kFloatOverflow = 0x1.ffffffp127;

static_assert(std::endian::native == std::endian::little,
              "the readers copy little-endian file data directly into memory");

template <typename... Args>
absl::Status Bad(const std::string& path, const Args&... args) {
  return absl::InvalidArgumentError(absl::StrCat(Quote(path), ": ", args...));
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// An open file and its size, checked to be a regular file.
struct OpenFile {
  std::ifstream in;
  uint64_t size = 0;
};

absl::Status Open(const std::string& path, OpenFile* f) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status)) {
    return absl::NotFoundError(absl::StrCat(Quote(path), ": no such file"));
  }
  if (!std::filesystem::is_regular_file(status)) {
    return Bad(path, "not a regular file");
  }
  f->in.open(path, std::ios::binary);
  if (!f->in) {
    return absl::PermissionDeniedError(
        absl::StrCat(Quote(path), ": cannot open: ", std::strerror(errno)));
  }
  f->size = std::filesystem::file_size(path, ec);
  if (ec) return Bad(path, "cannot read its size: ", ec.message());
  return absl::OkStatus();
}

absl::Status ReadExact(OpenFile& f, const std::string& path, void* dst, uint64_t bytes) {
  if (bytes == 0) return absl::OkStatus();
  f.in.read(static_cast<char*>(dst), static_cast<std::streamsize>(bytes));
  if (static_cast<uint64_t>(f.in.gcount()) != bytes) {
    return absl::DataLossError(absl::StrCat(Quote(path), ": read ", f.in.gcount(), " of ", bytes,
                                            " bytes (file changed while reading?)"));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// .npy
// ---------------------------------------------------------------------------------------------

enum class DType { kF2, kF4, kF8, kI4, kI8 };

size_t ItemSize(DType t) {
  switch (t) {
    case DType::kF2:
      return 2;
    case DType::kF4:
    case DType::kI4:
      return 4;
    default:
      return 8;
  }
}

struct NpyHeader {
  std::string descr;
  DType dtype = DType::kF4;
  size_t rows = 0;
  size_t cols = 0;
  uint64_t data_offset = 0;
};

// A strict parser for the header NumPy writes: a Python dict literal with exactly the keys
// 'descr' (a string), 'fortran_order' (True/False) and 'shape' (a tuple of ints), in any order,
// optionally with a trailing comma, padded with spaces and ended by '\n'. No general Python
// literal evaluation: anything else is an error naming what was found.
class DictParser {
 public:
  explicit DictParser(std::string_view s) : s_(s) {}

  absl::Status Parse(std::optional<std::string>* descr, std::optional<bool>* fortran,
                     std::optional<std::vector<uint64_t>>* shape) {
    Skip();
    if (!Eat('{')) return Error("expected '{'");
    Skip();
    while (!Eat('}')) {
      std::string key;
      RETURN_IF_ERROR(String(&key));
      Skip();
      if (!Eat(':')) return Error("expected ':' after key '" + key + "'");
      Skip();
      if (key == "descr") {
        if (descr->has_value()) return Error("duplicate key 'descr'");
        if (Peek() == '[') return Error("structured dtypes (a list descr) are not supported");
        std::string d;
        RETURN_IF_ERROR(String(&d));
        *descr = d;
      } else if (key == "fortran_order") {
        if (fortran->has_value()) return Error("duplicate key 'fortran_order'");
        if (Word("True")) {
          *fortran = true;
        } else if (Word("False")) {
          *fortran = false;
        } else {
          return Error("fortran_order must be True or False");
        }
      } else if (key == "shape") {
        if (shape->has_value()) return Error("duplicate key 'shape'");
        std::vector<uint64_t> dims;
        RETURN_IF_ERROR(Tuple(&dims));
        *shape = dims;
      } else {
        return Error("unexpected key '" + key + "'");
      }
      Skip();
      if (Eat(',')) {
        Skip();
        continue;
      }
      Skip();
      if (!Eat('}')) return Error("expected ',' or '}'");
      break;
    }
    Skip();
    if (pos_ != s_.size()) return Error("unexpected characters after the dict");
    return absl::OkStatus();
  }

 private:
  absl::Status Error(const std::string& what) const {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed header at offset ", pos_, ": ", what));
  }
  char Peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  bool Eat(char c) {
    if (Peek() != c) return false;
    ++pos_;
    return true;
  }
  void Skip() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\t')) ++pos_;
  }
  bool Word(std::string_view w) {
    if (s_.substr(pos_, w.size()) != w) return false;
    pos_ += w.size();
    return true;
  }
  absl::Status String(std::string* out) {
    const char quote = Peek();
    if (quote != '\'' && quote != '"') return Error("expected a quoted string");
    ++pos_;
    const size_t start = pos_;
    while (pos_ < s_.size() && s_[pos_] != quote) {
      if (s_[pos_] == '\\') return Error("escapes in strings are not supported");
      ++pos_;
    }
    if (pos_ >= s_.size()) return Error("unterminated string");
    *out = std::string(s_.substr(start, pos_ - start));
    ++pos_;
    return absl::OkStatus();
  }
  absl::Status Tuple(std::vector<uint64_t>* dims) {
    if (!Eat('(')) return Error("shape must be a tuple");
    Skip();
    while (!Eat(')')) {
      if (Peek() < '0' || Peek() > '9') return Error("shape entries must be non-negative integers");
      uint64_t v = 0;
      while (Peek() >= '0' && Peek() <= '9') {
        const uint64_t digit = static_cast<uint64_t>(Peek() - '0');
        if (v > (std::numeric_limits<uint64_t>::max() - digit) / 10) {
          return Error("shape entry is too large");
        }
        v = v * 10 + digit;
        ++pos_;
      }
      dims->push_back(v);
      Skip();
      if (Eat(',')) {
        Skip();
        continue;
      }
      if (!Eat(')')) return Error("expected ',' or ')' in shape");
      break;
    }
    return absl::OkStatus();
  }

  std::string_view s_;
  size_t pos_ = 0;
};

absl::StatusOr<NpyHeader> ReadNpyHeader(OpenFile& f, const std::string& path) {
  // Magic (6) + version (2) + header length (2 for v1, 4 for v2/v3).
  unsigned char pre[12];
  if (f.size < 10) return Bad(path, "not a .npy file (", f.size, " bytes, too short)");
  RETURN_IF_ERROR(ReadExact(f, path, pre, 10));
  if (std::memcmp(pre, "\x93NUMPY", 6) != 0) return Bad(path, "not a .npy file (bad magic)");
  const int major = pre[6];
  const int minor = pre[7];
  if ((major < 1 || major > 3) || minor != 0) {
    return Bad(path, "unsupported .npy version ", major, ".", minor, " (supported: 1.0, 2.0, 3.0)");
  }
  uint64_t header_len;
  uint64_t header_start;
  if (major == 1) {
    header_len = uint64_t{pre[8]} | (uint64_t{pre[9]} << 8);
    header_start = 10;
  } else {
    if (f.size < 12) return Bad(path, "truncated .npy header");
    RETURN_IF_ERROR(ReadExact(f, path, pre + 10, 2));
    header_len = uint64_t{pre[8]} | (uint64_t{pre[9]} << 8) | (uint64_t{pre[10]} << 16) |
                 (uint64_t{pre[11]} << 24);
    header_start = 12;
  }
  if (header_start + header_len > f.size) {
    return Bad(path, "truncated .npy header (header length ", header_len, ", file ", f.size,
               " bytes)");
  }
  std::string header(header_len, '\0');
  RETURN_IF_ERROR(ReadExact(f, path, header.data(), header_len));
  if (header.empty() || header.back() != '\n') {
    return Bad(path, "malformed .npy header (does not end with a newline)");
  }
  // Version 1/2 headers are latin-1, version 3 UTF-8; the dict we accept is ASCII in both.
  std::optional<std::string> descr;
  std::optional<bool> fortran;
  std::optional<std::vector<uint64_t>> shape;
  if (absl::Status s = DictParser(header).Parse(&descr, &fortran, &shape); !s.ok()) {
    return Bad(path, s.message());
  }
  if (!descr) return Bad(path, "malformed .npy header: no 'descr'");
  if (!fortran) return Bad(path, "malformed .npy header: no 'fortran_order'");
  if (!shape) return Bad(path, "malformed .npy header: no 'shape'");

  NpyHeader h;
  h.descr = *descr;
  h.data_offset = header_start + header_len;
  if (*descr == "<f4") {
    h.dtype = DType::kF4;
  } else if (*descr == "<f2") {
    h.dtype = DType::kF2;
  } else if (*descr == "<f8") {
    h.dtype = DType::kF8;
  } else if (*descr == "<i4") {
    h.dtype = DType::kI4;
  } else if (*descr == "<i8") {
    h.dtype = DType::kI8;
  } else if (!descr->empty() && descr->front() == '>') {
    return Bad(path, "big-endian dtype ", Quote(*descr),
               " is not supported (convert with arr.astype('<f4'))");
  } else {
    return Bad(path, "unsupported dtype ", Quote(*descr),
               " (supported: <f4, <f2, <f8 for vectors; <i4, <i8 for integer matrices)");
  }
  if (*fortran) {
    return Bad(path, "Fortran-order arrays are not supported (save with np.ascontiguousarray)");
  }
  if (shape->size() == 1) {
    h.rows = 1;
    h.cols = (*shape)[0];
  } else if (shape->size() == 2) {
    h.rows = (*shape)[0];
    h.cols = (*shape)[1];
  } else {
    return Bad(path, shape->size(), "-D array is not supported (expected 1-D or 2-D)");
  }
  if (h.cols == 0 && h.rows != 0)
    return Bad(path, "rows of zero width (shape has a 0 column count)");
  // Size check (overflow-safe): the data must fill the rest of the file exactly.
  const uint64_t avail = f.size - h.data_offset;
  const uint64_t item = ItemSize(h.dtype);
  if (h.cols != 0 && h.rows > std::numeric_limits<uint64_t>::max() / item / h.cols) {
    return Bad(path, "shape (", h.rows, ", ", h.cols, ") is too large");
  }
  const uint64_t need = uint64_t{h.rows} * h.cols * item;
  if (need > avail) {
    return Bad(path, "truncated: shape (", h.rows, ", ", h.cols, ") of ", *descr, " needs ", need,
               " data bytes, the file has ", avail);
  }
  if (need < avail) {
    return Bad(path, avail - need, " unexpected bytes after the data (shape (", h.rows, ", ",
               h.cols, ") of ", *descr, " needs ", need, ")");
  }
  return h;
}

// IEEE 754 binary16 -> binary32, exactly (every half is representable as a float).
float HalfToFloat(uint16_t h) {
  const uint32_t sign = uint32_t{h & 0x8000u} << 16;
  const uint32_t exp = (h >> 10) & 0x1F;
  const uint32_t mant = h & 0x3FF;
  uint32_t bits;
  if (exp == 0x1F) {
    bits = sign | 0x7F800000u | (mant << 13);  // inf / NaN (payload kept).
  } else if (exp != 0) {
    bits = sign | ((exp - 15 + 127) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;  // +-0.
  } else {
    // Subnormal half: mant * 2^-24, a normal float. Computed exactly in float arithmetic.
    const float v = static_cast<float>(mant) * 0x1p-24f;
    return sign ? -v : v;
  }
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

template <typename Src, typename Dst>
void Widen(const std::vector<char>& raw, std::vector<Dst>* out) {
  const size_t n = raw.size() / sizeof(Src);
  out->resize(n);
  for (size_t i = 0; i < n; ++i) {
    Src v;
    std::memcpy(&v, raw.data() + i * sizeof(Src), sizeof(Src));
    (*out)[i] = static_cast<Dst>(v);
  }
}

absl::StatusOr<Matrix<float>> ReadNpyFloat(const std::string& path) {
  OpenFile f;
  RETURN_IF_ERROR(Open(path, &f));
  ASSIGN_OR_RETURN(NpyHeader h, ReadNpyHeader(f, path));
  Matrix<float> m;
  m.rows = h.rows;
  m.cols = h.cols;
  const uint64_t n = uint64_t{h.rows} * h.cols;
  switch (h.dtype) {
    case DType::kF4:
      // The common case reads straight into the result: one read, no second copy in memory.
      m.data.resize(n);
      RETURN_IF_ERROR(ReadExact(f, path, m.data.data(), n * sizeof(float)));
      return m;
    case DType::kF2: {
      std::vector<char> raw(n * 2);
      RETURN_IF_ERROR(ReadExact(f, path, raw.data(), raw.size()));
      m.data.resize(n);
      for (uint64_t i = 0; i < n; ++i) {
        uint16_t v;
        std::memcpy(&v, raw.data() + i * 2, 2);
        m.data[i] = HalfToFloat(v);
      }
      return m;
    }
    case DType::kF8: {
      std::vector<char> raw(n * 8);
      RETURN_IF_ERROR(ReadExact(f, path, raw.data(), raw.size()));
      m.data.resize(n);
      for (uint64_t i = 0; i < n; ++i) {
        double v;
        std::memcpy(&v, raw.data() + i * 8, 8);
        if (std::isfinite(v) && std::fabs(v) >= kFloatOverflow) {
          return Bad(path, "row ", i / h.cols, ", column ", i % h.cols, ": value ", v,
                     " is out of float32 range");
        }
        m.data[i] = static_cast<float>(v);  // NaN/inf pass through: validation names them.
      }
      return m;
    }
    default:
      return Bad(path, "dtype ", Quote(h.descr),
                 " holds integers, not vectors (expected <f4, <f2 or <f8)");
  }
}

absl::StatusOr<Matrix<int64_t>> ReadNpyInt(const std::string& path) {
  OpenFile f;
  RETURN_IF_ERROR(Open(path, &f));
  ASSIGN_OR_RETURN(NpyHeader h, ReadNpyHeader(f, path));
  Matrix<int64_t> m;
  m.rows = h.rows;
  m.cols = h.cols;
  const uint64_t n = uint64_t{h.rows} * h.cols;
  switch (h.dtype) {
    case DType::kI8:
      m.data.resize(n);
      RETURN_IF_ERROR(ReadExact(f, path, m.data.data(), n * 8));
      return m;
    case DType::kI4: {
      std::vector<char> raw(n * 4);
      RETURN_IF_ERROR(ReadExact(f, path, raw.data(), raw.size()));
      Widen<int32_t>(raw, &m.data);
      return m;
    }
    default:
      return Bad(path, "dtype ", Quote(h.descr), " is not an integer type (expected <i4 or <i8)");
  }
}

// ---------------------------------------------------------------------------------------------
// .fvecs / .ivecs
// ---------------------------------------------------------------------------------------------

// Reads the whole file (one read) as 32-bit words and checks the TEXMEX layout: every row starts
// with the same positive dimension d, and the size is a multiple of 4 * (1 + d).
absl::StatusOr<std::vector<uint32_t>> ReadTexmex(const std::string& path, size_t* rows,
                                                 size_t* cols) {
  OpenFile f;
  RETURN_IF_ERROR(Open(path, &f));
  *rows = 0;
  *cols = 0;
  if (f.size == 0) return std::vector<uint32_t>();
  if (f.size < 4)
    return Bad(path, "truncated: ", f.size, " bytes (a row starts with a 4-byte dimension)");
  int32_t dim;
  RETURN_IF_ERROR(ReadExact(f, path, &dim, 4));
  if (dim <= 0) return Bad(path, "row 0: dimension ", dim, " is not positive");
  const uint64_t record_bytes = 4 * (uint64_t{static_cast<uint32_t>(dim)} + 1);
  if (f.size % record_bytes != 0) {
    return Bad(path, "size ", f.size, " is not a multiple of the row size ", record_bytes, " (4 + ",
               dim, " x 4 bytes): truncated, or not this format");
  }
  std::vector<uint32_t> words(f.size / 4);
  words[0] = static_cast<uint32_t>(dim);
  RETURN_IF_ERROR(ReadExact(f, path, words.data() + 1, f.size - 4));
  const size_t stride = static_cast<size_t>(dim) + 1;
  const size_t n = words.size() / stride;
  for (size_t r = 1; r < n; ++r) {
    const int32_t d = static_cast<int32_t>(words[r * stride]);
    if (d != dim) {
      return Bad(path, "row ", r, ": dimension ", d, " differs from row 0's ", dim);
    }
  }
  *rows = n;
  *cols = static_cast<size_t>(dim);
  return words;
}

absl::StatusOr<Matrix<float>> ReadFvecs(const std::string& path) {
  Matrix<float> m;
  ASSIGN_OR_RETURN(std::vector<uint32_t> words, ReadTexmex(path, &m.rows, &m.cols));
  m.data.resize(m.rows * m.cols);
  for (size_t r = 0; r < m.rows; ++r) {
    std::memcpy(m.data.data() + r * m.cols, words.data() + r * (m.cols + 1) + 1,
                m.cols * sizeof(float));
  }
  return m;
}

absl::StatusOr<Matrix<int64_t>> ReadIvecs(const std::string& path) {
  Matrix<int64_t> m;
  ASSIGN_OR_RETURN(std::vector<uint32_t> words, ReadTexmex(path, &m.rows, &m.cols));
  m.data.resize(m.rows * m.cols);
  for (size_t r = 0; r < m.rows; ++r) {
    const uint32_t* src = words.data() + r * (m.cols + 1) + 1;
    for (size_t c = 0; c < m.cols; ++c) m.data[r * m.cols + c] = static_cast<int32_t>(src[c]);
  }
  return m;
}

}  // namespace

absl::StatusOr<Matrix<float>> ReadFloatMatrix(const std::string& path) {
  try {
    if (EndsWith(path, ".npy")) return ReadNpyFloat(path);
    if (EndsWith(path, ".fvecs")) return ReadFvecs(path);
    return Bad(path, "unknown vector file type (expected a .npy or .fvecs file)");
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat(Quote(path), ": not enough memory"));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(Quote(path), ": ", e.what()));
  }
}

absl::StatusOr<Matrix<int64_t>> ReadIntMatrix(const std::string& path) {
  try {
    if (EndsWith(path, ".npy")) return ReadNpyInt(path);
    if (EndsWith(path, ".ivecs")) return ReadIvecs(path);
    return Bad(path, "unknown integer matrix file type (expected a .npy or .ivecs file)");
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat(Quote(path), ": not enough memory"));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(Quote(path), ": ", e.what()));
  }
}

absl::Status WriteNpy(const std::string& path, const Matrix<float>& m) {
  if (m.data.size() != m.rows * m.cols) {
    return absl::InvalidArgumentError(absl::StrCat("WriteNpy ", Quote(path), ": data has ",
                                                   m.data.size(), " values, shape (", m.rows, ", ",
                                                   m.cols, ") needs ", m.rows * m.cols));
  }
  std::string header = absl::StrCat("{'descr': '<f4', 'fortran_order': False, 'shape': (", m.rows,
                                    ", ", m.cols, "), }");
  // Pad with spaces so that the data starts on a 64-byte boundary (as NumPy does), end with \n.
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header.push_back('\n');
  if (header.size() > 0xFFFF) return absl::InvalidArgumentError("WriteNpy: header too long");
  // Write to a temporary file and rename, so a failure never leaves a partial file at `path`.
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) {
      return absl::PermissionDeniedError(
          absl::StrCat(Quote(tmp), ": cannot create: ", std::strerror(errno)));
    }
    const unsigned char pre[10] = {0x93,
                                   'N',
                                   'U',
                                   'M',
                                   'P',
                                   'Y',
                                   1,
                                   0,
                                   static_cast<unsigned char>(header.size() & 0xFF),
                                   static_cast<unsigned char>(header.size() >> 8)};
    out.write(reinterpret_cast<const char*>(pre), sizeof(pre));
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    out.write(reinterpret_cast<const char*>(m.data.data()),
              static_cast<std::streamsize>(m.data.size() * sizeof(float)));
    out.close();
    if (!out) {
      std::error_code ec;
      std::filesystem::remove(tmp, ec);
      return absl::DataLossError(absl::StrCat(Quote(tmp), ": write failed"));
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    return absl::DataLossError(absl::StrCat(Quote(path), ": rename failed: ", ec.message()));
  }
  return absl::OkStatus();
}

}  // namespace rosetta
