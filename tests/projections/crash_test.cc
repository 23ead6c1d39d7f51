// A projection worker killed between apply() and commit, again and again:
// after every crash the read model must equal a from-scratch computation up
// to its checkpoint, and in the end it must cover the whole log.

#include <doctest/doctest.h>

#include <cstdlib>
#include <map>
#include <random>

#include "core/log.h"
#include "projections/projection.h"
#include "tests/support/log_fixture.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

using namespace engram;

namespace {

// What the counter model must hold after applying events 1..upto.
std::map<std::string, std::string> expected(const core::Log& log, core::Position upto) {
  std::map<std::string, uint64_t> counts;
  core::Position from(1);
  while (from <= upto) {
    auto events = log.read_all(from, 1000);
    REQUIRE(events);
    if (events->empty()) break;
    for (const auto& e : *events) {
      if (e.position() > upto) break;
      ++counts["count/" + std::string(e.type())];
    }
    from = core::Position(events->back().position().value() + 1);
  }
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : counts) out[k] = std::to_string(v);
  return out;
}

std::map<std::string, std::string> stored(core::ModelStore& s) {
  auto entries = s.scan("count/", "", core::ModelStore::kMaxScanEntries);
  REQUIRE(entries);
  return {entries->begin(), entries->end()};
}

}  // namespace

TEST_CASE("projection crash between apply and commit: the model always equals a rebuild") {
  const char* env = std::getenv("ENGRAM_PROJECTION_CRASH_CYCLES");
  const int cycles = env ? std::atoi(env) : 100;
  test::TempDir dir;
  std::mt19937 rng(20261121);
  {
    auto log = core::Log::open(dir.path());
    REQUIRE(log);
  }
  for (int cycle = 0; cycle < cycles; ++cycle) {
    {
      // More events between crashes, of a few types.
      auto log = core::Log::open(dir.path());
      REQUIRE(log);
      std::vector<core::EventData> events(static_cast<size_t>(5 + rng() % 20));
      // Appended, not "T" + std::to_string(...): GCC 12 at -O3 warns a false
      // -Wrestrict on the operator+ form.
      for (auto& e : events) e.type = std::string("T").append(std::to_string(rng() % 4));
      REQUIRE((*log)->append("s", core::ExpectedVersion::any(), events));
    }
    const std::string die_at = std::to_string(1 + rng() % 3);
    const std::string batch = std::to_string(1 + rng() % 7);
    test::RunResult r =
        test::run({ENGRAM_PROJECTION_CRASH_CHILD, dir.path().string(), die_at, batch});
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);

    auto log = core::Log::open(dir.path());
    REQUIRE(log);
    auto models = test::open_models_or_die(dir.path());
    auto store = models->store("counter@v1");
    REQUIRE(store);
    const core::Position at = (*store)->checkpoint();
    INFO("cycle " << cycle << ", checkpoint " << at.value());
    CHECK(stored(**store) == expected(**log, at));
  }
  // A last run without a crash catches up to the head.
  test::RunResult r = test::run({ENGRAM_PROJECTION_CRASH_CHILD, dir.path().string(), "0", "100"});
  REQUIRE(r.exit_code == 0);
  auto log = core::Log::open(dir.path());
  REQUIRE(log);
  auto models = test::open_models_or_die(dir.path());
  auto store = models->store("counter@v1");
  REQUIRE(store);
  CHECK((*store)->checkpoint() == (*log)->head().position);
  CHECK(stored(**store) == expected(**log, (*log)->head().position));
}
