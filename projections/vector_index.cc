#include "projections/vector_index.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/impl/io.h>
#include <faiss/index_io.h>
#include <faiss/invlists/InvertedLists.h>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>
#include <unordered_set>

#include "core/assert.h"
#include "core/sha256.h"
#include "projections/snapshot_bytes.h"

namespace engram::projections {
namespace {

using idx_t = faiss::Index::idx_t;
using IdSet = std::unordered_set<int64_t>;
using Payload = VectorIndex::Payload;
using PayloadMap = std::unordered_map<int64_t, Payload>;

// k-means wants at least this many training points per list; fewer make
// empty or degenerate lists (FAISS warns below 39).
constexpr size_t kMinPointsPerList = 39;
constexpr int kKmeansSeed = 1234;  // reproducible lists for a given content
constexpr std::string_view kMagic = "ENGRAM-VECIDX-01";  // 16 bytes

// The centroids of the exact regime: one list whose centroid is the zero
// vector, so every vector lands in it and a search scans them all. One
// index type keeps ids, removal and snapshots the same in both regimes.
std::shared_ptr<faiss::IndexFlatIP> zero_centroid(size_t dimensions) {
  auto q = std::make_shared<faiss::IndexFlatIP>(static_cast<idx_t>(dimensions));
  const std::vector<float> zero(dimensions, 0.0f);
  q->add(1, zero.data());
  return q;
}

const std::shared_ptr<const IdSet>& no_ids() {
  static const auto none = std::make_shared<const IdSet>();
  return none;
}

const std::shared_ptr<const PayloadMap>& no_payloads() {
  static const auto none = std::make_shared<const PayloadMap>();
  return none;
}

// Overrides set since the segments' payloads were written, folded into
// them past this many (or live / kOverridesPerLive).
constexpr size_t kMinOverrides = 256;
constexpr size_t kOverridesPerLive = 32;

faiss::ArrayInvertedLists& lists_of(faiss::IndexIVFFlat& ivf) {
  auto* lists = dynamic_cast<faiss::ArrayInvertedLists*>(ivf.invlists);
  ENGRAM_ASSERT(lists != nullptr);
  return *lists;
}

core::Error faiss_error(const char* what, const std::exception& e) {
  return core::make_error(core::errc::internal, fmt::format("FAISS {}: {}", what, e.what()));
}

struct StringWriter final : faiss::IOWriter {
  explicit StringWriter(std::string& o) : out(o) {}
  size_t operator()(const void* ptr, size_t size, size_t nitems) override {
    out.append(static_cast<const char*>(ptr), size * nitems);
    return nitems;
  }
  std::string& out;
};

struct ViewReader final : faiss::IOReader {
  explicit ViewReader(std::string_view b) : bytes(b) {}
  size_t operator()(void* ptr, size_t size, size_t nitems) override {
    if (size == 0) return nitems;
    const size_t n = std::min(nitems, (bytes.size() - at) / size);
    if (n == 0) return 0;  // FAISS reads empty vectors into a null data()
    std::memcpy(ptr, bytes.data() + at, n * size);
    at += n * size;
    return n;
  }
  std::string_view bytes;
  size_t at = 0;
};

// FAISS's bytes of `index`, after their length.
void put_index(std::string& out, const faiss::Index& index) {
  put_sized(out, [&](std::string& o) {
    StringWriter writer(o);
    faiss::write_index(&index, &writer);
  });
}

size_t tier_of(size_t live) {
  size_t tier = 0;
  for (; live >= VectorIndex::kMergeFanIn; live /= VectorIndex::kMergeFanIn) ++tier;
  return tier;
}

}  // namespace

// An IVF-Flat index over the version's centroids; immutable once published.
struct VectorIndex::Segment {
  uint64_t uid = 0;
  std::shared_ptr<faiss::IndexFlatIP> centroids;  // declared first: outlives ivf
  std::unique_ptr<faiss::IndexIVFFlat> ivf;
};

struct VectorIndex::Part {
  std::shared_ptr<const Segment> segment;
  std::shared_ptr<const PayloadMap> payloads = no_payloads();  // by id, of its rows
  std::shared_ptr<const IdSet> dead = no_ids();  // rows of `segment` no longer live
  size_t rows() const { return static_cast<size_t>(segment->ivf->ntotal); }
  size_t live() const { return rows() - dead->size(); }
};

struct VectorIndex::Version {
  std::shared_ptr<faiss::IndexFlatIP> centroids;  // nlist rows; searched, never changed
  size_t nlist = 1;
  std::vector<Part> parts;
  // Payloads set since their parts' were written; they win over those.
  std::shared_ptr<const PayloadMap> overrides = no_payloads();
  size_t live = 0;

