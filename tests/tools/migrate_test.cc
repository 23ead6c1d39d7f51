// The engram binary on a data dir written before the key store and the read
// models had databases of their own (tests/fixtures/README.md): read-only
// commands say how to migrate, the first writable command migrates, and
// then everything reads as before.

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

using engram::test::run;
using engram::test::RunResult;
using engram::test::TempDir;
using nlohmann::json;

TEST_CASE("migration: the engram binary migrates an older data dir and reads it as before") {
  TempDir dir;
  RunResult r = run({"/bin/tar", "xzf", ENGRAM_FIXTURES_DIR "/legacy-datadir-f008dab.tar.gz",
                     "-C", dir.path().string()});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  const std::string data = (dir.path() / "data").string();

  // Read-only commands change nothing and say what to do.
  r = run({ENGRAM_BINARY, "replay", "dump", "--data", data});
  CHECK(r.exit_code == 4);
  CHECK(r.err.find("open it once with a writable command") != std::string::npos);

  // A writable command migrates on its way.
  r = run({ENGRAM_BINARY, "append", "--data", data, "--stream", "demo"},
          R"({"type":"Noted","data":{"x":2}})");
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);

  // The chain, the tree and the checkpoint signed before the migration verify.
  r = run({ENGRAM_BINARY, "audit", "verify", "--data", data, "--json"});
  INFO(r.out, r.err);
  REQUIRE(r.exit_code == 0);
  const json v = json::parse(r.out);
  CHECK(v["ok"] == true);
  CHECK(v["head_position"] == 11);
  CHECK(v["checkpoints"]["checked"] == 1);

  // Memory content is readable through the moved key; the forgotten
  // subject's stays forgotten.
  r = run({ENGRAM_BINARY, "audit", "history", "memory-a1", "--data", data, "--json"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  const json a1 = json::parse(r.out);
  CHECK(a1["events"][0]["data"]["content"] == "the old secret");
  r = run({ENGRAM_BINARY, "audit", "history", "memory-bob", "--data", data, "--json"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  const json bob = json::parse(r.out);
  CHECK(bob["events"][0]["data"]["content"].is_null());
  CHECK(bob["events"][0]["data"]["content_forgotten"] == true);

  // The read models moved with their checkpoints: verify rebuilds each
  // into a scratch store and finds the moved one equal.
  r = run({ENGRAM_BINARY, "replay", "verify", "--data", data});
  INFO(r.out, r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("catalog@v1  ok") != std::string::npos);
}
