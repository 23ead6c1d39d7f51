#include "adapters/auth/jwt.h"

#include <doctest/doctest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <sys/stat.h>

#include <atomic>
#include <fstream>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "adapters/auth/keyring.h"
#include "core/base64.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace {

using engram::auth::AuthErrc;
using engram::core::base64url_decode;
using engram::core::base64url_encode;
using engram::auth::KeyRing;
using engram::auth::TokenRequest;
using engram::auth::Verifier;
using engram::core::errc;

constexpr int64_t kNow_s = 1'700'000'000;

std::string slurp(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void spit(const std::filesystem::path& p, std::string_view text) {
  std::ofstream(p, std::ios::binary) << text;
}

// Issuer and audience differ from the defaults so a verifier that fell back
// to "engram" would fail.
KeyRing test_ring() {
  KeyRing ring("engram-test", "engram-api");
  REQUIRE(ring.add_random_hs256("hs").has_value());
  REQUIRE(ring.add_random_eddsa("ed").has_value());
  return ring;
}

// A key file on disk plus the verifier built from it, and the independent minter.
struct Fixture {
  engram::test::TempDir dir;
  std::filesystem::path keys = dir / "keys.json";
  KeyRing ring = test_ring();
  Verifier verifier{ring};

  Fixture() { REQUIRE(ring.save_new(keys).has_value()); }

  // Runs mint_jwt.py with `args` after --keys; returns the token.
  std::string mint(std::vector<std::string> args, const std::filesystem::path& key_file = {}) {
    std::vector<std::string> argv{ENGRAM_PYTHON3, ENGRAM_MINT_JWT,
                                  "--keys",       (key_file.empty() ? keys : key_file).string(),
                                  "--now",        std::to_string(kNow_s)};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = engram::test::run(argv);
    INFO("mint_jwt.py stderr: " << r.err);
    REQUIRE(r.exit_code == 0);
    REQUIRE(!r.out.empty());
    REQUIRE(r.out.back() == '\n');
    return r.out.substr(0, r.out.size() - 1);
  }

  // The code the verifier refuses `token` with; fails the test if it accepts.
  AuthErrc refusal(std::string_view token, int64_t now_s = kNow_s) {
    auto r = verifier.verify(token, now_s);
    REQUIRE_MESSAGE(!r.has_value(), "token was accepted: " << token);
    INFO(r.error().to_string());
    CHECK(!r.error().detail.empty());
    return r.error().code;
  }
};

std::string hmac_b64(std::string_view secret, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  REQUIRE(HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
               reinterpret_cast<const unsigned char*>(data.data()), data.size(), out,
               &len) != nullptr);
  return base64url_encode(std::string_view(reinterpret_cast<const char*>(out), len));
}

// An HS256 token from raw header and claims text, for shapes no library makes.
std::string hand_token(const KeyRing& ring, std::string_view header, std::string_view claims) {
  const std::string input = base64url_encode(header) + "." + base64url_encode(claims);
  return input + "." + hmac_b64(ring.find("hs")->secret(), input);
}

const std::string kHsHeader = R"({"alg":"HS256","kid":"hs","typ":"JWT"})";

std::string claims_json(std::string_view extra = "") {
  return R"({"iss":"engram-test","aud":"engram-api","sub":"alice","roles":["reader"],"exp":)" +
         std::to_string(kNow_s + 600) + std::string(extra) + "}";
}

}  // namespace

