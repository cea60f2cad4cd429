// ThreadPool: persistent workers serving a FIFO of jobs. A job is one ParallelFor call, cut into
// chunks that any thread (workers and the calling thread) claims with an atomic counter, so a slow
// or descheduled thread delays at most the chunk it holds. Several callers may have jobs queued at
// once; workers help the oldest job that still has unclaimed chunks, and every caller keeps
// claiming chunks of its own job, so progress never depends on a worker being free.
//
// Nested calls (ParallelFor from inside a chunk, on this pool or another) run inline on the
// calling thread: a worker that waited for chunks of a nested job could otherwise wait on itself.
#include "kernels/parallel.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace rosetta::kernels {
namespace {

// Set while this thread runs a chunk of any pool (or is a worker): nested ParallelFor runs inline.
thread_local bool t_in_parallel_task = false;

// Chunks per thread: more than one so that a descheduled thread (the machine is shared) leaves
// work for the others; few enough that per-chunk overhead stays negligible.
constexpr size_t kChunksPerThread = 4;

}  // namespace

struct ThreadPool::Impl {
  struct Job {
    const std::function<void(size_t, size_t)>* fn = nullptr;
    size_t n = 0;
    size_t chunks = 0;
    std::atomic<size_t> next{0};  // next chunk to claim
    std::atomic<size_t> done{0};  // chunks finished

    size_t Begin(size_t c) const { return n * c / chunks; }

    // Claims and runs one chunk; false when none is left to claim.
    bool RunOne() {
      const size_t c = next.fetch_add(1, std::memory_order_relaxed);
      if (c >= chunks) return false;
      (*fn)(Begin(c), Begin(c + 1));
      if (done.fetch_add(1, std::memory_order_acq_rel) + 1 == chunks) done.notify_all();
      return true;
    }
  };

  size_t threads = 1;
  std::vector<std::thread> workers;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::shared_ptr<Job>> queue;  // jobs that may still have unclaimed chunks
  bool stop = false;

  void Remove(const std::shared_ptr<Job>& job) {
    auto it = std::find(queue.begin(), queue.end(), job);
    if (it != queue.end()) queue.erase(it);
  }

  void WorkerLoop() {
    t_in_parallel_task = true;
    std::unique_lock<std::mutex> lock(mu);
    while (true) {
      cv.wait(lock, [&] { return stop || !queue.empty(); });
      if (stop) return;
      std::shared_ptr<Job> job = queue.front();
      lock.unlock();
      while (job->RunOne()) {
      }
      lock.lock();
      Remove(job);  // fully claimed: nothing left for workers.
    }
  }
};

ThreadPool::ThreadPool(size_t threads) : impl_(std::make_unique<Impl>()) {
  if (threads == 0) threads = std::max<size_t>(1, std::thread::hardware_concurrency());
  impl_->threads = threads;
  impl_->workers.reserve(threads - 1);
  for (size_t i = 0; i + 1 < threads; ++i) {
    impl_->workers.emplace_back([impl = impl_.get()] { impl->WorkerLoop(); });
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stop = true;
  }
  impl_->cv.notify_all();
  for (std::thread& t : impl_->workers) t.join();
}

size_t ThreadPool::threads() const { return impl_->threads; }

void ThreadPool::ParallelFor(size_t n, size_t min_chunk,
                             const std::function<void(size_t, size_t)>& fn) {
  if (n == 0) return;
  min_chunk = std::max<size_t>(1, min_chunk);
  // Chunk count: at most kChunksPerThread per thread, and chunks of at least min_chunk (the
  // even split n * c / chunks makes every chunk >= floor(n / chunks) >= min_chunk).
  const size_t chunks = std::min(n / min_chunk, impl_->threads * kChunksPerThread);
  if (chunks <= 1 || impl_->threads == 1 || t_in_parallel_task) {
    // Inline: one thread, too little work, or nested inside a task (see the file comment).
    const bool was_in_task = t_in_parallel_task;
    t_in_parallel_task = true;
    fn(0, n);
    t_in_parallel_task = was_in_task;
    return;
  }

  auto job = std::make_shared<Impl::Job>();
  job->fn = &fn;
  job->n = n;
  job->chunks = chunks;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->queue.push_back(job);
  }
  impl_->cv.notify_all();

  t_in_parallel_task = true;
  while (job->RunOne()) {
  }
  t_in_parallel_task = false;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->Remove(job);
  }
  // Wait for chunks still running on workers. `fn` lives on our caller's stack, so we must not
  // return before every chunk has finished; workers touch only the Job (shared) afterwards.
  for (size_t d = job->done.load(std::memory_order_acquire); d != chunks;
       d = job->done.load(std::memory_order_acquire)) {
    job->done.wait(d, std::memory_order_acquire);
  }
}

size_t ResolveThreadCount(const char* requested, size_t hardware, std::string* note) {
  if (note != nullptr) note->clear();
  hardware = std::max<size_t>(1, hardware);
  if (requested == nullptr || *requested == '\0') return hardware;
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(requested, &end, 10);
  if (end == requested || *end != '\0' || errno != 0 || v < 1 || v > 4096) {
    if (note != nullptr) {
      *note = std::string("rosetta: ROSETTA_THREADS='") + requested +
              "' is not an integer in [1, 4096]; using " + std::to_string(hardware);
    }
    return hardware;
  }
  return static_cast<size_t>(v);
}

ThreadPool& DefaultThreadPool() {
  // Never destroyed: workers of a static pool would be joined during static destruction, while
  // other static objects may still be using the pool.
  static ThreadPool* const pool = [] {
    std::string note;
    const size_t n =
        ResolveThreadCount(std::getenv("ROSETTA_THREADS"), std::thread::hardware_concurrency(), &note);
    if (!note.empty()) std::fprintf(stderr, "%s\n", note.c_str());
    return new ThreadPool(n);
  }();
  return *pool;
}

}  // namespace rosetta::kernels
