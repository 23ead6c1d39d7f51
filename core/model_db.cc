#include "core/model_db.h"

#include <fmt/format.h>
#include <rocksdb/cache.h>

#include <algorithm>

#include "core/keys.h"
#include "core/rocks_db.h"
#include "core/rocks_status.h"

namespace engram::core {
namespace {

bool valid_name(std::string_view name) {
  return !name.empty() && name.size() <= ModelDb::kMaxModelNameBytes &&
         std::all_of(name.begin(), name.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
                  c == '-' || c == '@';
         });
}

std::string family_of(std::string_view name) {
  return std::string(keys::kModelCfPrefix) + std::string(name);
}

}  // namespace

ModelDb::ModelDb(const DataDir& dir, const ModelDbOptions& options)
    : dir_(dir), options_(options) {}

ModelDb::~ModelDb() {
  // Stores hold family handles of db_: they go first.
  stores_.clear();
  retired_.clear();
  db_.reset();
}

result<std::unique_ptr<ModelDb>> ModelDb::open(const DataDir& dir, const ModelDbOptions& options) {
  std::unique_ptr<ModelDb> m(new ModelDb(dir, options));
  const std::filesystem::path path = dir.models_db_dir();
  std::error_code ec;
  if (options.read_only && !std::filesystem::exists(path / "CURRENT", ec)) return m;
  if (!options.read_only) {
    std::filesystem::create_directories(path, ec);
    if (ec) {
      return make_error(errc::io_error,
                        fmt::format("cannot create '{}': {}", path.string(), ec.message()));
    }
  }
  const auto cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  RocksDb::Spec spec;
  spec.dir = path;
  spec.mode = !options.read_only                ? RocksDb::Mode::writable
              : options.secondary_dir.empty() ? RocksDb::Mode::read_only
                                              : RocksDb::Mode::secondary;
  spec.secondary_dir = options.secondary_dir;
  spec.db_options = db_options(options.env.get());
  spec.other_options = [cache](const std::string&) { return family_options(cache, true); };
  auto db = RocksDb::open(std::move(spec));
  if (!db) return db.error();
  m->db_ = std::move(*db);
  m->block_cache_ = cache;
  for (const std::string& family : m->db_->family_names()) {
    if (family.rfind(keys::kModelCfPrefix, 0) != 0) continue;
    if (auto r = m->load(std::string_view(family).substr(keys::kModelCfPrefix.size())); !r) {
      return r.error();
    }
  }
  return m;
}

result<void> ModelDb::load(std::string_view name) {
  auto* handle = db_->family(family_of(name));
  ENGRAM_ASSERT(handle != nullptr);
  auto store = std::make_unique<ModelStore>(&db_->db(), handle, std::string(name),
                                            db_->mode() != RocksDb::Mode::writable);
  if (auto c = store->load_checkpoint(); !c) return c.error();
  stores_.emplace(std::string(name), std::move(store));
  return {};
}

result<ModelStore*> ModelDb::store(std::string_view name) {
  if (!valid_name(name)) {
    return make_error(errc::invalid_argument,
                      fmt::format("model names are 1..{} of [a-z0-9_.@-]", kMaxModelNameBytes));
  }
  std::lock_guard lock(mu_);
  if (auto it = stores_.find(name); it != stores_.end()) return it->second.get();
  if (!db_ || db_->mode() != RocksDb::Mode::writable) {
    return make_error(errc::not_found, fmt::format("no read model '{}'", name));
  }
  auto handle = db_->create_family(family_of(name), family_options(block_cache_, true));
  if (!handle) return handle.error();
  auto store = std::make_unique<ModelStore>(&db_->db(), *handle, std::string(name), false);
  ModelStore* raw = store.get();
  stores_.emplace(std::string(name), std::move(store));
  return raw;
}

result<void> ModelDb::drop(std::string_view name) {
  std::lock_guard lock(mu_);
  auto it = stores_.find(name);
  if (it == stores_.end()) return make_error(errc::not_found, fmt::format("no read model '{}'", name));
  if (auto d = db_->drop_family(family_of(name)); !d) return d;
  std::error_code ec;
  const std::filesystem::path files = files_dir(name);
  std::filesystem::remove_all(files, ec);
  if (ec) {
    return make_error(errc::io_error, fmt::format("removing {}: {}", files.string(), ec.message()));
  }
  retired_.push_back(std::move(it->second));
  stores_.erase(it);
  return {};
}

std::vector<std::string> ModelDb::stores() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> names;
  for (const auto& [name, store] : stores_) names.push_back(name);
  return names;
}

std::filesystem::path ModelDb::files_dir(std::string_view name) const {
  return dir_.model_files_dir(name);
}

result<void> ModelDb::catch_up() {
  if (!db_) return {};  // nothing was ever written
  if (db_->mode() != RocksDb::Mode::secondary) {
    return make_error(errc::invalid_argument, "catch_up() needs a secondary open");
  }
  if (auto s = db_->db().TryCatchUpWithPrimary(); !s.ok()) {
    return from_status(s, "catching up with the server's read models");
  }
  std::lock_guard lock(mu_);
  for (auto& [name, store] : stores_) {
    if (auto c = store->load_checkpoint(); !c) return c;
  }
  return {};
}

result<void> ModelDb::import_store(std::string_view name, rocksdb::DB& from_db,
                                   rocksdb::ColumnFamilyHandle* from) {
  auto store = this->store(name);
  if (!store) return store.error();
  rocksdb::ColumnFamilyHandle* to = (*store)->family();
  constexpr size_t kBatchBytes = 4 << 20;
  std::unique_ptr<rocksdb::Iterator> it(from_db.NewIterator(rocksdb::ReadOptions(), from));
  rocksdb::WriteBatch batch;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    batch.Put(to, it->key(), it->value());
    if (batch.GetDataSize() >= kBatchBytes) {
      if (auto s = db_->db().Write(rocksdb::WriteOptions(), &batch); !s.ok())
        return from_status(s, "copying a read model");
      batch.Clear();
    }
  }
  if (!it->status().ok()) return from_status(it->status(), "reading a read model to copy");
  if (auto s = db_->db().Write(rocksdb::WriteOptions(), &batch); !s.ok())
    return from_status(s, "copying a read model");
  rocksdb::FlushOptions fo;
  fo.wait = true;
  if (auto s = db_->db().Flush(fo, to); !s.ok()) return from_status(s, "flushing a copied model");
  return (*store)->load_checkpoint();
}

}  // namespace engram::core
