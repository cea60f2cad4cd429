// The embedded client: the Client interface on an in-process engine::Database.
#include "net/embedded_client.h"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "engine/database.h"
#include "gtest/gtest.h"
#include "kernels/device.h"
#include "tests/testing/testing.h"

namespace rosetta {
namespace {

using ::rosetta::testing::TempDir;

CollectionSchema TwoFieldSchema() {
  CollectionSchema s;
  s.name = "docs";
  s.spaces["s"] = Space{"s", 4, Metric::kIp, "toy@1"};
  s.fields["image"] = Field{"image", "s", "image", 0.75f, {}};
  s.fields["text"] = Field{"text", "s", "text", 0.25f, {}};
  s.attributes["lang"] = AttributeType::kString;
  return s;
}

Record MakeRecord(const std::string& id, std::vector<float> image, std::vector<float> text) {
  Record r;
  r.id = id;
  if (!image.empty()) r.vectors["image"] = std::move(image);
  if (!text.empty()) r.vectors["text"] = std::move(text);
  return r;
}

SearchRequest Query(std::vector<float> v) {
  SearchRequest q;
  q.k = 10;
  q.normalize = Normalize::kNone;
  QueryInput in;
  in.vector = std::move(v);
  in.space = "s";
  in.modality = "text";
  q.inputs.push_back(std::move(in));
  return q;
}

class EmbeddedClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (tmp_.path() / "db").string();
    auto c = OpenEmbeddedClient(dir_, {});
    ASSERT_TRUE(c.ok()) << c.status();
    client_ = std::move(*c);
  }
  TempDir tmp_;
  std::string dir_;
  std::unique_ptr<Client> client_;
};

TEST_F(EmbeddedClientTest, Info) {
  ASSERT_OK_AND_ASSIGN(ServerInfo info, client_->Info());
  EXPECT_EQ(info.version, "0.1.0");
  EXPECT_EQ(info.mode, "embedded");
  EXPECT_EQ(info.data_dir, dir_);
  EXPECT_THAT(info.kernel_backend, ::testing::AnyOf("avx512", "avx2", "scalar"));
}

TEST_F(EmbeddedClientTest, CollectionLifecycle) {
  ASSERT_OK_AND_ASSIGN(auto names, client_->ListCollections());
  EXPECT_TRUE(names.empty());
  ASSERT_OK(client_->CreateCollection(TwoFieldSchema()));
  EXPECT_STATUS(client_->CreateCollection(TwoFieldSchema()), absl::StatusCode::kAlreadyExists,
                "docs");
  ASSERT_OK_AND_ASSIGN(names, client_->ListCollections());
  EXPECT_EQ(names, std::vector<std::string>{"docs"});
  ASSERT_OK_AND_ASSIGN(CollectionInfo info, client_->Describe("docs"));
  EXPECT_EQ(info.schema.name, "docs");
  EXPECT_EQ(info.records, 0);
  EXPECT_EQ(info.schema.fields.size(), 2u);
  EXPECT_STATUS(client_->Describe("nope"), absl::StatusCode::kNotFound, "nope");
  ASSERT_OK(client_->DropCollection("docs"));
  EXPECT_STATUS(client_->DropCollection("docs"), absl::StatusCode::kNotFound, "docs");
  ASSERT_OK_AND_ASSIGN(names, client_->ListCollections());
  EXPECT_TRUE(names.empty());
}

