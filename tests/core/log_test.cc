#include "core/log.h"

#include <doctest/doctest.h>
#include <rocksdb/db.h>

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "core/keys.h"
#include "tests/support/log_fixture.h"
#include "tests/support/raw_db.h"

using namespace engram;
using namespace engram::core;
using engram::test::event;
using engram::test::open_or_die;
using engram::test::TempDir;

namespace {

result<AppendResult> append1(Log& log, std::string_view stream, ExpectedVersion expected,
                             std::string type = "Happened") {
  const std::vector<EventData> events{event(std::move(type))};
  return log.append(stream, expected, events);
}

}  // namespace

TEST_CASE("a new log is empty, positions start at 1 and versions at 1") {
  TempDir dir;
  auto log = open_or_die(dir.path());
  CHECK(log->head().position == Position(0));
  CHECK(log->stream_version("s").value() == StreamVersion(0));

  const std::vector<EventData> two{event("A"), event("B")};
  auto r = log->append("s", ExpectedVersion::any(), two);
  REQUIRE(r);
  CHECK(r->first == Position(1));
  CHECK(r->last == Position(2));
  CHECK(r->version == StreamVersion(2));
  CHECK_FALSE(r->deduplicated);
  CHECK(log->head().position == Position(2));
  CHECK(log->stream_version("s").value() == StreamVersion(2));

  auto r2 = append1(*log, "other", ExpectedVersion::any());
  REQUIRE(r2);
  CHECK(r2->first == Position(3));
  CHECK(r2->version == StreamVersion(1));
}

TEST_CASE("expected version: any, no-stream, stream-exists, exact") {
  TempDir dir;
  auto log = open_or_die(dir.path());

  SUBCASE("no-stream succeeds on a new stream and fails after") {
    REQUIRE(append1(*log, "s", ExpectedVersion::no_stream()));
    auto r = append1(*log, "s", ExpectedVersion::no_stream());
    REQUIRE_FALSE(r);
    CHECK(r.error().code == errc::wrong_expected_version);
    CHECK(r.error().actual_version == 1u);
  }
  SUBCASE("stream-exists fails on a new stream and succeeds after") {
    auto r = append1(*log, "s", ExpectedVersion::stream_exists());
    REQUIRE_FALSE(r);
    CHECK(r.error().code == errc::wrong_expected_version);
    CHECK(r.error().actual_version == 0u);
    REQUIRE(append1(*log, "s", ExpectedVersion::any()));
    CHECK(append1(*log, "s", ExpectedVersion::stream_exists()));
  }
  SUBCASE("exact N succeeds only at N") {
    CHECK(append1(*log, "s", ExpectedVersion::exact(StreamVersion(0))));
    CHECK(append1(*log, "s", ExpectedVersion::exact(StreamVersion(1))));
    auto stale = append1(*log, "s", ExpectedVersion::exact(StreamVersion(1)));
    REQUIRE_FALSE(stale);
    CHECK(stale.error().code == errc::wrong_expected_version);
    CHECK(stale.error().actual_version == 2u);
    auto ahead = append1(*log, "s", ExpectedVersion::exact(StreamVersion(5)));
    REQUIRE_FALSE(ahead);
    CHECK(ahead.error().actual_version == 2u);
  }
  SUBCASE("any always succeeds") {
    for (int i = 0; i < 3; ++i) CHECK(append1(*log, "s", ExpectedVersion::any()));
    CHECK(log->stream_version("s").value() == StreamVersion(3));
  }
  SUBCASE("a rejected append writes nothing") {
    REQUIRE(append1(*log, "s", ExpectedVersion::any()));
    const Head before = log->head();
    REQUIRE_FALSE(append1(*log, "s", ExpectedVersion::no_stream()));
    CHECK(log->head().position == before.position);
    CHECK(log->head().hash == before.hash);
  }
}