TEST_CASE("auth_errc_name gives stable snake_case names") {
  CHECK(std::string(engram::auth::auth_errc_name(AuthErrc::malformed)) == "malformed");
  CHECK(std::string(engram::auth::auth_errc_name(AuthErrc::unknown_kid)) == "unknown_kid");
  CHECK(std::string(engram::auth::auth_errc_name(AuthErrc::alg_not_allowed)) == "alg_not_allowed");
  CHECK(std::string(engram::auth::auth_errc_name(AuthErrc::bad_signature)) == "bad_signature");
  CHECK(std::string(engram::auth::auth_errc_name(AuthErrc::expired)) == "expired");
  CHECK(std::string(engram::auth::auth_errc_name(AuthErrc::not_yet_valid)) == "not_yet_valid");
  CHECK(std::string(engram::auth::auth_errc_name(AuthErrc::missing_exp)) == "missing_exp");
  CHECK(std::string(engram::auth::auth_errc_name(AuthErrc::wrong_issuer)) == "wrong_issuer");
  CHECK(std::string(engram::auth::auth_errc_name(AuthErrc::wrong_audience)) == "wrong_audience");
  CHECK(std::string(engram::auth::auth_errc_name(AuthErrc::bad_claims)) == "bad_claims");
}

TEST_CASE("sign_token and verify round trip for HS256 and EdDSA") {
  const KeyRing ring = test_ring();
  const Verifier verifier(ring);
  for (const char* kid : {"hs", "ed"}) {
    CAPTURE(kid);
    TokenRequest req;
    req.subject = "alice";
    req.roles = {"writer", "reader"};
    req.agent = "agent-7";
    req.issued_at_s = kNow_s;
    req.ttl_s = 900;
    req.kid = kid;
    auto token = engram::auth::sign_token(ring, req);
    REQUIRE(token.has_value());
    auto claims = verifier.verify(*token, kNow_s + 10);
    REQUIRE_MESSAGE(claims.has_value(), claims.error().to_string());
    CHECK(claims->subject == "alice");
    CHECK(claims->roles == std::vector<std::string>{"writer", "reader"});
    CHECK(claims->has_role("writer"));
    CHECK_FALSE(claims->has_role("admin"));
    CHECK(claims->agent == std::optional<std::string>("agent-7"));
    CHECK(claims->expires_at_s == kNow_s + 900);
    CHECK(claims->kid == kid);
    CHECK(claims->token_id.size() == 36);  // a UUID
    // The same token after its lifetime (and the leeway) is refused.
    auto late = verifier.verify(*token, kNow_s + 900 + 30);
    REQUIRE_FALSE(late.has_value());
    CHECK(late.error().code == AuthErrc::expired);
  }
}

TEST_CASE("sign_token refuses requests verify would refuse") {
  KeyRing ring = test_ring();
  REQUIRE(ring.add_eddsa("ed-public", ring.find("ed")->public_key_pem()).has_value());
  TokenRequest good;
  good.subject = "alice";
  good.roles = {"reader"};
  good.issued_at_s = kNow_s;
  REQUIRE(engram::auth::sign_token(ring, good).has_value());
  auto refused = [&](auto edit) {
    TokenRequest r = good;
    edit(r);
    auto t = engram::auth::sign_token(ring, r);
    return !t.has_value() && t.error().code == errc::invalid_argument;
  };
  CHECK(refused([](TokenRequest& r) { r.subject.clear(); }));
  CHECK(refused([](TokenRequest& r) { r.roles = {"root"}; }));
  CHECK(refused([](TokenRequest& r) { r.roles = {"reader", "reader"}; }));
  CHECK(refused([](TokenRequest& r) { r.ttl_s = 0; }));
  CHECK(refused([](TokenRequest& r) { r.agent = ""; }));
  CHECK(refused([](TokenRequest& r) { r.kid = "nope"; }));
  CHECK(refused([](TokenRequest& r) { r.kid = "ed-public"; }));     // no private key
  CHECK(refused([](TokenRequest& r) { r.subject = "\xff\xfe"; }));  // not UTF-8
}

