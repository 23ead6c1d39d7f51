#include "projections/worker.h"

#include <doctest/doctest.h>

#include <atomic>
#include <future>
#include <thread>
#include <vector>

#include "tests/projections/counter.h"
#include "tests/support/log_fixture.h"
#include "tests/support/temp_dir.h"

using namespace engram;
using core::Position;

namespace {

using Counter = test::CounterProjection;

Position append(core::Log& log, const std::string& type, int n = 1) {
  std::vector<core::EventData> events(static_cast<size_t>(n));
  for (auto& e : events) e.type = type;
  auto r = log.append("s", core::ExpectedVersion::any(), events);
  REQUIRE(r);
  return r->last;
}

uint64_t count(const projections::Worker& w, const std::string& type) {
  auto v = w.store().get("count/" + type);
  REQUIRE(v);
  return v->has_value() ? std::stoull(**v) : 0;
}

}  // namespace

TEST_CASE("worker: catches up, follows live, and serves read-your-writes") {
  test::TempDir dir;
  auto log = core::Log::open(dir.path());
  auto models = test::open_models_or_die(dir.path());
  REQUIRE(log);
  append(**log, "A", 5);
  projections::WorkerOptions o;
  o.max_batch_events = 2;  // several batches during catch-up
  auto w = projections::Worker::start(**log, *models, std::make_shared<Counter>(), o);
  REQUIRE(w);
  const Position p = append(**log, "B", 3);
  REQUIRE((*w)->wait_for(p, std::chrono::seconds(5)));
  CHECK(count(**w, "A") == 5);
  CHECK(count(**w, "B") == 3);
  CHECK((*w)->stats().batches >= 3);
  CHECK((*w)->stats().events_applied == 8);
  CHECK(projections::store_name((*w)->projection()) == "counter@v1");
  CHECK_FALSE((*w)->wait_for(Position(p.value() + 1), std::chrono::milliseconds(20)));
}

TEST_CASE("worker: a restart resumes from the checkpoint and applies nothing twice") {
  test::TempDir dir;
  {
    auto log = core::Log::open(dir.path());
    auto models = test::open_models_or_die(dir.path());
    REQUIRE(log);
    const Position p = append(**log, "A", 4);
    auto w = projections::Worker::start(**log, *models, std::make_shared<Counter>());
    REQUIRE(w);
    REQUIRE((*w)->wait_for(p, std::chrono::seconds(5)));
  }
  auto log = core::Log::open(dir.path());
  auto models = test::open_models_or_die(dir.path());
  REQUIRE(log);
  const Position p = append(**log, "A", 2);
  auto w = projections::Worker::start(**log, *models, std::make_shared<Counter>());
  REQUIRE(w);
  REQUIRE((*w)->wait_for(p, std::chrono::seconds(5)));
  CHECK(count(**w, "A") == 6);
  CHECK((*w)->stats().events_applied == 2);  // only the new ones in this run
}

TEST_CASE("worker: skipped types still advance the checkpoint") {
  test::TempDir dir;
  auto log = core::Log::open(dir.path());
  auto models = test::open_models_or_die(dir.path());
  REQUIRE(log);
  append(**log, "A", 2);
  const Position p = append(**log, "Other", 3);
  auto w =
      projections::Worker::start(**log, *models, std::make_shared<Counter>(std::vector<std::string>{"A"}));
  REQUIRE(w);
  REQUIRE((*w)->wait_for(p, std::chrono::seconds(5)));
  CHECK(count(**w, "A") == 2);
  CHECK(count(**w, "Other") == 0);
  CHECK((*w)->stats().events_skipped == 3);
}

TEST_CASE("worker: a failing apply stops the worker at its last good checkpoint") {
  test::TempDir dir;
  auto log = core::Log::open(dir.path());
  auto models = test::open_models_or_die(dir.path());
  REQUIRE(log);
  projections::WorkerOptions o;
  o.max_batch_events = 1;
  const Position good = append(**log, "A", 2);
  const Position bad = append(**log, "Poison");
  append(**log, "A");
  auto w = projections::Worker::start(**log, *models, std::make_shared<Counter>(), o);
  REQUIRE(w);
  CHECK_FALSE((*w)->wait_for(bad, std::chrono::seconds(5)));
  const auto s = (*w)->stats();
  CHECK(s.failed);
  CHECK(s.failure.find("poison") != std::string::npos);
  CHECK(s.position == good);
  CHECK(count(**w, "A") == 2);
}

