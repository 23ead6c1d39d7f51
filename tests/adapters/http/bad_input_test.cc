// Hostile and broken requests: each gets its documented status, the server
// survives, and nothing is written.

#include <doctest/doctest.h>

#include <thread>

#include "tests/adapters/http/serve_fixture.h"

using namespace engram::test;
using nlohmann::json;

namespace {

uint64_t head_of(uint16_t port, const std::string& token) {
  HttpClient c(port);
  auto r = c.request("GET", "/v1/log?limit=1", "", bearer(token));
  REQUIRE(r.status == 200);
  return body_json(r)["head"].get<uint64_t>();
}

}  // namespace

TEST_CASE("bad input corpus: documented statuses, no crash, no event written") {
  ServeFixture f(json{{"max_body_bytes", 65536}, {"read_timeout_ms", 600}});
  const std::string writer = f.token({"writer", "reader"}, "lead");
  const uint64_t head = head_of(f.port(), writer);

  struct Case {
    std::string what;
    std::string target;
    std::string body;
    int status;
    std::string code;
    std::string content_type = "application/json";
  };
  const std::string deep = std::string(100, '[') + std::string(100, ']');
  const std::vector<Case> cases = {
      {"truncated JSON", "/v1/commands/RegisterAgent", R"({"agent_id": "a", "name": )", 400, ""},
      {"not an object", "/v1/commands/RegisterAgent", "[1,2,3]", 400, ""},
      {"wrong type", "/v1/commands/RegisterAgent", R"({"agent_id": 42, "name": "x"})", 400, ""},
      {"missing field", "/v1/commands/RegisterAgent", R"({"name": "x"})", 400, ""},
      {"unknown field", "/v1/commands/RegisterAgent", R"({"agent_id": "a", "name": "x", "zz": 1})",
       400, ""},
      {"huge number", "/v1/commands/ObservePattern",
       R"({"domain": "d", "signature": "s", "outcome": "success", "reward": 1e400})", 400, ""},
      {"huge integer", "/v1/commands/AdaptAgent",
       R"({"agent_id": "a", "expected_version": 123456789012345678901234567890})", 400, ""},
      {"confidence out of range", "/v1/commands/RecordKnowledge",
       R"({"title": "t", "body": "b", "domain": "d", "confidence": 1.5})", 400, ""},
      {"deep nesting", "/v1/commands/RegisterAgent", deep, 400, "malformed_json"},
      {"invalid UTF-8", "/v1/commands/RegisterAgent",
       std::string(R"({"agent_id": "a", "name": ")") + "\xff\xfe" + R"("})", 400, ""},
      {"bad id characters", "/v1/commands/RegisterAgent", R"({"agent_id": "a b/c", "name": "x"})",
       400, ""},
      {"unknown command", "/v1/commands/DropTables", "{}", 404, "unknown_command"},
      {"wrong media type", "/v1/commands/RegisterAgent", R"({"agent_id": "a", "name": "x"})", 415,
       "unsupported_media_type", "text/plain"},
      {"generic: no events", "/v1/streams/s1", R"({"events": []})", 400, "invalid_field"},
      {"generic: bad expected", "/v1/streams/s1",
       R"({"expected_version": -1, "events": [{"type": "X", "data": {}}]})", 400, "invalid_field"},
      {"generic: bad id", "/v1/streams/s1", R"({"events": [{"type": "X", "id": "nope", "data": {}}]})", 400,
       "invalid_field"},
      {"generic: too many events", "/v1/streams/s1",
       json{{"events", json::array()}}.dump().replace(11, 0,
                                                      [] {
                                                        std::string s;
                                                        for (int i = 0; i < 101; ++i)
                                                          s += std::string(i ? "," : "") +
                                                               R"({"type": "X", "data": {}})";
                                                        return s;
                                                      }()),
       400, "invalid_field"},
      {"body over the limit", "/v1/streams/s1", std::string(70000, ' '), 413, "body_too_large"},
  };
  HttpClient c(f.port());
  for (const auto& k : cases) {
    INFO(k.what);
    auto r =
        c.request("POST", k.target, k.body, bearer(writer, {{"Content-Type", k.content_type}}));
    CHECK(r.status == k.status);
    CHECK(r.header("content-type") == "application/problem+json");
    json p = body_json(r);
    CHECK(p["status"] == k.status);
    CHECK(p["type"].get<std::string>().rfind("/problems/", 0) == 0);
    if (!k.code.empty()) CHECK(p["code"] == k.code);
    if (k.status == 400 && k.code.empty()) CHECK(p.contains("code"));
    if (!c.connected()) c.connect();
  }

  // A repeated name is refused, naming it, on every JSON route: a proxy in
  // front could read the other value.
  struct Repeat {
    std::string target;
    std::string body;
    std::string field;
  };
  for (const auto& k : std::vector<Repeat>{
           {"/v1/commands/RegisterAgent", R"({"agent_id":"a6","agent_id":"a7","name":"x"})",
            "/agent_id"},
           {"/v1/streams/s1", R"({"events":[{"type":"X","data":{"n":1,"n":2}}]})",
            "/events/0/data/n"},
           {"/v1/memories/search", R"({"owner":"a6","owner":"a7","text":"t"})", "/owner"}}) {
    INFO(k.target);
    auto r = c.request("POST", k.target, k.body, bearer(writer));
    CHECK(r.status == 400);
    CHECK(body_json(r)["code"] == "duplicate_field");
    CHECK(body_json(r)["field"] == k.field);
  }

  // Field errors name the field.
  auto field = c.request("POST", "/v1/commands/RegisterAgent", R"({"agent_id": 42, "name": "x"})",
                         bearer(writer));
  CHECK(body_json(field)["field"] == "/agent_id");

  // Bad headers.
  CHECK(c.request("POST", "/v1/commands/RegisterAgent", R"({"agent_id": "h", "name": "x"})",
                  bearer(writer, {{"X-Correlation-Id", "not-a-uuid"}}))
            .status == 400);
  CHECK(c.request("POST", "/v1/commands/RegisterAgent", R"({"agent_id": "h", "name": "x"})",
                  bearer(writer, {{"Idempotency-Key", std::string(200, 'k')}}))
            .status == 400);
  CHECK(c.request("DELETE", "/v1/log", "", bearer(writer)).status == 405);
  CHECK(c.request("GET", "/nowhere", "", bearer(writer)).status == 404);

  // Oversized headers: 431.
  {
    HttpClient h(f.port());
    auto r = h.request("GET", "/healthz", "", {{"X-Big", std::string(20000, 'h')}});
    CHECK(r.status == 431);
  }
  // Malformed HTTP: 400 and the connection closes.
  {
    HttpClient h(f.port());
    REQUIRE(h.send_raw("GARBAGE\r\n\r\n"));
    auto r = h.read_response();
    CHECK(r.status == 400);
  }
  // A slow sender is cut off after read_timeout_ms.
  {
    HttpClient h(f.port());
    REQUIRE(
        h.send_raw("POST /v1/streams/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"));
    CHECK(h.closed_by_peer(5000));
  }
  // The server is still well.
  HttpClient after(f.port());
  CHECK(after.request("GET", "/healthz").status == 200);
  CHECK(head_of(f.port(), writer) == head);
  CHECK(f.server->stop() == 0);
}

TEST_CASE("max_connections: connections beyond the bound get 503 and are closed") {
  ServeFixture f(json{{"max_connections", 2}});
  HttpClient a(f.port()), b(f.port());
  REQUIRE(a.request("GET", "/healthz").status == 200);
  REQUIRE(b.request("GET", "/healthz").status == 200);
  HttpClient c(f.port());
  REQUIRE(c.connect());
  auto r = c.read_response();
  CHECK(r.status == 503);
  CHECK(body_json(r)["code"] == "too_many_connections");
  CHECK(r.header("retry-after") == "1");
  a.close();
  // A slot frees up once a connection closes.
  bool served = false;
  for (int i = 0; i < 50 && !served; ++i) {
    HttpClient d(f.port());
    served = d.request("GET", "/healthz").status == 200;
    if (!served) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CHECK(served);
  CHECK(f.server->stop() == 0);
}
