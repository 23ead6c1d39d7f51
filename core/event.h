#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "core/named_type.h"
#include "core/result.h"
#include "core/sha256.h"
#include "core/uuid.h"

namespace engram::core {

enum class PayloadFormat : uint8_t {
  flatbuffer = 0,  // a FlatBuffer of the domain schema named by the event type
  flexbuffer = 1,  // a FlexBuffer, for generic streams
};

// An event as a writer supplies it.
struct EventData {
  Uuid id;  // nil: the log assigns a UUIDv7 (and the append cannot be retried idempotently)
  std::string type;
  uint16_t schema_version = 1;
  PayloadFormat payload_format = PayloadFormat::flexbuffer;
  std::string payload;
  std::string metadata;  // a FlexBuffer map, or empty
  // The entity of the stream this event is about (a memory id in its
  // owner's stream), or empty. Not part of the envelope: the log indexes it
  // (Log::latest_entity_event) so a decision can find one entity's latest
  // event without replaying the stream.
  std::string entity;
};

// Who asked for an append and why; copied into every event of the append.
struct AppendContext {
  Uuid command_id;
  Uuid causation_id;
  Uuid correlation_id;
  std::string actor;
};

// An event as stored: an envelope (schemas/envelope.fbs) that has passed the
// FlatBuffers Verifier and the field checks in decode(). Owns its bytes.
class RecordedEvent {
 public:
  // The only way to make a RecordedEvent: `bytes` is untrusted until this
  // returns a value. Fails with errc::corruption and touches no field of a
  // buffer that does not verify.
  static result<RecordedEvent> decode(std::string bytes);

  Position position() const;
  StreamVersion version() const;
  std::string_view stream() const;
  std::string_view type() const;
  uint16_t schema_version() const;
  Uuid id() const;
  Uuid command_id() const;
  Uuid causation_id() const;
  Uuid correlation_id() const;
  std::string_view actor() const;
  int64_t recorded_at_ns() const;
  PayloadFormat payload_format() const;
  std::span<const uint8_t> payload() const;
  std::span<const uint8_t> metadata() const;
  Hash256 prev_hash() const;
  Hash256 hash() const;

  // The hash recomputed from the fields and prev_hash; equals hash() unless
  // the event was altered.
  Hash256 compute_hash() const;
  // The digest of the content that idempotency compares (see docs/log-format.md).
  Hash256 content_digest() const;

  const std::string& bytes() const { return bytes_; }

 private:
  explicit RecordedEvent(std::string bytes) : bytes_(std::move(bytes)) {}
  std::string bytes_;
};

}  // namespace engram::core
