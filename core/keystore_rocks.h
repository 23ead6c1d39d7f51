#pragma once

// The KeyStore over the log's "keys" column family (internal to core/).
// Record layout (docs/log-format.md): generation(8, BE) state(1: 1 live,
// 0 destroyed) key(32, live only).

#include <rocksdb/db.h>

#include <mutex>
#include <vector>

#include "core/keystore.h"

namespace engram::core {

class RocksKeyStore final : public KeyStore {
 public:
  RocksKeyStore(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* keys,
                const std::vector<rocksdb::ColumnFamilyHandle*>& all_families, bool read_only)
      : db_(db), keys_(keys), all_(all_families), read_only_(read_only) {}

  result<OwnerKey> get_or_create(std::string_view owner) override;
  result<std::optional<OwnerKey>> get(std::string_view owner) const override;
  result<uint64_t> destroy(std::string_view owner) override;

 private:
  struct Record {
    uint64_t generation = 0;
    bool live = false;
    AeadKey key{};
  };
  result<std::optional<Record>> read(std::string_view owner) const;
  result<void> write(std::string_view owner, const Record& r);

  rocksdb::DB* db_;
  rocksdb::ColumnFamilyHandle* keys_;
  std::vector<rocksdb::ColumnFamilyHandle*> all_;
  bool read_only_;
  std::mutex mu_;  // serialises create and destroy
};

}  // namespace engram::core
