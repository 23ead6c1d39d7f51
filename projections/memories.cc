#include "projections/memories.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>

#include "core/assert.h"
#include "core/crypto.h"
#include "core/logging.h"
#include "core/sha256.h"
#include "core/thread_role.h"
#include "projections/snapshot_bytes.h"
#include "schemas/domain/memories_generated.h"
#include "schemas/domain/memory_seal.h"
#include "schemas/payload.h"

namespace engram::projections {
namespace {

using nlohmann::json;
namespace d = engram::domain;

constexpr std::string_view kSnapshotFile = "vectors.snapshot";
constexpr std::string_view kSnapshotMagic = "ENGRAM-MEMVEC-02";  // 16 bytes
constexpr size_t kHashBytes = 32;
// Owners and memories per store scan page (ModelStore bounds scans too).
constexpr size_t kScanPage = 4096;

int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string str(const flatbuffers::String* s) {
  return s ? s->str() : std::string();
}

std::string_view bytes_view(const flatbuffers::Vector<uint8_t>* v) {
  if (v == nullptr) return {};
  return {reinterpret_cast<const char*>(v->data()), v->size()};
}

std::string mem_key(std::string_view owner, std::string_view id) {
  return fmt::format("mem/{}/{}", owner, id);
}
std::string txt_key(std::string_view owner, std::string_view id) {
  return fmt::format("txt/{}/{}", owner, id);
}
std::string vec_key(std::string_view owner, std::string_view id) {
  return fmt::format("vec/{}/{}", owner, id);
}

// Scales to norm 1 (the index ranks by inner product); a zero vector stays
// zero and matches nothing in particular.
void normalise(std::vector<float>& v) {
  double sum = 0;
  for (float x : v) sum += static_cast<double>(x) * x;
  if (sum <= 0) return;
  const double inv = 1.0 / std::sqrt(sum);
  for (float& x : v) x = static_cast<float>(x * inv);
}

std::vector<float> floats_of(std::string_view raw) {
  std::vector<float> v(raw.size() / sizeof(float));
  std::memcpy(v.data(), raw.data(), v.size() * sizeof(float));
  return v;
}

std::string_view raw_of(const std::vector<float>& v) {
  return {reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float)};
}

core::result<json> parse_record(std::string_view key, const std::string& value) {
  json j = json::parse(value, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return core::make_error(core::errc::corruption, fmt::format("memories: bad record {}", key));
  }
  return j;
}

MemoriesProjection::Meta meta_of(std::string memory_id, const json& j) {
  MemoriesProjection::Meta m;
  m.memory_id = std::move(memory_id);
  m.importance = j.value("importance", 0.0);
  m.stored_at_ms = j.value("stored_at_ms", int64_t{0});
  m.tags = j.value("tags", std::vector<std::string>());
  return m;
}

// --- snapshot file ----------------------------------------------------------
// "ENGRAM-MEMVEC-02", then little-endian fields (snapshot_bytes.h), then
// SHA-256 of everything before it.

core::Error io_error(const std::filesystem::path& p, const char* what) {
  return core::make_error(core::errc::io_error,
                          fmt::format("{} {}: {}", what, p.string(), std::strerror(errno)));
}

// Whole file through a temporary, fsync and rename, then fsync the
// directory: a crash leaves the old snapshot or the new one, never half.
core::result<void> write_file_atomically(const std::filesystem::path& path,
                                         std::string_view bytes) {
  const std::filesystem::path tmp = path.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return io_error(tmp, "creating");
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      ::close(fd);
      return io_error(tmp, "writing");
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    ::close(fd);
    return io_error(tmp, "fsyncing");
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return io_error(path, "renaming onto");
  const int dfd = ::open(path.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return io_error(path.parent_path(), "opening");
  const int rc = ::fsync(dfd);
  ::close(dfd);
  if (rc != 0) return io_error(path.parent_path(), "fsyncing");
  return {};
}

}  // namespace

namespace {

using Payload = VectorIndex::Payload;

// A memory's Meta is the payload of its vector in the owner's index.
const MemoriesProjection::Meta& meta_of(const Payload& payload) {
  return *static_cast<const MemoriesProjection::Meta*>(payload.get());
}

}  // namespace

struct MemoriesProjection::Change {
  enum class Kind { upsert, update_meta, remove, drop_owner } kind;
  std::string owner;
  Meta meta;
  std::vector<float> vector;  // upsert: normalised
};

MemoriesProjection::MemoriesProjection(std::shared_ptr<const TextEmbedder> embedder,
                                       const core::KeyStore& keys, MemoriesOptions options)
    : embedder_(std::move(embedder)), keys_(keys), options_(std::move(options)) {
  ENGRAM_ASSERT(embedder_ != nullptr);
  options_.index.dimensions = embedder_->dimensions();
}

MemoriesProjection::~MemoriesProjection() = default;

std::vector<std::string> MemoriesProjection::event_types() const {
  return {"MemoryStored", "MemoryReinforced", "MemoryForgotten", "SubjectForgotten"};
}

std::string MemoriesProjection::embedder_tag() const {
  return fmt::format("{}/{}/{}", embedder_->name(), embedder_->version(), embedder_->dimensions());
}

MemoriesIndexReport MemoriesProjection::report() const {
  std::shared_lock lock(mu_);
  MemoriesIndexReport r = report_;
  r.owners = owners_.size();
  r.vectors = 0;
  for (const auto& [owner, index] : owners_) {
    r.vectors += index->size();
    if (index->is_ivf()) ++r.ivf_indexes;
    r.segments += index->segments();
  }
  return r;
}

std::shared_ptr<VectorIndex> MemoriesProjection::owner_index(
    std::string_view owner) const {
  std::shared_lock lock(mu_);
  auto it = owners_.find(owner);
  return it == owners_.end() ? nullptr : it->second;
}

void MemoriesProjection::set_owner_index(const std::string& owner,
                                         std::shared_ptr<VectorIndex> index) {
  std::shared_ptr<VectorIndex> old;
  {
    std::unique_lock lock(mu_);
    auto it = owners_.find(owner);
    if (it != owners_.end()) {
      old = std::move(it->second);
      if (index == nullptr) {
        owners_.erase(it);
      } else {
        it->second = std::move(index);
      }
    } else if (index != nullptr) {
      owners_.emplace(owner, std::move(index));
    }
  }
  retire(std::move(old));
}

void MemoriesProjection::retire(std::shared_ptr<VectorIndex> old) {
  if (old != nullptr) retired_.push_back(std::move(old));
  std::erase_if(retired_, [](const std::shared_ptr<VectorIndex>& idx) {
    if (idx.use_count() != 1) return false;
    // Pairs with the release in the last search's reference drop, so its
    // reads happen before the index is freed here.
    std::atomic_thread_fence(std::memory_order_acquire);
    return true;
  });
}

// --- apply ------------------------------------------------------------------

core::result<void> MemoriesProjection::stage_stored(const core::RecordedEvent& e,
                                                    core::ModelStore::Batch& batch) {
  const schema::Aligned payload(e.payload());
  const auto* ev = schema::verified<d::MemoryStored>(payload);
  if (ev == nullptr) {
    return core::make_error(
        core::errc::corruption,
        fmt::format("MemoryStored at {} does not verify", e.position().value()));
  }
  const std::string owner = str(ev->owner());
  const std::string id = str(ev->memory_id());
  auto key = keys_.get(owner);
  if (!key) return key.error();
  // Sealed under a destroyed key: it can never be read again, so it is not
  // in the model (its SubjectForgotten follows in the log).
  if (!key->has_value() || (*key)->generation != ev->key_generation()) return {};
  const core::AeadKey& k = (*key)->key;
  const size_t dims = options_.index.dimensions;

  std::vector<float> vector;
  std::string sealed_vector;
  if (ev->sealed_embedding() != nullptr && ev->sealed_embedding()->size() > 0) {
    auto raw =
        core::aead_open(k, bytes_view(ev->sealed_embedding()), d::memory_embedding_aad(owner, id));
    if (!raw) return raw.error();
    if (raw->size() == dims * sizeof(float)) {
      vector = floats_of(*raw);
      sealed_vector = std::string(bytes_view(ev->sealed_embedding()));
    }
  }
  if (vector.empty()) {
    auto content =
        core::aead_open(k, bytes_view(ev->sealed_content()), d::memory_content_aad(owner, id));
    if (!content) return content.error();
    vector = embedder_->embed(*content);
    ENGRAM_ASSERT(vector.size() == dims);
    // The event id seeds the nonce: a rebuild seals to the same bytes.
    sealed_vector = core::aead_seal(k, e.id().to_string() + "/model-embedding", raw_of(vector),
                                    d::memory_embedding_aad(owner, id));
  }
  normalise(vector);

  std::vector<std::string> tags;
  if (ev->tags()) {
    for (const auto* t : *ev->tags()) tags.push_back(t->str());
  }
  const int64_t stored_at_ms = e.recorded_at_ns() / 1'000'000;
  const json record = {{"importance", ev->importance()},         {"tags", tags},
                       {"stored_at_ms", stored_at_ms},           {"position", e.position().value()},
                       {"key_generation", ev->key_generation()}, {"reinforcements", 0}};
  if (auto r = batch.put(mem_key(owner, id), record.dump()); !r) return r;
  if (auto r = batch.put(txt_key(owner, id), bytes_view(ev->sealed_content())); !r) return r;
  if (auto r = batch.put(vec_key(owner, id), sealed_vector); !r) return r;
  Change c{Change::Kind::upsert, owner, Meta{id, ev->importance(), stored_at_ms, std::move(tags)},
           std::move(vector)};
  staged_.push_back(std::move(c));
  return {};
}

core::result<void> MemoriesProjection::apply(std::span<const core::RecordedEvent> events,
                                             core::ModelStore::Batch& batch) {
  // Written by every batch: idempotent, and a rebuild writes the same.
  if (auto r = batch.put("meta/embedder", embedder_tag()); !r) return r;
  for (const auto& e : events) {
    const schema::Aligned payload(e.payload());
    const std::string_view type = e.type();
    if (type == "MemoryStored") {
      if (auto r = stage_stored(e, batch); !r) return r;
    } else if (type == "MemoryReinforced") {
      const auto* ev = schema::verified<d::MemoryReinforced>(payload);
      if (ev == nullptr) return core::make_error(core::errc::corruption, "bad MemoryReinforced");
      const std::string owner = str(ev->owner());
      const std::string id = str(ev->memory_id());
      auto value = batch.get(mem_key(owner, id));
      if (!value) return value.error();
      if (!value->has_value()) continue;  // skipped (shredded) or forgotten
      auto record = parse_record(mem_key(owner, id), **value);
      if (!record) return record.error();
      (*record)["importance"] = std::min(1.0, ev->importance());
      (*record)["reinforcements"] = record->value("reinforcements", 0) + 1;
      if (auto r = batch.put(mem_key(owner, id), record->dump()); !r) return r;
      staged_.push_back(Change{Change::Kind::update_meta, owner, meta_of(id, *record), {}});
    } else if (type == "MemoryForgotten") {
      const auto* ev = schema::verified<d::MemoryForgotten>(payload);
      if (ev == nullptr) return core::make_error(core::errc::corruption, "bad MemoryForgotten");
      const std::string owner = str(ev->owner());
      const std::string id = str(ev->memory_id());
      for (const auto& key : {mem_key(owner, id), txt_key(owner, id), vec_key(owner, id)}) {
        if (auto r = batch.del(key); !r) return r;
      }
      staged_.push_back(Change{Change::Kind::remove, owner, Meta{id, 0, 0, {}}, {}});
    } else if (type == "SubjectForgotten") {
      const auto* ev = schema::verified<d::SubjectForgotten>(payload);
      if (ev == nullptr) return core::make_error(core::errc::corruption, "bad SubjectForgotten");
      const std::string owner = str(ev->owner());
      const std::string prefix = fmt::format("mem/{}/", owner);
      std::string from;
      for (;;) {
        auto page = batch.scan(prefix, from, kScanPage);
        if (!page) return page.error();
        for (const auto& [key, value] : *page) {
          const std::string id = key.substr(prefix.size());
          for (const auto& k : {mem_key(owner, id), txt_key(owner, id), vec_key(owner, id)}) {
            if (auto r = batch.del(k); !r) return r;
          }
        }
        if (page->size() < kScanPage) break;
        from = page->back().first + '\0';
      }
      staged_.push_back(Change{Change::Kind::drop_owner, owner, {}, {}});
    }
  }
  return {};
}

// --- the in-memory index ----------------------------------------------------

core::result<void> MemoriesProjection::apply_changes(std::vector<Change>& changes) {
  // On the worker's thread. The changes are folded into the final state of
  // each memory they touch, per owner, so that each owner's index gets one
  // removal and one add: FAISS pays a parallel region and a coarse
  // assignment per add call, about 0.4 ms, which one-vector adds would pay
  // per memory.
  struct Plan {
    bool drop = false;  // SubjectForgotten: what the owner had before is gone
    std::unordered_map<int64_t, size_t> last;  // vector id -> index in `changes`
  };
  std::map<std::string, Plan, std::less<>> plans;
  for (size_t i = 0; i < changes.size(); ++i) {
    Change& c = changes[i];
    Plan& plan = plans[c.owner];
    if (c.kind == Change::Kind::drop_owner) {
      plan.drop = true;
      plan.last.clear();
      continue;
    }
    const int64_t vid = vector_id(c.meta.memory_id);
    auto [it, fresh] = plan.last.emplace(vid, i);
    if (fresh) continue;
    Change& before = changes[it->second];
    if (before.meta.memory_id != c.meta.memory_id) {
      return core::make_error(core::errc::internal,
                              fmt::format("memories {} and {} of {} share vector id {}",
                                          before.meta.memory_id, c.meta.memory_id, c.owner, vid));
    }
    if (c.kind != Change::Kind::update_meta) {
      it->second = i;
    } else if (before.kind != Change::Kind::remove) {
      before.meta = std::move(c.meta);  // a stored or updated memory's new Meta
    }
  }

  for (auto& [owner, plan] : plans) {
    std::shared_ptr<VectorIndex> index = owner_index(owner);
    if (plan.drop && index != nullptr) {
      set_owner_index(owner, nullptr);
      index = nullptr;
    }
    std::vector<int64_t> removed;
    std::vector<int64_t> ids;
    std::vector<float> vectors;
    std::vector<Payload> metas;
    std::vector<int64_t> updated;
    std::vector<Payload> updated_metas;
    for (auto& [vid, i] : plan.last) {
      Change& c = changes[i];
      if (c.kind == Change::Kind::remove) {
        removed.push_back(vid);
      } else if (c.kind == Change::Kind::upsert) {
        ids.push_back(vid);
        vectors.insert(vectors.end(), c.vector.begin(), c.vector.end());
        metas.push_back(std::make_shared<const Meta>(std::move(c.meta)));
      } else if (c.kind == Change::Kind::update_meta) {
        updated.push_back(vid);
        updated_metas.push_back(std::make_shared<const Meta>(std::move(c.meta)));
      }
    }
    const bool fresh = index == nullptr;
    if (fresh) {
      if (ids.empty()) continue;  // nothing to add for an owner without memories
      index = std::make_shared<VectorIndex>(options_.index);
    }
    for (size_t i = 0; i < ids.size(); ++i) {
      const std::string& id = meta_of(metas[i]).memory_id;
      const Payload held = index->payload(ids[i]);
      if (held != nullptr && meta_of(held).memory_id != id) {
        return core::make_error(
            core::errc::internal,
            fmt::format("memory {} of {} shares its vector id {} with {}", id, owner, ids[i],
                        meta_of(held).memory_id));
      }
    }
    // Each call builds the next version (FAISS's work included) beside the
    // one searches read, and publishes it.
    if (!removed.empty()) index->remove_many(removed);
    if (!ids.empty()) {
      if (auto r = index->upsert_many(ids, vectors, metas); !r) return r;
    }
    if (!updated.empty()) index->set_payloads(updated, updated_metas);
    if (index->size() == 0) {
      if (!fresh) set_owner_index(owner, nullptr);
    } else if (fresh) {
      set_owner_index(owner, std::move(index));
    }
  }
  return {};
}

core::result<void> MemoriesProjection::committed(const core::ModelStore& store,
                                                 core::Position position) {
  (void)store;
  for (const auto& c : staged_) {
    if (c.kind == Change::Kind::drop_owner) forgotten_since_snapshot_ = true;
  }
  const size_t staged = staged_.size();
  if (auto r = apply_changes(staged_); !r) {
    // The index is now partly ahead of the store: never snapshot it.
    index_broken_ = true;
    staged_.clear();
    return r;
  }
  changes_since_snapshot_ += staged;
  retire(nullptr);  // frees dropped owners that searches held at the drop
  staged_.clear();
  const int64_t now = unix_ms_now();
  const bool due =
      changes_since_snapshot_ >= options_.snapshot_every_changes &&
      now - last_snapshot_ms_ >= static_cast<int64_t>(options_.snapshot_min_interval_ms);
  if (forgotten_since_snapshot_ || due) return write_snapshot(position);
  return {};
}

void MemoriesProjection::close(const core::ModelStore& store) {
  if (index_broken_ || (changes_since_snapshot_ == 0 && !forgotten_since_snapshot_)) return;
  // Best effort: a failed snapshot costs a longer start, nothing else.
  (void)write_snapshot(store.checkpoint());
}

core::result<std::vector<MemoriesProjection::Candidate>> MemoriesProjection::nearest(
    const std::string& owner, std::span<const float> vector, size_t k,
    const std::function<bool(const Meta&)>& keep) const {
  std::vector<Candidate> out;
  // Held until the search ends, even if the owner is dropped meanwhile.
  const std::shared_ptr<const VectorIndex> index = owner_index(owner);
  if (index == nullptr) return out;
  VectorIndex::Keep by_meta;
  if (keep) {
    by_meta = [&](int64_t, const Payload& p) { return p != nullptr && keep(meta_of(p)); };
  }
  auto hits = index->search(vector, k, by_meta);
  if (!hits) return hits.error();
  for (const auto& h : *hits) {
    if (h.payload != nullptr) out.push_back(Candidate{meta_of(h.payload), h.score});
  }
  return out;
}

// --- open, refresh, snapshots ----------------------------------------------

core::result<void> MemoriesProjection::load_owner_from_store(const core::ModelStore& store,
                                                             const std::string& owner) {
  auto key = keys_.get(owner);
  if (!key) return key.error();
  if (!key->has_value()) {
    set_owner_index(owner, nullptr);
    return {};
  }
  const std::string prefix = fmt::format("mem/{}/", owner);
  auto index = std::make_shared<VectorIndex>(options_.index);
  std::string from;
  std::vector<int64_t> ids;
  std::vector<float> vectors;
  std::vector<Payload> metas;
  for (;;) {
    auto page = store.scan(prefix, from, kScanPage);
    if (!page) return page.error();
    ids.clear();
    vectors.clear();
    metas.clear();
    for (const auto& [k, value] : *page) {
      const std::string id = k.substr(prefix.size());
      auto record = parse_record(k, value);
      if (!record) return record.error();
      if (record->value("key_generation", uint64_t{0}) != (*key)->generation) continue;
      auto sealed = store.get(vec_key(owner, id));
      if (!sealed) return sealed.error();
      if (!sealed->has_value()) {
        return core::make_error(core::errc::corruption,
                                fmt::format("memories: {} has no vector", k));
      }
      auto raw = core::aead_open((*key)->key, **sealed, d::memory_embedding_aad(owner, id));
      if (!raw) return raw.error();
      if (raw->size() != options_.index.dimensions * sizeof(float)) {
        return core::make_error(
            core::errc::corruption,
            fmt::format("memories: the vector of {} has {} bytes", k, raw->size()));
      }
      std::vector<float> v = floats_of(*raw);
      normalise(v);
      const int64_t vid = vector_id(id);
      ids.push_back(vid);
      vectors.insert(vectors.end(), v.begin(), v.end());
      metas.push_back(std::make_shared<const Meta>(meta_of(id, *record)));
    }
    if (auto r = index->upsert_many(ids, vectors, metas); !r) return r;
    if (page->size() < kScanPage) break;
    from = page->back().first + '\0';
  }
  set_owner_index(owner, index->size() == 0 ? nullptr : std::move(index));
  return {};
}

core::result<void> MemoriesProjection::rebuild_from_store(const core::ModelStore& store) {
  std::map<std::string, std::shared_ptr<VectorIndex>, std::less<>> old;
  {
    std::unique_lock lock(mu_);
    old.swap(owners_);
  }
  for (auto& [owner, idx] : old) retire(std::move(idx));
  // Owners one at a time: mem/<owner>/ ranges are contiguous, so after an
  // owner is loaded the scan skips past its whole range.
  std::string from;
  for (;;) {
    auto first = store.scan("mem/", from, 1);
    if (!first) return first.error();
    if (first->empty()) break;
    const std::string& key = first->front().first;
    const size_t slash = key.find('/', 4);
    if (slash == std::string::npos) {
      return core::make_error(core::errc::corruption, fmt::format("memories: bad key {}", key));
    }
    const std::string owner = key.substr(4, slash - 4);
    if (auto r = load_owner_from_store(store, owner); !r) return r;
    from = fmt::format("mem/{}0", owner);  // '0' follows '/'
  }
  std::unique_lock lock(mu_);
  report_.rebuilt_from_store = true;
  return {};
}

core::result<void> MemoriesProjection::write_snapshot(core::Position position) {
  std::string out;
  out.append(kSnapshotMagic);
  {
    std::shared_lock lock(mu_);
    put_u64(out, position.value());
    put_str(out, embedder_tag());
    put_u64(out, owners_.size());
    for (const auto& [owner, index] : owners_) {
      put_str(out, owner);
      put_u64(out, index->size());
      index->for_each([&](int64_t vid, const Payload& p) {
        const Meta& m = meta_of(p);
        put_u64(out, static_cast<uint64_t>(vid));
        put_str(out, m.memory_id);
        put_f64(out, m.importance);
        put_u64(out, static_cast<uint64_t>(m.stored_at_ms));
        put_u32(out, static_cast<uint32_t>(m.tags.size()));
        for (const auto& t : m.tags) put_str(out, t);
      });
      // Named, not captured as the binding: clang 14 (the fuzz build) cannot
      // capture a structured binding.
      const VectorIndex& vectors = *index;
      put_sized(out, [&vectors](std::string& o) { vectors.serialize(o); });
    }
  }
  core::Sha256 h;
  h.update(out);
  const core::Hash256 digest = h.finish();
  out.append(reinterpret_cast<const char*>(digest.data()), digest.size());
  if (auto r = write_file_atomically(dir_ / kSnapshotFile, out); !r) return r;
  changes_since_snapshot_ = 0;
  forgotten_since_snapshot_ = false;
  last_snapshot_ms_ = unix_ms_now();
  std::unique_lock lock(mu_);
  ++report_.snapshots_written;
  return {};
}

core::result<core::Position> MemoriesProjection::read_snapshot() {
  const std::filesystem::path path = dir_ / kSnapshotFile;
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return core::make_error(core::errc::not_found, "no snapshot");
  // One sized read: a character iterator costs about a second per 400 MB.
  std::string bytes(static_cast<size_t>(in.tellg()), '\0');
  in.seekg(0);
  if (!in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()))) {
    return core::make_error(core::errc::io_error, fmt::format("reading {}", path.string()));
  }
  if (bytes.size() < kSnapshotMagic.size() + kHashBytes ||
      std::string_view(bytes).substr(0, kSnapshotMagic.size()) != kSnapshotMagic) {
    return core::make_error(core::errc::corruption, "not a memories snapshot");
  }
  const std::string_view body(bytes.data(), bytes.size() - kHashBytes);
  core::Sha256 h;
  h.update(body);
  const core::Hash256 digest = h.finish();
  if (std::memcmp(digest.data(), bytes.data() + body.size(), kHashBytes) != 0) {
    return core::make_error(core::errc::corruption, "the snapshot's checksum does not match");
  }
  SnapshotReader r{body, kSnapshotMagic.size()};
  const core::Position position(r.num<uint64_t>());
  if (r.str() != embedder_tag()) {
    return core::make_error(core::errc::corruption, "the snapshot was made by another embedder");
  }
  std::map<std::string, std::shared_ptr<VectorIndex>, std::less<>> owners;
  const uint64_t owner_count = r.num<uint64_t>();
  for (uint64_t i = 0; i < owner_count && r.ok; ++i) {
    const std::string owner(r.str());
    std::unordered_map<int64_t, Payload> metas_by_id;
    const uint64_t metas = r.num<uint64_t>();
    for (uint64_t j = 0; j < metas && r.ok; ++j) {
      const auto vid = static_cast<int64_t>(r.num<uint64_t>());
      Meta m;
      m.memory_id = std::string(r.str());
      m.importance = r.num<double>();
      m.stored_at_ms = static_cast<int64_t>(r.num<uint64_t>());
      const uint32_t tags = r.num<uint32_t>();
      for (uint32_t t = 0; t < tags && r.ok; ++t) m.tags.emplace_back(r.str());
      metas_by_id.emplace(vid, std::make_shared<const Meta>(std::move(m)));
    }
    const std::string_view index_bytes = r.bytes(r.num<uint64_t>());
    if (!r.ok) break;
    auto index = VectorIndex::deserialize(index_bytes, options_.index, [&](int64_t vid) {
      auto it = metas_by_id.find(vid);
      return it == metas_by_id.end() ? nullptr : it->second;
    });
    if (!index) return index.error();
    if ((*index)->size() != metas_by_id.size()) {
      return core::make_error(core::errc::corruption,
                              fmt::format("the snapshot's index of {} holds {} vectors for {} "
                                          "memories",
                                          owner, (*index)->size(), metas_by_id.size()));
    }
    owners.emplace(owner, std::move(*index));
  }
  if (!r.ok || r.at != body.size()) {
    return core::make_error(core::errc::corruption, "the snapshot is truncated or malformed");
  }
  {
    std::unique_lock lock(mu_);
    owners_.swap(owners);
  }
  for (auto& [owner, idx] : owners) retire(std::move(idx));
  return position;
}

