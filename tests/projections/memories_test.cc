#include "projections/memories.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include "adapters/embed/hashing_embedder.h"
#include "projections/worker.h"
#include "tests/commands/harness.h"
#include "tests/support/gate.h"

using namespace engram;
using nlohmann::json;
using projections::MemoriesOptions;
using projections::MemoriesProjection;
using projections::MemoryQuery;

namespace {

std::shared_ptr<const projections::TextEmbedder> embedder() {
  static auto e = std::make_shared<embed::HashingEmbedder>();
  return e;
}

struct Model {
  std::shared_ptr<MemoriesProjection> projection;
  std::unique_ptr<projections::Worker> worker;
};

Model start(test::BusFixture& f, MemoriesOptions options = {}, std::string store = {}) {
  Model m;
  m.projection = std::make_shared<MemoriesProjection>(embedder(), *f.keys, options);
  projections::WorkerOptions wo;
  wo.store = std::move(store);
  auto w = projections::Worker::start(*f.log, *f.models, m.projection, wo);
  REQUIRE(w);
  m.worker = std::move(*w);
  REQUIRE(m.worker->wait_for(f.log->head().position, std::chrono::seconds(10)));
  REQUIRE_FALSE(m.worker->stats().failed);
  return m;
}

std::vector<projections::MemoryHit> search(const Model& m, MemoryQuery q) {
  if (q.now_ms == 0) q.now_ms = 4'000'000'000'000;
  auto r = projections::search_memories(*m.projection, m.worker->store(), q);
  REQUIRE_MESSAGE(r.has_value(), (r ? "" : r.error().to_string()));
  return std::move(*r);
}

MemoryQuery text(std::string owner, std::string t, size_t k = 10) {
  MemoryQuery q;
  q.owner = std::move(owner);
  q.text = std::move(t);
  q.k = k;
  return q;
}

std::vector<std::string> ids(const std::vector<projections::MemoryHit>& hits) {
  std::vector<std::string> out;
  for (const auto& h : hits) out.push_back(h.memory_id);
  return out;
}

// Ids with scores rounded, to compare two builds' answers.
std::vector<std::pair<std::string, long>> answer(const Model& m, const MemoryQuery& q) {
  std::vector<std::pair<std::string, long>> out;
  for (const auto& h : search(m, q)) out.emplace_back(h.memory_id, std::lround(h.score * 1e6));
  return out;
}

std::vector<float> one_hot(size_t at) {
  std::vector<float> v(embed::HashingEmbedder::kDefaultDimensions, 0.0f);
  v[at] = 1.0f;
  return v;
}

void store(test::BusFixture& f, const std::string& owner, const std::string& id,
           const std::string& content, double importance = 0.5, json tags = json::array()) {
  f.ok("StoreMemory", {{"owner", owner},
                       {"memory_id", id},
                       {"content", content},
                       {"importance", importance},
                       {"tags", tags}});
}

}  // namespace

