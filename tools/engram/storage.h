#pragma once

// A data directory's three databases, opened the way a command needs them:
// the log, the key store and the read models (core/data_dir.h). Each is its
// own object; this only opens them together, in order (the log first: its
// writable open migrates an older layout into the other two), and prints a
// clear error when one cannot be opened.

#include <filesystem>
#include <memory>
#include <optional>

#include "core/data_dir.h"
#include "core/keystore_rocks.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/model_db.h"

namespace engram::cli {

enum class Access {
  write,   // the one writer (serve, append, replay rebuild)
  read,    // a read-only snapshot, taking no lock (replay dump)
  follow,  // RocksDB secondaries that follow a running server (audit)
};

struct Storage {
  std::unique_ptr<core::Log> log;
  std::unique_ptr<core::RocksKeyStore> keys;
  std::unique_ptr<core::ModelDb> models;
};

// The key store's series for /metrics: engram_key_shreds_pending (destroyed
// keys whose bytes may still be on disk), engram_key_shred_last_finished_
// timestamp_seconds (0 before the first) and engram_key_shreds_failed_total.
// The registry must not outlive `storage`.
void register_storage_metrics(core::metrics::Registry& registry, const Storage& storage);

// Access::follow keeps the secondaries' own files under `secondary_dir`.
// On failure prints the error and sets `exit_code`.
std::optional<Storage> open_storage(const core::DataDir& dir, Access access, int& exit_code,
                                    core::LogOptions log_options = {},
                                    const std::filesystem::path& secondary_dir = {});

}  // namespace engram::cli
