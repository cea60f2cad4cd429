#include "engine/telemetry.h"

#include <bit>

namespace rosetta::engine {

LatencyHistogram::LatencyHistogram() {
  for (auto& b : buckets_) b.store(0, std::memory_order_relaxed);
}

// Values below kSub get one bucket each; above, the top kSubBits + 1 significant bits pick the
// bucket: exponent e = floor(log2 v) >= kSubBits, sub-bucket = the kSubBits bits below the top.
size_t LatencyHistogram::BucketOf(uint64_t ns) {
  if (ns < kSub) return static_cast<size_t>(ns);
  const int e = 63 - std::countl_zero(ns);
  const uint64_t sub = (ns >> (e - kSubBits)) & (kSub - 1);
  return static_cast<size_t>(e - kSubBits + 1) * kSub + static_cast<size_t>(sub);
}

uint64_t LatencyHistogram::BucketLow(size_t bucket) {
  if (bucket < kSub) return bucket;
  const int e = static_cast<int>(bucket / kSub) + kSubBits - 1;
  const uint64_t sub = bucket % kSub;
  return (uint64_t{1} << e) | (sub << (e - kSubBits));
}

uint64_t LatencyHistogram::BucketHigh(size_t bucket) {
  if (bucket < kSub) return bucket + 1;
  const int e = static_cast<int>(bucket / kSub) + kSubBits - 1;
  return BucketLow(bucket) + (uint64_t{1} << (e - kSubBits));
}

void LatencyHistogram::Record(std::chrono::nanoseconds elapsed, bool error) {
  const uint64_t ns = elapsed.count() > 0 ? static_cast<uint64_t>(elapsed.count()) : 0;
  buckets_[BucketOf(ns)].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  if (error) errors_.fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(ns, std::memory_order_relaxed);
  uint64_t seen = max_ns_.load(std::memory_order_relaxed);
  while (ns > seen && !max_ns_.compare_exchange_weak(seen, ns, std::memory_order_relaxed)) {
  }
}

LatencyStats LatencyHistogram::Summary(const std::string& operation) const {
  LatencyStats s;
  s.operation = operation;
  std::array<uint64_t, kBuckets> counts;
  uint64_t total = 0;
  for (size_t i = 0; i < kBuckets; ++i) {
    counts[i] = buckets_[i].load(std::memory_order_relaxed);
    total += counts[i];
  }
  s.count = static_cast<int64_t>(total);
  s.errors = static_cast<int64_t>(errors_.load(std::memory_order_relaxed));
  if (total == 0) return s;
  const double max_us = static_cast<double>(max_ns_.load(std::memory_order_relaxed)) / 1e3;
  s.max_us = max_us;
  s.mean_us = static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e3 /
              static_cast<double>(total);
  // The value of rank ceil(q * total) (1-based), as its bucket's midpoint, capped at the max.
  auto percentile = [&](double q) {
    uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(total));
    if (static_cast<double>(rank) < q * static_cast<double>(total)) ++rank;
    if (rank == 0) rank = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < kBuckets; ++i) {
      seen += counts[i];
      if (seen >= rank) {
        const double mid = (static_cast<double>(BucketLow(i)) +
                            static_cast<double>(BucketHigh(i) - 1)) / 2 / 1e3;
        return mid < max_us ? mid : max_us;
      }
    }
    return max_us;
  };
  s.p50_us = percentile(0.50);
  s.p90_us = percentile(0.90);
  s.p99_us = percentile(0.99);
  return s;
}

}  // namespace rosetta::engine
