#include "core/logging.h"

#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>

#include "core/time.h"

namespace engram::core::logging {
namespace {

using nlohmann::json;

std::atomic<int> g_min_level{static_cast<int>(Level::off)};
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

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string format_line(Level level, std::string_view msg, const json& fields) {
  const auto now = std::chrono::system_clock::now();
  const std::string ts = format_rfc3339_ns(
      std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count());
  const bool plain = !fields.is_object() || fields.empty();
  if (!plain && (fields.contains("ts") || fields.contains("level") || fields.contains("msg"))) {
    // A field named like a fixed key replaces it, in the fixed key's place.
    nlohmann::ordered_json ordered;
    ordered["ts"] = ts;
    ordered["level"] = level_name(level);
    ordered["msg"] = msg;
    for (const auto& [k, v] : fields.items()) ordered[k] = v;
    return ordered.dump(-1, ' ', false, json::error_handler_t::replace);
  }
  // The fixed keys, then the fields object's members (already in key order)
  // spliced in after them.
  std::string line;
  line.reserve(192);
  line += R"({"ts":")";
  line += ts;
  line += R"(","level":")";
  line += level_name(level);
  line += R"(","msg":)";
  line += dump(json(msg));
  if (plain) {
    line += '}';
  } else {
    const std::string members = dump(fields);  // "{...}"
    line += ',';
    line.append(members, 1, std::string::npos);
  }
  return line;
}

// The buffer between the threads that log and the one that writes. Never
// destroyed (the writer thread is detached), so no exit-time order matters.
struct Sink {
  std::mutex mu;
  std::condition_variable cv;
  std::string buffer;         // complete lines, each ending in '\n'
  uint64_t dropped = 0;       // lines refused since the last batch
  bool waiting_first = false;  // the writer sleeps until a line comes
  bool urgent = false;         // write now, do not wait out the interval
  std::mutex write_mu;         // one batch at a time, so batches keep their order
};

Sink* g_sink = nullptr;

void write_all(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(STDERR_FILENO, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // stderr is gone or broken: nowhere left to say so
    bytes.remove_prefix(static_cast<size_t>(n));
  }
}

// Takes what is buffered and writes it out, in order with other batches.
void write_batch(Sink& s) {
  std::lock_guard order(s.write_mu);
  std::string out;
  uint64_t dropped = 0;
  {
    std::lock_guard lock(s.mu);
    out.swap(s.buffer);
    dropped = s.dropped;
    s.dropped = 0;
  }
  if (dropped > 0) {
    write_all(format_line(Level::warn, "log lines dropped: the log buffer was full",
                          {{"dropped", dropped}, {"buffer_bytes", kLogBufferBytes}}) +
              "\n");
  }
  write_all(out);
}

void run_writer(Sink& s) {
  pthread_setname_np(pthread_self(), "engram-log");
  for (;;) {
    {
      std::unique_lock lock(s.mu);
      s.waiting_first = true;
      s.cv.wait(lock, [&] { return !s.buffer.empty() || s.dropped > 0; });
      s.waiting_first = false;
      // Gather lines for a while: one write and one wake-up per batch.
      s.cv.wait_for(lock, std::chrono::milliseconds(kLogFlushIntervalMs),
                    [&] { return s.urgent; });
      s.urgent = false;
    }
    write_batch(s);
  }
}

void append(Level level, std::string line) {
  Sink& s = *g_sink;
  bool wake = false;
  {
    std::lock_guard lock(s.mu);
    if (s.buffer.size() + line.size() + 1 > kLogBufferBytes) {
      ++s.dropped;
      return;
    }
    s.buffer += line;
    s.buffer += '\n';
    if (s.waiting_first) {
      s.waiting_first = false;
      wake = true;
    }
    if (!s.urgent && (level >= Level::warn || s.buffer.size() >= kLogBufferBytes / 2)) {
      s.urgent = true;
      wake = true;
    }
  }
  if (wake) s.cv.notify_one();
}

}  // namespace

void init(Level min_level) {
  std::call_once(g_once, [] {
    g_sink = new Sink();
    std::thread([] { run_writer(*g_sink); }).detach();
    std::atexit([] { flush(); });
  });
  g_min_level.store(static_cast<int>(min_level));
}

bool enabled(Level level) {
  return level != Level::off && static_cast<int>(level) >= g_min_level.load();
}

void write(Level level, std::string_view msg, const nlohmann::json& fields) {
  if (!enabled(level)) return;
  append(level, format_line(level, msg, fields));
}

void flush() {
  if (g_sink != nullptr) write_batch(*g_sink);
}

}  // namespace engram::core::logging
