#pragma once

// Structured logs: one JSON object per line on stderr.
//
// Contract
// - write() formats the line on the caller's thread and appends it to a
//   buffer of at most kLogBufferBytes; it never waits for stderr, so a slow
//   terminal or pipe never stalls a request. A background thread
//   ("engram-log") writes the buffer out in batches: at most
//   kLogFlushIntervalMs after a line is buffered, at once for warn and error
//   lines and when the buffer is half full. Callers do not wake it line by
//   line (an access log line per request would otherwise cost a thread
//   wake-up per request).
// - When the buffer is full, new lines are dropped and counted; the next
//   batch starts with a warn line giving the count ("log lines dropped").
// - flush() writes out every buffered line before it returns, and runs at
//   normal process exit; lines buffered when the process aborts are lost.
//
// Line: {"ts": RFC 3339 UTC with ns (core/time.h), "level": "info", "msg": "...", ...fields}
// (the fields in key order; invalid UTF-8 is replaced, not refused).

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string_view>

namespace engram::core::logging {

inline constexpr size_t kLogBufferBytes = 4 << 20;
inline constexpr int kLogFlushIntervalMs = 100;

enum class Level { debug, info, warn, error, off };

// Idempotent; lines below `min_level` are discarded. Before init() logging
// goes nowhere.
void init(Level min_level);
bool enabled(Level level);
void write(Level level, std::string_view msg,
           const nlohmann::json& fields = nlohmann::json::object());
// Writes out buffered lines (at shutdown).
void flush();

}  // namespace engram::core::logging
