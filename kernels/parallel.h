// A small fixed-size thread pool for data-parallel loops in kernels and the engine.
//
// ParallelFor splits [0, n) into contiguous chunks, runs them on the pool's workers and the
// calling thread, and returns when all are done. Safe to call from several threads at once (calls
// share the workers). Nested calls from inside a task run inline (no deadlock).
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

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

// The process-wide default pool (hardware_concurrency threads, or ROSETTA_THREADS if set). Created
// on first use, never destroyed.
ThreadPool& DefaultThreadPool();

// How DefaultThreadPool() sizes itself, exposed for tests. `requested` is ROSETTA_THREADS's value
// (nullptr or "" = unset), `hardware` the hardware thread count (>= 1). Returns the requested count
// when it is an integer in [1, 4096]; otherwise `hardware`, and when the value was set but invalid,
// `*note` (if non-null) receives a one-line explanation (else it is cleared).
size_t ResolveThreadCount(const char* requested, size_t hardware, std::string* note);

}  // namespace rosetta::kernels
