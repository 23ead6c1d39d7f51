// Who may do what, with tokens minted by an independent implementation
// (PyJWT through tests/support/mint_jwt.py).

#include <doctest/doctest.h>

#include "tests/adapters/http/serve_fixture.h"

using namespace engram::test;
using nlohmann::json;

namespace {

int status_of(HttpClient& c, const std::string& method, const std::string& target,
              const std::string& token, const json& body = nullptr) {
  std::vector<std::pair<std::string, std::string>> h;
  if (!token.empty()) h.emplace_back("Authorization", "Bearer " + token);
  return c.request(method, target, body.is_null() ? "" : body.dump(), h).status;
}

}  // namespace

TEST_CASE("auth matrix: roles, token defects and agent scope") {
  ServeFixture f;
  HttpClient c(f.port());
  auto py = [&](std::vector<std::string> args) { return f.py_token(std::move(args)); };
  const std::string admin = py({"--kid", "hs", "--sub", "root", "--roles", "admin"});
  const std::string writer = py({"--kid", "ed", "--sub", "lead", "--roles", "writer"});
  const std::string reviewer = py({"--kid", "hs", "--sub", "rev", "--roles", "reviewer"});
  const std::string reader = py({"--kid", "ed", "--sub", "ops", "--roles", "reader"});
  const std::string replicator = py({"--kid", "hs", "--sub", "rep", "--roles", "replicator"});

  // Valid tokens per role.
  CHECK(status_of(c, "POST", "/v1/commands/RegisterAgent", writer,
                  {{"agent_id", "a1"},
                   {"name", "A"},
                   {"capabilities", json::array()},
                   {"domains", json::array()}}) == 201);
  CHECK(status_of(c, "POST", "/v1/commands/RegisterAgent", admin,
                  {{"agent_id", "a2"},
                   {"name", "B"},
                   {"capabilities", json::array()},
                   {"domains", json::array()}}) == 201);
  CHECK(status_of(c, "GET", "/v1/streams/agent-a1", reader) == 200);
  CHECK(status_of(c, "GET", "/v1/log", replicator) == 200);
  CHECK(status_of(c, "GET", "/metrics", reader) == 200);
  // Wrong role.
  CHECK(status_of(c, "POST", "/v1/commands/RegisterAgent", reader,
                  {{"agent_id", "a3"},
                   {"name", "C"},
                   {"capabilities", json::array()},
                   {"domains", json::array()}}) == 403);
  CHECK(status_of(c, "POST", "/v1/commands/RegisterAgent", replicator,
                  {{"agent_id", "a3"},
                   {"name", "C"},
                   {"capabilities", json::array()},
                   {"domains", json::array()}}) == 403);
  CHECK(status_of(c, "POST", "/v1/commands/RegisterAgent", reviewer,
                  {{"agent_id", "a3"},
                   {"name", "C"},
                   {"capabilities", json::array()},
                   {"domains", json::array()}}) == 403);
  CHECK(status_of(c, "GET", "/v1/log", writer) == 403);
  CHECK(status_of(c, "POST", "/v1/streams/notes", reader, {{"events", {{{"type", "X"}, {"data", json::object()}}}}}) == 403);

  // Token defects: each 401, and nothing written.
  const json body = {{"agent_id", "evil"},
                     {"name", "E"},
                     {"capabilities", json::array()},
                     {"domains", json::array()}};
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"missing token", ""},
      {"expired", py({"--kid", "hs", "--sub", "x", "--roles", "admin", "--exp-in", "-120"})},
      {"missing exp", py({"--kid", "hs", "--sub", "x", "--roles", "admin", "--no-exp"})},
      {"wrong aud", py({"--kid", "hs", "--sub", "x", "--roles", "admin", "--aud", "other"})},
      {"wrong iss", py({"--kid", "ed", "--sub", "x", "--roles", "admin", "--iss", "other"})},
      {"alg none", py({"--kid", "hs", "--sub", "x", "--roles", "admin", "--alg", "none"})},
      {"HS256 keyed with the public key",
       py({"--kid", "ed", "--sub", "x", "--roles", "admin", "--hs256-with-public-pem"})},
      {"unknown kid", py({"--kid", "hs", "--sub", "x", "--roles", "admin", "--header-json",
                          R"({"kid": "nope"})"})},
      {"garbage", "not.a.token"},
  };
  for (const auto& [what, token] : bad) {
    INFO(what);
    auto r = c.request(
        "POST", "/v1/commands/RegisterAgent", body.dump(),
        token.empty() ? std::vector<std::pair<std::string, std::string>>{} : bearer(token));
    CHECK(r.status == 401);
    CHECK(r.header("www-authenticate").find("Bearer") == 0);
    CHECK(body_json(r)["type"] == "/problems/unauthorized");
  }
  CHECK(status_of(c, "GET", "/v1/streams/agent-evil", admin) == 404);

  // An agent-scoped writer acts only as itself and on its own memories.
  const std::string agent7 =
      py({"--kid", "hs", "--sub", "agent-7", "--roles", "writer", "--agent", "a7"});
  CHECK(status_of(c, "POST", "/v1/commands/StoreMemory", agent7,
                  {{"owner", "a7"}, {"content", "mine"}, {"importance", 0.5}}) == 201);
  CHECK(status_of(c, "POST", "/v1/commands/StoreMemory", agent7,
                  {{"owner", "a1"}, {"content", "theirs"}, {"importance", 0.5}}) == 403);
  CHECK(status_of(c, "POST", "/v1/commands/ForgetSubject", agent7, {{"owner", "a1"}}) == 403);
  CHECK(status_of(c, "GET", "/v1/streams/memory-a7", agent7) == 200);
  CHECK(status_of(c, "GET", "/v1/streams/memory-a1", agent7) == 403);
  CHECK(f.server->stop() == 0);
}

TEST_CASE("auth: turning it off is refused on a non-loopback listener") {
  TempDir dir;
  RunResult r = run({ENGRAM_BINARY, "serve", "--data", (dir / "data").string(), "--listen",
                     "0.0.0.0:0", "--no-auth"});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("loopback") != std::string::npos);
}

TEST_CASE("auth: --no-auth on loopback serves without tokens") {
  ServeFixture f(json::object(), {"--no-auth"});
  HttpClient c(f.port());
  CHECK(c.request("GET", "/v1/log").status == 200);
  CHECK(f.server->stop() == 0);
}

TEST_CASE("rate limits: per token, with Retry-After") {
  ServeFixture f(json{{"rate_limits", {{"per_token_rps", 1}, {"per_token_burst", 3}}}});
  HttpClient c(f.port());
  const std::string reader = f.token({"reader"}, "ops");
  int ok = 0, limited = 0;
  std::string retry_after;
  for (int i = 0; i < 6; ++i) {
    auto r = c.request("GET", "/v1/log", "", bearer(reader));
    if (r.status == 200) ++ok;
    if (r.status == 429) {
      ++limited;
      retry_after = r.header("retry-after");
    }
  }
  CHECK(ok >= 3);
  CHECK(ok <= 4);
  CHECK(limited >= 2);
  CHECK(std::stoi(retry_after) >= 1);
  // Another token has its own bucket.
  CHECK(c.request("GET", "/v1/log", "", bearer(f.token({"reader"}, "other"))).status == 200);
  CHECK(f.server->stop() == 0);
}
