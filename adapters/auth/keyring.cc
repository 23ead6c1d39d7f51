#include "adapters/auth/keyring.h"

#include <openssl/err.h>
#include <openssl/evp.h>

#include <nlohmann/json.hpp>
#include <set>

#include "core/base64.h"
#include "core/crypto.h"
#include "core/files.h"
#include "core/json.h"

namespace engram::auth {
namespace {

using core::errc;
using core::make_error;

// A key file is an object of an array of flat objects.
constexpr size_t kMaxKeyFileDepth = 3;
constexpr size_t kMaxNameBytes = 256;
constexpr size_t kMaxPemBytes = 16 * 1024;

std::shared_ptr<evp_pkey_st> read_pem(const std::string& pem, bool private_half, std::string& why) {
  if (pem.size() > kMaxPemBytes) {
    why = "PEM is longer than " + std::to_string(kMaxPemBytes) + " bytes";
    return nullptr;
  }
  return core::read_ed25519_pem(pem, private_half, why);
}

const std::string* string_field(const nlohmann::json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end() || !it->is_string()) return nullptr;
  return &it->get_ref<const std::string&>();
}

bool valid_kid(std::string_view kid) {
  if (kid.empty() || kid.size() > kMaxKidBytes) return false;
  for (char c : kid) {
    if (c < 0x21 || c > 0x7e) return false;  // printable ASCII, no space
  }
  return true;
}

}  // namespace

const char* alg_name(Alg alg) noexcept {
  switch (alg) {
    case Alg::hs256:
      return "HS256";
    case Alg::eddsa:
      return "EdDSA";
  }
  return "?";
}

std::optional<Alg> parse_alg(std::string_view name) noexcept {
  if (name == "HS256") return Alg::hs256;
  if (name == "EdDSA") return Alg::eddsa;
  return std::nullopt;
}

bool Key::can_sign() const {
  return alg_ == Alg::hs256 ? !secret_.empty() : private_key_ != nullptr;
}

KeyRing::KeyRing(std::string issuer, std::string audience)
    : issuer_(std::move(issuer)), audience_(std::move(audience)) {}

const Key* KeyRing::find(std::string_view kid) const {
  for (const auto& k : keys_) {
    if (k.kid_ == kid) return &k;
  }
  return nullptr;
}

core::result<void> KeyRing::check_new_kid(const std::string& kid) const {
  if (!valid_kid(kid)) {
    return make_error(errc::invalid_argument, "kid must be 1 to " + std::to_string(kMaxKidBytes) +
                                                  " printable ASCII characters without spaces");
  }
  if (find(kid) != nullptr)
    return make_error(errc::invalid_argument, "duplicate kid \"" + kid + "\"");
  if (keys_.size() >= kMaxKeys) {
    return make_error(errc::invalid_argument,
                      "more than " + std::to_string(kMaxKeys) + " keys in one ring");
  }
  return {};
}

core::result<void> KeyRing::add_hs256(std::string kid, std::string secret) {
  if (auto ok = check_new_kid(kid); !ok) return ok;
  if (secret.size() < kMinHs256SecretBytes || secret.size() > kMaxHs256SecretBytes) {
    return make_error(errc::invalid_argument, "key \"" + kid + "\": an HS256 secret must be " +
                                                  std::to_string(kMinHs256SecretBytes) + " to " +
                                                  std::to_string(kMaxHs256SecretBytes) +
                                                  " bytes, this one is " +
                                                  std::to_string(secret.size()));
  }
  Key k;
  k.kid_ = std::move(kid);
  k.alg_ = Alg::hs256;
  k.secret_ = std::move(secret);
  keys_.push_back(std::move(k));
  return {};
}