TEST_CASE("tokens minted by PyJWT are accepted for both algorithms") {
  Fixture f;
  for (const char* kid : {"hs", "ed"}) {
    CAPTURE(kid);
    const std::string token = f.mint({"--kid", kid, "--sub", "bob", "--roles", "writer,reviewer",
                                      "--agent", "agent-1", "--jti", "t-1"});
    auto claims = f.verifier.verify(token, kNow_s);
    REQUIRE_MESSAGE(claims.has_value(), claims.error().to_string());
    CHECK(claims->subject == "bob");
    CHECK(claims->roles == std::vector<std::string>{"writer", "reviewer"});
    CHECK(claims->agent == std::optional<std::string>("agent-1"));
    CHECK(claims->token_id == "t-1");
    CHECK(claims->kid == kid);
    CHECK(claims->expires_at_s == kNow_s + 3600);
  }
  // aud as an array that contains ours; no agent: not agent-scoped.
  auto multi = f.verifier.verify(f.mint({"--kid", "hs", "--sub", "bob", "--roles", "reader",
                                         "--aud", "other", "--aud", "engram-api"}),
                                 kNow_s);
  REQUIRE_MESSAGE(multi.has_value(), multi.error().to_string());
  CHECK_FALSE(multi->agent.has_value());
  CHECK(multi->token_id.empty());
}

TEST_CASE("time claims: exp, nbf and iat with leeway") {
  Fixture f;
  CHECK(f.refusal(f.mint({"--kid", "hs", "--sub", "a", "--roles", "reader", "--exp-in", "-31"})) ==
        AuthErrc::expired);
  CHECK(f.refusal(f.mint({"--kid", "ed", "--sub", "a", "--roles", "reader", "--exp-in",
                          "-3600"})) == AuthErrc::expired);
  CHECK(f.verifier
            .verify(f.mint({"--kid", "hs", "--sub", "a", "--roles", "reader", "--exp-in", "-10"}),
                    kNow_s)
            .has_value());  // within the leeway
  CHECK(f.refusal(f.mint({"--kid", "hs", "--sub", "a", "--roles", "reader", "--no-exp"})) ==
        AuthErrc::missing_exp);
  CHECK(f.refusal(f.mint({"--kid", "hs", "--sub", "a", "--roles", "reader", "--nbf-in", "120"})) ==
        AuthErrc::not_yet_valid);
  CHECK(f.verifier
            .verify(f.mint({"--kid", "hs", "--sub", "a", "--roles", "reader", "--nbf-in", "20"}),
                    kNow_s)
            .has_value());
  CHECK(f.refusal(f.mint({"--kid", "hs", "--sub", "a", "--roles", "reader", "--iat-in", "3600"})) ==
        AuthErrc::not_yet_valid);
  CHECK(f.refusal(f.mint({"--kid", "hs", "--sub", "a", "--roles", "reader", "--claims-json",
                          R"({"exp": "tomorrow"})"})) == AuthErrc::bad_claims);
  // Milliseconds by mistake: beyond year 9999.
  CHECK(f.refusal(f.mint({"--kid", "hs", "--sub", "a", "--roles", "reader", "--claims-json",
                          R"({"exp": 1700000000000000})"})) == AuthErrc::bad_claims);
  // A fractional exp is a valid NumericDate.
  CHECK(f.verifier
            .verify(f.mint({"--kid", "hs", "--sub", "a", "--roles", "reader", "--claims-json",
                            R"({"exp": 1700000600.5})"}),
                    kNow_s)
            .has_value());
}

TEST_CASE("issuer and audience must match the ring's") {
  Fixture f;
  CHECK(f.refusal(f.mint({"--kid", "hs", "--sub", "a", "--roles", "reader", "--aud", "other"})) ==
        AuthErrc::wrong_audience);
  CHECK(f.refusal(f.mint({"--kid", "ed", "--sub", "a", "--roles", "reader", "--aud", "x", "--aud",
                          "y"})) == AuthErrc::wrong_audience);
  CHECK(f.refusal(f.mint({"--kid", "hs", "--sub", "a", "--roles", "reader", "--claims-json",
                          R"({"aud": null})"})) == AuthErrc::wrong_audience);
  CHECK(f.refusal(f.mint({"--kid", "hs", "--sub", "a", "--roles", "reader", "--iss", "evil"})) ==
        AuthErrc::wrong_issuer);
  CHECK(f.refusal(f.mint({"--kid", "ed", "--sub", "a", "--roles", "reader", "--claims-json",
                          R"({"iss": ["engram-test"]})"})) == AuthErrc::wrong_issuer);
}

