#include "projections/patterns.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "adapters/embed/hashing_embedder.h"
#include "commands/ids.h"
#include "projections/worker.h"
#include "tests/commands/harness.h"

using namespace engram;
using nlohmann::json;
using projections::PatternsProjection;

namespace {

std::shared_ptr<const projections::TextEmbedder> hashing(size_t dimensions = 384) {
  return std::make_shared<embed::HashingEmbedder>(dimensions);
}

std::string pid(const std::string& domain, const std::string& signature) {
  return commands::pattern_id(domain, signature);
}

commands::CommandOutcome observe(test::BusFixture& f, const std::string& domain,
                                 const std::string& signature, bool success, double reward,
                                 std::optional<std::string> agent = std::nullopt) {
  json body = {{"domain", domain},
               {"signature", signature},
               {"outcome", success ? "success" : "failure"},
               {"reward", reward}};
  if (agent) body["agent_id"] = *agent;
  return f.ok("ObservePattern", body);
}

void retire(test::BusFixture& f, const std::string& id, const std::string& reason) {
  f.ok("RetirePattern", {{"pattern_id", id}, {"reason", reason}});
}

// A patterns worker over the fixture's log, caught up with its head.
struct Model {
  explicit Model(test::BusFixture& f, projections::WorkerOptions options = {},
                 std::shared_ptr<const projections::TextEmbedder> embedder = hashing())
      : projection(std::make_shared<PatternsProjection>(std::move(embedder))) {
    auto w = projections::Worker::start(*f.log, *f.models, projection, std::move(options));
    REQUIRE(w);
    worker = std::move(*w);
    catch_up(f);
  }
  void catch_up(test::BusFixture& f) {
    const bool reached = worker->wait_for(f.log->head().position, std::chrono::seconds(5));
    REQUIRE_FALSE(worker->stats().failed);
    REQUIRE(reached);
  }
  const core::ModelStore& store() const { return worker->store(); }

  json get(const std::string& id) const {
    auto r = projections::get_pattern(store(), id);
    REQUIRE_MESSAGE(r, id);
    return *r;
  }
  std::vector<std::string> recommend(const std::string& domain, size_t limit = 100) const {
    auto r = projections::recommend_patterns(store(), domain, limit);
    REQUIRE(r);
    std::vector<std::string> out;
    for (const auto& p : *r) out.push_back(p["pattern_id"].get<std::string>());
    return out;
  }
  std::vector<projections::SimilarPattern> similar(const std::string& id, size_t limit = 10,
                                                   std::optional<double> min_score = {}) const {
    auto r = projections::similar_patterns(*projection, store(), id, limit, min_score);
    REQUIRE(r);
    return *r;
  }

  std::shared_ptr<PatternsProjection> projection;
  std::unique_ptr<projections::Worker> worker;
};

std::vector<std::string> ids_of(const std::vector<projections::SimilarPattern>& items) {
  std::vector<std::string> out;
  for (const auto& s : items) out.push_back(s.pattern["pattern_id"].get<std::string>());
  return out;
}

// Every key and value of a store, in key order.
std::vector<std::pair<std::string, std::string>> contents(const core::ModelStore& store) {
  std::vector<std::pair<std::string, std::string>> out;
  std::string from;
  for (;;) {
    auto page = store.scan("", from, core::ModelStore::kMaxScanEntries);
    REQUIRE(page);
    out.insert(out.end(), page->begin(), page->end());
    if (page->size() < core::ModelStore::kMaxScanEntries) return out;
    from = page->back().first + std::string(1, '\0');
  }
}

}  // namespace

