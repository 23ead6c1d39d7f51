// docs/openapi.yaml against the route table: every route documented (method,
// path and query parameters), every documented operation served.

#include <doctest/doctest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "adapters/http/api.h"
#include "tests/support/log_fixture.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

using namespace engram;
using nlohmann::json;

TEST_CASE("openapi: the document and the route table name the same operations") {
  test::TempDir dir;
  auto log = core::Log::open(dir.path());
  REQUIRE(log);
  auto keys = test::open_keys_or_die(dir.path());
  commands::CommandBus bus(**log, *keys);
  core::metrics::Registry metrics;
  http::Api api(**log, bus, metrics, {});

  test::RunResult r = test::run({ENGRAM_PYTHON3, ENGRAM_SOURCE_DIR "/tests/adapters/http/openapi_routes.py",
                                 ENGRAM_SOURCE_DIR "/docs/openapi.yaml"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const json documented = json::parse(r.out);

  using Operation = std::pair<std::string, std::string>;  // (method, path)
  std::map<Operation, std::vector<std::string>> served;
  for (const auto& route : api.routes()) {
    auto query = route.query;
    std::sort(query.begin(), query.end());
    CHECK_MESSAGE(served.emplace(Operation{route.method, route.path}, query).second,
                  route.method, " ", route.path, " is routed twice");
  }
  std::set<Operation> seen;
  for (const auto& op : documented) {
    const Operation key{op["method"].get<std::string>(), op["path"].get<std::string>()};
    seen.insert(key);
    auto it = served.find(key);
    CHECK_MESSAGE(it != served.end(), key.first, " ", key.second,
                  " is documented but not served");
    if (it == served.end()) continue;
    CHECK_MESSAGE(op["query"].get<std::vector<std::string>>() == it->second, key.first, " ",
                  key.second, ": documented query parameters ", op["query"].dump(),
                  " differ from the route's");
  }
  for (const auto& [key, query] : served) {
    CHECK_MESSAGE(seen.count(key) == 1, key.first, " ", key.second,
                  " is served but not documented");
  }
}
