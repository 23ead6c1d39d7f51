#pragma once

// A running `engram serve` with a key ring of one HS256 and one EdDSA key,
// tokens for every role, and helpers to call it.

#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "adapters/auth/jwt.h"
#include "tests/support/http_client.h"
#include "tests/support/serve_process.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace engram::test {

using nlohmann::json;

inline int64_t unix_now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct ServeFixture {
  TempDir dir;
  std::filesystem::path data = dir / "data";
  std::filesystem::path keys_file = data / "auth" / "keys.json";
  std::unique_ptr<ServeProcess> server;

  // `config`: the JSON config file's content (merged over a test default
  // that keeps the access log quiet).
  explicit ServeFixture(json config = json::object(), std::vector<std::string> extra = {}) {
    auth::KeyRing ring("engram", "engram");
    REQUIRE(ring.add_random_hs256("hs"));
    REQUIRE(ring.add_random_eddsa("ed"));
    std::filesystem::create_directories(keys_file.parent_path());
    REQUIRE(ring.save_new(keys_file));
    start(std::move(config), std::move(extra));
  }

  void start(json config = json::object(), std::vector<std::string> extra = {}) {
    if (!config.contains("log_level")) config["log_level"] = "warn";
    const std::string config_path = dir / "config.json";
    std::ofstream(config_path) << config.dump();
    std::vector<std::string> args = {"--config", config_path};
    args.insert(args.end(), extra.begin(), extra.end());
    server = std::make_unique<ServeProcess>(ENGRAM_BINARY, data.string(), args);
    REQUIRE_MESSAGE(server->running(), server->stderr_text());
  }

  uint16_t port() const { return server->port(); }

  std::string token(std::vector<std::string> roles, const std::string& sub,
                    std::optional<std::string> agent = std::nullopt) {
    auto ring = auth::KeyRing::load(keys_file);
    REQUIRE(ring);
    auth::TokenRequest req;
    req.subject = sub;
    req.roles = std::move(roles);
    req.agent = std::move(agent);
    req.issued_at_s = unix_now_s();
    req.ttl_s = 3600;
    req.kid = "hs";
    auto t = auth::sign_token(*ring, req);
    REQUIRE(t);
    return *t;
  }

  // Tokens made by PyJWT (tests/support/mint_jwt.py).
  std::string py_token(std::vector<std::string> args) {
    std::vector<std::string> argv = {ENGRAM_PYTHON3, ENGRAM_MINT_JWT, "--keys", keys_file.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    RunResult r = run(argv);
    INFO("mint_jwt.py: " << r.err);
    REQUIRE(r.exit_code == 0);
    std::string t = r.out;
    while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.pop_back();
    return t;
  }
};

inline std::vector<std::pair<std::string, std::string>> bearer(
    const std::string& token, std::vector<std::pair<std::string, std::string>> more = {}) {
  more.emplace_back("Authorization", "Bearer " + token);
  return more;
}

inline json body_json(const HttpResponse& r) {
  return json::parse(r.body, nullptr, false);
}

}  // namespace engram::test