TEST_CASE("idempotency: same ids same result, other content conflicts, survives reopen") {
  TempDir dir;
  const Uuid a = Uuid::v7_now(), b = Uuid::v7_now();
  const std::vector<EventData> batch{event("A", "pa", a), event("B", "pb", b)};
  AppendResult original;
  {
    auto log = open_or_die(dir.path());
    REQUIRE(append1(*log, "s", ExpectedVersion::any()));
    auto r = log->append("s", ExpectedVersion::exact(StreamVersion(1)), batch);
    REQUIRE(r);
    original = *r;
    REQUIRE(append1(*log, "s", ExpectedVersion::any()));  // the stream moves on

    auto again = log->append("s", ExpectedVersion::exact(StreamVersion(1)), batch);
    REQUIRE(again);
    CHECK(again->deduplicated);
    CHECK(again->first == original.first);
    CHECK(again->last == original.last);
    CHECK(again->version == original.version);
    CHECK(log->head().position == Position(4));
  }
  auto log = open_or_die(dir.path());
  SUBCASE("across a reopen") {
    auto again = log->append("s", ExpectedVersion::any(), batch);
    REQUIRE(again);
    CHECK(again->deduplicated);
    CHECK(again->first == original.first);
    CHECK(log->head().position == Position(4));
  }
  SUBCASE("same id, other payload") {
    const std::vector<EventData> changed{event("A", "pa", a), event("B", "CHANGED", b)};
    auto r = log->append("s", ExpectedVersion::any(), changed);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == errc::duplicate_id_conflict);
  }
  SUBCASE("same ids, other stream") {
    auto r = log->append("elsewhere", ExpectedVersion::any(), batch);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == errc::duplicate_id_conflict);
  }
  SUBCASE("only some of the ids") {
    const std::vector<EventData> partial{event("A", "pa", a), event("C")};
    auto r = log->append("s", ExpectedVersion::any(), partial);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == errc::duplicate_id_conflict);
  }
  SUBCASE("a duplicate id inside one append is invalid") {
    const Uuid c = Uuid::v7_now();
    const std::vector<EventData> twice{event("A", "x", c), event("A", "x", c)};
    auto r = log->append("s", ExpectedVersion::any(), twice);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == errc::invalid_argument);
  }
  CHECK(log->head().position == Position(4));
}

TEST_CASE("ids older than the dedupe window are forgotten") {
  TempDir dir;
  LogOptions options;
  options.dedupe_window_events = 3;
  auto log = open_or_die(dir.path(), options);
  const Uuid id = Uuid::v7_now();
  const std::vector<EventData> one{event("A", "x", id)};
  REQUIRE(log->append("s", ExpectedVersion::any(), one));
  auto within = log->append("s", ExpectedVersion::any(), one);
  REQUIRE(within);
  CHECK(within->deduplicated);
  for (int i = 0; i < 3; ++i) REQUIRE(append1(*log, "t", ExpectedVersion::any()));
  auto outside = log->append("s", ExpectedVersion::any(), one);
  REQUIRE(outside);
  CHECK_FALSE(outside->deduplicated);
  CHECK(outside->first == Position(5));
}

TEST_CASE("read_stream forward and backward, read_all, bounds") {
  TempDir dir;
  auto log = open_or_die(dir.path());
  for (int i = 1; i <= 10; ++i) {
    REQUIRE(append1(*log, "a", ExpectedVersion::any(), "A" + std::to_string(i)));
    REQUIRE(append1(*log, "b", ExpectedVersion::any(), "B" + std::to_string(i)));
  }

  auto fwd = log->read_stream("a", StreamVersion(3), 4, Direction::forward);
  REQUIRE(fwd);
  REQUIRE(fwd->size() == 4);
  for (size_t i = 0; i < 4; ++i) {
    CHECK((*fwd)[i].version() == StreamVersion(3 + i));
    CHECK((*fwd)[i].type() == "A" + std::to_string(3 + i));
    CHECK((*fwd)[i].stream() == "a");
  }

  auto back = log->read_stream("b", StreamVersion(UINT64_MAX), 3, Direction::backward);
  REQUIRE(back);
  REQUIRE(back->size() == 3);
  CHECK((*back)[0].version() == StreamVersion(10));
  CHECK((*back)[2].version() == StreamVersion(8));
  CHECK((*back)[0].position() == Position(20));

  auto back_from = log->read_stream("b", StreamVersion(2), 10, Direction::backward);
  REQUIRE(back_from);
  REQUIRE(back_from->size() == 2);
  CHECK((*back_from)[1].version() == StreamVersion(1));

  auto past_end = log->read_stream("a", StreamVersion(11), 10, Direction::forward);
  REQUIRE(past_end);
  CHECK(past_end->empty());
  auto missing = log->read_stream("nope", StreamVersion(1), 10, Direction::forward);
  REQUIRE(missing);
  CHECK(missing->empty());
  // "a" must not leak into a stream whose name it prefixes.
  REQUIRE(append1(*log, "ab", ExpectedVersion::any()));
  auto a_only = log->read_stream("a", StreamVersion(1), 100, Direction::forward);
  REQUIRE(a_only);
  CHECK(a_only->size() == 10);

  auto all = log->read_all(Position(5), 7);
  REQUIRE(all);
  REQUIRE(all->size() == 7);
  for (size_t i = 0; i < 7; ++i) CHECK((*all)[i].position() == Position(5 + i));
  auto tail = log->read_all(Position(20), 100);
  REQUIRE(tail);
  CHECK(tail->size() == 2);
  auto beyond = log->read_all(Position(1000), 10);
  REQUIRE(beyond);
  CHECK(beyond->empty());
}

