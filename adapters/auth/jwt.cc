#include "adapters/auth/jwt.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/base64.h"
#include "core/json.h"
#include "core/uuid.h"

namespace engram::auth {
namespace {

using core::errc;
using core::make_error;
using json = nlohmann::json;

constexpr size_t kHs256SignatureBytes = 32;
constexpr size_t kEd25519SignatureBytes = 64;
// 9999-12-31T23:59:59Z: later NumericDates are mistakes (often milliseconds).
constexpr int64_t kMaxNumericDate_s = 253402300799;
constexpr int64_t kMaxTtl_s = 10LL * 366 * 24 * 3600;

AuthError auth_error(AuthErrc code, std::string detail) {
  return AuthError{code, std::move(detail)};
}

std::string hmac_sha256(std::string_view secret, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int out_len = 0;
  const unsigned char* ok =
      HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &out_len);
  ENGRAM_ASSERT_MSG(ok != nullptr && out_len == kHs256SignatureBytes, "HMAC-SHA256 failed");
  return std::string(reinterpret_cast<const char*>(out), out_len);
}

bool ed25519_verify(EVP_PKEY* key, std::string_view data, std::string_view sig) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ENGRAM_ASSERT(ctx != nullptr);
  // Ed25519 hashes internally: no digest is named.
  bool ok = EVP_DigestVerifyInit(ctx, nullptr, nullptr, nullptr, key) == 1 &&
            EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                             reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1;
  EVP_MD_CTX_free(ctx);
  ERR_clear_error();
  return ok;
}

std::string ed25519_sign(EVP_PKEY* key, std::string_view data) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ENGRAM_ASSERT(ctx != nullptr);
  std::string sig(kEd25519SignatureBytes, '\0');
  size_t sig_len = sig.size();
  const bool ok =
      EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, key) == 1 &&
      EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &sig_len,
                     reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1;
  EVP_MD_CTX_free(ctx);
  ENGRAM_ASSERT_MSG(ok && sig_len == kEd25519SignatureBytes, "Ed25519 signing failed");
  return sig;
}

bool signature_ok(const Key& key, std::string_view signing_input, std::string_view sig) {
  if (key.alg() == Alg::hs256) {
    if (sig.size() != kHs256SignatureBytes) return false;
    const std::string expected = hmac_sha256(key.secret(), signing_input);
    return CRYPTO_memcmp(expected.data(), sig.data(), kHs256SignatureBytes) == 0;
  }
  if (sig.size() != kEd25519SignatureBytes) return false;
  return ed25519_verify(key.public_key(), signing_input, sig);
}

// A NumericDate (RFC 7519 §2): seconds, possibly fractional. Fractions are
// dropped toward the past, which only makes exp stricter.
std::optional<int64_t> numeric_date(const json& v) {
  int64_t s = 0;
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(kMaxNumericDate_s)) return std::nullopt;
    s = static_cast<int64_t>(u);
  } else if (v.is_number_integer()) {
    s = v.get<int64_t>();
  } else if (v.is_number_float()) {
    const double d = v.get<double>();
    if (!std::isfinite(d) || d < 0 || d > static_cast<double>(kMaxNumericDate_s)) {
      return std::nullopt;
    }
    s = static_cast<int64_t>(std::floor(d));
  } else {
    return std::nullopt;
  }
  if (s < 0 || s > kMaxNumericDate_s) return std::nullopt;
  return s;
}

// A string claim of 1..max_bytes bytes; nullptr if absent, error text if wrong.
const std::string* string_claim(const json& claims, const char* name, size_t max_bytes,
                                std::string& why) {
  auto it = claims.find(name);
  if (it == claims.end()) return nullptr;
  if (!it->is_string() || it->get_ref<const std::string&>().empty() ||
      it->get_ref<const std::string&>().size() > max_bytes) {
    why = std::string("\"") + name + "\" must be a string of 1 to " + std::to_string(max_bytes) +
          " bytes";
    return nullptr;
  }
  return &it->get_ref<const std::string&>();
}

