#include "schema/array_io.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "tests/testing/testing.h"

namespace rosetta {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
constexpr auto kInvalid = absl::StatusCode::kInvalidArgument;

// ---------------------------------------------------------------------------------------------
// Real data: the .npy and TEXMEX copies of the same arrays must agree bit for bit.
// ---------------------------------------------------------------------------------------------

void ExpectSameFloats(const Matrix<float>& a, const Matrix<float>& b) {
  ASSERT_EQ(a.rows, b.rows);
  ASSERT_EQ(a.cols, b.cols);
  ASSERT_EQ(a.data.size(), b.data.size());
  EXPECT_EQ(std::memcmp(a.data.data(), b.data.data(), a.data.size() * sizeof(float)), 0);
}

TEST(ArrayIoRealDataTest, SiftNpyEqualsFvecs) {
  ROSETTA_REQUIRE_SHARED_DATA("sift10k_siftsmall", dir);
  ASSERT_OK_AND_ASSIGN(Matrix<float> npy, ReadFloatMatrix(dir + "/base.npy"));
  ASSERT_OK_AND_ASSIGN(Matrix<float> fvecs, ReadFloatMatrix(dir + "/siftsmall_base.fvecs"));
  EXPECT_EQ(npy.rows, 10000u);
  EXPECT_EQ(npy.cols, 128u);
  ExpectSameFloats(npy, fvecs);
  // SIFT components are integer-valued in 0..180 (README): a cheap sanity check of decoding.
  for (float x : npy.data) {
    ASSERT_EQ(x, std::floor(x));
    ASSERT_GE(x, 0);
    ASSERT_LE(x, 255);
  }

  ASSERT_OK_AND_ASSIGN(Matrix<float> qn, ReadFloatMatrix(dir + "/query.npy"));
  ASSERT_OK_AND_ASSIGN(Matrix<float> qf, ReadFloatMatrix(dir + "/siftsmall_query.fvecs"));
  EXPECT_EQ(qn.rows, 100u);
  ExpectSameFloats(qn, qf);

  ASSERT_OK_AND_ASSIGN(Matrix<int64_t> gn, ReadIntMatrix(dir + "/gt_l2_top100.npy"));
  ASSERT_OK_AND_ASSIGN(Matrix<int64_t> gi, ReadIntMatrix(dir + "/siftsmall_groundtruth.ivecs"));
  EXPECT_EQ(gn.rows, 100u);
  EXPECT_EQ(gn.cols, 100u);
  EXPECT_EQ(gn.data, gi.data);
  for (int64_t id : gn.data) {
    ASSERT_GE(id, 0);
    ASSERT_LT(id, 10000);
  }
}

TEST(ArrayIoRealDataTest, SiftGroundTruthIsTheTrueNearestNeighbour) {
  // Independent check that rows and columns are not transposed: the first ground-truth id of
  // query 0 is its L2 nearest neighbour in the base.
  ROSETTA_REQUIRE_SHARED_DATA("sift10k_siftsmall", dir);
  ASSERT_OK_AND_ASSIGN(Matrix<float> base, ReadFloatMatrix(dir + "/base.npy"));
  ASSERT_OK_AND_ASSIGN(Matrix<float> query, ReadFloatMatrix(dir + "/query.npy"));
  ASSERT_OK_AND_ASSIGN(Matrix<int64_t> gt, ReadIntMatrix(dir + "/gt_l2_top100.npy"));
  size_t best = 0;
  double best_d = std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < base.rows; ++i) {
    double d = 0;
    for (size_t c = 0; c < base.cols; ++c) {
      const double diff = double{base.row(i)[c]} - query.row(0)[c];
      d += diff * diff;
    }
    if (d < best_d) best_d = d, best = i;
  }
  EXPECT_EQ(static_cast<int64_t>(best), gt.row(0)[0]);
}