TEST_CASE("patterns: the Wilson lower bound matches hand-computed values") {
  using projections::wilson_lower_bound;
  // (p + z²/2n − z·sqrt(p(1−p)/n + z²/4n²)) / (1 + z²/n), z = 1.96, by hand.
  CHECK(wilson_lower_bound(8, 10) == doctest::Approx(0.490157).epsilon(1e-5));
  CHECK(wilson_lower_bound(1, 1) == doctest::Approx(0.206543).epsilon(1e-5));
  CHECK(wilson_lower_bound(2, 2) == doctest::Approx(0.342372).epsilon(1e-5));
  CHECK(wilson_lower_bound(5, 10) == doctest::Approx(0.236590).epsilon(1e-5));
  CHECK(wilson_lower_bound(3, 4) == doctest::Approx(0.300636).epsilon(1e-5));
  CHECK(wilson_lower_bound(0, 3) == 0.0);
  CHECK_FALSE(std::signbit(wilson_lower_bound(0, 1)));
  CHECK(wilson_lower_bound(1'000'000, 1'000'000) < 1.0);
  CHECK(wilson_lower_bound(1'000'000, 1'000'000) > 0.99999);
}

TEST_CASE("patterns: counts, mean reward, success rate, Wilson bound and last seen") {
  test::BusFixture f;
  const std::string sig = "lower lr after plateau";
  const std::string id = pid("ml", sig);
  const auto first = observe(f, "ml", sig, true, 1.0, "a1");
  for (int i = 0; i < 7; ++i) observe(f, "ml", sig, true, 1.0);
  observe(f, "ml", sig, false, -0.5, "a2");
  const auto last = observe(f, "ml", sig, false, -0.5);
  observe(f, "bio", sig, true, 3.0);  // the same signature elsewhere is another pattern

  Model m(f);
  const json p = m.get(id);
  CHECK(p["pattern_id"] == id);
  CHECK(first.stream == "pattern-" + id);
  CHECK(p["domain"] == "ml");
  CHECK(p["signature"] == sig);
  CHECK(p["observations"] == 10);
  CHECK(p["successes"] == 8);
  CHECK(p["failures"] == 2);
  CHECK(p["reward_sum"].get<double>() == doctest::Approx(7.0));
  CHECK(p["mean_reward"].get<double>() == doctest::Approx(0.7));
  CHECK(p["success_rate"].get<double>() == doctest::Approx(0.8));
  CHECK(p["wilson_lower"].get<double>() == doctest::Approx(0.4902).epsilon(1e-4));
  CHECK(p["first_seen_position"] == first.first_position);
  CHECK(p["last_seen_position"] == last.last_position);
  // The recorded times of those events, not a clock of the projection's.
  for (const auto& e : f.all_events()) {
    if (e.position().value() == first.first_position) {
      CHECK(p["first_seen_at_ns"] == e.recorded_at_ns());
    }
    if (e.position().value() == last.last_position) {
      CHECK(p["last_seen_at_ns"] == e.recorded_at_ns());
    }
  }
  CHECK(p["last_seen_at_ns"].get<int64_t>() >= p["first_seen_at_ns"].get<int64_t>());
  CHECK(p["last_agent"] == "a2");  // the last observation that named an agent
  CHECK(p["retired"] == false);

  const json bio = m.get(pid("bio", sig));
  CHECK(bio["observations"] == 1);
  CHECK(bio["mean_reward"].get<double>() == doctest::Approx(3.0));
  CHECK(bio["wilson_lower"].get<double>() == doctest::Approx(0.2065).epsilon(1e-4));
  CHECK_FALSE(bio.contains("last_agent"));

  retire(f, id, "superseded");
  m.catch_up(f);
  const json r = m.get(id);
  CHECK(r["retired"] == true);
  CHECK(r["retired_reason"] == "superseded");
  CHECK(r["retired_position"] == f.head());
  CHECK(r["observations"] == 10);

  auto missing = projections::get_pattern(m.store(), "0123456789abcdef");
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code == core::errc::not_found);
}

