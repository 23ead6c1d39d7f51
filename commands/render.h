#pragma once

// Turning stored events into JSON (CommandBus::render_event and the
// events of a replayed command outcome).

#include <nlohmann/json.hpp>

#include "commands/aggregate.h"
#include "core/event.h"

namespace engram::commands {

struct RenderedData {
  nlohmann::json data;
  bool base64 = false;  // data is the payload's bytes in base64: no decoder knows them
};

// Domain events by their schema, FlexBuffer payloads as JSON, anything else
// (an unknown type, a payload that does not verify) as base64.
RenderedData render_data(const core::RecordedEvent& e, const RenderContext& rc);

// The whole event as CommandBus::render_event describes it; "data_encoding":
// "base64" is added when the data could not be decoded.
nlohmann::json render_event_json(const core::RecordedEvent& e, const RenderContext& rc);

}  // namespace engram::commands