TEST(ArrayIoRealDataTest, FashionMnistNpyEqualsTexmex) {
  ROSETTA_REQUIRE_SHARED_DATA("fashion-mnist_1k", dir);
  ASSERT_OK_AND_ASSIGN(Matrix<float> npy, ReadFloatMatrix(dir + "/base.npy"));
  ASSERT_OK_AND_ASSIGN(Matrix<float> fvecs, ReadFloatMatrix(dir + "/base.fvecs"));
  EXPECT_EQ(npy.rows, 1000u);
  EXPECT_EQ(npy.cols, 784u);
  ExpectSameFloats(npy, fvecs);
  ASSERT_OK_AND_ASSIGN(Matrix<int64_t> gn, ReadIntMatrix(dir + "/gt_l2_top100.npy"));
  ASSERT_OK_AND_ASSIGN(Matrix<int64_t> gi, ReadIntMatrix(dir + "/groundtruth.ivecs"));
  EXPECT_EQ(gn.rows, 500u);
  EXPECT_EQ(gn.cols, 100u);
  EXPECT_EQ(gn.data, gi.data);
}

TEST(ArrayIoRealDataTest, FlickrEmbeddingsAreUnitNorm) {
  ROSETTA_REQUIRE_SHARED_DATA("flickr8k_tinyclip-vit40m_1k", dir);
  for (const char* name : {"/image_emb.npy", "/text_emb.npy"}) {
    SCOPED_TRACE(name);
    ASSERT_OK_AND_ASSIGN(Matrix<float> m, ReadFloatMatrix(dir + name));
    EXPECT_EQ(m.rows, 1000u);
    EXPECT_EQ(m.cols, 512u);
    for (size_t r = 0; r < m.rows; ++r) {
      double n = 0;
      for (size_t c = 0; c < m.cols; ++c) n += double{m.row(r)[c]} * m.row(r)[c];
      ASSERT_NEAR(std::sqrt(n), 1.0, 1e-3) << "row " << r;
    }
  }
  ASSERT_OK_AND_ASSIGN(Matrix<int64_t> gt, ReadIntMatrix(dir + "/gt_text2image_ip_top100.npy"));
  EXPECT_EQ(gt.rows, 1000u);
  EXPECT_EQ(gt.cols, 100u);
}

// ---------------------------------------------------------------------------------------------
// Hand-made files
// ---------------------------------------------------------------------------------------------

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

