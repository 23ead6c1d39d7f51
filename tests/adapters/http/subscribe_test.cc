// The live feed (GET /v1/subscribe, Server-Sent Events) through a real
// `engram serve`: resume after a disconnect, live delivery, heartbeats, the
// slow-consumer cut-off, redaction, bad input and shutdown with open streams.

#include <doctest/doctest.h>

#include <chrono>
#include <set>
#include <thread>

#include "tests/adapters/http/serve_fixture.h"
#include "tests/adapters/http/sse_client.h"

using namespace engram::test;
using nlohmann::json;

namespace {

// Appends `n` generic events to `stream` in one request; returns the last
// position.
uint64_t append(HttpClient& c, const std::string& token, const std::string& stream, size_t n,
                const std::string& type = "Noted") {
  json events = json::array();
  for (size_t i = 0; i < n; ++i) events.push_back({{"type", type}, {"data", {{"i", i}}}});
  auto r =
      c.request("POST", "/v1/streams/" + stream, json{{"events", events}}.dump(), bearer(token));
  REQUIRE_MESSAGE(r.status == 201, r.body);
  return body_json(r)["last_position"].get<uint64_t>();
}

// Reads events until `count` arrived (or timeout_ms passed); checks each
// one's id against its data.
std::vector<uint64_t> read_events(SseClient& s, size_t count, int timeout_ms = 10'000) {
  std::vector<uint64_t> ids;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (ids.size() < count && std::chrono::steady_clock::now() < deadline) {
    auto m = s.next_event(200);
    if (!m) {
      if (s.ended()) break;
      continue;
    }
    REQUIRE(!m->id.empty());
    const json data = json::parse(m->data);
    CHECK(data["position"].get<uint64_t>() == std::stoull(m->id));
    CHECK(data["type"] == m->event);
    ids.push_back(std::stoull(m->id));
  }
  return ids;
}

}  // namespace

TEST_CASE(
    "subscribe: a client that disconnects and resumes misses nothing and gets no duplicates") {
  ServeFixture f;
  HttpClient c(f.port());
  const std::string writer = f.token({"writer"}, "w");
  const std::string reader = f.token({"reader"}, "r");
  constexpr size_t kN = 30;
  constexpr size_t kM = 20;
  constexpr size_t kK = 7;
  for (size_t i = 0; i < kN / 10; ++i) append(c, writer, "notes-a", 10);

  std::vector<uint64_t> all;
  // 1: from the start, read some, disconnect mid-way (without reading on).
  SseClient s(f.port());
  REQUIRE(s.open("/v1/subscribe?from=0", bearer(reader)) == 200);
  CHECK(s.header("content-type") == "text/event-stream");
  CHECK(s.header("transfer-encoding") == "chunked");
  auto first = read_events(s, 12);
  REQUIRE(first.size() == 12);
  all.insert(all.end(), first.begin(), first.end());
  s.close();

  // Appended while disconnected.
  for (size_t i = 0; i < kM / 10; ++i) append(c, writer, "notes-b", 10);

  // 2: an EventSource-style reconnect: the original URL with Last-Event-ID
  // (which wins over `from`).
  REQUIRE(s.open("/v1/subscribe?from=0",
                 bearer(reader, {{"Last-Event-ID", std::to_string(all.back())}})) == 200);
  auto second = read_events(s, 10);
  REQUIRE(second.size() == 10);
  all.insert(all.end(), second.begin(), second.end());
  s.close();

  append(c, writer, "notes-c", kK);

  // 3: resume with `from`, through catch-up into live.
  REQUIRE(s.open("/v1/subscribe?from=" + std::to_string(all.back()), bearer(reader)) == 200);
  auto third = read_events(s, kN + kM + kK - all.size());
  all.insert(all.end(), third.begin(), third.end());
  const uint64_t live = append(c, writer, "notes-d", 3);
  auto fourth = read_events(s, 3);
  all.insert(all.end(), fourth.begin(), fourth.end());
  s.close();

  std::vector<uint64_t> expected;
  for (uint64_t p = 1; p <= live; ++p) expected.push_back(p);
  CHECK(all == expected);  // in order: no gaps, no duplicates
  CHECK(std::set<uint64_t>(all.begin(), all.end()).size() == all.size());
  CHECK(f.server->stop() == 0);
}