TEST_F(EmbeddedClientTest, RecordsAndSearch) {
  ASSERT_OK(client_->CreateCollection(TwoFieldSchema()));
  std::vector<Record> records = {MakeRecord("a", {1, 0, 0, 0}, {1, 0, 0, 0}),
                                 MakeRecord("b", {0.5f, 0.5f, 0, 0}, {0, 1, 0, 0}),
                                 MakeRecord("c", {}, {0.5f, 0, 0, 0})};
  ASSERT_OK_AND_ASSIGN(WriteResult w, client_->Upsert("docs", records));
  EXPECT_EQ(w.written, 3);
  EXPECT_EQ(w.created, 3);

  ASSERT_OK_AND_ASSIGN(GetResult g, client_->Get("docs", {"c", "zz", "a"}, true));
  ASSERT_EQ(g.records.size(), 2u);
  EXPECT_EQ(g.records[0].id, "c");
  EXPECT_EQ(g.records[0].vectors.at("text"), (std::vector<float>{0.5f, 0, 0, 0}));
  EXPECT_EQ(g.records[1].id, "a");
  EXPECT_EQ(g.not_found, std::vector<std::string>{"zz"});

  // One query: a = 0.75 + 0.25 = 1; c (text only, renormalised to weight 1) = 0.5;
  // b = 0.75 * 0.5 = 0.375.
  ASSERT_OK_AND_ASSIGN(auto one, client_->Search("docs", {Query({1, 0, 0, 0})}));
  ASSERT_EQ(one.size(), 1u);
  ASSERT_EQ(one[0].results.size(), 3u);
  EXPECT_EQ(one[0].results[0].id, "a");
  EXPECT_FLOAT_EQ(one[0].results[0].score, 1.0f);
  EXPECT_EQ(one[0].results[1].id, "c");
  EXPECT_FLOAT_EQ(one[0].results[1].score, 0.5f);
  EXPECT_EQ(one[0].results[2].id, "b");
  EXPECT_FLOAT_EQ(one[0].results[2].score, 0.375f);

  // Several queries at once give what each gives alone.
  ASSERT_OK_AND_ASSIGN(auto many,
                       client_->Search("docs", {Query({1, 0, 0, 0}), Query({0, 1, 0, 0})}));
  ASSERT_EQ(many.size(), 2u);
  ASSERT_OK_AND_ASSIGN(auto second, client_->Search("docs", {Query({0, 1, 0, 0})}));
  for (size_t q = 0; q < 2; ++q) {
    const auto& alone = q == 0 ? one[0] : second[0];
    ASSERT_EQ(many[q].results.size(), alone.results.size());
    for (size_t i = 0; i < alone.results.size(); ++i) {
      EXPECT_EQ(many[q].results[i].id, alone.results[i].id);
      EXPECT_FLOAT_EQ(many[q].results[i].score, alone.results[i].score);
    }
  }
  ASSERT_OK_AND_ASSIGN(auto none, client_->Search("docs", {}));
  EXPECT_TRUE(none.empty());

  ASSERT_OK_AND_ASSIGN(WriteResult d, client_->Delete("docs", {"a", "zz"}));
  EXPECT_EQ(d.written, 1);
  EXPECT_EQ(d.not_found, 1);
  ASSERT_OK_AND_ASSIGN(CollectionInfo info, client_->Describe("docs"));
  EXPECT_EQ(info.records, 2);
  EXPECT_STATUS(client_->Search("nope", {Query({1, 0, 0, 0})}), absl::StatusCode::kNotFound,
                "nope");
  EXPECT_STATUS(client_->Upsert("docs", {MakeRecord("x", {1, 2, 3}, {})}),
                absl::StatusCode::kInvalidArgument, "x");
}

// Indexes and telemetry are the engine's, unchanged; WaitForIndexes polls until done.
TEST_F(EmbeddedClientTest, IndexesAndStats) {
  CollectionSchema schema = TwoFieldSchema();
  schema.fields["image"].index.type = IndexType::kIvfPq;
  ASSERT_OK(client_->CreateCollection(schema));
  ASSERT_OK(client_->Upsert("docs", {MakeRecord("a", {1, 0, 0, 0}, {}),
                                     MakeRecord("b", {0, 1, 0, 0}, {0, 0, 1, 0})}));
  ASSERT_OK_AND_ASSIGN(IndexBuildProgress p, client_->IndexProgress("docs"));
  EXPECT_EQ(p.segments, 0);
  EXPECT_EQ(p.growing_rows, 2);
  ASSERT_OK_AND_ASSIGN(p, client_->BuildIndex("docs", ""));
  EXPECT_EQ(p.segments, 1);
  EXPECT_EQ(p.building, 1);
  EXPECT_EQ(p.growing_rows, 0);
  std::vector<IndexBuildProgress> seen;
  ASSERT_OK_AND_ASSIGN(p, WaitForIndexes(*client_, "docs", std::chrono::seconds(60),
                                         std::chrono::milliseconds(1),
                                         [&](const IndexBuildProgress& x) { seen.push_back(x); }));
  EXPECT_TRUE(p.done());
  EXPECT_EQ(p.ready, 1);
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back().ready, 1);  // the last progress reported is the one returned.
  for (size_t i = 0; i + 1 < seen.size(); ++i) EXPECT_FALSE(seen[i].done()) << i;
  EXPECT_STATUS(client_->BuildIndex("docs", "text"), absl::StatusCode::kInvalidArgument, "text");
  EXPECT_STATUS(client_->IndexProgress("nope"), absl::StatusCode::kNotFound, "nope");

  ASSERT_OK_AND_ASSIGN(DatabaseStats stats, client_->Stats());
  EXPECT_EQ(stats.collections, 1);
  EXPECT_EQ(stats.records, 2);
  ASSERT_EQ(stats.operations.size(), 6u);
  EXPECT_EQ(stats.operations[2].operation, "upsert");
  EXPECT_EQ(stats.operations[2].count, 1);
  EXPECT_TRUE(stats.requests.empty());  // server-only.
  EXPECT_EQ(stats.connections_accepted, 0);
  EXPECT_EQ(stats.bytes_received, 0);
}

