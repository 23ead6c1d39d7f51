// engram replay rebuild / verify on a log written through the command bus.

#include <doctest/doctest.h>

#include "commands/bus.h"
#include "core/log.h"
#include "tests/support/log_fixture.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

using namespace engram;
using nlohmann::json;

namespace {

void command(commands::CommandBus& bus, const std::string& type, const json& body) {
  commands::CommandRequest r;
  r.type = type;
  r.body = body.dump();
  r.principal = commands::Principal{"tester", {commands::Role::admin}, std::nullopt};
  auto out = bus.execute_sync(std::move(r));
  REQUIRE_MESSAGE(out.has_value(), type);
}

void scenario(const std::filesystem::path& dir) {
  auto log = core::Log::open(dir);
  REQUIRE(log);
  auto keys = test::open_keys_or_die(dir);
  commands::CommandBus bus(**log, *keys);
  for (int i = 0; i < 20; ++i) {
    command(bus, "RegisterAgent", {{"agent_id", "a" + std::to_string(i)}, {"name", "n"}});
  }
  command(bus, "CreateProject", {{"project_id", "p1"}, {"name", "P"}});
  command(bus, "RequestResearch", {{"task_id", "t1"}, {"project_id", "p1"}, {"title", "T"}});
  command(bus, "SuspendAgent", {{"agent_id", "a3"}, {"reason", "r"}});
}

std::optional<json> record(const std::filesystem::path& dir, const std::string& key) {
  auto models = test::open_models_or_die(dir);
  auto store = models->store("catalog@v1");
  REQUIRE(store);
  auto v = (*store)->get(key);
  REQUIRE(v);
  if (!v->has_value()) return std::nullopt;
  return json::parse(**v);
}

}  // namespace

TEST_CASE(
    "replay rebuild builds read models, --to gives a point in time, verify catches tampering") {
  test::TempDir dir;
  const std::string d = dir.path().string();
  scenario(dir.path());

  test::RunResult r = test::run({ENGRAM_BINARY, "replay", "rebuild", "--data", d});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK(r.out.find("catalog@v1  rebuilt to position 23") != std::string::npos);
  CHECK(record(dir.path(), "agent/a3").value()["status"] == "suspended");

  // As of position 5: five agents, none suspended yet.
  r = test::run({ENGRAM_BINARY, "replay", "rebuild", "--data", d, "--to", "5"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK(record(dir.path(), "agent/a4").has_value());
  CHECK(!record(dir.path(), "agent/a5").has_value());
  CHECK(record(dir.path(), "agent/a3").value()["status"] == "active");

  // verify first brings the live model to the head, then compares.
  r = test::run({ENGRAM_BINARY, "replay", "verify", "--data", d});
  CHECK_MESSAGE(r.exit_code == 0, r.out, r.err);
  CHECK(r.out.find("catalog@v1  ok") != std::string::npos);

  {
    auto models = test::open_models_or_die(dir.path());
    core::ModelStore& s = *models->store("catalog@v1").value();
    auto b = s.batch();
    REQUIRE(b.put("agent/a1", R"({"agent_id": "a1", "status": "retired"})"));
    REQUIRE(s.commit(b, s.checkpoint()));
  }
  r = test::run({ENGRAM_BINARY, "replay", "verify", "--data", d});
  CHECK(r.exit_code == 1);
  CHECK(r.out.find("catalog@v1  DIFFERS") != std::string::npos);

  CHECK(test::run({ENGRAM_BINARY, "replay", "rebuild", "--data", d, "--projection", "nope"})
            .exit_code == 2);
  CHECK(test::run({ENGRAM_BINARY, "replay", "rebuild", "--data", d, "--to", "999"}).exit_code == 2);
}
