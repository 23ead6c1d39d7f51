#pragma once

// The Idempotency-Key a request may carry (the HTTP header, the bus's
// CommandRequest): the one rule for what a valid key is. What a key does is
// in bus.h (commands) and generic_events.h (generic appends); the ids a key
// derives are in ids.h and generic_events.h.

#include <cstddef>
#include <string_view>

namespace engram::commands {

inline constexpr size_t kMaxIdempotencyKeyBytes = 128;

// What a valid key is, for refusals.
inline constexpr std::string_view kIdempotencyKeyRule =
    "an Idempotency-Key is 1 to 128 printable ASCII characters (no spaces)";

// 1..kMaxIdempotencyKeyBytes characters, each printable ASCII other than the
// space (0x21-0x7E): what an HTTP header carries unchanged and a log shows
// without escaping.
bool valid_idempotency_key(std::string_view key);

}  // namespace engram::commands
