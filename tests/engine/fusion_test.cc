// Fused search against an independent brute-force oracle written from docs/query-semantics.md.
//
// The data is discrete on purpose: cosine vectors have four components of +-0.5 (unit norm, so
// normalisation leaves them unchanged), ip and l2 vectors small integers. Every raw score is then
// exact in float32 and double alike, so raw scores and ranks must match the oracle exactly, and
// ties (equal raw scores, equal fused scores) are frequent, which exercises the id tie-breaks.
// Normalised values, weights, contributions and scores are compared with a small tolerance
// (the engine reports float32), and two hits may swap only if the oracle scores them equal.
#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "engine/database.h"
#include "tests/engine/engine_test_util.h"
#include "tests/testing/testing.h"

namespace rosetta::engine {
namespace {

using ::rosetta::testing::RandomVectors;
using ::rosetta::testing::SeedTrace;
using ::rosetta::testing::TempDir;
using ::rosetta::testing::TestSeed;
using namespace ::rosetta::engine::testing;  // NOLINT

// --- the data set ------------------------------------------------------------------------------

CollectionSchema FusionSchema() {
  CollectionSchema s;
  s.name = "f";
  AddSpace(s, MakeSpace("A", 8, Metric::kCosine));
  AddSpace(s, MakeSpace("B", 5, Metric::kIp));
  AddSpace(s, MakeSpace("C", 6, Metric::kL2));
  AddField(s, MakeField("a1", "A", "text", 1.0f));
  AddField(s, MakeField("a2", "A", "image", 0.7f));
  AddField(s, MakeField("b1", "B", "audio", 1.3f));
  AddField(s, MakeField("c1", "C", "point", 0.5f));
  s.attributes["group"] = AttributeType::kInt;
  s.attributes["tag"] = AttributeType::kString;
  s.attributes["tags"] = AttributeType::kStringList;
  s.attributes["score"] = AttributeType::kFloat;
  return s;
}

std::vector<float> DiscreteVector(const Space& space, std::mt19937_64& rng) {
  std::vector<float> v(space.dim, 0.0f);
  if (space.metric == Metric::kCosine) {
    std::vector<int> pos(space.dim);
    for (int i = 0; i < space.dim; ++i) pos[i] = i;
    std::shuffle(pos.begin(), pos.end(), rng);
    for (int i = 0; i < 4; ++i) v[pos[i]] = (rng() & 1) ? 0.5f : -0.5f;
  } else {
    const int range = space.metric == Metric::kIp ? 2 : 3;
    std::uniform_int_distribution<int> d(-range, range);
    for (float& x : v) x = static_cast<float>(d(rng));
    if (space.metric == Metric::kIp && std::all_of(v.begin(), v.end(), [](float x) { return x == 0; })) {
      v[0] = 1;
    }
  }
  return v;
}

std::string DayTimestamp(int day) {  // day 0..364 of 2025.
  static const int kMonthDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int m = 0;
  while (day >= kMonthDays[m]) day -= kMonthDays[m++];
  char buf[32];
  std::snprintf(buf, sizeof buf, "2025-%02d-%02dT00:00:00Z", m + 1, day + 1);
  return buf;
}

struct OracleRecord {
  Record record;   // as stored (from Database::Get).
  int day = -1;    // provenance.collected_at as a day of 2025, -1 if absent.
};

Record RandomRecord(const CollectionSchema& schema, const std::string& id, std::mt19937_64& rng,
                    int* day) {
  std::uniform_real_distribution<double> u(0, 1);
  Record r;
  r.id = id;
  for (const auto& [name, field] : schema.fields) {
    const bool present = u(rng) < 0.65;
    if (present) r.vectors[name] = DiscreteVector(schema.spaces.at(field.space), rng);
    if ((present && u(rng) < 0.25) || (!present && u(rng) < 0.1)) {
      static const float kWeights[] = {0.0f, 0.5f, 2.0f};
      r.weights[name] = kWeights[rng() % 3];
    }
  }
  if (u(rng) < 0.9) r.attributes["group"] = static_cast<int64_t>(rng() % 5);
  if (u(rng) < 0.9) r.attributes["tag"] = std::string(1, "xyz"[rng() % 3]);
  if (u(rng) < 0.8) {
    std::vector<std::string> tags;
    for (const char* t : {"a", "b", "c"}) {
      if (u(rng) < 0.4) tags.push_back(t);
    }
    r.attributes["tags"] = tags;
  }
  if (u(rng) < 0.8) r.attributes["score"] = std::floor(u(rng) * 8) / 8;
  const int src = static_cast<int>(rng() % 3);
  if (src < 2) r.provenance.source = src == 0 ? "s1" : "s2";
  *day = -1;
  if (u(rng) < 0.7) {
    *day = static_cast<int>(rng() % 365);
    r.provenance.collected_at = DayTimestamp(*day);
  }
  return r;
}

// --- the oracle --------------------------------------------------------------------------------

struct OracleExplanation {
  bool missing = true;
  double raw = 0, normalized = 0, weight = 0, contribution = 0;
  int64_t rank = 0;
};
struct OracleHit {
  std::string id;
  double score = 0;
  std::map<std::string, OracleExplanation> fields;
};

int CompareNumber(double a, double b) { return a < b ? -1 : (a > b ? 1 : 0); }

// One predicate on one record, straight from the semantics.
bool OracleMatches(const Predicate& p, const OracleRecord& rec) {
  auto ordered = [&](int c) {
    switch (p.op) {
      case FilterOp::kEq: case FilterOp::kIn: return c == 0;
      case FilterOp::kNe: return c != 0;
      case FilterOp::kGt: return c > 0;
      case FilterOp::kGte: return c >= 0;
      case FilterOp::kLt: return c < 0;
      case FilterOp::kLte: return c <= 0;
    }
    return false;
  };
  // Scalars: a string or a number (as double; the test's numbers are exact in double).
  auto scalar_match = [&](const std::optional<std::string>& s, std::optional<double> d) {
    auto cmp = [&](const FilterValue& v) -> int {
      if (s) return s->compare(std::get<std::string>(v)) < 0 ? -1 : (*s == std::get<std::string>(v) ? 0 : 1);
      const double x = std::holds_alternative<int64_t>(v) ? double(std::get<int64_t>(v)) : std::get<double>(v);
      return CompareNumber(*d, x);
    };
    if (p.op == FilterOp::kIn) {
      for (const auto& v : p.values) if (cmp(v) == 0) return true;
      return false;
    }
    return ordered(cmp(p.values[0]));
  };
  auto list_match = [&](const std::vector<std::string>& list) {
    auto any_eq = [&](const std::string& v) {
      return std::find(list.begin(), list.end(), v) != list.end();
    };
    if (p.op == FilterOp::kNe) return !any_eq(std::get<std::string>(p.values[0]));
    for (const auto& v : p.values) if (any_eq(std::get<std::string>(v))) return true;
    return false;
  };
  if (p.target == Predicate::Target::kAttribute) {
    auto it = rec.record.attributes.find(p.key);
    if (it == rec.record.attributes.end()) return false;
    const AttributeValue& a = it->second;
    if (const auto* s = std::get_if<std::string>(&a)) return scalar_match(*s, std::nullopt);
    if (const auto* i = std::get_if<int64_t>(&a)) return scalar_match(std::nullopt, double(*i));
    if (const auto* d = std::get_if<double>(&a)) return scalar_match(std::nullopt, *d);
    if (const auto* l = std::get_if<std::vector<std::string>>(&a)) return list_match(*l);
    return false;
  }
  const Provenance& prov = rec.record.provenance;
  if (p.key == "source") return !prov.source.empty() && scalar_match(prov.source, std::nullopt);
  if (p.key == "collected_at") {
    if (rec.day < 0) return false;
    // Values are DayTimestamp strings: compare as days.
    auto day_of = [](const std::string& ts) {
      for (int d = 0; d < 365; ++d) if (DayTimestamp(d) == ts) return d;
      return -1;
    };
    if (p.op == FilterOp::kIn) {
      for (const auto& v : p.values) if (day_of(std::get<std::string>(v)) == rec.day) return true;
      return false;
    }
    return ordered(CompareNumber(rec.day, day_of(std::get<std::string>(p.values[0]))));
  }
  ADD_FAILURE() << "oracle: unsupported provenance key " << p.key;
  return false;
}

double RawScore(Metric m, const std::vector<float>& q, const std::vector<float>& v) {
  double s = 0;
  for (size_t i = 0; i < q.size(); ++i) {
    s += m == Metric::kL2 ? (double(q[i]) - v[i]) * (double(q[i]) - v[i]) : double(q[i]) * v[i];
  }
  return m == Metric::kL2 ? -s : s;
}

std::vector<OracleHit> OracleSearch(const CollectionSchema& schema,
                                    const std::vector<OracleRecord>& records,
                                    const CollectionInfo& info, const SearchRequest& req) {
  // Targeted fields with their query vector, modality and base weight.
  struct Target {
    std::string field;
    std::vector<float> q;
    std::string modality;
    double base_weight;
    Metric metric;
  };
  std::vector<Target> targets;
  for (const QueryInput& in : req.inputs) {
    std::vector<std::string> fields = in.fields;
    if (fields.empty()) {
      for (const auto& [name, f] : schema.fields) if (f.space == in.space) fields.push_back(name);
    }
    for (const std::string& f : fields) {
      const Field& field = schema.fields.at(f);
      Target t;
      t.field = f;
      t.metric = schema.spaces.at(in.space).metric;
      t.q = t.metric == Metric::kCosine ? Normalised(in.vector) : in.vector;
      t.modality = in.modality.empty() ? field.modality : in.modality;
      const double fw = req.weights.count(f) ? req.weights.at(f) : field.weight;
      t.base_weight = fw * in.weight;
      targets.push_back(t);
    }
  }
  std::sort(targets.begin(), targets.end(), [](const Target& a, const Target& b) { return a.field < b.field; });
  // Candidates.
  std::vector<const OracleRecord*> cands;
  for (const OracleRecord& r : records) {
    bool ok = true;
    for (const Predicate& p : req.filter.predicates) ok = ok && OracleMatches(p, r);
    for (const std::string& f : req.filter.has_fields) ok = ok && r.record.vectors.count(f);
    if (ok) cands.push_back(&r);
  }
  // Raw scores, normalisation, ranks per field.
  const size_t nt = targets.size();
  std::vector<std::map<std::string, double>> raw(nt);
  std::vector<std::map<std::string, double>> norm(nt);
  std::vector<std::map<std::string, int64_t>> rank(nt);
  for (size_t t = 0; t < nt; ++t) {
    std::vector<std::pair<double, std::string>> scored;
    for (const OracleRecord* r : cands) {
      auto it = r->record.vectors.find(targets[t].field);
      if (it == r->record.vectors.end()) continue;
      const double s = RawScore(targets[t].metric, targets[t].q, it->second);
      raw[t][r->record.id] = s;
      scored.push_back({s, r->record.id});
    }
    std::sort(scored.begin(), scored.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first > b.first : a.second < b.second;
    });
    for (size_t i = 0; i < scored.size(); ++i) rank[t][scored[i].second] = int64_t(i) + 1;
    double mn = 1e300, mx = -1e300, sum = 0;
    for (const auto& [s, id] : scored) {
      mn = std::min(mn, s);
      mx = std::max(mx, s);
      sum += s;
    }
    const double n = double(scored.size());
    const double mean = scored.empty() ? 0 : sum / n;
    double sq = 0;
    for (const auto& [s, id] : scored) sq += (s - mean) * (s - mean);
    const double sd = scored.empty() ? 0 : std::sqrt(sq / n);
    Normalize mode = req.normalize;
    const CalibrationStats* cal = nullptr;
    if (mode == Normalize::kCalibrated) {
      for (const CalibrationStats& c : info.calibration) {
        if (c.field == targets[t].field && c.modality == targets[t].modality) cal = &c;
      }
      if (cal == nullptr || info.field_vectors.at(targets[t].field) < 2) mode = Normalize::kZScore;
    }
    for (const auto& [s, id] : scored) {
      double v = s;
      switch (mode) {
        case Normalize::kNone: v = s; break;
        case Normalize::kMinMax: v = mx == mn ? 1.0 : (s - mn) / (mx - mn); break;
        case Normalize::kZScore: v = sd == 0 ? 0.0 : (s - mean) / sd; break;
        case Normalize::kCalibrated: {
          double denom = cal->top1_mean - cal->mean;
          if (denom < 1e-6) denom = cal->stddev > 0 ? cal->stddev : 1.0;
          v = (s - cal->mean) / denom;
          break;
        }
      }
      norm[t][id] = v;
    }
  }
  // Fusion.
  std::vector<OracleHit> hits;
  for (const OracleRecord* r : cands) {
    const std::string& id = r->record.id;
    size_t present = 0;
    for (size_t t = 0; t < nt; ++t) present += raw[t].count(id);
    if (present == 0) continue;
    if (req.missing == Missing::kRequire && present != nt) continue;
    std::vector<double> w(nt);
    double s_t = 0, s_p = 0;
    for (size_t t = 0; t < nt; ++t) {
      const bool has = raw[t].count(id);
      const auto rw = r->record.weights.find(targets[t].field);
      const double record_weight = has && rw != r->record.weights.end() ? rw->second : 1.0;
      w[t] = targets[t].base_weight * record_weight;
      s_t += w[t];
      if (has) s_p += w[t];
    }
    OracleHit hit;
    hit.id = id;
    double sum = 0, best = -1e300;
    bool missing_any = false;
    for (size_t t = 0; t < nt; ++t) {
      OracleExplanation e;
      if (!raw[t].count(id)) {
        missing_any = true;
        hit.fields[targets[t].field] = e;
        continue;
      }
      e.missing = false;
      e.raw = raw[t][id];
      e.normalized = norm[t][id];
      e.rank = rank[t][id];
      e.weight = w[t];
      if (req.missing == Missing::kRenormalize) e.weight = s_p == 0 ? 0.0 : w[t] * s_t / s_p;
      e.contribution = req.fusion == Fusion::kRrf ? e.weight / (60.0 + double(e.rank))
                                                  : e.weight * e.normalized;
      sum += e.contribution;
      best = std::max(best, e.contribution);
      hit.fields[targets[t].field] = e;
    }
    if (req.fusion == Fusion::kMax) {
      hit.score = (req.missing == Missing::kZero && missing_any) ? std::max(best, 0.0) : best;
    } else {
      hit.score = sum;
    }
    hits.push_back(std::move(hit));
  }
  std::sort(hits.begin(), hits.end(), [](const OracleHit& a, const OracleHit& b) {
    return a.score != b.score ? a.score > b.score : a.id < b.id;
  });
  return hits;  // every eligible candidate; the caller takes the first k.
}

// --- random queries ----------------------------------------------------------------------------

Predicate Pred(Predicate::Target target, std::string key, FilterOp op, std::vector<FilterValue> v) {
  Predicate p;
  p.target = target;
  p.key = std::move(key);
  p.op = op;
  p.values = std::move(v);
  return p;
}

Filter RandomFilter(std::mt19937_64& rng) {
  using T = Predicate::Target;
  const std::vector<Predicate> pool = {
      Pred(T::kAttribute, "group", FilterOp::kEq, {int64_t{2}}),
      Pred(T::kAttribute, "group", FilterOp::kNe, {int64_t{1}}),
      Pred(T::kAttribute, "group", FilterOp::kIn, {int64_t{0}, int64_t{3}, int64_t{4}}),
      Pred(T::kAttribute, "group", FilterOp::kGte, {2.5}),
      Pred(T::kAttribute, "group", FilterOp::kLt, {int64_t{3}}),
      Pred(T::kAttribute, "tag", FilterOp::kEq, {std::string("x")}),
      Pred(T::kAttribute, "tag", FilterOp::kNe, {std::string("y")}),
      Pred(T::kAttribute, "tag", FilterOp::kGt, {std::string("x")}),
      Pred(T::kAttribute, "tags", FilterOp::kEq, {std::string("a")}),
      Pred(T::kAttribute, "tags", FilterOp::kNe, {std::string("b")}),
      Pred(T::kAttribute, "tags", FilterOp::kIn, {std::string("c"), std::string("zz")}),
      Pred(T::kAttribute, "score", FilterOp::kLte, {int64_t{0}}),
      Pred(T::kAttribute, "score", FilterOp::kGt, {0.375}),
      Pred(T::kProvenance, "source", FilterOp::kEq, {std::string("s1")}),
      Pred(T::kProvenance, "source", FilterOp::kNe, {std::string("s1")}),
      Pred(T::kProvenance, "collected_at", FilterOp::kGte, {DayTimestamp(150)}),
      Pred(T::kProvenance, "collected_at", FilterOp::kLt, {DayTimestamp(300)}),
  };
  Filter f;
  const int n = static_cast<int>(rng() % 3);
  for (int i = 0; i < n; ++i) f.predicates.push_back(pool[rng() % pool.size()]);
  if (rng() % 4 == 0) f.has_fields.push_back((rng() & 1) ? "a1" : "b1");
  return f;
}

SearchRequest RandomRequest(const CollectionSchema& schema, std::mt19937_64& rng, Fusion fusion,
                            Normalize normalize, Missing missing) {
  SearchRequest req;
  req.fusion = fusion;
  req.normalize = normalize;
  req.missing = missing;
  static const int kKs[] = {1, 3, 10, 50, 400};
  req.k = kKs[rng() % 5];
  static const char* kModalities[] = {"", "", "text", "image", "audio", "smell"};
  static const float kInputWeights[] = {1.0f, 0.5f, 2.0f};
  // Space A: one input for a1 and/or a2 (or all of A); B and C: maybe.
  bool any = false;
  for (const char* space : {"A", "B", "C"}) {
    if (rng() % 3 == 0 && !(std::string(space) == "C" && !any)) continue;
    QueryInput in;
    in.space = space;
    in.vector = DiscreteVector(schema.spaces.at(space), rng);
    in.modality = kModalities[rng() % 6];
    in.weight = kInputWeights[rng() % 3];
    if (std::string(space) == "A") {
      const int pick = static_cast<int>(rng() % 3);
      if (pick == 1) in.fields = {"a1"};
      if (pick == 2) in.fields = {"a2", "a1"};
    }
    req.inputs.push_back(in);
    any = true;
  }
  for (const auto& in : req.inputs) {
    std::vector<std::string> fields = in.fields;
    if (fields.empty() && in.space == "A") fields = {"a1", "a2"};
    if (fields.empty()) fields = {in.space == "B" ? "b1" : "c1"};
    for (const std::string& f : fields) {
      if (rng() % 4 == 0) req.weights[f] = (rng() & 1) ? 0.25f : 1.5f;
    }
  }
  if (rng() % 2 == 0) req.filter = RandomFilter(rng);
  return req;
}

std::string Describe(const SearchRequest& r) {
  std::string s = std::string("fusion=") + FusionName(r.fusion) + " normalize=" +
                  NormalizeName(r.normalize) + " missing=" + MissingName(r.missing) +
                  " k=" + std::to_string(r.k) + " inputs=";
  for (const auto& in : r.inputs) {
    s += in.space + "[";
    for (const auto& f : in.fields) s += f + ",";
    s += "] mod=" + in.modality + " w=" + std::to_string(in.weight) + "; ";
  }
  s += "predicates=" + std::to_string(r.filter.predicates.size()) +
       " has_fields=" + std::to_string(r.filter.has_fields.size());
  return s;
}

bool Near(double a, double b) { return std::abs(a - b) <= 1e-5 * std::max(1.0, std::abs(b)); }

// `all` is the oracle's full ranking; the expected result is its first k entries.
void ExpectMatchesOracle(const SearchRequest& req, const SearchResponse& got,
                         const std::vector<OracleHit>& all) {
  SCOPED_TRACE(Describe(req));
  const std::vector<OracleHit> want(all.begin(),
                                    all.begin() + std::min(all.size(), size_t(req.k)));
  ASSERT_EQ(got.results.size(), want.size());
  std::map<std::string, const OracleHit*> want_by_id;
  for (const OracleHit& h : all) want_by_id[h.id] = &h;
  for (size_t i = 0; i < want.size(); ++i) {
    const Hit& g = got.results[i];
    SCOPED_TRACE("position " + std::to_string(i) + " id " + g.id);
    // Order: by the engine's own scores, ties by id.
    if (i > 0) {
      const Hit& prev = got.results[i - 1];
      EXPECT_TRUE(prev.score > g.score || (prev.score == g.score && prev.id < g.id));
    }
    EXPECT_TRUE(Near(g.score, want[i].score)) << g.score << " vs oracle " << want[i].score;
    if (g.id != want[i].id) {
      // Only a tie (in the oracle's exact scores, up to float rounding) may swap two hits.
      auto it = want_by_id.find(g.id);
      ASSERT_TRUE(it != want_by_id.end()) << "id not eligible in the oracle: " << g.id;
      EXPECT_TRUE(Near(it->second->score, want[i].score));
    }
    const OracleHit* w = want_by_id.at(g.id);
    // Explanations.
    ASSERT_EQ(g.fields.size(), w->fields.size());
    double sum = 0;
    float best = -INFINITY;
    bool missing_any = false;
    for (const auto& [field, we] : w->fields) {
      SCOPED_TRACE("field " + field);
      const FieldExplanation& ge = g.fields.at(field);
      ASSERT_EQ(ge.missing, we.missing);
      if (ge.missing) {
        missing_any = true;
        EXPECT_EQ(req.missing == Missing::kRequire, false);
        continue;
      }
      EXPECT_EQ(ge.raw, static_cast<float>(we.raw));  // exact: discrete data.
      EXPECT_EQ(ge.rank, we.rank);
      EXPECT_TRUE(Near(ge.normalized, we.normalized)) << ge.normalized << " vs " << we.normalized;
      EXPECT_TRUE(Near(ge.weight, we.weight)) << ge.weight << " vs " << we.weight;
      EXPECT_TRUE(Near(ge.contribution, we.contribution)) << ge.contribution << " vs " << we.contribution;
      sum += ge.contribution;
      best = std::max(best, ge.contribution);
    }
    // The score is exactly the sum (weighted, rrf) or the max (max) of the reported contributions.
    if (req.fusion == Fusion::kMax) {
      if (req.missing == Missing::kZero && missing_any) best = std::max(best, 0.0f);
      EXPECT_EQ(g.score, best);
    } else {
      EXPECT_EQ(g.score, static_cast<float>(sum));
    }
  }
}

class FusionOracleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    seed_ = TestSeed(20250809);
    auto db = Database::Open(dir_.str() + "/db", TestOptions());
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(*db);
    schema_ = FusionSchema();
    ASSERT_OK(db_->CreateCollection(schema_));
    std::mt19937_64 rng(seed_);
    // 300 records in three batches, then 30 replaced and 20 deleted: the engine's rows include
    // tombstoned versions that must never surface.
    std::vector<std::string> ids;
    for (int i = 0; i < 300; ++i) ids.push_back("r" + std::to_string((i * 7919) % 1000));
    int day;
    for (int b = 0; b < 3; ++b) {
      std::vector<Record> batch;
      for (int i = b * 100; i < (b + 1) * 100; ++i) batch.push_back(RandomRecord(schema_, ids[i], rng, &day));
      ASSERT_OK(db_->Upsert("f", batch).status());
    }
    std::vector<Record> replace;
    for (int i = 0; i < 30; ++i) replace.push_back(RandomRecord(schema_, ids[rng() % 300], rng, &day));
    std::sort(replace.begin(), replace.end(), [](const Record& a, const Record& b) { return a.id < b.id; });
    replace.erase(std::unique(replace.begin(), replace.end(),
                              [](const Record& a, const Record& b) { return a.id == b.id; }),
                  replace.end());
    ASSERT_OK(db_->Upsert("f", replace).status());
    std::vector<std::string> del;
    for (int i = 0; i < 20; ++i) del.push_back(ids[rng() % 300]);
    ASSERT_OK(db_->Delete("f", del).status());
    // The oracle's copy: whatever storage holds now.
    ASSERT_OK_AND_ASSIGN(GetResult got, db_->Get("f", ids, true));
    std::set<std::string> seen;
    for (Record& r : got.records) {
      if (!seen.insert(r.id).second) continue;
      OracleRecord o;
      o.record = std::move(r);
      if (!o.record.provenance.collected_at.empty()) {
        for (int d = 0; d < 365; ++d) {
          if (DayTimestamp(d) == o.record.provenance.collected_at) o.day = d;
        }
      }
      records_.push_back(std::move(o));
    }
    ASSERT_GT(records_.size(), 250u);
  }

  uint64_t seed_ = 0;
  TempDir dir_;
  std::unique_ptr<Database> db_;
  CollectionSchema schema_;
  std::vector<OracleRecord> records_;
};

