// engram audit against real data dirs: a workflow written through a real
// server, the tampering an attacker with disk access could do, proofs
// checked with no database, and audits of a server under write load.

#include <doctest/doctest.h>

#include <stdlib.h>

#include <atomic>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "adapters/audit/audit.h"
#include "core/checkpoint.h"
#include "core/data_dir.h"
#include "core/event.h"
#include "core/keys.h"
#include "core/log.h"
#include "core/log_tree.h"
#include "core/time.h"
#include "tests/support/http_client.h"
#include "tests/support/raw_db.h"
#include "tests/support/rfc3339_cases.h"
#include "tests/support/serve_process.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

using engram::test::HttpClient;
using engram::test::RawDb;
using engram::test::run;
using engram::test::RunResult;
using engram::test::ServeProcess;
using engram::test::TempDir;
using nlohmann::json;
namespace core = engram::core;
namespace keys = engram::core::keys;

namespace {

const std::string kEngram = ENGRAM_BINARY;

RunResult audit(std::vector<std::string> args) {
  std::vector<std::string> argv{kEngram, "audit"};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv);
}

json audit_json(std::vector<std::string> args, int expect_exit = 0) {
  args.push_back("--json");
  const RunResult r = audit(args);
  REQUIRE_MESSAGE(r.exit_code == expect_exit, r.err, r.out);
  return json::parse(r.out);
}

// A server without auth (loopback): every request is an admin's.
struct Server {
  std::string data;
  std::unique_ptr<ServeProcess> proc;
  std::unique_ptr<HttpClient> http;
  explicit Server(std::string d, std::vector<std::string> extra = {}) : data(std::move(d)) {
    std::vector<std::string> args{"--no-auth", "--log-level", "warn"};
    args.insert(args.end(), extra.begin(), extra.end());
    proc = std::make_unique<ServeProcess>(kEngram, data, args);
    REQUIRE_MESSAGE(proc->running(), proc->stderr_text());
    http = std::make_unique<HttpClient>(proc->port());
  }
  // A command; returns the response body.
  json command(const std::string& type, const json& body, const std::string& correlation,
               const std::string& causation) {
    std::vector<std::pair<std::string, std::string>> headers{{"X-Correlation-Id", correlation}};
    if (!causation.empty()) headers.emplace_back("X-Causation-Id", causation);
    auto r = http->request("POST", "/v1/commands/" + type, body.dump(), headers);
    REQUIRE_MESSAGE(r.status == 201, type, " ", r.body);
    return json::parse(r.body);
  }
  void stop() { REQUIRE(proc->stop() == 0); }
};

std::string first_event_id(const json& outcome) {
  return outcome["events"][0]["id"].get<std::string>();
}

// Every command node of a trace, depth first, with its depth.
void walk(const json& node, int depth, std::vector<std::pair<std::string, int>>& out) {
  out.emplace_back(node["events"][0]["type"].get<std::string>(), depth);
  for (const auto& e : node["events"]) {
    for (const auto& child : e["caused"]) walk(child, depth + 1, out);
  }
  for (const auto& child : node["caused"]) walk(child, depth + 1, out);
}

// A stopped server's data dir holding a short workflow and a signed checkpoint.
struct Workflow {
  TempDir dir;
  std::string data = dir / "data";
  std::string correlation = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
  uint64_t head = 0;
  uint64_t workflow_events = 0;  // the events of `correlation`