template <typename T>
std::string Raw(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

// A .npy file: magic, version, header length, the dict padded to 64 bytes with a newline, data.
std::string Npy(const std::string& dict, const std::string& data, int major = 1,
                bool newline = true) {
  std::string header = dict;
  const size_t prefix = major == 1 ? 10 : 12;
  if (newline) {
    const size_t unpadded = prefix + header.size() + 1;
    header.append((64 - unpadded % 64) % 64, ' ');
    header.push_back('\n');
  }
  std::string out = "\x93NUMPY";
  out.push_back(static_cast<char>(major));
  out.push_back(0);
  const uint32_t len = static_cast<uint32_t>(header.size());
  out.push_back(static_cast<char>(len & 0xFF));
  out.push_back(static_cast<char>((len >> 8) & 0xFF));
  if (major != 1) {
    out.push_back(static_cast<char>((len >> 16) & 0xFF));
    out.push_back(static_cast<char>((len >> 24) & 0xFF));
  }
  return out + header + data;
}

std::string Dict(const std::string& descr, const std::string& shape,
                 const std::string& fortran = "False") {
  return "{'descr': '" + descr + "', 'fortran_order': " + fortran + ", 'shape': " + shape + ", }";
}

class ArrayIoFileTest : public ::testing::Test {
 protected:
  std::string Path(const std::string& name) { return (dir_.path() / name).string(); }
  std::string Write(const std::string& name, const std::string& bytes) {
    const std::string p = Path(name);
    WriteBytes(p, bytes);
    return p;
  }
  testing::TempDir dir_;
};

TEST_F(ArrayIoFileTest, WriteNpyRoundTrip) {
  const uint64_t seed = testing::TestSeed(7);
  SCOPED_TRACE(testing::SeedTrace(seed));
  Matrix<float> m;
  m.rows = 37;
  m.cols = 19;
  m.data = testing::RandomVectors(m.rows, m.cols, seed);
  m.data[5] = -0.0f;
  m.data[6] = std::numeric_limits<float>::denorm_min();
  const std::string p = Path("m.npy");
  ASSERT_OK(WriteNpy(p, m));
  ASSERT_OK_AND_ASSIGN(Matrix<float> back, ReadFloatMatrix(p));
  ExpectSameFloats(m, back);
  // The header is NumPy's v1.0 layout: data 64-byte aligned, exact size, no temp file left.
  std::ifstream in(p, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GT(bytes.size(), 10u);
  const size_t header_len = static_cast<uint8_t>(bytes[8]) | (static_cast<uint8_t>(bytes[9]) << 8);
  EXPECT_EQ((10 + header_len) % 64, 0u);
  EXPECT_EQ(bytes.size(), 10 + header_len + m.data.size() * 4);
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  EXPECT_THAT(bytes.substr(10, header_len),
              HasSubstr("{'descr': '<f4', 'fortran_order': False, 'shape': (37, 19), }"));
  EXPECT_EQ(bytes[10 + header_len - 1], '\n');
  EXPECT_FALSE(std::filesystem::exists(p + ".tmp"));

  // Empty matrix.
  Matrix<float> empty;
  ASSERT_OK(WriteNpy(Path("e.npy"), empty));
  ASSERT_OK_AND_ASSIGN(Matrix<float> e, ReadFloatMatrix(Path("e.npy")));
  EXPECT_EQ(e.rows, 0u);
  EXPECT_TRUE(e.data.empty());
}

TEST_F(ArrayIoFileTest, WriteNpyRejectsInconsistentMatrix) {
  Matrix<float> m;
  m.rows = 2;
  m.cols = 3;
  m.data = {1, 2, 3};
  EXPECT_STATUS(WriteNpy(Path("bad.npy"), m), kInvalid, "data has 3 values, shape (2, 3) needs 6");
  EXPECT_FALSE(std::filesystem::exists(Path("bad.npy")));
  EXPECT_FALSE(WriteNpy((dir_.path() / "no" / "such" / "dir.npy").string(), Matrix<float>{}).ok());
}

TEST_F(ArrayIoFileTest, HeaderVariants) {
  const std::vector<float> v = {1, 2, 3, 4, 5, 6};
  // Versions 2.0 and 3.0 have a 4-byte header length.
  for (int major : {1, 2, 3}) {
    SCOPED_TRACE(major);
    const std::string p = Write("v.npy", Npy(Dict("<f4", "(2, 3)"), Raw(v), major));
    ASSERT_OK_AND_ASSIGN(Matrix<float> m, ReadFloatMatrix(p));
    EXPECT_EQ(m.rows, 2u);
    EXPECT_EQ(m.cols, 3u);
    EXPECT_THAT(m.data, ElementsAre(1, 2, 3, 4, 5, 6));
  }
  // Keys in another order, double quotes, no trailing comma, no padding beyond the newline.
  std::string p = Write(
      "o.npy", Npy("{\"shape\": (3,2), \"fortran_order\": False, \"descr\": \"<f4\"}", Raw(v)));
  ASSERT_OK_AND_ASSIGN(Matrix<float> m, ReadFloatMatrix(p));
  EXPECT_EQ(m.rows, 3u);
  EXPECT_EQ(m.cols, 2u);
  // 1-D: one row.
  p = Write("one.npy", Npy(Dict("<f4", "(6,)"), Raw(v)));
  ASSERT_OK_AND_ASSIGN(m, ReadFloatMatrix(p));
  EXPECT_EQ(m.rows, 1u);
  EXPECT_EQ(m.cols, 6u);
  // Zero rows.
  p = Write("zero.npy", Npy(Dict("<f4", "(0, 4)"), ""));
  ASSERT_OK_AND_ASSIGN(m, ReadFloatMatrix(p));
  EXPECT_EQ(m.rows, 0u);
  EXPECT_EQ(m.cols, 4u);
}

TEST_F(ArrayIoFileTest, HalfFloatsAreWidenedExactly) {
  const std::vector<uint16_t> h = {0x3C00, 0xC000, 0x0001, 0x8001, 0x03FF, 0x0400,
                                   0x7BFF, 0x3555, 0x0000, 0x8000, 0x7C00, 0xFC00};
  const std::string p = Write("h.npy", Npy(Dict("<f2", "(3, 4)"), Raw(h)));
  ASSERT_OK_AND_ASSIGN(Matrix<float> m, ReadFloatMatrix(p));
  ASSERT_EQ(m.data.size(), 12u);
  EXPECT_EQ(m.data[0], 1.0f);
  EXPECT_EQ(m.data[1], -2.0f);
  EXPECT_EQ(m.data[2], std::ldexp(1.0f, -24));  // smallest subnormal half.
  EXPECT_EQ(m.data[3], -std::ldexp(1.0f, -24));
  EXPECT_EQ(m.data[4], std::ldexp(1023.0f, -24));  // largest subnormal half.
  EXPECT_EQ(m.data[5], std::ldexp(1.0f, -14));     // smallest normal half.
  EXPECT_EQ(m.data[6], 65504.0f);                  // largest half.
  EXPECT_EQ(m.data[7], 0.333251953125f);
  EXPECT_EQ(m.data[8], 0.0f);
  EXPECT_TRUE(std::signbit(m.data[9]));
  EXPECT_EQ(m.data[10], std::numeric_limits<float>::infinity());
  EXPECT_EQ(m.data[11], -std::numeric_limits<float>::infinity());
  const std::vector<uint16_t> nan = {0x7E00};
  ASSERT_OK_AND_ASSIGN(m, ReadFloatMatrix(Write("n.npy", Npy(Dict("<f2", "(1, 1)"), Raw(nan)))));
  EXPECT_TRUE(std::isnan(m.data[0]));  // passed through; validation rejects it with a message.
}

TEST_F(ArrayIoFileTest, DoublesAreNarrowedAndRangeChecked) {
  const std::vector<double> d = {0.1, -2.5, 1e-50, 3.0e38};
  ASSERT_OK_AND_ASSIGN(Matrix<float> m,
                       ReadFloatMatrix(Write("d.npy", Npy(Dict("<f8", "(2, 2)"), Raw(d)))));
  EXPECT_THAT(m.data, ElementsAre(0.1f, -2.5f, 0.0f, 3.0e38f));
  const std::vector<double> big = {1, 2, 3, -1e300};
  EXPECT_STATUS(ReadFloatMatrix(Write("big.npy", Npy(Dict("<f8", "(2, 2)"), Raw(big)))), kInvalid,
                "row 1, column 1: value -1e+300 is out of float32 range");
}

TEST_F(ArrayIoFileTest, IntegerMatrices) {
  const std::vector<int32_t> i4 = {1, -2, 3, 2147483647};
  ASSERT_OK_AND_ASSIGN(Matrix<int64_t> m,
                       ReadIntMatrix(Write("i4.npy", Npy(Dict("<i4", "(2, 2)"), Raw(i4)))));
  EXPECT_THAT(m.data, ElementsAre(1, -2, 3, 2147483647));
  const std::vector<int64_t> i8 = {int64_t{1} << 40, -7};
  ASSERT_OK_AND_ASSIGN(m, ReadIntMatrix(Write("i8.npy", Npy(Dict("<i8", "(2,)"), Raw(i8)))));
  EXPECT_EQ(m.rows, 1u);
  EXPECT_THAT(m.data, ElementsAre(int64_t{1} << 40, -7));
  // Kinds do not mix.
  EXPECT_STATUS(ReadFloatMatrix(Path("i4.npy")), kInvalid,
                "dtype \"<i4\" holds integers, not vectors");
  const std::vector<float> f = {1};
  EXPECT_STATUS(ReadIntMatrix(Write("f.npy", Npy(Dict("<f4", "(1, 1)"), Raw(f)))), kInvalid,
                "dtype \"<f4\" is not an integer type");
}

TEST_F(ArrayIoFileTest, MalformedNpy) {
  const std::vector<float> six = {1, 2, 3, 4, 5, 6};
  const std::string good = Npy(Dict("<f4", "(2, 3)"), Raw(six));
  struct Case {
    const char* name;
    std::string bytes;
    const char* message;
  };
  const std::vector<Case> cases = {
      {"magic", "\x93NUMPZ" + good.substr(6), "not a .npy file (bad magic)"},
      {"tiny", "\x93NUM", "not a .npy file (4 bytes, too short)"},
      {"version", good.substr(0, 6) + std::string("\x04\x00", 2) + good.substr(8),
       "unsupported .npy version 4.0"},
      {"truncated_header", good.substr(0, 40), "truncated .npy header"},
      {"truncated_data", good.substr(0, good.size() - 1),
       "truncated: shape (2, 3) of <f4 needs 24 data bytes, the file has 23"},
      {"trailing", good + "x", "1 unexpected bytes after the data"},
      {"fortran", Npy(Dict("<f4", "(2, 3)", "True"), Raw(six)),
       "Fortran-order arrays are not supported"},
      {"big_endian", Npy(Dict(">f4", "(2, 3)"), Raw(six)),
       "big-endian dtype \">f4\" is not supported"},
      {"uint8", Npy(Dict("|u1", "(4, 6)"), Raw(six)), "unsupported dtype \"|u1\""},
      {"complex", Npy(Dict("<c8", "(3, 1)"), Raw(six)), "unsupported dtype \"<c8\""},
      {"three_d", Npy(Dict("<f4", "(1, 2, 3)"), Raw(six)), "3-D array is not supported"},
      {"scalar", Npy(Dict("<f4", "()"), Raw(std::vector<float>{1})), "0-D array is not supported"},
      {"zero_width", Npy(Dict("<f4", "(3, 0)"), ""), "rows of zero width"},
      {"no_newline", Npy(Dict("<f4", "(2, 3)"), Raw(six), 1, /*newline=*/false),
       "does not end with a newline"},
      {"no_shape", Npy("{'descr': '<f4', 'fortran_order': False}", Raw(six)), "no 'shape'"},
      {"no_descr", Npy("{'fortran_order': False, 'shape': (6,)}", Raw(six)), "no 'descr'"},
      {"unknown_key",
       Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (6,), 'x': 1}", Raw(six)),
       "unexpected key 'x'"},
      {"dup_key",
       Npy("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (6,)}", Raw(six)),
       "duplicate key 'descr'"},
      {"structured",
       Npy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (6,)}", Raw(six)),
       "structured dtypes"},
      {"bad_fortran", Npy("{'descr': '<f4', 'fortran_order': 0, 'shape': (6,)}", Raw(six)),
       "fortran_order must be True or False"},
      {"negative_shape", Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (-6,)}", Raw(six)),
       "shape entries must be non-negative integers"},
      {"long_shape", Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (6L,)}", Raw(six)),
       "expected ',' or ')' in shape"},
      {"huge_shape",
       Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 16)}",
           Raw(six)),
       "is too large"},
      {"overflow_shape",
       Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,)}",
           Raw(six)),
       "shape entry is too large"},
      {"garbage_after", Npy(Dict("<f4", "(2, 3)") + " x", Raw(six)),
       "unexpected characters after the dict"},
      {"not_a_dict", Npy("['<f4']", Raw(six)), "expected '{'"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string p = Write(std::string(c.name) + ".npy", c.bytes);
    absl::StatusOr<Matrix<float>> r = ReadFloatMatrix(p);
    EXPECT_STATUS(r, kInvalid, c.message);
    // Every message names the file.
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(std::string(c.name) + ".npy\": "));
  }
}

