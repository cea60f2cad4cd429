// ThreadPool::ParallelFor: coverage, chunking, concurrency, nesting, and the ROSETTA_THREADS rule.
#include "kernels/parallel.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace rosetta::kernels {
namespace {

// Runs ParallelFor and checks that the chunks are disjoint, cover [0, n) and respect min_chunk.
void CheckCoverage(ThreadPool& pool, size_t n, size_t min_chunk) {
  SCOPED_TRACE("n=" + std::to_string(n) + " min_chunk=" + std::to_string(min_chunk));
  std::vector<std::atomic<int>> hits(n);
  std::mutex mu;
  std::vector<std::pair<size_t, size_t>> chunks;
  pool.ParallelFor(n, min_chunk, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) hits[i].fetch_add(1);
    std::lock_guard<std::mutex> lock(mu);
    chunks.emplace_back(b, e);
  });
  for (size_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "index " << i;
  std::sort(chunks.begin(), chunks.end());
  size_t expect_begin = 0;
  for (size_t c = 0; c < chunks.size(); ++c) {
    EXPECT_EQ(chunks[c].first, expect_begin);
    EXPECT_LT(chunks[c].first, chunks[c].second) << "empty chunk";
    if (c + 1 < chunks.size()) {
      EXPECT_GE(chunks[c].second - chunks[c].first, min_chunk);
    }
    expect_begin = chunks[c].second;
  }
  EXPECT_EQ(expect_begin, n);
}

TEST(ThreadPool, CoversRangeExactlyOnce) {
  for (size_t threads : {1, 2, 3, 8}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.threads(), threads);
    for (size_t n : {0, 1, 2, 7, 100, 1001}) {
      for (size_t min_chunk : {0, 1, 3, 64, 5000}) CheckCoverage(pool, n, min_chunk);
    }
  }
}

TEST(ThreadPool, ZeroMeansHardwareConcurrency) {
  ThreadPool pool(0);
  EXPECT_EQ(pool.threads(), std::max<size_t>(1, std::thread::hardware_concurrency()));
  CheckCoverage(pool, 50, 1);
}

TEST(ThreadPool, UsesSeveralThreadsForLargeWork) {
  // With 4 threads and 16 chunks that each wait for a second participant, the work can only finish
  // if at least two threads run chunks; a bounded wait keeps the test finite either way.
  ThreadPool pool(4);
  std::mutex mu;
  std::set<std::thread::id> ids;
  std::atomic<int> running{0};
  std::atomic<int> max_running{0};
  pool.ParallelFor(16, 1, [&](size_t, size_t) {
    const int now = running.fetch_add(1) + 1;
    int prev = max_running.load();
    while (now > prev && !max_running.compare_exchange_weak(prev, now)) {
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (max_running.load() < 2 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
    running.fetch_sub(1);
    std::lock_guard<std::mutex> lock(mu);
    ids.insert(std::this_thread::get_id());
  });
  EXPECT_GE(max_running.load(), 2);
  EXPECT_GE(ids.size(), 2u);
}

TEST(ThreadPool, ConcurrentCallersShareWorkers) {
  ThreadPool pool(3);
  constexpr int kCallers = 6;
  std::vector<std::thread> callers;
  std::atomic<int> failures{0};
  for (int c = 0; c < kCallers; ++c) {
    callers.emplace_back([&, c] {
      for (int rep = 0; rep < 50; ++rep) {
        const size_t n = 200 + c * 13 + rep;
        std::vector<std::atomic<int>> hits(n);
        pool.ParallelFor(n, 4, [&](size_t b, size_t e) {
          for (size_t i = b; i < e; ++i) hits[i].fetch_add(1);
        });
        for (size_t i = 0; i < n; ++i) {
          if (hits[i].load() != 1) failures.fetch_add(1);
        }
      }
    });
  }
  for (std::thread& t : callers) t.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST(ThreadPool, NestedCallsRunInline) {
  ThreadPool pool(2);
  std::vector<std::atomic<int>> hits(40 * 30);
  pool.ParallelFor(40, 1, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) {
      const std::thread::id outer = std::this_thread::get_id();
      pool.ParallelFor(30, 1, [&](size_t b2, size_t e2) {
        EXPECT_EQ(std::this_thread::get_id(), outer) << "nested chunk left the calling thread";
        for (size_t j = b2; j < e2; ++j) hits[i * 30 + j].fetch_add(1);
      });
    }
  });
  for (size_t i = 0; i < hits.size(); ++i) ASSERT_EQ(hits[i].load(), 1) << i;
}

TEST(ThreadPool, CallerMakesProgressWhenWorkersAreBusy) {
  // Occupy the pool's only worker with another caller's blocked job; a second caller must still
  // finish its own job on its own thread.
  ThreadPool pool(2);
  std::atomic<int> entered{0};
  std::atomic<bool> release{false};
  std::thread blocker([&] {
    pool.ParallelFor(2, 1, [&](size_t, size_t) {
      entered.fetch_add(1);
      while (!release.load()) std::this_thread::yield();
    });
  });
  while (entered.load() < 2) std::this_thread::yield();  // the worker and `blocker` are stuck
  std::vector<std::atomic<int>> hits(100);
  const std::thread::id me = std::this_thread::get_id();
  pool.ParallelFor(100, 1, [&](size_t b, size_t e) {
    EXPECT_EQ(std::this_thread::get_id(), me);
    for (size_t i = b; i < e; ++i) hits[i].fetch_add(1);
  });
  release.store(true);
  blocker.join();
  for (size_t i = 0; i < hits.size(); ++i) ASSERT_EQ(hits[i].load(), 1) << i;
}

TEST(ThreadPool, DestructionWithIdleWorkers) {
  for (int i = 0; i < 20; ++i) {
    ThreadPool pool(3);
    if (i % 2 == 0) CheckCoverage(pool, 10, 1);
  }
}

TEST(DefaultThreadPool, IsSingletonWithThreads) {
  ThreadPool& a = DefaultThreadPool();
  ThreadPool& b = DefaultThreadPool();
  EXPECT_EQ(&a, &b);
  EXPECT_GE(a.threads(), 1u);
  CheckCoverage(a, 1000, 10);
}

TEST(ResolveThreadCount, EnvOverride) {
  std::string note = "stale";
  EXPECT_EQ(ResolveThreadCount(nullptr, 8, &note), 8u);
  EXPECT_TRUE(note.empty());
  EXPECT_EQ(ResolveThreadCount("", 8, &note), 8u);
  EXPECT_EQ(ResolveThreadCount("3", 8, &note), 3u);
  EXPECT_TRUE(note.empty());
  EXPECT_EQ(ResolveThreadCount("64", 2, &note), 64u);
  EXPECT_EQ(ResolveThreadCount("1", 0, &note), 1u);
  EXPECT_EQ(ResolveThreadCount(nullptr, 0, &note), 1u) << "hardware 0 (unknown) means 1";
  for (const char* bad : {"0", "-2", "abc", "4x", "99999", "1e3", "99999999999999999999"}) {
    SCOPED_TRACE(bad);
    EXPECT_EQ(ResolveThreadCount(bad, 5, &note), 5u);
    EXPECT_NE(note.find("ROSETTA_THREADS"), std::string::npos) << note;
    EXPECT_NE(note.find(bad), std::string::npos) << note;
  }
}

}  // namespace
}  // namespace rosetta::kernels
