// The knowledge, patterns and memories query routes, through a real server.

#include <doctest/doctest.h>

#include <chrono>
#include <thread>

#include "tests/adapters/http/serve_fixture.h"

using namespace engram::test;
using nlohmann::json;

namespace {

struct Client {
  HttpClient& c;
  std::string token;
  uint64_t last = 0;

  json command(const std::string& type, const json& body) {
    auto r = c.request("POST", "/v1/commands/" + type, body.dump(), bearer(token));
    REQUIRE_MESSAGE(r.status == 201, type, " ", r.body);
    json j = body_json(r);
    last = j["last_position"].get<uint64_t>();
    return j;
  }
  HttpResponse get(const std::string& target) {
    const char sep = target.find('?') == std::string::npos ? '?' : '&';
    return c.request("GET", target + sep + "min_position=" + std::to_string(last), "",
                     bearer(token));
  }
  json ok(const std::string& target) {
    auto r = get(target);
    REQUIRE_MESSAGE(r.status == 200, target, " ", r.body);
    CHECK(std::stoull(r.header("x-engram-position")) >= last);
    return body_json(r);
  }
  HttpResponse search(const json& body, const std::string& as) {
    return c.request("POST", "/v1/memories/search?min_position=" + std::to_string(last),
                     body.dump(), bearer(as, {{"Content-Type", "application/json"}}));
  }
};

std::vector<std::string> ids(const json& page, const char* field) {
  std::vector<std::string> out;
  for (const auto& item : page["items"]) out.push_back(item[field].get<std::string>());
  return out;
}

void bad_query(HttpResponse r, const std::string& field = {}) {
  CHECK_MESSAGE(r.status == 400, r.body);
  json j = body_json(r);
  CHECK(j["type"].get<std::string>().rfind("/problems/", 0) == 0);
  if (!field.empty()) CHECK(j["field"].get<std::string>().find(field) != std::string::npos);
}

std::string first_memory_ids(const json& page) {
  std::string out;
  for (const auto& item : page["items"]) {
    out += item["memory_id"].get<std::string>() + ":" +
           std::to_string(std::lround(item["similarity"].get<double>() * 1e5)) + " ";
  }
  return out;
}

}  // namespace

