#pragma once

// The read models' database: a RocksDB instance of its own beside the log's
// (DataDir::models_db_dir()), one column family per model store
// ("model:<name>", core/model_store.h).
//
// Why its own: read models are derived data. Their writes are never
// fsynced (after a crash a model re-applies from its checkpoint, which is
// written in the same batch), so they must not share the log's WAL and ride
// its fsyncs, nor its write queue; and flushing or compacting them (or the
// log) never waits on the other.
//
// Contract
// - store(name) returns the store, creating it when missing (not on a
//   read-only open). Stores live as long as the ModelDb, dropped ones too: a
//   reader holding a dropped store keeps reading what it held.
// - drop(name) deletes a store with its data and its files directory
//   (DataDir::model_files_dir).
// - A read-only open of a data dir that has no models database yet opens
//   nothing and holds no stores (store() answers errc::not_found).
// - Thread-safe.

#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/data_dir.h"
#include "core/model_store.h"
#include "core/result.h"

namespace rocksdb {
class Cache;
class ColumnFamilyHandle;
class DB;
class Env;
}

namespace engram::core {

class RocksDb;

struct ModelDbOptions {
  bool read_only = false;
  // With read_only: open as a RocksDB secondary instance keeping its files
  // here, which follows a running server (catch_up()).
  std::filesystem::path secondary_dir;
  size_t block_cache_bytes = 64 << 20;
  std::shared_ptr<rocksdb::Env> env;  // null: the default
};

class ModelDb {
 public:
  static constexpr size_t kMaxModelNameBytes = 64;

  static result<std::unique_ptr<ModelDb>> open(const DataDir& dir,
                                               const ModelDbOptions& options = {});
  ~ModelDb();
  ModelDb(const ModelDb&) = delete;
  ModelDb& operator=(const ModelDb&) = delete;

  // `name` is 1..kMaxModelNameBytes of [a-z0-9_.@-].
  result<ModelStore*> store(std::string_view name);
  result<void> drop(std::string_view name);
  std::vector<std::string> stores() const;
  // Where a store keeps files outside RocksDB. Not created here.
  std::filesystem::path files_dir(std::string_view name) const;
  // A secondary open: takes in what the server wrote since, and reloads
  // every store's checkpoint. errc::invalid_argument on any other open.
  result<void> catch_up();

  // Copies the families of an older layout into this database (Log::open's
  // migration): every key and value of `from` into the store `name`, then
  // flushes, so the copy is on disk before the caller drops the original.
  result<void> import_store(std::string_view name, rocksdb::DB& from_db,
                            rocksdb::ColumnFamilyHandle* from);

 private:
  ModelDb(const DataDir& dir, const ModelDbOptions& options);
  result<void> load(std::string_view name);

  DataDir dir_;
  ModelDbOptions options_;
  std::unique_ptr<RocksDb> db_;  // null: read-only and none exists yet
  std::shared_ptr<rocksdb::Cache> block_cache_;
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<ModelStore>, std::less<>> stores_;
  std::vector<std::unique_ptr<ModelStore>> retired_;  // dropped, kept for their readers
};

}  // namespace engram::core
