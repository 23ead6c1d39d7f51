#include "commands/render.h"

#include "commands/aggregates.h"
#include "core/base64.h"
#include "core/flexjson.h"
#include "core/time.h"

namespace engram::commands {
namespace {

nlohmann::json uuid_or_null(const core::Uuid& u) {
  return u.is_nil() ? nlohmann::json(nullptr) : nlohmann::json(u.to_string());
}

}  // namespace

RenderedData render_data(const core::RecordedEvent& e, const RenderContext& rc) {
  if (e.payload_format() == core::PayloadFormat::flatbuffer) {
    if (auto j = render_domain(e.type(), e.payload(), rc)) return {std::move(*j), false};
  } else if (auto j = core::flex_to_json(e.payload())) {
    return {std::move(*j), false};
  }
  return {core::base64_encode(e.payload()), true};
}

nlohmann::json render_event_json(const core::RecordedEvent& event, const RenderContext& rc) {
  RenderedData data = render_data(event, rc);
  nlohmann::json j = nlohmann::json::object();
  j["position"] = event.position().value();
  j["stream"] = std::string(event.stream());
  j["version"] = event.version().value();
  j["type"] = std::string(event.type());
  j["id"] = event.id().to_string();
  j["schema_version"] = event.schema_version();
  j["command_id"] = uuid_or_null(event.command_id());
  j["causation_id"] = uuid_or_null(event.causation_id());
  j["correlation_id"] = uuid_or_null(event.correlation_id());
  j["actor"] = std::string(event.actor());
  j["recorded_at"] = core::format_rfc3339_ns(event.recorded_at_ns());
  j["data"] = std::move(data.data);
  if (data.base64) j["data_encoding"] = "base64";
  auto metadata = core::flex_to_json(event.metadata());
  j["metadata"] =
      metadata ? std::move(*metadata) : nlohmann::json(core::base64_encode(event.metadata()));
  j["hash"] = core::to_hex(event.hash());
  j["prev_hash"] = core::to_hex(event.prev_hash());
  return j;
}

}  // namespace engram::commands