TEST_CASE("patterns: recommend ranks by Wilson bound, then observations, then id") {
  test::BusFixture f;
  Model m(f);  // live: every change reaches the model through committed batches
  auto many = [&](const std::string& domain, const std::string& sig, int successes, int failures) {
    for (int i = 0; i < successes; ++i) observe(f, domain, sig, true, 1);
    for (int i = 0; i < failures; ++i) observe(f, domain, sig, false, 0);
    return pid(domain, sig);
  };
  const std::string a = many("ml", "eight of ten", 8, 2);  // 0.4902
  const std::string b = many("ml", "one of one", 1, 0);    // 0.2065
  const std::string c = many("ml", "two of two", 2, 0);    // 0.3424
  const std::string z3 = many("ml", "none of three", 0, 3);
  const std::string z1a = many("ml", "none of one a", 0, 1);
  const std::string z1b = many("ml", "none of one b", 0, 1);
  const std::string gone = many("ml", "retired star", 20, 0);  // would rank first
  many("bio", "other domain", 5, 0);
  retire(f, gone, "obsolete");
  m.catch_up(f);

  // The zero-bound ties: more observations first, then the smaller id.
  std::vector<std::string> expected = {a, c, b, z3};
  expected.push_back(std::min(z1a, z1b));
  expected.push_back(std::max(z1a, z1b));
  CHECK(m.recommend("ml") == expected);
  CHECK(m.recommend("ml", 2) == std::vector<std::string>{a, c});
  CHECK(m.recommend("bio").size() == 1);
  CHECK(m.recommend("chem").empty());

  // One more success makes "one of one" 2 of 2, tying c on bound and count:
  // the id decides.
  observe(f, "ml", "one of one", true, 1);
  m.catch_up(f);
  const auto ranked = m.recommend("ml");
  REQUIRE(ranked.size() == 6);
  CHECK(ranked[0] == a);
  CHECK(ranked[1] == std::min(b, c));
  CHECK(ranked[2] == std::max(b, c));
  CHECK(m.get(b)["wilson_lower"] == m.get(c)["wilson_lower"]);

  for (size_t bad : {size_t{0}, projections::kPatternsMaxLimit + 1}) {
    auto r = projections::recommend_patterns(m.store(), "ml", bad);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == core::errc::invalid_argument);
  }
  CHECK(projections::recommend_patterns(m.store(), "ml", projections::kPatternsMaxLimit));
}

