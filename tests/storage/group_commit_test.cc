// The store's commit queue: batches enqueued together share one write, apply in enqueue order,
// and a failed write fails the batches queued behind it and leaves the store read-only.
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "storage/store.h"
#include "tests/storage/status_expect.h"
#include "tests/testing/testing.h"

namespace rosetta::storage {
namespace {

RecordMeta Titled(const std::string& title) {
  RecordMeta m;
  m.attributes["title"] = title;
  return m;
}

Batch PutTitle(uint32_t coll, const std::string& id, const std::string& title) {
  Batch b;
  b.PutMeta(coll, id, Titled(title));
  return b;
}

std::string TitleOf(Store& store, uint32_t coll, const std::string& id) {
  auto rec = store.GetRecord(coll, id);
  if (!rec.ok()) return "error: " + std::string(rec.status().message());
  if (!rec->has_value()) return "<absent>";
  return std::get<std::string>((*rec)->meta.attributes.at("title"));
}

class GroupCommitTest : public ::testing::Test {
 protected:
  std::unique_ptr<Store> Open(StoreOptions options = {}) {
    auto s = Store::Open(dir_.str() + "/db", options);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *std::move(s) : nullptr;
  }
  rosetta::testing::TempDir dir_;
};

TEST_F(GroupCommitTest, BatchesQueuedTogetherShareOneWriteInEnqueueOrder) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_OK_AND_ASSIGN(const uint32_t coll, store->CreateCollection("c", "{}"));
  // Nobody awaits until all three are queued, so the first Await writes them as one group.
  ASSERT_OK_AND_ASSIGN(CommitTicket a, store->Enqueue(PutTitle(coll, "x", "first")));
  ASSERT_OK_AND_ASSIGN(CommitTicket b, store->Enqueue(PutTitle(coll, "x", "second")));
  Batch both = PutTitle(coll, "y", "only");
  both.PutMeta(coll, "x", Titled("third"));
  ASSERT_OK_AND_ASSIGN(CommitTicket c, store->Enqueue(std::move(both)));
  // Not visible before it is written.
  EXPECT_EQ(TitleOf(*store, coll, "x"), "<absent>");
  ASSERT_OK(store->Await(b));
  EXPECT_EQ(store->commit_stats().groups, 1);
  EXPECT_EQ(store->commit_stats().batches, 3);
  ASSERT_OK(store->Await(a));
  ASSERT_OK(store->Await(c));
  ASSERT_OK(store->Await(c));  // awaiting again returns the same status.
  EXPECT_EQ(store->commit_stats().groups, 1);
  EXPECT_EQ(TitleOf(*store, coll, "x"), "third");
  EXPECT_EQ(TitleOf(*store, coll, "y"), "only");

  store.reset();
  store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(TitleOf(*store, coll, "x"), "third");
  EXPECT_EQ(TitleOf(*store, coll, "y"), "only");
}

TEST_F(GroupCommitTest, InvalidAndEmptyBatches) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_OK_AND_ASSIGN(const uint32_t coll, store->CreateCollection("c", "{}"));
  Batch bad = PutTitle(coll, "fine", "fine");
  bad.PutMeta(coll, std::string(70000, 'i'), Titled("too long"));
  EXPECT_STATUS_IS(bad.status(), absl::StatusCode::kInvalidArgument, "longer than");
  EXPECT_STATUS_IS(store->Enqueue(std::move(bad)).status(), absl::StatusCode::kInvalidArgument,
                   "longer than the 65535-byte maximum");
  EXPECT_EQ(TitleOf(*store, coll, "fine"), "<absent>");
  ASSERT_OK_AND_ASSIGN(CommitTicket empty, store->Enqueue(Batch()));
  ASSERT_OK(store->Await(empty));
  EXPECT_EQ(store->commit_stats().batches, 0);
  EXPECT_STATUS_IS(store->Await(CommitTicket()), absl::StatusCode::kInvalidArgument,
                   "default-constructed");
  // The store still works.
  ASSERT_OK(store->Commit(PutTitle(coll, "fine", "fine")));
  EXPECT_EQ(TitleOf(*store, coll, "fine"), "fine");
}

