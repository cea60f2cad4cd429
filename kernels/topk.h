// Top-k selection: keeps the k best (largest score) candidates.
//
// Order is total and deterministic: higher score first; equal scores by smaller id first. NaN
// scores are never inserted (callers never produce them; they are dropped defensively).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace rosetta::kernels {

struct Scored {
  float score;
  int64_t id;
};

// True when `a` ranks before `b` (higher score, then lower id).
inline bool RanksBefore(const Scored& a, const Scored& b) {
  return a.score > b.score || (a.score == b.score && a.id < b.id);
}

// A bounded min-heap of the k best candidates seen so far. Not thread-safe; one per thread/query.
class TopK {
 public:
  explicit TopK(size_t k);

  // Offers one candidate; O(1) when it does not beat the current k-th best.
  void Push(float score, int64_t id) {
    if (heap_.size() < k_) {
      PushUnchecked(score, id);
    } else if (k_ > 0 && RanksBefore(Scored{score, id}, heap_.front())) {
      ReplaceTop(score, id);
    }
  }

  // The current k-th best score, or -infinity while fewer than k candidates are held (+infinity
  // when k == 0: nothing can enter). A candidate scoring below it cannot enter; one scoring equal
  // to it enters only with a smaller id than the k-th best's.
  float Threshold() const;

  size_t size() const { return heap_.size(); }
  size_t k() const { return k_; }

  // Merges another selector's candidates into this one.
  void Merge(const TopK& other);

  // The held candidates, best first. Leaves the selector empty.
  std::vector<Scored> TakeSorted();

 private:
  void PushUnchecked(float score, int64_t id);
  void ReplaceTop(float score, int64_t id);

  size_t k_;
  std::vector<Scored> heap_;  // min-heap on RanksBefore: front() is the worst held.
};

// Selects the k best of scores[0..n) (ids are the indices plus `id_offset`), best first.
// Entries whose `skip` bit is set (bit i of skip[i / 64]) are ignored when skip is non-empty;
// entries beyond the bitmap (i / 64 >= skip.size()) are not skipped. NaN scores are ignored.
// Returns min(k, number of eligible entries) results.
std::vector<Scored> SelectTopK(std::span<const float> scores, size_t k, int64_t id_offset = 0,
                               std::span<const uint64_t> skip = {});

}  // namespace rosetta::kernels