TEST_CASE("subscribe: events appended after subscribing arrive live, filtered by type") {
  ServeFixture f;
  HttpClient c(f.port());
  const std::string writer = f.token({"writer"}, "w");
  const std::string reader = f.token({"replicator"}, "r");
  const uint64_t head = append(c, writer, "notes", 5);
  SseClient all(f.port());
  REQUIRE(all.open("/v1/subscribe?from=" + std::to_string(head), bearer(reader)) == 200);
  SseClient only(f.port());
  REQUIRE(only.open("/v1/subscribe?types=Wanted,Other", bearer(reader)) == 200);
  // Give both time to reach the head (they are live from here).
  CHECK(all.next_event(300) == std::nullopt);
  append(c, writer, "notes", 2, "Unwanted");
  const uint64_t last = append(c, writer, "notes", 2, "Wanted");
  CHECK(read_events(all, 4) == std::vector<uint64_t>{head + 1, head + 2, head + 3, head + 4});
  auto wanted = only.next_event(5000);
  REQUIRE(wanted);
  CHECK(wanted->event == "Wanted");
  CHECK(std::stoull(wanted->id) == last - 1);
  CHECK(f.server->stop() == 0);
}

TEST_CASE("subscribe: an idle stream gets heartbeats") {
  ServeFixture f(json{{"feed", {{"heartbeat_ms", 100}}}});
  const std::string reader = f.token({"reader"}, "r");
  SseClient s(f.port());
  REQUIRE(s.open("/v1/subscribe", bearer(reader)) == 200);
  int beats = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (beats < 3 && std::chrono::steady_clock::now() < deadline) {
    auto m = s.next(500);
    if (!m) continue;
    CHECK(m->is_comment());
    CHECK(m->comment == "heartbeat");
    ++beats;
  }
  CHECK(beats == 3);
  CHECK(f.server->stop() == 0);
}

TEST_CASE("subscribe: a live subscriber left behind is cut off with its position and resumes") {
  ServeFixture f(json{{"feed", {{"max_lag_events", 10}}}});
  HttpClient c(f.port());
  const std::string writer = f.token({"writer"}, "w");
  const std::string admin = f.token({"admin"}, "root");
  append(c, writer, "notes", 3);
  SseClient s(f.port());
  REQUIRE(s.open("/v1/subscribe", bearer(admin)) == 200);
  CHECK(read_events(s, 3).size() == 3);
  CHECK(s.next_event(300) == std::nullopt);  // live at the head
  // One append moves the head 50 past the subscriber: more than
  // max_lag_events at once.
  const uint64_t last = append(c, writer, "notes", 50);
  std::optional<SseMessage> cut;
  while (auto m = s.next_event(5000)) {
    if (m->event == "cutoff") {
      cut = m;
      break;
    }
  }
  REQUIRE(cut);
  const json data = json::parse(cut->data);
  CHECK(data["reason"] == "slow consumer");
  const uint64_t at = data["position"].get<uint64_t>();
  CHECK(at == 3);
  CHECK(s.next(5000) == std::nullopt);
  CHECK(s.ended());
  CHECK(s.clean_end());  // the terminating chunk, not a dropped connection

  REQUIRE(s.open("/v1/subscribe?from=" + std::to_string(at), bearer(admin)) == 200);
  auto rest = read_events(s, last - at);
  REQUIRE(rest.size() == last - at);
  CHECK(rest.front() == at + 1);
  CHECK(rest.back() == last);

  auto m = c.request("GET", "/metrics", "", bearer(admin));
  CHECK(m.body.find("engram_subscriber_cutoffs_total 1") != std::string::npos);
  CHECK(m.body.find("engram_subscribers 1") != std::string::npos);
  CHECK(m.body.find("route=\"/v1/subscribe\",method=\"GET\",status=\"200\"} 2") !=
        std::string::npos);
  CHECK(f.server->stop() == 0);
}

