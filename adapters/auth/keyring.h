#pragma once

// The keys that sign and verify engram's bearer tokens, and the key file that
// holds them (format: docs/auth.md).
//
// Contract:
// - Every key has a `kid` and exactly one algorithm. A token is checked only
//   with the algorithm of the key its header names, never with the one the
//   header asks for; that allow-list is what defeats algorithm confusion.
// - HS256 secrets are at least kMinHs256SecretBytes random bytes. EdDSA keys
//   are Ed25519; the private half is optional (a verifier needs none).
// - A KeyRing is immutable once built and safe to share between threads.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

struct evp_pkey_st;

namespace engram::auth {

enum class Alg { hs256, eddsa };
// The JOSE name: "HS256", "EdDSA".
const char* alg_name(Alg alg) noexcept;
std::optional<Alg> parse_alg(std::string_view name) noexcept;

inline constexpr size_t kMinHs256SecretBytes = 32;
inline constexpr size_t kMaxHs256SecretBytes = 1024;
inline constexpr size_t kMaxKidBytes = 128;
inline constexpr size_t kMaxKeyFileBytes = 1 << 20;
inline constexpr size_t kMaxKeys = 256;

class Key {
 public:
  const std::string& kid() const { return kid_; }
  Alg alg() const { return alg_; }
  // True when this key holds what signing needs (an HS256 secret, an Ed25519 private key).
  bool can_sign() const;

  // The HS256 secret; empty for EdDSA keys.
  const std::string& secret() const { return secret_; }
  // The Ed25519 keys (EVP_PKEY, shared, never modified); null for HS256 keys.
  // private_key() is null too when the key file gave no private half.
  evp_pkey_st* public_key() const { return public_key_.get(); }
  evp_pkey_st* private_key() const { return private_key_.get(); }
  // The PEM texts the key was built from (SubjectPublicKeyInfo, PKCS#8); empty for HS256.
  const std::string& public_key_pem() const { return public_key_pem_; }
  const std::string& private_key_pem() const { return private_key_pem_; }

 private:
  friend class KeyRing;
  std::string kid_;
  Alg alg_ = Alg::hs256;
  std::string secret_;
  std::shared_ptr<evp_pkey_st> public_key_;
  std::shared_ptr<evp_pkey_st> private_key_;
  std::string public_key_pem_;
  std::string private_key_pem_;
};

class KeyRing {
 public:
  // An empty ring with the issuer and audience tokens must name.
  KeyRing(std::string issuer, std::string audience);

  // Reads a key file. errc::not_found when it does not exist, errc::io_error
  // when it cannot be read, errc::invalid_argument (with the reason: bad
  // JSON, unknown alg, short secret, bad PEM...) when its content is wrong.
  static core::result<KeyRing> load(const std::filesystem::path& path);
  // Like load, but a missing file is created first (with its parent
  // directory) holding one fresh HS256 key, kid "default", issuer and
  // audience "engram"; mode 0600, written atomically (temp file, fsync,
  // link, fsync of the directory). A concurrent creator never clobbers:
  // the loser reads the winner's file.
  static core::result<KeyRing> load_or_create(const std::filesystem::path& path);
  // Parses key file text; errors as for load.
  static core::result<KeyRing> parse(std::string_view json_text);

  // Writes the ring as a key file (mode 0600, atomically; fails with
  // errc::invalid_argument if `path` already exists).
  core::result<void> save_new(const std::filesystem::path& path) const;
  // The key file text (includes secrets and private keys).
  std::string to_json() const;

  // Adding fails with errc::invalid_argument on a duplicate or bad kid, a
  // short secret or a PEM that is not an Ed25519 key (or whose private half
  // does not match the public one).
  core::result<void> add_hs256(std::string kid, std::string secret);
  core::result<void> add_eddsa(std::string kid, std::string public_key_pem,
                               std::string private_key_pem = {});
  // Fresh keys from the OS CSPRNG.
  core::result<void> add_random_hs256(std::string kid);
  core::result<void> add_random_eddsa(std::string kid);

  const std::string& issuer() const { return issuer_; }
  const std::string& audience() const { return audience_; }
  const std::vector<Key>& keys() const { return keys_; }
  // Null when no key has this kid.
  const Key* find(std::string_view kid) const;

 private:
  core::result<void> check_new_kid(const std::string& kid) const;

  std::string issuer_;
  std::string audience_;
  std::vector<Key> keys_;
};

}  // namespace engram::auth
