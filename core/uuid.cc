#include "core/uuid.h"

#include <openssl/rand.h>

#include <chrono>
#include <random>

#include "core/assert.h"
#include "core/sha256.h"

namespace engram::core {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::mt19937_64& thread_rng() {
  thread_local std::mt19937_64 rng = [] {
    std::seed_seq::result_type seed[8];
    ENGRAM_ASSERT_MSG(RAND_bytes(reinterpret_cast<unsigned char*>(seed), sizeof(seed)) == 1,
                      "OpenSSL RAND_bytes failed");
    std::seed_seq seq(std::begin(seed), std::end(seed));
    return std::mt19937_64(seq);
  }();
  return rng;
}

}  // namespace

std::string Uuid::to_string() const {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (int i = 0; i < 32; ++i) {
    if (i == 8 || i == 12 || i == 16 || i == 20) out.push_back('-');
    const uint64_t word = i < 16 ? hi : lo;
    const int shift = 60 - 4 * (i % 16);
    out.push_back(digits[(word >> shift) & 0xF]);
  }
  return out;
}

std::optional<Uuid> Uuid::parse(std::string_view text) {
  const bool dashed = text.size() == 36;
  if (!dashed && text.size() != 32) return std::nullopt;
  Uuid u;
  int nibble = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (dashed && (i == 8 || i == 13 || i == 18 || i == 23)) {
      if (text[i] != '-') return std::nullopt;
      continue;
    }
    const int v = hex_value(text[i]);
    if (v < 0) return std::nullopt;
    uint64_t& word = nibble < 16 ? u.hi : u.lo;
    word = (word << 4) | static_cast<uint64_t>(v);
    ++nibble;
  }
  return u;
}

Uuid Uuid::v7(int64_t unix_ms) {
  const uint64_t r1 = thread_rng()();
  const uint64_t r2 = thread_rng()();
  Uuid u;
  // 48 bits of time, version 7, 12 random bits.
  u.hi = (static_cast<uint64_t>(unix_ms) << 16) | 0x7000 | (r1 & 0x0FFF);
  // Variant 0b10, 62 random bits.
  u.lo = (r2 & 0x3FFFFFFFFFFFFFFFULL) | 0x8000000000000000ULL;
  return u;
}

Uuid Uuid::v7_now() {
  return v7(std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count());
}

Uuid Uuid::from_name(std::string_view name) {
  Sha256 hasher;
  hasher.update(name);
  const Hash256 h = hasher.finish();
  Uuid u;
  for (int i = 0; i < 8; ++i) u.hi = (u.hi << 8) | h[static_cast<size_t>(i)];
  for (int i = 8; i < 16; ++i) u.lo = (u.lo << 8) | h[static_cast<size_t>(i)];
  u.hi = (u.hi & ~uint64_t{0xF000}) | uint64_t{0x8000};
  u.lo = (u.lo & ~(uint64_t{3} << 62)) | (uint64_t{2} << 62);
  return u;
}

}  // namespace engram::core
