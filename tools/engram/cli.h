#pragma once

// Shared pieces of the engram subcommands: exit codes, opening the log,
// rendering events. Exit codes are documented in docs/cli.md.

#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <nlohmann/json.hpp>
#include <string>

#include "core/data_dir.h"
#include "core/log.h"

namespace engram::cli {

enum ExitCode : int {
  kOk = 0,
  kVerifyFailed = 1,  // audit found a broken chain
  kUsage = 2,         // bad options
  kBadInput = 3,      // malformed input (stdin JSON)
  kDataDir = 4,       // data dir missing, locked or unreadable
  kRejected = 5,      // the log refused the append (version, id conflict, limits)
  kStorage = 6,       // I/O error or corruption while reading or writing
};

// Prints "engram: <message>" to stderr and returns `code`.
int fail(int code, const std::string& message);

// Exit code for a log error.
int exit_code_for(const core::Error& e);

// Opens the data dir's log (options say read-only or not), printing a clear
// error on failure.
std::unique_ptr<core::Log> open_log(const core::DataDir& dir, int& exit_code,
                                    const core::LogOptions& options);

// The data dir a command works on: `data` (--data), with the paths a serve
// config file (--config, may be empty) moves elsewhere, such as the signing
// key; the config's data_dir when `data` is empty. Prints the error.
std::optional<core::DataDir> data_dir_of(const std::string& data, const std::string& config_file,
                                         int& exit_code);

// An event as one JSON object (the NDJSON form of `replay dump`).
nlohmann::ordered_json event_to_json(const core::RecordedEvent& e);

// A redrawn "[#####     ] 52% 1234/2345" line on stderr, only when stderr
// is a terminal; redraws at most ten times a second.
class Progress {
 public:
  Progress(std::string label, uint64_t total, bool enabled);
  ~Progress();
  void update(uint64_t done);

 private:
  std::string label_;
  uint64_t total_;
  bool enabled_;
  int64_t last_draw_ms_ = 0;
  bool drawn_ = false;
};

}  // namespace engram::cli