// With nothing queued the first poll is the answer, even with no time to wait; errors pass through.
TEST_F(EmbeddedClientTest, WaitForIndexesPollsAtLeastOnce) {
  CollectionSchema schema = TwoFieldSchema();
  schema.fields["image"].index.type = IndexType::kIvfPq;
  ASSERT_OK(client_->CreateCollection(schema));
  ASSERT_OK(client_->Upsert("docs", {MakeRecord("a", {1, 0, 0, 0}, {})}));
  int polls = 0;
  ASSERT_OK_AND_ASSIGN(IndexBuildProgress p,
                       WaitForIndexes(*client_, "docs", std::chrono::milliseconds(0),
                                      std::chrono::milliseconds(1),
                                      [&](const IndexBuildProgress&) { ++polls; }));
  EXPECT_EQ(polls, 1);  // one poll at the deadline.
  EXPECT_TRUE(p.done());  // nothing was queued.
  EXPECT_EQ(p.growing_rows, 1);
  EXPECT_STATUS(WaitForIndexes(*client_, "nope", std::chrono::seconds(1)),
                absl::StatusCode::kNotFound, "nope");
}

// A Client written before the index and telemetry operations still compiles, and says so.
TEST(ClientTest, OperationsNotOverriddenAreUnimplemented) {
  class Minimal final : public Client {
   public:
    absl::StatusOr<ServerInfo> Info() override { return ServerInfo{}; }
    absl::Status CreateCollection(const CollectionSchema&) override { return absl::OkStatus(); }
    absl::StatusOr<std::vector<std::string>> ListCollections() override {
      return std::vector<std::string>{};
    }
    absl::StatusOr<CollectionInfo> Describe(const std::string&) override {
      return CollectionInfo{};
    }
    absl::Status DropCollection(const std::string&) override { return absl::OkStatus(); }
    absl::StatusOr<WriteResult> Upsert(const std::string&, std::vector<Record>) override {
      return WriteResult{};
    }
    absl::StatusOr<WriteResult> Import(const ImportRequest&) override { return WriteResult{}; }
    absl::StatusOr<GetResult> Get(const std::string&, const std::vector<std::string>&,
                                  bool) override {
      return GetResult{};
    }
    absl::StatusOr<WriteResult> Delete(const std::string&,
                                       const std::vector<std::string>&) override {
      return WriteResult{};
    }
    absl::StatusOr<std::vector<SearchResponse>> Search(const std::string&,
                                                       std::vector<SearchRequest>) override {
      return std::vector<SearchResponse>{};
    }
  } minimal;
  EXPECT_EQ(minimal.BuildIndex("c", "").status(),
            absl::UnimplementedError("build-index is not supported by this client"));
  EXPECT_EQ(minimal.IndexProgress("c").status(),
            absl::UnimplementedError("index-progress is not supported by this client"));
  EXPECT_EQ(minimal.Stats().status(),
            absl::UnimplementedError("stats is not supported by this client"));
  EXPECT_EQ(WaitForIndexes(minimal, "c", std::chrono::seconds(1)).status().code(),
            absl::StatusCode::kUnimplemented);
}