TEST_CASE("memories: kNN per owner, filters, blended ranking, reinforce and forget") {
  test::BusFixture f;
  store(f, "alice", "m1", "likes green tea in the morning", 0.5, {"preference"});
  store(f, "alice", "m2", "allergic to peanuts and tree nuts", 0.9, {"health"});
  store(f, "alice", "m3", "green tea gives her headaches at night", 0.2, {"health"});
  store(f, "bob", "b1", "likes green tea in the morning", 1.0);
  std::vector<float> seven = one_hot(7);
  f.ok("StoreMemory", {{"owner", "alice"},
                       {"memory_id", "m4"},
                       {"content", "a memory with its own vector"},
                       {"importance", 0.5},
                       {"embedding", seven},
                       {"embedder", "test/1"}});

  Model m = start(f);
  auto hits = search(m, text("alice", "green tea morning"));
  REQUIRE(hits.size() == 4);
  CHECK(hits[0].memory_id == "m1");
  CHECK(hits[0].content == "likes green tea in the morning");
  CHECK(hits[0].similarity > hits[1].similarity);
  for (const auto& h : hits) {
    CHECK(h.score == doctest::Approx(0.7 * h.similarity + 0.2 * h.importance + 0.1 * h.recency));
  }
  // Only the owner's memories, never another's.
  CHECK(ids(search(m, text("bob", "green tea"))) == std::vector<std::string>{"b1"});
  CHECK(search(m, text("carol", "green tea")).empty());

  // Filters: every tag must be on a hit; importance at least the minimum.
  MemoryQuery health = text("alice", "green tea");
  health.tags = {"health"};
  CHECK(ids(search(m, health)) == std::vector<std::string>{"m3", "m2"});
  health.min_importance = 0.5;
  CHECK(ids(search(m, health)) == std::vector<std::string>{"m2"});

  // An event's own embedding of the index's dimensions is the vector used.
  MemoryQuery by_vector;
  by_vector.owner = "alice";
  by_vector.vector = seven;
  by_vector.k = 1;
  auto v = search(m, by_vector);
  REQUIRE(v.size() == 1);
  CHECK(v[0].memory_id == "m4");
  CHECK(v[0].similarity == doctest::Approx(1.0));

  // Reinforcing raises importance, and with it the rank among equals.
  f.ok("ReinforceMemory", {{"owner", "alice"}, {"memory_id", "m3"}, {"amount", 0.7}});
  f.ok("ForgetMemory", {{"owner", "alice"}, {"memory_id", "m1"}});
  REQUIRE(m.worker->wait_for(f.log->head().position, std::chrono::seconds(5)));
  hits = search(m, text("alice", "green tea morning"));
  CHECK(ids(hits) == std::vector<std::string>{"m3", "m2", "m4"});
  CHECK(hits[0].importance == doctest::Approx(0.9));

  // A forgotten subject is gone from the model; bob is untouched.
  f.ok("ForgetSubject", {{"owner", "alice"}, {"reason", "erasure"}}, test::admin());
  REQUIRE(m.worker->wait_for(f.log->head().position, std::chrono::seconds(5)));
  CHECK(search(m, text("alice", "green tea")).empty());
  CHECK(m.worker->store().scan("vec/alice/", "", 10)->empty());
  CHECK(m.worker->store().scan("txt/alice/", "", 10)->empty());
  CHECK(ids(search(m, text("bob", "green tea"))) == std::vector<std::string>{"b1"});
  // A new memory after the forget lives under the owner's new key.
  store(f, "alice", "m9", "starts over with coffee");
  REQUIRE(m.worker->wait_for(f.log->head().position, std::chrono::seconds(5)));
  CHECK(ids(search(m, text("alice", "coffee"))) == std::vector<std::string>{"m9"});

  // A rebuild from the log (the old memories' key is gone) answers the same.
  Model again = start(f, {}, "memories-again@v1");
  CHECK(answer(again, text("alice", "coffee")) == answer(m, text("alice", "coffee")));
  CHECK(answer(again, text("bob", "green tea")) == answer(m, text("bob", "green tea")));
}

TEST_CASE("memories: bad queries are refused") {
  test::BusFixture f;
  store(f, "alice", "m1", "likes green tea");
  Model m = start(f);
  auto refused = [&](MemoryQuery q) {
    auto r = projections::search_memories(*m.projection, m.worker->store(), q);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == core::errc::invalid_argument);
  };
  refused(text("alice", "tea", 0));
  refused(text("alice", "tea", projections::kMemoryMaxK + 1));
  refused(text("alice", ""));
  MemoryQuery both = text("alice", "tea");
  both.vector = one_hot(1);
  refused(both);
  MemoryQuery neither;
  neither.owner = "alice";
  refused(neither);
  MemoryQuery short_vector;
  short_vector.owner = "alice";
  short_vector.vector = std::vector<float>(10, 0.5f);
  refused(short_vector);
  MemoryQuery zero;
  zero.owner = "alice";
  zero.vector = std::vector<float>(embed::HashingEmbedder::kDefaultDimensions, 0.0f);
  refused(zero);
}

