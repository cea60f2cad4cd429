// The search device in the engine (engine/device_search.h): device selection, and the device
// path run through the reference backend (the CPU emulation that agrees bit for bit with the CUDA
// kernels, tests/cuda), compared with the CPU path on the same data: results, scores and
// explanations equal, ranks equal to their definition under the device's arithmetic; device
// errors answered on the CPU; mirrors within a budget; batching.
#include <atomic>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "engine/database.h"
#include "engine/device.h"
#include "kernels/device.h"
#include "kernels/gpu_fused.h"
#include "tests/engine/engine_test_util.h"
#include "tests/testing/testing.h"

namespace rosetta::engine {
namespace {

using ::rosetta::testing::SeedTrace;
using ::rosetta::testing::TempDir;
using ::rosetta::testing::TestSeed;
using namespace ::rosetta::engine::testing;  // NOLINT

constexpr size_t kDim = 16;

TEST(DeviceKindTest, NamesParseAndUnknownNamesAreRejected) {
  for (DeviceKind k : {DeviceKind::kAuto, DeviceKind::kCpu, DeviceKind::kCuda}) {
    ASSERT_OK_AND_ASSIGN(DeviceKind back, ParseDeviceKind(DeviceKindName(k)));
    EXPECT_EQ(back, k);
  }
  EXPECT_STATUS(ParseDeviceKind("gpu"), absl::StatusCode::kInvalidArgument,
                "unknown device \"gpu\" (expected auto, cpu or cuda)");
  EXPECT_STATUS(ParseDeviceKind("CPU"), absl::StatusCode::kInvalidArgument, "unknown device");
}

TEST(DeviceSelectionTest, CpuAndAutoWithoutAGpuSearchOnTheCpu) {
  TempDir dir;
  for (DeviceKind kind : {DeviceKind::kCpu, DeviceKind::kAuto}) {
    if (kind == DeviceKind::kAuto && kernels::CudaDeviceCount() > 0) continue;
    DatabaseOptions o = TestOptions();
    o.device = kind;
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Database> db, Database::Open(dir.str() + "/db", o));
    CollectionSchema s;
    s.name = "c" + std::string(DeviceKindName(kind));
    AddSpace(s, MakeSpace("e", kDim, Metric::kCosine));
    AddField(s, MakeField("v", "e", "image"));
    ASSERT_OK(db->CreateCollection(s));
    EXPECT_EQ(db->Stats().device, "cpu");
    EXPECT_EQ(db->Stats().device_stats.searches, 0);
    ASSERT_OK_AND_ASSIGN(CollectionInfo info, db->Describe(s.name));
    EXPECT_EQ(info.device, "cpu");
    EXPECT_EQ(info.device_rows, 0);
  }
}

TEST(DeviceSelectionTest, CudaWithoutAUsableDeviceFailsAtOpenAndCreatesNothing) {
  if (kernels::CudaDeviceCount() > 0) GTEST_SKIP() << "a CUDA device is present";
  TempDir dir;
  DatabaseOptions o = TestOptions();
  o.device = DeviceKind::kCuda;
  const std::string path = dir.str() + "/db";
  auto db = Database::Open(path, o);
  ASSERT_FALSE(db.ok());
  EXPECT_EQ(db.status().code(), absl::StatusCode::kFailedPrecondition);
  if (kernels::BuiltWithCuda()) {
    EXPECT_THAT(std::string(db.status().message()),
                ::testing::HasSubstr("no usable CUDA device (none present, or the NVIDIA driver "
                                     "is missing or too old"));
  } else {
    EXPECT_THAT(std::string(db.status().message()), ::testing::HasSubstr("no CUDA kernels"));
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

// A backend that delegates to the reference one and fails the calls it is told to.
class FlakyBackend final : public DeviceBackend {
 public:
  explicit FlakyBackend(std::shared_ptr<DeviceBackend> inner) : inner_(std::move(inner)) {}
  std::string Name() const override { return "flaky " + inner_->Name(); }
  size_t MemoryBytes() const override { return inner_->MemoryBytes(); }
  size_t EstimateBytes(size_t rows,
                       std::span<const kernels::FusedFieldData> fields) const override {
    return inner_->EstimateBytes(rows, fields);
  }
  absl::StatusOr<std::unique_ptr<DeviceChunk>> Upload(
      size_t rows, std::span<const kernels::FusedFieldData> fields) override {
    if (fail_upload) return absl::InternalError("injected: cudaMalloc failed");
    return inner_->Upload(rows, fields);
  }
  absl::StatusOr<std::vector<std::vector<kernels::Scored>>> Search(
      const DeviceChunk& chunk, size_t nq, const kernels::FusedParams& params) override {
    if (fail_search) return absl::InternalError("injected: an illegal memory access");
    return inner_->Search(chunk, nq, params);
  }
  absl::StatusOr<std::vector<kernels::RankCount>> RankCounts(
      const DeviceChunk& chunk, size_t nq, const kernels::RankCountParams& params) override {
    if (fail_ranks) return absl::InternalError("injected: rank kernel failed");
    return inner_->RankCounts(chunk, nq, params);
  }
  std::atomic<bool> fail_upload{false}, fail_search{false}, fail_ranks{false};

 private:
  std::shared_ptr<DeviceBackend> inner_;
};

// Two databases with the same records written in the same order (so the same rows): one on the
// CPU, one on the device path.
class DevicePathTest : public ::testing::Test {
 protected:
  void Open(std::shared_ptr<DeviceBackend> backend, size_t budget = 0, size_t chunk_rows = 512) {
    DatabaseOptions cpu = TestOptions();
    ASSERT_OK_AND_ASSIGN(cpu_, Database::Open(dir_.str() + "/cpu", cpu));
    DatabaseOptions dev = TestOptions();
    dev.device_backend = std::move(backend);
    dev.device_memory_budget = budget;
    dev.device_chunk_rows = chunk_rows;
    dev.device_batch_wait = std::chrono::microseconds(0);
    dev_options_ = dev;
    ASSERT_OK_AND_ASSIGN(dev_, Database::Open(dir_.str() + "/dev", dev));
    CollectionSchema s;
    s.name = "c";
    AddSpace(s, MakeSpace("e", kDim, Metric::kCosine));
    AddSpace(s, MakeSpace("a", 8, Metric::kL2));
    AddField(s, MakeField("img", "e", "image", 0.7f));
    AddField(s, MakeField("cap", "e", "text", 0.3f));
    AddField(s, MakeField("aud", "a", "audio", 1.0f));
    s.attributes["group"] = AttributeType::kInt;
    ASSERT_OK(cpu_->CreateCollection(s));
    ASSERT_OK(dev_->CreateCollection(s));
  }

  Record Make(const std::string& id) {
    std::normal_distribution<float> g;
    Record r;
    r.id = id;
    const size_t kind = rng_() % 10;
    auto vec = [&](size_t d) {
      std::vector<float> v(d);
      for (float& x : v) x = g(rng_);
      return v;
    };
    if (kind != 0) r.vectors["img"] = vec(kDim);
    if (kind >= 2 || kind == 0) r.vectors["cap"] = vec(kDim);
    if (kind % 3 == 0) r.vectors["aud"] = vec(8);
    if (rng_() % 5 == 0) r.weights["cap"] = 0.25f + static_cast<float>(rng_() % 8) * 0.25f;
    r.attributes["group"] = static_cast<int64_t>(rng_() % 4);
    return r;
  }

  // Writes the same records, deletes and replacements to both databases, `rounds` times,
  // searching the device database between rounds so its mirror grows in several chunks.
  void Fill(size_t rounds, size_t per_round, bool sync = true, bool sync_fails = false) {
    for (size_t round = 0; round < rounds; ++round) {
      std::vector<Record> records;
      for (size_t i = 0; i < per_round; ++i) {
        records.push_back(Make("r" + std::to_string(round * per_round + i)));
      }
      // Replace some earlier records, delete others.
      if (round > 0) {
        for (size_t i = 0; i < per_round / 20; ++i) {
          records.push_back(Make("r" + std::to_string(rng_() % (round * per_round))));
        }
      }
      // Duplicate ids within one call are an error: keep the first.
      std::set<std::string> seen;
      std::vector<Record> unique;
      for (Record& r : records) {
        if (seen.insert(r.id).second) unique.push_back(std::move(r));
      }
      ASSERT_OK(cpu_->Upsert("c", unique).status());
      ASSERT_OK(dev_->Upsert("c", unique).status());
      std::vector<std::string> gone;
      for (size_t i = 0; i < per_round / 25; ++i) {
        gone.push_back("r" + std::to_string(rng_() % ((round + 1) * per_round)));
      }
      ASSERT_OK(cpu_->Delete("c", gone).status());
      ASSERT_OK(dev_->Delete("c", gone).status());
      if (sync) {  // the mirror catches up now (searches would schedule it in the background).
        absl::Status st = dev_->SyncDeviceMirrors("c");
        EXPECT_EQ(st.ok(), !sync_fails) << st;
      }
    }
  }

  SearchRequest Query(uint64_t salt) {
    std::mt19937_64 rng(salt * 7919 + 1);
    std::normal_distribution<float> g;
    SearchRequest req;
    req.k = 10;
    QueryInput in;
    in.vector.resize(kDim);
    for (float& x : in.vector) x = g(rng);
    in.space = "e";
    in.modality = "text";
    req.inputs.push_back(std::move(in));
    req.explain = true;
    req.with_attributes = false;
    return req;
  }

  // Ranks as the device path defines them: over the candidates having the field (live, passing
  // the filter), 1 + the rows whose raw score under the device's arithmetic is higher.
  void ExpectDeviceRanks(const SearchRequest& req, const SearchResponse& resp) {
    ASSERT_OK_AND_ASSIGN(GetResult all, dev_->Get("c", AllIds(), /*with_vectors=*/true));
    for (const Hit& hit : resp.results) {
      for (const auto& [field, e] : hit.fields) {
        if (e.missing) continue;
        const QueryInput& in = req.inputs[field == "aud" ? req.inputs.size() - 1 : 0];
        const kernels::FlatMetric metric =
            field == "aud" ? kernels::FlatMetric::kL2 : kernels::FlatMetric::kInnerProduct;
        // Cosine queries are normalised by validation, as the engine scores them.
        const std::vector<float> qv = field == "aud" ? in.vector : Normalised(in.vector);
        const Record* self = nullptr;
        for (const Record& r : all.records) {
          if (r.id == hit.id) self = &r;
        }
        ASSERT_NE(self, nullptr);
        const std::vector<float>& hv = self->vectors.at(field);
        const float t = kernels::FusedRawScore(metric, qv.data(), hv.data(), hv.size());
        int64_t greater = 0;
        for (const Record& r : all.records) {
          auto v = r.vectors.find(field);
          if (v == r.vectors.end() || !Passes(req, r)) continue;
          if (kernels::FusedRawScore(metric, qv.data(), v->second.data(),
                                     v->second.size()) > t) {
            ++greater;
          }
        }
        EXPECT_EQ(e.rank, greater + 1) << hit.id << " " << field;
      }
    }
  }

  static bool Passes(const SearchRequest& req, const Record& r) {
    for (const Predicate& p : req.filter.predicates) {
      auto it = r.attributes.find(p.key);
      if (it == r.attributes.end()) return false;
      const int64_t v = std::get<int64_t>(it->second);
      if (p.op == FilterOp::kLt && !(v < std::get<int64_t>(p.values[0]))) return false;
    }
    return true;
  }

  std::vector<std::string> AllIds() {
    std::vector<std::string> ids;
    for (size_t i = 0; i < 10000; ++i) ids.push_back("r" + std::to_string(i));
    for (size_t i = 0; i < 40; ++i) ids.push_back("dup" + std::to_string(i));
    return ids;
  }

  // The device answer equals the CPU answer: ids, scores, and every explanation member but the
  // rank (checked against its definition).
  void ExpectSame(const SearchRequest& req) {
    ASSERT_OK_AND_ASSIGN(SearchResponse c, cpu_->Search("c", req));
    ASSERT_OK_AND_ASSIGN(SearchResponse d, dev_->Search("c", req));
    EXPECT_TRUE(d.exact);
    // Ranks under the two arithmetics differ only where two raw scores are within rounding.
    ExpectSameHits(c, d, /*rank_tolerance=*/1);
    if (req.explain) ExpectDeviceRanks(req, d);
  }

  TempDir dir_;
  std::mt19937_64 rng_{TestSeed(61)};
  std::unique_ptr<Database> cpu_, dev_;
  DatabaseOptions dev_options_;
  static constexpr int64_t s_budget_ = 3 * 512 * (16 + 16 + 8 + 3 + 2) * 4;
};

TEST_F(DevicePathTest, FusedQueriesEqualTheCpuPathAcrossChunksTailDeletesAndReopen) {
  SCOPED_TRACE(SeedTrace(TestSeed(61)));
  Open(MakeReferenceDeviceBackend(), /*budget=*/0, /*chunk_rows=*/256);
  Fill(12, 300);  // 3,600 records and more rows: a chunk per round, merged past 8, a tail.
  ASSERT_OK_AND_ASSIGN(CollectionInfo info, dev_->Describe("c"));
  EXPECT_EQ(info.device, "reference (CPU emulation of the device path)");
  EXPECT_GT(info.device_rows, 0);
  EXPECT_GT(info.device_bytes, 0);
  int queries = 0;
  auto run_all = [&] {
    for (Normalize norm : {Normalize::kNone, Normalize::kCalibrated}) {
      for (Missing missing : {Missing::kRenormalize, Missing::kZero, Missing::kRequire}) {
        for (int variant = 0; variant < 4; ++variant) {
          SCOPED_TRACE(::testing::Message() << "normalize " << static_cast<int>(norm) << " missing "
                                            << static_cast<int>(missing) << " variant " << variant);
          SearchRequest req = Query(static_cast<uint64_t>(queries));
          req.normalize = norm;
          req.missing = missing;
          req.exact = true;
          if (variant == 1) {
            req.filter.predicates.push_back(
                {Predicate::Target::kAttribute, "group", FilterOp::kLt, {int64_t{2}}});
          }
          if (variant == 2) {  // a second input, in the l2 space, and k = 1
            QueryInput a;
            a.vector.assign(8, 0.5f);
            a.space = "a";
            a.modality = "audio";
            a.weight = 0.5f;
            req.inputs.push_back(a);
            req.k = 1;
          }
          if (variant == 3) {  // one field, k = 50, query weights
            req.inputs[0].fields = {"img"};
            req.k = 50;
          }
          ExpectSame(req);
          ++queries;
        }
      }
    }
  };
  run_all();
  const DeviceStats s = dev_->Stats().device_stats;
  EXPECT_GT(s.searches, queries / 2);  // most went through the device path...
  EXPECT_EQ(s.fallbacks, 0);
  EXPECT_LE(s.boundary_fallbacks, queries / 8) << "searches " << s.searches;
  std::cout << "device path: " << s.searches << " searches, " << s.boundary_fallbacks
            << " boundary fallbacks, " << s.cpu_queries << " CPU queries, " << s.batches
            << " device calls; " << s.mirrored_rows << " rows mirrored in " << s.mirror_bytes
            << " bytes, " << s.unmirrored_rows << " not\n";
  EXPECT_GT(s.mirrored_rows, 0);
  // ...and after a reopen (rows renumbered, mirrored at open) too.
  cpu_.reset();
  dev_.reset();
  ASSERT_OK_AND_ASSIGN(cpu_, Database::Open(dir_.str() + "/cpu", TestOptions()));
  ASSERT_OK_AND_ASSIGN(dev_, Database::Open(dir_.str() + "/dev", dev_options_));
  ASSERT_OK_AND_ASSIGN(info, dev_->Describe("c"));
  EXPECT_GT(info.device_rows, 0);
  run_all();
  EXPECT_GT(dev_->Stats().device_stats.searches, queries / 4);
}

TEST_F(DevicePathTest, SearchesScheduleUploadsOnTheDevicesOwnThread) {
  Open(MakeReferenceDeviceBackend(), /*budget=*/0, /*chunk_rows=*/512);
  Fill(3, 400, /*sync=*/false);
  ASSERT_OK_AND_ASSIGN(CollectionInfo info, dev_->Describe("c"));
  EXPECT_EQ(info.device_rows, 0);
  // Answered on the CPU (nothing mirrored yet), and it queues the upload.
  ExpectSame(Query(1));
  EXPECT_EQ(dev_->Stats().device_stats.cpu_queries, 1);
  for (int i = 0; i < 2000 && info.device_rows == 0; ++i) {  // a liveness bound, not a timing
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ASSERT_OK_AND_ASSIGN(info, dev_->Describe("c"));
  }
  EXPECT_EQ(info.device_rows, static_cast<int64_t>(info.device_rows / 256 * 256));
  EXPECT_GE(info.device_rows, 1024);
  ExpectSame(Query(2));
  EXPECT_EQ(dev_->Stats().device_stats.searches, 1);
}

TEST_F(DevicePathTest, ShapesTheDeviceDoesNotTakeRunOnTheCpuAndAreCounted) {
  Open(MakeReferenceDeviceBackend());
  Fill(3, 400);
  const int64_t before = dev_->Stats().device_stats.cpu_queries;
  int n = 0;
  for (Fusion fusion : {Fusion::kMax, Fusion::kRrf}) {
    SearchRequest req = Query(n++);
    req.fusion = fusion;
    ExpectSame(req);
  }
  for (Normalize norm : {Normalize::kMinMax, Normalize::kZScore}) {
    SearchRequest req = Query(n++);
    req.normalize = norm;
    ExpectSame(req);
  }
  SearchRequest big = Query(n++);
  big.k = static_cast<int>(kernels::kGpuMaxK);  // k + margin beyond the device's k.
  ExpectSame(big);
  EXPECT_EQ(dev_->Stats().device_stats.cpu_queries - before, 5);
}

TEST_F(DevicePathTest, DeviceErrorsAreAnsweredOnTheCpuAndCounted) {
  auto flaky = std::make_shared<FlakyBackend>(MakeReferenceDeviceBackend());
  Open(flaky);
  Fill(4, 300);
  flaky->fail_search = true;
  ExpectSame(Query(1));
  EXPECT_EQ(dev_->Stats().device_stats.fallbacks, 1);
  flaky->fail_search = false;
  flaky->fail_ranks = true;
  ExpectSame(Query(2));
  EXPECT_EQ(dev_->Stats().device_stats.fallbacks, 2);
  flaky->fail_ranks = false;
  // A failing upload leaves the new rows on the CPU; answers stay right.
  flaky->fail_upload = true;
  Fill(2, 600, /*sync=*/true, /*sync_fails=*/true);
  ExpectSame(Query(3));
  EXPECT_GT(dev_->Stats().device_stats.unmirrored_rows, 0);
  flaky->fail_upload = false;
  SearchRequest no_explain = Query(4);
  no_explain.explain = false;
  ExpectSame(no_explain);
  EXPECT_EQ(dev_->Stats().device_stats.fallbacks, 2);
}

TEST_F(DevicePathTest, MirrorsStayWithinTheBudgetAndTheRestIsSearchedOnTheCpu) {
  // Room for about 3 chunks of 512 rows of the three fields.
  Open(MakeReferenceDeviceBackend(), /*budget=*/s_budget_);
  Fill(8, 300);
  const DeviceStats s = dev_->Stats().device_stats;
  EXPECT_GT(s.mirrored_rows, 0);
  EXPECT_GT(s.unmirrored_rows, 0);
  EXPECT_LE(s.mirror_bytes, s.memory_budget_bytes);
  for (int i = 0; i < 6; ++i) ExpectSame(Query(100 + i));
  // Dropping the collection gives its share of the budget back.
  ASSERT_OK_AND_ASSIGN(CollectionInfo before, dev_->Describe("c"));
  ASSERT_OK(dev_->DropCollection("c"));
  ASSERT_OK(cpu_->DropCollection("c"));
  ASSERT_OK(cpu_->CreateCollection(before.schema));
  ASSERT_OK(dev_->CreateCollection(before.schema));
  Fill(4, 300);
  ASSERT_OK_AND_ASSIGN(CollectionInfo after, dev_->Describe("c"));
  EXPECT_GT(after.device_rows, 0);
  EXPECT_LE(dev_->Stats().device_stats.mirror_bytes, s_budget_);
}

TEST_F(DevicePathTest, TiesBeyondTheDeviceMarginAreAnsweredOnTheCpu) {
  Open(MakeReferenceDeviceBackend());
  Fill(3, 400);
  // 40 records with the query's own image vector: they tie at the top, more of them than the
  // device returns per chunk (k + 16), and ties are ordered by id ("dup10" < "dup2"), which only
  // the CPU path knows. The rows sit in the mirror once a chunk covers them.
  SearchRequest req = Query(7);
  req.inputs[0].fields = {"img"};
  req.normalize = Normalize::kNone;
  std::vector<Record> dups;
  for (int i = 0; i < 40; ++i) {
    Record r;
    r.id = "dup" + std::to_string(i);
    r.vectors["img"] = req.inputs[0].vector;
    dups.push_back(r);
  }
  ASSERT_OK(cpu_->Upsert("c", dups).status());
  ASSERT_OK(dev_->Upsert("c", dups).status());
  Fill(2, 400);  // more rows after them, so that they are mirrored.
  for (bool explain : {false, true}) {
    req.explain = explain;
    const int64_t before = dev_->Stats().device_stats.boundary_fallbacks;
    ASSERT_OK_AND_ASSIGN(SearchResponse c, cpu_->Search("c", req));
    ASSERT_OK_AND_ASSIGN(SearchResponse d, dev_->Search("c", req));
    EXPECT_EQ(HitIds(d), HitIds(c));
    EXPECT_EQ(HitIds(c).front(), "dup0");
    EXPECT_EQ(HitIds(c).back(), "dup17");  // dup0, dup1, dup10 ... dup17
    EXPECT_EQ(dev_->Stats().device_stats.boundary_fallbacks - before, 1);
  }
  // k = 1 with explain: the top-k is clear of the boundary (the ties are all candidates) but
  // the hit's rank in the field ties with 39 others: also the CPU's to order.
  req.k = 1;
  const int64_t before = dev_->Stats().device_stats.boundary_fallbacks;
  ExpectSame(req);
  EXPECT_EQ(dev_->Stats().device_stats.boundary_fallbacks - before, 1);
}

TEST_F(DevicePathTest, SearchBatchSharesDeviceCallsAndConcurrentSearchesAgree) {
  Open(MakeReferenceDeviceBackend());
  Fill(4, 300);
  std::vector<SearchRequest> reqs;
  for (int i = 0; i < 40; ++i) {
    SearchRequest r = Query(200 + i);
    r.explain = (i % 2) == 0;
    reqs.push_back(r);
  }
  const DeviceStats before = dev_->Stats().device_stats;
  ASSERT_OK_AND_ASSIGN(std::vector<SearchResponse> batch, dev_->SearchBatch("c", reqs));
  const DeviceStats after = dev_->Stats().device_stats;
  // One shape: one device call for all 40 (below device_max_batch), whatever the fallbacks.
  EXPECT_EQ(after.batches - before.batches, 1);
  EXPECT_EQ(after.searches - before.searches + after.boundary_fallbacks - before.boundary_fallbacks,
            40);
  for (size_t i = 0; i < reqs.size(); ++i) {
    ASSERT_OK_AND_ASSIGN(SearchResponse c, cpu_->Search("c", reqs[i]));
    EXPECT_EQ(HitIds(batch[i]), HitIds(c)) << "query " << i;
  }
  // Concurrent single searches (dynamic batching may join them): each gets its own answer.
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t; i < 40; i += 4) {
        auto d = dev_->Search("c", reqs[i]);
        auto c = cpu_->Search("c", reqs[i]);
        if (!d.ok() || !c.ok() || HitIds(*d) != HitIds(*c)) ++wrong;
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
}  // namespace rosetta::engine
