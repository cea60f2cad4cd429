// Helpers shared by the engine tests (header-only: tests/CMakeLists.txt globs *_test.cc).
#pragma once

#include <cmath>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "engine/database.h"
#include "schema/types.h"
#include "schema/validate.h"
#include "tests/testing/testing.h"

namespace rosetta::engine::testing {

inline Space MakeSpace(const std::string& name, int dim, Metric metric) {
  Space s;
  s.name = name;
  s.dim = dim;
  s.metric = metric;
  s.encoder = "test@1";
  return s;
}

inline Field MakeField(const std::string& name, const std::string& space,
                       const std::string& modality, float weight = 1.0f) {
  Field f;
  f.name = name;
  f.space = space;
  f.modality = modality;
  f.weight = weight;
  return f;
}

inline void AddSpace(CollectionSchema& s, Space space) { s.spaces[space.name] = std::move(space); }
inline void AddField(CollectionSchema& s, Field field) { s.fields[field.name] = std::move(field); }

// Options for tests: no fsync (tests do not simulate power loss), 2 search threads, the CPU
// (the engine tests check the CPU path bit for bit; tests/engine/device_test.cc picks devices).
inline DatabaseOptions TestOptions() {
  DatabaseOptions o;
  o.store.sync = storage::SyncPolicy::kNone;
  o.search_threads = 2;
  o.device = DeviceKind::kCpu;
  return o;
}

// A unit-normalised copy, as cosine vectors are stored (schema/validate.h's NormalizeInPlace).
inline std::vector<float> Normalised(std::vector<float> v) {
  NormalizeInPlace(v);
  return v;
}

inline std::vector<std::string> HitIds(const SearchResponse& r) {
  std::vector<std::string> ids;
  for (const Hit& h : r.results) ids.push_back(h.id);
  return ids;
}

// `got` has `want`'s hits in the same order with the same scores and explanations (every member
// bit for bit; ranks within `rank_tolerance`).
inline void ExpectSameHits(const SearchResponse& want, const SearchResponse& got,
                           int64_t rank_tolerance = 0) {
  ASSERT_EQ(HitIds(got), HitIds(want));
  for (size_t h = 0; h < want.results.size(); ++h) {
    const Hit& x = want.results[h];
    const Hit& y = got.results[h];
    EXPECT_EQ(y.score, x.score) << x.id;
    ASSERT_EQ(y.fields.size(), x.fields.size()) << x.id;
    for (const auto& [name, e] : x.fields) {
      const FieldExplanation& f = y.fields.at(name);
      EXPECT_EQ(f.missing, e.missing) << x.id << " " << name;
      EXPECT_EQ(f.raw, e.raw) << x.id << " " << name;
      EXPECT_EQ(f.normalized, e.normalized) << x.id << " " << name;
      EXPECT_EQ(f.weight, e.weight) << x.id << " " << name;
      EXPECT_EQ(f.contribution, e.contribution) << x.id << " " << name;
      EXPECT_LE(std::llabs(f.rank - e.rank), rank_tolerance) << x.id << " " << name;
    }
  }
}

}  // namespace rosetta::engine::testing