  // A reference, not a copy: a filtered search asks for every row it scans,
  // and copying would touch the payloads' shared counts each time.
  const Payload& payload_of(const Part& part, int64_t id) const {
    static const Payload none;
    if (!overrides->empty()) {
      if (auto o = overrides->find(id); o != overrides->end()) return o->second;
    }
    auto p = part.payloads->find(id);
    return p == part.payloads->end() ? none : p->second;
  }
};

namespace {

// An empty segment over `centroids`, ready for adds.
template <typename Segment>
std::shared_ptr<Segment> new_segment(uint64_t uid, std::shared_ptr<faiss::IndexFlatIP> centroids,
                                     size_t dimensions, size_t nlist) {
  auto s = std::make_shared<Segment>();
  s->uid = uid;
  s->centroids = std::move(centroids);
  // own_fields stays false: the centroids belong to the version.
  s->ivf = std::make_unique<faiss::IndexIVFFlat>(s->centroids.get(), dimensions, nlist,
                                                 faiss::METRIC_INNER_PRODUCT);
  ENGRAM_ASSERT(s->ivf->is_trained);
  return s;
}

// A part's rows that are live and that the caller keeps.
template <typename Version, typename Part>
struct LiveSelector final : faiss::IDSelector {
  LiveSelector(const Version& v, const Part& p, const VectorIndex::Keep& k)
      : version(v), part(p), keep(k) {}
  bool is_member(idx_t id) const override {
    if (!part.dead->empty() && part.dead->count(id) > 0) return false;
    return !keep || keep(id, version.payload_of(part, id));
  }
  const Version& version;
  const Part& part;
  const VectorIndex::Keep& keep;
};

}  // namespace

int64_t vector_id(std::string_view key) {
  core::Sha256 h;
  h.update(key);
  const core::Hash256 d = h.finish();
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | d[static_cast<size_t>(i)];
  return static_cast<int64_t>(v >> 1);
}

VectorIndex::VectorIndex(Options options) : options_(std::move(options)) {
  ENGRAM_ASSERT(options_.dimensions > 0 && options_.dimensions <= kMaxDimensions);
  ENGRAM_ASSERT(options_.nlist >= 1 && options_.nprobe >= 1);
  ENGRAM_ASSERT(options_.merge_max_vectors >= kMergeFanIn);
  auto empty = std::make_shared<Version>();
  empty->centroids = zero_centroid(options_.dimensions);
  current_ = std::move(empty);
}

VectorIndex::~VectorIndex() = default;

std::shared_ptr<const VectorIndex::Version> VectorIndex::current() const {
  std::lock_guard lock(current_mu_);
  return current_;
}

void VectorIndex::publish(std::shared_ptr<const Version> next, std::string_view work) {
  if (options_.before_publish) options_.before_publish(work);
  {
    std::lock_guard lock(current_mu_);
    current_.swap(next);
  }
  // `next` is now the replaced version. Whatever of it no search holds is
  // freed here, on the writer's thread; the rest at a later publish.
  retired_.push_back(std::move(next));
  std::erase_if(retired_, [](const std::shared_ptr<const Version>& v) {
    if (v.use_count() != 1) return false;
    // Pairs with the release in the last search's reference drop, so its
    // reads of the segments happen before they are freed here.
    std::atomic_thread_fence(std::memory_order_acquire);
    return true;
  });
}

size_t VectorIndex::size() const {
  return current()->live;
}

bool VectorIndex::is_ivf() const {
  return current()->nlist > 1;
}

size_t VectorIndex::segments() const {
  return current()->parts.size();
}

size_t VectorIndex::part_of(const Version& version, int64_t id) const {
  const uint64_t uid = where_.at(id);
  for (size_t i = 0; i < version.parts.size(); ++i) {
    if (version.parts[i].segment->uid == uid) return i;
  }
  ENGRAM_ASSERT_MSG(false, "a live id's segment is not in the current version");
  return 0;
}

namespace {

// `overrides` without `ids` (the same map when none of them is there).
std::shared_ptr<const PayloadMap> without(const std::shared_ptr<const PayloadMap>& overrides,
                                          std::span<const int64_t> ids) {
  if (overrides->empty()) return overrides;
  std::shared_ptr<PayloadMap> out;
  for (int64_t id : ids) {
    if ((out ? out->count(id) : overrides->count(id)) == 0) continue;
    if (!out) out = std::make_shared<PayloadMap>(*overrides);
    out->erase(id);
  }
  if (!out) return overrides;
  return out;
}

}  // namespace

size_t VectorIndex::mark_dead(Version& next, std::span<const int64_t> ids) const {
  std::unordered_map<uint64_t, std::vector<int64_t>> by_segment;
  IdSet seen;
  size_t marked = 0;
  for (int64_t id : ids) {
    auto w = where_.find(id);
    if (w == where_.end() || !seen.insert(id).second) continue;
    by_segment[w->second].push_back(id);
    ++marked;
  }
  if (marked == 0) return 0;
  for (auto& part : next.parts) {
    auto it = by_segment.find(part.segment->uid);
    if (it == by_segment.end()) continue;
    auto dead = std::make_shared<IdSet>(*part.dead);
    dead->insert(it->second.begin(), it->second.end());
    part.dead = std::move(dead);
  }
  next.overrides = without(next.overrides, ids);
  next.live -= marked;
  return marked;
}

core::result<void> VectorIndex::upsert(int64_t id, std::span<const float> vector,
                                       Payload payload) {
  if (payload == nullptr) return upsert_many(std::span<const int64_t>(&id, 1), vector);
  return upsert_many(std::span<const int64_t>(&id, 1), vector,
                     std::span<const Payload>(&payload, 1));
}

core::result<void> VectorIndex::upsert_many(std::span<const int64_t> ids,
                                            std::span<const float> vectors,
                                            std::span<const Payload> payloads) {
  if (vectors.size() != ids.size() * options_.dimensions) {
    return core::make_error(
        core::errc::invalid_argument,
        fmt::format("{} vectors of {} dimensions need {} values, got {}", ids.size(),
                    options_.dimensions, ids.size() * options_.dimensions, vectors.size()));
  }
  if (!payloads.empty() && payloads.size() != ids.size()) {
    return core::make_error(core::errc::invalid_argument,
                            fmt::format("{} ids need {} payloads or none, got {}", ids.size(),
                                        ids.size(), payloads.size()));
  }
  if (ids.empty()) return {};
  std::lock_guard write(write_mu_);
  // A repeated id within `ids` keeps its last vector: drop earlier copies.
  std::unordered_map<int64_t, size_t> last;
  for (size_t i = 0; i < ids.size(); ++i) last[ids[i]] = i;
  std::vector<idx_t> add_ids;
  std::vector<float> add_vectors;
  auto added_payloads = std::make_shared<PayloadMap>();
  add_ids.reserve(last.size());
  add_vectors.reserve(last.size() * options_.dimensions);
  for (size_t i = 0; i < ids.size(); ++i) {
    if (last[ids[i]] != i) continue;
    add_ids.push_back(ids[i]);
    const float* v = vectors.data() + i * options_.dimensions;
    add_vectors.insert(add_vectors.end(), v, v + options_.dimensions);
    if (!payloads.empty() && payloads[i] != nullptr) added_payloads->emplace(ids[i], payloads[i]);
  }
  const auto cur = current();
  std::shared_ptr<Segment> segment;
  try {
    // FAISS's add (the coarse assignment) into a segment nobody searches yet.
    segment = new_segment<Segment>(next_uid_++, cur->centroids, options_.dimensions, cur->nlist);
    segment->ivf->add_with_ids(static_cast<idx_t>(add_ids.size()), add_vectors.data(),
                               add_ids.data());
  } catch (const std::exception& e) {
    return faiss_error("add", e);
  }
  auto next = std::make_shared<Version>(*cur);
  mark_dead(*next, add_ids);  // replaced vectors
  next->parts.push_back(Part{segment, std::move(added_payloads), no_ids()});
  next->live += add_ids.size();
  publish(std::move(next), "add");
  for (int64_t id : add_ids) where_[id] = segment->uid;
  return maintain(true);
}

void VectorIndex::set_payloads(std::span<const int64_t> ids, std::span<const Payload> payloads) {
  ENGRAM_ASSERT(ids.size() == payloads.size());
  std::lock_guard write(write_mu_);
  const auto cur = current();
  std::shared_ptr<PayloadMap> overrides;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (where_.count(ids[i]) == 0) continue;
    if (!overrides) overrides = std::make_shared<PayloadMap>(*cur->overrides);
    (*overrides)[ids[i]] = payloads[i];
  }
  if (!overrides) return;
  auto next = std::make_shared<Version>(*cur);
  next->overrides = std::move(overrides);
  publish(std::move(next), "payload");
  if (current()->overrides->size() > std::max(kMinOverrides, cur->live / kOverridesPerLive)) {
    fold_overrides();
  }
}