  Workflow() {
    Server s(data);
    // project → research task → assignment → findings → checkpoint → approval → knowledge,
    // each command caused by the previous one's first event.
    auto o = s.command("RegisterAgent", {{"agent_id", "a1"}, {"name", "Researcher"}},
                       "0190a1b2-0000-7000-8000-000000000001", "");
    o = s.command("CreateProject", {{"project_id", "p1"}, {"name", "Vision"}}, correlation, "");
    o = s.command("RequestResearch", {{"task_id", "t1"}, {"project_id", "p1"}, {"title", "Find X"}},
                  correlation, first_event_id(o));
    o = s.command("AssignTask", {{"task_id", "t1"}, {"agent_id", "a1"}}, correlation,
                  first_event_id(o));
    o = s.command("SubmitFindings", {{"task_id", "t1"}, {"summary", "X is Y"}}, correlation,
                  first_event_id(o));
    o = s.command("RequestCheckpoint", {{"task_id", "t1"}}, correlation, first_event_id(o));
    const std::string checkpoint_event = first_event_id(o);
    o = s.command("ApproveCheckpoint", {{"task_id", "t1"}}, correlation, checkpoint_event);
    // The approval caused two things: knowledge recorded, and the project moved on.
    const std::string approved = first_event_id(o);
    s.command("RecordKnowledge",
              {{"knowledge_id", "k1"},
               {"title", "X"},
               {"body", "X is Y"},
               {"domain", "ml"},
               {"confidence", 0.8},
               {"source_agent", "a1"},
               {"source_task", "t1"}},
              correlation, approved);
    o = s.command("AdvanceProjectPhase", {{"project_id", "p1"}, {"to_phase", "development"}},
                  correlation, approved);
    workflow_events = o["last_position"].get<uint64_t>() - 1;
    // Unrelated events after it, so the log's tail is long enough to drop ten.
    for (int i = 2; i <= 5; ++i) {
      o = s.command("RegisterAgent", {{"agent_id", "a" + std::to_string(i)}, {"name", "Other"}},
                    "0190a1b2-0000-7000-8000-000000000001", "");
    }
    head = o["last_position"].get<uint64_t>();
    s.stop();  // signs the final head
  }
};

void check_fails(const std::string& data, const std::string& problem_part, uint64_t position,
                 std::vector<std::string> extra = {}) {
  std::vector<std::string> args{"verify", "--data", data};
  args.insert(args.end(), extra.begin(), extra.end());
  const json r = audit_json(args, 1);
  CHECK_FALSE(r["ok"].get<bool>());
  std::string problem = r.value("problem", "");
  uint64_t at = r.value("first_bad_position", uint64_t{0});
  // The chain's own finding comes first; the checkpoints' follows from it.
  if (!r.contains("problem") && r.contains("checkpoints") && !r["checkpoints"]["ok"].get<bool>()) {
    problem = r["checkpoints"]["first_bad"]["problem"].get<std::string>();
    at = r["checkpoints"]["first_bad"]["position"].get<uint64_t>();
  }
  CHECK_MESSAGE(problem.find(problem_part) != std::string::npos, problem);
  CHECK(at == position);
}

}  // namespace

