#pragma once

// Authenticated encryption for content that must be erasable: AES-256-GCM
// (OpenSSL). Sealed bytes are nonce(12) || ciphertext || tag(16).

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "core/result.h"

struct evp_pkey_st;

namespace engram::core {

using AeadKey = std::array<uint8_t, 32>;

inline constexpr size_t kAeadNonceBytes = 12;
inline constexpr size_t kAeadTagBytes = 16;

// Encrypts `plaintext`, binding `aad` (authenticated, not encrypted). The
// nonce is derived from `nonce_seed` and the plaintext (SHA-256, first 12
// bytes), so sealing the same message twice gives the same bytes (an
// idempotent retry stays idempotent) while different messages get different
// nonces. `nonce_seed` must be unique per message (an event id).
std::string aead_seal(const AeadKey& key, std::string_view nonce_seed, std::string_view plaintext,
                      std::string_view aad);

// Decrypts what aead_seal made. errc::corruption when the bytes are malformed
// or do not authenticate under `key` and `aad` (a wrong or destroyed key).
result<std::string> aead_open(const AeadKey& key, std::string_view sealed, std::string_view aad);

// Ed25519 keys as PEM text: the private half as unencrypted PKCS#8, the
// public half as SubjectPublicKeyInfo. read_ed25519_pem returns null, with
// `why` saying what is wrong, for text that is not such a key.
std::shared_ptr<evp_pkey_st> read_ed25519_pem(std::string_view pem, bool private_half,
                                              std::string& why);
std::string write_pem(evp_pkey_st* key, bool private_half);

// Fills `out` from the OS CSPRNG (OpenSSL RAND_bytes); asserts on failure.
void random_bytes(std::span<uint8_t> out);

}  // namespace engram::core
