// Product quantizer, and the dispatch of the per-ISA PQ kernels (kernels/cpu/pq_*.cc).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/cpu/pq_kernels.h"
#include "kernels/ivf_pq.h"
#include "kernels/parallel.h"

namespace rosetta::kernels {

namespace internal {

const PqKernelTable& GetPqKernelTable(SimdLevel level) {
  // GetKernelTable already clamps to the supported levels; follow its choice.
  switch (GetKernelTable(level).level) {
    case SimdLevel::kAvx512:
      return kAvx512PqKernels;
    case SimdLevel::kAvx2:
      return kAvx2PqKernels;
    case SimdLevel::kScalar:
      break;
  }
  return kScalarPqKernels;
}

}  // namespace internal

namespace {

const internal::PqKernelTable& PqTable(std::optional<SimdLevel> level) {
  return internal::GetPqKernelTable(level.has_value() ? *level : ActiveSimdLevel());
}

absl::Status CheckShape(size_t d, size_t m, size_t nbits) {
  if (d == 0) return absl::InvalidArgumentError("product quantizer: dimension d is 0");
  if (m == 0) return absl::InvalidArgumentError("product quantizer: m (sub-quantizers) is 0");
  if (d % m != 0) {
    return absl::InvalidArgumentError(absl::StrCat("product quantizer: dimension ", d,
                                                   " is not divisible by m = ", m));
  }
  if (nbits != 4 && nbits != 8) {
    return absl::InvalidArgumentError(
        absl::StrCat("product quantizer: nbits = ", nbits, " (supported: 4 or 8)"));
  }
  return absl::OkStatus();
}

// Vectors encoded per task.
constexpr size_t kEncodeChunk = 256;

}  // namespace

absl::StatusOr<ProductQuantizer> ProductQuantizer::Train(const float* x, size_t n, size_t d,
                                                         size_t m, size_t nbits,
                                                         const KMeansParams& params,
                                                         ThreadPool* pool) {
  if (absl::Status s = CheckShape(d, m, nbits); !s.ok()) return s;
  const size_t ksub = size_t{1} << nbits;
  if (n < ksub) {
    return absl::InvalidArgumentError(absl::StrCat(
        "product quantizer: ", n, " training vectors for 2^", nbits, " = ", ksub,
        " centroids per sub-quantizer; at least ", ksub, " are needed"));
  }
  const size_t dsub = d / m;
  // Every sub-space uses the same rows: sample them once here (KMeans would otherwise sample per
  // sub-space), so the sub-vectors copied per sub-space stay within the cap.
  size_t cap = n;
  if (params.max_points_per_centroid > 0 &&
      params.max_points_per_centroid <= std::numeric_limits<size_t>::max() / ksub) {
    cap = std::min(n, params.max_points_per_centroid * ksub);
  }
  std::vector<size_t> rows(n);
  for (size_t i = 0; i < n; ++i) rows[i] = i;
  if (cap < n) {
    // Seeded partial Fisher-Yates (splitmix64 steps), then sorted for a streaming copy.
    uint64_t state = params.seed ^ 0x5851F42D4C957F2Dull;
    for (size_t i = 0; i < cap; ++i) {
      uint64_t z = (state += 0x9E3779B97F4A7C15ull);
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
      z ^= z >> 31;
      const size_t j = i + static_cast<size_t>((static_cast<unsigned __int128>(z) * (n - i)) >> 64);
      std::swap(rows[i], rows[j]);
    }
    rows.resize(cap);
    std::sort(rows.begin(), rows.end());
  }
  const size_t nt = rows.size();

  ProductQuantizer pq;
  pq.d_ = d;
  pq.m_ = m;
  pq.nbits_ = nbits;
  pq.codebooks_.resize(m * ksub * dsub);
  std::vector<absl::Status> status(m);
  auto train_subspaces = [&](size_t begin, size_t end) {
    std::vector<float> sub(nt * dsub);
    for (size_t j = begin; j < end; ++j) {
      for (size_t i = 0; i < nt; ++i) {
        std::memcpy(sub.data() + i * dsub, x + rows[i] * d + j * dsub, dsub * sizeof(float));
      }
      KMeansParams p = params;
      p.k = ksub;
      p.seed = params.seed + 0x9E3779B97F4A7C15ull * (j + 1);
      absl::StatusOr<KMeansResult> r = KMeans(sub.data(), nt, dsub, p, nullptr);
      if (!r.ok()) {
        status[j] = absl::Status(r.status().code(), absl::StrCat("sub-quantizer ", j, ": ",
                                                                 r.status().message()));
        continue;
      }
      std::memcpy(pq.codebooks_.data() + j * ksub * dsub, r->centroids.data(),
                  ksub * dsub * sizeof(float));
    }
  };
  if (pool != nullptr && pool->threads() > 1 && m > 1) {
    pool->ParallelFor(m, 1, train_subspaces);
  } else {
    train_subspaces(0, m);
  }
  for (const absl::Status& s : status) {
    if (!s.ok()) return s;
  }
  pq.BuildTransposed();
  return pq;
}

absl::StatusOr<ProductQuantizer> ProductQuantizer::FromCodebooks(size_t d, size_t m, size_t nbits,
                                                                 std::vector<float> codebooks) {
  if (absl::Status s = CheckShape(d, m, nbits); !s.ok()) return s;
  const size_t want = (size_t{1} << nbits) * d;
  if (codebooks.size() != want) {
    return absl::InvalidArgumentError(absl::StrCat("product quantizer: ", codebooks.size(),
                                                   " codebook floats, expected ", want));
  }
  for (size_t i = 0; i < codebooks.size(); ++i) {
    if (!std::isfinite(codebooks[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat("product quantizer: codebook value ", i, " is not finite"));
    }
  }
  ProductQuantizer pq;
  pq.d_ = d;
  pq.m_ = m;
  pq.nbits_ = nbits;
  pq.codebooks_ = std::move(codebooks);
  pq.BuildTransposed();
  return pq;
}

void ProductQuantizer::BuildTransposed() {
  const size_t ks = ksub(), ds = dsub();
  transposed_.resize(codebooks_.size());
  for (size_t j = 0; j < m_; ++j) {
    for (size_t i = 0; i < ks; ++i) {
      for (size_t t = 0; t < ds; ++t) {
        transposed_[(j * ds + t) * ks + i] = codebooks_[(j * ks + i) * ds + t];
      }
    }
  }
}

void ProductQuantizer::Encode(const float* x, size_t n, uint8_t* codes, ThreadPool* pool,
                              std::optional<SimdLevel> level) const {
  const internal::PqKernelTable& kt = PqTable(level);
  const size_t ks = ksub(), ds = dsub();
  auto body = [&](size_t begin, size_t end) {
    for (size_t i = begin * kEncodeChunk; i < std::min(n, end * kEncodeChunk); ++i) {
      for (size_t j = 0; j < m_; ++j) {
        float unused;
        codes[i * m_ + j] = static_cast<uint8_t>(kt.nearest_transposed(
            x + i * d_ + j * ds, transposed_.data() + j * ds * ks, ds, ks, ks, &unused));
      }
    }
  };
  const size_t chunks = (n + kEncodeChunk - 1) / kEncodeChunk;
  if (pool != nullptr && pool->threads() > 1 && chunks > 1) {
    pool->ParallelFor(chunks, 1, body);
  } else {
    body(0, chunks);
  }
}

void ProductQuantizer::Decode(const uint8_t* codes, size_t n, float* x) const {
  const size_t ks = ksub(), ds = dsub();
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < m_; ++j) {
      std::memcpy(x + i * d_ + j * ds, codebooks_.data() + (j * ks + codes[i * m_ + j]) * ds,
                  ds * sizeof(float));
    }
  }
}

void ProductQuantizer::ComputeL2Table(const float* q, float* table,
                                      std::optional<SimdLevel> level) const {
  PqTable(level).l2_table(q, transposed_.data(), m_, ksub(), dsub(), table);
}

void ProductQuantizer::ComputeIpTable(const float* q, float* table,
                                      std::optional<SimdLevel> level) const {
  PqTable(level).ip_table(q, transposed_.data(), m_, ksub(), dsub(), table);
}

size_t ProductQuantizer::MemoryBytes() const {
  return (codebooks_.capacity() + transposed_.capacity()) * sizeof(float);
}

}  // namespace rosetta::kernels