TEST_CASE("read models: knowledge, patterns and memories answer a scripted scenario") {
  ServeFixture f(json{{"max_wait_ms", 2000}});
  HttpClient http(f.port());
  Client w{http, f.token({"writer"}, "lead")};

  // --- knowledge ---
  w.command("RecordKnowledge", {{"knowledge_id", "k1"},
                                {"title", "Protein folding with transformers"},
                                {"body", "Attention models predict protein structure."},
                                {"domain", "biology"},
                                {"tags", {"proteins"}},
                                {"confidence", 0.8}});
  w.command("RecordKnowledge", {{"knowledge_id", "k2"},
                                {"title", "Learning rate schedules"},
                                {"body", "Warmup then cosine decay keeps transformers stable."},
                                {"domain", "ml"},
                                {"tags", {"training"}},
                                {"confidence", 0.6}});
  w.command("RecordKnowledge", {{"knowledge_id", "k3"},
                                {"title", "Soil microbes"},
                                {"body", "Microbial diversity in farm soil."},
                                {"domain", "biology"},
                                {"confidence", 0.5}});
  // Read-your-writes: the search right after the command sees it.
  json kw = w.ok("/v1/knowledge/search?q=protein%20structure&mode=keyword");
  REQUIRE(!kw["items"].empty());
  CHECK(kw["items"][0]["id"] == "k1");
  CHECK(ids(w.ok("/v1/knowledge/search?q=transformers&mode=keyword&domain=ml"), "id") ==
        std::vector<std::string>{"k2"});
  CHECK(ids(w.ok("/v1/knowledge/search?q=transformers&tag=proteins"), "id") ==
        std::vector<std::string>{"k1"});
  json hybrid = w.ok("/v1/knowledge/search?q=transformers&mode=hybrid");
  CHECK(hybrid["items"].size() >= 2);
  CHECK(hybrid["items"][0].contains("keyword_rank"));
  json semantic = w.ok("/v1/knowledge/search?q=soil%20microbial&mode=semantic");
  REQUIRE(!semantic["items"].empty());
  CHECK(semantic["items"][0]["id"] == "k3");
  CHECK(w.ok("/v1/knowledge/k2")["title"] == "Learning rate schedules");
  w.command("ReviseKnowledge", {{"knowledge_id", "k3"}, {"body", "Fungal networks in forests."}});
  CHECK(w.ok("/v1/knowledge/search?q=microbial&mode=keyword")["items"].empty());
  CHECK(ids(w.ok("/v1/knowledge/search?q=fungal&mode=keyword"), "id") ==
        std::vector<std::string>{"k3"});
  w.command("RetractKnowledge", {{"knowledge_id", "k2"}, {"reason", "superseded"}});
  CHECK(w.get("/v1/knowledge/k2").status == 404);
  CHECK(ids(w.ok("/v1/knowledge/search?q=cosine%20decay&mode=keyword"), "id").empty());

  // --- patterns ---
  std::string lr_ml;
  for (int i = 0; i < 10; ++i) {
    json r = w.command("ObservePattern", {{"domain", "ml"},
                                          {"signature", "lower the learning rate after a plateau"},
                                          {"outcome", i < 8 ? "success" : "failure"},
                                          {"reward", 1.0}});
    lr_ml = r["stream"].get<std::string>().substr(std::string("pattern-").size());
  }
  w.command("ObservePattern", {{"domain", "ml"},
                               {"signature", "double the batch size"},
                               {"outcome", "success"},
                               {"reward", 0.5}});
  w.command("ObservePattern", {{"domain", "robotics"},
                               {"signature", "lower the learning rate after a plateau in reward"},
                               {"outcome", "success"},
                               {"reward", 0.2}});
  json rec = w.ok("/v1/patterns/recommend?domain=ml");
  REQUIRE(rec["items"].size() == 2);
  CHECK(rec["items"][0]["pattern_id"] == lr_ml);
  CHECK(rec["items"][0]["wilson_lower"].get<double>() == doctest::Approx(0.4902).epsilon(0.001));
  json one = w.ok("/v1/patterns/" + lr_ml);
  CHECK(one["observations"] == 10);
  CHECK(one["successes"] == 8);
  json similar = w.ok("/v1/patterns/" + lr_ml + "/similar");
  REQUIRE(similar["items"].size() == 1);
  CHECK(similar["items"][0]["domain"] == "robotics");
  CHECK(w.get("/v1/patterns/0000000000000000").status == 404);

  // --- memories: an agent searches its own only ---
  Client alice{http, f.token({"writer"}, "agent-alice", "alice")};
  alice.command("StoreMemory", {{"owner", "alice"},
                                {"memory_id", "m1"},
                                {"content", "prefers green tea in the morning"},
                                {"importance", 0.4}});
  alice.command("StoreMemory", {{"owner", "alice"},
                                {"memory_id", "m2"},
                                {"content", "allergic to peanuts"},
                                {"importance", 0.9},
                                {"tags", {"health"}}});
  auto found = alice.search({{"owner", "alice"}, {"text", "green tea"}, {"k", 5}}, alice.token);
  REQUIRE_MESSAGE(found.status == 200, found.body);
  json fj = body_json(found);
  REQUIRE(fj["items"].size() == 2);
  CHECK(fj["items"][0]["memory_id"] == "m1");
  CHECK(fj["items"][0]["content"] == "prefers green tea in the morning");
  auto tagged =
      alice.search({{"owner", "alice"}, {"text", "green tea"}, {"tags", {"health"}}}, alice.token);
  CHECK(ids(body_json(tagged), "memory_id") == std::vector<std::string>{"m2"});
  const std::string bob = f.token({"writer"}, "agent-bob", "bob");
  auto other = alice.search({{"owner", "alice"}, {"text", "tea"}}, bob);
  CHECK(other.status == 403);
  CHECK(body_json(other)["code"] == "not_own_memory");
  const std::string admin = f.token({"admin"}, "root");
  CHECK(alice.search({{"owner", "alice"}, {"text", "tea"}}, admin).status == 200);

  // --- bad queries: 400 problem+json, nothing served ---
  bad_query(alice.search({{"owner", "alice"}, {"text", "tea"}, {"k", 100000}}, alice.token), "k");
  bad_query(alice.search({{"owner", "alice"}, {"vector", {0.1, 0.2, 0.3}}}, alice.token), "vector");
  bad_query(alice.search({{"owner", "alice"}, {"text", "tea"}, {"colour", "red"}}, alice.token),
            "colour");
  bad_query(
      alice.search({{"owner", "alice"}, {"text", "t"}, {"vector", json::array()}}, alice.token));
  bad_query(w.get("/v1/knowledge/search?q=tea&colour=red"), "colour");
  bad_query(w.get("/v1/knowledge/search?q=tea&mode=fuzzy"), "mode");
  bad_query(w.get("/v1/knowledge/search?q=tea&limit=1000"), "limit");
  bad_query(w.get("/v1/knowledge/search?q=protein%20AND"));
  bad_query(w.get("/v1/patterns/recommend"), "domain");
  bad_query(w.get("/v1/patterns/" + lr_ml + "/similar?min_score=2"), "min_score");
  bad_query(w.get("/v1/agents?cursor=" + std::string(300, 'c')), "cursor");
  bad_query(w.get("/v1/tasks?colour=red"), "colour");
  CHECK(http.request("GET", "/v1/memories/search", "", bearer(alice.token)).status == 405);
  CHECK(f.server->stop() == 0);
}

