// The router alone: templates, specificity, 404 and 405, percent-decoding
// of path parameters and query strings.

#include "adapters/http/router.h"

#include <doctest/doctest.h>

using namespace engram::http;
using Outcome = Router::Match::Outcome;

namespace {

const std::vector<RouteKey> kRoutes = {
    {"GET", "/healthz"},                      // 0
    {"GET", "/v1/streams/{stream}"},          // 1
    {"POST", "/v1/streams/{stream}"},         // 2
    {"GET", "/v1/patterns/recommend"},        // 3
    {"GET", "/v1/patterns/{id}"},             // 4
    {"GET", "/v1/patterns/{id}/similar"},     // 5
    {"GET", "/v1/agents"},                    // 6
    {"GET", "/v1/agents/{id}"},               // 7
    {"GET", "/v1/audit/history/{stream}"},    // 8
    {"POST", "/v1/memories/search"},          // 9
};

std::string param(const Router::Match& m, const std::string& name) {
  for (const auto& [k, v] : m.params) {
    if (k == name) return v;
  }
  FAIL("no parameter ", name);
  return {};
}

}  // namespace

TEST_CASE("router: literals, parameters and the parameter that takes the rest") {
  const Router r(kRoutes);
  auto m = r.match("GET", "/healthz");
  CHECK(m.outcome == Outcome::found);
  CHECK(m.route == 0);
  CHECK(*m.path_template == "/healthz");
  CHECK(m.params.empty());

  m = r.match("POST", "/v1/streams/notes");
  REQUIRE(m.outcome == Outcome::found);
  CHECK(m.route == 2);
  CHECK(param(m, "stream") == "notes");
  // A parameter that ends the template takes the rest: stream names may
  // hold '/', sent raw or escaped.
  m = r.match("GET", "/v1/streams/a/b/c");
  REQUIRE(m.outcome == Outcome::found);
  CHECK(param(m, "stream") == "a/b/c");
  CHECK(param(r.match("GET", "/v1/streams/a%2Fb"), "stream") == "a/b");
  CHECK(param(r.match("GET", "/v1/audit/history/lead%40lab"), "stream") == "lead@lab");

  // One-segment parameters stop at '/'.
  m = r.match("GET", "/v1/patterns/abc/similar");
  REQUIRE(m.outcome == Outcome::found);
  CHECK(m.route == 5);
  CHECK(param(m, "id") == "abc");
}

TEST_CASE("router: the most specific template wins") {
  const Router r(kRoutes);
  CHECK(r.match("GET", "/v1/patterns/recommend").route == 3);
  CHECK(r.match("GET", "/v1/patterns/3f2a").route == 4);
  CHECK(r.match("GET", "/v1/patterns/3f2a/similar").route == 5);
  // Literals compare with the raw path: an escaped literal is a parameter.
  auto m = r.match("GET", "/v1/patterns/recomm%65nd");
  CHECK(m.route == 4);
  CHECK(param(m, "id") == "recommend");
  // Order of declaration does not matter.
  std::vector<RouteKey> reversed(kRoutes.rbegin(), kRoutes.rend());
  const Router r2(reversed);
  CHECK(*r2.match("GET", "/v1/patterns/recommend").path_template == "/v1/patterns/recommend");
  CHECK(*r2.match("GET", "/v1/patterns/x/similar").path_template == "/v1/patterns/{id}/similar");
}

TEST_CASE("router: 404 for unknown paths, 405 with the template's methods") {
  const Router r(kRoutes);
  for (const char* path : {"/", "/nowhere", "/v1/streams/", "/v1/streams", "/v1/agents/",
                           "/v1/audit/history/", "/healthz/", "healthz",
                           ""}) {
    INFO(path);
    auto m = r.match("GET", path);
    CHECK(m.outcome == Outcome::not_found);
    CHECK(m.path_template == nullptr);
  }
  auto m = r.match("DELETE", "/v1/streams/x");
  CHECK(m.outcome == Outcome::method_not_allowed);
  CHECK(m.allow == "GET, POST");
  CHECK(*m.path_template == "/v1/streams/{stream}");
  m = r.match("GET", "/v1/memories/search");
  CHECK(m.outcome == Outcome::method_not_allowed);
  CHECK(m.allow == "POST");
  // Methods are case-sensitive (RFC 9110).
  CHECK(r.match("get", "/healthz").outcome == Outcome::method_not_allowed);
}

TEST_CASE("router: a malformed escape in a parameter names the parameter") {
  const Router r(kRoutes);
  for (const char* path : {"/v1/streams/a%zz", "/v1/streams/a%2", "/v1/streams/%00x"}) {
    INFO(path);
    auto m = r.match("GET", path);
    CHECK(m.outcome == Outcome::bad_param);
    CHECK(m.bad_param == "stream");
    CHECK(*m.path_template == "/v1/streams/{stream}");
  }
  CHECK(r.match("GET", "/v1/agents/%G1").bad_param == "id");
  // In a literal position a bad escape matches nothing.
  CHECK(r.match("GET", "/v1/%zz/x").outcome == Outcome::not_found);
}

TEST_CASE("router: percent_decode and parse_query") {
  CHECK(percent_decode("a%20b%2fc") == "a b/c");
  CHECK(percent_decode("a+b") == "a+b");
  CHECK(percent_decode("%41%42") == "AB");
  CHECK_FALSE(percent_decode("%"));
  CHECK_FALSE(percent_decode("%4"));
  CHECK_FALSE(percent_decode("%4g"));
  CHECK_FALSE(percent_decode("%00"));
  CHECK_FALSE(percent_decode("%+1"));

  auto q = parse_query("a=1&b=x%20y&&flag&c=");
  REQUIRE(q);
  CHECK(*q == QueryParams{{"a", "1"}, {"b", "x y"}, {"flag", ""}, {"c", ""}});
  CHECK(parse_query("")->empty());
  CHECK_FALSE(parse_query("a=%zz"));
  CHECK_FALSE(parse_query("%zz=1"));
  // Duplicates are kept here; the route table refuses them.
  CHECK(parse_query("a=1&a=2")->size() == 2);
}
