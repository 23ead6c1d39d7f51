#pragma once

// The KeyStore on a RocksDB instance of its own (DataDir::keys_dir()),
// beside the log's and the read models', never inside either: destroying a
// key then means flushing and compacting only this small database.
// Record layout (docs/log-format.md, "Keys"): generation(8, BE) state(1:
// 1 live, 0 destroyed) key(32, live only).
//
// Shredding in the background
// - destroy() writes the destroyed record with an fsync before it returns:
//   from then on no reader gets the key. The key's bytes are still in this
//   database's WAL and maybe an SST file; a maintenance thread flushes and
//   force-compacts it so they leave the disk. Several destroys share one
//   flush and compaction.
// - shred_stats() says how many destroys wait for that and when the last
//   one finished; wait_for_shreds() waits for them (tests, tools).
// - Closing (the destructor) finishes every pending shred first.
// - get_or_create() fsyncs a new key, so it must not run on an I/O or log
//   thread (asserted).

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>

#include "core/data_dir.h"
#include "core/keystore.h"

namespace rocksdb {
class ColumnFamilyHandle;
class DB;
class Env;
}  // namespace rocksdb

namespace engram::core {

class RocksDb;

struct KeyStoreOptions {
  bool read_only = false;
  std::shared_ptr<rocksdb::Env> env;  // null: the default
};

struct ShredStats {
  uint64_t pending = 0;                // destroys whose bytes may still be on disk
  uint64_t completed = 0;              // flush-and-compaction rounds finished
  int64_t last_finished_unix_ms = 0;   // 0: none yet
  uint64_t failed = 0;                 // rounds that failed (retried with the next destroy)
};

class RocksKeyStore final : public KeyStore {
 public:
  // A read-only open of a data dir without a key store opens nothing: every
  // owner has no key.
  static result<std::unique_ptr<RocksKeyStore>> open(const DataDir& dir,
                                                     const KeyStoreOptions& options = {});
  ~RocksKeyStore() override;

  result<OwnerKey> get_or_create(std::string_view owner) override;
  result<std::optional<OwnerKey>> get(std::string_view owner) const override;
  result<uint64_t> destroy(std::string_view owner) override;

  ShredStats shred_stats() const;
  // True once no destroy waits for its shred; false when the timeout ran out.
  bool wait_for_shreds(std::chrono::milliseconds timeout) const;

  // Log::open's migration from the older layout: copies every record of a
  // family of another database (the log's former "keys" family) and syncs.
  result<void> import_records(rocksdb::DB& from_db, rocksdb::ColumnFamilyHandle* from);

 private:
  struct Record {
    uint64_t generation = 0;
    bool live = false;
    AeadKey key{};
  };
  explicit RocksKeyStore(bool read_only);
  result<std::optional<Record>> read(std::string_view owner) const;
  result<void> write(std::string_view owner, const Record& r);
  void run_shredder();
  result<void> shred();

  bool read_only_;
  std::unique_ptr<RocksDb> db_;  // null: read-only and none exists
  std::mutex mu_;                // serialises create and destroy

  mutable std::mutex shred_mu_;
  mutable std::condition_variable shred_cv_;
  uint64_t requested_ = 0;  // destroys so far
  uint64_t shredded_ = 0;   // destroys covered by a finished round
  ShredStats stats_;
  bool stopping_ = false;
  std::thread shredder_;
};

}  // namespace engram::core
