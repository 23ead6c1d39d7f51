#pragma once

// Configuration of `engram serve`: defaults, then a JSON config file, then
// command-line flags, each overriding the one before. Every bound has a
// name with its unit; docs/http-api.md lists them.

#include <cstdint>
#include <filesystem>
#include <string>

#include "adapters/http/api.h"
#include "adapters/http/server.h"
#include "commands/bus.h"
#include "core/checkpointer.h"
#include "core/data_dir.h"
#include "core/result.h"

namespace engram::cli {

struct ServeConfig {
  std::filesystem::path data_dir = "data";
  std::string listen = "127.0.0.1:8080";
  http::ServerOptions server;
  http::ApiOptions api;
  // The command bus: its state cache, its threads and its admission bound
  // (state_cache_*, bus.threads, bus.max_queued_commands in the file).
  commands::BusOptions bus;
  bool auth_enabled = true;
  std::filesystem::path keys_file;  // empty: <data>/auth/keys.json
  std::string log_level = "info";
  // Signed checkpoints of the head (core/checkpointer.h), under the key in
  // signing_key_file (empty: <data>/audit/signing-key.pem, made when missing).
  core::CheckpointerOptions checkpoints;
  std::filesystem::path signing_key_file;

  // The data dir with the paths this config moves elsewhere.
  core::DataDir layout() const {
    return core::DataDir(data_dir, core::DataDir::Overrides{signing_key_file, keys_file});
  }
};

// Applies a JSON config file's settings. Unknown keys, wrong types and
// out-of-range values are errors naming the key; nothing is applied then.
core::result<void> apply_config_file(const std::filesystem::path& path, ServeConfig& config);

// Splits "ADDR:PORT" ("[::1]:8080" for IPv6) into config.server.
core::result<void> apply_listen(ServeConfig& config);

// Auth may be off only on a loopback listener.
core::result<void> check_config(const ServeConfig& config);

}  // namespace engram::cli