TEST_CASE("bad input changes nothing") {
  TempDir dir;
  LogOptions options;
  options.max_events_per_append = 3;
  options.max_event_bytes = 100;
  auto log = open_or_die(dir.path(), options);
  const std::vector<EventData> none;
  CHECK(log->append("s", ExpectedVersion::any(), none).error().code == errc::invalid_argument);
  CHECK(append1(*log, "", ExpectedVersion::any()).error().code == errc::invalid_argument);
  CHECK(append1(*log, std::string("nul\0in", 6), ExpectedVersion::any()).error().code ==
        errc::invalid_argument);
  CHECK(append1(*log, "bad\xff utf8", ExpectedVersion::any()).error().code ==
        errc::invalid_argument);
  CHECK(append1(*log, std::string(300, 's'), ExpectedVersion::any()).error().code ==
        errc::invalid_argument);
  CHECK(append1(*log, "s", ExpectedVersion::any(), "").error().code == errc::invalid_argument);
  const std::vector<EventData> four{event("A"), event("A"), event("A"), event("A")};
  CHECK(log->append("s", ExpectedVersion::any(), four).error().code == errc::invalid_argument);
  const std::vector<EventData> big{event("A", std::string(101, 'x'))};
  CHECK(log->append("s", ExpectedVersion::any(), big).error().code == errc::invalid_argument);
  CHECK(log->head().position == Position(0));
  CHECK(log->read_stream("", StreamVersion(1), 1, Direction::forward).error().code ==
        errc::invalid_argument);
}

TEST_CASE("events carry their context and are hash-chained") {
  TempDir dir;
  auto log = open_or_die(dir.path());
  AppendContext ctx;
  ctx.command_id = Uuid::v7_now();
  ctx.causation_id = Uuid::v7_now();
  ctx.correlation_id = Uuid::v7_now();
  ctx.actor = "agent:alice";
  const std::vector<EventData> events{event("A", "one"), event("B", "two")};
  REQUIRE(log->append("s", ExpectedVersion::any(), events, ctx));
  auto all = log->read_all(Position(1), 10);
  REQUIRE(all);
  REQUIRE(all->size() == 2);
  const RecordedEvent& first = (*all)[0];
  const RecordedEvent& second = (*all)[1];
  CHECK(first.command_id() == ctx.command_id);
  CHECK(first.causation_id() == ctx.causation_id);
  CHECK(first.correlation_id() == ctx.correlation_id);
  CHECK(first.actor() == "agent:alice");
  CHECK(first.id() == events[0].id);
  CHECK(std::string(first.payload().begin(), first.payload().end()) == "one");
  CHECK(first.prev_hash() == Hash256{});
  CHECK(second.prev_hash() == first.hash());
  CHECK(first.compute_hash() == first.hash());
  CHECK(log->head().hash == second.hash());
  CHECK(second.recorded_at_ns() >= first.recorded_at_ns());
}

