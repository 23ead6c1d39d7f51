// The query pool through a real `engram serve`: slow queries (audit
// verifies of a long log) fill it and are refused with 503 and
// Retry-After, while health checks and commands, which never wait on it,
// are answered meanwhile.

#include <doctest/doctest.h>

#include <atomic>
#include <thread>

#include "core/log.h"
#include "tests/adapters/http/serve_fixture.h"

using namespace engram;
using namespace engram::test;
using nlohmann::json;

namespace {

// Events that make one whole-log verify take a while (about 1 s per
// million events on one thread).
constexpr int kBatches = 300;
constexpr int kBatchEvents = 1000;
constexpr int kVerifies = 8;

void fill_log(const std::filesystem::path& data) {
  auto log = core::Log::open(data);
  REQUIRE(log);
  std::vector<core::EventData> batch(kBatchEvents);
  for (auto& e : batch) e.type = "Noted";
  for (int i = 0; i < kBatches; ++i) {
    REQUIRE((*log)->append("load-" + std::to_string(i % 16), core::ExpectedVersion::any(), batch));
  }
}

}  // namespace

TEST_CASE("query pool: full means 503 with Retry-After, and health checks and commands go on") {
  const json config = {{"queries", {{"threads", 1}, {"max_queued", 1}}}};
  ServeFixture f(config);
  REQUIRE(f.server->stop() == 0);
  fill_log(f.data);
  f.start(config);
  const std::string admin = f.token({"admin"}, "auditor");
  const std::string writer = f.token({"writer"}, "lead");

  // Each answer takes a ticket: the order in which they arrived.
  std::atomic<int> tickets{0};
  struct Answer {
    int status = 0;
    std::string retry_after;
    std::string code;
    int ticket = 0;
  };
  std::vector<Answer> verifies(kVerifies);
  std::vector<std::thread> threads;
  for (int i = 0; i < kVerifies; ++i) {
    threads.emplace_back([&, i] {
      HttpClient c(f.port(), 120'000);
      auto r = c.request("GET", "/v1/audit/verify", "", bearer(admin));
      verifies[static_cast<size_t>(i)] = {r.status, r.header("retry-after"),
                                          body_json(r).value("code", ""), ++tickets};
    });
  }
  // The pool holds one verify running and one queued: the rest are refused
  // at once. Wait for a refusal, so the pool is known to be full.
  for (int i = 0; i < 2000 && tickets.load() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  REQUIRE(tickets.load() > 0);
  HttpClient c(f.port());
  CHECK(c.request("GET", "/healthz").status == 200);
  const int health_ticket = ++tickets;
  CHECK(c.request("POST", "/v1/commands/RegisterAgent", R"({"agent_id": "a1", "name": "A"})",
                  bearer(writer))
            .status == 201);
  const int command_ticket = ++tickets;
  for (auto& t : threads) t.join();

  int refused = 0, verified = 0, last_verified = 0;
  for (const auto& v : verifies) {
    if (v.status == 503) {
      ++refused;
      CHECK(v.code == "overloaded");
      CHECK(v.retry_after == "1");
    } else {
      CHECK(v.status == 200);
      ++verified;
      last_verified = std::max(last_verified, v.ticket);
    }
  }
  CHECK(refused >= 1);
  CHECK(verified >= 1);
  // The health check and the command did not wait for the verifies.
  CHECK(health_ticket < last_verified);
  CHECK(command_ticket < last_verified);
  CHECK(f.server->stop() == 0);
}
