#pragma once

// Storage for read models. Each model (a projection at one version) has its
// own column family, "model:<name>", in the read models' database
// (core/model_db.h), holding its data and its checkpoint: the position of
// the last event it applied.
//
// Contract
// - commit(batch, checkpoint) writes the batch and the new checkpoint in one
//   RocksDB WriteBatch: after a crash either both are visible or neither, so
//   a worker that re-applies from the checkpoint applies every event exactly
//   once. Commits are not fsynced: a read model is derived data; what a
//   crash loses is re-applied from the log. Checkpoints only grow.
// - Keys starting with '\0' are the store's own (the checkpoint); a batch
//   touching one fails with errc::invalid_argument.
// - Reads see committed data only. Batch::get() also sees the batch's own
//   writes, so apply() can update a value twice in one batch. (A batch
//   indexes its writes only once a read needs them: one that only writes,
//   or reads everything before its first write, never pays for the index.)
// - One writer per store (its worker); readers on any thread.

#include <rocksdb/db.h>
#include <rocksdb/utilities/write_batch_with_index.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/named_type.h"
#include "core/result.h"

namespace engram::core {

class ModelStore {
 public:
  // Bounds on what one batch and one scan may hold.
  static constexpr size_t kMaxKeyBytes = 1024;
  static constexpr size_t kMaxScanEntries = 10'000;

  class Batch {
   public:
    result<void> put(std::string_view key, std::string_view value);
    result<void> del(std::string_view key);
    // The batch's own write for `key`, else the store's committed value.
    result<std::optional<std::string>> get(std::string_view key) const;
    // As ModelStore::scan, over the store's committed data with the batch's
    // own writes applied.
    result<std::vector<std::pair<std::string, std::string>>> scan(std::string_view prefix,
                                                                  std::string_view from,
                                                                  size_t limit) const;
    size_t count() const { return count_; }
    // The store this batch commits to (a projection that caches what it
    // read keys the cache by it).
    const ModelStore& store() const { return store_; }

   private:
    friend class ModelStore;
    explicit Batch(const ModelStore& store);
    // The index of the batch's writes, built on the first read after a
    // write (from plain_), which then takes every later write too.
    rocksdb::WriteBatchWithIndex& indexed() const;
    // What commit() writes.
    rocksdb::WriteBatch& writes();
    void clear();

    const ModelStore& store_;
    // Writes until a read needs to see them: appending to a plain batch
    // costs no key compares, where the index is a skiplist insert per write.
    // Mutable: building the index on a read changes how the writes are
    // held, not what they are.
    mutable rocksdb::WriteBatch plain_;
    mutable std::unique_ptr<rocksdb::WriteBatchWithIndex> indexed_;
    size_t count_ = 0;
  };

  ModelStore(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* family, std::string name,
             bool read_only);

  const std::string& name() const { return name_; }
  // The last applied position; 0 before the first commit.
  Position checkpoint() const { return Position(checkpoint_.load(std::memory_order_acquire)); }

  Batch batch() const { return Batch(*this); }
  result<void> commit(Batch& batch, Position checkpoint);

  result<std::optional<std::string>> get(std::string_view key) const;
  // Up to min(limit, kMaxScanEntries) entries whose keys start with `prefix`
  // and are >= `from` (from < prefix means: from the start of the prefix).
  result<std::vector<std::pair<std::string, std::string>>> scan(std::string_view prefix,
                                                                std::string_view from,
                                                                size_t limit) const;
  // Reads the checkpoint from disk (at open).
  result<void> load_checkpoint();

  rocksdb::ColumnFamilyHandle* family() const { return family_; }

 private:
  rocksdb::DB* db_;
  rocksdb::ColumnFamilyHandle* family_;
  std::string name_;
  bool read_only_;
  std::atomic<uint64_t> checkpoint_{0};
};

}  // namespace engram::core