core::result<void> KeyRing::add_eddsa(std::string kid, std::string public_key_pem,
                                      std::string private_key_pem) {
  if (auto ok = check_new_kid(kid); !ok) return ok;
  std::string why;
  auto pub = read_pem(public_key_pem, false, why);
  if (!pub)
    return make_error(errc::invalid_argument, "key \"" + kid + "\": public_key_pem: " + why);
  std::shared_ptr<evp_pkey_st> priv;
  if (!private_key_pem.empty()) {
    priv = read_pem(private_key_pem, true, why);
    if (!priv) {
      return make_error(errc::invalid_argument, "key \"" + kid + "\": private_key_pem: " + why);
    }
    if (EVP_PKEY_eq(pub.get(), priv.get()) != 1) {
      ERR_clear_error();
      return make_error(errc::invalid_argument,
                        "key \"" + kid + "\": private_key_pem does not match public_key_pem");
    }
  }
  Key k;
  k.kid_ = std::move(kid);
  k.alg_ = Alg::eddsa;
  k.public_key_ = std::move(pub);
  k.private_key_ = std::move(priv);
  k.public_key_pem_ = std::move(public_key_pem);
  k.private_key_pem_ = std::move(private_key_pem);
  keys_.push_back(std::move(k));
  return {};
}

core::result<void> KeyRing::add_random_hs256(std::string kid) {
  std::string secret(kMinHs256SecretBytes, '\0');
  core::random_bytes(std::span(reinterpret_cast<uint8_t*>(secret.data()), secret.size()));
  return add_hs256(std::move(kid), std::move(secret));
}

core::result<void> KeyRing::add_random_eddsa(std::string kid) {
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  ENGRAM_ASSERT_MSG(key != nullptr, "Ed25519 key generation failed");
  std::string pub = core::write_pem(key, false);
  std::string priv = core::write_pem(key, true);
  EVP_PKEY_free(key);
  return add_eddsa(std::move(kid), std::move(pub), std::move(priv));
}

core::result<KeyRing> KeyRing::parse(std::string_view json_text) {
  auto j = core::parse_json_object(json_text, kMaxKeyFileDepth);
  if (!j) return make_error(errc::invalid_argument, "key file: " + j.error().message);
  for (const char* name : {"issuer", "audience"}) {
    const std::string* s = string_field(*j, name);
    if (s == nullptr || s->empty() || s->size() > kMaxNameBytes) {
      return make_error(errc::invalid_argument, std::string("key file: \"") + name +
                                                    "\" must be a string of 1 to " +
                                                    std::to_string(kMaxNameBytes) + " bytes");
    }
  }
  for (const auto& [name, value] : j->items()) {
    if (name != "issuer" && name != "audience" && name != "keys") {
      return make_error(errc::invalid_argument, "key file: unknown field \"" + name + "\"");
    }
  }
  KeyRing ring(*string_field(*j, "issuer"), *string_field(*j, "audience"));
  auto keys = j->find("keys");
  if (keys == j->end() || !keys->is_array() || keys->empty()) {
    return make_error(errc::invalid_argument, "key file: \"keys\" must be a non-empty array");
  }
  size_t index = 0;
  for (const auto& entry : *keys) {
    const std::string where = "key file: keys[" + std::to_string(index++) + "]";
    if (!entry.is_object()) return make_error(errc::invalid_argument, where + " is not an object");
    const std::string* kid = string_field(entry, "kid");
    const std::string* alg_text = string_field(entry, "alg");
    if (kid == nullptr) return make_error(errc::invalid_argument, where + ": \"kid\" missing");
    if (alg_text == nullptr) return make_error(errc::invalid_argument, where + ": \"alg\" missing");
    const auto alg = parse_alg(*alg_text);
    if (!alg) {
      return make_error(
          errc::invalid_argument,
          where + ": unknown alg \"" + alg_text->substr(0, 32) + "\" (HS256 or EdDSA)");
    }
    // Only the fields of the key's own algorithm: an HS256 entry that also
    // carries a PEM is a mistake, not a choice.
    const std::set<std::string> allowed =
        *alg == Alg::hs256
            ? std::set<std::string>{"kid", "alg", "secret_b64url"}
            : std::set<std::string>{"kid", "alg", "public_key_pem", "private_key_pem"};
    for (const auto& [name, value] : entry.items()) {
      if (!allowed.contains(name)) {
        return make_error(errc::invalid_argument,
                          where + ": field \"" + name + "\" is not allowed for " + *alg_text);
      }
      if (!value.is_string()) {
        return make_error(errc::invalid_argument, where + ": \"" + name + "\" must be a string");
      }
    }
    core::result<void> added;
    if (*alg == Alg::hs256) {
      const std::string* secret_text = string_field(entry, "secret_b64url");
      if (secret_text == nullptr) {
        return make_error(errc::invalid_argument, where + ": \"secret_b64url\" missing");
      }
      auto secret = core::base64url_decode(*secret_text);
      if (!secret) {
        return make_error(errc::invalid_argument,
                          where + ": \"secret_b64url\" is not unpadded base64url");
      }
      added = ring.add_hs256(*kid, std::move(*secret));
    } else {
      const std::string* pub = string_field(entry, "public_key_pem");
      const std::string* priv = string_field(entry, "private_key_pem");
      if (pub == nullptr) {
        return make_error(errc::invalid_argument, where + ": \"public_key_pem\" missing");
      }
      added = ring.add_eddsa(*kid, *pub, priv != nullptr ? *priv : std::string());
    }
    if (!added) return make_error(errc::invalid_argument, "key file: " + added.error().message);
  }
  return ring;
}