TEST_CASE("memories: the snapshot loads and only the tail is re-read, a bad one is rebuilt") {
  test::BusFixture f;
  for (int i = 0; i < 30; ++i) {
    store(f, i % 2 ? "alice" : "bob", "m" + std::to_string(i),
          "memory number " + std::to_string(i) + " about topic " + std::to_string(i % 5),
          0.1 + 0.02 * i);
  }
  const std::vector<MemoryQuery> queries = {text("alice", "topic 3", 5), text("bob", "memory 4"),
                                            text("alice", "number 17 about")};
  const auto dir = f.models->files_dir("memories@v1");
  const auto snapshot = dir / "vectors.snapshot";
  const auto older = dir.parent_path() / "older.snapshot";
  core::Position snapshot_at;
  {
    Model m = start(f);
    snapshot_at = m.worker->position();
  }  // stop: close() writes the snapshot at the checkpoint
  REQUIRE(std::filesystem::exists(snapshot));
  std::filesystem::copy_file(snapshot, older);

  // The tail: written after that snapshot.
  store(f, "alice", "late1", "a late memory about topic 3", 0.99);
  f.ok("ForgetMemory", {{"owner", "bob"}, {"memory_id", "m4"}});
  f.ok("ReinforceMemory", {{"owner", "alice"}, {"memory_id", "m3"}, {"amount", 0.5}});
  std::vector<std::vector<std::pair<std::string, long>>> before;
  {
    Model m = start(f);
    for (const auto& q : queries) before.push_back(answer(m, q));
  }
  // As after a crash that lost the newer snapshot: the store is at the head
  // while the snapshot on disk is the older one.
  std::filesystem::copy_file(older, snapshot, std::filesystem::copy_options::overwrite_existing);
  {
    Model m = start(f);
    const auto report = m.projection->report();
    CHECK(report.snapshot_loaded);
    CHECK(report.snapshot_position == snapshot_at);
    CHECK(report.tail_events == 3);
    CHECK_FALSE(report.rebuilt_from_store);
    std::vector<std::vector<std::pair<std::string, long>>> after;
    for (const auto& q : queries) after.push_back(answer(m, q));
    CHECK(after == before);
    CHECK(ids(search(m, text("alice", "late memory", 1))) == std::vector<std::string>{"late1"});
  }

  // A damaged snapshot is not trusted: the index is rebuilt from the store.
  {
    std::fstream file(snapshot, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(40);
    file.put('\x7f');
  }
  Model m = start(f);
  const auto report = m.projection->report();
  CHECK_FALSE(report.snapshot_loaded);
  CHECK(report.rebuilt_from_store);
  CHECK(report.snapshot_problem.find("checksum") != std::string::npos);
  std::vector<std::vector<std::pair<std::string, long>>> rebuilt;
  for (const auto& q : queries) rebuilt.push_back(answer(m, q));
  CHECK(rebuilt == before);
}

TEST_CASE("memories: past the flat threshold the owner's index moves to IVF and still answers") {
  test::BusFixture f;
  for (int i = 0; i < 240; ++i) {
    store(f, "alice", "m" + std::to_string(i),
          "note " + std::to_string(i) + " on subject " + std::to_string(i % 40));
  }
  MemoriesOptions small;
  small.index.ivf_min_vectors = 120;
  small.index.nlist = 8;
  small.index.nprobe = 8;  // every list: exact again, so answers are comparable
  Model ivf = start(f, small);
  Model flat = start(f, {}, "memories-flat@v1");
  CHECK(ivf.projection->report().ivf_indexes == 1);
  CHECK(flat.projection->report().ivf_indexes == 0);
  for (const auto& q : {text("alice", "subject 7"), text("alice", "note 123 on")}) {
    CHECK(answer(ivf, q) == answer(flat, q));
  }
}

TEST_CASE("memories: searches complete while the worker's index write is held, and see it after") {
  test::BusFixture f;
  store(f, "alice", "m1", "likes green tea in the morning");
  test::Gate gate;
  MemoriesOptions options;
  options.index.before_publish = [&](std::string_view work) { gate.hook(work); };
  Model m = start(f, options);

  // The worker is held inside committed(), the add built and not published.
  gate.arm("add");
  store(f, "alice", "m2", "green tea every morning");
  gate.wait_until_holding();
  const auto during = test::run_while_held(gate, [&] { return search(m, text("alice", "green tea")); });
  CHECK(ids(during) == std::vector<std::string>{"m1"});
  gate.release();
  REQUIRE(m.worker->wait_for(f.log->head().position, std::chrono::seconds(10)));
  CHECK(ids(search(m, text("alice", "green tea morning"))) == std::vector<std::string>{"m2", "m1"});

  // Held before the removal is published: a search meanwhile completes (it
  // may still find m1: the position does not cover the forget yet); once
  // the position covers it, m1 is never returned.
  gate.arm("remove");
  f.ok("ForgetMemory", {{"owner", "alice"}, {"memory_id", "m1"}});
  gate.wait_until_holding();
  const auto forgetting = test::run_while_held(gate, [&] {
    return m.projection->nearest("alice", m.projection->embedder().embed("green tea"), 10, {});
  });
  REQUIRE(forgetting);
  CHECK(forgetting->size() == 2);
  gate.release();
  REQUIRE(m.worker->wait_for(f.log->head().position, std::chrono::seconds(10)));
  const auto after = m.projection->nearest("alice", m.projection->embedder().embed("green tea"), 10, {});
  REQUIRE(after);
  REQUIRE(after->size() == 1);
  CHECK(after->front().meta.memory_id == "m2");
  CHECK(m.projection->report().vectors == 1);
}
