#pragma once

// Opens a log's RocksDB directly, as an attacker with disk access would, for
// tamper tests. Every family is opened with default options.

#include <doctest/doctest.h>
#include <rocksdb/db.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace engram::test {

struct RawDb {
  explicit RawDb(const std::filesystem::path& dir) {
    std::vector<std::string> names;
    REQUIRE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), dir.string(), &names).ok());
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
    for (auto& n : names) cfs.emplace_back(n, rocksdb::ColumnFamilyOptions());
    rocksdb::DB* raw = nullptr;
    REQUIRE(rocksdb::DB::Open(rocksdb::DBOptions(), dir.string(), cfs, &handles, &raw).ok());
    db.reset(raw);
    for (size_t i = 0; i < names.size(); ++i) by_name[names[i]] = handles[i];
  }
  ~RawDb() {
    for (auto* h : handles) (void)db->DestroyColumnFamilyHandle(h);
  }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;

  std::string get(const char* cf, const std::string& key) {
    std::string v;
    REQUIRE(db->Get(rocksdb::ReadOptions(), by_name.at(cf), key, &v).ok());
    return v;
  }
  void put(const char* cf, const std::string& key, const std::string& value) {
    REQUIRE(db->Put(rocksdb::WriteOptions(), by_name.at(cf), key, value).ok());
  }
  void del(const char* cf, const std::string& key) {
    REQUIRE(db->Delete(rocksdb::WriteOptions(), by_name.at(cf), key).ok());
  }
  // Deletes every key of a family.
  void clear(const char* cf) {
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), by_name.at(cf)));
    for (it->SeekToFirst(); it->Valid(); it->Next()) del(cf, it->key().ToString());
  }

  std::unique_ptr<rocksdb::DB> db;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  std::map<std::string, rocksdb::ColumnFamilyHandle*> by_name;
};

}  // namespace engram::test