void VectorIndex::fold_overrides() {
  const auto cur = current();
  std::unordered_map<size_t, std::vector<int64_t>> by_part;
  for (const auto& [id, payload] : *cur->overrides) by_part[part_of(*cur, id)].push_back(id);
  auto next = std::make_shared<Version>(*cur);
  for (const auto& [i, ids] : by_part) {
    Part& part = next->parts[i];
    auto payloads = std::make_shared<PayloadMap>(*part.payloads);
    for (int64_t id : ids) (*payloads)[id] = cur->overrides->at(id);
    part.payloads = std::move(payloads);
  }
  next->overrides = no_payloads();
  publish(std::move(next), "payload");
}

void VectorIndex::remove(int64_t id) {
  remove_many(std::span<const int64_t>(&id, 1));
}

void VectorIndex::remove_many(std::span<const int64_t> ids) {
  std::lock_guard write(write_mu_);
  auto next = std::make_shared<Version>(*current());
  if (mark_dead(*next, ids) == 0) return;
  publish(std::move(next), "remove");
  for (int64_t id : ids) where_.erase(id);
  // Removal never grows the index: no retraining, so no FAISS call that
  // can fail (compactions and merges only copy rows).
  auto r = maintain(false);
  ENGRAM_ASSERT(r.has_value());
}