TEST_CASE("audit: a workflow's history, causation tree, actor, state and proofs") {
  Workflow w;
  const json v = audit_json({"verify", "--data", w.data});
  CHECK(v["ok"].get<bool>());
  CHECK(v["events_checked"].get<uint64_t>() == w.head);
  CHECK(v["checkpoints"]["checked"].get<uint64_t>() >= 1);
  CHECK(v["checkpoints"]["key_pinned"].get<bool>());

  const json h = audit_json({"history", "task-t1", "--data", w.data});
  REQUIRE(h["events"].size() >= 5);
  for (const auto& e : h["events"]) {
    CHECK(e["actor"] == "anonymous-admin");
    CHECK(e["correlation_id"] == w.correlation);
    CHECK_FALSE(e["command_id"].is_null());
    CHECK_FALSE(e["causation_id"].is_null());
    CHECK(e.contains("recorded_at"));
  }

  // The tree: one root (CreateProject) and a chain down to the approval,
  // which caused both the knowledge and the phase change.
  const json t = audit_json({"trace", w.correlation, "--data", w.data});
  REQUIRE(t["roots"].size() == 1);
  std::vector<std::pair<std::string, int>> nodes;
  walk(t["roots"][0], 0, nodes);
  const std::vector<std::pair<std::string, int>> expected{
      {"ProjectCreated", 0},    {"ResearchRequested", 1},   {"TaskAssigned", 2},
      {"FindingsSubmitted", 3}, {"CheckpointRequested", 4}, {"CheckpointApproved", 5},
      {"KnowledgeRecorded", 6}, {"ProjectPhaseAdvanced", 6}};
  CHECK(nodes == expected);
  CHECK(t["events"].get<uint64_t>() == w.workflow_events);
  const RunResult tree = audit({"trace", w.correlation, "--data", w.data});
  CHECK(tree.exit_code == 0);
  CHECK(tree.out.find("KnowledgeRecorded") != std::string::npos);

  const json a = audit_json({"actor", "anonymous-admin", "--data", w.data, "--limit", "3"});
  CHECK(a["events"].size() == 3);
  CHECK(a["truncated"].get<bool>());
  const json rest = audit_json({"actor", "anonymous-admin", "--data", w.data, "--cursor",
                                std::to_string(a["next_cursor"].get<uint64_t>())});
  CHECK(rest["events"].size() == w.head - 3);
  CHECK(rest["events"][0]["position"].get<uint64_t>() == 4);
  const json none =
      audit_json({"actor", "anonymous-admin", "--data", w.data, "--until", "2000-01-01T00:00:00Z"});
  CHECK(none["events"].empty());

  // Time travel: the task before and after its checkpoint was approved.
  const uint64_t approved_at = h["events"][4]["position"].get<uint64_t>();
  const json before =
      audit_json({"state", "task-t1", "--at", std::to_string(approved_at - 1), "--data", w.data});
  const json after =
      audit_json({"state", "task-t1", "--at", std::to_string(approved_at), "--data", w.data});
  CHECK(before["state"]["status"] == "checkpoint_pending");
  CHECK(after["state"]["status"] == "checkpoint_approved");

  // An inclusion proof checked with no database, under the pinned key.
  const std::string pub = w.data + "/audit/signing-key.pem.pub";
  const std::string proof = w.dir / "proof.json";
  REQUIRE(audit({"proof", "3", "--data", w.data, "--out", proof}).exit_code == 0);
  json p = json::parse(std::ifstream(proof));
  CHECK(p["tree_size"].get<uint64_t>() == w.head);
  const json ok = audit_json({"verify-proof", proof, "--public-key", pub});
  CHECK(ok["ok"].get<bool>());
  CHECK(ok["kind"] == "inclusion");
  // A proof doctored anywhere fails.
  p["path"][0] = std::string(64, '0');
  std::ofstream(w.dir / "bad.json") << p.dump();
  const json no = audit_json({"verify-proof", w.dir / "bad.json", "--public-key", pub}, 1);
  CHECK_FALSE(no["ok"].get<bool>());
  // Each other part of the document is checked too, and the failure named.
  auto refused = [&](const json& doc, const std::vector<std::string>& extra) {
    std::ofstream(w.dir / "bad.json") << doc.dump();
    std::vector<std::string> args{"verify-proof", w.dir / "bad.json"};
    args.insert(args.end(), extra.begin(), extra.end());
    const json r = audit_json(args, 1);
    CHECK_FALSE(r["ok"].get<bool>());
    return r.value("problem", "");
  };
  const json good_proof = json::parse(std::ifstream(proof));
  json other = good_proof;
  other["format"] = "something-else";
  CHECK(refused(other, {"--public-key", pub}).find("\"format\"") != std::string::npos);
  other = good_proof;
  std::string envelope = other["envelope"].get<std::string>();
  envelope[envelope.size() / 2] = envelope[envelope.size() / 2] == 'A' ? 'B' : 'A';
  other["envelope"] = envelope;
  CHECK_FALSE(refused(other, {"--public-key", pub}).empty());
  const std::string foreign = core::SigningKey::generate().public_key().to_hex();
  CHECK(refused(good_proof, {"--public-key", foreign}).find("not the trusted key") !=
        std::string::npos);
  CHECK(audit({"proof", std::to_string(w.head + 1), "--data", w.data}).exit_code == 2);
  CHECK(audit({"trace", "not-a-uuid", "--data", w.data}).exit_code == 2);
  CHECK(audit({"history", "task-none", "--data", w.data}).exit_code == 4);
}