std::string KeyRing::to_json() const {
  nlohmann::ordered_json keys = nlohmann::ordered_json::array();
  for (const auto& k : keys_) {
    nlohmann::ordered_json e{{"kid", k.kid_}, {"alg", alg_name(k.alg_)}};
    if (k.alg_ == Alg::hs256) {
      e["secret_b64url"] = core::base64url_encode(k.secret_);
    } else {
      e["public_key_pem"] = k.public_key_pem_;
      if (!k.private_key_pem_.empty()) e["private_key_pem"] = k.private_key_pem_;
    }
    keys.push_back(std::move(e));
  }
  nlohmann::ordered_json j{{"issuer", issuer_}, {"audience", audience_}, {"keys", std::move(keys)}};
  // Only an issuer or audience passed to the constructor can be invalid
  // UTF-8; replacing it beats throwing across the module's API.
  return j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

core::result<void> KeyRing::save_new(const std::filesystem::path& path) const {
  // Only the owner may read a file that holds secrets.
  auto written = core::write_new_file(path, to_json(), 0600);
  if (!written) return written.error();
  if (!*written) return make_error(errc::invalid_argument, path.string() + " already exists");
  return {};
}

core::result<KeyRing> KeyRing::load(const std::filesystem::path& path) {
  auto text = core::read_file(path, kMaxKeyFileBytes);
  if (!text) return make_error(text.error().code, "key file " + text.error().message);
  auto ring = parse(*text);
  if (!ring) return make_error(ring.error().code, path.string() + ": " + ring.error().message);
  return ring;
}

core::result<KeyRing> KeyRing::load_or_create(const std::filesystem::path& path) {
  auto loaded = load(path);
  if (loaded || loaded.error().code != errc::not_found) return loaded;

  const std::filesystem::path dir = path.parent_path();
  if (!dir.empty()) {
    std::error_code ec;
    const bool created = std::filesystem::create_directories(dir, ec);
    if (ec) return make_error(errc::io_error, dir.string() + ": " + ec.message());
    // Only the owner needs to list a directory that holds secrets.
    if (created) {
      std::filesystem::permissions(dir, std::filesystem::perms::owner_all,
                                   std::filesystem::perm_options::replace, ec);
      if (ec) return make_error(errc::io_error, dir.string() + ": " + ec.message());
    }
  }
  KeyRing ring("engram", "engram");
  auto added = ring.add_random_hs256("default");
  ENGRAM_ASSERT(added.has_value());
  auto written = core::write_new_file(path, ring.to_json(), 0600);
  if (!written) return written.error();
  // Read back what is on disk, ours or a concurrent creator's, so every
  // process uses the same key.
  return load(path);
}

}  // namespace engram::auth