void VectorIndex::clear() {
  std::lock_guard write(write_mu_);
  auto empty = std::make_shared<Version>();
  empty->centroids = zero_centroid(options_.dimensions);
  publish(std::move(empty), "clear");
  where_.clear();
}

bool VectorIndex::contains(int64_t id) const {
  std::lock_guard write(write_mu_);
  return where_.count(id) > 0;
}

VectorIndex::Payload VectorIndex::payload(int64_t id) const {
  std::lock_guard write(write_mu_);
  if (where_.count(id) == 0) return nullptr;
  const auto cur = current();
  return cur->payload_of(cur->parts[part_of(*cur, id)], id);
}

void VectorIndex::for_each(const std::function<void(int64_t, const Payload&)>& f) const {
  const auto cur = current();
  for (const Part& p : cur->parts) {
    for (const auto& ids : lists_of(*p.segment->ivf).ids) {
      for (idx_t id : ids) {
        if (p.dead->count(id) == 0) f(id, cur->payload_of(p, id));
      }
    }
  }
}

core::result<void> VectorIndex::maintain(bool may_retrain) {
  for (;;) {
    const auto cur = current();
    if (may_retrain && cur->live >= options_.ivf_min_vectors) {
      const size_t target =
          std::min(options_.nlist, std::max<size_t>(1, cur->live / kMinPointsPerList));
      // Only when the list count would at least double: each retrain
      // re-adds every vector, so doubling keeps the total work linear.
      if (target >= 2 * cur->nlist) {
        if (auto r = retrain(target); !r) return r;
        continue;
      }
    }
    // A part more than a quarter dead is rewritten without its dead rows
    // (dropped when none is left).
    bool compacted = false;
    for (size_t i = 0; i < cur->parts.size() && !compacted; ++i) {
      const Part& p = cur->parts[i];
      if (p.dead->size() * 4 > p.rows()) {
        merge({i});
        compacted = true;
      }
    }
    if (compacted) continue;
    // kMergeFanIn parts of one tier become one, below the merge cap.
    std::unordered_map<size_t, std::vector<size_t>> tiers;
    std::vector<size_t> full;
    for (size_t i = 0; i < cur->parts.size(); ++i) {
      const size_t live = cur->parts[i].live();
      if (live >= options_.merge_max_vectors / kMergeFanIn) continue;
      auto& tier = tiers[tier_of(live)];
      tier.push_back(i);
      if (tier.size() == kMergeFanIn) {
        full = tier;
        break;
      }
    }
    if (full.empty()) return {};
    merge(full);
  }
}

