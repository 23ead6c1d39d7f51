// Fuzz target: the envelope decoder (core::RecordedEvent::decode), the one
// gate every stored event passes before any field is read. Bytes that
// decode are read through every accessor, hashed, and their FlexBuffer
// payload and metadata decoded, as readers of the log do.

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "core/event.h"
#include "core/flexjson.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace engram::core;
  auto e = RecordedEvent::decode(std::string(reinterpret_cast<const char*>(data), size));
  if (!e) return 0;
  (void)e->position();
  (void)e->version();
  (void)e->stream();
  (void)e->type();
  (void)e->schema_version();
  (void)e->id();
  (void)e->command_id();
  (void)e->causation_id();
  (void)e->correlation_id();
  (void)e->actor();
  (void)e->recorded_at_ns();
  (void)e->prev_hash();
  (void)e->hash();
  (void)e->compute_hash();
  (void)e->content_digest();
  if (e->payload_format() == PayloadFormat::flexbuffer) (void)flex_to_json(e->payload());
  if (!e->metadata().empty()) (void)flex_to_json(e->metadata());
  return 0;
}
