// engram serve as a client sees it: commands, reads, idempotency, races,
// shutdown. Every test runs a real server process on a loopback port.

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "core/log.h"
#include "tests/adapters/http/serve_fixture.h"

using namespace engram::test;
using nlohmann::json;

namespace {

HttpResponse command(HttpClient& c, const std::string& token, const std::string& type,
                     const json& body, std::vector<std::pair<std::string, std::string>> h = {}) {
  return c.request("POST", "/v1/commands/" + type, body.dump(), bearer(token, std::move(h)));
}

uint64_t head_of(HttpClient& c, const std::string& token) {
  auto r = c.request("GET", "/v1/log?from_position=1&limit=1", "", bearer(token));
  REQUIRE(r.status == 200);
  return body_json(r)["head"].get<uint64_t>();
}

}  // namespace

TEST_CASE("serve: health, readiness and the OpenAPI document need no token") {
  ServeFixture f;
  HttpClient c(f.port());
  auto h = c.request("GET", "/healthz");
  CHECK(h.status == 200);
  CHECK(body_json(h)["status"] == "ok");
  auto r = c.request("GET", "/readyz");
  CHECK(r.status == 200);
  CHECK(body_json(r)["status"] == "ready");
  auto o = c.request("GET", "/v1/openapi.yaml");
  CHECK(o.status == 200);
  CHECK(o.body.find("openapi: 3") != std::string::npos);
  CHECK(c.request("GET", "/v1/log").status == 401);
  CHECK(f.server->stop() == 0);
}

TEST_CASE("serve: a full agent, project and task flow over HTTP") {
  ServeFixture f;
  HttpClient c(f.port());
  const std::string writer = f.token({"writer"}, "lead");
  const std::string reviewer = f.token({"reviewer"}, "rev");
  const std::string reader = f.token({"reader"}, "ops");

  auto reg = command(c, writer, "RegisterAgent",
                     {{"agent_id", "a1"},
                      {"name", "Researcher"},
                      {"capabilities", {"search"}},
                      {"domains", {"biology"}}},
                     {{"X-Correlation-Id", "0190a6f0-0000-7000-8000-000000000001"}});
  REQUIRE_MESSAGE(reg.status == 201, reg.body);
  json rj = body_json(reg);
  CHECK(rj["stream"] == "agent-a1");
  CHECK(rj["version"] == 1);
  CHECK(rj["events"][0]["type"] == "AgentRegistered");
  CHECK(reg.header("x-correlation-id") == "0190a6f0-0000-7000-8000-000000000001");

  REQUIRE(
      command(c, writer, "CreateProject", {{"project_id", "p1"}, {"name", "Proteins"}}).status ==
      201);
  REQUIRE(command(c, writer, "RequestResearch",
                  {{"task_id", "t1"}, {"project_id", "p1"}, {"title", "Fold search"}})
              .status == 201);
  REQUIRE(command(c, writer, "AssignTask", {{"task_id", "t1"}, {"agent_id", "a1"}}).status == 201);
  REQUIRE(
      command(c, writer, "SubmitFindings", {{"task_id", "t1"}, {"summary", "found it"}}).status ==
      201);
  REQUIRE(command(c, writer, "RequestCheckpoint", {{"task_id", "t1"}}).status == 201);

  // Only a reviewer approves.
  auto denied = command(c, writer, "ApproveCheckpoint", {{"task_id", "t1"}});
  CHECK(denied.status == 403);
  CHECK(denied.header("content-type") == "application/problem+json");
  REQUIRE(command(c, reviewer, "ApproveCheckpoint", {{"task_id", "t1"}}).status == 201);
  REQUIRE(command(c, writer, "OpenDevelopment", {{"task_id", "t1"}}).status == 201);
  auto early = command(c, writer, "CompleteTask", {{"task_id", "t1"}});
  CHECK(early.status == 422);
  CHECK(body_json(early)["code"] == "tests_not_passed");
  REQUIRE(command(c, writer, "ReportTestResult", {{"task_id", "t1"}, {"passed", true}}).status ==
          201);
  auto done = command(c, writer, "CompleteTask", {{"task_id", "t1"}});
  REQUIRE_MESSAGE(done.status == 201, done.body);

  // Assigning to an unknown agent is a named rule violation.
  REQUIRE(command(c, writer, "RequestResearch",
                  {{"task_id", "t2"}, {"project_id", "p1"}, {"title", "Other"}})
              .status == 201);
  auto ghost = command(c, writer, "AssignTask", {{"task_id", "t2"}, {"agent_id", "nobody"}});
  CHECK(ghost.status >= 404);
  CHECK(body_json(ghost)["code"] == "agent_not_found");

  // Read it back.
  auto task = c.request("GET", "/v1/streams/task-t1", "", bearer(reader));
  REQUIRE(task.status == 200);
  json tj = body_json(task);
  CHECK(tj["version"] == 8);
  CHECK(tj["events"].back()["type"] == "TaskCompleted");
  CHECK(tj["events"][0]["actor"] == "lead");
  auto agent = c.request("GET", "/v1/streams/agent-a1", "", bearer(reader));
  CHECK(body_json(agent)["events"][0]["correlation_id"] == "0190a6f0-0000-7000-8000-000000000001");
  CHECK(c.request("GET", "/v1/streams/task-none", "", bearer(reader)).status == 404);
  // A reader cannot send commands.
  CHECK(command(c, reader, "CreateProject", {{"project_id", "p2"}, {"name", "x"}}).status == 403);
  CHECK(f.server->stop() == 0);
}

