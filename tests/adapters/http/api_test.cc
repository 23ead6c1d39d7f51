// The API in-process (no sockets): failures of the log reach clients as the
// documented statuses, and readiness follows the log's health.

#include "adapters/http/api.h"

#include <doctest/doctest.h>

#include <future>
#include <nlohmann/json.hpp>

#include "core/fault_fs.h"
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
  std::unique_ptr<http::Api> api;

  InProcess() {
    core::LogOptions o;
    o.env = core::make_env(fs);
    auto opened = core::Log::open(dir.path(), o);
    REQUIRE(opened);
    log = std::move(*opened);
    keys = test::open_keys_or_die(dir.path());
    bus = std::make_unique<commands::CommandBus>(*log, *keys);
    http::ApiOptions options;
    options.access_log = false;
    api = std::make_unique<http::Api>(*log, *bus, metrics, options);  // auth off: admin
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
