#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace engram::core {

// A 128-bit identifier (event, command, causation and correlation ids).
// hi holds bytes 0..7 of the canonical textual form, big-endian.
struct Uuid {
  uint64_t hi = 0;
  uint64_t lo = 0;

  bool is_nil() const { return hi == 0 && lo == 0; }
  auto operator<=>(const Uuid&) const = default;

  // 8-4-4-4-12 lowercase hex.
  std::string to_string() const;
  // Accepts the 8-4-4-4-12 form (either case) and 32 bare hex digits.
  static std::optional<Uuid> parse(std::string_view text);
  // A UUIDv7 (RFC 9562): 48-bit Unix milliseconds then 74 random bits, so
  // ids sort by creation time. Random bits come from a per-thread generator
  // seeded by the OS CSPRNG.
  static Uuid v7(int64_t unix_ms);
  static Uuid v7_now();
  // A name-based UUIDv8 (RFC 9562 section 5.8): the first 128 bits of
  // SHA-256(`name`) with the version and variant bits set. The same name
  // always gives the same id (idempotency keys → event ids).
  static Uuid from_name(std::string_view name);
};

struct UuidHash {
  size_t operator()(const Uuid& u) const noexcept { return u.hi ^ (u.lo * 0x9E3779B97F4A7C15ULL); }
};

}  // namespace engram::core