core::result<core::Position> MemoriesProjection::open(const core::ModelStore& store,
                                                      const std::filesystem::path& dir) {
  dir_ = dir;
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) {
    return core::make_error(core::errc::io_error,
                            fmt::format("creating {}: {}", dir_.string(), ec.message()));
  }
  auto tag = store.get("meta/embedder");
  if (!tag) return tag.error();
  if (tag->has_value() && **tag != embedder_tag()) {
    return core::make_error(
        core::errc::invalid_argument,
        fmt::format("the memories model was built with embedder {} but this server embeds with "
                    "{}: a new version of the projection must rebuild it",
                    **tag, embedder_tag()));
  }
  auto snap = read_snapshot();
  if (snap && *snap <= store.checkpoint()) {
    std::unique_lock lock(mu_);
    report_.snapshot_loaded = true;
    report_.snapshot_position = *snap;
    core::logging::write(core::logging::Level::info, "memories index loaded from its snapshot",
                         {{"store", store.name()},
                          {"snapshot_position", snap->value()},
                          {"checkpoint", store.checkpoint().value()}});
    return *snap;
  }
  {
    std::unique_lock lock(mu_);
    report_.snapshot_problem =
        snap ? fmt::format("the snapshot is at {}, past the store's checkpoint {}", snap->value(),
                           store.checkpoint().value())
             : snap.error().message;
  }
  if (auto r = rebuild_from_store(store); !r) return r.error();
  core::logging::write(core::logging::Level::info, "memories index rebuilt from the store",
                       {{"store", store.name()},
                        {"checkpoint", store.checkpoint().value()},
                        {"why", report_.snapshot_problem}});
  return store.checkpoint();
}