TEST_CASE("recorded-at comes from the injected clock and never goes backwards") {
  TempDir dir;
  auto clock = std::make_shared<ManualClock>(1'700'000'000'000'000'000);
  LogOptions options;
  options.clock = clock;
  auto log = open_or_die(dir.path(), options);
  REQUIRE(append1(*log, "s", ExpectedVersion::any()));
  clock->advance_ns(-5'000'000'000);  // the wall clock steps back
  REQUIRE(append1(*log, "s", ExpectedVersion::any()));
  clock->set_ns(1'800'000'000'000'000'000);
  REQUIRE(append1(*log, "s", ExpectedVersion::any()));
  auto all = log->read_all(Position(1), 10);
  REQUIRE(all);
  CHECK((*all)[0].recorded_at_ns() == 1'700'000'000'000'000'000);
  CHECK((*all)[1].recorded_at_ns() == 1'700'000'000'000'000'000);
  CHECK((*all)[2].recorded_at_ns() == 1'800'000'000'000'000'000);
}

TEST_CASE("wait_for and subscriptions: catch-up, then live") {
  TempDir dir;
  auto log = open_or_die(dir.path());
  for (int i = 0; i < 5; ++i) REQUIRE(append1(*log, "s", ExpectedVersion::any()));
  CHECK(log->wait_for(Position(5), std::chrono::milliseconds(0)));
  CHECK_FALSE(log->wait_for(Position(6), std::chrono::milliseconds(20)));

  auto sub = log->subscribe(Position(2));
  auto caught_up = sub->next(100, std::chrono::milliseconds(0));
  REQUIRE(caught_up);
  REQUIRE(caught_up->size() == 3);
  CHECK(caught_up->front().position() == Position(3));
  CHECK(sub->position() == Position(5));
  auto nothing = sub->next(100, std::chrono::milliseconds(10));
  REQUIRE(nothing);
  CHECK(nothing->empty());

  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    REQUIRE(append1(*log, "s", ExpectedVersion::any()));
  });
  auto live = sub->next(100, std::chrono::seconds(10));
  writer.join();
  REQUIRE(live);
  REQUIRE(live->size() == 1);
  CHECK(live->front().position() == Position(6));
}

TEST_CASE("a second writer cannot open a locked data dir, but read-only opens can") {
  TempDir dir;
  auto log = open_or_die(dir.path());
  REQUIRE(append1(*log, "s", ExpectedVersion::any()));
  auto second = Log::open(dir.path());
  REQUIRE_FALSE(second);
  CHECK(second.error().code == errc::locked);

  LogOptions ro;
  ro.read_only = true;
  auto reader = Log::open(dir.path(), ro);
  REQUIRE(reader);
  CHECK((*reader)->head().position == Position(1));
  CHECK((*reader)
            ->append("s", ExpectedVersion::any(), std::vector<EventData>{event("A")})
            .error()
            .code == errc::read_only);

  auto missing = Log::open(dir / "nope", ro);
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code == errc::not_found);
}

namespace {

using engram::test::RawDb;

void fill(const std::filesystem::path& dir, int n) {
  auto log = open_or_die(dir);
  for (int i = 0; i < n; ++i) {
    const std::vector<EventData> e{event("E", "payload-" + std::to_string(i))};
    REQUIRE(log->append("s" + std::to_string(i % 3), ExpectedVersion::any(), e));
  }
}

VerifyReport verify_read_only(const std::filesystem::path& dir) {
  LogOptions ro;
  ro.read_only = true;
  auto log = Log::open(dir, ro);
  REQUIRE(log);
  auto report = (*log)->verify(Position(1), Position(UINT64_MAX));
  REQUIRE(report);
  return *report;
}

}  // namespace

