#include "core/model_store.h"

#include <doctest/doctest.h>

#include "core/data_dir.h"
#include "core/model_db.h"
#include "tests/support/temp_dir.h"

using namespace engram::core;

TEST_CASE("model store: batches see their own writes, commit moves data and checkpoint together") {
  engram::test::TempDir dir;
  {
    auto models = ModelDb::open(DataDir(dir.path()));
    REQUIRE(models);
    auto store = (*models)->store("counts@v1");
    REQUIRE(store);
    ModelStore& s = **store;
    CHECK(s.checkpoint() == Position(0));
    auto b = s.batch();
    REQUIRE(b.put("n/a", "1"));
    CHECK(b.get("n/a").value() == std::optional<std::string>("1"));
    REQUIRE(b.put("n/a", "2"));
    CHECK(b.get("n/a").value() == std::optional<std::string>("2"));
    CHECK(!s.get("n/a").value().has_value());  // not committed yet
    REQUIRE(b.put("n/b", "7"));
    REQUIRE(b.put("other", "x"));
    REQUIRE(s.commit(b, Position(5)));
    CHECK(s.checkpoint() == Position(5));
    CHECK(s.get("n/a").value() == std::optional<std::string>("2"));

    auto scan = s.scan("n/", "", 100);
    REQUIRE(scan);
    REQUIRE(scan->size() == 2);
    CHECK((*scan)[0].first == "n/a");
    CHECK((*scan)[1].second == "7");
    CHECK(s.scan("n/", "n/b", 100)->size() == 1);
    CHECK(s.scan("n/", "", 1)->size() == 1);

    // A batch scans the committed data with its own writes applied.
    auto edit = s.batch();
    REQUIRE(edit.del("n/a"));
    REQUIRE(edit.put("n/c", "9"));
    REQUIRE(edit.put("n/b", "8"));
    auto seen = edit.scan("n/", "", 100);
    REQUIRE(seen);
    REQUIRE(seen->size() == 2);
    CHECK((*seen)[0] == std::pair<std::string, std::string>("n/b", "8"));
    CHECK((*seen)[1] == std::pair<std::string, std::string>("n/c", "9"));
    CHECK(s.scan("n/", "", 100)->size() == 2);  // the store is unchanged until commit

    // Reserved and oversized keys are refused.
    auto bad = s.batch();
    CHECK(!bad.put(std::string("\0x", 2), "v"));
    CHECK(!bad.put(std::string(ModelStore::kMaxKeyBytes + 1, 'k'), "v"));
    CHECK(!bad.put("", "v"));
    CHECK(!(*models)->store("Bad Name").has_value());
    CHECK((*models)->store("counts@v1").value() == &s);  // the same store
  }
  auto models = ModelDb::open(DataDir(dir.path()));
  REQUIRE(models);
  auto names = (*models)->stores();
  REQUIRE(names.size() == 1);
  CHECK(names[0] == "counts@v1");
  ModelStore& s = *(*models)->store("counts@v1").value();
  CHECK(s.checkpoint() == Position(5));
  CHECK(s.get("n/b").value() == std::optional<std::string>("7"));
  REQUIRE((*models)->drop("counts@v1"));
  CHECK((*models)->stores().empty());
  CHECK((*models)->drop("counts@v1").error().code == errc::not_found);
  auto fresh = (*models)->store("counts@v1");
  REQUIRE(fresh);
  CHECK((*fresh)->checkpoint() == Position(0));
  CHECK(!(*fresh)->get("n/b").value().has_value());
}
