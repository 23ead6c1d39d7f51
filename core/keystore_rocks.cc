#include "core/keystore_rocks.h"

#include <fmt/format.h>
#include <rocksdb/cache.h>
#include <rocksdb/db.h>

#include <cstring>

#include "core/keys.h"
#include "core/logging.h"
#include "core/rocks_db.h"
#include "core/rocks_status.h"
#include "core/thread_role.h"

namespace engram::core {
namespace {

constexpr size_t kMaxOwnerBytes = 256;
constexpr size_t kLiveBytes = 8 + 1 + 32;
constexpr size_t kDestroyedBytes = 8 + 1;
// Keys are few and small; the store's cache need not be large.
constexpr size_t kBlockCacheBytes = 8 << 20;

result<void> check_owner(std::string_view owner) {
  if (owner.empty() || owner.size() > kMaxOwnerBytes) {
    return make_error(errc::invalid_argument,
                      fmt::format("key owner must be 1..{} bytes", kMaxOwnerBytes));
  }
  return {};
}

int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

RocksKeyStore::RocksKeyStore(bool read_only) : read_only_(read_only) {}

result<std::unique_ptr<RocksKeyStore>> RocksKeyStore::open(const DataDir& dir,
                                                            const KeyStoreOptions& options) {
  std::unique_ptr<RocksKeyStore> ks(new RocksKeyStore(options.read_only));
  const std::filesystem::path path = dir.keys_dir();
  std::error_code ec;
  if (options.read_only && !std::filesystem::exists(path / "CURRENT", ec)) return ks;
  RocksDb::Spec spec;
  spec.dir = path;
  spec.mode = options.read_only ? RocksDb::Mode::read_only : RocksDb::Mode::writable;
  spec.db_options = db_options(options.env.get());
  spec.families.emplace_back(rocksdb::kDefaultColumnFamilyName,
                             family_options(rocksdb::NewLRUCache(kBlockCacheBytes), true));
  auto db = RocksDb::open(std::move(spec));
  if (!db) return db.error();
  ks->db_ = std::move(*db);
  if (!options.read_only) {
    ks->shredder_ = std::thread([raw = ks.get()] {
      set_thread_role(ThreadRole::maintenance);
      raw->run_shredder();
    });
  }
  return ks;
}

RocksKeyStore::~RocksKeyStore() {
  {
    std::lock_guard lock(shred_mu_);
    stopping_ = true;
  }
  shred_cv_.notify_all();
  if (shredder_.joinable()) shredder_.join();
}

result<std::optional<RocksKeyStore::Record>> RocksKeyStore::read(std::string_view owner) const {
  if (!db_) return std::optional<Record>();
  std::string value;
  const rocksdb::Status s = db_->db().Get(rocksdb::ReadOptions(), owner, &value);
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
  expect_may_block("writing a key (fsync)");
  std::string value = keys::be64(r.generation);
  value.push_back(r.live ? 1 : 0);
  if (r.live) value.append(reinterpret_cast<const char*>(r.key.data()), r.key.size());
  rocksdb::WriteOptions wo;
  wo.sync = true;
  if (auto s = db_->db().Put(wo, owner, value); !s.ok()) return from_status(s, "writing a key");
  return {};
}

result<OwnerKey> RocksKeyStore::get_or_create(std::string_view owner) {
  if (auto c = check_owner(owner); !c) return c.error();
  if (auto found = get(owner); !found) {
    return found.error();
  } else if (found->has_value()) {
    return **found;
  }
  if (read_only_) return make_error(errc::read_only, "the key store is open read-only");
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
  if (read_only_) return make_error(errc::read_only, "the key store is open read-only");
  std::lock_guard lock(mu_);
  auto rec = read(owner);
  if (!rec) return rec.error();
  if (!rec->has_value() || !(*rec)->live) return uint64_t{0};
  Record tombstone;
  tombstone.generation = (*rec)->generation;
  tombstone.live = false;
  if (auto w = write(owner, tombstone); !w) return w.error();
  {
    std::lock_guard shred_lock(shred_mu_);
    ++requested_;
    stats_.pending = requested_ - shredded_;
  }
  shred_cv_.notify_all();
  return tombstone.generation;
}

result<void> RocksKeyStore::shred() {
  // The destroyed record replaced the key in the memtable, but the key's
  // bytes are still in the WAL and maybe an SST file. A flush retires the
  // WAL (RocksDB deletes it); a forced bottommost compaction rewrites the
  // SST files without the old value.
  rocksdb::FlushOptions fo;
  fo.wait = true;
  if (auto s = db_->db().Flush(fo); !s.ok()) return from_status(s, "flushing after a key destroy");
  rocksdb::CompactRangeOptions co;
  co.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  if (auto s = db_->db().CompactRange(co, nullptr, nullptr); !s.ok()) {
    return from_status(s, "compacting the keys");
  }
  return {};
}

void RocksKeyStore::run_shredder() {
  std::unique_lock lock(shred_mu_);
  for (;;) {
    shred_cv_.wait(lock, [&] { return stopping_ || requested_ > shredded_; });
    if (requested_ == shredded_) return;  // stopping, nothing pending
    const uint64_t covers = requested_;
    lock.unlock();
    auto r = shred();
    if (!r) {
      logging::write(logging::Level::error, "key shred failed",
                     {{"reason", r.error().to_string()}});
    }
    lock.lock();
    if (r) {
      shredded_ = covers;
      ++stats_.completed;
      stats_.last_finished_unix_ms = unix_ms_now();
    } else {
      ++stats_.failed;
      // Retried with the next destroy, or at close; never in a tight loop.
      if (!stopping_) {
        shred_cv_.wait_for(lock, std::chrono::seconds(1), [&] { return stopping_; });
      }
      if (stopping_) return;
    }
    stats_.pending = requested_ - shredded_;
    shred_cv_.notify_all();
  }
}

ShredStats RocksKeyStore::shred_stats() const {
  std::lock_guard lock(shred_mu_);
  return stats_;
}

bool RocksKeyStore::wait_for_shreds(std::chrono::milliseconds timeout) const {
  std::unique_lock lock(shred_mu_);
  return shred_cv_.wait_for(lock, timeout, [&] { return shredded_ == requested_; });
}

result<void> RocksKeyStore::import_records(rocksdb::DB& from_db,
                                           rocksdb::ColumnFamilyHandle* from) {
  if (read_only_ || !db_) return make_error(errc::read_only, "the key store is open read-only");
  rocksdb::WriteBatch batch;
  std::unique_ptr<rocksdb::Iterator> it(from_db.NewIterator(rocksdb::ReadOptions(), from));
  for (it->SeekToFirst(); it->Valid(); it->Next()) batch.Put(it->key(), it->value());
  if (!it->status().ok()) return from_status(it->status(), "reading the keys to move");
  rocksdb::WriteOptions wo;
  wo.sync = true;
  if (auto s = db_->db().Write(wo, &batch); !s.ok()) return from_status(s, "moving the keys");
  return {};
}

}  // namespace engram::core