// Distinct known role names, or the reason they are not.
std::optional<std::string> check_roles(const std::vector<std::string>& roles) {
  for (size_t i = 0; i < roles.size(); ++i) {
    if (!is_known_role(roles[i])) {
      return "unknown role \"" + roles[i].substr(0, 64) +
             "\" (admin, writer, reviewer, reader, replicator)";
    }
    if (std::find(roles.begin(), roles.begin() + static_cast<std::ptrdiff_t>(i), roles[i]) !=
        roles.begin() + static_cast<std::ptrdiff_t>(i)) {
      return "role \"" + roles[i] + "\" appears twice";
    }
  }
  return std::nullopt;
}

}  // namespace

const char* auth_errc_name(AuthErrc code) noexcept {
  switch (code) {
    case AuthErrc::malformed:
      return "malformed";
    case AuthErrc::unknown_kid:
      return "unknown_kid";
    case AuthErrc::alg_not_allowed:
      return "alg_not_allowed";
    case AuthErrc::bad_signature:
      return "bad_signature";
    case AuthErrc::expired:
      return "expired";
    case AuthErrc::not_yet_valid:
      return "not_yet_valid";
    case AuthErrc::missing_exp:
      return "missing_exp";
    case AuthErrc::wrong_issuer:
      return "wrong_issuer";
    case AuthErrc::wrong_audience:
      return "wrong_audience";
    case AuthErrc::bad_claims:
      return "bad_claims";
  }
  return "unknown";
}

bool is_known_role(std::string_view role) noexcept {
  return role == kRoleAdmin || role == kRoleWriter || role == kRoleReviewer ||
         role == kRoleReader || role == kRoleReplicator;
}

bool Claims::has_role(std::string_view role) const {
  return std::find(roles.begin(), roles.end(), role) != roles.end();
}

Verifier::Verifier(KeyRing ring, VerifierOptions options)
    : ring_(std::move(ring)), options_(options) {
  ENGRAM_ASSERT(options_.leeway_s >= 0 && options_.leeway_s <= 24 * 3600);
  ENGRAM_ASSERT(options_.max_token_bytes > 0);
  ENGRAM_ASSERT(options_.max_json_depth >= 2);
}