TEST_F(FusionOracleTest, EveryFusionNormalizeMissingCombination) {
  SCOPED_TRACE(SeedTrace(seed_));
  ASSERT_OK_AND_ASSIGN(CollectionInfo info, db_->Describe("f"));
  // Calibration exists for every (modality of the space, field) pair.
  EXPECT_EQ(info.calibration.size(), 2u * 2u + 1u + 1u);
  std::mt19937_64 rng(seed_ + 1);
  int checked = 0, with_ties = 0;
  for (Fusion fusion : {Fusion::kWeighted, Fusion::kRrf, Fusion::kMax}) {
    for (Normalize normalize :
         {Normalize::kNone, Normalize::kMinMax, Normalize::kZScore, Normalize::kCalibrated}) {
      for (Missing missing : {Missing::kRenormalize, Missing::kZero, Missing::kRequire}) {
        std::vector<SearchRequest> batch;
        std::vector<SearchResponse> singles;
        for (int q = 0; q < 4; ++q) {
          SearchRequest req = RandomRequest(schema_, rng, fusion, normalize, missing);
          ASSERT_OK_AND_ASSIGN(SearchResponse got, db_->Search("f", req));
          ExpectMatchesOracle(req, got, OracleSearch(schema_, records_, info, req));
          if (missing == Missing::kRequire) {
            for (const Hit& h : got.results) {
              for (const auto& [f, e] : h.fields) EXPECT_FALSE(e.missing) << h.id << " " << f;
            }
          }
          for (size_t i = 1; i < got.results.size(); ++i) {
            with_ties += got.results[i].score == got.results[i - 1].score;
          }
          batch.push_back(req);
          singles.push_back(std::move(got));
          ++checked;
        }
        // SearchBatch is equivalent to Search, query by query, bit for bit.
        ASSERT_OK_AND_ASSIGN(std::vector<SearchResponse> batched, db_->SearchBatch("f", batch));
        ASSERT_EQ(batched.size(), singles.size());
        for (size_t q = 0; q < batched.size(); ++q) {
          ASSERT_EQ(HitIds(batched[q]), HitIds(singles[q]));
          for (size_t i = 0; i < batched[q].results.size(); ++i) {
            EXPECT_EQ(batched[q].results[i].score, singles[q].results[i].score);
          }
        }
      }
    }
  }
  EXPECT_EQ(checked, 3 * 4 * 3 * 4);
  EXPECT_GT(with_ties, 0);  // the data really exercises tie-breaking.
}