TEST_CASE("algorithm allow-list: none, confusion and mismatched alg are refused") {
  Fixture f;
  CHECK(f.refusal(f.mint({"--kid", "hs", "--sub", "a", "--roles", "admin", "--alg", "none"})) ==
        AuthErrc::alg_not_allowed);
  CHECK(f.refusal(f.mint({"--kid", "ed", "--sub", "a", "--roles", "admin", "--alg", "none"})) ==
        AuthErrc::alg_not_allowed);

  // The classic confusion: HS256 keyed with the EdDSA key's public PEM.
  const std::string confused =
      f.mint({"--kid", "ed", "--sub", "a", "--roles", "admin", "--hs256-with-public-pem"});
  CHECK(f.refusal(confused) == AuthErrc::alg_not_allowed);
  // The attack token is well made: a verifier that took the header's alg and
  // used the PEM text as an HMAC key would accept it.
  KeyRing naive("engram-test", "engram-api");
  REQUIRE(naive.add_hs256("ed", f.ring.find("ed")->public_key_pem()).has_value());
  CHECK(Verifier(naive).verify(confused, kNow_s).has_value());

  // An HS256 key's token whose header claims another algorithm.
  CHECK(f.refusal(f.mint({"--kid", "hs", "--sub", "a", "--roles", "reader", "--header-json",
                          R"({"alg": "EdDSA"})"})) == AuthErrc::alg_not_allowed);
  CHECK(f.refusal(f.mint({"--kid", "hs", "--sub", "a", "--roles", "reader", "--header-json",
                          R"({"alg": "HS512"})"})) == AuthErrc::alg_not_allowed);
  CHECK(f.refusal(hand_token(f.ring, R"({"kid":"hs","typ":"JWT"})", claims_json())) ==
        AuthErrc::malformed);  // no alg at all
  CHECK(f.verifier.verify(hand_token(f.ring, kHsHeader, claims_json()), kNow_s).has_value());
}

TEST_CASE("unknown or missing kid is refused") {
  Fixture f;
  KeyRing stranger("engram-test", "engram-api");
  REQUIRE(stranger.add_random_hs256("stranger").has_value());
  const auto stranger_keys = f.dir / "stranger.json";
  REQUIRE(stranger.save_new(stranger_keys).has_value());
  CHECK(f.refusal(f.mint({"--kid", "stranger", "--sub", "a", "--roles", "reader"},
                         stranger_keys)) == AuthErrc::unknown_kid);
  CHECK(f.refusal(hand_token(f.ring, R"({"alg":"HS256","typ":"JWT"})", claims_json())) ==
        AuthErrc::unknown_kid);
  CHECK(f.refusal(hand_token(f.ring, R"({"alg":"HS256","kid":7})", claims_json())) ==
        AuthErrc::unknown_kid);
}

TEST_CASE("tampered tokens fail the signature check") {
  Fixture f;
  for (const char* kid : {"hs", "ed"}) {
    CAPTURE(kid);
    const std::string token = f.mint({"--kid", kid, "--sub", "mallory", "--roles", "reader"});
    REQUIRE(f.verifier.verify(token, kNow_s).has_value());
    const size_t dot1 = token.find('.'), dot2 = token.rfind('.');
    // Re-encode the claims with one more role, keep header and signature.
    auto claims = base64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1));
    REQUIRE(claims.has_value());
    const size_t at = claims->find("\"reader\"");
    REQUIRE(at != std::string::npos);
    std::string elevated = *claims;
    elevated.insert(at, "\"admin\",");
    const std::string forged =
        token.substr(0, dot1 + 1) + base64url_encode(elevated) + token.substr(dot2);
    CHECK(f.refusal(forged) == AuthErrc::bad_signature);
    // One flipped signature bit.
    std::string sig = *base64url_decode(token.substr(dot2 + 1));
    sig[5] = static_cast<char>(sig[5] ^ 1);
    CHECK(f.refusal(token.substr(0, dot2 + 1) + base64url_encode(sig)) == AuthErrc::bad_signature);
    // A signature of the wrong length and an empty one.
    CHECK(f.refusal(token.substr(0, dot2 + 1) + base64url_encode(sig.substr(1))) ==
          AuthErrc::bad_signature);
    CHECK(f.refusal(token.substr(0, dot2 + 1)) == AuthErrc::bad_signature);
  }
  // The other key's valid signature does not transfer.
  const std::string hs = f.mint({"--kid", "hs", "--sub", "a", "--roles", "reader"});
  const std::string ed = f.mint({"--kid", "ed", "--sub", "a", "--roles", "reader"});
  CHECK(f.refusal(hs.substr(0, hs.rfind('.')) + ed.substr(ed.rfind('.'))) ==
        AuthErrc::bad_signature);
}

