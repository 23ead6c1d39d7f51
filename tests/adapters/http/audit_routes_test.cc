// The audit routes (/v1/audit/...) through a real server: history, trace,
// actor, state, verify, checkpoints and proofs, admin only.

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cctype>
#include <future>
#include <thread>

#include "adapters/http/api.h"
#include "core/checkpoint.h"
#include "core/data_dir.h"
#include "core/merkle.h"
#include "core/sha256.h"
#include "core/time.h"
#include "tests/support/log_fixture.h"
#include "tests/support/rfc3339_cases.h"
#include "tests/adapters/http/serve_fixture.h"

using namespace engram;
using namespace engram::test;
using nlohmann::json;

namespace {

constexpr const char* kCorrelation = "0190a6f0-0000-7000-8000-00000000a0d1";

struct Audit {
  HttpClient& c;
  std::string admin;

  HttpResponse get(const std::string& target, const std::string& as = {}) {
    return c.request("GET", target, "", bearer(as.empty() ? admin : as));
  }
  json ok(const std::string& target) {
    auto r = get(target);
    REQUIRE_MESSAGE(r.status == 200, target, " ", r.body);
    return body_json(r);
  }
  // A problem answer: its status, code and (when given) the field it names.
  json problem(const std::string& target, int status, const std::string& code,
               const std::string& field = {}) {
    auto r = get(target);
    CHECK_MESSAGE(r.status == status, target, " ", r.body);
    CHECK(r.header("content-type") == "application/problem+json");
    json j = body_json(r);
    CHECK_MESSAGE(j.value("code", "") == code, target, " ", r.body);
    if (!field.empty()) CHECK_MESSAGE(j.value("field", "") == field, target, " ", r.body);
    return j;
  }
  // The signed checkpoints once the newest covers `position` (the server
  // signs every event here, on its own thread).
  json checkpoints_covering(uint64_t position) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    json j;
    while (std::chrono::steady_clock::now() < deadline) {
      j = ok("/v1/audit/checkpoints");
      const json& list = j["checkpoints"];
      if (!list.empty() && list.back()["position"].get<uint64_t>() >= position) return j;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    FAIL("no signed checkpoint covers position ", position, ": ", j.dump());
    return j;
  }
};

json command(HttpClient& c, const std::string& token, const std::string& type, const json& body,
             std::vector<std::pair<std::string, std::string>> headers = {}) {
  auto r = c.request("POST", "/v1/commands/" + type, body.dump(), bearer(token, headers));
  REQUIRE_MESSAGE(r.status == 201, type, " ", r.body);
  return body_json(r);
}

core::Hash256 hash_of(const json& hex) {
  core::Hash256 h{};
  REQUIRE(hex.is_string());
  REQUIRE(core::from_hex(hex.get<std::string>(), h));
  return h;
}

std::vector<core::Hash256> path_of(const json& list) {
  std::vector<core::Hash256> out;
  for (const auto& h : list) out.push_back(hash_of(h));
  return out;
}

std::vector<uint64_t> positions(const json& events) {
  std::vector<uint64_t> out;
  for (const auto& e : events) out.push_back(e["position"].get<uint64_t>());
  return out;
}

}  // namespace

