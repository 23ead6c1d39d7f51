#pragma once

// Log internals shared by log.cc (open, reads) and verify.cc.

#include <rocksdb/compaction_filter.h>
#include <rocksdb/db.h>

#include <memory>
#include <vector>

#include "core/head_state.h"
#include "core/log.h"
#include "core/merkle.h"
#include "core/rocks_db.h"
#include "core/writer.h"

namespace engram::core {

// Drops dedupe entries once they fall out of the window, so the family stays
// bounded. Lookups apply the same rule, so results never depend on whether a
// compaction has run.
class DedupeWindowFilter final : public rocksdb::CompactionFilter {
 public:
  DedupeWindowFilter(const std::atomic<uint64_t>& head, uint64_t window)
      : head_(head), window_(window) {}
  bool Filter(int level, const rocksdb::Slice& key, const rocksdb::Slice& value,
              std::string* new_value, bool* value_changed) const override;
  const char* Name() const override { return "engram.DedupeWindowFilter"; }

 private:
  const std::atomic<uint64_t>& head_;
  uint64_t window_;
};

struct Log::Impl {
  explicit Impl(DataDir d) : dir(std::move(d)) {}
  ~Impl();

  DataDir dir;
  LogOptions options;
  std::shared_ptr<Clock> clock;
  std::unique_ptr<HeadState> head;
  std::unique_ptr<DedupeWindowFilter> dedupe_filter;
  std::shared_ptr<rocksdb::Cache> block_cache;
  std::unique_ptr<RocksDb> db;
  // Handles owned by db.
  rocksdb::ColumnFamilyHandle* events = nullptr;
  rocksdb::ColumnFamilyHandle* stream_index = nullptr;
  rocksdb::ColumnFamilyHandle* stream_heads = nullptr;
  rocksdb::ColumnFamilyHandle* dedupe = nullptr;
  rocksdb::ColumnFamilyHandle* meta = nullptr;
  rocksdb::ColumnFamilyHandle* merkle = nullptr;
  rocksdb::ColumnFamilyHandle* entity_index = nullptr;  // null: an older log opened read-only
  Uuid log_id;
  std::unique_ptr<GroupCommitWriter> writer;  // null when read-only
};

// The log's stored tree as a merkle::Source (core/log_merkle.cc).
class LogTreeSource final : public merkle::Source {
 public:
  explicit LogTreeSource(const Log::Impl& impl);
  result<Hash256> node(merkle::NodeId id) override;
  result<std::vector<Hash256>> leaves(uint64_t first, uint64_t count) override;

 private:
  const Log::Impl& impl_;
};

// The writer's right edge of the tree of `size` events, from the stored
// nodes and at most 255 event reads. errc::corruption when a node is missing.
result<merkle::Frontier> load_frontier(const Log::Impl& impl, uint64_t size);
// Writes every stored node of the tree over events 1..size (a log written
// before the tree existed, or one whose nodes were lost) and returns its frontier.
result<merkle::Frontier> backfill_tree(const Log::Impl& impl, uint64_t size);

}  // namespace engram::core
