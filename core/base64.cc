#include "core/base64.h"

namespace engram::core {
namespace {

struct Alphabet {
  std::string_view chars;  // 64 characters, value order
  bool padded;
};
constexpr Alphabet kStandard{
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", true};
constexpr Alphabet kUrl{"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
                        false};

int value_of(const Alphabet& a, char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == a.chars[62]) return 62;
  if (c == a.chars[63]) return 63;
  return -1;
}

std::string encode(const Alphabet& a, const uint8_t* bytes, size_t size) {
  std::string out;
  out.reserve(4 * ((size + 2) / 3));
  size_t i = 0;
  for (; i + 3 <= size; i += 3) {
    const uint32_t v = (uint32_t{bytes[i]} << 16) | (uint32_t{bytes[i + 1]} << 8) | bytes[i + 2];
    out += a.chars[(v >> 18) & 63];
    out += a.chars[(v >> 12) & 63];
    out += a.chars[(v >> 6) & 63];
    out += a.chars[v & 63];
  }
  const size_t rest = size - i;
  if (rest == 0) return out;
  const uint32_t v = (uint32_t{bytes[i]} << 16) | (rest == 2 ? uint32_t{bytes[i + 1]} << 8 : 0);
  out += a.chars[(v >> 18) & 63];
  out += a.chars[(v >> 12) & 63];
  if (rest == 2) out += a.chars[(v >> 6) & 63];
  if (a.padded) out.append(3 - rest, '=');
  return out;
}

std::optional<std::string> decode(const Alphabet& a, std::string_view text) {
  if (a.padded) {
    if (text.size() % 4 != 0) return std::nullopt;
    // At most two '=', only at the end; what is left decodes like base64url.
    if (!text.empty() && text.back() == '=') text.remove_suffix(1);
    if (!text.empty() && text.back() == '=') text.remove_suffix(1);
  }
  // One leftover character carries only 6 bits: never a whole byte.
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(text.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    const int v = value_of(a, c);
    if (v < 0) return std::nullopt;
    acc = ((acc << 6) | static_cast<uint32_t>(v)) & 0xFFFFFF;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  // Leftover bits must be zero, else two texts would decode to the same bytes.
  if ((acc & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

const uint8_t* data_of(std::string_view s) { return reinterpret_cast<const uint8_t*>(s.data()); }

}  // namespace

std::string base64_encode(std::string_view bytes) {
  return encode(kStandard, data_of(bytes), bytes.size());
}
std::string base64_encode(std::span<const uint8_t> bytes) {
  return encode(kStandard, bytes.data(), bytes.size());
}
std::optional<std::string> base64_decode(std::string_view text) { return decode(kStandard, text); }

std::string base64url_encode(std::string_view bytes) {
  return encode(kUrl, data_of(bytes), bytes.size());
}
std::optional<std::string> base64url_decode(std::string_view text) { return decode(kUrl, text); }

}  // namespace engram::core
