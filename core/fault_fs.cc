#include "core/fault_fs.h"

#include <chrono>
#include <string_view>
#include <thread>

namespace engram::core {

class FaultWritableFile final : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  FaultWritableFile(std::unique_ptr<rocksdb::FSWritableFile> file, FaultInjectionFs& fs)
      : FSWritableFileOwnerWrapper(std::move(file)), fs_(fs) {}

  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                           rocksdb::IODebugContext* dbg) override {
    if (fs_.fail_wal_append_.load())
      return rocksdb::IOStatus::IOError("injected WAL append failure");
    return FSWritableFileOwnerWrapper::Append(data, options, dbg);
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                           const rocksdb::DataVerificationInfo& info,
                           rocksdb::IODebugContext* dbg) override {
    if (fs_.fail_wal_append_.load())
      return rocksdb::IOStatus::IOError("injected WAL append failure");
    return FSWritableFileOwnerWrapper::Append(data, options, info, dbg);
  }
  rocksdb::IOStatus Sync(const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg) override {
    if (auto s = before_sync(); !s.ok()) return s;
    return FSWritableFileOwnerWrapper::Sync(options, dbg);
  }
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options,
                          rocksdb::IODebugContext* dbg) override {
    if (auto s = before_sync(); !s.ok()) return s;
    return FSWritableFileOwnerWrapper::Fsync(options, dbg);
  }

 private:
  rocksdb::IOStatus before_sync() {
    fs_.wal_syncs_.fetch_add(1);
    if (const uint32_t ms = fs_.wal_sync_delay_ms_.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    }
    if (fs_.fail_wal_sync_.load()) return rocksdb::IOStatus::IOError("injected WAL fsync failure");
    return rocksdb::IOStatus::OK();
  }
  FaultInjectionFs& fs_;
};

rocksdb::IOStatus FaultInjectionFs::wrap(const std::string& fname, rocksdb::IOStatus s,
                                         std::unique_ptr<rocksdb::FSWritableFile>* result) {
  const std::string_view name(fname);
  if (s.ok() && name.size() >= 4 && name.substr(name.size() - 4) == ".log") {
    *result = std::make_unique<FaultWritableFile>(std::move(*result), *this);
  }
  return s;
}

rocksdb::IOStatus FaultInjectionFs::NewWritableFile(
    const std::string& fname, const rocksdb::FileOptions& options,
    std::unique_ptr<rocksdb::FSWritableFile>* result, rocksdb::IODebugContext* dbg) {
  return wrap(fname, FileSystemWrapper::NewWritableFile(fname, options, result, dbg), result);
}

rocksdb::IOStatus FaultInjectionFs::ReopenWritableFile(
    const std::string& fname, const rocksdb::FileOptions& options,
    std::unique_ptr<rocksdb::FSWritableFile>* result, rocksdb::IODebugContext* dbg) {
  return wrap(fname, FileSystemWrapper::ReopenWritableFile(fname, options, result, dbg), result);
}

rocksdb::IOStatus FaultInjectionFs::ReuseWritableFile(
    const std::string& fname, const std::string& old_fname, const rocksdb::FileOptions& options,
    std::unique_ptr<rocksdb::FSWritableFile>* result, rocksdb::IODebugContext* dbg) {
  return wrap(fname, FileSystemWrapper::ReuseWritableFile(fname, old_fname, options, result, dbg),
              result);
}

std::shared_ptr<rocksdb::Env> make_env(std::shared_ptr<rocksdb::FileSystem> fs) {
  return std::shared_ptr<rocksdb::Env>(rocksdb::NewCompositeEnv(std::move(fs)).release());
}

}  // namespace engram::core