void VectorIndex::merge(const std::vector<size_t>& parts) {
  const auto cur = current();
  auto segment = new_segment<Segment>(next_uid_++, cur->centroids, options_.dimensions, cur->nlist);
  auto payloads = std::make_shared<PayloadMap>();
  auto& into = lists_of(*segment->ivf);
  const size_t code_size = segment->ivf->code_size;
  size_t rows = 0;
  for (size_t list = 0; list < cur->nlist; ++list) {
    size_t n = 0;
    for (size_t i : parts) n += cur->parts[i].segment->ivf->invlists->list_size(list);
    auto& codes = into.codes[list];
    auto& ids = into.ids[list];
    codes.reserve(n * code_size);
    ids.reserve(n);
    for (size_t i : parts) {
      const Part& p = cur->parts[i];
      ENGRAM_ASSERT(p.segment->centroids == cur->centroids);
      const auto& from = lists_of(*p.segment->ivf);
      const auto& from_codes = from.codes[list];
      const auto& from_ids = from.ids[list];
      if (p.dead->empty()) {
        codes.insert(codes.end(), from_codes.begin(), from_codes.end());
        ids.insert(ids.end(), from_ids.begin(), from_ids.end());
      } else {
        for (size_t j = 0; j < from_ids.size(); ++j) {
          if (p.dead->count(from_ids[j]) > 0) continue;
          const auto* code = from_codes.data() + j * code_size;
          codes.insert(codes.end(), code, code + code_size);
          ids.push_back(from_ids[j]);
        }
      }
    }
    rows += ids.size();
  }
  segment->ivf->ntotal = static_cast<idx_t>(rows);
  // The rows' payloads, overrides folded in.
  std::vector<int64_t> moved;
  moved.reserve(rows);
  for (size_t i : parts) {
    const Part& p = cur->parts[i];
    for (const auto& ids : lists_of(*p.segment->ivf).ids) {
      for (idx_t id : ids) {
        if (p.dead->count(id) > 0) continue;
        moved.push_back(id);
        if (const Payload& payload = cur->payload_of(p, id)) payloads->emplace(id, payload);
      }
    }
  }

  auto next = std::make_shared<Version>();
  next->centroids = cur->centroids;
  next->nlist = cur->nlist;
  next->overrides = without(cur->overrides, moved);
  next->live = cur->live;
  for (size_t i = 0; i < cur->parts.size(); ++i) {
    if (i == parts.front()) {
      if (rows > 0) next->parts.push_back(Part{segment, std::move(payloads), no_ids()});
    } else if (std::find(parts.begin(), parts.end(), i) == parts.end()) {
      next->parts.push_back(cur->parts[i]);
    }
  }
  publish(std::move(next), "merge");
  for (int64_t id : moved) where_[id] = segment->uid;
}

core::result<void> VectorIndex::retrain(size_t nlist) {
  const auto cur = current();
  const size_t d = options_.dimensions;
  std::vector<idx_t> ids;
  std::vector<float> vectors;
  std::vector<Payload> payloads;
  ids.reserve(cur->live);
  vectors.reserve(cur->live * d);
  payloads.reserve(cur->live);
  for (const Part& p : cur->parts) {
    const auto& lists = lists_of(*p.segment->ivf);
    for (size_t list = 0; list < cur->nlist; ++list) {
      const auto& list_ids = lists.ids[list];
      const auto* floats = reinterpret_cast<const float*>(lists.codes[list].data());
      for (size_t j = 0; j < list_ids.size(); ++j) {
        if (p.dead->count(list_ids[j]) > 0) continue;
        ids.push_back(list_ids[j]);
        vectors.insert(vectors.end(), floats + j * d, floats + (j + 1) * d);
        payloads.push_back(cur->payload_of(p, list_ids[j]));
      }
    }
  }
  ENGRAM_ASSERT(ids.size() == cur->live);
  auto next = std::make_shared<Version>();
  next->centroids = std::make_shared<faiss::IndexFlatIP>(static_cast<idx_t>(d));
  next->nlist = nlist;
  next->live = ids.size();
  try {
    {
      faiss::IndexIVFFlat trainer(next->centroids.get(), d, nlist, faiss::METRIC_INNER_PRODUCT);
      trainer.cp.seed = kKmeansSeed;
      trainer.train(static_cast<idx_t>(ids.size()), vectors.data());
    }
    ENGRAM_ASSERT(static_cast<size_t>(next->centroids->ntotal) == nlist);
    for (size_t from = 0; from < ids.size(); from += options_.merge_max_vectors) {
      const size_t n = std::min(options_.merge_max_vectors, ids.size() - from);
      auto segment = new_segment<Segment>(next_uid_++, next->centroids, d, nlist);
      segment->ivf->add_with_ids(static_cast<idx_t>(n), vectors.data() + from * d,
                                 ids.data() + from);
      auto part_payloads = std::make_shared<PayloadMap>();
      for (size_t i = from; i < from + n; ++i) {
        if (payloads[i] != nullptr) part_payloads->emplace(ids[i], std::move(payloads[i]));
      }
      next->parts.push_back(Part{segment, std::move(part_payloads), no_ids()});
    }
  } catch (const std::exception& e) {
    return faiss_error("train", e);
  }
  vectors = {};  // before the publish, so at most one copy beside the live index
  publish(next, "retrain");
  for (const Part& p : next->parts) {
    for (const auto& list_ids : lists_of(*p.segment->ivf).ids) {
      for (idx_t id : list_ids) where_[id] = p.segment->uid;
    }
  }
  return {};
}

