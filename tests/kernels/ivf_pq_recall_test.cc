// IVF-PQ recall against exact search: SIFT10K, fashion-mnist 1k and flickr8k (real data from
// ../shared/data, skipped when absent) and synthetic clustered data of low intrinsic dimension,
// over a small grid of (nlist, m, nbits, nprobe, refine). Candidates are re-ranked with exact
// scores as the engine does (`refine`), and recall@10 is measured against exact FlatSearch.
// Each test prints its table, so the figures behind the defaults in kernels/ivf_pq.h can be
// re-measured with: rosetta_kernels_tests --gtest_filter='IvfPqRecall*'
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/flat_search.h"
#include "kernels/ivf_pq.h"
#include "kernels/parallel.h"
#include "tests/testing/testing.h"

namespace rosetta::kernels {
namespace {

using ::rosetta::testing::SeedTrace;
using ::rosetta::testing::TestSeed;

// Minimal .npy reader for the shared data (version 1.0 header, little-endian '<f4', C order).
bool ReadNpyF32(const std::string& path, size_t* rows, size_t* cols, std::vector<float>* out) {
  std::ifstream in(path, std::ios::binary);
  char magic[8];
  if (!in.read(magic, 8) || std::memcmp(magic, "\x93NUMPY\x01\x00", 8) != 0) return false;
  unsigned char len[2];
  if (!in.read(reinterpret_cast<char*>(len), 2)) return false;
  std::string header(len[0] | (len[1] << 8), '\0');
  if (!in.read(header.data(), header.size())) return false;
  if (header.find("'descr': '<f4'") == std::string::npos) return false;
  if (header.find("'fortran_order': False") == std::string::npos) return false;
  const size_t open = header.find('(', header.find("'shape'"));
  if (open == std::string::npos) return false;
  *rows = std::strtoull(header.c_str() + open + 1, nullptr, 10);
  const size_t comma = header.find(',', open);
  *cols = std::strtoull(header.c_str() + comma + 1, nullptr, 10);
  out->resize(*rows * *cols);
  return static_cast<bool>(in.read(reinterpret_cast<char*>(out->data()), out->size() * 4));
}

struct Dataset {
  std::vector<float> base, queries;
  size_t nb = 0, nq = 0, d = 0;
  FlatMetric metric = FlatMetric::kL2;
  std::vector<std::vector<Scored>> truth;  // exact top-10 per query
};

void ComputeTruth(Dataset& ds, ThreadPool* pool) {
  FlatSearchParams fp;
  fp.k = 10;
  fp.metric = ds.metric;
  fp.pool = pool;
  ds.truth = FlatSearch(ds.queries.data(), ds.nq, ds.base.data(), ds.nb, ds.d, fp);
}

// Clustered data of low intrinsic dimension, like real embeddings: each point is a cluster centre
// plus a random combination of `intrinsic` directions specific to its cluster, plus small
// isotropic noise. Queries are drawn from the same distribution (not from the base).
Dataset SyntheticClustered(size_t nb, size_t nq, size_t d, size_t clusters, size_t intrinsic,
                           uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g(0.f, 1.f);
  std::vector<float> centres(clusters * d), dirs(clusters * intrinsic * d);
  for (float& c : centres) c = 0.7f * g(rng);
  for (float& v : dirs) v = g(rng) / std::sqrt(static_cast<float>(d));
  auto draw = [&](float* out) {
    const size_t c = rng() % clusters;
    for (size_t t = 0; t < d; ++t) out[t] = centres[c * d + t] + 0.02f * g(rng);
    for (size_t a = 0; a < intrinsic; ++a) {
      const float z = g(rng);
      const float* dir = dirs.data() + (c * intrinsic + a) * d;
      for (size_t t = 0; t < d; ++t) out[t] += z * dir[t];
    }
  };
  Dataset ds;
  ds.nb = nb;
  ds.nq = nq;
  ds.d = d;
  ds.base.resize(nb * d);
  ds.queries.resize(nq * d);
  for (size_t i = 0; i < nb; ++i) draw(ds.base.data() + i * d);
  for (size_t i = 0; i < nq; ++i) draw(ds.queries.data() + i * d);
  return ds;
}

// Recall@10 after exact re-ranking of each query's `refine` best PQ candidates (refine >= 10).
double RecallAfterRefine(const IvfPqIndex& index, const Dataset& ds, size_t nprobe, size_t refine,
                         ThreadPool* pool) {
  IvfPqSearchParams sp;
  sp.k = refine;
  sp.nprobe = nprobe;
  sp.pool = pool;
  const auto candidates = index.Search(ds.queries.data(), ds.nq, sp);
  size_t hits = 0;
  std::vector<float> cand_vectors;
  for (size_t q = 0; q < ds.nq; ++q) {
    const std::vector<Scored>& cands = candidates[q];
    cand_vectors.resize(cands.size() * ds.d);
    for (size_t i = 0; i < cands.size(); ++i) {
      std::memcpy(cand_vectors.data() + i * ds.d, ds.base.data() + cands[i].id * ds.d,
                  ds.d * sizeof(float));
    }
    // Exact scores of the candidates, as the engine's re-rank computes them.
    FlatSearchParams fp;
    fp.k = 10;
    fp.metric = ds.metric;
    const auto reranked = FlatSearch(ds.queries.data() + q * ds.d, 1, cand_vectors.data(),
                                     cands.size(), ds.d, fp);
    std::set<int64_t> truth;
    for (const Scored& s : ds.truth[q]) truth.insert(s.id);
    for (const Scored& s : reranked[0]) hits += truth.count(cands[s.id].id);
  }
  return static_cast<double>(hits) / (10.0 * ds.nq);
}

// Recall@10 of the PQ ranking itself (no re-ranking).
double RawRecall(const IvfPqIndex& index, const Dataset& ds, size_t nprobe, ThreadPool* pool) {
  IvfPqSearchParams sp;
  sp.k = 10;
  sp.nprobe = nprobe;
  sp.pool = pool;
  const auto res = index.Search(ds.queries.data(), ds.nq, sp);
  size_t hits = 0;
  for (size_t q = 0; q < ds.nq; ++q) {
    std::set<int64_t> truth;
    for (const Scored& s : ds.truth[q]) truth.insert(s.id);
    for (const Scored& s : res[q]) hits += truth.count(s.id);
  }
  return static_cast<double>(hits) / (10.0 * ds.nq);
}

std::vector<uint32_t> RowIds(size_t n) {
  std::vector<uint32_t> ids(n);
  for (size_t i = 0; i < n; ++i) ids[i] = static_cast<uint32_t>(i);
  return ids;
}

bool LoadShared(const std::string& dir, const char* base, const char* queries, Dataset* ds) {
  size_t qcols = 0;
  return ReadNpyF32(dir + "/" + base, &ds->nb, &ds->d, &ds->base) &&
         ReadNpyF32(dir + "/" + queries, &ds->nq, &qcols, &ds->queries) && qcols == ds->d;
}

// Builds with the defaults (nlist, m from the data) and checks recall@10 at the default nprobe
// and refine.
void CheckDefaults(const Dataset& ds, size_t nbits, double min_recall, ThreadPool* pool,
                   const char* name) {
  IvfPqParams p;
  p.nbits = nbits;
  p.metric = ds.metric;
  ASSERT_OK_AND_ASSIGN(const IvfPqIndex index, IvfPqIndex::Build(ds.base.data(), RowIds(ds.nb).data(),
                                                                 ds.nb, ds.d, p, pool));
  EXPECT_EQ(index.nlist(), DefaultNlist(ds.nb));
  EXPECT_EQ(index.m(), DefaultM(ds.d));
  const size_t refine = DefaultRefine(10, nbits);
  const double recall = RecallAfterRefine(index, ds, /*nprobe=*/0, refine, pool);
  std::printf("[ recall ] %s defaults nbits=%zu: nlist=%zu m=%zu nprobe=%zu refine=%zu "
              "recall@10=%.3f (raw PQ %.3f), %.1f bytes/vector\n",
              name, nbits, index.nlist(), index.m(), DefaultNprobe(index.nlist()), refine, recall,
              RawRecall(index, ds, 0, pool), index.BytesPerVector());
  EXPECT_GE(recall, min_recall) << name << " nbits " << nbits;
}

TEST(IvfPqRecall, Sift10kDefaultsReachRecallTarget) {
  ROSETTA_REQUIRE_SHARED_DATA("sift10k_siftsmall", dir);
  Dataset ds;
  ASSERT_TRUE(LoadShared(dir, "base.npy", "query.npy", &ds));
  ASSERT_EQ(ds.nb, 10000u);
  ASSERT_EQ(ds.d, 128u);
  ThreadPool pool(2);
  ComputeTruth(ds, &pool);
  // The target: recall@10 >= 0.95 at the default settings with an 8-bit index.
  CheckDefaults(ds, 8, 0.95, &pool, "SIFT10K");
  CheckDefaults(ds, 4, 0.95, &pool, "SIFT10K");
}

TEST(IvfPqRecall, Sift10kGrid) {
  ROSETTA_REQUIRE_SHARED_DATA("sift10k_siftsmall", dir);
  Dataset ds;
  ASSERT_TRUE(LoadShared(dir, "base.npy", "query.npy", &ds));
  ThreadPool pool(2);
  ComputeTruth(ds, &pool);
  struct Config {
    size_t nlist, m, nbits;
  };
  for (const Config& c : {Config{100, 16, 8}, Config{400, 16, 8}, Config{100, 32, 4},
                          Config{400, 64, 4}}) {
    IvfPqParams p;
    p.nlist = c.nlist;
    p.m = c.m;
    p.nbits = c.nbits;
    p.kmeans_iterations = 15;
    ASSERT_OK_AND_ASSIGN(const IvfPqIndex index,
                         IvfPqIndex::Build(ds.base.data(), RowIds(ds.nb).data(), ds.nb, ds.d, p,
                                           &pool));
    std::printf("[ recall ] SIFT10K nlist=%zu m=%zu nbits=%zu:", c.nlist, c.m, c.nbits);
    double prev_full = 0;
    for (size_t nprobe : {size_t{1}, size_t{4}, size_t{16}, c.nlist / 4, c.nlist}) {
      const double raw = RawRecall(index, ds, nprobe, &pool);
      const double r40 = RecallAfterRefine(index, ds, nprobe, 40, &pool);
      const double r100 = RecallAfterRefine(index, ds, nprobe, 100, &pool);
      std::printf("  nprobe %zu: raw %.3f, refine40 %.3f, refine100 %.3f;", nprobe, raw, r40,
                  r100);
      // More candidates re-ranked never hurt: the top-100 contains the top-40.
      EXPECT_GE(r100, r40 - 1e-9);
      EXPECT_GE(r40 + 1e-9, raw * 0.99) << "re-ranking lost recall";
      EXPECT_GE(r100 + 0.02, prev_full) << "recall fell as nprobe grew";
      prev_full = r100;
    }
    std::printf("\n");
    // Probing everything leaves only the quantization error, which re-ranking 100 removes.
    EXPECT_GE(prev_full, 0.97) << "nlist " << c.nlist << " m " << c.m << " nbits " << c.nbits;
    // The PQ ranking alone is informative (far above chance) and better with 8-bit codes.
    EXPECT_GE(RawRecall(index, ds, c.nlist, &pool), c.nbits == 8 ? 0.6 : 0.4);
  }
}

TEST(IvfPqRecall, SyntheticClusteredGrid) {
  const uint64_t seed = TestSeed(701);
  SCOPED_TRACE(SeedTrace(seed));
  Dataset ds = SyntheticClustered(20000, 200, 64, 100, 16, seed);
  ThreadPool pool(2);
  ComputeTruth(ds, &pool);
  for (FlatMetric metric : {FlatMetric::kL2, FlatMetric::kInnerProduct}) {
    if (metric == FlatMetric::kInnerProduct) {
      ds.metric = metric;
      ComputeTruth(ds, &pool);
    }
    for (size_t nbits : {8, 4}) {
      IvfPqParams p;
      p.nbits = nbits;
      p.metric = metric;
      p.m = 16;
      p.seed = seed;
      p.kmeans_iterations = 15;
      ASSERT_OK_AND_ASSIGN(const IvfPqIndex index,
                           IvfPqIndex::Build(ds.base.data(), RowIds(ds.nb).data(), ds.nb, ds.d, p,
                                             &pool));
      const size_t refine = DefaultRefine(10, nbits);
      std::printf("[ recall ] synthetic 20000x64 %s nlist=%zu m=16 nbits=%zu refine=%zu:",
                  metric == FlatMetric::kL2 ? "L2" : "IP", index.nlist(), nbits, refine);
      for (size_t nprobe : {size_t{1}, size_t{8}, DefaultNprobe(index.nlist()), size_t{128}}) {
        std::printf("  nprobe %zu: %.3f (raw %.3f);", nprobe,
                    RecallAfterRefine(index, ds, nprobe, refine, &pool),
                    RawRecall(index, ds, nprobe, &pool));
      }
      std::printf("\n");
      EXPECT_GE(RecallAfterRefine(index, ds, 0, refine, &pool), 0.95)
          << "nbits " << nbits << " metric " << (metric == FlatMetric::kL2 ? "L2" : "IP");
    }
  }
}

TEST(IvfPqRecall, FashionMnistDefaults) {
  ROSETTA_REQUIRE_SHARED_DATA("fashion-mnist_1k", dir);
  Dataset ds;
  ASSERT_TRUE(LoadShared(dir, "base.npy", "query.npy", &ds));
  ASSERT_EQ(ds.d, 784u);
  ThreadPool pool(2);
  ComputeTruth(ds, &pool);
  CheckDefaults(ds, 8, 0.95, &pool, "fashion-mnist");
  CheckDefaults(ds, 4, 0.95, &pool, "fashion-mnist");
}

TEST(IvfPqRecall, FlickrTextToImageDefaults) {
  ROSETTA_REQUIRE_SHARED_DATA("flickr8k_tinyclip-vit40m_1k", dir);
  Dataset ds;
  ASSERT_TRUE(LoadShared(dir, "image_emb.npy", "text_emb.npy", &ds));
  ASSERT_EQ(ds.d, 512u);
  ds.metric = FlatMetric::kInnerProduct;  // L2-normalised: cosine
  ThreadPool pool(2);
  ComputeTruth(ds, &pool);
  // Cross-modal queries (captions) against image clusters: the hardest case for probing.
  CheckDefaults(ds, 8, 0.95, &pool, "flickr8k text->image");
  CheckDefaults(ds, 4, 0.95, &pool, "flickr8k text->image");
}

}  // namespace
}  // namespace rosetta::kernels
