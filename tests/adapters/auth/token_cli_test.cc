// `engram token issue`, run as a real process.

#include <doctest/doctest.h>
#include <sys/stat.h>

#include <chrono>
#include <fstream>

#include "adapters/auth/jwt.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace {

using engram::auth::KeyRing;
using engram::auth::Verifier;

int64_t wall_now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

engram::test::RunResult engram_cli(std::vector<std::string> args) {
  args.insert(args.begin(), ENGRAM_BINARY);
  return engram::test::run(args);
}

struct KeyFile {
  engram::test::TempDir dir;
  std::filesystem::path path = dir / "keys.json";
  KeyRing ring{"engram", "engram"};

  KeyFile() {
    REQUIRE(ring.add_random_eddsa("ed").has_value());
    REQUIRE(ring.add_random_hs256("hs").has_value());
    REQUIRE(ring.add_eddsa("ed-public", ring.find("ed")->public_key_pem()).has_value());
    REQUIRE(ring.save_new(path).has_value());
  }
};

std::string token_of(const engram::test::RunResult& r) {
  INFO("stderr: " << r.err);
  REQUIRE(r.exit_code == 0);
  REQUIRE(!r.out.empty());
  REQUIRE(r.out.back() == '\n');
  const std::string token = r.out.substr(0, r.out.size() - 1);
  CHECK(token.find('\n') == std::string::npos);  // the token and nothing else
  return token;
}

}  // namespace

TEST_CASE("token issue --keys: the printed token verifies with the key file") {
  KeyFile keys;
  const int64_t before_s = wall_now_s();
  auto r = engram_cli({"token", "issue", "--keys", keys.path.string(), "--role", "writer", "--role",
                       "reader", "--sub", "alice", "--ttl", "15m", "--agent", "agent-3"});
  const std::string token = token_of(r);
  CHECK(r.err.empty());
  auto claims = Verifier(keys.ring).verify(token, wall_now_s());
  REQUIRE_MESSAGE(claims.has_value(), claims.error().to_string());
  CHECK(claims->subject == "alice");
  CHECK(claims->roles == std::vector<std::string>{"writer", "reader"});
  CHECK(claims->agent == std::optional<std::string>("agent-3"));
  CHECK(claims->kid == "ed");  // the first key that can sign
  CHECK(claims->expires_at_s >= before_s + 900);
  CHECK(claims->expires_at_s <= wall_now_s() + 900);

  // --kid picks the key; comma-separated roles; 365d is the longest ttl.
  auto hs = Verifier(keys.ring).verify(
      token_of(engram_cli({"token", "issue", "--keys", keys.path.string(), "--role",
                           "admin,replicator", "--sub", "ops", "--ttl", "365d", "--kid", "hs"})),
      wall_now_s());
  REQUIRE_MESSAGE(hs.has_value(), hs.error().to_string());
  CHECK(hs->kid == "hs");
  CHECK(hs->roles == std::vector<std::string>{"admin", "replicator"});
  CHECK_FALSE(hs->agent.has_value());
  CHECK(hs->expires_at_s >= before_s + 365 * 24 * 3600);

  // --aud / --iss override the file's: the ring's verifier then refuses.
  auto other_aud = Verifier(keys.ring).verify(
      token_of(engram_cli({"token", "issue", "--keys", keys.path.string(), "--role", "reader",
                           "--sub", "a", "--aud", "elsewhere"})),
      wall_now_s());
  REQUIRE_FALSE(other_aud.has_value());
  CHECK(other_aud.error().code == engram::auth::AuthErrc::wrong_audience);
  auto other_iss = Verifier(keys.ring).verify(
      token_of(engram_cli({"token", "issue", "--keys", keys.path.string(), "--role", "reader",
                           "--sub", "a", "--iss", "elsewhere"})),
      wall_now_s());
  REQUIRE_FALSE(other_iss.has_value());
  CHECK(other_iss.error().code == engram::auth::AuthErrc::wrong_issuer);
}

