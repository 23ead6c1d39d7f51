// The query API over the catalog read model, through a real server.

#include <doctest/doctest.h>

#include "tests/adapters/http/serve_fixture.h"

using namespace engram::test;
using nlohmann::json;

TEST_CASE("queries: read-your-writes with min_position, filters, pages, 404 and 504") {
  ServeFixture f(json{{"max_wait_ms", 300}});
  HttpClient c(f.port());
  const std::string writer = f.token({"writer"}, "lead");
  const std::string reader = f.token({"reader"}, "ops");
  uint64_t last = 0;
  for (const char* id : {"a1", "a2", "a3"}) {
    auto r =
        c.request("POST", "/v1/commands/RegisterAgent",
                  json{{"agent_id", id}, {"name", id}, {"domains", {"ml"}}}.dump(), bearer(writer));
    REQUIRE(r.status == 201);
    last = body_json(r)["last_position"].get<uint64_t>();
  }
  auto s = c.request("POST", "/v1/commands/SuspendAgent",
                     json{{"agent_id", "a2"}, {"reason", "r"}}.dump(), bearer(writer));
  REQUIRE(s.status == 201);
  last = body_json(s)["last_position"].get<uint64_t>();

  // Right after the command, a read with min_position sees it.
  auto one =
      c.request("GET", "/v1/agents/a2?min_position=" + std::to_string(last), "", bearer(reader));
  REQUIRE_MESSAGE(one.status == 200, one.body);
  CHECK(body_json(one)["status"] == "suspended");
  CHECK(std::stoull(one.header("x-engram-position")) >= last);

  auto active = c.request("GET", "/v1/agents?status=active&min_position=" + std::to_string(last),
                          "", bearer(reader));
  REQUIRE(active.status == 200);
  json aj = body_json(active);
  CHECK(aj["items"].size() == 2);
  CHECK(aj["next_cursor"].is_null());

  auto page1 = c.request("GET", "/v1/agents?domain=ml&limit=2", "", bearer(reader));
  REQUIRE(page1.status == 200);
  json p1 = body_json(page1);
  CHECK(p1["items"].size() == 2);
  REQUIRE(p1["next_cursor"].is_string());
  auto page2 = c.request(
      "GET", "/v1/agents?domain=ml&limit=2&cursor=" + p1["next_cursor"].get<std::string>(), "",
      bearer(reader));
  CHECK(body_json(page2)["items"].size() == 1);

  CHECK(c.request("GET", "/v1/agents/nobody", "", bearer(reader)).status == 404);
  auto unknown = c.request("GET", "/v1/agents?colour=red", "", bearer(reader));
  CHECK(unknown.status == 400);
  CHECK(body_json(unknown)["code"] == "bad_query");
  CHECK(c.request("GET", "/v1/tasks?limit=0", "", bearer(reader)).status == 400);
  auto future = c.request("GET", "/v1/projects?min_position=999999", "", bearer(reader));
  CHECK(future.status == 504);
  CHECK(body_json(future)["code"] == "position_not_reached");
  CHECK(!future.header("x-engram-position").empty());
  CHECK(c.request("GET", "/v1/agents").status == 401);
  CHECK(c.request("POST", "/v1/agents", "{}", bearer(writer)).status == 405);
  CHECK(f.server->stop() == 0);
}
