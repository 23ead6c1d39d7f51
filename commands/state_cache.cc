#include "commands/state_cache.h"

namespace engram::commands {

// Per entry beyond the state itself: list node, index slot, snapshot header.
inline constexpr size_t kEntryOverheadBytes = 160;

StateCache::StateCache(size_t max_entries, size_t max_bytes)
    : max_entries_(max_entries), max_bytes_(max_bytes) {}

std::shared_ptr<const Snapshot> StateCache::get(std::string_view stream) {
  std::lock_guard lock(mu_);
  const auto it = index_.find(stream);
  if (it == index_.end()) {
    ++misses_;
    return nullptr;
  }
  ++hits_;
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->snapshot;
}

void StateCache::advance(const std::string& stream, uint64_t expected_version,
                         std::shared_ptr<const Snapshot> next) {
  std::lock_guard lock(mu_);
  const auto it = index_.find(stream);
  if (it != index_.end() && it->second->snapshot->version != expected_version) return;
  put_locked(stream, std::move(next));
}

void StateCache::refresh(const std::string& stream, std::shared_ptr<const Snapshot> loaded) {
  std::lock_guard lock(mu_);
  const auto it = index_.find(stream);
  if (it != index_.end() && it->second->snapshot->version >= loaded->version) return;
  put_locked(stream, std::move(loaded));
}

void StateCache::put_locked(const std::string& stream, std::shared_ptr<const Snapshot> s) {
  if (const auto it = index_.find(stream); it != index_.end()) erase_locked(it->second);
  const size_t bytes = kEntryOverheadBytes + stream.size() + approx_bytes(s->state);
  if (max_entries_ == 0 || bytes > max_bytes_) return;
  while (!lru_.empty() && (lru_.size() >= max_entries_ || bytes_ + bytes > max_bytes_)) {
    erase_locked(std::prev(lru_.end()));
  }
  lru_.push_front(Entry{stream, std::move(s), bytes});
  index_.emplace(lru_.front().stream, lru_.begin());
  bytes_ += bytes;
}

void StateCache::erase_locked(List::iterator it) {
  bytes_ -= it->bytes;
  index_.erase(it->stream);
  lru_.erase(it);
}

CacheStats StateCache::stats() const {
  std::lock_guard lock(mu_);
  return CacheStats{hits_, misses_, lru_.size(), bytes_};
}

}  // namespace engram::commands
