#pragma once

// Envelope encoding and the hash chain rules (docs/log-format.md). Internal
// to core: the writer builds envelopes, RecordedEvent decodes them.

#include <span>
#include <string>
#include <string_view>

#include "core/event.h"

namespace engram::core::envelope {

// The fields an event's content digest covers: everything but the
// position-dependent ones (position, stream version, recorded-at, hashes).
struct Content {
  std::string_view stream;
  std::string_view type;
  uint16_t schema_version = 1;
  Uuid id;
  Uuid command_id;
  Uuid causation_id;
  Uuid correlation_id;
  std::string_view actor;
  PayloadFormat payload_format = PayloadFormat::flexbuffer;
  std::span<const uint8_t> payload;
  std::span<const uint8_t> metadata;
};

Hash256 content_digest(const Content& c);

// hash = SHA-256(prev_hash || position || stream_version || recorded_at_ns || content_digest)
Hash256 chain_hash(const Hash256& prev_hash, Position position, StreamVersion version,
                   int64_t recorded_at_ns, const Hash256& content_digest);

// An envelope whose position-dependent fields are placeholders; seal()
// fills them in place, so the writer thread never re-encodes an event.
std::string build(const Content& c);

// Writes position, version, recorded-at, prev hash and hash into an envelope
// made by build(), and returns the hash.
Hash256 seal(std::string& envelope, Position position, StreamVersion version,
             int64_t recorded_at_ns, const Hash256& prev_hash, const Hash256& content_digest);

// FlatBuffers Verifier limits: an envelope is one table of strings, vectors
// and structs, so anything deeper or with more tables is malformed.
inline constexpr unsigned kMaxVerifierDepth = 8;
inline constexpr unsigned kMaxVerifierTables = 8;

}  // namespace engram::core::envelope