TEST_CASE("malformed tokens: encoding, shape, size, header rules") {
  Fixture f;
  const std::string token = f.mint({"--kid", "hs", "--sub", "a", "--roles", "reader"});
  REQUIRE(f.verifier.verify(token, kNow_s).has_value());
  const size_t dot1 = token.find('.'), dot2 = token.rfind('.');
  CHECK(f.refusal(token + "=") == AuthErrc::malformed);            // padding
  CHECK(f.refusal("+" + token.substr(1)) == AuthErrc::malformed);  // bad char
  CHECK(f.refusal(token.substr(0, dot1 + 1) + "*" + token.substr(dot1 + 2)) ==
        AuthErrc::malformed);                                      // in claims
  CHECK(f.refusal(token.substr(0, dot2)) == AuthErrc::malformed);  // two parts
  CHECK(f.refusal(token + ".x") == AuthErrc::malformed);           // four parts
  CHECK(f.refusal("") == AuthErrc::malformed);
  CHECK(f.refusal(" " + token) == AuthErrc::malformed);

  // Size: a big claim pushes the token past 8192 bytes; refused before decoding.
  const std::string big = f.mint({"--kid", "hs", "--sub", "a", "--roles", "reader", "--claims-json",
                                  "{\"pad\": \"" + std::string(6200, 'x') + "\"}"});
  REQUIRE(big.size() > 8192);
  CHECK(f.refusal(big) == AuthErrc::malformed);
  engram::auth::VerifierOptions roomy;
  roomy.max_token_bytes = 16384;
  CHECK(Verifier(f.ring, roomy).verify(big, kNow_s).has_value());

  CHECK(f.refusal(f.mint({"--kid", "hs", "--sub", "a", "--roles", "reader", "--header-json",
                          R"({"typ": "at+jwt"})"})) == AuthErrc::malformed);
  CHECK(f.refusal(f.mint({"--kid", "ed", "--sub", "a", "--roles", "reader", "--header-json",
                          R"({"crit": ["exp"], "exp": 1})"})) == AuthErrc::malformed);
  // Headers without typ are fine.
  CHECK(
      f.verifier.verify(hand_token(f.ring, R"({"alg":"HS256","kid":"hs"})", claims_json()), kNow_s)
          .has_value());
  // A repeated name: one library would read alg "none", another "HS256".
  CHECK(f.refusal(hand_token(f.ring, R"({"alg":"none","kid":"hs","alg":"HS256"})",
                             claims_json())) == AuthErrc::malformed);
  CHECK(f.refusal(hand_token(f.ring, kHsHeader, claims_json(R"(,"sub":"root")"))) ==
        AuthErrc::malformed);
  // Deep nesting is refused before parsing.
  CHECK(f.refusal(hand_token(f.ring, kHsHeader,
                             claims_json(R"(,"x":[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]])"))) ==
        AuthErrc::malformed);
  CHECK(f.refusal(hand_token(f.ring, kHsHeader, "[1]")) == AuthErrc::malformed);
  CHECK(f.refusal(hand_token(f.ring, kHsHeader, "{\"exp\":")) == AuthErrc::malformed);
  CHECK(f.refusal(hand_token(f.ring, "not json", claims_json())) == AuthErrc::malformed);
}

