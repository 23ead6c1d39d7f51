#pragma once

// What the bench programs share: what every report says about the machine
// it ran on, the number formatting its tables share, the clocks, scratch
// directories, the plain read of a whole log their targets compare with,
// and writing the report. Header-only: each bench program is one
// translation unit.

#include <fmt/format.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/statfs.h>
#include <sys/utsname.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "core/log.h"

// bench/CMakeLists.txt defines both; the fallbacks keep a hand-built bench
// program compiling.
#ifndef ENGRAM_BENCH_DEFAULT_DIR
#define ENGRAM_BENCH_DEFAULT_DIR "/tmp"
#endif
#ifndef ENGRAM_BENCH_BUILD_TYPE
#define ENGRAM_BENCH_BUILD_TYPE "unknown"
#endif

namespace engram::bench {

// A benchmark fails by throwing; run_main reports it.
[[noreturn]] inline void fail(const std::string& what) {
  throw std::runtime_error(what);
}

// "<what>: <strerror(errno)>".
inline std::string errno_text(const std::string& what) {
  return fmt::format("{}: {}", what, std::strerror(errno));
}

// A bench program's main: runs `run`; an exception ends it with
// "<program>: <what>" on stderr and exit status 1.
inline int run_main(const char* program, int (*run)(int, char**), int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << program << ": " << e.what() << "\n";
    return 1;
  }
}

// The command line as given, for the report.
inline std::string command_line(int argc, char** argv) {
  std::string out;
  for (int i = 0; i < argc; ++i) out += (i ? " " : "") + std::string(argv[i]);
  return out;
}

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// CPU seconds this process has used (all threads, user + system). On cores
// other work shares, events per CPU second say what the code costs while
// events per wall second say what it got.
inline double process_cpu_seconds() {
  rusage u{};
  if (getrusage(RUSAGE_SELF, &u) != 0) return 0;
  auto secs = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return secs(u.ru_utime) + secs(u.ru_stime);
}

// Where a benchmark's scratch directories go: `dir` (its --dir flag) when
// given, else $ENGRAM_BENCH_DIR, else `fallback`; created when missing (then
// *created is set, for remove_if_created) and made canonical.
inline std::filesystem::path scratch_base(const std::string& dir, const char* fallback,
                                          bool* created = nullptr) {
  std::filesystem::path base = dir;
  if (base.empty()) {
    const char* env = std::getenv("ENGRAM_BENCH_DIR");
    base = env != nullptr && *env != '\0' ? env : fallback;
  }
  if (!std::filesystem::exists(base)) {
    std::filesystem::create_directories(base);
    if (created != nullptr) *created = true;
  }
  return std::filesystem::canonical(base);
}

// Removes a scratch base directory this run created, if it is empty again.
inline void remove_if_created(const std::filesystem::path& base, bool created) {
  if (!created) return;
  std::error_code ec;
  std::filesystem::remove(base, ec);  // only if empty
}

// A fresh directory under the base directory; removed with everything in it
// when the object goes away, unless kept.
class ScratchDir {
 public:
  ScratchDir(const std::filesystem::path& base, std::string_view label, bool keep = false)
      : keep_(keep) {
    std::string tmpl = (base / fmt::format("{}-XXXXXX", label)).string();
    if (mkdtemp(tmpl.data()) == nullptr) fail(errno_text("mkdtemp " + tmpl));
    path_ = tmpl;
  }
  ~ScratchDir() {
    if (keep_) return;
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  bool keep_;
};

// One timed pass over a log.
struct PassRun {
  double events_per_second = 0;
  double seconds = 0;
  double cpu_seconds = 0;  // the process's, during the pass
};

// The whole log, 1 to `head`, through read_all in pages of `page` events
// (by default the largest it allows), touching every event's type and
// payload: the sequential pass every reader pays, the peer the benchmarks'
// targets compare with.
inline PassRun run_read(const core::Log& log, uint64_t head,
                        size_t page = core::LogOptions{}.max_read_count) {
  const double cpu0 = process_cpu_seconds();
  const std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  uint64_t seen = 0;
  uint64_t touched = 0;
  core::Position from(1);
  while (from.value() <= head) {
    auto events = log.read_all(from, page);
    if (!events) fail("reading the log: " + events.error().to_string());
    if (events->empty()) fail(fmt::format("read_all({}) came back empty", from.value()));
    for (const core::RecordedEvent& e : *events) {
      touched += e.type().size() + e.payload().size();
      ++seen;
    }
    from = events->back().position().next();
  }
  PassRun r;
  r.seconds = seconds_since(t0);
  r.cpu_seconds = process_cpu_seconds() - cpu0;
  if (seen != head || touched == 0) fail("the read did not see every event");
  r.events_per_second = static_cast<double>(seen) / r.seconds;
  return r;
}

// Writes the report to `out`, making its directory; says so on stderr.
inline void write_report(const std::filesystem::path& out, const std::string& text) {
  if (out.has_parent_path()) std::filesystem::create_directories(out.parent_path());
  std::ofstream file(out);
  file << text;
  file.close();
  if (!file) fail("cannot write " + out.string());
  std::cerr << "wrote " << out.string() << "\n";
}

// "2026-11-21 10:29 UTC".
inline std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", &tm);
  return buf;
}