core::result<std::vector<VectorIndex::Hit>> VectorIndex::search(std::span<const float> query,
                                                                size_t k,
                                                                const Keep& keep) const {
  if (query.size() != options_.dimensions) {
    return core::make_error(core::errc::invalid_argument,
                            fmt::format("the query vector has {} dimensions; the index has {}",
                                        query.size(), options_.dimensions));
  }
  if (k == 0 || k > kMaxK) {
    return core::make_error(core::errc::invalid_argument,
                            fmt::format("k must be 1..{}, got {}", kMaxK, k));
  }
  const auto v = current();
  std::vector<Hit> hits;
  if (v->live == 0) return hits;
  const size_t nprobe = v->nlist > 1 ? std::min(options_.nprobe, v->nlist) : 1;
  try {
    // The lists to probe, once for every segment: they share the centroids.
    std::vector<float> centroid_scores(nprobe);
    std::vector<idx_t> lists(nprobe);
    v->centroids->search(1, query.data(), static_cast<idx_t>(nprobe), centroid_scores.data(),
                         lists.data());
    std::vector<float> scores(k);
    std::vector<idx_t> labels(k);
    for (const Part& p : v->parts) {
      if (p.live() == 0) continue;
      LiveSelector<Version, Part> selector(*v, p, keep);
      faiss::SearchParametersIVF params;
      params.nprobe = nprobe;
      params.sel = p.dead->empty() && !keep ? nullptr : &selector;
      p.segment->ivf->search_preassigned(1, query.data(), static_cast<idx_t>(k), lists.data(),
                                         centroid_scores.data(), scores.data(), labels.data(),
                                         false, &params);
      for (size_t i = 0; i < k; ++i) {
        if (labels[i] < 0) break;  // fewer than k candidates
        hits.push_back(Hit{labels[i], scores[i], v->payload_of(p, labels[i])});
      }
    }
  } catch (const std::exception& e) {
    return faiss_error("search", e);
  }
  const auto better = [](const Hit& a, const Hit& b) {
    return a.score != b.score ? a.score > b.score : a.id < b.id;
  };
  if (hits.size() > k) {
    std::partial_sort(hits.begin(), hits.begin() + static_cast<std::ptrdiff_t>(k), hits.end(),
                      better);
    hits.resize(k);
  } else {
    std::sort(hits.begin(), hits.end(), better);
  }
  return hits;
}

// kMagic, the centroids (FAISS bytes), the part count, then per part its
// segment (FAISS bytes, centroids included) and its dead ids, sorted. Byte
// strings are preceded by their u64 length; numbers are little-endian.
void VectorIndex::serialize(std::string& out) const {
  const auto v = current();
  out.append(kMagic);
  put_index(out, *v->centroids);
  put_u64(out, v->parts.size());
  for (const Part& p : v->parts) {
    put_index(out, *p.segment->ivf);
    std::vector<int64_t> dead(p.dead->begin(), p.dead->end());
    std::sort(dead.begin(), dead.end());
    put_u64(out, dead.size());
    for (int64_t id : dead) put_u64(out, static_cast<uint64_t>(id));
  }
}

