#include "core/model_store.h"

#include <fmt/format.h>

#include "core/assert.h"
#include "core/keys.h"
#include "core/rocks_status.h"

namespace engram::core {
namespace {

// Sorts before every key a model may use (they may not start with NUL).
const std::string kCheckpointKey("\0checkpoint", 11);

result<void> check_key(std::string_view key) {
  if (key.empty() || key.size() > ModelStore::kMaxKeyBytes) {
    return make_error(errc::invalid_argument,
                      fmt::format("model keys must be 1..{} bytes", ModelStore::kMaxKeyBytes));
  }
  if (key.front() == '\0') {
    return make_error(errc::invalid_argument, "model keys starting with NUL are reserved");
  }
  return {};
}

}  // namespace

ModelStore::Batch::Batch(const ModelStore& store) : store_(store) {}

rocksdb::WriteBatchWithIndex& ModelStore::Batch::indexed() const {
  if (indexed_) return *indexed_;
  indexed_ = std::make_unique<rocksdb::WriteBatchWithIndex>(rocksdb::BytewiseComparator(), 0,
                                                            /*overwrite_key=*/true);
  // Replays the plain writes, in order, into the index.
  struct Replay final : rocksdb::WriteBatch::Handler {
    Replay(rocksdb::WriteBatchWithIndex& to, rocksdb::ColumnFamilyHandle* family)
        : to_(to), family_(family) {}
    rocksdb::Status PutCF(uint32_t id, const rocksdb::Slice& key,
                          const rocksdb::Slice& value) override {
      ENGRAM_ASSERT(id == family_->GetID());
      return to_.Put(family_, key, value);
    }
    rocksdb::Status DeleteCF(uint32_t id, const rocksdb::Slice& key) override {
      ENGRAM_ASSERT(id == family_->GetID());
      return to_.Delete(family_, key);
    }
    rocksdb::WriteBatchWithIndex& to_;
    rocksdb::ColumnFamilyHandle* family_;
  } replay(*indexed_, store_.family_);
  const rocksdb::Status s = plain_.Iterate(&replay);
  // Only Put and Delete of this store's family are ever added to plain_.
  ENGRAM_ASSERT(s.ok());
  plain_.Clear();
  return *indexed_;
}

rocksdb::WriteBatch& ModelStore::Batch::writes() {
  return indexed_ ? *indexed_->GetWriteBatch() : plain_;
}

void ModelStore::Batch::clear() {
  plain_.Clear();
  indexed_.reset();
  count_ = 0;
}

result<void> ModelStore::Batch::put(std::string_view key, std::string_view value) {
  if (auto c = check_key(key); !c) return c;
  const rocksdb::Status s =
      indexed_ ? indexed_->Put(store_.family_, key, value) : plain_.Put(store_.family_, key, value);
  if (!s.ok()) return from_status(s, "batch put");
  ++count_;
  return {};
}

result<void> ModelStore::Batch::del(std::string_view key) {
  if (auto c = check_key(key); !c) return c;
  const rocksdb::Status s =
      indexed_ ? indexed_->Delete(store_.family_, key) : plain_.Delete(store_.family_, key);
  if (!s.ok()) return from_status(s, "batch delete");
  ++count_;
  return {};
}

result<std::optional<std::string>> ModelStore::Batch::get(std::string_view key) const {
  // Nothing written yet: the store's committed value, without an index.
  if (!indexed_ && plain_.Count() == 0) return store_.get(key);
  std::string value;
  const rocksdb::Status s =
      indexed().GetFromBatchAndDB(store_.db_, rocksdb::ReadOptions(), store_.family_, key, &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return from_status(s, "reading a read model");
  return std::optional<std::string>(std::move(value));
}

ModelStore::ModelStore(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* family, std::string name,
                       bool read_only)
    : db_(db), family_(family), name_(std::move(name)), read_only_(read_only) {}

result<void> ModelStore::load_checkpoint() {
  std::string value;
  const rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), family_, kCheckpointKey, &value);
  if (s.IsNotFound()) {
    checkpoint_.store(0, std::memory_order_release);
    return {};
  }
  if (!s.ok()) return from_status(s, "reading a checkpoint");
  auto p = keys::parse_be64(value);
  if (!p) return make_error(errc::corruption, fmt::format("malformed checkpoint in '{}'", name_));
  checkpoint_.store(*p, std::memory_order_release);
  return {};
}

result<void> ModelStore::commit(Batch& batch, Position checkpoint) {
  if (read_only_) return make_error(errc::read_only, "the log is open read-only");
  ENGRAM_ASSERT(&batch.store_ == this);
  ENGRAM_ASSERT(checkpoint.value() >= checkpoint_.load(std::memory_order_acquire));
  // Through put()'s path, so an index of the batch stays whole if this
  // commit fails; the key is the store's own, so check_key() would refuse it.
  const std::string at = keys::be64(checkpoint.value());
  const rocksdb::Status put = batch.indexed_ ? batch.indexed_->Put(family_, kCheckpointKey, at)
                                             : batch.plain_.Put(family_, kCheckpointKey, at);
  if (!put.ok()) return from_status(put, "batch put");
  if (auto s = db_->Write(rocksdb::WriteOptions(), &batch.writes()); !s.ok()) {
    return from_status(s, fmt::format("committing read model '{}'", name_));
  }
  checkpoint_.store(checkpoint.value(), std::memory_order_release);
  batch.clear();
  return {};
}

result<std::optional<std::string>> ModelStore::get(std::string_view key) const {
  if (auto c = check_key(key); !c) return c.error();
  std::string value;
  const rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), family_, key, &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return from_status(s, "reading a read model");
  return std::optional<std::string>(std::move(value));
}

namespace {

using Entries = std::vector<std::pair<std::string, std::string>>;

result<Entries> scan_iterator(rocksdb::Iterator& it, std::string_view prefix, std::string_view from,
                              size_t limit) {
  Entries out;
  limit = std::min(limit, ModelStore::kMaxScanEntries);
  const std::string_view start = from > prefix ? from : prefix;
  for (it.Seek(rocksdb::Slice(start.data(), start.size())); it.Valid() && out.size() < limit;
       it.Next()) {
    const std::string_view k = it.key().ToStringView();
    if (k.substr(0, prefix.size()) != prefix) break;
    if (!k.empty() && k.front() == '\0') continue;
    out.emplace_back(std::string(k), it.value().ToString());
  }
  if (!it.status().ok()) return from_status(it.status(), "scanning a read model");
  return out;
}

}  // namespace

result<Entries> ModelStore::scan(std::string_view prefix, std::string_view from,
                                 size_t limit) const {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), family_));
  return scan_iterator(*it, prefix, from, limit);
}

result<Entries> ModelStore::Batch::scan(std::string_view prefix, std::string_view from,
                                        size_t limit) const {
  if (!indexed_ && plain_.Count() == 0) return store_.scan(prefix, from, limit);
  // The batch's iterator takes ownership of the base iterator.
  std::unique_ptr<rocksdb::Iterator> it(indexed().NewIteratorWithBase(
      store_.family_, store_.db_->NewIterator(rocksdb::ReadOptions(), store_.family_)));
  return scan_iterator(*it, prefix, from, limit);
}

}  // namespace engram::core