TEST_CASE("serve: an Idempotency-Key replays the first response and writes nothing") {
  ServeFixture f;
  HttpClient c(f.port());
  const std::string writer = f.token({"writer"}, "lead");
  const std::string admin = f.token({"admin"}, "root");
  const json body = {{"agent_id", "idem"},
                     {"name", "Once"},
                     {"capabilities", json::array()},
                     {"domains", json::array()}};
  auto first = command(c, writer, "RegisterAgent", body, {{"Idempotency-Key", "k-1"}});
  REQUIRE(first.status == 201);
  const uint64_t head = head_of(c, admin);
  for (int i = 0; i < 3; ++i) {
    auto again = command(c, writer, "RegisterAgent", body, {{"Idempotency-Key", "k-1"}});
    CHECK(again.status == 201);
    CHECK(again.body == first.body);
    CHECK(again.header("idempotent-replayed") == "true");
  }
  CHECK(head_of(c, admin) == head);
  auto other = command(c, writer, "RegisterAgent",
                       {{"agent_id", "idem2"},
                        {"name", "Twice"},
                        {"capabilities", json::array()},
                        {"domains", json::array()}},
                       {{"Idempotency-Key", "k-1"}});
  CHECK(other.status == 409);
  CHECK(body_json(other)["code"] == "idempotency_key_reused");
  CHECK(head_of(c, admin) == head);
  // Without a key the same body is a new command, refused by the domain.
  CHECK(command(c, writer, "RegisterAgent", body).status == 422);
  CHECK(f.server->stop() == 0);
}