core::result<Claims, AuthError> Verifier::verify(std::string_view token, int64_t now_s) const {
  if (token.size() > options_.max_token_bytes) {
    return auth_error(AuthErrc::malformed, "token is " + std::to_string(token.size()) +
                                               " bytes, more than " +
                                               std::to_string(options_.max_token_bytes));
  }
  const size_t dot1 = token.find('.');
  const size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return auth_error(AuthErrc::malformed, "a token is three dot-separated segments");
  }
  // Every segment is decoded strictly before anything is trusted, so a
  // token has exactly one accepted spelling.
  auto header_text = core::base64url_decode(token.substr(0, dot1));
  auto claims_text = core::base64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1));
  auto sig = core::base64url_decode(token.substr(dot2 + 1));
  if (!header_text || !claims_text || !sig) {
    return auth_error(AuthErrc::malformed, "a segment is not unpadded base64url");
  }

  auto header = core::parse_json_object(*header_text, static_cast<size_t>(options_.max_json_depth));
  if (!header) return auth_error(AuthErrc::malformed, "header: " + header.error().message);
  if (header->contains("crit")) {
    return auth_error(AuthErrc::malformed, "header: \"crit\" extensions are not supported");
  }
  auto alg = header->find("alg");
  if (alg == header->end() || !alg->is_string()) {
    return auth_error(AuthErrc::malformed, "header: \"alg\" must be a string");
  }
  const std::string& alg_text = alg->get_ref<const std::string&>();
  if (alg_text == "none") {
    return auth_error(AuthErrc::alg_not_allowed, "unsigned tokens (alg \"none\") are refused");
  }
  if (auto typ = header->find("typ"); typ != header->end() && *typ != "JWT") {
    return auth_error(AuthErrc::malformed, "header: \"typ\" must be \"JWT\"");
  }
  auto kid = header->find("kid");
  if (kid == header->end() || !kid->is_string()) {
    return auth_error(AuthErrc::unknown_kid, "header: \"kid\" must name a key");
  }
  const Key* key = ring_.find(kid->get_ref<const std::string&>());
  if (key == nullptr) {
    return auth_error(AuthErrc::unknown_kid,
                      "no key \"" + kid->get_ref<const std::string&>().substr(0, 64) + "\"");
  }
  // The key decides the algorithm; the header only has to agree.
  if (alg_text != alg_name(key->alg())) {
    return auth_error(AuthErrc::alg_not_allowed, "key \"" + key->kid() + "\" allows only " +
                                                     alg_name(key->alg()) + ", not \"" +
                                                     alg_text.substr(0, 16) + "\"");
  }
  if (!signature_ok(*key, token.substr(0, dot2), *sig)) {
    return auth_error(AuthErrc::bad_signature,
                      "signature does not verify with key \"" + key->kid() + "\"");
  }

  auto claims = core::parse_json_object(*claims_text, static_cast<size_t>(options_.max_json_depth));
  if (!claims) return auth_error(AuthErrc::malformed, "claims: " + claims.error().message);

  auto exp_it = claims->find("exp");
  if (exp_it == claims->end()) return auth_error(AuthErrc::missing_exp, "\"exp\" is required");
  const auto exp = numeric_date(*exp_it);
  if (!exp) return auth_error(AuthErrc::bad_claims, "\"exp\" must be a NumericDate");
  if (now_s - options_.leeway_s >= *exp) {
    return auth_error(AuthErrc::expired,
                      "expired at " + std::to_string(*exp) + ", now is " + std::to_string(now_s));
  }
  for (const char* name : {"nbf", "iat"}) {
    auto it = claims->find(name);
    if (it == claims->end()) continue;
    const auto t = numeric_date(*it);
    if (!t)
      return auth_error(AuthErrc::bad_claims,
                        std::string("\"") + name + "\" must be a NumericDate");
    if (*t > now_s + options_.leeway_s) {
      return auth_error(AuthErrc::not_yet_valid, std::string("\"") + name + "\" is " +
                                                     std::to_string(*t) + ", now is " +
                                                     std::to_string(now_s));
    }
  }

  auto iss = claims->find("iss");
  if (iss == claims->end() || !iss->is_string() ||
      iss->get_ref<const std::string&>() != ring_.issuer()) {
    return auth_error(AuthErrc::wrong_issuer, "\"iss\" must be \"" + ring_.issuer() + "\"");
  }
  auto aud = claims->find("aud");
  bool audience_ok = false;
  if (aud != claims->end() && aud->is_string()) {
    audience_ok = aud->get_ref<const std::string&>() == ring_.audience();
  } else if (aud != claims->end() && aud->is_array()) {
    for (const auto& a : *aud) {
      if (!a.is_string()) return auth_error(AuthErrc::bad_claims, "\"aud\" must hold strings");
      audience_ok = audience_ok || a.get_ref<const std::string&>() == ring_.audience();
    }
  }
  if (!audience_ok) {
    return auth_error(AuthErrc::wrong_audience,
                      "\"aud\" must contain \"" + ring_.audience() + "\"");
  }

  Claims out;
  out.kid = key->kid();
  out.expires_at_s = *exp;
  std::string why;
  const std::string* sub = string_claim(*claims, "sub", kMaxSubjectBytes, why);
  if (sub == nullptr) {
    return auth_error(AuthErrc::bad_claims, why.empty() ? "\"sub\" is required" : why);
  }
  out.subject = *sub;
  why.clear();
  if (const std::string* agent = string_claim(*claims, "agent", kMaxAgentBytes, why)) {
    out.agent = *agent;
  } else if (!why.empty()) {
    return auth_error(AuthErrc::bad_claims, why);
  }
  if (const std::string* jti = string_claim(*claims, "jti", kMaxTokenIdBytes, why)) {
    out.token_id = *jti;
  } else if (!why.empty()) {
    return auth_error(AuthErrc::bad_claims, why);
  }
  auto roles = claims->find("roles");
  if (roles == claims->end() || !roles->is_array()) {
    return auth_error(AuthErrc::bad_claims, "\"roles\" must be an array of role names");
  }
  for (const auto& r : *roles) {
    if (!r.is_string()) {
      return auth_error(AuthErrc::bad_claims, "\"roles\" must be an array of role names");
    }
    out.roles.push_back(r.get_ref<const std::string&>());
  }
  if (auto bad = check_roles(out.roles)) return auth_error(AuthErrc::bad_claims, *bad);
  return out;
}

