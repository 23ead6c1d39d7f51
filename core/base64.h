#pragma once

// Base64 (RFC 4648), the one implementation engram encodes and decodes with:
// - the standard alphabet with '=' padding (section 4), for bytes inside
//   JSON (payloads no decoder knows, a proof's envelope);
// - the URL alphabet without padding (section 5, as RFC 7515 section 2 uses
//   it), for JWT segments and key files.
// Decoding is strict: it refuses characters outside the alphabet (white
// space included), a length no encoding has, padding where it does not
// belong (any, for base64url), and non-zero bits after the last byte, so
// every byte string has exactly one encoding.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace engram::core {

std::string base64_encode(std::string_view bytes);
std::string base64_encode(std::span<const uint8_t> bytes);
std::optional<std::string> base64_decode(std::string_view text);

std::string base64url_encode(std::string_view bytes);
std::optional<std::string> base64url_decode(std::string_view text);

}  // namespace engram::core