TEST_CASE("audit: a consistency proof shows a later checkpoint extends an earlier one") {
  Workflow w;
  {
    Server s(w.data);  // more events; stopping signs a second checkpoint
    s.command("CreateProject", {{"project_id", "p2"}, {"name", "More"}},
              "0190a1b2-0000-7000-8000-000000000002", "");
    s.stop();
  }
  const json cs = audit_json({"checkpoint", "--data", w.data});
  REQUIRE(cs["checkpoints"].size() == 2);
  const uint64_t old_size = cs["checkpoints"][0]["position"].get<uint64_t>();
  const uint64_t new_size = cs["checkpoints"][1]["position"].get<uint64_t>();
  CHECK(old_size == w.head);
  CHECK(new_size > old_size);
  const std::string proof = w.dir / "consistency.json";
  REQUIRE(audit({"consistency", std::to_string(old_size), std::to_string(new_size), "--data",
                 w.data, "--out", proof})
              .exit_code == 0);
  const json ok =
      audit_json({"verify-proof", proof, "--public-key", w.data + "/audit/signing-key.pem.pub"});
  CHECK(ok["ok"].get<bool>());
  CHECK(ok["kind"] == "consistency");
  // Claiming the new checkpoint extends a different old root fails.
  json p = json::parse(std::ifstream(proof));
  p["path"].push_back(std::string(64, 'a'));
  std::ofstream(w.dir / "bad.json") << p.dump();
  CHECK_FALSE(audit_json({"verify-proof", w.dir / "bad.json"}, 1)["ok"].get<bool>());
}

TEST_CASE("audit: tampering with the data dir is detected and named") {
  Workflow w;
  const std::string exported = w.dir / "exported.jsonl";
  REQUIRE(audit({"checkpoint", "--data", w.data, "--export", exported}).exit_code == 0);
  const std::string pub = w.data + "/audit/signing-key.pem.pub";
  REQUIRE(
      audit_json({"verify", "--data", w.data, "--checkpoints", exported, "--public-key", pub})["ok"]
          .get<bool>());

  SUBCASE("one byte of one payload changed") {
    {
      RawDb raw(w.data);
      std::string v = raw.get(keys::kEventsCf, keys::position_key(core::Position(2)));
      const size_t at = v.find("Vision");
      REQUIRE(at != std::string::npos);
      v[at] = 'v';
      raw.put(keys::kEventsCf, keys::position_key(core::Position(2)), v);
    }
    check_fails(w.data, "hash mismatch", 2);
  }
  SUBCASE("an event deleted from the middle") {
    {
      RawDb raw(w.data);
      raw.del(keys::kEventsCf, keys::position_key(core::Position(5)));
    }
    check_fails(w.data, "event missing", 5);
  }
  SUBCASE("the last events dropped, and the head rewritten to hide it") {
    const uint64_t keep = w.head - 10;
    {
      // A careful attacker: events, their index entries, stream heads and
      // tree nodes all made consistent with the shorter log.
      RawDb raw(w.data);
      for (uint64_t p = w.head; p > keep; --p) {  // newest first: heads end at the oldest
        auto ev = core::RecordedEvent::decode(
            raw.get(keys::kEventsCf, keys::position_key(core::Position(p))));
        REQUIRE(ev);
        raw.del(keys::kStreamIndexCf, keys::stream_index_key(ev->stream(), ev->version()));
        if (ev->version().value() == 1) {
          raw.del(keys::kStreamHeadsCf, std::string(ev->stream()));
        } else {
          raw.put(keys::kStreamHeadsCf, std::string(ev->stream()),
                  keys::be64(ev->version().value() - 1));
        }
        raw.del(keys::kEventsCf, keys::position_key(core::Position(p)));
      }
      const std::string last = raw.get(keys::kEventsCf, keys::position_key(core::Position(keep)));
      auto ev = core::RecordedEvent::decode(last);
      REQUIRE(ev);
      raw.put(keys::kMetaCf, std::string(keys::kMetaHead),
              keys::HeadValue{core::Position(keep), ev->hash()}.encode());
    }
    // The chain itself is a consistent prefix; only the checkpoint shows the loss.
    check_fails(w.data, "acknowledged events were dropped", w.head,
                {"--checkpoints", exported, "--public-key", pub});
  }
  SUBCASE("two events swapped") {
    {
      RawDb raw(w.data);
      const std::string a = raw.get(keys::kEventsCf, keys::position_key(core::Position(4)));
      const std::string b = raw.get(keys::kEventsCf, keys::position_key(core::Position(5)));
      raw.put(keys::kEventsCf, keys::position_key(core::Position(4)), b);
      raw.put(keys::kEventsCf, keys::position_key(core::Position(5)), a);
    }
    check_fails(w.data, "envelope says position 5", 4);
  }
  SUBCASE("a stream index entry pointed elsewhere") {
    {
      RawDb raw(w.data);
      raw.put(keys::kStreamIndexCf, keys::stream_index_key("task-t1", core::StreamVersion(2)),
              keys::position_key(core::Position(2)));
    }
    check_fails(w.data, "stream index entry 'task-t1' version 2 points at position 2", 2);
  }
  SUBCASE("a rewritten log re-signed with a foreign key") {
    // The attacker signs a checkpoint of their own; the auditor's pinned key refuses it.
    auto foreign = core::SigningKey::generate();
    auto cs = core::read_checkpoints(exported);
    REQUIRE(cs);
    core::Checkpoint c = cs->back();
    c = core::Checkpoint::sign(foreign, c.log_id, c.position, c.head_hash, c.tree_root,
                               c.signed_at_ns);
    REQUIRE(core::write_checkpoints(exported, std::vector<core::Checkpoint>{c}));
    check_fails(w.data, "not the trusted key", w.head,
                {"--checkpoints", exported, "--public-key", pub});
  }
}

