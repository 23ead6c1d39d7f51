#include "commands/render.h"

#include <fmt/format.h>
#include <openssl/evp.h>

#include <ctime>

#include "commands/aggregates.h"
#include "core/flexjson.h"

namespace engram::commands {
namespace {

std::string base64(std::span<const uint8_t> bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes.data(),
                                static_cast<int>(bytes.size()));
  ENGRAM_ASSERT(n >= 0 && static_cast<size_t>(n) == out.size());
  return out;
}

// RFC 3339 in UTC with nanoseconds: 2024-05-01T12:00:00.123456789Z.
std::string rfc3339(int64_t ns) {
  constexpr int64_t kNanosPerSecond = 1'000'000'000;
  int64_t seconds = ns / kNanosPerSecond;
  int64_t nanos = ns % kNanosPerSecond;
  if (nanos < 0) {
    nanos += kNanosPerSecond;
    --seconds;
  }
  const auto t = static_cast<std::time_t>(seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, nanos);
}

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
  return {base64(e.payload()), true};
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
  j["recorded_at"] = rfc3339(event.recorded_at_ns());
  j["data"] = std::move(data.data);
  if (data.base64) j["data_encoding"] = "base64";
  auto metadata = core::flex_to_json(event.metadata());
  j["metadata"] = metadata ? std::move(*metadata) : nlohmann::json(base64(event.metadata()));
  j["hash"] = core::to_hex(event.hash());
  j["prev_hash"] = core::to_hex(event.prev_hash());
  return j;
}

}  // namespace engram::commands