TEST_CASE("patterns: similar finds related patterns in other domains only") {
  test::BusFixture f;
  Model m(f);
  const std::string base_sig = "reduce learning rate when validation loss plateaus";
  observe(f, "ml", base_sig, true, 1);
  observe(f, "bio", "reduce learning rate when training loss plateaus", true, 1);
  observe(f, "ml", "reduce learning rate when loss plateaus", true, 1);
  observe(f, "chem", "increase temperature to speed up the reaction", false, 0);
  observe(f, "ops", base_sig, true, 1);  // identical signature, about to be retired
  const std::string base = pid("ml", base_sig);
  const std::string bio = pid("bio", "reduce learning rate when training loss plateaus");
  const std::string ml2 = pid("ml", "reduce learning rate when loss plateaus");
  const std::string chem = pid("chem", "increase temperature to speed up the reaction");
  const std::string ops = pid("ops", base_sig);
  m.catch_up(f);
  CHECK(m.projection->indexed() == 5);
  // Before retiring: the identical signature in "ops" is the best match.
  CHECK(ids_of(m.similar(base)).front() == ops);

  retire(f, ops, "wrong domain");
  m.catch_up(f);
  CHECK(m.projection->indexed() == 4);

  const auto hits = m.similar(base);
  const auto ids = ids_of(hits);
  REQUIRE_FALSE(ids.empty());
  CHECK(ids.front() == bio);
  CHECK(std::find(ids.begin(), ids.end(), base) == ids.end());  // itself
  CHECK(std::find(ids.begin(), ids.end(), ml2) == ids.end());   // same domain
  CHECK(std::find(ids.begin(), ids.end(), ops) == ids.end());   // retired
  for (size_t i = 1; i < hits.size(); ++i) CHECK(hits[i - 1].score >= hits[i].score);
  CHECK(hits.front().score > 0.5);
  CHECK(hits.front().pattern["domain"] == "bio");
  // The unrelated signature scores far lower, and min_score cuts it off.
  const auto chem_hit = std::find(ids.begin(), ids.end(), chem);
  if (chem_hit != ids.end()) CHECK(hits[chem_hit - ids.begin()].score < 0.3);
  CHECK(ids_of(m.similar(base, 10, 0.5)) == std::vector<std::string>{bio});
  CHECK(ids_of(m.similar(base, 1)) == std::vector<std::string>{bio});

  // From the other side: the ml patterns are bio's transfers.
  const auto from_bio = ids_of(m.similar(bio, 10, 0.5));
  CHECK(std::set<std::string>(from_bio.begin(), from_bio.end()) ==
        std::set<std::string>{base, ml2});
  // A retired pattern may still ask; its own identical twin in ml comes first.
  const auto from_ops = m.similar(ops);
  REQUIRE_FALSE(from_ops.empty());
  CHECK(from_ops.front().pattern["pattern_id"] == base);
  CHECK(from_ops.front().score == doctest::Approx(1.0).epsilon(1e-5));

  // A pattern observed after the index was built is found too.
  observe(f, "chem", "reduce learning rate when validation loss plateaus again", true, 1);
  m.catch_up(f);
  const auto later = ids_of(m.similar(base, 10, 0.5));
  CHECK(std::find(later.begin(), later.end(),
                  pid("chem", "reduce learning rate when validation loss plateaus again")) !=
        later.end());

  auto unknown = projections::similar_patterns(*m.projection, m.store(), "0123456789abcdef", 10);
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error().code == core::errc::not_found);
  auto bad = projections::similar_patterns(*m.projection, m.store(), base, 0);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().code == core::errc::invalid_argument);
  auto nan = projections::similar_patterns(*m.projection, m.store(), base, 10,
                                           std::numeric_limits<double>::quiet_NaN());
  REQUIRE_FALSE(nan);
  CHECK(nan.error().code == core::errc::invalid_argument);
}

TEST_CASE("patterns: a restart rebuilds the index and keeps every answer") {
  test::BusFixture f;
  const std::vector<std::pair<std::string, std::string>> patterns = {
      {"ml", "cache embeddings between epochs"},
      {"ml", "shuffle the data every epoch"},
      {"bio", "cache embeddings between assay runs"},
      {"chem", "shuffle the samples every run"},
      {"ops", "cache embeddings between deploys"}};
  int n = 0;
  for (const auto& [domain, sig] : patterns) {
    for (int i = 0; i <= n; ++i) observe(f, domain, sig, i % 2 == 0, i);
    ++n;
  }
  retire(f, pid("ops", "cache embeddings between deploys"), "done");
  const std::string probe = pid("ml", "cache embeddings between epochs");

  std::vector<json> records;
  std::vector<std::string> ranked;
  std::vector<std::pair<std::string, double>> similar;
  {
    Model m(f);
    for (const auto& [domain, sig] : patterns) records.push_back(m.get(pid(domain, sig)));
    ranked = m.recommend("ml");
    for (const auto& s : m.similar(probe)) {
      similar.emplace_back(s.pattern["pattern_id"].get<std::string>(), s.score);
    }
    CHECK(m.projection->indexed() == 4);
    REQUIRE_FALSE(similar.empty());
  }

  Model again(f);  // a new instance: its index comes from the store alone
  CHECK(again.projection->indexed() == 4);
  size_t i = 0;
  for (const auto& [domain, sig] : patterns) CHECK(again.get(pid(domain, sig)) == records[i++]);
  CHECK(again.recommend("ml") == ranked);
  const auto now = again.similar(probe);
  REQUIRE(now.size() == similar.size());
  for (size_t k = 0; k < now.size(); ++k) {
    CHECK(now[k].pattern["pattern_id"] == similar[k].first);
    CHECK(now[k].score == doctest::Approx(similar[k].second));
  }
  // And it keeps following the log.
  observe(f, "bio", "cache embeddings between assay runs", true, 1);
  again.catch_up(f);
  CHECK(again.get(pid("bio", "cache embeddings between assay runs"))["observations"] == 4);
}