TEST_CASE("audit routes: history, trace, actor, state, verify and proofs for an admin") {
  ServeFixture f(
      json{{"audit", {{"checkpoint_every_events", 1}, {"checkpoint_interval_ms", 100}}}});
  HttpClient http(f.port());
  const std::string writer = f.token({"writer"}, "lead@lab");
  const std::string other = f.token({"writer"}, "other");
  const std::string reader = f.token({"reader"}, "ops");
  Audit a{http, f.token({"admin"}, "auditor")};

  // Before any event no checkpoint can cover a position.
  json none = a.problem("/v1/audit/proof/1", 400, "bad_query");
  CHECK(none.value("detail", "").find("no signed checkpoint covers") != std::string::npos);
  CHECK(a.ok("/v1/audit/checkpoints")["checkpoints"].empty());

  // 1: CreateProject; 2: RequestResearch caused by 1's event, same flow;
  // 3: another actor's project; 4: the first project's phase moves on.
  json created = command(http, writer, "CreateProject", {{"project_id", "p1"}, {"name", "Vision"}},
                         {{"X-Correlation-Id", kCorrelation}});
  const std::string event1 = created["events"][0]["id"].get<std::string>();
  const json first_checkpoints = a.checkpoints_covering(1);
  json requested = command(http, writer, "RequestResearch",
                           {{"task_id", "t1"}, {"project_id", "p1"}, {"title", "Find X"}},
                           {{"X-Correlation-Id", kCorrelation}, {"X-Causation-Id", event1}});
  const std::string event2 = requested["events"][0]["id"].get<std::string>();
  command(http, other, "CreateProject", {{"project_id", "p2"}, {"name", "Other"}});
  json advanced = command(http, writer, "AdvanceProjectPhase",
                          {{"project_id", "p1"}, {"to_phase", "development"}});
  const uint64_t head = advanced["last_position"].get<uint64_t>();
  REQUIRE(head == 4);

  SUBCASE("history lists a stream's events with who, which command and why") {
    json h = a.ok("/v1/audit/history/task-t1");
    CHECK(h["stream"] == "task-t1");
    CHECK(h["version"] == 1);
    CHECK(h["truncated"] == false);
    REQUIRE(h["events"].size() == 1);
    const json& e = h["events"][0];
    CHECK(e["position"] == 2);
    CHECK(e["type"] == "ResearchRequested");
    CHECK(e["id"] == event2);
    CHECK(e["actor"] == "lead@lab");
    CHECK(e["command_id"] == requested["command_id"]);
    CHECK(e["correlation_id"] == kCorrelation);
    CHECK(e["causation_id"] == event1);

    // Percent-decoded like /v1/streams/{stream}; from_version and limit page.
    json p = a.ok("/v1/audit/history/project%2Dp1?limit=1");
    CHECK(p["stream"] == "project-p1");
    CHECK(p["version"] == 2);
    CHECK(positions(p["events"]) == std::vector<uint64_t>{1});
    CHECK(p["truncated"] == true);
    CHECK(p["events"][0]["causation_id"].is_null());
    CHECK(p["events"][0]["correlation_id"] == kCorrelation);
    json rest = a.ok("/v1/audit/history/project-p1?from_version=2");
    CHECK(positions(rest["events"]) == std::vector<uint64_t>{4});
    CHECK(rest["truncated"] == false);

    a.problem("/v1/audit/history/project-p9", 404, "not_found");
    a.problem("/v1/audit/history/project-p1?limit=0", 400, "bad_query", "limit");
    a.problem("/v1/audit/history/project-p1?limit=10001", 400, "bad_query", "limit");
    a.problem("/v1/audit/history/project-p1?from=1", 400, "bad_query", "from");
    a.problem("/v1/audit/history/bad%zz", 400, "invalid_field", "stream");
  }

  SUBCASE("trace nests the caused command under the event that caused it") {
    json t = a.ok(std::string("/v1/audit/trace/") + kCorrelation);
    CHECK(t["correlation_id"] == kCorrelation);
    CHECK(t["events"] == 2);
    CHECK(t["truncated"] == false);
    REQUIRE(t["roots"].size() == 1);
    const json& root = t["roots"][0];
    CHECK(root["command_id"] == created["command_id"]);
    CHECK(root["caused_by"].is_null());
    CHECK(root["actor"] == "lead@lab");
    CHECK(root["stream"] == "project-p1");
    CHECK(root["caused"].empty());
    REQUIRE(root["events"].size() == 1);
    const json& e1 = root["events"][0];
    CHECK(e1["id"] == event1);
    REQUIRE(e1["caused"].size() == 1);
    const json& child = e1["caused"][0];
    CHECK(child["command_id"] == requested["command_id"]);
    CHECK(child["caused_by"] == event1);
    CHECK(child["stream"] == "task-t1");
    REQUIRE(child["events"].size() == 1);
    CHECK(child["events"][0]["id"] == event2);
    CHECK(child["events"][0]["type"] == "ResearchRequested");

    a.problem("/v1/audit/trace/not-a-uuid", 400, "invalid_field", "correlation_id");
    a.problem("/v1/audit/trace/0190a6f0-0000-7000-8000-00000000ffff", 404, "not_found");
  }

  SUBCASE("actor lists what one subject did, by time, in pages") {
    json all = a.ok("/v1/audit/actor/lead%40lab");
    CHECK(all["actor"] == "lead@lab");
    CHECK(positions(all["events"]) == std::vector<uint64_t>{1, 2, 4});
    CHECK(all["truncated"] == false);
    CHECK(all["next_cursor"].is_null());
    for (const auto& e : all["events"]) CHECK(e["actor"] == "lead@lab");
    CHECK(positions(a.ok("/v1/audit/actor/other")["events"]) == std::vector<uint64_t>{3});

    json page = a.ok("/v1/audit/actor/lead%40lab?limit=2");
    CHECK(positions(page["events"]) == std::vector<uint64_t>{1, 2});
    CHECK(page["truncated"] == true);
    REQUIRE(page["next_cursor"] == 2);
    json next = a.ok("/v1/audit/actor/lead%40lab?limit=2&cursor=2");
    CHECK(positions(next["events"]) == std::vector<uint64_t>{4});
    CHECK(next["truncated"] == false);

    // since: RFC 3339 with nanoseconds (event 2's own time, so event 1,
    // recorded just before it, is out); until: Unix nanoseconds or RFC 3339.
    const std::string at2 = all["events"][1]["recorded_at"].get<std::string>();
    REQUIRE(at2.size() == 30);  // 2026-01-02T03:04:05.123456789Z
    CHECK(positions(a.ok("/v1/audit/actor/lead%40lab?since=" + at2)["events"]) ==
          std::vector<uint64_t>{2, 4});
    CHECK(positions(a.ok("/v1/audit/actor/lead%40lab?until=" + at2)["events"]) ==
          std::vector<uint64_t>{1, 2});
    CHECK(a.ok("/v1/audit/actor/lead%40lab?until=0")["events"].empty());
    CHECK(a.ok("/v1/audit/actor/lead%40lab?since=2200-01-01T00:00:00Z")["events"].empty());
    CHECK(positions(a.ok("/v1/audit/actor/lead%40lab?since=2000-02-29T23:59:59.5Z&until="
                         "9000000000000000000")["events"]) == std::vector<uint64_t>{1, 2, 4});
    CHECK(a.ok("/v1/audit/actor/nobody")["events"].empty());

    a.problem("/v1/audit/actor/lead%40lab?since=yesterday", 400, "bad_query", "since");
    a.problem("/v1/audit/actor/lead%40lab?until=2026-02-30T00:00:00Z", 400, "bad_query", "until");
    a.problem("/v1/audit/actor/lead%40lab?since=2026-01-02T03:04:05", 400, "bad_query", "since");
    a.problem("/v1/audit/actor/lead%40lab?since=2026-01-02T03:04:05Z&until=2025-01-01T00:00:00Z",
              400, "bad_query", "since");
    a.problem("/v1/audit/actor/lead%40lab?limit=10001", 400, "bad_query", "limit");
  }

  SUBCASE("state shows an aggregate as of a position") {
    json before = a.ok("/v1/audit/state/project-p1?at=3");
    CHECK(before["at"] == 3);
    CHECK(before["version"] == 1);
    CHECK(before["position"] == 1);
    CHECK(before["state"]["phase"] == "research");
    CHECK(before["state"]["name"] == "Vision");
    json now = a.ok("/v1/audit/state/project-p1");
    CHECK(now["at"] == head);
    CHECK(now["version"] == 2);
    CHECK(now["position"] == 4);
    CHECK(now["state"]["phase"] == "development");
    json not_yet = a.ok("/v1/audit/state/task-t1?at=1");
    CHECK(not_yet["version"] == 0);
    CHECK(not_yet["state"]["requested"] == false);
    json task = a.ok("/v1/audit/state/task-t1?at=2");
    CHECK(task["version"] == 1);
    CHECK(task["state"]["requested"] == true);
    CHECK(task["state"]["project_id"] == "p1");

    a.problem("/v1/audit/state/task-t9", 404, "not_found");
    a.problem("/v1/audit/state/project-p1?at=0", 400, "bad_query", "at");
    a.problem("/v1/audit/state/project-p1?at=5", 400, "bad_query", "at");
  }

  SUBCASE("verify, checkpoints and proofs hold the log to its signed checkpoints") {
    json cps = a.checkpoints_covering(head);
    const json& list = cps["checkpoints"];
    REQUIRE(list.size() >= 2);
    const json& oldest = first_checkpoints["checkpoints"][0];
    const json& newest = list.back();
    CHECK(oldest["position"] == 1);
    CHECK(newest["position"] == head);
    CHECK(newest["format"] == "engram-checkpoint-v1");

    json v = a.ok("/v1/audit/verify");
    CHECK(v["ok"] == true);
    CHECK(v["events_checked"] == head);
    CHECK(v["whole_log"] == true);
    CHECK(v["head_position"] == head);
    CHECK(v["checkpoints"]["ok"] == true);
    CHECK(v["checkpoints"]["key_pinned"] == true);
    CHECK(v["checkpoints"]["checked"].get<uint64_t>() >= 2);
    CHECK(v["checkpoints"]["key_id"] == newest["key_id"]);
    json part = a.ok("/v1/audit/verify?from=2&to=3");
    CHECK(part["ok"] == true);
    CHECK(part["events_checked"] == 2);
    CHECK(part["whole_log"] == false);
    a.problem("/v1/audit/verify?from=3&to=2", 400, "bad_query", "from");
    a.problem("/v1/audit/verify?from=9", 400, "bad_query", "from");
    a.problem("/v1/audit/verify?to=x", 400, "bad_query", "to");
    a.problem("/v1/audit/verify?threads=4", 400, "bad_query", "threads");

    // Inclusion of event 2 in the newest checkpoint; the path leads to its root.
    json history = a.ok("/v1/audit/history/task-t1");
    json proof = a.ok("/v1/audit/proof/2");
    CHECK(proof["format"] == "engram-inclusion-proof-v1");
    CHECK(proof["position"] == 2);
    CHECK(proof["tree_size"] == head);
    CHECK(proof["event_hash"] == history["events"][0]["hash"]);
    CHECK(proof["checkpoint"] == newest);
    CHECK(core::merkle::verify_inclusion(1, head,
                                         core::merkle::leaf_hash(hash_of(proof["event_hash"])),
                                         path_of(proof["path"]), hash_of(newest["tree_root"])));
    // Against the first checkpoint: event 1 is the whole tree.
    json in_first = a.ok("/v1/audit/proof/1?tree_size=1");
    CHECK(in_first["tree_size"] == 1);
    CHECK(in_first["path"].empty());
    a.problem("/v1/audit/proof/2?tree_size=1", 400, "bad_query");
    a.problem("/v1/audit/proof/1?tree_size=99", 400, "bad_query");
    a.problem("/v1/audit/proof/x", 400, "invalid_field", "position");
    a.problem("/v1/audit/proof/0", 400, "invalid_field", "position");

    json cons = a.ok("/v1/audit/consistency?old=1&new=" + std::to_string(head));
    CHECK(cons["format"] == "engram-consistency-proof-v1");
    CHECK(cons["old"] == oldest);
    CHECK(cons["new"] == newest);
    CHECK(core::merkle::verify_consistency(1, head, hash_of(oldest["tree_root"]),
                                           hash_of(newest["tree_root"]), path_of(cons["path"])));
    a.problem("/v1/audit/consistency?old=1", 400, "bad_query", "new");
    a.problem("/v1/audit/consistency?old=4&new=1", 400, "bad_query", "old");
    a.problem("/v1/audit/consistency?old=1&new=5", 400, "bad_query");

    // A checkpoint of the same size signed over another tree (a rewritten
    // log, seen from the checkpoint's side): the proof is refused with 409,
    // and verify reports it as a finding in a 200.
    auto key = core::SigningKey::load(f.data / "audit" / "signing-key.pem");
    REQUIRE(key);
    auto genuine = core::Checkpoint::from_json(newest);
    REQUIRE(genuine);
    core::Hash256 other_root = genuine->tree_root;
    other_root[0] ^= 0xff;
    const core::Checkpoint forged =
        core::Checkpoint::sign(*key, genuine->log_id, genuine->position, genuine->head_hash,
                               other_root, genuine->signed_at_ns + 1);
    REQUIRE(core::CheckpointFile(core::DataDir(f.data).checkpoints_file()).append(forged));
    json tampered =
        a.problem("/v1/audit/proof/2?tree_size=" + std::to_string(head), 409, "log_tampered");
    CHECK(tampered.value("detail", "").find("no longer matches") != std::string::npos);
    json found = a.ok("/v1/audit/verify");
    CHECK(found["ok"] == false);
    CHECK(found["checkpoints"]["ok"] == false);
    CHECK(found["checkpoints"]["first_bad"]["position"] == head);
  }

  SUBCASE("only admins; GET only; unknown audit routes are 404") {
    const std::vector<std::string> routes = {"/v1/audit/verify",
                                             "/v1/audit/checkpoints",
                                             "/v1/audit/history/project-p1",
                                             std::string("/v1/audit/trace/") + kCorrelation,
                                             "/v1/audit/actor/lead%40lab",
                                             "/v1/audit/state/project-p1",
                                             "/v1/audit/proof/1",
                                             "/v1/audit/consistency?old=1&new=1"};
    for (const auto& r : routes) {
      for (const auto* token : {&writer, &reader}) {
        auto res = a.get(r, *token);
        CHECK_MESSAGE(res.status == 403, r, " ", res.body);
        CHECK(body_json(res).value("code", "") == "role_not_allowed");
      }
      auto post = http.request("POST", r, "{}", bearer(a.admin));
      CHECK_MESSAGE(post.status == 405, r, " ", post.body);
      CHECK(post.header("allow") == "GET");
    }
    CHECK(http.request("GET", "/v1/audit/verify").status == 401);
    a.problem("/v1/audit/nothing", 404, "not_found");
    a.problem("/v1/audit/history/", 404, "not_found");
  }

  CHECK(f.server->stop() == 0);
}

