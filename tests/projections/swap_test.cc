#include <doctest/doctest.h>

#include <algorithm>
#include <thread>

#include "core/metrics.h"
#include "projections/runtime.h"
#include "tests/projections/counter.h"
#include "tests/support/log_fixture.h"
#include "tests/support/temp_dir.h"

using namespace engram;
using projections::Runtime;

namespace {

void append(core::Log& log, int n) {
  while (n > 0) {
    std::vector<core::EventData> events(static_cast<size_t>(std::min(n, 50)));
    for (auto& e : events) e.type = "Tick";
    REQUIRE(log.append("ticks", core::ExpectedVersion::any(), events));
    n -= static_cast<int>(events.size());
  }
}

uint64_t count(const projections::Worker& w) {
  auto v = w.store().get("count/Tick");
  REQUIRE(v);
  return v->has_value() ? std::stoull(**v) : 0;
}

bool has_store(const core::ModelDb& models, const std::string& name) {
  const auto names = models.stores();
  return std::find(names.begin(), names.end(), name) != names.end();
}

template <typename F>
bool eventually(F done, std::chrono::milliseconds limit = std::chrono::seconds(20)) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return done();
}

}  // namespace

TEST_CASE("runtime: a new version builds beside the live one, which answers until the swap") {
  test::TempDir dir;
  auto log = test::open_or_die(dir.path());
  auto models = test::open_models_or_die(dir.path());
  append(*log, 300);
  {
    auto rt = Runtime::start(*log, *models, {std::make_shared<test::CounterProjection>()});
    REQUIRE(rt);
    auto w = (*rt)->serving("counter");
    REQUIRE(w);
    REQUIRE(w->wait_for(log->head().position, std::chrono::seconds(10)));
    CHECK(count(*w) == 300);
  }
  append(*log, 50);

  // v2 builds slowly (small batches, a pause before each commit) while v1,
  // whose class is still given, keeps serving and following the log.
  projections::WorkerOptions slow;
  slow.max_batch_events = 10;
  slow.before_commit = [](core::Position) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  };
  auto rt =
      Runtime::start(*log, *models,
                     {std::make_shared<test::CounterProjection>(std::vector<std::string>{}, 1),
                      std::make_shared<test::CounterProjection>(std::vector<std::string>{}, 2)},
                     slow);
  REQUIRE(rt);
  core::metrics::Registry metrics;
  (*rt)->register_metrics(metrics);
  auto status = (*rt)->status("counter");
  REQUIRE(status);
  CHECK(status->serving_version == 1);
  CHECK(status->building_version == 2);
  CHECK(metrics.render().find("engram_projection_rebuilding{projection=\"counter\"} 1") !=
        std::string::npos);
  auto v1 = (*rt)->serving("counter");
  REQUIRE(v1);
  CHECK(v1->projection().version() == 1);
  REQUIRE(v1->wait_for(log->head().position, std::chrono::seconds(10)));
  CHECK(count(*v1) == 350);  // the old model answers, whole, during the rebuild

  bool saw_partial = false;
  REQUIRE(eventually([&] {
    auto st = (*rt)->status("counter");
    if (st->building_version != 0) {
      // Queries are served by v1 the whole time: never a half-built count.
      auto w = (*rt)->serving("counter");
      saw_partial = saw_partial || count(*w) < 350;
      return false;
    }
    return true;
  }));
  CHECK_FALSE(saw_partial);
  auto v2 = (*rt)->serving("counter");
  REQUIRE(v2);
  CHECK(v2->projection().version() == 2);
  CHECK(count(*v2) == 350);
  // The old store is dropped just after the swap.
  CHECK(eventually([&] { return !has_store(*models, "counter@v1"); }));
  CHECK(has_store(*models, "counter@v2"));
  // A reader that held v1 across the swap still reads what it had.
  CHECK(count(*v1) == 350);
  CHECK(metrics.render().find("engram_projection_version{projection=\"counter\"} 2") !=
        std::string::npos);

  // It keeps following the log after the swap.
  append(*log, 5);
  REQUIRE(v2->wait_for(log->head().position, std::chrono::seconds(10)));
  CHECK(count(*v2) == 355);
}

