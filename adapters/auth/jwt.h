#pragma once

// Bearer tokens: compact JWS JWTs (RFC 7515, RFC 7519) signed with HS256 or
// EdDSA (Ed25519), verified with OpenSSL only. Formats, claims and roles:
// docs/auth.md.
//
// Contract of Verifier::verify (the server calls it once per request):
// - The token is at most max_token_bytes, three strict base64url segments.
// - Header: `kid` names a key of the ring (else unknown_kid); `alg` equals
//   that key's one algorithm (else alg_not_allowed; "none" is never
//   allowed); `typ`, if present, is "JWT"; `crit` is rejected.
// - The signature is checked before any claim is looked at.
// - Claims: `exp` is required; `exp`, `nbf`, `iat` are checked against
//   `now_s` with leeway_s; `iss` equals the ring's issuer; `aud` (string or
//   array) contains the ring's audience; `sub` is a non-empty string;
//   `roles` is an array of distinct known role names; `agent` and `jti`
//   are optional strings.
// - No exceptions; a Verifier is immutable and safe to share between threads.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "adapters/auth/keyring.h"
#include "core/result.h"

namespace engram::auth {

// Why a token was refused. Values and names are stable: the HTTP adapter
// reports them and clients may switch on them.
enum class AuthErrc {
  malformed,        // not three strict base64url segments of JSON objects; too big; crit
  unknown_kid,      // the header names no key of the ring (or no kid at all)
  alg_not_allowed,  // alg is "none" or not the algorithm of the named key
  bad_signature,    // the signature does not verify
  expired,          // exp (plus leeway) has passed
  not_yet_valid,    // nbf or iat lies in the future (beyond leeway)
  missing_exp,      // tokens without an expiry are never accepted
  wrong_issuer,     // iss missing or not the ring's issuer
  wrong_audience,   // aud missing or does not contain the ring's audience
  bad_claims,       // a claim has the wrong type or value (sub, roles, agent, jti, times)
};

// The stable snake_case name ("alg_not_allowed").
const char* auth_errc_name(AuthErrc code) noexcept;

struct AuthError {
  AuthErrc code = AuthErrc::malformed;
  std::string detail;  // for logs and people; never echoes secrets

  std::string to_string() const { return std::string(auth_errc_name(code)) + ": " + detail; }
};

// The roles a token may carry. What each may do: docs/auth.md.
inline constexpr std::string_view kRoleAdmin = "admin";
inline constexpr std::string_view kRoleWriter = "writer";
inline constexpr std::string_view kRoleReviewer = "reviewer";
inline constexpr std::string_view kRoleReader = "reader";
inline constexpr std::string_view kRoleReplicator = "replicator";
bool is_known_role(std::string_view role) noexcept;

inline constexpr size_t kMaxSubjectBytes = 256;
inline constexpr size_t kMaxAgentBytes = 256;
inline constexpr size_t kMaxTokenIdBytes = 256;

// What a verified token says.
struct Claims {
  std::string subject;               // sub
  std::vector<std::string> roles;    // distinct, each is_known_role
  std::optional<std::string> agent;  // set: the token acts only as this agent
  int64_t expires_at_s = 0;          // exp, Unix seconds
  std::string token_id;              // jti; may be empty
  std::string kid;                   // the key that signed it

  bool has_role(std::string_view role) const;
};

struct VerifierOptions {
  // Clock skew tolerated on exp, nbf and iat.
  int64_t leeway_s = 30;
  // Longer tokens are refused before any decoding.
  size_t max_token_bytes = 8192;
  // Nesting of the header and claims JSON (the claims need 2: aud and roles arrays).
  int max_json_depth = 4;
};

class Verifier {
 public:
  // The issuer and audience tokens must name are the ring's.
  explicit Verifier(KeyRing ring, VerifierOptions options = {});

  // `now_s`: Unix seconds, from the caller's clock (tests control it).
  core::result<Claims, AuthError> verify(std::string_view token, int64_t now_s) const;

  const KeyRing& ring() const { return ring_; }
  const VerifierOptions& options() const { return options_; }

 private:
  KeyRing ring_;
  VerifierOptions options_;
};

// What to put in a new token.
struct TokenRequest {
  std::string subject;
  std::vector<std::string> roles;
  std::optional<std::string> agent;
  int64_t issued_at_s = 0;  // iat, Unix seconds
  int64_t ttl_s = 3600;     // exp = issued_at_s + ttl_s; must be > 0
  std::string kid;          // empty: the first key of the ring that can sign
  std::string token_id;     // jti; empty: a fresh UUIDv7
  // Empty: the ring's. Set them only to make tokens another ring accepts
  // (or, in tests, tokens that must be refused).
  std::string issuer;
  std::string audience;
};

// Signs a token. errc::invalid_argument when the request breaks the rules
// verify checks (empty subject, unknown role, ttl <= 0...), names no key,
// or names a key without signing material.
core::result<std::string> sign_token(const KeyRing& ring, const TokenRequest& request);

}  // namespace engram::auth
