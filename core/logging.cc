#include "core/logging.h"

#include <spdlog/async.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <mutex>

#include "core/clock.h"
#include "core/time.h"

namespace engram::core::logging {
namespace {

std::atomic<int> g_min_level{static_cast<int>(Level::off)};
std::shared_ptr<spdlog::logger> g_logger;
std::once_flag g_once;

const char* level_name(Level l) {
  switch (l) {
    case Level::debug:
      return "debug";
    case Level::info:
      return "info";
    case Level::warn:
      return "warn";
    case Level::error:
      return "error";
    case Level::off:
      return "off";
  }
  return "?";
}

std::string timestamp() {
  const auto now = std::chrono::system_clock::now();
  return format_rfc3339_ns(
      std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count());
}

}  // namespace

void init(Level min_level) {
  std::call_once(g_once, [] {
    spdlog::init_thread_pool(kLogQueueLines, 1);
    g_logger = spdlog::create_async_nb<spdlog::sinks::stderr_sink_mt>("engram");
    g_logger->set_pattern("%v");
    g_logger->set_level(spdlog::level::trace);
  });
  g_min_level.store(static_cast<int>(min_level));
}

bool enabled(Level level) {
  return level != Level::off && static_cast<int>(level) >= g_min_level.load();
}

void write(Level level, std::string_view msg, const nlohmann::json& fields) {
  if (!enabled(level)) return;
  nlohmann::ordered_json line;
  line["ts"] = timestamp();
  line["level"] = level_name(level);
  line["msg"] = msg;
  if (fields.is_object()) {
    for (const auto& [k, v] : fields.items()) line[k] = v;
  }
  g_logger->info("{}", line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

void flush() {
  if (g_logger) g_logger->flush();
}

}  // namespace engram::core::logging
