// Fuzz target: generic event JSON (commands/generic_events.h), both ways it
// arrives: a POST /v1/streams body ({"expected_version", "events"}) and an
// `engram append` line (one event object), after the strict JSON parse.

#include "commands/generic_events.h"

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace engram;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  auto body = core::parse_json_object(input);
  if (!body) return 0;
  const commands::GenericLimits limits;
  auto append = commands::parse_generic_append(*body, limits);
  if (append) commands::derive_generic_event_ids(append->events, "fuzz", "key-1");
  (void)commands::parse_generic_event(*body, "", limits);
  return 0;
}