TEST_CASE("subject, roles, agent and jti claims are checked") {
  Fixture f;
  CHECK(f.refusal(f.mint({"--kid", "hs", "--sub", "a", "--roles", "writer,superuser"})) ==
        AuthErrc::bad_claims);
  CHECK(f.refusal(f.mint({"--kid", "ed", "--sub", "a", "--roles", "Admin"})) ==
        AuthErrc::bad_claims);
  CHECK(f.refusal(f.mint({"--kid", "hs", "--sub", "a", "--roles", "reader,reader"})) ==
        AuthErrc::bad_claims);
  CHECK(f.refusal(f.mint({"--kid", "hs", "--sub", "", "--roles", "reader"})) ==
        AuthErrc::bad_claims);  // no sub
  CHECK(f.refusal(f.mint({"--kid", "hs", "--sub", std::string(257, 's'), "--roles", "reader"})) ==
        AuthErrc::bad_claims);
  CHECK(f.verifier
            .verify(f.mint({"--kid", "hs", "--sub", std::string(256, 's'), "--roles", "reader"}),
                    kNow_s)
            .has_value());
  CHECK(f.refusal(f.mint({"--kid", "hs", "--sub", "a", "--roles", "reader", "--claims-json",
                          R"({"sub": 42})"})) == AuthErrc::bad_claims);
  CHECK(f.refusal(f.mint({"--kid", "hs", "--sub", "a", "--roles", "reader", "--claims-json",
                          R"({"roles": "admin"})"})) == AuthErrc::bad_claims);
  CHECK(f.refusal(f.mint({"--kid", "hs", "--sub", "a", "--roles", "reader", "--claims-json",
                          R"({"roles": ["reader", 1]})"})) == AuthErrc::bad_claims);
  CHECK(f.refusal(f.mint({"--kid", "hs", "--sub", "a", "--roles", "reader", "--claims-json",
                          R"({"roles": null})"})) == AuthErrc::bad_claims);
  CHECK(f.refusal(f.mint({"--kid", "hs", "--sub", "a", "--roles", "reader", "--agent", ""})) ==
        AuthErrc::bad_claims);
  CHECK(f.refusal(f.mint({"--kid", "hs", "--sub", "a", "--roles", "reader", "--claims-json",
                          R"({"agent": null})"})) == AuthErrc::bad_claims);
  CHECK(f.refusal(f.mint({"--kid", "hs", "--sub", "a", "--roles", "reader", "--claims-json",
                          R"({"jti": 5})"})) == AuthErrc::bad_claims);
  CHECK(f.refusal(f.mint({"--kid", "hs", "--sub", "a", "--roles", "reader", "--claims-json",
                          R"({"aud": ["engram-api", 3]})"})) == AuthErrc::bad_claims);
  // Every role name is known; an empty list authenticates but grants nothing.
  auto all = f.verifier.verify(
      f.mint({"--kid", "ed", "--sub", "a", "--roles", "admin,writer,reviewer,reader,replicator"}),
      kNow_s);
  REQUIRE_MESSAGE(all.has_value(), all.error().to_string());
  CHECK(all->roles.size() == 5);
  auto none = f.verifier.verify(f.mint({"--kid", "ed", "--sub", "a"}), kNow_s);
  REQUIRE_MESSAGE(none.has_value(), none.error().to_string());
  CHECK(none->roles.empty());
}