TEST_F(EmbeddedClientTest, Import) {
  ASSERT_OK(client_->CreateCollection(TwoFieldSchema()));
  const std::vector<float> data = {1, 0, 0, 0, 0, 1, 0, 0};
  ImportRequest req;
  req.collection = "docs";
  req.field = "image";
  req.data = data;
  req.rows = 2;
  req.dim = 4;
  req.id_prefix = "p";
  req.id_offset = 5;
  req.provenance.source = "unit";
  ASSERT_OK_AND_ASSIGN(WriteResult w, client_->Import(req));
  EXPECT_EQ(w.written, 2);
  EXPECT_EQ(w.created, 2);
  ASSERT_OK_AND_ASSIGN(GetResult g, client_->Get("docs", {"p5", "p6"}, true));
  ASSERT_EQ(g.records.size(), 2u);
  EXPECT_EQ(g.records[1].vectors.at("image"), (std::vector<float>{0, 1, 0, 0}));
  EXPECT_EQ(g.records[1].provenance.source, "unit");

  ImportRequest bad = req;
  bad.rows = 3;  // 8 floats are not 3 rows of 4.
  EXPECT_STATUS(client_->Import(bad), absl::StatusCode::kInvalidArgument, "3 rows");
}

TEST_F(EmbeddedClientTest, BatchLimit) {
  ASSERT_OK(client_->CreateCollection(TwoFieldSchema()));
  std::vector<Record> records(engine::kMaxBatchRecords + 1);
  for (size_t i = 0; i < records.size(); ++i) {
    records[i] = MakeRecord("r" + std::to_string(i), {1, 0, 0, 0}, {});
  }
  EXPECT_STATUS(client_->Upsert("docs", records), absl::StatusCode::kInvalidArgument, "at most");
  std::vector<float> data(4 * (engine::kMaxBatchRecords + 1), 1.0f);
  ImportRequest req;
  req.collection = "docs";
  req.field = "image";
  req.data = data;
  req.rows = engine::kMaxBatchRecords + 1;
  req.dim = 4;
  EXPECT_STATUS(client_->Import(req), absl::StatusCode::kInvalidArgument, "at most");
  ASSERT_OK_AND_ASSIGN(CollectionInfo info, client_->Describe("docs"));
  EXPECT_EQ(info.records, 0);
}

TEST_F(EmbeddedClientTest, PersistsAcrossReopenAndLocksTheDirectory) {
  ASSERT_OK(client_->CreateCollection(TwoFieldSchema()));
  ASSERT_OK(client_->Upsert("docs", {MakeRecord("a", {1, 2, 3, 4}, {})}).status());
  // A second client on the same directory is refused while the first holds it.
  auto second = OpenEmbeddedClient(dir_, {});
  EXPECT_STATUS(second, absl::StatusCode::kFailedPrecondition, "");
  client_.reset();
  ASSERT_OK_AND_ASSIGN(client_, OpenEmbeddedClient(dir_, {}));
  ASSERT_OK_AND_ASSIGN(GetResult g, client_->Get("docs", {"a"}, true));
  ASSERT_EQ(g.records.size(), 1u);
  EXPECT_EQ(g.records[0].vectors.at("image"), (std::vector<float>{1, 2, 3, 4}));
}

TEST(OpenEmbeddedClientTest, CreatesParentsAndRejectsBadPaths) {
  TempDir tmp;
  const std::string nested = (tmp.path() / "x" / "y" / "z").string();
  ASSERT_OK_AND_ASSIGN(auto c, OpenEmbeddedClient(nested, {}));
  EXPECT_TRUE(std::filesystem::is_directory(nested));
  EXPECT_STATUS(OpenEmbeddedClient("", {}), absl::StatusCode::kInvalidArgument, "empty");
  // A regular file where the directory should be.
  const std::string file = (tmp.path() / "file").string();
  { std::ofstream(file) << "x"; }
  EXPECT_FALSE(OpenEmbeddedClient(file, {}).ok());
  // Without create_if_missing, a missing database is an error.
  engine::DatabaseOptions no_create;
  no_create.store.create_if_missing = false;
  const std::string missing = (tmp.path() / "missing").string();
  EXPECT_FALSE(OpenEmbeddedClient(missing, no_create).ok());
}