TEST_CASE("audit: a forgotten subject's memories show redacted, and verification passes") {
  TempDir dir;
  const std::string data = dir / "data";
  {
    Server s(data);
    s.command("RegisterAgent", {{"agent_id", "a1"}, {"name", "R"}},
              "0190a1b2-0000-7000-8000-000000000003", "");
    s.command(
        "StoreMemory",
        {{"owner", "a1"}, {"memory_id", "m1"}, {"content", "secret plan"}, {"importance", 0.5}},
        "0190a1b2-0000-7000-8000-000000000003", "");
    s.command("ForgetSubject", {{"owner", "a1"}}, "0190a1b2-0000-7000-8000-000000000003", "");
    s.stop();
  }
  const json h = audit_json({"history", "memory-a1", "--data", data});
  REQUIRE(h["events"].size() >= 1);
  const json& stored = h["events"][0];
  CHECK(stored["type"] == "MemoryStored");
  CHECK(stored["data"]["content"].is_null());
  CHECK(stored["data"]["content_forgotten"].get<bool>());
  CHECK(h.dump().find("secret plan") == std::string::npos);
  CHECK(audit_json({"verify", "--data", data})["ok"].get<bool>());
}

TEST_CASE("audit: a running server under write load gives consistent answers") {
  TempDir dir;
  const std::string data = dir / "data";
  Server s(data);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> written{0};
  std::thread load([&] {
    HttpClient http(s.proc->port());
    for (uint64_t i = 0; !stop; ++i) {
      const json body = json::array({{{"type", "Noted"}, {"data", {{"i", i}}}}});
      auto r = http.request("POST", "/v1/streams/load-" + std::to_string(i % 5),
                            json{{"events", body}}.dump());
      if (r.status == 201) ++written;
    }
  });
  uint64_t last_checked = 0;
  for (int round = 0; round < 4; ++round) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const json v = audit_json({"verify", "--data", data});
    CHECK(v["ok"].get<bool>());
    const uint64_t checked = v["events_checked"].get<uint64_t>();
    CHECK(checked >= last_checked);
    CHECK(v["index_entries_checked"].get<uint64_t>() == checked);
    last_checked = checked;
    // The history of a stream is gap-free up to the version the audit saw.
    const json h = audit_json({"history", "load-0", "--data", data, "--limit", "10000"});
    uint64_t version = 0;
    for (const auto& e : h["events"]) CHECK(e["version"].get<uint64_t>() == ++version);
    // A whole stream (or a full page of it) as of one moment.
    if (h["truncated"].get<bool>()) {
      CHECK(version == 10'000);
    } else {
      CHECK(h["version"].get<uint64_t>() == version);
    }
  }
  stop = true;
  load.join();
  CHECK(written > 0);
  CHECK(last_checked > 0);
  s.stop();
}