core::result<void> MemoriesProjection::refresh(std::span<const core::RecordedEvent> events,
                                               const core::ModelStore& store) {
  // The store is past these events: re-read what they touched from it.
  std::set<std::string> owners;
  std::set<std::pair<std::string, std::string>> memories;
  for (const auto& e : events) {
    const schema::Aligned payload(e.payload());
    const std::string_view type = e.type();
    if (type == "SubjectForgotten") {
      if (const auto* ev = schema::verified<d::SubjectForgotten>(payload)) {
        owners.insert(str(ev->owner()));
      }
    } else if (type == "MemoryStored") {
      if (const auto* ev = schema::verified<d::MemoryStored>(payload)) {
        memories.emplace(str(ev->owner()), str(ev->memory_id()));
      }
    } else if (type == "MemoryReinforced") {
      if (const auto* ev = schema::verified<d::MemoryReinforced>(payload)) {
        memories.emplace(str(ev->owner()), str(ev->memory_id()));
      }
    } else if (type == "MemoryForgotten") {
      if (const auto* ev = schema::verified<d::MemoryForgotten>(payload)) {
        memories.emplace(str(ev->owner()), str(ev->memory_id()));
      }
    }
  }
  {
    std::unique_lock lock(mu_);
    report_.tail_events += events.size();
  }
  for (const auto& owner : owners) {
    if (auto r = load_owner_from_store(store, owner); !r) return r;
    forgotten_since_snapshot_ = true;
  }
  std::vector<Change> changes;
  for (const auto& [owner, id] : memories) {
    if (owners.count(owner) > 0) continue;  // reloaded whole
    ++changes_since_snapshot_;
    auto value = store.get(mem_key(owner, id));
    if (!value) return value.error();
    Change c{Change::Kind::remove, owner, Meta{id, 0, 0, {}}, {}};
    if (value->has_value()) {
      auto record = parse_record(mem_key(owner, id), **value);
      if (!record) return record.error();
      auto key = keys_.get(owner);
      if (!key) return key.error();
      auto sealed = store.get(vec_key(owner, id));
      if (!sealed) return sealed.error();
      if (key->has_value() && sealed->has_value()) {
        auto raw = core::aead_open((*key)->key, **sealed, d::memory_embedding_aad(owner, id));
        if (raw && raw->size() == options_.index.dimensions * sizeof(float)) {
          c.kind = Change::Kind::upsert;
          c.vector = floats_of(*raw);
          normalise(c.vector);
          c.meta = meta_of(id, *record);
        }
      }
    }
    changes.push_back(std::move(c));
  }
  return apply_changes(changes);
}

