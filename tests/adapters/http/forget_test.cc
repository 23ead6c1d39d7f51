#include <doctest/doctest.h>

#include "tests/adapters/http/serve_fixture.h"

using namespace engram::test;
using nlohmann::json;

TEST_CASE("ForgetSubject over HTTP: content unreadable afterwards, audit verify still passes") {
  ServeFixture f;
  HttpClient c(f.port());
  const std::string admin = f.token({"admin"}, "root");
  const std::string secret = "the owner's private note 7d1f";
  auto stored = c.request("POST", "/v1/commands/StoreMemory",
                          json{{"owner", "bob"}, {"content", secret}, {"importance", 0.8}}.dump(),
                          bearer(admin));
  REQUIRE_MESSAGE(stored.status == 201, stored.body);
  auto before = c.request("GET", "/v1/streams/memory-bob", "", bearer(admin));
  REQUIRE(before.status == 200);
  CHECK(body_json(before)["events"][0]["data"]["content"] == secret);

  auto forget =
      c.request("POST", "/v1/commands/ForgetSubject",
                json{{"owner", "bob"}, {"reason", "erasure request"}}.dump(), bearer(admin));
  REQUIRE_MESSAGE(forget.status == 201, forget.body);
  auto after = c.request("GET", "/v1/streams/memory-bob", "", bearer(admin));
  json first = body_json(after)["events"][0]["data"];
  CHECK(first["content"].is_null());
  CHECK(first["content_forgotten"] == true);
  CHECK(after.body.find(secret) == std::string::npos);
  CHECK(f.server->stop() == 0);

  RunResult verify = run({ENGRAM_BINARY, "audit", "verify", "--data", f.data.string()});
  INFO(verify.out << verify.err);
  CHECK(verify.exit_code == 0);
  RunResult dump = run({ENGRAM_BINARY, "replay", "dump", "--data", f.data.string()});
  CHECK(dump.exit_code == 0);
  CHECK(dump.out.find(secret) == std::string::npos);
}
