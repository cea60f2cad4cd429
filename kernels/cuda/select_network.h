// k-selection building blocks shared by the GPU kernels and the host.
//
// Plain C++17 with no CUDA header: under nvcc (__CUDACC__) ROSETTA_HD expands to
// `__host__ __device__`, under g++ to nothing, so the CI machines (no GPU) compile and test the
// very networks the kernels run (tests/kernels/gpu_select_test.cc).
//
// The selection a kernel runs for one stream of candidates (one query's scores over a range of
// base rows) is:
//   - a queue of `queue_cap` entries (a power of two, 32..1024, >= k) in shared memory, sorted best
//     first, padded with sentinels; the threshold is the score of its k-th entry;
//   - candidates are read in chunks of kScanChunk; an entry passes when score >= threshold (NaN
//     never passes) and its id is not a sentinel; passing entries are appended to a candidate buffer
//     of `cand_cap` entries (a power of two >= max(queue_cap, kMinCand));
//   - before a chunk, if the buffer could overflow (count > cand_cap - kScanChunk), and at the end,
//     the buffer is flushed: padded to a power of two with sentinels, bitonic-sorted, its best
//     entries merged into the queue (elementwise best of queue[cap-1-i] and cand[i] gives a bitonic
//     sequence holding the best queue_cap of the union, then a bitonic merge sorts it), and the
//     threshold is re-read.
// Because the order (score descending, then id ascending) is total over distinct ids and every
// entry that could belong to the top k passes the filter (ties included), the queue's first k
// entries are exactly the k best of the stream under that order: ties are broken by smaller id,
// whatever the order in which entries arrive. Several streams' queues are combined by streaming
// their first k entries through a fresh queue the same way.
//
// Each network step is a loop over independent compare-exchanges of one stage; an executor says
// which of them the caller performs (all of them on the host; one per lane, strided, in a warp) and
// how the stage ends (nothing on the host; __syncwarp in a warp).
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define ROSETTA_HD __host__ __device__
// The templates below call the executor's members, which are device-only for the device
// executors; the host instantiations only ever see the host executor.
#define ROSETTA_HD_EXEC_CHECK_DISABLE _Pragma("nv_exec_check_disable")
#else
#define ROSETTA_HD
#define ROSETTA_HD_EXEC_CHECK_DISABLE
#endif

