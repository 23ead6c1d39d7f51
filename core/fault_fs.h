#pragma once

// A RocksDB file system that fails write-ahead-log writes or syncs on
// demand, so tests can prove the log's sticky-failure path against the real
// RocksDB write path. Pass make_env(fs) as LogOptions::env.

#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include <atomic>
#include <memory>

namespace engram::core {

class FaultInjectionFs final : public rocksdb::FileSystemWrapper {
 public:
  explicit FaultInjectionFs(
      std::shared_ptr<rocksdb::FileSystem> base = rocksdb::FileSystem::Default())
      : FileSystemWrapper(std::move(base)) {}
  const char* Name() const override { return "engram.FaultInjectionFs"; }

  // While set, every Sync/Fsync of a WAL file (*.log) fails with an I/O error.
  void set_fail_wal_sync(bool on) { fail_wal_sync_.store(on); }
  // While set, every Append to a WAL file fails with an I/O error.
  void set_fail_wal_append(bool on) { fail_wal_append_.store(on); }
  // Every WAL Sync/Fsync first sleeps this long (a slow disk), so tests can
  // hold the writer inside a group.
  void set_wal_sync_delay_ms(uint32_t ms) { wal_sync_delay_ms_.store(ms); }
  uint64_t wal_syncs() const { return wal_syncs_.load(); }

  rocksdb::IOStatus NewWritableFile(const std::string& fname, const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReopenWritableFile(const std::string& fname,
                                       const rocksdb::FileOptions& options,
                                       std::unique_ptr<rocksdb::FSWritableFile>* result,
                                       rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReuseWritableFile(const std::string& fname, const std::string& old_fname,
                                      const rocksdb::FileOptions& options,
                                      std::unique_ptr<rocksdb::FSWritableFile>* result,
                                      rocksdb::IODebugContext* dbg) override;

 private:
  friend class FaultWritableFile;
  rocksdb::IOStatus wrap(const std::string& fname, rocksdb::IOStatus s,
                         std::unique_ptr<rocksdb::FSWritableFile>* result);

  std::atomic<bool> fail_wal_sync_{false};
  std::atomic<bool> fail_wal_append_{false};
  std::atomic<uint32_t> wal_sync_delay_ms_{0};
  std::atomic<uint64_t> wal_syncs_{0};
};

// An Env that routes file operations through `fs`.
std::shared_ptr<rocksdb::Env> make_env(std::shared_ptr<rocksdb::FileSystem> fs);

}  // namespace engram::core