// --- search -----------------------------------------------------------------

core::result<std::vector<MemoryHit>> search_memories(const MemoriesProjection& projection,
                                                     const core::ModelStore& store,
                                                     const MemoryQuery& q) {
  core::expect_may_block("a memory search");
  auto bad = [](std::string why) { return core::make_error(core::errc::invalid_argument, why); };
  if (q.text.has_value() == q.vector.has_value()) return bad("give exactly one of text and vector");
  if (q.k == 0 || q.k > kMemoryMaxK) return bad(fmt::format("k must be 1..{}", kMemoryMaxK));
  if (q.tags.size() > kMemoryMaxTags) return bad(fmt::format("at most {} tags", kMemoryMaxTags));
  std::vector<float> query;
  if (q.text) {
    if (q.text->empty()) return bad("text is empty");
    if (q.text->size() > kMemoryMaxTextBytes) {
      return bad(fmt::format("text is over {} bytes", kMemoryMaxTextBytes));
    }
    query = projection.embedder().embed(*q.text);
  } else {
    query = *q.vector;
    if (query.size() != projection.dimensions()) {
      return bad(fmt::format("the vector has {} dimensions; the index has {}", query.size(),
                             projection.dimensions()));
    }
    double sum = 0;
    for (float x : query) {
      if (!std::isfinite(x)) return bad("the vector has a value that is not finite");
      sum += static_cast<double>(x) * x;
    }
    if (sum == 0) return bad("the vector is all zeros");
  }
  normalise(query);

  auto keep = [&](const MemoriesProjection::Meta& m) {
    if (m.importance < q.min_importance) return false;
    for (const auto& t : q.tags) {
      if (std::find(m.tags.begin(), m.tags.end(), t) == m.tags.end()) return false;
    }
    return true;
  };
  const bool filtered = !q.tags.empty() || q.min_importance > 0;
  auto candidates =
      projection.nearest(q.owner, query, std::max(q.k, kMemoryCandidates),
                         filtered ? std::function<bool(const MemoriesProjection::Meta&)>(keep)
                                  : std::function<bool(const MemoriesProjection::Meta&)>());
  if (!candidates) return candidates.error();

  std::vector<MemoryHit> ranked;
  for (auto& c : *candidates) {
    MemoryHit h;
    h.memory_id = c.meta.memory_id;
    h.importance = c.meta.importance;
    h.tags = c.meta.tags;
    h.stored_at_ms = c.meta.stored_at_ms;
    h.similarity = c.similarity;
    const double age_ms = static_cast<double>(std::max<int64_t>(0, q.now_ms - h.stored_at_ms));
    h.recency = std::exp2(-age_ms / static_cast<double>(kMemoryRecencyHalfLifeMs));
    h.score = kMemoryWeightSimilarity * h.similarity + kMemoryWeightImportance * h.importance +
              kMemoryWeightRecency * h.recency;
    ranked.push_back(std::move(h));
  }
  std::sort(ranked.begin(), ranked.end(), [](const MemoryHit& a, const MemoryHit& b) {
    return a.score != b.score ? a.score > b.score : a.memory_id < b.memory_id;
  });
  if (ranked.size() > q.k) ranked.resize(q.k);

  auto key = projection.keys().get(q.owner);
  if (!key) return key.error();
  std::vector<MemoryHit> out;
  if (!key->has_value()) return out;  // forgotten while we searched
  for (auto& h : ranked) {
    auto sealed = store.get(txt_key(q.owner, h.memory_id));
    if (!sealed) return sealed.error();
    if (!sealed->has_value()) continue;  // forgotten while we searched
    auto content =
        core::aead_open((*key)->key, **sealed, d::memory_content_aad(q.owner, h.memory_id));
    if (!content) continue;  // sealed under a generation since destroyed
    h.content = std::move(*content);
    out.push_back(std::move(h));
  }
  return out;
}

}  // namespace engram::projections
