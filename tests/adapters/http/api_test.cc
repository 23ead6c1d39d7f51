// The API in-process (no sockets): failures of the log reach clients as the
// documented statuses, and readiness follows the log's health.

#include "adapters/http/api.h"

#include <doctest/doctest.h>

#include <chrono>
#include <future>
#include <thread>
#include <nlohmann/json.hpp>

#include "core/fault_fs.h"
#include "projections/runtime.h"
#include "tests/projections/counter.h"
#include "tests/support/log_fixture.h"
#include "tests/support/temp_dir.h"

using namespace engram;
using nlohmann::json;

namespace {

struct InProcess {
  test::TempDir dir;
  std::shared_ptr<core::FaultInjectionFs> fs = std::make_shared<core::FaultInjectionFs>();
  std::unique_ptr<core::Log> log;
  std::unique_ptr<core::RocksKeyStore> keys;
  std::unique_ptr<commands::CommandBus> bus;
  core::metrics::Registry metrics;
  http::ApiOptions options;
  std::unique_ptr<http::Api> api;

  InProcess() {
    core::LogOptions o;
    o.env = core::make_env(fs);
    auto opened = core::Log::open(dir.path(), o);
    REQUIRE(opened);
    log = std::move(*opened);
    keys = test::open_keys_or_die(dir.path());
    bus = std::make_unique<commands::CommandBus>(*log, *keys);
    make_api();
  }

  // A new API over `read_side` (auth off: admin).
  void make_api(projections::Runtime* read_side = nullptr) {
    api.reset();
    options.access_log = false;
    options.read_side = read_side;
    api = std::make_unique<http::Api>(*log, *bus, metrics, options);
  }

  http::Response call(std::string method, std::string target, std::string body = "") {
    http::Request r;
    r.method = std::move(method);
    r.target = std::move(target);
    r.body = std::move(body);
    r.remote_ip = "127.0.0.1";
    r.headers = {{"content-type", "application/json"}};
    std::promise<http::Response> p;
    auto f = p.get_future();
    api->handle(std::move(r), [&p](std::function<http::Response()> make) { p.set_value(make()); });
    return f.get();
  }
  static std::string header(const http::Response& r, const std::string& name) {
    for (const auto& [k, v] : r.headers) {
      if (k == name) return v;
    }
    return "";
  }
};

}  // namespace

TEST_CASE("api: a failed fsync gives 500, then 503 with Retry-After, and /readyz turns 503") {
  InProcess p;
  const std::string reg = R"({"agent_id": "a1", "name": "A"})";
  CHECK(p.call("POST", "/v1/commands/RegisterAgent", reg).status == 201);
  CHECK(p.call("GET", "/readyz").status == 200);

  p.fs->set_fail_wal_sync(true);
  auto failed = p.call("POST", "/v1/commands/RegisterAgent", R"({"agent_id": "a2", "name": "B"})");
  CHECK(failed.status == 500);
  CHECK(failed.content_type == "application/problem+json");
  p.fs->set_fail_wal_sync(false);

  auto refused = p.call("POST", "/v1/commands/RegisterAgent", R"({"agent_id": "a3", "name": "C"})");
  CHECK(refused.status == 503);
  CHECK(InProcess::header(refused, "Retry-After") == "5");
  auto generic = p.call("POST", "/v1/streams/notes", R"({"events": [{"type": "X", "data": {}}]})");
  CHECK(generic.status == 503);
  CHECK(InProcess::header(generic, "Retry-After") == "5");

  auto ready = p.call("GET", "/readyz");
  CHECK(ready.status == 503);
  CHECK(json::parse(ready.body)["status"] == "not_ready");
  CHECK(p.call("GET", "/healthz").status == 200);
  // Reads keep working.
  CHECK(p.call("GET", "/v1/streams/agent-a1").status == 200);
}