TEST_CASE("serve: concurrent conflicting commands, exactly one wins") {
  ServeFixture f;
  const std::string writer = f.token({"writer"}, "lead");
  {
    HttpClient c(f.port());
    REQUIRE(command(c, writer, "RegisterAgent",
                    {{"agent_id", "race"},
                     {"name", "R"},
                     {"capabilities", json::array()},
                     {"domains", json::array()}})
                .status == 201);
  }
  constexpr int kClients = 8;
  std::atomic<int> created{0}, conflicts{0}, other{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      HttpClient c(f.port());
      auto r = command(c, writer, "AdaptAgent",
                       {{"agent_id", "race"},
                        {"capabilities", {"cap-" + std::to_string(i)}},
                        {"expected_version", 1}});
      if (r.status == 201) {
        ++created;
      } else if (r.status == 409 && body_json(r)["actual_version"] == 2) {
        ++conflicts;
      } else {
        ++other;
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(created == 1);
  CHECK(conflicts == kClients - 1);
  CHECK(other == 0);
  CHECK(f.server->stop() == 0);
}

TEST_CASE("serve: generic streams append and read like a plain event store") {
  ServeFixture f;
  HttpClient c(f.port());
  const std::string writer = f.token({"writer"}, "lead");
  const std::string reader = f.token({"reader"}, "ops");
  const json batch = {{"expected_version", "no_stream"},
                      {"events",
                       {{{"type", "NoteTaken"},
                         {"id", "0190a6f0-0000-7000-8000-0000000000a1"},
                         {"data", {{"text", "hello"}, {"n", 1}}},
                         {"metadata", {{"source", "test"}}}},
                        {{"type", "NoteTaken"}, {"data", {{"text", "again"}, {"n", 2}}}}}}};
  auto w = c.request("POST", "/v1/streams/notes-1", batch.dump(), bearer(writer));
  REQUIRE_MESSAGE(w.status == 201, w.body);
  CHECK(body_json(w)["version"] == 2);
  CHECK(body_json(w)["deduplicated"] == false);

  auto conflict = c.request(
      "POST", "/v1/streams/notes-1",
      json{{"expected_version", 5}, {"events", {{{"type", "X"}, {"data", json::object()}}}}}.dump(),
      bearer(writer));
  CHECK(conflict.status == 409);
  CHECK(body_json(conflict)["actual_version"] == 2);

  auto fwd = c.request("GET", "/v1/streams/notes-1?from=1&limit=1", "", bearer(reader));
  REQUIRE(fwd.status == 200);
  json fj = body_json(fwd);
  CHECK(fj["events"].size() == 1);
  CHECK(fj["events"][0]["data"]["text"] == "hello");
  CHECK(fj["events"][0]["metadata"]["source"] == "test");
  CHECK(fj["events"][0]["id"] == "0190a6f0-0000-7000-8000-0000000000a1");
  CHECK(fj["next"] == 2);
  auto back = c.request("GET", "/v1/streams/notes-1?direction=backward", "", bearer(reader));
  CHECK(body_json(back)["events"][0]["data"]["n"] == 2);
  auto log = c.request("GET", "/v1/log?from_position=1&limit=10", "", bearer(reader));
  CHECK(body_json(log)["events"].size() == 2);
  CHECK(c.request("GET", "/v1/streams/notes-1?limit=0", "", bearer(reader)).status == 400);
  CHECK(c.request("GET", "/v1/streams/notes-1?bogus=1", "", bearer(reader)).status == 400);

  // Domain streams are written only by commands.
  auto domain = c.request("POST", "/v1/streams/agent-x",
                          json{{"events", {{{"type", "AgentRegistered"}, {"data", json::object()}}}}}.dump(), bearer(writer));
  CHECK(domain.status == 403);
  CHECK(body_json(domain)["code"] == "domain_stream");
  CHECK(f.server->stop() == 0);
}

TEST_CASE("serve: graceful shutdown under load loses no acknowledged command") {
  std::mutex mu;
  std::vector<std::pair<std::string, uint64_t>> acked;  // (agent id, position)
  ServeFixture f(json{{"shutdown_grace_ms", 5000}});
  const std::string writer = f.token({"writer"}, "lead");
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      HttpClient c(f.port());
      for (int i = 0; !stop.load(); ++i) {
        const std::string id = "load-" + std::to_string(t) + "-" + std::to_string(i);
        auto r = command(c, writer, "RegisterAgent",
                         {{"agent_id", id},
                          {"name", "L"},
                          {"capabilities", json::array()},
                          {"domains", json::array()}});
        if (r.status == 201) {
          std::lock_guard lock(mu);
          acked.emplace_back(id, body_json(r)["last_position"].get<uint64_t>());
        } else if (r.status == 0) {
          return;  // the server closed the connection
        }
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  CHECK(f.server->stop(SIGTERM) == 0);
  stop = true;
  for (auto& t : threads) t.join();

  REQUIRE(!acked.empty());
  engram::core::LogOptions ro;
  ro.create_if_missing = false;
  ro.read_only = true;
  auto log = engram::core::Log::open(f.data, ro);
  REQUIRE(log);
  for (const auto& [id, pos] : acked) {
    auto events = (*log)->read_all(engram::core::Position(pos), 1);
    REQUIRE(events);
    REQUIRE(events->size() == 1);
    CHECK(events->front().stream() == "agent-" + id);
  }
  auto report = (*log)->verify(engram::core::Position(1), (*log)->head().position);
  REQUIRE(report);
  CHECK(report->ok());
  MESSAGE(acked.size() << " commands acknowledged before SIGTERM, all present");
}

TEST_CASE("serve: SIGTERM stops it gracefully whichever of its threads the kernel hands it to") {
  ServeFixture f;
  const pid_t pid = f.server->pid();
  // A thread that does not block SIGTERM (one a library started before
  // serve blocked it; OpenBLAS has a pool when there is more than one
  // core) is where the kernel may deliver it: send it straight there.
  pid_t target = pid;
  for (const auto& task : std::filesystem::directory_iterator(fmt::format("/proc/{}/task", pid))) {
    std::ifstream status(task.path() / "status");
    for (std::string line; std::getline(status, line);) {
      if (line.rfind("SigBlk:", 0) != 0) continue;
      const uint64_t blocked = std::stoull(line.substr(7), nullptr, 16);
      if ((blocked & (uint64_t{1} << (SIGTERM - 1))) == 0) {
        target = static_cast<pid_t>(std::stol(task.path().filename().string()));
      }
    }
  }
  MESSAGE(std::string(target == pid
                          ? "no thread of serve leaves SIGTERM unblocked: sent to the process"
                          : "sent to a thread that leaves SIGTERM unblocked"));
  if (target == pid) {
    REQUIRE(::kill(pid, SIGTERM) == 0);
  } else {
    REQUIRE(::syscall(SYS_tgkill, pid, target, SIGTERM) == 0);
  }
  CHECK(f.server->stop(0) == 0);  // signal 0 sends nothing: stop() only waits
}

TEST_CASE("serve: bad settings exit 2 naming the problem, a data dir in use exits 4") {
  TempDir dir;
  const std::string data = (dir / "data").string();
  auto bad_config = [&](const std::string& text) {
    const std::string path = dir / "bad.json";
    std::ofstream(path) << text;
    return run(
        {ENGRAM_BINARY, "serve", "--data", data, "--listen", "127.0.0.1:0", "--config", path});
  };
  RunResult unknown = bad_config(R"({"max_body_byte": 10})");
  CHECK(unknown.exit_code == 2);
  CHECK(unknown.err.find("max_body_byte") != std::string::npos);
  RunResult range = bad_config(R"({"io_threads": 0})");
  CHECK(range.exit_code == 2);
  CHECK(range.err.find("io_threads") != std::string::npos);
  CHECK(bad_config("{not json").exit_code == 2);
  RunResult bus_threads = bad_config(R"({"bus": {"threads": 0}})");
  CHECK(bus_threads.exit_code == 2);
  CHECK(bus_threads.err.find("bus.threads") != std::string::npos);
  RunResult bus_key = bad_config(R"({"bus": {"max_queued": 5}})");
  CHECK(bus_key.exit_code == 2);
  CHECK(bus_key.err.find("bus.max_queued") != std::string::npos);
  RunResult listen = run({ENGRAM_BINARY, "serve", "--data", data, "--listen", "localhost"});
  CHECK(listen.exit_code == 2);
  CHECK(listen.err.find("ADDR:PORT") != std::string::npos);

  ServeFixture f;
  RunResult second = run({ENGRAM_BINARY, "serve", "--data", f.data.string(), "--listen",
                          "127.0.0.1:0", "--log-level", "off"});
  CHECK(second.exit_code == 4);
  CHECK(second.err.find("locked") != std::string::npos);
  CHECK(f.server->stop() == 0);
}