TEST_CASE("worker: a new version builds its own store from the start of the log") {
  test::TempDir dir;
  auto log = core::Log::open(dir.path());
  auto models = test::open_models_or_die(dir.path());
  REQUIRE(log);
  const Position p = append(**log, "A", 3);
  std::vector<Position> before_commit;
  {
    projections::WorkerOptions o;
    o.before_commit = [&](Position last) { before_commit.push_back(last); };
    auto w = projections::Worker::start(**log, *models, std::make_shared<Counter>(), o);
    REQUIRE(w);
    REQUIRE((*w)->wait_for(p, std::chrono::seconds(5)));
  }
  REQUIRE(!before_commit.empty());
  CHECK(before_commit.back() == p);  // the fault point sees every batch before its commit
  auto w =
      projections::Worker::start(**log, *models, std::make_shared<Counter>(std::vector<std::string>{}, 2));
  REQUIRE(w);
  REQUIRE((*w)->wait_for(p, std::chrono::seconds(5)));
  CHECK(count(**w, "A") == 3);
  CHECK(projections::store_name((*w)->projection()) == "counter@v2");
  CHECK(models->stores().size() == 2);
}

TEST_CASE("worker: when_reached answers without blocking, on reach or on timeout") {
  test::TempDir dir;
  auto log = core::Log::open(dir.path());
  auto models = test::open_models_or_die(dir.path());
  REQUIRE(log);
  const Position first = append(**log, "A");
  auto w = projections::Worker::start(**log, *models, std::make_shared<Counter>());
  REQUIRE(w);
  REQUIRE((*w)->wait_for(first, std::chrono::seconds(5)));

  std::promise<bool> now_p;
  (*w)->when_reached(first, std::chrono::seconds(5), [&](bool r) { now_p.set_value(r); });
  CHECK(now_p.get_future().get());  // already there: answered at once

  std::promise<bool> later_p;
  auto later = later_p.get_future();
  (*w)->when_reached(Position(first.value() + 1), std::chrono::seconds(5),
                     [&](bool r) { later_p.set_value(r); });
  CHECK(later.wait_for(std::chrono::milliseconds(100)) == std::future_status::timeout);
  append(**log, "B");
  CHECK(later.get());

  std::promise<bool> never_p;
  (*w)->when_reached(Position(first.value() + 100), std::chrono::milliseconds(100),
                     [&](bool r) { never_p.set_value(r); });
  CHECK_FALSE(never_p.get_future().get());
}

TEST_CASE("worker: many waiters are each answered once, reached or timed out") {
  test::TempDir dir;
  auto log = core::Log::open(dir.path());
  auto models = test::open_models_or_die(dir.path());
  REQUIRE(log);
  const Position first = append(**log, "A");
  auto w = projections::Worker::start(**log, *models, std::make_shared<Counter>());
  REQUIRE(w);
  REQUIRE((*w)->wait_for(first, std::chrono::seconds(5)));

  // Waiters at positions first+1..first+100 that the log will reach, and
  // ones beyond it that time out, interleaved, up to the cap.
  constexpr size_t kWaiters = projections::Worker::kMaxWaiters;
  std::vector<std::atomic<int>> calls(kWaiters + 1);
  std::vector<std::atomic<int>> reached(kWaiters + 1);
  for (size_t i = 0; i < kWaiters; ++i) {
    const bool reachable = i % 2 == 0;
    const Position at(first.value() + (reachable ? 1 + i % 100 : 1000 + i));
    const auto timeout = reachable ? std::chrono::seconds(30) : std::chrono::milliseconds(200);
    (*w)->when_reached(at, timeout, [&, i](bool r) {
      calls[i].fetch_add(1);
      if (r) reached[i].fetch_add(1);
    });
  }
  // Over the cap: refused at once.
  (*w)->when_reached(Position(first.value() + 5000), std::chrono::seconds(30),
                     [&](bool r) { calls[kWaiters].fetch_add(r ? 100 : 1); });
  CHECK(calls[kWaiters].load() == 1);

  append(**log, "B", 100);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  auto all_called = [&] {
    for (size_t i = 0; i < kWaiters; ++i) {
      if (calls[i].load() == 0) return false;
    }
    return true;
  };
  while (!all_called() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  REQUIRE(all_called());
  for (size_t i = 0; i < kWaiters; ++i) {
    CAPTURE(i);
    CHECK(calls[i].load() == 1);
    CHECK(reached[i].load() == (i % 2 == 0 ? 1 : 0));
  }
}

TEST_CASE("worker: batches are bigger while far behind the head") {
  test::TempDir dir;
  auto log = core::Log::open(dir.path());
  auto models = test::open_models_or_die(dir.path());
  REQUIRE(log);
  const Position p = append(**log, "A", 120);
  projections::WorkerOptions o;
  o.max_batch_events = 2;
  o.catch_up_batch_events = 50;
  auto w = projections::Worker::start(**log, *models, std::make_shared<Counter>(), o);
  REQUIRE(w);
  REQUIRE((*w)->wait_for(p, std::chrono::seconds(5)));
  CHECK(count(**w, "A") == 120);
  // 50 and 50 while at least 50 behind, then the last 20 in batches of 2.
  CHECK((*w)->stats().batches == 12);
}
