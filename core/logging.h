#pragma once

// Structured logs: one JSON object per line on stderr, written by a
// background thread (spdlog's async logger) so a slow terminal or pipe never
// stalls a request. The queue holds kLogQueueLines; when it is full the
// oldest lines are dropped rather than blocking the caller.
//
// Line: {"ts": RFC 3339 UTC with ns (core/time.h), "level": "info", "msg": "...", ...fields}

#include <nlohmann/json.hpp>
#include <string_view>

namespace engram::core::logging {

inline constexpr size_t kLogQueueLines = 8192;

enum class Level { debug, info, warn, error, off };

// Idempotent; lines below `min_level` are discarded. Before init() logging
// goes nowhere.
void init(Level min_level);
bool enabled(Level level);
void write(Level level, std::string_view msg,
           const nlohmann::json& fields = nlohmann::json::object());
// Writes out queued lines (at shutdown).
void flush();

}  // namespace engram::core::logging
