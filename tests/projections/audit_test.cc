#include "projections/audit.h"

#include <doctest/doctest.h>

#include "core/clock.h"
#include "tests/support/log_fixture.h"

using namespace engram;
using namespace engram::core;
using engram::projections::AuditProjection;
using engram::test::event;
using engram::test::open_or_die;
using engram::test::TempDir;

namespace {

const Uuid kCorrA = Uuid::parse("0190a1b2-0000-7000-8000-00000000000a").value();
const Uuid kCorrB = Uuid::parse("0190a1b2-0000-7000-8000-00000000000b").value();

// Appends one event with a context; returns its id.
Uuid append(Log& log, const std::string& actor, const Uuid& correlation, const Uuid& causation) {
  EventData e = event("E");
  AppendContext ctx;
  ctx.command_id = Uuid::v7_now();
  ctx.correlation_id = correlation;
  ctx.causation_id = causation;
  ctx.actor = actor;
  REQUIRE(log.append("s", ExpectedVersion::any(), std::vector<EventData>{e}, ctx));
  return e.id;
}

// Applies events 1..upto to the store, as the worker would.
void index_up_to(Log& log, ModelStore& store, uint64_t upto) {
  AuditProjection p;
  auto events = log.read_all(store.checkpoint().next(), upto - store.checkpoint().value());
  REQUIRE(events);
  auto batch = store.batch();
  REQUIRE(p.apply(*events, batch));
  REQUIRE(store.commit(batch, Position(upto)));
}

std::vector<uint64_t> values(const projections::AuditHits& h) {
  std::vector<uint64_t> out;
  for (auto p : h.positions) out.push_back(p.value());
  return out;
}

}  // namespace

TEST_CASE("audit index: correlation, causation and actor answers join the index and the tail") {
  TempDir dir;
  auto clock = std::make_shared<ManualClock>(1'000'000'000);
  LogOptions options;
  options.clock = clock;
  auto log = open_or_die(dir.path(), options);
  // 1..6: alternating correlations and actors, one second apart; 4 and 6 caused by 1.
  const Uuid first = append(*log, "alice", kCorrA, Uuid{});
  for (int i = 2; i <= 6; ++i) {
    clock->advance_ns(1'000'000'000);
    append(*log, i % 2 == 0 ? "bob" : "alice", i % 2 == 0 ? kCorrB : kCorrA,
           i % 2 == 0 && i != 2 ? first : Uuid{});
  }
  auto models = test::open_models_or_die(dir.path());
  ModelStore& store = *models->store("audit@v1").value();
  const Position head = log->head().position;

  for (uint64_t indexed : {0, 3, 6}) {
    CAPTURE(indexed);
    if (indexed > store.checkpoint().value()) index_up_to(*log, store, indexed);
    for (const ModelStore* s :
         {static_cast<const ModelStore*>(&store), static_cast<const ModelStore*>(nullptr)}) {
      auto a = projections::events_of_correlation(s, *log, head, kCorrA, 100);
      REQUIRE(a);
      CHECK(values(*a) == std::vector<uint64_t>{1, 3, 5});
      CHECK(a->tail_scanned == (s ? 6 - indexed : 6));
      auto caused = projections::events_caused_by(s, *log, head, first, 100);
      REQUIRE(caused);
      CHECK(values(*caused) == std::vector<uint64_t>{4, 6});
      auto bob = projections::events_of_actor(s, *log, head, "bob", INT64_MIN, INT64_MAX,
                                              Position(0), 100);
      REQUIRE(bob);
      CHECK(values(*bob) == std::vector<uint64_t>{2, 4, 6});
      // Time bounds (event i was recorded at i seconds) and a cursor.
      auto window = projections::events_of_actor(s, *log, head, "alice", 2'000'000'000,
                                                 5'000'000'000, Position(0), 100);
      REQUIRE(window);
      CHECK(values(*window) == std::vector<uint64_t>{3, 5});
      auto page = projections::events_of_actor(s, *log, head, "alice", INT64_MIN, INT64_MAX,
                                               Position(0), 2);
      REQUIRE(page);
      CHECK(values(*page) == std::vector<uint64_t>{1, 3});
      CHECK(page->truncated);
      auto next = projections::events_of_actor(s, *log, head, "alice", INT64_MIN, INT64_MAX,
                                               Position(3), 2);
      REQUIRE(next);
      CHECK(values(*next) == std::vector<uint64_t>{5});
      CHECK_FALSE(next->truncated);
      // An actor whose name is a prefix of another's sees only its own events.
      auto al =
          projections::events_of_actor(s, *log, head, "al", INT64_MIN, INT64_MAX, Position(0), 100);
      REQUIRE(al);
      CHECK(al->positions.empty());
    }
  }
  // A head below the index's checkpoint (an older view) cuts the answers there.
  auto older = projections::events_of_correlation(&store, *log, Position(3), kCorrA, 100);
  REQUIRE(older);
  CHECK(values(*older) == std::vector<uint64_t>{1, 3});
}
