// A data dir written before the key store and the read models had databases
// of their own (tests/fixtures/README.md) opens, and its first writable open
// moves them out of the log.

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "core/checkpoint.h"
#include "core/data_dir.h"
#include "core/keys.h"
#include "core/keystore_rocks.h"
#include "core/log.h"
#include "core/model_db.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

using namespace engram;
using namespace engram::core;

namespace {

// The fixture, unpacked into `dir`: returns its data dir.
std::filesystem::path unpack(const test::TempDir& dir) {
  const test::RunResult r =
      test::run({"/bin/tar", "xzf", ENGRAM_FIXTURES_DIR "/legacy-datadir-f008dab.tar.gz", "-C",
                 dir.path().string()});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  return dir.path() / "data";
}

std::vector<std::string> families(const std::filesystem::path& dir) {
  std::vector<std::string> names;
  REQUIRE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), dir.string(), &names).ok());
  return names;
}

bool has_family(const std::vector<std::string>& names, std::string_view prefix) {
  for (const auto& n : names) {
    if (n.rfind(prefix, 0) == 0) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("migration: a read-only open of an unmigrated data dir says how to migrate it") {
  test::TempDir dir;
  const DataDir data(unpack(dir));
  LogOptions ro;
  ro.read_only = true;
  auto log = Log::open(data, ro);
  REQUIRE_FALSE(log);
  CHECK(log.error().code == errc::invalid_argument);
  CHECK(log.error().message.find("open it once with a writable command") != std::string::npos);
  // Nothing was changed.
  CHECK(has_family(families(data.log_dir()), keys::kLegacyKeysCf));
  CHECK_FALSE(std::filesystem::exists(data.keys_dir()));
}

TEST_CASE("migration: the first writable open moves keys and read models out of the log") {
  test::TempDir dir;
  const DataDir data(unpack(dir));
  auto checkpoints = read_checkpoints(data.checkpoints_file());
  REQUIRE(checkpoints);
  REQUIRE(checkpoints->size() == 1);
  const Checkpoint signed_before = checkpoints->front();
  CHECK(has_family(families(data.log_dir()), "model:"));

  {
    auto log = Log::open(data);
    REQUIRE_MESSAGE(log.has_value(), (log ? std::string() : log.error().to_string()));
    CHECK((*log)->head().position == Position(10));
    // The log id is the one the old checkpoint signed, so it still verifies.
    CHECK((*log)->log_id() == signed_before.log_id);
    auto report = (*log)->verify(Position(1), Position(10));
    REQUIRE(report);
    CHECK(report->ok());
    CHECK(report->whole_log);
  }
  const auto after = families(data.log_dir());
  CHECK_FALSE(has_family(after, "model:"));
  CHECK_FALSE(has_family(after, keys::kLegacyKeysCf));

  // The keys moved: a1's key lives, bob's stays destroyed.
  auto keys = RocksKeyStore::open(data);
  REQUIRE(keys);
  auto a1 = (*keys)->get("a1");
  REQUIRE(a1);
  REQUIRE(a1->has_value());
  CHECK((*a1)->generation == 1);
  CHECK_FALSE((*keys)->get("bob").value().has_value());
  // A new key for bob is a new generation: content sealed under the old one
  // stays unreadable.
  CHECK((*keys)->get_or_create("bob").value().generation == 2);

  // The read models moved with their checkpoints and their files.
  auto models = ModelDb::open(data);
  REQUIRE(models);
  const auto stores = (*models)->stores();
  for (const char* name : {"catalog@v1", "knowledge@v1", "memories@v1", "patterns@v1"}) {
    CAPTURE(name);
    CHECK(std::find(stores.begin(), stores.end(), name) != stores.end());
    auto store = (*models)->store(name);
    REQUIRE(store);
    CHECK((*store)->checkpoint() == Position(10));
  }
  CHECK(std::filesystem::exists((*models)->files_dir("knowledge@v1")));
  CHECK((*(*models)->store("catalog@v1"))->get("agent/a1").value().has_value());

  // A second open finds nothing more to move and keeps the same log id.
  auto again = Log::open(data);
  REQUIRE(again);
  CHECK((*again)->log_id() == signed_before.log_id);
}