TEST_CASE("audit: a checkpoint signed after a live verify's view is newer, not a drop") {
  TempDir dir;
  const core::DataDir data(dir / "data");
  auto writer = core::Log::open(data);
  REQUIRE(writer);
  core::Log& log = **writer;
  auto append = [&](int n) {
    for (int i = 0; i < n; ++i) {
      core::EventData e;
      e.type = "Noted";
      REQUIRE(log.append("notes", core::ExpectedVersion::any(), std::span(&e, 1)));
    }
  };
  const core::SigningKey key = core::SigningKey::generate();
  const core::CheckpointFile file(data.checkpoints_file());
  auto sign = [&](core::Position at, const core::Hash256& head_hash) {
    auto root = core::LogTree(log).root(at);
    REQUIRE(root);
    REQUIRE(file.append(core::Checkpoint::sign(key, log.log_id(), at, head_hash, *root, 1)));
  };
  append(5);
  sign(log.head().position, log.head().hash);

  // The auditor's view (a secondary, as `engram audit` opens it) is taken
  // here; the server then writes on and signs again.
  core::LogOptions follow;
  follow.read_only = true;
  follow.secondary_dir = dir / "secondary";
  auto follower = core::Log::open(data, follow);
  REQUIRE(follower);
  append(5);
  sign(log.head().position, log.head().hash);

  const engram::audit::Sources sources{
      **follower, [](const core::RecordedEvent&) { return json::object(); }, nullptr,
      data.checkpoints_file()};
  engram::audit::VerifyOptions options;
  options.trusted = key.public_key();
  auto r = engram::audit::verify(sources, options);
  REQUIRE(r);
  CHECK((*r)["ok"].get<bool>());
  CHECK((*r)["head_position"] == 5);
  CHECK((*r)["checkpoints"]["checked"] == 1);
  CHECK((*r)["checkpoints"]["newer_than_verified"] == 1);

  // A checkpoint the log never reached, even after catching up, is a drop.
  core::Hash256 elsewhere{};
  elsewhere[0] = 1;
  REQUIRE(file.append(
      core::Checkpoint::sign(key, log.log_id(), core::Position(100), elsewhere, elsewhere, 2)));
  follow.secondary_dir = dir / "secondary-2";
  auto late = core::Log::open(data, follow);
  REQUIRE(late);
  const engram::audit::Sources late_sources{
      **late, [](const core::RecordedEvent&) { return json::object(); }, nullptr,
      data.checkpoints_file()};
  r = engram::audit::verify(late_sources, options);
  REQUIRE(r);
  CHECK_FALSE((*r)["ok"].get<bool>());
  CHECK((*r)["checkpoints"]["checked"] == 2);
  CHECK((*r)["checkpoints"]["first_bad"]["problem"].get<std::string>().find(
            "acknowledged events were dropped") != std::string::npos);
}

TEST_CASE("audit: actor --since and --until hold to the strict RFC 3339 table") {
  // Normal priority: on a busy test machine SCHED_IDLE would queue these
  // hundred short runs behind every other test.
  REQUIRE(setenv("ENGRAM_AUDIT_PRIORITY", "normal", 1) == 0);
  TempDir dir;
  const std::string data = dir / "data";
  for (int i = 0; i < 3; ++i) {
    const RunResult r = run({kEngram, "append", "--data", data, "--stream", "s"},
                            R"({"type":"T","data":{}})"
                            "\n");
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  }
  // Each event's own time, read back with the parser under test.
  std::vector<std::pair<uint64_t, int64_t>> recorded;
  const json all = audit_json({"actor", "engram-cli", "--data", data});
  for (const auto& e : all["events"]) {
    const auto at = core::parse_rfc3339_ns(e["recorded_at"].get<std::string>());
    REQUIRE(at.has_value());
    recorded.emplace_back(e["position"].get<uint64_t>(), *at);
  }
  REQUIRE(recorded.size() == 3);

  for (const auto& c : engram::test::rfc3339_cases()) {
    for (const bool since : {true, false}) {
      CAPTURE(c.text);
      CAPTURE(c.what);
      CAPTURE(since);
      const RunResult r = audit({"actor", "engram-cli", "--data", data,
                                 since ? "--since" : "--until", c.text, "--json"});
      if (!c.unix_ns) {
        CHECK(r.exit_code == 2);
        CHECK_MESSAGE(r.err.find(core::kRfc3339Help) != std::string::npos, r.err);
        continue;
      }
      REQUIRE_MESSAGE(r.exit_code == 0, r.err);
      std::vector<uint64_t> expected, got;
      for (const auto& [position, at] : recorded) {
        if (since ? at >= *c.unix_ns : at <= *c.unix_ns) expected.push_back(position);
      }
      const json answer = json::parse(r.out);
      for (const auto& e : answer["events"]) got.push_back(e["position"].get<uint64_t>());
      CHECK(got == expected);
    }
  }
}
