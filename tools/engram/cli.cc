#include "tools/engram/cli.h"

#include <fmt/format.h>
#include <unistd.h>

#include <chrono>

#include "core/flexjson.h"
#include "core/time.h"
#include "tools/engram/serve_config.h"

namespace engram::cli {

int fail(int code, const std::string& message) {
  fmt::print(stderr, "engram: {}\n", message);
  return code;
}

int exit_code_for(const core::Error& e) {
  switch (e.code) {
    case core::errc::invalid_argument:
    case core::errc::wrong_expected_version:
    case core::errc::duplicate_id_conflict:
    case core::errc::overloaded:
    case core::errc::read_only:
    case core::errc::shutting_down:
      return kRejected;
    case core::errc::not_found:
    case core::errc::locked:
      return kDataDir;
    default:
      return kStorage;
  }
}

std::unique_ptr<core::Log> open_log(const core::DataDir& dir, int& exit_code,
                                    const core::LogOptions& options) {
  auto log = core::Log::open(dir, options);
  if (!log) {
    exit_code =
        fail(log.error().code == core::errc::corruption ? kStorage : kDataDir, log.error().message);
    return nullptr;
  }
  exit_code = kOk;
  return std::move(*log);
}

std::optional<core::DataDir> data_dir_of(const std::string& data, const std::string& config_file,
                                         int& exit_code) {
  ServeConfig config;
  if (!config_file.empty()) {
    if (auto r = apply_config_file(config_file, config); !r) {
      exit_code = fail(kUsage, r.error().message);
      return std::nullopt;
    }
  }
  if (!data.empty()) config.data_dir = data;
  exit_code = kOk;
  return config.layout();
}

namespace {
nlohmann::ordered_json uuid_or_null(const core::Uuid& u) {
  return u.is_nil() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(u.to_string());
}
}  // namespace

nlohmann::ordered_json event_to_json(const core::RecordedEvent& e) {
  nlohmann::ordered_json j;
  j["position"] = e.position().value();
  j["stream"] = e.stream();
  j["version"] = e.version().value();
  j["type"] = e.type();
  j["schema_version"] = e.schema_version();
  j["id"] = e.id().to_string();
  j["recorded_at"] = core::format_rfc3339_ns(e.recorded_at_ns());
  j["actor"] = e.actor();
  j["command_id"] = uuid_or_null(e.command_id());
  j["causation_id"] = uuid_or_null(e.causation_id());
  j["correlation_id"] = uuid_or_null(e.correlation_id());
  if (e.payload_format() == core::PayloadFormat::flexbuffer) {
    auto data = core::flex_to_json(e.payload());
    j["data"] = data
                    ? nlohmann::ordered_json(*data)
                    : nlohmann::ordered_json(fmt::format("<unreadable: {}>", data.error().message));
  } else {
    j["data_flatbuffer_bytes"] = e.payload().size();
  }
  auto meta = core::flex_to_json(e.metadata());
  j["metadata"] = meta ? nlohmann::ordered_json(*meta) : nlohmann::ordered_json(nullptr);
  j["hash"] = core::to_hex(e.hash());
  return j;
}

Progress::Progress(std::string label, uint64_t total, bool enabled)
    : label_(std::move(label)), total_(total), enabled_(enabled && isatty(STDERR_FILENO) == 1) {}

Progress::~Progress() {
  if (drawn_) fmt::print(stderr, "\n");
}

void Progress::update(uint64_t done) {
  if (!enabled_ || total_ == 0) return;
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::steady_clock::now().time_since_epoch())
                             .count();
  constexpr int64_t kRedrawIntervalMs = 100;
  if (done < total_ && now_ms - last_draw_ms_ < kRedrawIntervalMs) return;
  last_draw_ms_ = now_ms;
  constexpr int kWidth = 30;
  const int filled = static_cast<int>(kWidth * std::min(done, total_) / total_);
  fmt::print(stderr, "\r{} [{}{}] {:3}% {}/{}", label_,
             std::string(static_cast<size_t>(filled), '#'),
             std::string(static_cast<size_t>(kWidth - filled), ' '),
             100 * std::min(done, total_) / total_, done, total_);
  drawn_ = true;
}

}  // namespace engram::cli
