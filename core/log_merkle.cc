// The log's Merkle tree (core/merkle.h): reading it, proving with it, and
// bringing it up at open.

#include <fmt/format.h>

#include "core/keys.h"
#include "core/log_impl.h"
#include "core/log_tree.h"
#include "core/merkle.h"

namespace engram::core {

LogTreeSource::LogTreeSource(const Log::Impl& impl) : impl_(impl) {}

result<Hash256> LogTreeSource::node(merkle::NodeId id) {
  std::string value;
  const rocksdb::Status s = impl_.db->db().Get(rocksdb::ReadOptions(), impl_.merkle,
                                          keys::merkle_node_key(id.level, id.index), &value);
  if (s.IsNotFound()) {
    return make_error(errc::corruption, fmt::format("Merkle node (level {}, index {}) is missing",
                                                    id.level, id.index));
  }
  if (!s.ok()) return make_error(errc::io_error, "reading a Merkle node: " + s.ToString());
  Hash256 h{};
  if (value.size() != h.size()) {
    return make_error(errc::corruption, fmt::format("Merkle node (level {}, index {}) is malformed",
                                                    id.level, id.index));
  }
  std::memcpy(h.data(), value.data(), h.size());
  return h;
}

result<std::vector<Hash256>> LogTreeSource::leaves(uint64_t first, uint64_t count) {
  ENGRAM_ASSERT(count <= merkle::kChunkLeaves);
  std::vector<Hash256> out;
  out.reserve(count);
  rocksdb::ReadOptions ro;
  std::unique_ptr<rocksdb::Iterator> it(impl_.db->db().NewIterator(ro, impl_.events));
  // Leaf i is the event at position i + 1.
  uint64_t expected = first + 1;
  for (it->Seek(keys::position_key(Position(expected))); it->Valid() && out.size() < count;
       it->Next(), ++expected) {
    auto pos = keys::parse_be64(it->key().ToStringView());
    if (!pos || *pos != expected) {
      return make_error(errc::corruption,
                        fmt::format("event {} is missing (the tree needs its hash)", expected));
    }
    auto ev = RecordedEvent::decode(it->value().ToString());
    if (!ev) return make_error(errc::corruption, fmt::format("event {} does not verify", expected));
    out.push_back(merkle::leaf_hash(ev->hash()));
  }
  if (!it->status().ok()) return make_error(errc::io_error, it->status().ToString());
  if (out.size() != count) {
    return make_error(errc::corruption,
                      fmt::format("event {} is missing (the tree needs its hash)", expected));
  }
  return out;
}

result<merkle::Frontier> load_frontier(const Log::Impl& impl, uint64_t size) {
  LogTreeSource src(impl);
  std::vector<merkle::Frontier::Part> parts;
  uint64_t start = 0;
  for (int level = 63; level >= 0; --level) {
    const uint64_t width = uint64_t{1} << level;
    if ((size & width) == 0) continue;
    auto h = merkle::subtree_root(src, start, width);
    if (!h) return h.error();
    parts.push_back(merkle::Frontier::Part{level, *h});
    start += width;
  }
  return merkle::Frontier(size, std::move(parts));
}

result<merkle::Frontier> backfill_tree(const Log::Impl& impl, uint64_t size) {
  constexpr size_t kBatchNodes = 4096;
  merkle::Frontier frontier;
  rocksdb::WriteBatch batch;
  auto flush = [&]() -> result<void> {
    if (batch.Count() == 0) return {};
    rocksdb::WriteOptions wo;
    wo.sync = true;
    if (auto s = impl.db->db().Write(wo, &batch); !s.ok()) {
      return make_error(errc::io_error, "writing Merkle nodes: " + s.ToString());
    }
    batch.Clear();
    return {};
  };
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;
  std::unique_ptr<rocksdb::Iterator> it(impl.db->db().NewIterator(ro, impl.events));
  uint64_t expected = 1;
  for (it->SeekToFirst(); it->Valid() && expected <= size; it->Next(), ++expected) {
    auto pos = keys::parse_be64(it->key().ToStringView());
    if (!pos || *pos != expected) {
      return make_error(errc::corruption, fmt::format("event {} is missing", expected));
    }
    auto ev = RecordedEvent::decode(it->value().ToString());
    if (!ev) return make_error(errc::corruption, fmt::format("event {} does not verify", expected));
    frontier.append(merkle::leaf_hash(ev->hash()), [&](merkle::NodeId id, const Hash256& h) {
      batch.Put(impl.merkle, keys::merkle_node_key(id.level, id.index),
                rocksdb::Slice(reinterpret_cast<const char*>(h.data()), h.size()));
    });
    if (batch.Count() >= kBatchNodes) {
      if (auto f = flush(); !f) return f.error();
    }
  }
  if (!it->status().ok()) return make_error(errc::io_error, it->status().ToString());
  if (expected <= size)
    return make_error(errc::corruption, fmt::format("event {} is missing", expected));
  if (auto f = flush(); !f) return f.error();
  return frontier;
}

const Uuid& Log::log_id() const {
  return impl_->log_id;
}

result<Hash256> LogTree::root(Position size) const {
  if (size > log_.head().position) {
    return make_error(errc::invalid_argument, fmt::format("tree size {} is past the head ({})",
                                                          size.value(), log_.head().position.value()));
  }
  LogTreeSource src(*log_.impl_);
  return merkle::root(src, size.value());
}

result<std::vector<Hash256>> LogTree::inclusion_proof(Position position,
                                                      Position tree_size) const {
  if (tree_size > log_.head().position) {
    return make_error(errc::invalid_argument,
                      fmt::format("tree size {} is past the head ({})", tree_size.value(),
                                  log_.head().position.value()));
  }
  if (position.value() == 0 || position > tree_size) {
    return make_error(errc::invalid_argument,
                      fmt::format("position {} is not in a tree of {} events", position.value(),
                                  tree_size.value()));
  }
  LogTreeSource src(*log_.impl_);
  return merkle::inclusion_proof(src, position.value() - 1, tree_size.value());
}

result<std::vector<Hash256>> LogTree::consistency_proof(Position old_size,
                                                        Position new_size) const {
  if (new_size > log_.head().position) {
    return make_error(errc::invalid_argument,
                      fmt::format("tree size {} is past the head ({})", new_size.value(),
                                  log_.head().position.value()));
  }
  LogTreeSource src(*log_.impl_);
  return merkle::consistency_proof(src, old_size.value(), new_size.value());
}

}  // namespace engram::core
