#pragma once

// One RocksDB database and its column families, by name (internal to core/).
// The log, the key store and the read models each keep one; opening,
// listing families, creating and dropping them and closing are done here
// once.
//
// Contract
// - open() opens every family that exists (RocksDB requires it) and creates
//   the named ones that are missing (writable opens only). A family that
//   exists but is not named gets `other_options(name)`.
// - A dropped family's handle stays open until close, so a reader holding
//   it keeps reading what it held; nothing writes to it any more.
// - Thread-safe: family() and the creation and dropping of families may be
//   called from any thread.

#include <rocksdb/db.h>

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.h"

namespace rocksdb {
class Cache;
}

namespace engram::core {

// The options every engram family shares: a block-based table over `cache`
// (16 KiB blocks, LZ4, ZSTD at the bottom level, 32 MiB memtables), with a
// Bloom filter when the family serves point lookups.
rocksdb::ColumnFamilyOptions family_options(const std::shared_ptr<rocksdb::Cache>& cache,
                                            bool point_lookups);
// The database options every engram database shares.
rocksdb::DBOptions db_options(rocksdb::Env* env);

class RocksDb {
 public:
  enum class Mode { writable, read_only, secondary };
  struct Spec {
    std::filesystem::path dir;
    Mode mode = Mode::writable;
    std::filesystem::path secondary_dir;  // Mode::secondary: the instance's own files
    rocksdb::DBOptions db_options;
    std::vector<std::pair<std::string, rocksdb::ColumnFamilyOptions>> families;
    std::function<rocksdb::ColumnFamilyOptions(const std::string& name)> other_options;
  };

  // Errors: errc::locked (another process holds it for writing),
  // errc::corruption, errc::io_error.
  static result<std::unique_ptr<RocksDb>> open(Spec spec);
  ~RocksDb();
  RocksDb(const RocksDb&) = delete;
  RocksDb& operator=(const RocksDb&) = delete;

  rocksdb::DB& db() const { return *db_; }
  Mode mode() const { return mode_; }
  const std::filesystem::path& dir() const { return dir_; }
  // The family's handle; null when it does not exist (or was dropped).
  rocksdb::ColumnFamilyHandle* family(std::string_view name) const;
  std::vector<std::string> family_names() const;
  result<rocksdb::ColumnFamilyHandle*> create_family(const std::string& name,
                                                     const rocksdb::ColumnFamilyOptions& options);
  result<void> drop_family(std::string_view name);

 private:
  RocksDb() = default;

  std::filesystem::path dir_;
  Mode mode_ = Mode::writable;
  std::unique_ptr<rocksdb::DB> db_;
  mutable std::mutex mu_;  // guards live_ and handles_
  std::map<std::string, rocksdb::ColumnFamilyHandle*, std::less<>> live_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;  // every handle ever opened, owned
};

}  // namespace engram::core