inline std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
  }
  return "unknown CPU";
}

// "Linux 6.8.0-45-generic".
inline std::string kernel_version() {
  utsname u{};
  return uname(&u) == 0 ? fmt::format("{} {}", u.sysname, u.release) : "unknown";
}

// The 1, 5 and 15 minute load averages: how shared the cores were.
inline std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string one, five, fifteen;
  in >> one >> five >> fifteen;
  return in ? fmt::format("{} / {} / {}", one, five, fifteen) : "unknown";
}

// fsync costs differ by orders of magnitude between a disk and tmpfs, so
// reports name the filesystem their scratch directory is on.
inline std::string filesystem_type(const std::filesystem::path& dir) {
  struct statfs st {};
  if (statfs(dir.c_str(), &st) != 0) return "unknown filesystem";
  switch (static_cast<unsigned long>(st.f_type)) {
    case 0xEF53:
      return "ext2/3/4";
    case 0x01021994:
      return "tmpfs";
    case 0x58465342:
      return "xfs";
    case 0x9123683E:
      return "btrfs";
    case 0x794c7630:
      return "overlayfs";
    default:
      return fmt::format("filesystem 0x{:x}", static_cast<unsigned long>(st.f_type));
  }
}

inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t mid = v.size() / 2;
  return v.size() % 2 == 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

// Nearest rank: the smallest sample with at least q of all samples at or
// below it; nanoseconds in, milliseconds out.
inline double percentile_ms(const std::vector<int64_t>& sorted_ns, double q) {
  if (sorted_ns.empty()) return 0;
  const auto rank = static_cast<size_t>(std::ceil(q * static_cast<double>(sorted_ns.size())));
  return static_cast<double>(sorted_ns[std::clamp<size_t>(rank, 1, sorted_ns.size()) - 1]) / 1e6;
}

// f(run) for each run.
template <typename Run, typename F>
std::vector<double> each(const std::vector<Run>& runs, F f) {
  std::vector<double> out;
  for (const Run& r : runs) out.push_back(f(r));
  return out;
}

// "a, b, c": each value through `one`.
inline std::string list(const std::vector<double>& v,
                        const std::function<std::string(double)>& one) {
  std::string out;
  for (double x : v) out += (out.empty() ? "" : ", ") + one(x);
  return out;
}

inline std::string verdict(bool met) {
  return met ? "met" : "**not met**";
}

// Milliseconds, to the microsecond.
inline std::string ms(double v) {
  return fmt::format("{:.3f}", v);
}

// 1234567 -> "1,234,567".
inline std::string with_commas(double value) {
  std::string digits = fmt::format("{:.0f}", value);
  std::string out;
  const size_t first = digits.size() % 3 == 0 ? 3 : digits.size() % 3;
  out.append(digits, 0, first);
  for (size_t i = first; i < digits.size(); i += 3) out.append(",").append(digits, i, 3);
  return out;
}

}  // namespace engram::bench
