#include "engine/segment.h"

#include <cstring>
#include <utility>

#include "schema/validate.h"

namespace rosetta::engine {

std::shared_ptr<const RowMeta> MakeRowMeta(const Layout& layout, storage::RecordMeta meta) {
  auto out = std::make_shared<RowMeta>();
  if (!meta.weights.empty()) {
    out->field_weights.assign(layout.fields.size(), 1.0f);
    for (const auto& [name, w] : meta.weights) {
      auto it = layout.field_index.find(name);
      if (it != layout.field_index.end()) out->field_weights[it->second] = w;
    }
  }
  if (!meta.provenance.collected_at.empty()) {
    auto t = ParseTimestampMicros(meta.provenance.collected_at);
    if (t.ok()) out->collected_at_us = *t;
  }
  out->meta = std::move(meta);
  return out;
}

Page::Page(const Layout& layout)
    : slabs_(new Slab[layout.fields.size()]),
      owners_(layout.fields.size()),
      rows_(new RowInfo[kPageRows]) {
  dims_.reserve(layout.fields.size());
  for (const auto& f : layout.fields) dims_.push_back(f.dim);
}

void Page::SetVector(size_t field, size_t i, const float* v) {
  const size_t dim = dims_[field];
  float* data = slabs_[field].data.load(std::memory_order_relaxed);
  if (data == nullptr) {
    // Zeroed so that block kernels may read rows without the field (their scores are ignored).
    owners_[field].reset(new float[kPageRows * dim]());
    data = owners_[field].get();
    slabs_[field].data.store(data, std::memory_order_release);
  }
  std::memcpy(data + i * dim, v, dim * sizeof(float));
  slabs_[field].present[i >> 6].fetch_or(uint64_t{1} << (i & 63), std::memory_order_release);
}

Segment::Segment(std::shared_ptr<const Layout> layout)
    : layout_(std::move(layout)),
      pages_(std::make_shared<const PageDirectory>()),
      tombstones_(std::make_shared<const std::vector<uint64_t>>()),
      calibration_(std::make_shared<const CalibrationSet>()),
      field_vectors_(layout_->fields.size(), 0) {
  Publish();
}

size_t Segment::Append(RowInfo info, std::span<const float* const> vectors) {
  const size_t r = rows_;
  const size_t p = r >> kPageShift;
  const size_t i = r & (kPageRows - 1);
  if (p == pages_->size()) {
    // Copy-on-grow: readers keep the directory they took.
    auto grown = std::make_shared<PageDirectory>();
    grown->reserve(pages_->size() + 1);
    *grown = *pages_;
    grown->push_back(std::make_shared<Page>(*layout_));
    pages_ = std::move(grown);
  }
  Page& page = *(*pages_)[p];
  if (!info.meta->field_weights.empty()) any_record_weights_ = true;
  page.mutable_row(i) = std::move(info);
  for (size_t f = 0; f < vectors.size(); ++f) {
    if (vectors[f] != nullptr) {
      page.SetVector(f, i, vectors[f]);
      ++field_vectors_[f];
    }
  }
  ++live_records_;
  ++rows_;
  return r;
}

void Segment::Tombstone(size_t row) {
  if (!pending_tombstones_) {
    pending_tombstones_ = std::make_shared<std::vector<uint64_t>>(*tombstones_);
  }
  auto& bits = *pending_tombstones_;
  const size_t w = row >> 6;
  if (bits.size() <= w) bits.resize(std::max(w + 1, bits.size() * 2), 0);
  const uint64_t bit = uint64_t{1} << (row & 63);
  if (bits[w] & bit) return;
  bits[w] |= bit;
  --live_records_;
  const Page& page = *(*pages_)[row >> kPageShift];
  for (size_t f = 0; f < field_vectors_.size(); ++f) {
    if (page.Present(f, row & (kPageRows - 1))) --field_vectors_[f];
  }
}

void Segment::SetSealed(std::shared_ptr<const SealedList> sealed,
                        std::shared_ptr<const CoveredRows> covered) {
  sealed_ = std::move(sealed);
  covered_ = std::move(covered);
}

void Segment::SetCalibration(std::shared_ptr<const CalibrationSet> calibration) {
  calibration_ = std::move(calibration);
}

std::shared_ptr<const Snapshot> Segment::Stage() {
  if (pending_tombstones_) {
    tombstones_ = std::move(pending_tombstones_);
    pending_tombstones_.reset();
  }
  auto snap = std::make_shared<Snapshot>();
  snap->seq = ++staged_seq_;
  snap->rows = rows_;
  snap->pages = pages_;
  snap->tombstones = tombstones_;
  snap->calibration = calibration_;
  snap->live_records = live_records_;
  snap->field_vectors = field_vectors_;
  snap->any_record_weights = any_record_weights_;
  snap->sealed = sealed_ ? sealed_ : std::make_shared<const SealedList>();
  snap->covered = covered_ ? covered_ : std::make_shared<const CoveredRows>();
  return snap;
}

void Segment::Publish() { Publish(Stage()); }

void Segment::Publish(std::shared_ptr<const Snapshot> snap) {
  std::lock_guard<std::mutex> lock(snapshot_mu_);
  if (snapshot_ == nullptr || snap->seq > snapshot_->seq) snapshot_ = std::move(snap);
}

const RowInfo& Segment::WriterRow(size_t r) const {
  return (*pages_)[r >> kPageShift]->row(r & (kPageRows - 1));
}

const float* Segment::WriterVector(size_t field, size_t r) const {
  const Page& page = *(*pages_)[r >> kPageShift];
  const size_t i = r & (kPageRows - 1);
  if (!page.Present(field, i)) return nullptr;
  return page.FieldData(field) + i * layout_->fields[field].dim;
}

std::shared_ptr<const Snapshot> Segment::snapshot() const {
  std::lock_guard<std::mutex> lock(snapshot_mu_);
  return snapshot_;
}

}  // namespace rosetta::engine
