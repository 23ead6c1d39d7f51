#include <doctest/doctest.h>

#include <fstream>

#include "tests/adapters/http/serve_fixture.h"

using namespace engram::test;
using nlohmann::json;

TEST_CASE("/metrics: Prometheus text that promtool accepts, with the promised series") {
  ServeFixture f;
  HttpClient c(f.port());
  const std::string admin = f.token({"admin"}, "root");
  REQUIRE(c.request("POST", "/v1/commands/RegisterAgent",
                    R"({"agent_id": "m1", "name": "M", "capabilities": [], "domains": []})",
                    bearer(admin))
              .status == 201);
  CHECK(c.request("GET", "/v1/streams/nothing-here", "", bearer(admin)).status == 404);
  auto m = c.request("GET", "/metrics", "", bearer(admin));
  REQUIRE(m.status == 200);
  CHECK(m.header("content-type").rfind("text/plain; version=0.0.4", 0) == 0);
  for (
      const char* series :
      {"engram_http_requests_total{route=\"/v1/commands/{type}\",method=\"POST\",status=\"201\"} 1",
       "engram_http_requests_total{route=\"/v1/streams/{stream}\",method=\"GET\",status=\"404\"} 1",
       "engram_http_request_duration_seconds_bucket{route=\"/v1/commands/"
       "{type}\",status=\"201\",le=",
       "engram_log_events_appended_total 1", "engram_log_group_size_bucket{le=",
       "engram_log_fsync_duration_seconds_count", "engram_log_queue_depth",
       "engram_log_head_position 1", "engram_log_writable 1", "engram_http_connections"}) {
    INFO(series);
    CHECK(m.body.find(series) != std::string::npos);
  }
  TempDir tmp;
  const std::string path = tmp / "metrics.txt";
  std::ofstream(path) << m.body;
  RunResult r = run({"/bin/sh", "-c", "promtool check metrics < " + path});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(f.server->stop() == 0);
}

TEST_CASE("/metrics: labels come from the route table, never from the client's text") {
  ServeFixture f;
  HttpClient c(f.port());
  const std::string admin = f.token({"admin"}, "root");
  // Junk methods and paths: each its own text, none its own series.
  for (int i = 0; i < 5; ++i) {
    const std::string junk = "BREW" + std::to_string(i);
    CHECK(c.request(junk, "/healthz").status == 405);
    CHECK(c.request(junk, "/junk/" + junk).status == 404);
    CHECK(c.request("GET", "/v1/streams/s" + std::to_string(i), "", bearer(admin)).status == 404);
  }
  auto m = c.request("GET", "/metrics", "", bearer(admin));
  REQUIRE(m.status == 200);
  CHECK(m.body.find("BREW") == std::string::npos);
  CHECK(m.body.find("/junk") == std::string::npos);
  for (const char* series :
       {"engram_http_requests_total{route=\"/healthz\",method=\"other\",status=\"405\"} 5",
        "engram_http_requests_total{route=\"other\",method=\"other\",status=\"404\"} 5",
        "engram_http_requests_total{route=\"/v1/streams/{stream}\",method=\"GET\",status=\"404\"} "
        "5"}) {
    INFO(series);
    CHECK(m.body.find(series) != std::string::npos);
  }
  CHECK(f.server->stop() == 0);
}