core::result<std::unique_ptr<VectorIndex>> VectorIndex::deserialize(
    std::string_view bytes, Options options, const std::function<Payload(int64_t)>& payload_of) {
  auto corrupt = [](std::string why) {
    return core::make_error(core::errc::corruption, std::move(why));
  };
  if (bytes.substr(0, kMagic.size()) != kMagic) return corrupt("not a vector index");
  SnapshotReader r{bytes, kMagic.size()};
  auto read_faiss = [&](std::string_view what) -> core::result<std::unique_ptr<faiss::Index>> {
    const std::string_view b = r.bytes(r.num<uint64_t>());
    if (!r.ok) return corrupt(fmt::format("the vector index is truncated in its {}", what));
    try {
      ViewReader reader(b);
      return std::unique_ptr<faiss::Index>(faiss::read_index(&reader));
    } catch (const std::exception& e) {
      return corrupt(fmt::format("the vector index's {} is not a FAISS index: {}", what, e.what()));
    }
  };
  auto index = std::make_unique<VectorIndex>(std::move(options));
  const size_t d = index->options_.dimensions;

  auto centroids = read_faiss("centroids");
  if (!centroids) return centroids.error();
  auto* flat = dynamic_cast<faiss::IndexFlatIP*>(centroids->get());
  if (flat == nullptr || flat->ntotal < 1) return corrupt("the vector index has no centroids");
  if (static_cast<size_t>(flat->d) != d) {
    return corrupt(
        fmt::format("the vector index's vectors have {} dimensions, not {}", flat->d, d));
  }
  auto version = std::make_shared<Version>();
  centroids->release();
  version->centroids.reset(flat);
  version->nlist = static_cast<size_t>(flat->ntotal);

  const uint64_t part_count = r.num<uint64_t>();
  for (uint64_t i = 0; i < part_count && r.ok; ++i) {
    auto read = read_faiss("segment");
    if (!read) return read.error();
    auto* ivf = dynamic_cast<faiss::IndexIVFFlat*>(read->get());
    const auto* q = ivf != nullptr ? dynamic_cast<const faiss::IndexFlatIP*>(ivf->quantizer)
                                   : nullptr;
    if (ivf == nullptr || ivf->metric_type != faiss::METRIC_INNER_PRODUCT || q == nullptr ||
        static_cast<size_t>(ivf->d) != d || ivf->nlist != version->nlist ||
        q->codes != version->centroids->codes ||
        dynamic_cast<const faiss::ArrayInvertedLists*>(ivf->invlists) == nullptr) {
      return corrupt("a segment of the vector index is not an inner-product IVF-Flat index "
                     "over its centroids");
    }
    auto segment = std::make_shared<Segment>();
    segment->uid = index->next_uid_++;
    segment->centroids = version->centroids;
    if (ivf->own_fields) delete ivf->quantizer;
    ivf->quantizer = version->centroids.get();
    ivf->own_fields = false;
    read->release();
    segment->ivf.reset(ivf);

    auto dead = std::make_shared<IdSet>();
    const uint64_t dead_count = r.num<uint64_t>();
    for (uint64_t j = 0; j < dead_count && r.ok; ++j) {
      dead->insert(static_cast<int64_t>(r.num<uint64_t>()));
    }
    if (!r.ok) break;
    size_t dead_found = 0;
    auto payloads = std::make_shared<PayloadMap>();
    for (const auto& list_ids : lists_of(*segment->ivf).ids) {
      for (idx_t id : list_ids) {
        if (dead->count(id) > 0) {
          ++dead_found;
          continue;
        }
        if (!index->where_.emplace(id, segment->uid).second) {
          return corrupt(fmt::format("the vector index holds id {} twice", id));
        }
        if (!payload_of) continue;
        Payload payload = payload_of(id);
        if (payload == nullptr) return corrupt(fmt::format("id {} has no payload", id));
        payloads->emplace(id, std::move(payload));
      }
    }
    if (dead_found != dead->size()) return corrupt("the vector index's dead ids are not its own");
    Part part{segment, std::move(payloads), no_ids()};
    if (!dead->empty()) part.dead = std::move(dead);
    version->parts.push_back(std::move(part));
  }
  if (!r.ok || r.at != bytes.size()) return corrupt("the vector index is truncated or malformed");
  version->live = index->where_.size();
  index->current_ = std::move(version);
  return index;
}

}  // namespace engram::projections