TEST_F(ArrayIoFileTest, PathErrors) {
  EXPECT_STATUS(ReadFloatMatrix(Path("absent.npy")), absl::StatusCode::kNotFound, "no such file");
  std::filesystem::create_directory(Path("dir.npy"));
  EXPECT_STATUS(ReadFloatMatrix(Path("dir.npy")), kInvalid, "not a regular file");
  Write("x.csv", "1,2,3\n");
  EXPECT_STATUS(ReadFloatMatrix(Path("x.csv")), kInvalid,
                "unknown vector file type (expected a .npy or .fvecs file)");
  EXPECT_STATUS(ReadIntMatrix(Path("x.csv")), kInvalid, "expected a .npy or .ivecs file");
  Write("y.fvecs", "");
  EXPECT_STATUS(ReadIntMatrix(Path("y.fvecs")), kInvalid, "expected a .npy or .ivecs file");
}

// ---------------------------------------------------------------------------------------------
// TEXMEX
// ---------------------------------------------------------------------------------------------

std::string Texmex(const std::vector<std::vector<float>>& rows) {
  std::string out;
  for (const auto& r : rows) {
    const int32_t d = static_cast<int32_t>(r.size());
    out.append(reinterpret_cast<const char*>(&d), 4);
    out += Raw(r);
  }
  return out;
}