TEST_CASE("audit routes: a verify checks at most max_audit_verify_events events") {
  TempDir dir;
  auto log = core::Log::open(dir.path());
  REQUIRE(log);
  for (int i = 0; i < 5; ++i) {
    core::EventData e;
    e.type = "Noted";
    REQUIRE((*log)->append("notes", core::ExpectedVersion::any(), {&e, 1}));
  }
  auto keys = test::open_keys_or_die(dir.path());
  commands::CommandBus bus(**log, *keys);
  core::metrics::Registry metrics;
  http::ApiOptions options;
  options.access_log = false;
  options.max_audit_verify_events = 3;
  http::Api api(**log, bus, metrics, options);  // auth off: an admin
  auto get = [&](const std::string& target) {
    http::Request r;
    r.method = "GET";
    r.target = target;
    r.remote_ip = "127.0.0.1";
    std::promise<http::Response> p;
    auto f = p.get_future();
    api.handle(std::move(r), [&p](std::function<http::Response()> make) { p.set_value(make()); });
    http::Response out = f.get();
    return std::make_pair(out.status, json::parse(out.body, nullptr, false));
  };

  // The whole log (5 events) and 2..5 are over the bound: 400 naming `to`.
  for (const char* target : {"/v1/audit/verify", "/v1/audit/verify?from=2&to=9"}) {
    auto [status, body] = get(target);
    CHECK_MESSAGE(status == 400, target, " ", body.dump());
    CHECK(body.value("code", "") == "bad_query");
    CHECK(body.value("field", "") == "to");
    CHECK(body.value("detail", "").find("at most 3 events") != std::string::npos);
  }
  auto [first, head3] = get("/v1/audit/verify?to=3");
  CHECK(first == 200);
  CHECK(head3["ok"] == true);
  CHECK(head3["events_checked"] == 3);
  CHECK(head3["whole_log"] == false);
  auto [rest, tail3] = get("/v1/audit/verify?from=3");
  CHECK(rest == 200);
  CHECK(tail3["events_checked"] == 3);
  CHECK(tail3["head_position"] == 5);
  // No checkpoint file: no "checkpoints" part.
  CHECK_FALSE(tail3.contains("checkpoints"));
}