core::result<std::string> sign_token(const KeyRing& ring, const TokenRequest& request) {
  const Key* key = nullptr;
  if (request.kid.empty()) {
    for (const auto& k : ring.keys()) {
      if (k.can_sign()) {
        key = &k;
        break;
      }
    }
    if (key == nullptr) return make_error(errc::invalid_argument, "no key of the ring can sign");
  } else {
    key = ring.find(request.kid);
    if (key == nullptr) return make_error(errc::invalid_argument, "no key \"" + request.kid + "\"");
    if (!key->can_sign()) {
      return make_error(errc::invalid_argument,
                        "key \"" + request.kid + "\" has no private key to sign with");
    }
  }
  if (request.subject.empty() || request.subject.size() > kMaxSubjectBytes) {
    return make_error(errc::invalid_argument,
                      "subject must be 1 to " + std::to_string(kMaxSubjectBytes) + " bytes");
  }
  if (request.agent && (request.agent->empty() || request.agent->size() > kMaxAgentBytes)) {
    return make_error(errc::invalid_argument,
                      "agent must be 1 to " + std::to_string(kMaxAgentBytes) + " bytes");
  }
  if (request.token_id.size() > kMaxTokenIdBytes) {
    return make_error(errc::invalid_argument,
                      "token id must be at most " + std::to_string(kMaxTokenIdBytes) + " bytes");
  }
  if (auto bad = check_roles(request.roles)) return make_error(errc::invalid_argument, *bad);
  if (request.ttl_s <= 0 || request.ttl_s > kMaxTtl_s) {
    return make_error(errc::invalid_argument,
                      "ttl must be 1 to " + std::to_string(kMaxTtl_s) + " seconds");
  }
  if (request.issued_at_s < 0 || request.issued_at_s > kMaxNumericDate_s - request.ttl_s) {
    return make_error(errc::invalid_argument, "issue time out of range");
  }

  nlohmann::ordered_json header{{"alg", alg_name(key->alg())}, {"kid", key->kid()}, {"typ", "JWT"}};
  nlohmann::ordered_json claims{
      {"iss", request.issuer.empty() ? ring.issuer() : request.issuer},
      {"aud", request.audience.empty() ? ring.audience() : request.audience},
      {"sub", request.subject},
      {"roles", request.roles}};
  if (request.agent) claims["agent"] = *request.agent;
  claims["iat"] = request.issued_at_s;
  claims["exp"] = request.issued_at_s + request.ttl_s;
  claims["jti"] = request.token_id.empty() ? core::Uuid::v7(request.issued_at_s * 1000).to_string()
                                           : request.token_id;
  std::string signing_input;
  try {
    signing_input = core::base64url_encode(header.dump()) + "." + core::base64url_encode(claims.dump());
  } catch (const nlohmann::json::exception&) {
    // dump() throws on invalid UTF-8; it must not cross the module's API.
    return make_error(errc::invalid_argument, "claims must be valid UTF-8");
  }
  const std::string sig = key->alg() == Alg::hs256
                              ? hmac_sha256(key->secret(), signing_input)
                              : ed25519_sign(key->private_key(), signing_input);
  return signing_input + "." + core::base64url_encode(sig);
}

}  // namespace engram::auth