TEST_CASE("one Verifier serves many threads") {
  Fixture f;
  const std::string hs = f.mint({"--kid", "hs", "--sub", "a", "--roles", "reader"});
  const std::string ed = f.mint({"--kid", "ed", "--sub", "b", "--roles", "writer"});
  const std::string bad = hs.substr(0, hs.rfind('.')) + ed.substr(ed.rfind('.'));
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 300; ++i) {
        auto a = f.verifier.verify(hs, kNow_s);
        auto b = f.verifier.verify(ed, kNow_s);
        auto c = f.verifier.verify(bad, kNow_s);
        if (!a || a->subject != "a" || !b || b->subject != "b" || c ||
            c.error().code != AuthErrc::bad_signature) {
          ++wrong;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(wrong.load() == 0);
}

TEST_CASE("key file: parse errors are clear") {
  const KeyRing ring = test_ring();
  const std::string pub = ring.find("ed")->public_key_pem();
  const std::string priv = ring.find("ed")->private_key_pem();
  KeyRing other = test_ring();
  const std::string other_priv = other.find("ed")->private_key_pem();
  const std::string secret = base64url_encode(std::string(32, 'k'));
  auto error_of = [](const std::string& text) {
    auto r = KeyRing::parse(text);
    REQUIRE_MESSAGE(!r.has_value(), "parsed: " << text);
    CHECK(r.error().code == errc::invalid_argument);
    return r.error().message;
  };
  auto file = [](const std::string& keys) {
    return R"({"issuer":"i","audience":"a","keys":[)" + keys + "]}";
  };
  auto hs = [](const std::string& s) {
    return R"({"kid":"k","alg":"HS256","secret_b64url":")" + s + "\"}";
  };
  auto ed = [](const std::string& p, const std::string& q) {
    nlohmann::json j{{"kid", "e"}, {"alg", "EdDSA"}, {"public_key_pem", p}};
    if (!q.empty()) j["private_key_pem"] = q;
    return j.dump();
  };
  REQUIRE(KeyRing::parse(file(hs(secret))).has_value());
  REQUIRE(KeyRing::parse(file(ed(pub, priv))).has_value());
  REQUIRE(KeyRing::parse(file(ed(pub, ""))).has_value());

  CHECK(error_of("{not json").find("not valid JSON") != std::string::npos);
  CHECK(error_of(file(R"({"kid":"k","alg":"RS256"})")).find("unknown alg") != std::string::npos);
  CHECK(error_of(file(R"({"kid":"k","alg":"none"})")).find("unknown alg") != std::string::npos);
  CHECK(error_of(file(hs(base64url_encode(std::string(31, 'k'))))).find("32 to") !=
        std::string::npos);
  CHECK(error_of(file(hs(secret + "=="))).find("base64url") != std::string::npos);
  CHECK(error_of(file(ed("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n", "")))
            .find("public_key_pem") != std::string::npos);
  CHECK(error_of(file(ed(pub, "garbage"))).find("private_key_pem") != std::string::npos);
  CHECK(error_of(file(ed(pub, other_priv))).find("does not match") != std::string::npos);
  CHECK(error_of(file(hs(secret) + "," + hs(secret))).find("duplicate kid") != std::string::npos);
  CHECK(error_of(file(R"({"kid":"k","alg":"HS256","secret_b64url":")" + secret +
                      R"(","public_key_pem":"x"})"))
            .find("not allowed") != std::string::npos);
  CHECK(error_of(file("")).find("non-empty") != std::string::npos);
  CHECK(error_of(R"({"audience":"a","keys":[]})").find("issuer") != std::string::npos);
  CHECK(error_of(R"({"issuer":"i","audience":"a","keys":[)" + hs(secret) + R"(],"extra":1})")
            .find("unknown field") != std::string::npos);
  CHECK(
      error_of(file(R"({"kid":"k","alg":"HS256","secret_b64url":")" + secret + R"(","kid":"k2"})"))
          .find("repeats") != std::string::npos);
  CHECK(error_of(file(R"({"kid":"has space","alg":"HS256","secret_b64url":")" + secret + "\"}"))
            .find("kid") != std::string::npos);
  // An RSA key is not an Ed25519 key.
  EVP_PKEY* rsa = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048});
  REQUIRE(rsa != nullptr);
  BIO* bio = BIO_new(BIO_s_mem());
  REQUIRE(PEM_write_bio_PUBKEY(bio, rsa) == 1);
  char* data = nullptr;
  const std::string rsa_pem(data, static_cast<size_t>(BIO_get_mem_data(bio, &data)));
  BIO_free(bio);
  EVP_PKEY_free(rsa);
  CHECK(error_of(file(ed(rsa_pem, ""))).find("not an Ed25519 key") != std::string::npos);
}

