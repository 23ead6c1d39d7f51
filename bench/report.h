#pragma once

// What every benchmark report says about the machine it ran on, and the
// number formatting its tables share. Header-only: each bench program is
// one translation unit.

#include <fmt/format.h>
#include <sys/statfs.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

// bench/CMakeLists.txt defines both; the fallbacks keep a hand-built bench
// program compiling.
#ifndef ENGRAM_BENCH_DEFAULT_DIR
#define ENGRAM_BENCH_DEFAULT_DIR "/tmp"
#endif
#ifndef ENGRAM_BENCH_BUILD_TYPE
#define ENGRAM_BENCH_BUILD_TYPE "unknown"
#endif

namespace engram::bench {

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