namespace rosetta::kernels::gpu {

// One candidate: its score and its id (a base row, >= 0 and < kSentinelId; kSentinelId marks
// padding).
struct SelEntry {
  float score;
  int32_t id;
};

// Padding entry: ranks after every real entry (real ids are < kSentinelId).
inline constexpr int32_t kSentinelId = 0x7fffffff;
// Smallest and largest queue capacities ("k buckets"): runtime k is rounded up to a power of two
// in [kMinQueue, kMaxQueue].
inline constexpr uint32_t kMinQueue = 32;
inline constexpr uint32_t kMaxQueue = 1024;
// Candidates examined between two overflow checks (one warp: 32 lanes x 4 scores).
inline constexpr uint32_t kScanChunk = 128;
// Smallest candidate buffer: large enough that a flush happens at most every kMinCand - kScanChunk
// appended candidates.
inline constexpr uint32_t kMinCand = 256;

ROSETTA_HD inline SelEntry SentinelEntry() { return SelEntry{-INFINITY, kSentinelId}; }

// True when `a` ranks before `b`: higher score, then smaller id (the order of kernels::TopK).
ROSETTA_HD inline bool EntryBefore(const SelEntry& a, const SelEntry& b) {
  return a.score > b.score || (a.score == b.score && a.id < b.id);
}

// Smallest power of two >= x (x >= 1; 1 for x <= 1).
ROSETTA_HD inline uint32_t NextPow2(uint32_t x) {
  uint32_t p = 1;
  while (p < x) p <<= 1;
  return p;
}

// The queue capacity ("bucket") for k in [1, kMaxQueue].
ROSETTA_HD inline uint32_t QueueCapacity(uint32_t k) {
  const uint32_t p = NextPow2(k);
  return p < kMinQueue ? kMinQueue : p;
}

// The candidate buffer capacity for a queue capacity.
ROSETTA_HD inline uint32_t CandCapacity(uint32_t queue_cap) {
  return queue_cap < kMinCand ? kMinCand : queue_cap;
}

// Whether a candidate passes the filter against the current threshold (NaN never passes).
ROSETTA_HD inline bool PassesThreshold(float score, int32_t id, float threshold) {
  return score >= threshold && id != kSentinelId;
}

// Whether the candidate buffer must be flushed before the next chunk.
ROSETTA_HD inline bool NeedsFlush(uint32_t count, uint32_t cand_cap) {
  return count > cand_cap - kScanChunk;
}

// One compare-exchange of the bitonic sort of a[0..n) into descending rank order: stage
// (size, stride), pair t in [0, n/2).
ROSETTA_HD inline void BitonicSortStep(SelEntry* a, uint32_t size, uint32_t stride, uint32_t t) {
  const uint32_t lo = 2 * stride * (t / stride) + (t % stride);
  const uint32_t hi = lo + stride;
  const bool descending = (lo & size) == 0;
  const SelEntry x = a[lo];
  const SelEntry y = a[hi];
  if (descending ? EntryBefore(y, x) : EntryBefore(x, y)) {
    a[lo] = y;
    a[hi] = x;
  }
}

// One compare-exchange of the merge of a bitonic a[0..n) into descending order (half-cleaner of
// `stride`), pair t in [0, n/2).
ROSETTA_HD inline void BitonicMergeStep(SelEntry* a, uint32_t stride, uint32_t t) {
  const uint32_t lo = 2 * stride * (t / stride) + (t % stride);
  const uint32_t hi = lo + stride;
  const SelEntry x = a[lo];
  const SelEntry y = a[hi];
  if (EntryBefore(y, x)) {
    a[lo] = y;
    a[hi] = x;
  }
}

// Sorts a[0..n) best first; n a power of two.
ROSETTA_HD_EXEC_CHECK_DISABLE
template <class Exec>
ROSETTA_HD void BitonicSortDesc(SelEntry* a, uint32_t n, const Exec& ex) {
  for (uint32_t size = 2; size <= n; size <<= 1) {
    for (uint32_t stride = size >> 1; stride > 0; stride >>= 1) {
      for (uint32_t t = ex.first(); t < n / 2; t += ex.step()) BitonicSortStep(a, size, stride, t);
      ex.sync();
    }
  }
}

// Sorts a bitonic a[0..n) best first; n a power of two.
ROSETTA_HD_EXEC_CHECK_DISABLE
template <class Exec>
ROSETTA_HD void BitonicMergeDesc(SelEntry* a, uint32_t n, const Exec& ex) {
  for (uint32_t stride = n >> 1; stride > 0; stride >>= 1) {
    for (uint32_t t = ex.first(); t < n / 2; t += ex.step()) BitonicMergeStep(a, stride, t);
    ex.sync();
  }
}

// Merges cand[0..count) into queue[0..queue_cap) (sorted best first), keeping the best queue_cap
// of the union, sorted. cand must have room for NextPow2(count) entries (it is padded and sorted
// in place). Starts with a sync so that entries just appended by other lanes are visible.
ROSETTA_HD_EXEC_CHECK_DISABLE
template <class Exec>
ROSETTA_HD void MergeCandidates(SelEntry* queue, uint32_t queue_cap, SelEntry* cand, uint32_t count,
                                const Exec& ex) {
  ex.sync();
  if (count == 0) return;
  const uint32_t p = NextPow2(count);
  for (uint32_t t = count + ex.first(); t < p; t += ex.step()) cand[t] = SentinelEntry();
  ex.sync();
  BitonicSortDesc(cand, p, ex);
  const uint32_t m = p < queue_cap ? p : queue_cap;
  for (uint32_t t = ex.first(); t < m; t += ex.step()) {
    SelEntry& slot = queue[queue_cap - 1 - t];
    if (EntryBefore(cand[t], slot)) slot = cand[t];
  }
  ex.sync();
  BitonicMergeDesc(queue, queue_cap, ex);
}

// The host executor: performs every compare-exchange of a stage itself.
struct HostExec {
  uint32_t first() const { return 0; }
  uint32_t step() const { return 1; }
  void sync() const {}
};

// Host model of one stream's selection with the kernels' policy (see the top of this file):
// the reference that the CPU tests check against std::sort, and the documentation of what the
// kernels do. `queue` holds the initial queue (queue_cap entries sorted best first, e.g. all
// sentinels, or a queue carried over from earlier tiles).
class HostStreamSelect {
 public:
  // queue and cand point to queue_cap and cand_cap entries.
  HostStreamSelect(SelEntry* queue, uint32_t queue_cap, SelEntry* cand, uint32_t cand_cap,
                   uint32_t k)
      : queue_(queue), cand_(cand), queue_cap_(queue_cap), cand_cap_(cand_cap), k_(k) {
    threshold_ = queue_[k_ - 1].score;
  }

  // Offers one chunk of at most kScanChunk entries.
  void OfferChunk(const SelEntry* chunk, uint32_t n) {
    if (NeedsFlush(count_, cand_cap_)) Flush();
    for (uint32_t i = 0; i < n; ++i) {
      if (PassesThreshold(chunk[i].score, chunk[i].id, threshold_)) cand_[count_++] = chunk[i];
    }
  }

  void Flush() {
    if (count_ == 0) return;
    MergeCandidates(queue_, queue_cap_, cand_, count_, HostExec{});
    count_ = 0;
    threshold_ = queue_[k_ - 1].score;
    ++flushes_;
  }

  float threshold() const { return threshold_; }
  uint32_t flushes() const { return flushes_; }

 private:
  SelEntry* queue_;
  SelEntry* cand_;
  uint32_t queue_cap_;
  uint32_t cand_cap_;
  uint32_t k_;
  uint32_t count_ = 0;
  uint32_t flushes_ = 0;
  float threshold_;
};

}  // namespace rosetta::kernels::gpu
