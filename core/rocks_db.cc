#include "core/rocks_db.h"

#include <fmt/format.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/table.h>

#include <algorithm>

#include "core/logging.h"
#include "core/rocks_status.h"

namespace engram::core {

rocksdb::ColumnFamilyOptions family_options(const std::shared_ptr<rocksdb::Cache>& cache,
                                            bool point_lookups) {
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = cache;
  table.block_size = 16 << 10;
  if (point_lookups) table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  rocksdb::ColumnFamilyOptions cf;
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  cf.compression = rocksdb::kLZ4Compression;
  cf.bottommost_compression = rocksdb::kZSTD;
  cf.write_buffer_size = 32 << 20;
  return cf;
}

rocksdb::DBOptions db_options(rocksdb::Env* env) {
  rocksdb::DBOptions dbo;
  dbo.max_background_jobs = 2;
  dbo.bytes_per_sync = 1 << 20;
  dbo.keep_log_file_num = 4;
  dbo.max_total_wal_size = 256 << 20;
  dbo.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  if (env != nullptr) dbo.env = env;
  return dbo;
}

result<std::unique_ptr<RocksDb>> RocksDb::open(Spec spec) {
  std::unique_ptr<RocksDb> r(new RocksDb());
  r->dir_ = spec.dir;
  r->mode_ = spec.mode;
  const std::string dir = spec.dir.string();

  std::vector<std::string> existing;
  if (auto s = rocksdb::DB::ListColumnFamilies(spec.db_options, dir, &existing); !s.ok()) {
    // A database that does not exist yet has no families to list.
    if (spec.mode != Mode::writable || !(s.IsIOError() || s.IsPathNotFound()) ||
        std::filesystem::exists(spec.dir / "CURRENT")) {
      return from_status(s, fmt::format("listing the column families of '{}'", dir));
    }
    existing.clear();
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  descriptors.emplace_back(rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions());
  for (auto& [name, options] : spec.families) {
    if (name == rocksdb::kDefaultColumnFamilyName) {
      descriptors.front().options = options;
      continue;
    }
    const bool exists = std::find(existing.begin(), existing.end(), name) != existing.end();
    if (exists || spec.mode == Mode::writable) descriptors.emplace_back(name, options);
  }
  for (const auto& name : existing) {
    const bool known = std::any_of(descriptors.begin(), descriptors.end(),
                                   [&](const auto& d) { return d.name == name; });
    if (known) continue;
    descriptors.emplace_back(name, spec.other_options ? spec.other_options(name)
                                                      : rocksdb::ColumnFamilyOptions());
  }

  rocksdb::DBOptions& dbo = spec.db_options;
  rocksdb::DB* raw = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::Status s;
  switch (spec.mode) {
    case Mode::writable:
      dbo.create_if_missing = true;
      dbo.create_missing_column_families = true;
      s = rocksdb::DB::Open(dbo, dir, descriptors, &handles, &raw);
      break;
    case Mode::read_only:
      s = rocksdb::DB::OpenForReadOnly(dbo, dir, descriptors, &handles, &raw);
      break;
    case Mode::secondary: {
      std::error_code ec;
      std::filesystem::create_directories(spec.secondary_dir, ec);
      if (ec) {
        return make_error(errc::io_error, fmt::format("cannot create '{}': {}",
                                                      spec.secondary_dir.string(), ec.message()));
      }
      dbo.max_open_files = -1;  // a secondary must keep every file open
      s = rocksdb::DB::OpenAsSecondary(dbo, dir, spec.secondary_dir.string(), descriptors,
                                       &handles, &raw);
      break;
    }
  }
  if (!s.ok()) {
    Error e = from_status(s, fmt::format("opening '{}'", dir));
    if (e.code == errc::locked) e.message = fmt::format("'{}' is locked by another process", dir);
    return e;
  }
  r->db_.reset(raw);
  r->handles_ = handles;
  for (size_t i = 0; i < descriptors.size(); ++i) r->live_.emplace(descriptors[i].name, handles[i]);
  return r;
}

RocksDb::~RocksDb() {
  if (!db_) return;
  // A destructor cannot return an error: a failure is logged (once per
  // close) and the process goes on; what was acknowledged is already synced.
  rocksdb::Status first;
  for (auto* h : handles_) {
    const rocksdb::Status s = db_->DestroyColumnFamilyHandle(h);
    if (!s.ok() && first.ok()) first = s;
  }
  const rocksdb::Status closed = db_->Close();
  if (!closed.ok() && first.ok()) first = closed;
  if (!first.ok()) {
    logging::write(logging::Level::error, "closing a database failed",
                   {{"dir", dir_.string()}, {"reason", first.ToString()}});
  }
}

rocksdb::ColumnFamilyHandle* RocksDb::family(std::string_view name) const {
  std::lock_guard lock(mu_);
  const auto it = live_.find(name);
  return it == live_.end() ? nullptr : it->second;
}

std::vector<std::string> RocksDb::family_names() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> names;
  for (const auto& [name, handle] : live_) names.push_back(name);
  return names;
}

result<rocksdb::ColumnFamilyHandle*> RocksDb::create_family(
    const std::string& name, const rocksdb::ColumnFamilyOptions& options) {
  if (mode_ != Mode::writable) {
    return make_error(errc::read_only, fmt::format("'{}' is open read-only", dir_.string()));
  }
  std::lock_guard lock(mu_);
  if (auto it = live_.find(name); it != live_.end()) return it->second;
  rocksdb::ColumnFamilyHandle* handle = nullptr;
  if (auto s = db_->CreateColumnFamily(options, name, &handle); !s.ok()) {
    return from_status(s, fmt::format("creating column family '{}'", name));
  }
  handles_.push_back(handle);
  live_.emplace(name, handle);
  return handle;
}

result<void> RocksDb::drop_family(std::string_view name) {
  if (mode_ != Mode::writable) {
    return make_error(errc::read_only, fmt::format("'{}' is open read-only", dir_.string()));
  }
  std::lock_guard lock(mu_);
  const auto it = live_.find(name);
  if (it == live_.end()) {
    return make_error(errc::not_found, fmt::format("no column family '{}'", name));
  }
  if (auto s = db_->DropColumnFamily(it->second); !s.ok()) {
    return from_status(s, fmt::format("dropping column family '{}'", name));
  }
  live_.erase(it);  // the handle stays in handles_ until close
  return {};
}

}  // namespace engram::core
