// The engine's device path on a real GPU (label cuda; skips without a usable device): the same
// records in a CPU database and a `--device cuda` database give the same hits and scores, and
// explanations equal but for ranks within one (the device counts them in its own arithmetic;
// tests/engine/device_test.cc checks the definition exactly through the reference backend, which
// tests/cuda/gpu_fused_test.cc and gpu_rank_counts_test.cc tie bit for bit to these kernels).
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "engine/database.h"
#include "kernels/device.h"
#include "tests/engine/engine_test_util.h"
#include "tests/testing/testing.h"

namespace rosetta::engine {
namespace {

using ::rosetta::testing::SeedTrace;
using ::rosetta::testing::TempDir;
using ::rosetta::testing::TestSeed;
using namespace ::rosetta::engine::testing;  // NOLINT

TEST(EngineOnCudaTest, DeviceAnswersEqualTheCpuPath) {
  if (kernels::CudaDeviceCount() == 0) {
    GTEST_SKIP() << "no usable CUDA device (built with CUDA: "
                 << (kernels::BuiltWithCuda() ? "yes" : "no") << ")";
  }
  const uint64_t seed = TestSeed(71);
  SCOPED_TRACE(SeedTrace(seed));
  constexpr size_t kDim = 96;
  TempDir dir;
  DatabaseOptions cpu_options = TestOptions();
  DatabaseOptions gpu_options = TestOptions();
  gpu_options.device = DeviceKind::kCuda;
  gpu_options.device_chunk_rows = 4096;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Database> cpu, Database::Open(dir.str() + "/cpu", cpu_options));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Database> gpu, Database::Open(dir.str() + "/gpu", gpu_options));
  EXPECT_NE(gpu->Stats().device.rfind("cuda:", 0), std::string::npos) << gpu->Stats().device;
  CollectionSchema s;
  s.name = "c";
  AddSpace(s, MakeSpace("e", kDim, Metric::kCosine));
  AddSpace(s, MakeSpace("a", 24, Metric::kL2));
  AddField(s, MakeField("img", "e", "image", 0.7f));
  AddField(s, MakeField("cap", "e", "text", 0.3f));
  AddField(s, MakeField("aud", "a", "audio", 1.0f));
  s.attributes["group"] = AttributeType::kInt;
  ASSERT_OK(cpu->CreateCollection(s));
  ASSERT_OK(gpu->CreateCollection(s));
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g;
  auto vec = [&](size_t d) {
    std::vector<float> v(d);
    for (float& x : v) x = g(rng);
    return v;
  };
  for (int round = 0; round < 6; ++round) {
    std::vector<Record> records;
    for (int i = 0; i < 5000; ++i) {
      Record r;
      r.id = "r" + std::to_string(round * 5000 + i);
      const uint64_t kind = rng() % 10;
      if (kind != 0) r.vectors["img"] = vec(kDim);
      if (kind >= 2 || kind == 0) r.vectors["cap"] = vec(kDim);
      if (kind % 3 == 0) r.vectors["aud"] = vec(24);
      if (rng() % 5 == 0) r.weights["cap"] = 0.5f + static_cast<float>(rng() % 4) * 0.5f;
      r.attributes["group"] = static_cast<int64_t>(rng() % 4);
      records.push_back(std::move(r));
    }
    ASSERT_OK(cpu->Upsert("c", records).status());
    ASSERT_OK(gpu->Upsert("c", records).status());
    std::vector<std::string> gone;
    for (int i = 0; i < 100; ++i) gone.push_back("r" + std::to_string(rng() % ((round + 1) * 5000)));
    ASSERT_OK(cpu->Delete("c", gone).status());
    ASSERT_OK(gpu->Delete("c", gone).status());
  }
  ASSERT_OK(gpu->SyncDeviceMirrors("c"));
  ASSERT_OK_AND_ASSIGN(CollectionInfo info, gpu->Describe("c"));
  EXPECT_GT(info.device_rows, 29000);
  EXPECT_GT(info.device_bytes, 0);
  int compared = 0;
  for (Normalize norm : {Normalize::kNone, Normalize::kCalibrated}) {
    for (Missing missing : {Missing::kRenormalize, Missing::kZero, Missing::kRequire}) {
      for (int variant = 0; variant < 3; ++variant) {
        SearchRequest req;
        req.k = variant == 2 ? 100 : 10;
        req.normalize = norm;
        req.missing = missing;
        req.exact = true;
        QueryInput in;
        in.vector = vec(kDim);
        in.space = "e";
        in.modality = "text";
        req.inputs.push_back(in);
        if (variant == 1) {
          req.filter.predicates.push_back(
              {Predicate::Target::kAttribute, "group", FilterOp::kLt, {int64_t{2}}});
          QueryInput a;
          a.vector = vec(24);
          a.space = "a";
          a.modality = "audio";
          req.inputs.push_back(a);
        }
        ASSERT_OK_AND_ASSIGN(SearchResponse c, cpu->Search("c", req));
        ASSERT_OK_AND_ASSIGN(SearchResponse d, gpu->Search("c", req));
        ASSERT_EQ(HitIds(d), HitIds(c));
        for (size_t h = 0; h < c.results.size(); ++h) {
          EXPECT_EQ(d.results[h].score, c.results[h].score);
          for (const auto& [name, e] : c.results[h].fields) {
            const FieldExplanation& f = d.results[h].fields.at(name);
            EXPECT_EQ(f.raw, e.raw);
            EXPECT_EQ(f.contribution, e.contribution);
            EXPECT_NEAR(static_cast<double>(f.rank), static_cast<double>(e.rank), 1.0);
          }
        }
        ++compared;
      }
    }
  }
  const DeviceStats st = gpu->Stats().device_stats;
  EXPECT_EQ(st.fallbacks, 0);
  EXPECT_GE(st.searches, compared / 2);
  EXPECT_GT(st.mirrored_rows, 0);
  // A batch of one shape shares one device call.
  std::vector<SearchRequest> batch;
  for (int i = 0; i < 32; ++i) {
    SearchRequest r;
    QueryInput in;
    in.vector = vec(kDim);
    in.space = "e";
    r.inputs.push_back(in);
    r.explain = false;
    batch.push_back(r);
  }
  ASSERT_OK_AND_ASSIGN(std::vector<SearchResponse> got, gpu->SearchBatch("c", batch));
  for (size_t i = 0; i < batch.size(); ++i) {
    ASSERT_OK_AND_ASSIGN(SearchResponse want, cpu->Search("c", batch[i]));
    EXPECT_EQ(HitIds(got[i]), HitIds(want)) << "query " << i;
  }
  EXPECT_EQ(gpu->Stats().device_stats.batches, st.batches + 1);
}

}  // namespace
}  // namespace rosetta::engine