TEST_CASE("token issue --data creates DIR/auth/keys.json once") {
  engram::test::TempDir data;
  auto first = engram_cli({"token", "issue", "--data", data.path().string(), "--role", "reader",
                           "--sub", "bob", "--ttl", "30s"});
  const std::string token = token_of(first);
  CHECK(first.err.find("created key file") != std::string::npos);
  const auto path = data / "auth" / "keys.json";
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);
  auto ring = KeyRing::load(path);
  REQUIRE(ring.has_value());
  auto claims = Verifier(*ring).verify(token, wall_now_s());
  REQUIRE_MESSAGE(claims.has_value(), claims.error().to_string());
  CHECK(claims->kid == "default");

  auto second = engram_cli(
      {"token", "issue", "--data", data.path().string(), "--role", "reader", "--sub", "bob"});
  CHECK(Verifier(*ring).verify(token_of(second), wall_now_s()).has_value());
  CHECK(second.err.empty());
}

TEST_CASE("token issue: bad input gets a message and the documented exit code") {
  KeyFile keys;
  const std::string k = keys.path.string();
  struct Case {
    std::vector<std::string> args;
    int exit_code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"--keys", k, "--role", "reader", "--sub", "a", "--ttl", "0s"}, 2, "--ttl"},
      {{"--keys", k, "--role", "reader", "--sub", "a", "--ttl", "366d"}, 2, "--ttl"},
      {{"--keys", k, "--role", "reader", "--sub", "a", "--ttl", "8761h"}, 2, "--ttl"},
      {{"--keys", k, "--role", "reader", "--sub", "a", "--ttl", "1w"}, 2, "--ttl"},
      {{"--keys", k, "--role", "reader", "--sub", "a", "--ttl", "-5m"}, 2, "--ttl"},
      {{"--keys", k, "--role", "reader", "--sub", "a", "--ttl", "h"}, 2, "--ttl"},
      {{"--keys", k, "--role", "reader", "--sub", "a", "--ttl", "99999999999999d"}, 2, "--ttl"},
      {{"--keys", k, "--role", "root", "--sub", "a"}, 2, "root"},
      {{"--keys", k, "--sub", "a"}, 2, "--role"},
      {{"--keys", k, "--role", "reader"}, 2, "--sub"},
      {{"--keys", k, "--role", "reader", "--sub", ""}, 2, "subject"},
      {{"--keys", k, "--data", "/tmp", "--role", "reader", "--sub", "a"}, 2, "exclude"},
      {{"--role", "reader", "--sub", "a"}, 2, "--data DIR or --keys FILE"},
      {{"--keys", k, "--role", "reader", "--sub", "a", "--kid", "nope"}, 2, "nope"},
      {{"--keys", k, "--role", "reader", "--sub", "a", "--kid", "ed-public"}, 2, "private key"},
      {{"--keys", (keys.dir / "missing.json").string(), "--role", "reader", "--sub", "a"},
       4,
       "missing.json"},
      {{"--data", (keys.dir / "no-such-dir").string(), "--role", "reader", "--sub", "a"},
       4,
       "does not exist"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args{"token", "issue"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    auto r = engram_cli(args);
    std::string joined;
    for (const auto& a : c.args) joined += a + " ";
    CAPTURE(joined);
    CAPTURE(r.err);
    CHECK(r.exit_code == c.exit_code);
    CHECK(r.out.empty());
    CHECK(r.err.find(c.message) != std::string::npos);
  }

  std::ofstream(keys.dir / "bad.json")
      << R"({"issuer":"i","audience":"a","keys":[{"kid":"k","alg":"HS256","secret_b64url":"c2hvcnQ"}]})";
  auto bad = engram_cli({"token", "issue", "--keys", (keys.dir / "bad.json").string(), "--role",
                         "reader", "--sub", "a"});
  CHECK(bad.exit_code == 3);
  CHECK(bad.out.empty());
  CHECK(bad.err.find("HS256 secret") != std::string::npos);
}