TEST_CASE("subscribe: memory content is redacted for non-owners, as in GET /v1/log") {
  ServeFixture f;
  HttpClient c(f.port());
  const std::string admin = f.token({"admin"}, "root");
  const std::string reader = f.token({"reader"}, "r");
  const std::string secret = "a private note 91c2";
  auto stored = c.request("POST", "/v1/commands/StoreMemory",
                          json{{"owner", "bob"}, {"content", secret}, {"importance", 0.5}}.dump(),
                          bearer(admin));
  REQUIRE_MESSAGE(stored.status == 201, stored.body);
  auto first_data = [&](const std::string& token) {
    SseClient s(f.port());
    REQUIRE(s.open("/v1/subscribe?types=MemoryStored", bearer(token)) == 200);
    auto m = s.next_event(5000);
    REQUIRE(m);
    return json::parse(m->data)["data"];
  };
  const json as_reader = first_data(reader);
  CHECK(as_reader["content"].is_null());
  CHECK(as_reader["content_redacted"] == true);
  CHECK(first_data(admin)["content"] == secret);
  CHECK(f.server->stop() == 0);
}

TEST_CASE("subscribe: bad input is 400 problem+json, roles and bounds are enforced") {
  ServeFixture f(json{{"feed", {{"max_subscribers", 1}}}});
  HttpClient c(f.port());
  const std::string reader = f.token({"reader"}, "r");
  const std::string writer = f.token({"writer"}, "w");
  for (const char* target : {"/v1/subscribe?from=abc", "/v1/subscribe?from=5",
                             "/v1/subscribe?types=", "/v1/subscribe?since=1"}) {
    INFO(target);
    auto r = c.request("GET", target, "", bearer(reader));
    CHECK(r.status == 400);
    CHECK(r.header("content-type") == "application/problem+json");
    CHECK(body_json(r)["code"] == "bad_query");
  }
  auto header = c.request("GET", "/v1/subscribe", "", bearer(reader, {{"Last-Event-ID", "abc"}}));
  CHECK(header.status == 400);
  CHECK(body_json(header)["code"] == "bad_header");
  CHECK(c.request("GET", "/v1/subscribe").status == 401);
  CHECK(c.request("GET", "/v1/subscribe", "", bearer(writer)).status == 403);
  CHECK(c.request("POST", "/v1/subscribe", "{}", bearer(reader)).status == 405);

  SseClient one(f.port());
  REQUIRE(one.open("/v1/subscribe", bearer(reader)) == 200);
  auto second = c.request("GET", "/v1/subscribe", "", bearer(reader));
  CHECK(second.status == 503);
  CHECK(body_json(second)["code"] == "too_many_subscribers");
  CHECK(second.header("retry-after") == "1");
  // A client that goes away frees its slot without waiting for a heartbeat.
  one.close();
  int status = 0;
  for (int i = 0; i < 100 && status != 200; ++i) {
    SseClient again(f.port());
    status = again.open("/v1/subscribe", bearer(reader));
    if (status != 200) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CHECK(status == 200);
  CHECK(f.server->stop() == 0);
}

TEST_CASE("subscribe: open streams do not hold up a shutdown") {
  ServeFixture f(json{{"shutdown_grace_ms", 30'000}});
  const std::string reader = f.token({"reader"}, "r");
  SseClient a(f.port());
  SseClient b(f.port());
  REQUIRE(a.open("/v1/subscribe", bearer(reader)) == 200);
  REQUIRE(b.open("/v1/subscribe", bearer(reader)) == 200);
  const auto start = std::chrono::steady_clock::now();
  CHECK(f.server->stop() == 0);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
  CHECK(a.next(2000) == std::nullopt);
  CHECK(a.ended());
  CHECK(a.clean_end());
}
