#include "tools/engram/storage.h"

#include "tools/engram/cli.h"

namespace engram::cli {

void register_storage_metrics(core::metrics::Registry& registry, const Storage& storage) {
  const core::RocksKeyStore* keys = storage.keys.get();
  registry.gauge_fn("engram_key_shreds_pending",
                    "Destroyed keys (ForgetSubject) whose bytes may still be on disk.",
                    [keys] { return static_cast<double>(keys->shred_stats().pending); });
  registry.gauge_fn("engram_key_shred_last_finished_timestamp_seconds",
                    "When the last key shred (flush and compaction) finished; 0 before the first.",
                    [keys] {
                      return static_cast<double>(keys->shred_stats().last_finished_unix_ms) / 1e3;
                    });
  registry.counter_fn("engram_key_shreds_failed_total",
                      "Key shreds that failed (retried, and logged with the cause).",
                      [keys] { return static_cast<double>(keys->shred_stats().failed); });
}

std::optional<Storage> open_storage(const core::DataDir& dir, Access access, int& exit_code,
                                    core::LogOptions log_options,
                                    const std::filesystem::path& secondary_dir) {
  const bool writable = access == Access::write;
  log_options.read_only = !writable;
  log_options.create_if_missing = writable;
  if (access == Access::follow) log_options.secondary_dir = secondary_dir / "log";
  Storage s;
  s.log = open_log(dir, exit_code, log_options);
  if (!s.log) return std::nullopt;

  core::KeyStoreOptions ko;
  ko.read_only = !writable;
  auto keys = core::RocksKeyStore::open(dir, ko);
  if (!keys) {
    exit_code = fail(exit_code_for(keys.error()), keys.error().to_string());
    return std::nullopt;
  }
  s.keys = std::move(*keys);

  core::ModelDbOptions mo;
  mo.read_only = !writable;
  if (access == Access::follow) mo.secondary_dir = secondary_dir / "models";
  auto models = core::ModelDb::open(dir, mo);
  if (!models) {
    exit_code = fail(exit_code_for(models.error()), models.error().to_string());
    return std::nullopt;
  }
  s.models = std::move(*models);
  exit_code = kOk;
  return s;
}

}  // namespace engram::cli