TEST_CASE("api: /readyz shows the read models, a failed rebuild keeps it ready, a failed model not") {
  InProcess p;
  auto models = test::open_models_or_die(p.dir.path());
  for (const char* type : {"Tick", "Poison", "Tick"}) {
    const std::vector<core::EventData> e{test::event(type)};
    REQUIRE(p.log->append("ticks", core::ExpectedVersion::any(), e));
  }
  auto caught_up = [&](projections::Runtime& rt) {
    auto w = rt.serving("counter");
    return w && w->wait_for(p.log->head().position, std::chrono::seconds(10));
  };
  using Counter = test::CounterProjection;
  const std::vector<std::string> ticks{"Tick"};
  {
    auto rt = projections::Runtime::start(*p.log, *models, {std::make_shared<Counter>(ticks)});
    REQUIRE(rt);
    REQUIRE(caught_up(**rt));
    p.make_api(rt->get());
    auto ready = p.call("GET", "/readyz");
    CHECK(ready.status == 200);
    const json body = json::parse(ready.body);
    CHECK(body["projections"]["counter"]["version"] == 1);
    CHECK(body["projections"]["counter"]["position"] == 3);
    CHECK_FALSE(body["projections"]["counter"].contains("failure"));
    p.make_api();
  }
  {
    // Version 2 counts every type and fails at the poison; version 1 serves.
    auto rt = projections::Runtime::start(
        *p.log, *models,
        {std::make_shared<Counter>(ticks, 1), std::make_shared<Counter>(std::vector<std::string>{}, 2)});
    REQUIRE(rt);
    p.make_api(rt->get());
    json body;
    for (int i = 0; i < 2000 && !body["projections"]["counter"].contains("failure"); ++i) {
      auto ready = p.call("GET", "/readyz");
      REQUIRE(ready.status == 200);
      body = json::parse(ready.body);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    CHECK(body["status"] == "ready");
    CHECK(body["projections"]["counter"]["version"] == 1);
    CHECK_FALSE(body["projections"]["counter"].contains("rebuilding_version"));
    CHECK(body["projections"]["counter"]["failure"].get<std::string>().find("poison") !=
          std::string::npos);
    p.make_api();
  }
  {
    // Only version 3's class: nothing serves while it builds beside the old
    // stores, and it fails at the poison, so the model is unavailable.
    auto rt = projections::Runtime::start(
        *p.log, *models, {std::make_shared<Counter>(std::vector<std::string>{}, 3)});
    REQUIRE(rt);
    p.make_api(rt->get());
    http::Response ready;
    for (int i = 0; i < 2000; ++i) {
      ready = p.call("GET", "/readyz");
      if (ready.status != 200) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    CHECK(ready.status == 503);
    CHECK(InProcess::header(ready, "Retry-After") == "5");
    const json body = json::parse(ready.body);
    CHECK(body["status"] == "not_ready");
    CHECK(body["reason"].get<std::string>().find("projection counter failed") !=
          std::string::npos);
    CHECK(body["projections"]["counter"]["version"] == 0);
    p.make_api();
  }
}

TEST_CASE("api: queries without a running read model answer 503 with Retry-After") {
  InProcess p;
  auto r = p.call("GET", "/v1/agents");
  CHECK(r.status == 503);
  CHECK(json::parse(r.body)["code"] == "read_model_unavailable");
  CHECK(InProcess::header(r, "Retry-After") == "5");
}

TEST_CASE("api: protocol errors are problem documents with stable codes") {
  InProcess p;
  auto big = p.api->protocol_error(413, "too big", "127.0.0.1");
  CHECK(big.status == 413);
  CHECK(json::parse(big.body)["code"] == "body_too_large");
  auto busy = p.api->protocol_error(503, "too many connections", "127.0.0.1");
  CHECK(json::parse(busy.body)["code"] == "too_many_connections");
  CHECK(InProcess::header(busy, "Retry-After") == "1");
}
