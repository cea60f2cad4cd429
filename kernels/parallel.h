// A small fixed-size thread pool for data-parallel loops in kernels and the engine.
//
// ParallelFor splits [0, n) into contiguous chunks, runs them on the pool's workers and the
// calling thread, and returns when all are done. Safe to call from several threads at once (calls
// share the workers). Nested calls from inside a task run inline (no deadlock).
#pragma once

#include <cstddef>
#include <functional>
#include <memory>

namespace rosetta::kernels {

class ThreadPool {
 public:
  // `threads` = total parallelism including the caller; 0 = std::thread::hardware_concurrency().
  explicit ThreadPool(size_t threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  size_t threads() const;

  // Calls fn(begin, end) for disjoint chunks covering [0, n), each of at least `min_chunk`
  // elements (except possibly the last). fn must not throw.
  void ParallelFor(size_t n, size_t min_chunk, const std::function<void(size_t, size_t)>& fn);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The process-wide default pool (hardware_concurrency threads, or ROSETTA_THREADS if set).
ThreadPool& DefaultThreadPool();

}  // namespace rosetta::kernels