TEST_CASE("verify passes on an intact log and names the first altered position") {
  TempDir dir;
  fill(dir.path(), 10);
  {
    const VerifyReport ok = verify_read_only(dir.path());
    CHECK(ok.ok());
    CHECK(ok.events_checked == 10);
  }

  SUBCASE("one payload byte changed") {
    {
      RawDb raw(dir.path());
      std::string value = raw.get(keys::kEventsCf, keys::position_key(Position(6)));
      const size_t at = value.find("payload-5");
      REQUIRE(at != std::string::npos);
      value[at] = 'P';
      raw.put(keys::kEventsCf, keys::position_key(Position(6)), value);
    }
    const VerifyReport r = verify_read_only(dir.path());
    REQUIRE_FALSE(r.ok());
    CHECK(*r.first_bad == Position(6));
    CHECK(r.problem.find("hash mismatch") != std::string::npos);
  }
  SUBCASE("envelope bytes garbled") {
    {
      RawDb raw(dir.path());
      std::string value = raw.get(keys::kEventsCf, keys::position_key(Position(4)));
      value[0] = static_cast<char>(0xFF);
      value[1] = static_cast<char>(0xFF);
      raw.put(keys::kEventsCf, keys::position_key(Position(4)), value);
    }
    const VerifyReport r = verify_read_only(dir.path());
    REQUIRE_FALSE(r.ok());
    CHECK(*r.first_bad == Position(4));
  }
  SUBCASE("an event deleted from the middle") {
    {
      RawDb raw(dir.path());
      raw.del(keys::kEventsCf, keys::position_key(Position(7)));
    }
    const VerifyReport r = verify_read_only(dir.path());
    REQUIRE_FALSE(r.ok());
    CHECK(*r.first_bad == Position(7));
  }
  SUBCASE("the tail dropped") {
    {
      RawDb raw(dir.path());
      for (int p = 8; p <= 10; ++p) raw.del(keys::kEventsCf, keys::position_key(Position(p)));
    }
    const VerifyReport r = verify_read_only(dir.path());
    REQUIRE_FALSE(r.ok());
    CHECK(*r.first_bad == Position(8));
    // And a writable open refuses the inconsistent log.
    auto log = Log::open(dir.path());
    REQUIRE_FALSE(log);
    CHECK(log.error().code == errc::corruption);
  }
}

TEST_CASE("append_async: each callback once with the durable result, bad input fails at once") {
  TempDir dir;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<AppendResult> results;
  int errors = 0;
  constexpr int kAppends = 200;
  {
    auto log = open_or_die(dir.path());
    for (int i = 0; i < kAppends; ++i) {
      const std::vector<EventData> events{event("A", std::to_string(i))};
      auto queued = log->append_async("s" + std::to_string(i % 7), ExpectedVersion::any(), events,
                                      {}, [&, log_ptr = log.get()](result<AppendResult> r) {
                                        std::lock_guard lock(mu);
                                        if (r) {
                                          // Acknowledged means durable and visible.
                                          CHECK(log_ptr->head().position >= r->last);
                                          results.push_back(*r);
                                        } else {
                                          ++errors;
                                        }
                                        cv.notify_all();
                                      });
      REQUIRE(queued);
    }
    bool called = false;
    auto bad = log->append_async("", ExpectedVersion::any(), std::vector<EventData>{event("A")}, {},
                                 [&](result<AppendResult>) { called = true; });
    CHECK(bad.error().code == errc::invalid_argument);
    {
      std::unique_lock lock(mu);
      cv.wait_for(lock, std::chrono::seconds(30),
                  [&] { return results.size() + errors == kAppends; });
    }
    CHECK_FALSE(called);
  }
  CHECK(errors == 0);
  REQUIRE(results.size() == kAppends);
  std::set<uint64_t> positions;
  for (const auto& r : results) positions.insert(r.first.value());
  CHECK(positions.size() == kAppends);
  CHECK(*positions.rbegin() == kAppends);
}

TEST_CASE(
    "append_async: appends still queued when the log closes complete, and callbacks may chain") {
  TempDir dir;
  std::atomic<int> done{0};
  {
    auto log = open_or_die(dir.path());
    Log* raw = log.get();
    std::function<void(result<AppendResult>)> chain = [&](result<AppendResult> r) {
      REQUIRE(r);
      if (++done < 50) {
        REQUIRE(raw->append_async("chained", ExpectedVersion::exact(r->version),
                                  std::vector<EventData>{event("Next")}, {}, chain));
      }
    };
    REQUIRE(log->append_async("chained", ExpectedVersion::no_stream(),
                              std::vector<EventData>{event("First")}, {}, chain));
    while (done.load() < 50) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    for (int i = 0; i < 20; ++i) {
      REQUIRE(log->append_async("tail", ExpectedVersion::any(), std::vector<EventData>{event("T")},
                                {}, [&](result<AppendResult> r) {
                                  CHECK(r);
                                  ++done;
                                }));
    }
  }  // closing drains the queue
  CHECK(done.load() == 70);
  auto log = open_or_die(dir.path());
  CHECK(log->stream_version("chained").value() == StreamVersion(50));
  CHECK(log->stream_version("tail").value() == StreamVersion(20));
}