TEST_F(ArrayIoFileTest, Fvecs) {
  const std::string p = Write("a.fvecs", Texmex({{1, 2, 3}, {4, 5, 6}}));
  ASSERT_OK_AND_ASSIGN(Matrix<float> m, ReadFloatMatrix(p));
  EXPECT_EQ(m.rows, 2u);
  EXPECT_EQ(m.cols, 3u);
  EXPECT_THAT(m.data, ElementsAre(1, 2, 3, 4, 5, 6));
  ASSERT_OK_AND_ASSIGN(m, ReadFloatMatrix(Write("empty.fvecs", "")));
  EXPECT_EQ(m.rows, 0u);

  EXPECT_STATUS(
      ReadFloatMatrix(Write("mixed.fvecs", Texmex({{1, 2}, {3, 4}, {5, 6, 7, 8}, {9, 10}}))),
      kInvalid, "size 56 is not a multiple of the row size 12 (4 + 2 x 4 bytes)");
  // Rows of 12 + 12 + 20 + 12 = 56 bytes: the size check fires first. Equal-size rows with a
  // different dimension word are found per row:
  std::string swapped = Texmex({{1, 2, 3}, {4, 5, 6}, {7, 8, 9}, {1, 1, 1}});
  const int32_t two = 2;
  std::memcpy(&swapped[32], &two, 4);  // row 2's dimension word says 2.
  EXPECT_STATUS(ReadFloatMatrix(Write("row.fvecs", swapped)), kInvalid,
                "row.fvecs\": row 2: dimension 2 differs from row 0's 3");
  EXPECT_STATUS(ReadFloatMatrix(Write("trunc.fvecs", Texmex({{1, 2, 3}, {4, 5, 6}}).substr(0, 30))),
                kInvalid, "size 30 is not a multiple of the row size 16 (4 + 3 x 4 bytes)");
  const int32_t neg = -3;
  EXPECT_STATUS(
      ReadFloatMatrix(Write("neg.fvecs", std::string(reinterpret_cast<const char*>(&neg), 4) +
                                             std::string(12, '\0'))),
      kInvalid, "row 0: dimension -3 is not positive");
  EXPECT_STATUS(ReadFloatMatrix(Write("short.fvecs", "ab")), kInvalid, "truncated: 2 bytes");
}

TEST_F(ArrayIoFileTest, Ivecs) {
  std::string bytes;
  for (const std::vector<int32_t>& row :
       {std::vector<int32_t>{7, -1}, std::vector<int32_t>{0, 9}}) {
    const int32_t d = 2;
    bytes.append(reinterpret_cast<const char*>(&d), 4);
    bytes += Raw(row);
  }
  ASSERT_OK_AND_ASSIGN(Matrix<int64_t> m, ReadIntMatrix(Write("g.ivecs", bytes)));
  EXPECT_EQ(m.rows, 2u);
  EXPECT_EQ(m.cols, 2u);
  EXPECT_THAT(m.data, ElementsAre(7, -1, 0, 9));
  EXPECT_STATUS(ReadIntMatrix(Write("t.ivecs", bytes.substr(0, 13))), kInvalid,
                "size 13 is not a multiple of the row size 12");
}

}  // namespace
}  // namespace rosetta