TEST_F(GroupCommitTest, AFailedWriteFailsWhatIsQueuedBehindItAndMakesTheStoreReadOnly) {
  Store* raw = nullptr;
  std::atomic<int> calls{0};
  absl::StatusOr<CommitTicket> behind = absl::UnknownError("not enqueued");
  StoreOptions options;
  options.commit_fault_for_testing = [&]() -> absl::Status {
    if (++calls != 2) return absl::OkStatus();
    // While the leader writes the failing group, another batch is queued behind it.
    behind = raw->Enqueue(PutTitle(1, "queued-behind", "never"));
    return absl::UnavailableError("injected: disk went away");
  };
  auto store = Open(options);
  ASSERT_NE(store, nullptr);
  raw = store.get();
  ASSERT_OK_AND_ASSIGN(const uint32_t coll, store->CreateCollection("c", "{}"));
  ASSERT_EQ(coll, 1u);
  ASSERT_OK(store->Commit(PutTitle(coll, "before", "kept")));
  ASSERT_OK(store->writable());

  EXPECT_STATUS_IS(store->Commit(PutTitle(coll, "failing", "lost")),
                   absl::StatusCode::kUnavailable, "injected: disk went away");
  ASSERT_OK(behind.status());
  EXPECT_STATUS_IS(store->Await(*behind), absl::StatusCode::kAborted,
                   "an earlier write in the commit queue failed: injected");
  // Read-only from now on, saying why.
  EXPECT_STATUS_IS(store->writable(), absl::StatusCode::kFailedPrecondition,
                   "read-only after a failed write");
  EXPECT_STATUS_IS(store->Commit(PutTitle(coll, "after", "refused")),
                   absl::StatusCode::kFailedPrecondition, "injected: disk went away");
  EXPECT_STATUS_IS(store->CreateCollection("d", "{}").status(),
                   absl::StatusCode::kFailedPrecondition, "read-only");
  // Reads keep working.
  EXPECT_EQ(TitleOf(*store, coll, "before"), "kept");
  EXPECT_EQ(TitleOf(*store, coll, "failing"), "<absent>");
  EXPECT_EQ(calls.load(), 2);  // nothing was written after the failure.

  store.reset();
  store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_OK(store->writable());
  EXPECT_EQ(TitleOf(*store, coll, "before"), "kept");
  EXPECT_EQ(TitleOf(*store, coll, "failing"), "<absent>");
  EXPECT_EQ(TitleOf(*store, coll, "queued-behind"), "<absent>");
  EXPECT_EQ(TitleOf(*store, coll, "after"), "<absent>");
  ASSERT_OK(store->Commit(PutTitle(coll, "after", "accepted")));
}

TEST_F(GroupCommitTest, ConcurrentCommittersAllLandDurably) {
  StoreOptions options;
  options.sync = SyncPolicy::kAlways;
  auto store = Open(options);
  ASSERT_NE(store, nullptr);
  ASSERT_OK_AND_ASSIGN(const uint32_t coll, store->CreateCollection("c", "{}"));
  constexpr int kThreads = 8, kPerThread = 40;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        // Each thread also rewrites one shared key; its last value must be some thread's last.
        Batch b = PutTitle(coll, "t" + std::to_string(t) + "-" + std::to_string(i), "v");
        b.PutMeta(coll, "shared", Titled("t" + std::to_string(t) + "-" + std::to_string(i)));
        if (!store->Commit(std::move(b)).ok()) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  const CommitStats stats = store->commit_stats();
  EXPECT_EQ(stats.batches, kThreads * kPerThread);
  EXPECT_GE(stats.groups, 1);
  EXPECT_LE(stats.groups, stats.batches);
  std::printf("[ figures ] %d commits from %d threads took %lld group writes\n",
              kThreads * kPerThread, kThreads, static_cast<long long>(stats.groups));
  const std::string shared = TitleOf(*store, coll, "shared");
  EXPECT_EQ(shared.substr(shared.find('-')), "-" + std::to_string(kPerThread - 1)) << shared;

  store.reset();
  store = Open();
  ASSERT_NE(store, nullptr);
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      const std::string id = "t" + std::to_string(t) + "-" + std::to_string(i);
      ASSERT_EQ(TitleOf(*store, coll, id), "v") << id;
    }
  }
  EXPECT_EQ(TitleOf(*store, coll, "shared"), shared);
}

}  // namespace
}  // namespace rosetta::storage
