#include "kernels/topk.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

namespace rosetta::kernels {

TopK::TopK(size_t k) : k_(k) {
  // Reserve for the usual small k only: k may be far larger than the candidates ever offered.
  heap_.reserve(std::min<size_t>(k, 1024));
}

float TopK::Threshold() const {
  if (k_ == 0) return std::numeric_limits<float>::infinity();  // nothing can enter.
  if (heap_.size() < k_) return -std::numeric_limits<float>::infinity();
  return heap_.front().score;
}

// The heap is ordered so that the worst held candidate (the one every other ranks before) sits at
// the root: parent "ranks after or equal to" its children.
void TopK::PushUnchecked(float score, int64_t id) {
  if (std::isnan(score)) return;
  heap_.push_back(Scored{score, id});
  size_t i = heap_.size() - 1;
  const Scored x = heap_[i];
  while (i > 0) {
    const size_t parent = (i - 1) / 2;
    if (!RanksBefore(heap_[parent], x)) break;  // parent already ranks after x.
    heap_[i] = heap_[parent];
    i = parent;
  }
  heap_[i] = x;
}

void TopK::ReplaceTop(float score, int64_t id) {
  // Sift the new candidate down from the root (no NaN gets here: RanksBefore(NaN, .) is false).
  const Scored x{score, id};
  const size_t n = heap_.size();
  size_t i = 0;
  while (true) {
    size_t child = 2 * i + 1;
    if (child >= n) break;
    // The child that ranks last (the worse one) must move up.
    if (child + 1 < n && RanksBefore(heap_[child], heap_[child + 1])) ++child;
    if (!RanksBefore(x, heap_[child])) break;  // x ranks after (or equal to) both children.
    heap_[i] = heap_[child];
    i = child;
  }
  heap_[i] = x;
}

void TopK::Merge(const TopK& other) {
  for (const Scored& s : other.heap_) Push(s.score, s.id);
}

std::vector<Scored> TopK::TakeSorted() {
  std::vector<Scored> out = std::move(heap_);
  heap_.clear();
  std::sort(out.begin(), out.end(), RanksBefore);
  return out;
}

std::vector<Scored> SelectTopK(std::span<const float> scores, size_t k, int64_t id_offset,
                               std::span<const uint64_t> skip) {
  const size_t n = scores.size();
  TopK top(std::min(k, n));
  float threshold = top.Threshold();
  for (size_t i = 0; i < n; ++i) {
    const float s = scores[i];
    // Cheap reject first; the exact rank test (ties by id) is inside Push.
    if (!(s >= threshold)) continue;
    if (!skip.empty() && i / 64 < skip.size() && ((skip[i / 64] >> (i % 64)) & 1u)) continue;
    top.Push(s, id_offset + static_cast<int64_t>(i));
    threshold = top.Threshold();
  }
  return top.TakeSorted();
}

}  // namespace rosetta::kernels
