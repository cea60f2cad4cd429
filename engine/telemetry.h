// Latency telemetry: lock-free histograms of operation latencies, summarised as percentiles.
//
// Buckets are log-linear: 16 linear sub-buckets per power of two of nanoseconds, so a reported
// percentile is within 1/16 (6.25 %) of the true value (it is the midpoint of the bucket that holds
// it), from 1 ns to about 2^63 ns. Record is wait-free (relaxed atomic adds; the max is a CAS
// loop) and may be called from any number of threads; Summary reads the counters without locking,
// so a summary taken while operations complete may be off by the operations in flight.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

#include "schema/types.h"

namespace rosetta::engine {

class LatencyHistogram {
 public:
  LatencyHistogram();
  LatencyHistogram(const LatencyHistogram&) = delete;
  LatencyHistogram& operator=(const LatencyHistogram&) = delete;

  // Records one operation that took `elapsed` (negative durations count as 0); `error` counts it
  // as failed as well (failed operations are part of the percentiles too).
  void Record(std::chrono::nanoseconds elapsed, bool error = false);

  // count, errors, mean, p50/p90/p99 and max, in microseconds, named `operation`.
  LatencyStats Summary(const std::string& operation) const;

  // Bucket layout, exposed for tests: the bucket of a value in nanoseconds, and the [lo, hi)
  // range of values a bucket holds.
  static size_t BucketOf(uint64_t ns);
  static uint64_t BucketLow(size_t bucket);
  static uint64_t BucketHigh(size_t bucket);
  static constexpr int kSubBits = 4;
  static constexpr size_t kSub = size_t{1} << kSubBits;
  static constexpr size_t kBuckets = (64 - kSubBits + 1) * kSub;

 private:
  std::array<std::atomic<uint64_t>, kBuckets> buckets_;
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> errors_{0};
  std::atomic<uint64_t> sum_ns_{0};
  std::atomic<uint64_t> max_ns_{0};
};

}  // namespace rosetta::engine
