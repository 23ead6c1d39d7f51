#pragma once

// Authenticated encryption for content that must be erasable: AES-256-GCM
// (OpenSSL). Sealed bytes are nonce(12) || ciphertext || tag(16).

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "core/result.h"

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

// Fills `out` from the OS CSPRNG (OpenSSL RAND_bytes); asserts on failure.
void random_bytes(std::span<uint8_t> out);

}  // namespace engram::core
