// The entity index: the latest event of one entity of a stream, found with
// one seek, and rebuilt from the events by a domain's extractor.

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "core/log.h"
#include "tests/support/log_fixture.h"

using namespace engram;
using namespace engram::core;
using engram::test::event;
using engram::test::open_or_die;
using engram::test::TempDir;

namespace {

EventData about(std::string type, std::string entity) {
  EventData e = event(std::move(type));
  e.entity = std::move(entity);
  return e;
}

Position append_about(Log& log, std::string_view stream, std::string type, std::string entity) {
  const std::vector<EventData> events{about(std::move(type), std::move(entity))};
  auto r = log.append(stream, ExpectedVersion::any(), events);
  REQUIRE(r.has_value());
  return r->first;
}

std::optional<Position> latest(const Log& log, std::string_view stream, std::string_view entity) {
  auto r = log.latest_entity_event(stream, entity);
  REQUIRE(r.has_value());
  return *r;
}

}  // namespace

TEST_CASE("entity index: the latest event of each entity, per stream") {
  TempDir dir;
  auto log = open_or_die(dir.path());
  CHECK_FALSE(latest(*log, "memory-a", "m1").has_value());

  const Position m1 = append_about(*log, "memory-a", "Stored", "m1");
  const Position m2 = append_about(*log, "memory-a", "Stored", "m2");
  (void)append_about(*log, "memory-a", "Noted", "");  // names no entity
  const Position other = append_about(*log, "memory-b", "Stored", "m1");
  CHECK(latest(*log, "memory-a", "m1") == m1);
  CHECK(latest(*log, "memory-a", "m2") == m2);
  CHECK(latest(*log, "memory-b", "m1") == other);
  // A prefix of an entity's name is another entity.
  CHECK_FALSE(latest(*log, "memory-a", "m").has_value());
  CHECK_FALSE(latest(*log, "memory", "a").has_value());

  const Position again = append_about(*log, "memory-a", "Reinforced", "m1");
  CHECK(latest(*log, "memory-a", "m1") == again);
  CHECK(latest(*log, "memory-a", "m2") == m2);

  // It survives a reopen.
  log.reset();
  log = open_or_die(dir.path());
  CHECK(latest(*log, "memory-a", "m1") == again);
}

TEST_CASE("entity index: bad entities change nothing, bad lookups are refused") {
  TempDir dir;
  auto log = open_or_die(dir.path());
  const std::vector<EventData> bad{about("Stored", std::string("a\0b", 3))};
  auto r = log->append("memory-a", ExpectedVersion::any(), bad);
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == errc::invalid_argument);
  CHECK(r.error().message.find("events[0].entity") != std::string::npos);
  const std::vector<EventData> long_one{about("Stored", std::string(257, 'x'))};
  CHECK_FALSE(log->append("memory-a", ExpectedVersion::any(), long_one).has_value());
  CHECK(log->head().position == Position(0));

  CHECK(log->latest_entity_event("memory-a", "").error().code == errc::invalid_argument);
  CHECK(log->latest_entity_event("", "m1").error().code == errc::invalid_argument);
}

TEST_CASE("entity index: a rebuild derives it from the events and records its name") {
  TempDir dir;
  auto log = open_or_die(dir.path());
  CHECK(log->entity_index_name().value().empty());
  // Appended without entities, as a log written before the index existed.
  for (int i = 0; i < 5; ++i) {
    const std::vector<EventData> events{event("Stored", "{}")};
    REQUIRE(log->append(i % 2 == 0 ? "memory-a" : "memory-b", ExpectedVersion::any(), events));
  }
  CHECK_FALSE(latest(*log, "memory-a", "x").has_value());

  // The extractor: every event of memory-a is about "x", memory-b's about none.
  auto extract = [](const RecordedEvent& e) {
    return e.stream() == "memory-a" ? std::string("x") : std::string();
  };
  REQUIRE(log->rebuild_entity_index("test/v1", extract));
  CHECK(log->entity_index_name().value() == "test/v1");
  CHECK(latest(*log, "memory-a", "x") == Position(5));
  CHECK_FALSE(latest(*log, "memory-b", "x").has_value());

  // A rebuild clears what an older extractor named.
  auto other = [](const RecordedEvent& e) {
    return e.stream() == "memory-b" ? std::string("y") : std::string();
  };
  REQUIRE(log->rebuild_entity_index("test/v2", other));
  CHECK_FALSE(latest(*log, "memory-a", "x").has_value());
  CHECK(latest(*log, "memory-b", "y") == Position(4));

  CHECK(log->rebuild_entity_index("", other).error().code == errc::invalid_argument);
  log.reset();
  LogOptions ro;
  ro.read_only = true;
  log = open_or_die(dir.path(), ro);
  CHECK(log->entity_index_name().value() == "test/v2");
  CHECK(log->rebuild_entity_index("test/v3", other).error().code == errc::read_only);
}
