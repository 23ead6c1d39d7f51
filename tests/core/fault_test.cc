#include <doctest/doctest.h>

#include <atomic>
#include <optional>
#include <thread>

#include "core/fault_fs.h"
#include "core/log.h"
#include "tests/support/log_fixture.h"

using namespace engram::core;
using engram::test::event;
using engram::test::open_or_die;
using engram::test::TempDir;

TEST_CASE("a failed fsync is sticky: later appends fail and health says why") {
  TempDir dir;
  auto fs = std::make_shared<FaultInjectionFs>();
  LogOptions options;
  options.env = make_env(fs);
  Position acknowledged;
  {
    auto log = open_or_die(dir.path(), options);
    auto ok = log->append("s", ExpectedVersion::any(), std::vector<EventData>{event("A")});
    REQUIRE(ok);
    acknowledged = ok->last;
    CHECK(fs->wal_syncs() > 0);
    CHECK(log->health().writable);

    fs->set_fail_wal_sync(true);
    auto failed = log->append("s", ExpectedVersion::any(), std::vector<EventData>{event("B")});
    REQUIRE_FALSE(failed);
    CHECK(failed.error().code == errc::io_error);
    CHECK_FALSE(log->health().writable);
    CHECK(log->health().reason.find("fsync") != std::string::npos);
    CHECK(log->head().position == acknowledged);

    fs->set_fail_wal_sync(false);  // the disk "recovers", the log does not trust it
    auto later = log->append("s", ExpectedVersion::any(), std::vector<EventData>{event("C")});
    REQUIRE_FALSE(later);
    CHECK(later.error().code == errc::read_only);
    // Reads keep working.
    auto all = log->read_all(Position(1), 10);
    REQUIRE(all);
    CHECK(all->size() == 1);
  }
  // An operator reopens: what was acknowledged is there and the chain verifies.
  auto log = open_or_die(dir.path());
  CHECK(log->head().position >= acknowledged);
  auto report = log->verify(Position(1), Position(UINT64_MAX));
  REQUIRE(report);
  CHECK(report->ok());
  CHECK(log->append("s", ExpectedVersion::any(), std::vector<EventData>{event("D")}));
}

TEST_CASE("a failed WAL write is sticky too") {
  TempDir dir;
  auto fs = std::make_shared<FaultInjectionFs>();
  LogOptions options;
  options.env = make_env(fs);
  auto log = open_or_die(dir.path(), options);
  REQUIRE(log->append("s", ExpectedVersion::any(), std::vector<EventData>{event("A")}));
  fs->set_fail_wal_append(true);
  auto failed = log->append("s", ExpectedVersion::any(), std::vector<EventData>{event("B")});
  REQUIRE_FALSE(failed);
  CHECK(failed.error().code == errc::io_error);
  fs->set_fail_wal_append(false);
  CHECK(log->append("s", ExpectedVersion::any(), std::vector<EventData>{event("C")}).error().code ==
        errc::read_only);
  CHECK_FALSE(log->health().writable);
}

TEST_CASE("a full queue fails fast with overloaded, and nothing acknowledged is lost") {
  TempDir dir;
  auto fs = std::make_shared<FaultInjectionFs>();
  fs->set_wal_sync_delay_ms(50);  // a slow disk keeps the writer busy
  LogOptions options;
  options.env = make_env(fs);
  options.max_queue_requests = 2;
  auto log = open_or_die(dir.path(), options);

  std::atomic<int> ok{0}, overloaded{0}, other{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 12; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 5; ++i) {
        auto r = log->append("s", ExpectedVersion::any(), std::vector<EventData>{event("A")});
        if (r) {
          ++ok;
        } else if (r.error().code == errc::overloaded) {
          ++overloaded;
        } else {
          ++other;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(overloaded.load() > 0);
  CHECK(ok.load() > 0);
  CHECK(other.load() == 0);
  CHECK(log->head().position == Position(static_cast<uint64_t>(ok.load())));
  CHECK(log->health().writable);
}

// A retry that finds its ids written but not yet synced must not be
// acknowledged before the sync succeeds, and not at all if it fails.
TEST_CASE("a retry of an append still being synced waits for the sync and shares its fate") {
  TempDir dir;
  auto fs = std::make_shared<FaultInjectionFs>();
  LogOptions options;
  options.env = make_env(fs);
  auto log = open_or_die(dir.path(), options);
  REQUIRE(log->append("warm", ExpectedVersion::any(), std::vector<EventData>{event("W")}));
  const std::vector<EventData> batch{event("A", "x")};

  SUBCASE("the sync succeeds: the retry returns the original, already durable") {
    fs->set_wal_sync_delay_ms(100);
    std::optional<result<AppendResult>> first;
    std::thread original([&] { first = log->append("s", ExpectedVersion::any(), batch); });
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    auto retry = log->append("s", ExpectedVersion::any(), batch);
    REQUIRE(retry);
    CHECK(retry->deduplicated);
    CHECK(log->head().position >= retry->last);  // durable when returned
    original.join();
    REQUIRE(first.has_value());
    REQUIRE(first->has_value());
    CHECK((*first)->first == retry->first);
  }
  SUBCASE("the sync fails: the retry fails too") {
    fs->set_wal_sync_delay_ms(100);
    fs->set_fail_wal_sync(true);
    std::optional<result<AppendResult>> first;
    std::thread original([&] { first = log->append("s", ExpectedVersion::any(), batch); });
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    auto retry = log->append("s", ExpectedVersion::any(), batch);
    original.join();
    CHECK_FALSE(retry.has_value());
    REQUIRE(first.has_value());
    CHECK_FALSE(first->has_value());
    CHECK(log->head().position == Position(1));
  }
}

TEST_CASE("readers never see a group before it is synced") {
  TempDir dir;
  auto fs = std::make_shared<FaultInjectionFs>();
  LogOptions options;
  options.env = make_env(fs);
  auto log = open_or_die(dir.path(), options);
  fs->set_wal_sync_delay_ms(150);
  std::thread writer([&] {
    REQUIRE(log->append("s", ExpectedVersion::any(), std::vector<EventData>{event("A")}));
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // written, not yet synced
  CHECK(log->head().position == Position(0));
  CHECK(log->read_all(Position(1), 10)->empty());
  CHECK(log->read_stream("s", StreamVersion(1), 10, Direction::forward)->empty());
  CHECK(log->stream_version("s").value() == StreamVersion(0));
  auto report = log->verify(Position(1), Position(UINT64_MAX));
  REQUIRE(report);
  CHECK(report->ok());
  writer.join();
  CHECK(log->head().position == Position(1));
  CHECK(log->stream_version("s").value() == StreamVersion(1));
}

TEST_CASE("a version conflict with an append still being synced is answered after that sync") {
  TempDir dir;
  auto fs = std::make_shared<FaultInjectionFs>();
  LogOptions options;
  options.env = make_env(fs);
  auto log = open_or_die(dir.path(), options);
  fs->set_wal_sync_delay_ms(150);
  std::thread winner([&] {
    REQUIRE(log->append("s", ExpectedVersion::no_stream(), std::vector<EventData>{event("A")}));
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // written, not yet synced
  auto loser = log->append("s", ExpectedVersion::no_stream(), std::vector<EventData>{event("B")});
  REQUIRE_FALSE(loser.has_value());
  CHECK(loser.error().code == errc::wrong_expected_version);
  CHECK(loser.error().actual_version == 1);
  // A caller that re-reads at once sees the version it was told about.
  CHECK(log->stream_version("s").value() == StreamVersion(1));
  winner.join();
}