TEST_CASE("runtime: without the old version's code nothing serves until the new one is built") {
  test::TempDir dir;
  auto log = test::open_or_die(dir.path());
  auto models = test::open_models_or_die(dir.path());
  append(*log, 200);
  {
    auto rt = Runtime::start(*log, *models, {std::make_shared<test::CounterProjection>()});
    REQUIRE(rt);
    REQUIRE((*rt)->serving("counter")->wait_for(log->head().position, std::chrono::seconds(10)));
  }
  projections::WorkerOptions slow;
  slow.max_batch_events = 10;
  slow.before_commit = [](core::Position) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  };
  auto rt = Runtime::start(
      *log, *models, {std::make_shared<test::CounterProjection>(std::vector<std::string>{}, 3)},
      slow);
  REQUIRE(rt);
  CHECK((*rt)->serving("counter") == nullptr);
  CHECK((*rt)->status("counter")->building_version == 3);
  REQUIRE(eventually([&] { return (*rt)->serving("counter") != nullptr; }));
  auto w = (*rt)->serving("counter");
  CHECK(w->projection().version() == 3);
  CHECK(count(*w) == 200);
  CHECK(eventually([&] { return !has_store(*models, "counter@v1"); }));
  CHECK_FALSE((*rt)->status("nothing").has_value());
}

TEST_CASE("runtime: one projection given twice at the same version is refused") {
  test::TempDir dir;
  auto log = test::open_or_die(dir.path());
  auto models = test::open_models_or_die(dir.path());
  auto rt = Runtime::start(*log, *models, {std::make_shared<test::CounterProjection>(),
                                  std::make_shared<test::CounterProjection>()});
  REQUIRE_FALSE(rt);
  CHECK(rt.error().code == core::errc::invalid_argument);
}

TEST_CASE("runtime: a rebuild that fails is reported, not left rebuilding, and the old one serves") {
  test::TempDir dir;
  auto log = test::open_or_die(dir.path());
  auto models = test::open_models_or_die(dir.path());
  append(*log, 20);
  const std::vector<core::EventData> poison{test::event("Poison")};
  REQUIRE(log->append("other", core::ExpectedVersion::any(), poison));
  {
    // v1 counts only ticks: the poison passes it by.
    auto rt = Runtime::start(
        *log, *models, {std::make_shared<test::CounterProjection>(std::vector<std::string>{"Tick"})});
    REQUIRE(rt);
    REQUIRE((*rt)->serving("counter")->wait_for(log->head().position, std::chrono::seconds(10)));
  }
  // v2 counts every type, and fails at the poison.
  auto rt = Runtime::start(
      *log, *models,
      {std::make_shared<test::CounterProjection>(std::vector<std::string>{"Tick"}, 1),
       std::make_shared<test::CounterProjection>(std::vector<std::string>{}, 2)});
  REQUIRE(rt);
  core::metrics::Registry metrics;
  (*rt)->register_metrics(metrics);
  REQUIRE(eventually([&] { return (*rt)->status("counter")->failed; }));
  const auto st = (*rt)->status("counter");
  CHECK(st->serving_version == 1);
  CHECK(st->building_version == 0);
  CHECK(st->failure.find("rebuilding version 2") != std::string::npos);
  CHECK(st->failure.find("poison") != std::string::npos);
  const std::string text = metrics.render();
  CHECK(text.find("engram_projection_failed{projection=\"counter\"} 1") != std::string::npos);
  CHECK(text.find("engram_projection_rebuilding{projection=\"counter\"} 0") != std::string::npos);
  CHECK(text.find("engram_projection_version{projection=\"counter\"} 1") != std::string::npos);
  // v1 still answers, and keeps following the log.
  append(*log, 3);
  auto v1 = (*rt)->serving("counter");
  REQUIRE(v1);
  REQUIRE(v1->wait_for(log->head().position, std::chrono::seconds(10)));
  CHECK(count(*v1) == 23);
  CHECK(has_store(*models, "counter@v2"));  // kept: nothing swapped, nothing dropped
}