TEST_F(FusionOracleTest, ScoreAndContributionsOfOneHit) {
  // A hand-checkable case: weighted, none, renormalize; two fields with a record lacking one.
  Record r;
  r.id = "hand";
  r.vectors["b1"] = {1, 2, 0, 0, 0};
  r.weights["b1"] = 2.0f;
  ASSERT_OK(db_->Upsert("f", {r}).status());
  SearchRequest req;
  req.k = 400;
  req.normalize = Normalize::kNone;
  QueryInput b;
  b.space = "B";
  b.vector = {1, 1, 0, 0, 0};
  req.inputs.push_back(b);
  QueryInput c;
  c.space = "C";
  c.vector = {0, 0, 0, 0, 0, 0};
  req.inputs.push_back(c);
  ASSERT_OK_AND_ASSIGN(SearchResponse got, db_->Search("f", req));
  const Hit* hit = nullptr;
  for (const Hit& h : got.results) if (h.id == "hand") hit = &h;
  ASSERT_NE(hit, nullptr);
  // w_b1 = 1.3 x 2 = 2.6; S_T = 2.6 + 0.5 (c1 missing: record weight 1) = 3.1; S_P = 2.6.
  // w' = 2.6 x 3.1 / 2.6 = 3.1; raw = 3; contribution = 9.3.
  const FieldExplanation& e = hit->fields.at("b1");
  EXPECT_EQ(e.raw, 3.0f);
  EXPECT_NEAR(e.weight, 3.1f, 1e-6);
  EXPECT_NEAR(e.contribution, 9.3f, 1e-5);
  EXPECT_TRUE(hit->fields.at("c1").missing);
  EXPECT_EQ(hit->score, e.contribution);
}