TEST_CASE("patterns: a store built with another embedder is refused") {
  test::BusFixture f;
  observe(f, "ml", "warm up the learning rate", true, 1);
  { Model m(f); }
  auto other = std::make_shared<PatternsProjection>(hashing(64));
  auto w = projections::Worker::start(*f.log, *f.models, other);
  REQUIRE(w);
  CHECK_FALSE((*w)->wait_for(f.log->head().position, std::chrono::seconds(5)));
  const auto stats = (*w)->stats();
  CHECK(stats.failed);
  CHECK(stats.failure.find("embedder") != std::string::npos);
  CHECK(stats.failure.find("new version") != std::string::npos);
}

TEST_CASE("patterns: many observations of one pattern in one batch are counted exactly") {
  test::BusFixture f;
  constexpr int kObservations = 150;
  const std::string sig = "retry with exponential backoff";
  const std::string id = pid("ops", sig);
  int successes = 0;
  double rewards = 0;
  for (int i = 0; i < kObservations; ++i) {
    const bool ok = i % 3 != 0;
    successes += ok ? 1 : 0;
    rewards += i * 0.25;
    observe(f, "ops", sig, ok, i * 0.25);
    if (i % 25 == 0) observe(f, "ml", "other " + std::to_string(i), true, 1);
  }
  retire(f, pid("ml", "other 25"), "noise");
  const auto events = f.all_events();

  // One apply() over every event: one batch, as a catch-up would.
  auto projection = std::make_shared<PatternsProjection>(hashing());
  auto store = f.models->store("patterns-one-batch");
  REQUIRE(store);
  REQUIRE(projection->open(**store, f.dir.path()));
  auto batch = (*store)->batch();
  REQUIRE(projection->apply(events, batch));
  REQUIRE((*store)->commit(batch, events.back().position()));
  REQUIRE(projection->committed(**store, events.back().position()));

  auto p = projections::get_pattern(**store, id);
  REQUIRE(p);
  CHECK((*p)["observations"] == kObservations);
  CHECK((*p)["successes"] == successes);
  CHECK((*p)["failures"] == kObservations - successes);
  CHECK((*p)["reward_sum"].get<double>() == doctest::Approx(rewards));
  CHECK((*p)["wilson_lower"].get<double>() ==
        doctest::Approx(projections::wilson_lower_bound(successes, kObservations)));
  CHECK(projection->indexed() == 6);  // 7 patterns, one retired
  auto ranked = projections::recommend_patterns(**store, "ops", 10);
  REQUIRE(ranked);
  CHECK(ranked->size() == 1);  // one rank key: the stale ones were deleted

  // refresh() re-reads from the store the patterns that events name.
  auto refreshed = std::make_shared<PatternsProjection>(hashing());
  REQUIRE(refreshed->refresh(events, **store));
  CHECK(refreshed->indexed() == 6);
  auto transfer = projections::similar_patterns(*refreshed, **store, pid("ml", "other 0"), 10);
  REQUIRE(transfer);
  REQUIRE(transfer->size() == 1);  // the one live pattern of another domain
  CHECK((*transfer)[0].pattern["pattern_id"] == id);

  // The same log in small batches builds the same store, byte for byte.
  projections::WorkerOptions small;
  small.max_batch_events = 7;
  Model m(f, small);
  CHECK(m.worker->stats().batches > 20);
  CHECK(contents(m.store()) == contents(**store));
}