TEST_CASE("memories: after a kill the snapshot loads, the tail is re-read, answers are the same") {
  ServeFixture f(json{{"log_level", "info"}});
  std::string before;
  uint64_t head = 0;
  {
    HttpClient http(f.port());
    Client alice{http, f.token({"writer"}, "agent-alice", "alice")};
    for (int i = 0; i < 20; ++i) {
      alice.command("StoreMemory", {{"owner", "alice"},
                                    {"memory_id", "m" + std::to_string(i)},
                                    {"content", "note " + std::to_string(i) + " about topic " +
                                                    std::to_string(i % 4)},
                                    {"importance", 0.5}});
    }
  }
  // A clean stop writes the snapshot at the checkpoint.
  REQUIRE(f.server->stop() == 0);
  f.start(json{{"log_level", "info"}});
  {
    HttpClient http(f.port());
    Client alice{http, f.token({"writer"}, "agent-alice", "alice")};
    // The tail: after the snapshot; then the server is killed, so no
    // snapshot covers it.
    for (int i = 20; i < 25; ++i) {
      alice.command("StoreMemory",
                    {{"owner", "alice"},
                     {"memory_id", "m" + std::to_string(i)},
                     {"content", "late note " + std::to_string(i) + " about topic 1"},
                     {"importance", 0.5}});
    }
    alice.command("ForgetMemory", {{"owner", "alice"}, {"memory_id", "m1"}});
    auto r =
        alice.search({{"owner", "alice"}, {"text", "note about topic 1"}, {"k", 10}}, alice.token);
    REQUIRE(r.status == 200);
    before = first_memory_ids(body_json(r));
    head = alice.last;
  }
  f.server->stop(SIGKILL);
  f.start(json{{"log_level", "info"}});
  HttpClient http(f.port());
  Client alice{http, f.token({"writer"}, "agent-alice", "alice")};
  alice.last = head;  // the search waits until the model covers the whole log
  auto r =
      alice.search({{"owner", "alice"}, {"text", "note about topic 1"}, {"k", 10}}, alice.token);
  REQUIRE_MESSAGE(r.status == 200, r.body);
  CHECK(first_memory_ids(body_json(r)) == before);
  CHECK(before.find("m1:") == std::string::npos);
  CHECK(before.find("m21:") != std::string::npos);
  // The log line is written by the logger's own thread, which a loaded
  // machine may run a little after the answer.
  std::string logs;
  for (int i = 0; i < 200; ++i) {
    logs = f.server->stderr_text();
    if (logs.find("memories index loaded from its snapshot") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  INFO(logs);
  CHECK(logs.find("memories index loaded from its snapshot") != std::string::npos);
  CHECK(f.server->stop() == 0);
}