// The search device in embedded mode: --device cpu reports "cpu" in Info, Describe and Stats,
// with every device counter 0 even after searches.
TEST(EmbeddedClientDeviceTest, CpuDeviceReportsCpuAndZeroCounters) {
  TempDir tmp;
  engine::DatabaseOptions options;
  options.device = engine::DeviceKind::kCpu;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> c,
                       OpenEmbeddedClient((tmp.path() / "db").string(), options));
  ASSERT_OK(c->CreateCollection(TwoFieldSchema()));
  ASSERT_OK(c->Upsert("docs", {MakeRecord("a", {1, 0, 0, 0}, {0, 1, 0, 0}),
                               MakeRecord("b", {0, 1, 0, 0}, {})})
                .status());
  ASSERT_OK_AND_ASSIGN(auto responses, c->Search("docs", {Query({1, 0, 0, 0})}));
  ASSERT_EQ(responses.size(), 1u);
  ASSERT_OK_AND_ASSIGN(ServerInfo info, c->Info());
  EXPECT_EQ(info.device, "cpu");
  ASSERT_OK_AND_ASSIGN(CollectionInfo described, c->Describe("docs"));
  EXPECT_EQ(described.device, "cpu");
  EXPECT_EQ(described.device_rows, 0);
  EXPECT_EQ(described.device_bytes, 0);
  ASSERT_OK_AND_ASSIGN(DatabaseStats stats, c->Stats());
  EXPECT_EQ(stats.device, "cpu");
  const DeviceStats& d = stats.device_stats;
  EXPECT_EQ(d.searches, 0);
  EXPECT_EQ(d.batches, 0);
  EXPECT_EQ(d.fallbacks, 0);
  EXPECT_EQ(d.boundary_fallbacks, 0);
  EXPECT_EQ(d.cpu_queries, 0);
  EXPECT_EQ(d.mirrored_rows, 0);
  EXPECT_EQ(d.mirror_bytes, 0);
  EXPECT_EQ(d.memory_budget_bytes, 0);
  EXPECT_EQ(d.unmirrored_rows, 0);
}

// device cuda without a usable GPU: the open fails with the engine's FailedPrecondition, and the
// directories the open created are gone again.
TEST(EmbeddedClientDeviceTest, CudaWithoutAGpuFailsAndLeavesNothingBehind) {
  if (kernels::CudaDeviceCount() > 0) {
    GTEST_SKIP() << "a CUDA device is present: device cuda opens; this test needs a machine "
                    "without one";
  }
  TempDir tmp;
  engine::DatabaseOptions options;
  options.device = engine::DeviceKind::kCuda;
  const std::filesystem::path dir = tmp.path() / "a" / "b" / "db";
  auto c = OpenEmbeddedClient(dir.string(), options);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition) << c.status();
  EXPECT_THAT(std::string(c.status().message()), ::testing::HasSubstr("cuda"));
  EXPECT_FALSE(std::filesystem::exists(tmp.path() / "a"));
  // An existing directory is left as it was.
  std::filesystem::create_directories(dir);
  EXPECT_FALSE(OpenEmbeddedClient(dir.string(), options).ok());
  EXPECT_TRUE(std::filesystem::is_directory(dir));
}

// The default (auto) resolves to the CPU without a GPU, and to "cuda:<ordinal> <name>" with
// one; Info, Describe and Stats agree.
TEST(EmbeddedClientDeviceTest, AutoNamesTheResolvedDeviceEverywhere) {
  TempDir tmp;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> c,
                       OpenEmbeddedClient((tmp.path() / "db").string(), {}));
  ASSERT_OK(c->CreateCollection(TwoFieldSchema()));
  ASSERT_OK_AND_ASSIGN(DatabaseStats stats, c->Stats());
  if (kernels::CudaDeviceCount() == 0) {
    EXPECT_EQ(stats.device, "cpu");
  } else {
    EXPECT_TRUE(stats.device.rfind("cuda:", 0) == 0) << stats.device;
  }
  ASSERT_OK_AND_ASSIGN(ServerInfo info, c->Info());
  EXPECT_EQ(info.device, stats.device);
  ASSERT_OK_AND_ASSIGN(CollectionInfo described, c->Describe("docs"));
  EXPECT_EQ(described.device, stats.device);
}

}  // namespace
}  // namespace rosetta
