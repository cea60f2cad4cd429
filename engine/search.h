// Internal to the engine: exact fused search over one snapshot.
//
// Execution works on "positions": in the exhaustive search a position is a row; in a restricted
// search (an index's candidates) position i is the i-th candidate row. Positions are grouped in
// blocks of kPageRows (a page of rows in the exhaustive search). All phases run in parallel over
// blocks via the thread pool, with per-block partial results combined in block order, so results
// never depend on the thread count:
//   1. candidates: live rows (not tombstoned) below the snapshot's row count that pass the filter;
//   2. raw scores: for every targeted field, every candidate having the field is scored against
//      the input's query vector (inner products: the blocked kernel over the page's slab; l2: the
//      l2sqr kernel per row, exact -||q - v||^2), with per-block count / sum / min / max
//      partials when the normalisation reads them (minmax, zscore, calibrated falling back to
//      zscore);
//   3. normalisation parameters per field (double precision; a second pass for the stddev);
//   4. rrf only: full per-field ranks (sort by raw desc, id asc);
//   5. fused score of every candidate (FuseRow; for one targeted field without record weights
//      and not rrf, the same arithmetic inlined), per-worker kernels::TopK on (score, position),
//      merged;
//   6. exact tie handling: every candidate scoring >= the k-th best score is collected and sorted
//      by (score desc, id asc), so ties are broken by id string, not by row number;
//   7. per-field ranks of the returned hits (one counting pass: candidates ranking before each
//      hit) and the explanations.
// Details the formulas leave open (docs/query-semantics.md has the formulas):
//   - max with missing = zero: a missing field contributes 0 and takes part in the max (a record
//     whose present contributions are all negative scores 0); with renormalize / require the max
//     is over the present fields only;
//   - renormalize with S_P = 0 (every present field has effective weight 0): weight and
//     contribution 0 for every present field, score 0; the record is still a candidate;
//   - rrf: `normalized` is still reported (the query's normalisation), it just does not enter
//     the score;
//   - calibrated falls back to zscore for a field when the field has fewer than 2 live vectors or
//     no statistics exist for (query modality, field).
// Number formats: raw scores are float32 (kernel output). Normalised values, weights and
// contributions are computed in double and reported as float32; a hit's score is
// float32(sum in double of its float32 contributions, in field-name order) for weighted and rrf,
// and the largest float32 contribution for max. Ranking uses that float32 score, so reported
// order and reported scores always agree.
#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "engine/layout.h"
#include "engine/segment.h"
#include "schema/types.h"

namespace rosetta::kernels {
class ThreadPool;
}

namespace rosetta::engine {

// `request` must have passed ValidateAndNormalizeQuery against layout.schema. Sets everything
// but took_us. InvalidArgument only for filter problems validation let through.
// `precomputed_raw` (optional, single-field requests only): the raw scores of every row of the
// snapshot for the targeted field (num_pages() * kPageRows floats, from ScoreFieldGroup); the
// search then skips its own scoring pass.
// `restrict_rows` (optional): ascending, distinct rows; only those rows are candidates (the
// indexed plan's union of candidates). Normalisation statistics and per-field ranks are then over
// that set, and the search works in the candidates' own compact space: its cost and memory grow
// with the candidates, not with the collection. Rows at or beyond the snapshot's row count are
// ignored.
absl::StatusOr<SearchResponse> ExecuteSearch(const Layout& layout, const Snapshot& snapshot,
                                             const SearchRequest& request,
                                             kernels::ThreadPool* pool,
                                             const float* precomputed_raw = nullptr,
                                             const std::vector<uint32_t>* restrict_rows = nullptr);

// SearchBatch's grouping: validated requests with one input targeting one ip / cosine field and
// no filter can be scored together.
bool GroupableQuery(const Layout& layout, const SearchRequest& request);

// The largest group ScoreFieldGroup takes. Each query of a group is scored with the same
// one-query kernel call a single Search makes, page by page, so grouped raw scores are
// bit-identical to those of a single Search whatever summation order the kernels use for larger
// batches; tests/engine/fusion_test.cc checks it.
inline constexpr size_t kMaxQueryGroup = 8;

// Scores nq <= kMaxQueryGroup queries (row-major, nq x dim, normalised as validated) against
// every row of `field` in one pass over the data (each page's slab is read from memory once and
// stays in cache for the group's queries); out[q] receives query q's raw scores (num_pages() * kPageRows floats; rows without the
// field hold meaningless values).
void ScoreFieldGroup(const Snapshot& snapshot, const FieldSpec& field, const float* queries,
                     size_t nq, const std::vector<float*>& out, kernels::ThreadPool* pool);

}  // namespace rosetta::engine
