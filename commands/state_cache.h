#pragma once

// Aggregate states by stream, least recently used first out, bounded in
// entries and in approximate bytes. Thread-safe. Entries are immutable
// snapshots shared with their readers.
//
// The cache only moves forward: a decision's result replaces an entry only
// when the entry is still at the version the decision was made against, and
// a state loaded from the log only when it is newer than the entry.

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "commands/aggregates.h"

namespace engram::commands {

struct Snapshot {
  uint64_t version = 0;  // the stream version the state reflects
  AnyState state;
};

struct CacheStats {
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t entries = 0;
  uint64_t bytes = 0;
};

class StateCache {
 public:
  StateCache(size_t max_entries, size_t max_bytes);

  // Counts a hit or a miss.
  std::shared_ptr<const Snapshot> get(std::string_view stream);
  // After an append that expected `expected_version`: stores `next` if the
  // entry is absent or still at expected_version.
  void advance(const std::string& stream, uint64_t expected_version,
               std::shared_ptr<const Snapshot> next);
  // After a read from the log: stores `loaded` if it is newer than the entry.
  void refresh(const std::string& stream, std::shared_ptr<const Snapshot> loaded);
  CacheStats stats() const;

 private:
  struct Entry {
    std::string stream;
    std::shared_ptr<const Snapshot> snapshot;
    size_t bytes = 0;
  };
  using List = std::list<Entry>;

  void put_locked(const std::string& stream, std::shared_ptr<const Snapshot> s);
  void erase_locked(List::iterator it);

  const size_t max_entries_;
  const size_t max_bytes_;
  mutable std::mutex mu_;
  List lru_;                                                    // most recently used first
  std::unordered_map<std::string_view, List::iterator> index_;  // views into lru_'s strings
  size_t bytes_ = 0;
  uint64_t hits_ = 0;
  uint64_t misses_ = 0;
};

}  // namespace engram::commands