TEST_CASE("key file: load, save and round trip") {
  engram::test::TempDir dir;
  const KeyRing ring = test_ring();
  const auto path = dir / "keys.json";
  REQUIRE(ring.save_new(path).has_value());
  CHECK((std::filesystem::status(path).permissions() & std::filesystem::perms::all) ==
        (std::filesystem::perms::owner_read | std::filesystem::perms::owner_write));
  auto again = ring.save_new(path);
  REQUIRE_FALSE(again.has_value());
  CHECK(again.error().message.find("already exists") != std::string::npos);

  auto loaded = KeyRing::load(path);
  REQUIRE_MESSAGE(loaded.has_value(), loaded.error().to_string());
  CHECK(loaded->issuer() == "engram-test");
  CHECK(loaded->audience() == "engram-api");
  REQUIRE(loaded->keys().size() == 2);
  CHECK(loaded->find("hs")->secret() == ring.find("hs")->secret());
  CHECK(loaded->find("ed")->can_sign());
  // A token signed with the original verifies with the loaded copy and back.
  TokenRequest req;
  req.subject = "s";
  req.roles = {"reader"};
  req.issued_at_s = kNow_s;
  req.kid = "ed";
  CHECK(Verifier(*loaded).verify(*engram::auth::sign_token(ring, req), kNow_s).has_value());
  CHECK(Verifier(ring).verify(*engram::auth::sign_token(*loaded, req), kNow_s).has_value());

  auto missing = KeyRing::load(dir / "nope.json");
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.error().code == errc::not_found);
  spit(dir / "bad.json", "{\"issuer\": ");
  auto bad = KeyRing::load(dir / "bad.json");
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error().code == errc::invalid_argument);
  CHECK(bad.error().message.find("bad.json") != std::string::npos);
  auto is_dir = KeyRing::load(dir.path());
  REQUIRE_FALSE(is_dir.has_value());
}

TEST_CASE("load_or_create makes a 0600 file with one HS256 key and reloads the same key") {
  engram::test::TempDir dir;
  const auto path = dir / "data" / "auth" / "keys.json";
  auto created = KeyRing::load_or_create(path);
  REQUIRE_MESSAGE(created.has_value(), created.error().to_string());
  CHECK(created->issuer() == "engram");
  CHECK(created->audience() == "engram");
  REQUIRE(created->keys().size() == 1);
  const auto& key = created->keys().front();
  CHECK(key.kid() == "default");
  CHECK(key.alg() == engram::auth::Alg::hs256);
  CHECK(key.secret().size() == 32);
  CHECK(key.secret() != std::string(32, '\0'));

  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);
  REQUIRE(::stat(path.parent_path().c_str(), &st) == 0);
  CHECK((st.st_mode & 077) == 0);
  // No temp file is left behind.
  CHECK(std::distance(std::filesystem::directory_iterator(path.parent_path()),
                      std::filesystem::directory_iterator()) == 1);

  const std::string text = slurp(path);
  auto reloaded = KeyRing::load_or_create(path);
  REQUIRE(reloaded.has_value());
  CHECK(reloaded->find("default")->secret() == key.secret());
  CHECK(slurp(path) == text);  // not rewritten

  // A second fresh file gets a different secret.
  auto fresh = KeyRing::load_or_create(dir / "other" / "keys.json");
  REQUIRE(fresh.has_value());
  CHECK(fresh->find("default")->secret() != key.secret());

  // A broken existing file is reported, never replaced.
  spit(dir / "broken.json", "{}");
  auto broken = KeyRing::load_or_create(dir / "broken.json");
  REQUIRE_FALSE(broken.has_value());
  CHECK(broken.error().code == errc::invalid_argument);
  CHECK(slurp(dir / "broken.json") == "{}");
}
