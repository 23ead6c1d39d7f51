#include "core/keystore_rocks.h"

#include <fmt/format.h>

#include <cstring>

#include "core/keys.h"
#include "core/rocks_status.h"

namespace engram::core {
namespace {

constexpr size_t kMaxOwnerBytes = 256;
constexpr size_t kLiveBytes = 8 + 1 + 32;
constexpr size_t kDestroyedBytes = 8 + 1;

result<void> check_owner(std::string_view owner) {
  if (owner.empty() || owner.size() > kMaxOwnerBytes) {
    return make_error(errc::invalid_argument,
                      fmt::format("key owner must be 1..{} bytes", kMaxOwnerBytes));
  }
  return {};
}

}  // namespace

result<std::optional<RocksKeyStore::Record>> RocksKeyStore::read(std::string_view owner) const {
  std::string value;
  const rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), keys_, owner, &value);
  if (s.IsNotFound()) return std::optional<Record>();
  if (!s.ok()) return from_status(s, "reading a key");
  Record r;
  if (value.size() < kDestroyedBytes) return make_error(errc::corruption, "malformed key record");
  r.generation = keys::get_be64(value.data());
  r.live = value[8] == 1;
  if (r.live) {
    if (value.size() != kLiveBytes) return make_error(errc::corruption, "malformed key record");
    std::memcpy(r.key.data(), value.data() + 9, r.key.size());
  } else if (value.size() != kDestroyedBytes) {
    return make_error(errc::corruption, "malformed key record");
  }
  return std::optional<Record>(r);
}

result<void> RocksKeyStore::write(std::string_view owner, const Record& r) {
  std::string value = keys::be64(r.generation);
  value.push_back(r.live ? 1 : 0);
  if (r.live) value.append(reinterpret_cast<const char*>(r.key.data()), r.key.size());
  rocksdb::WriteOptions wo;
  wo.sync = true;
  if (auto s = db_->Put(wo, keys_, owner, value); !s.ok()) return from_status(s, "writing a key");
  return {};
}

result<OwnerKey> RocksKeyStore::get_or_create(std::string_view owner) {
  if (auto c = check_owner(owner); !c) return c.error();
  if (auto found = get(owner); !found) {
    return found.error();
  } else if (found->has_value()) {
    return **found;
  }
  if (read_only_) return make_error(errc::read_only, "the log is open read-only");
  std::lock_guard lock(mu_);
  auto rec = read(owner);  // again, under the lock: another thread may have made it
  if (!rec) return rec.error();
  if (rec->has_value() && (*rec)->live) return OwnerKey{(*rec)->generation, (*rec)->key};
  Record fresh;
  fresh.generation = rec->has_value() ? (*rec)->generation + 1 : 1;
  fresh.live = true;
  random_bytes(fresh.key);
  if (auto w = write(owner, fresh); !w) return w.error();
  return OwnerKey{fresh.generation, fresh.key};
}

result<std::optional<OwnerKey>> RocksKeyStore::get(std::string_view owner) const {
  if (auto c = check_owner(owner); !c) return c.error();
  auto rec = read(owner);
  if (!rec) return rec.error();
  if (!rec->has_value() || !(*rec)->live) return std::optional<OwnerKey>();
  return std::optional<OwnerKey>(OwnerKey{(*rec)->generation, (*rec)->key});
}

result<uint64_t> RocksKeyStore::destroy(std::string_view owner) {
  if (auto c = check_owner(owner); !c) return c.error();
  if (read_only_) return make_error(errc::read_only, "the log is open read-only");
  std::lock_guard lock(mu_);
  auto rec = read(owner);
  if (!rec) return rec.error();
  if (!rec->has_value() || !(*rec)->live) return uint64_t{0};
  Record tombstone;
  tombstone.generation = (*rec)->generation;
  tombstone.live = false;
  if (auto w = write(owner, tombstone); !w) return w.error();
  // The key's bytes are still in the memtable, the WAL and maybe an SST
  // file. Flushing every family lets RocksDB delete the WALs that held it;
  // a forced bottommost compaction rewrites the keys family without it.
  rocksdb::FlushOptions fo;
  fo.wait = true;
  if (auto s = db_->Flush(fo, all_); !s.ok()) return from_status(s, "flushing after a key destroy");
  rocksdb::CompactRangeOptions co;
  co.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  if (auto s = db_->CompactRange(co, keys_, nullptr, nullptr); !s.ok()) {
    return from_status(s, "compacting the keys");
  }
  return tombstone.generation;
}

}  // namespace engram::core