namespace {

std::string query_escape(std::string_view s) {
  std::string out;
  for (char ch : s) {
    const auto u = static_cast<unsigned char>(ch);
    if (std::isalnum(u) != 0 || ch == '-' || ch == '.' || ch == '_' || ch == ':') {
      out += ch;
    } else {
      out += fmt::format("%{:02X}", u);
    }
  }
  return out;
}

}  // namespace

TEST_CASE("audit routes: actor since and until hold to the strict RFC 3339 table") {
  ServeFixture f;
  HttpClient http(f.port());
  const std::string writer = f.token({"writer"}, "lead");
  Audit a{http, f.token({"admin"}, "auditor")};
  for (int i = 0; i < 3; ++i) {
    auto r = http.request("POST", "/v1/streams/notes",
                          json{{"events", {{{"type", "T"}, {"data", json::object()}}}}}.dump(),
                          bearer(writer));
    REQUIRE_MESSAGE(r.status == 201, r.body);
  }
  // Each event's own time, read back with the parser under test.
  std::vector<std::pair<uint64_t, int64_t>> recorded;
  const json all = a.ok("/v1/audit/actor/lead");
  for (const auto& e : all["events"]) {
    const auto at = core::parse_rfc3339_ns(e["recorded_at"].get<std::string>());
    REQUIRE(at.has_value());
    recorded.emplace_back(e["position"].get<uint64_t>(), *at);
  }
  REQUIRE(recorded.size() == 3);

  for (const auto& c : rfc3339_cases()) {
    for (const char* bound : {"since", "until"}) {
      CAPTURE(c.text);
      CAPTURE(c.what);
      const std::string target =
          fmt::format("/v1/audit/actor/lead?{}={}", bound, query_escape(c.text));
      if (!c.unix_ns) {
        a.problem(target, 400, "bad_query", bound);
        continue;
      }
      const bool since = std::string_view(bound) == "since";
      std::vector<uint64_t> expected;
      for (const auto& [position, at] : recorded) {
        if (since ? at >= *c.unix_ns : at <= *c.unix_ns) expected.push_back(position);
      }
      CHECK(positions(a.ok(target)["events"]) == expected);
    }
  }
  CHECK(f.server->stop() == 0);
}