TEST(SearchBatchTest, GroupedScoringIsBitIdenticalToSearch) {
  // Random (not discrete) data, so that any difference in summation order would show: SearchBatch
  // scores single-field queries in groups with the blocked kernel, Search one by one.
  const uint64_t seed = TestSeed(4242);
  SCOPED_TRACE(SeedTrace(seed));
  TempDir dir;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Database> db, Database::Open(dir.str() + "/db", TestOptions()));
  CollectionSchema s;
  s.name = "b";
  AddSpace(s, MakeSpace("c", 24, Metric::kCosine));
  AddSpace(s, MakeSpace("i", 13, Metric::kIp));
  AddSpace(s, MakeSpace("l", 5, Metric::kL2));
  AddField(s, MakeField("c1", "c", "text"));
  AddField(s, MakeField("c2", "c", "image"));
  AddField(s, MakeField("i1", "i", "audio"));
  AddField(s, MakeField("l1", "l", "point"));
  s.attributes["group"] = AttributeType::kInt;
  ASSERT_OK(db->CreateCollection(s));
  std::mt19937_64 rng(seed);
  std::vector<Record> records;
  for (int i = 0; i < 1500; ++i) {
    Record r;
    r.id = "x" + std::to_string(i);
    for (const auto& [name, f] : s.fields) {
      if (rng() % 4 != 0) r.vectors[name] = RandomVectors(1, s.spaces.at(f.space).dim, rng());
    }
    r.attributes["group"] = int64_t(i % 3);
    records.push_back(std::move(r));
  }
  ASSERT_OK(db->Upsert("b", records).status());
  std::vector<SearchRequest> batch;
  for (int q = 0; q < 30; ++q) {
    SearchRequest req;
    req.k = (q % 3 == 0) ? 5 : 40;
    req.fusion = (q % 2) ? Fusion::kRrf : Fusion::kWeighted;
    QueryInput in;
    const int kind = q % 6;
    in.space = kind < 2 ? "c" : (kind < 4 ? "i" : (kind == 4 ? "c" : "l"));
    in.vector = RandomVectors(1, s.spaces.at(in.space).dim, rng());
    if (kind == 0) in.fields = {"c1"};
    if (kind == 1) in.fields = {"c2"};
    if (kind == 4) in.fields = {"c1", "c2"};  // two fields: not grouped.
    req.inputs.push_back(in);
    if (kind == 3) {  // a filter: not grouped.
      req.filter.predicates.push_back({Predicate::Target::kAttribute, "group", FilterOp::kEq, {int64_t{1}}});
    }
    batch.push_back(req);
  }
  ASSERT_OK_AND_ASSIGN(std::vector<SearchResponse> batched, db->SearchBatch("b", batch));
  ASSERT_EQ(batched.size(), batch.size());
  for (size_t q = 0; q < batch.size(); ++q) {
    SCOPED_TRACE("query " + std::to_string(q));
    ASSERT_OK_AND_ASSIGN(SearchResponse single, db->Search("b", batch[q]));
    ASSERT_EQ(HitIds(batched[q]), HitIds(single));
    ASSERT_FALSE(single.results.empty());
    for (size_t i = 0; i < single.results.size(); ++i) {
      const Hit& a = batched[q].results[i];
      const Hit& b = single.results[i];
      EXPECT_EQ(a.score, b.score);
      for (const auto& [f, e] : b.fields) {
        EXPECT_EQ(a.fields.at(f).missing, e.missing);
        EXPECT_EQ(a.fields.at(f).raw, e.raw) << f;
        EXPECT_EQ(a.fields.at(f).normalized, e.normalized) << f;
        EXPECT_EQ(a.fields.at(f).rank, e.rank) << f;
      }
    }
  }
}

}  // namespace
}  // namespace rosetta::engine
