#include <doctest/doctest.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <thread>

#include "core/log.h"
#include "tests/support/log_fixture.h"

using namespace engram::core;
using engram::test::event;
using engram::test::open_or_die;
using engram::test::TempDir;

// 16 threads race on one stream, each appending with the exact version it
// believes is current. ENGRAM_RACE_APPENDS raises the per-thread count.
TEST_CASE("racing appenders with exact expected versions: one winner per version, no gaps") {
  const char* env = std::getenv("ENGRAM_RACE_APPENDS");
  const int per_thread = env ? std::atoi(env) : 500;
  constexpr int kThreads = 16;
  TempDir dir;
  auto log = open_or_die(dir.path());

  std::mutex mu;
  std::map<uint64_t, int> winner_of_version;  // version -> thread
  std::map<uint64_t, uint64_t> position_of_version;
  std::atomic<int> unexpected{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      uint64_t believed = 0;
      for (int won = 0; won < per_thread;) {
        auto r = log->append("contended", ExpectedVersion::exact(StreamVersion(believed)),
                             std::vector<EventData>{event("Tick", std::to_string(t))});
        if (r) {
          std::lock_guard lock(mu);
          if (!winner_of_version.emplace(r->version.value(), t).second) ++unexpected;
          position_of_version.emplace(r->version.value(), r->first.value());
          believed = r->version.value();
          ++won;
        } else if (r.error().code == errc::wrong_expected_version && r.error().actual_version) {
          believed = *r.error().actual_version;
        } else {
          ++unexpected;
          return;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  REQUIRE(unexpected.load() == 0);

  const uint64_t total = static_cast<uint64_t>(kThreads) * static_cast<uint64_t>(per_thread);
  REQUIRE(winner_of_version.size() == total);
  CHECK(winner_of_version.begin()->first == 1);
  CHECK(winner_of_version.rbegin()->first == total);
  CHECK(log->head().position == Position(total));
  CHECK(log->stream_version("contended").value() == StreamVersion(total));

  // The stream reads back contiguous, with each winner's event at the
  // position it was told, and positions are gap-free.
  uint64_t version = 1;
  while (version <= total) {
    auto page = log->read_stream("contended", StreamVersion(version), 1000, Direction::forward);
    REQUIRE(page);
    REQUIRE_FALSE(page->empty());
    for (const auto& e : *page) {
      REQUIRE(e.version().value() == version);
      REQUIRE(e.position().value() == position_of_version[version]);
      REQUIRE(std::string(e.payload().begin(), e.payload().end()) ==
              std::to_string(winner_of_version[version]));
      ++version;
    }
  }
  auto report = log->verify(Position(1), Position(UINT64_MAX));
  REQUIRE(report);
  CHECK(report->ok());
  CHECK(report->events_checked == total);
}
