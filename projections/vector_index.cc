#include "projections/vector_index.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/impl/io.h>
#include <faiss/index_io.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <mutex>
#include <unordered_map>

#include "core/assert.h"
#include "core/sha256.h"

namespace engram::projections {
namespace {

using idx_t = faiss::Index::idx_t;

// k-means wants at least this many training points per list; fewer make
// empty or degenerate lists (FAISS warns below 39).
constexpr size_t kMinPointsPerList = 39;

// Every index is an IVF-Flat: with one list whose centroid is the zero
// vector every vector lands in it and a search scans them all, which is
// the exact (flat) index; with many lists it is the approximate one. One
// type keeps ids, removal and snapshots the same in both regimes.
std::unique_ptr<faiss::IndexIVFFlat> make_ivf(size_t dimensions, size_t nlist) {
  auto* quantizer = new faiss::IndexFlatIP(static_cast<idx_t>(dimensions));
  auto ivf = std::make_unique<faiss::IndexIVFFlat>(quantizer, dimensions, nlist,
                                                   faiss::METRIC_INNER_PRODUCT);
  ivf->own_fields = true;
  // A hash map from id to (list, offset): removal and replacement cost O(1)
  // instead of a scan of every list.
  ivf->set_direct_map_type(faiss::DirectMap::Hashtable);
  if (nlist == 1) {
    const std::vector<float> zero(dimensions, 0.0f);
    quantizer->add(1, zero.data());
    ivf->is_trained = true;
  }
  return ivf;
}

faiss::IndexIVFFlat& ivf_of(faiss::Index& index) {
  auto* ivf = dynamic_cast<faiss::IndexIVFFlat*>(&index);
  ENGRAM_ASSERT(ivf != nullptr);
  return *ivf;
}

bool contains(const faiss::IndexIVFFlat& ivf, int64_t id) {
  return ivf.direct_map.hashtable.count(id) > 0;
}

core::Error faiss_error(const char* what, const std::exception& e) {
  return core::make_error(core::errc::internal, fmt::format("FAISS {}: {}", what, e.what()));
}

struct KeepSelector final : faiss::IDSelector {
  explicit KeepSelector(const std::function<bool(int64_t)>& f) : keep(f) {}
  bool is_member(idx_t id) const override { return keep(id); }
  const std::function<bool(int64_t)>& keep;
};

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
    std::memcpy(ptr, bytes.data() + at, n * size);
    at += n * size;
    return n;
  }
  std::string_view bytes;
  size_t at = 0;
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

VectorIndex::VectorIndex(Options options) : options_(options) {
  ENGRAM_ASSERT(options_.dimensions > 0 && options_.dimensions <= kMaxDimensions);
  ENGRAM_ASSERT(options_.nlist >= 1 && options_.nprobe >= 1);
  index_ = make_ivf(options_.dimensions, 1);
}

VectorIndex::~VectorIndex() = default;

size_t VectorIndex::size() const {
  std::shared_lock lock(mu_);
  return static_cast<size_t>(index_->ntotal);
}

bool VectorIndex::is_ivf() const {
  std::shared_lock lock(mu_);
  return ivf_;
}

core::result<void> VectorIndex::upsert(int64_t id, std::span<const float> vector) {
  return upsert_many(std::span<const int64_t>(&id, 1), vector);
}

core::result<void> VectorIndex::upsert_many(std::span<const int64_t> ids,
                                            std::span<const float> vectors) {
  if (vectors.size() != ids.size() * options_.dimensions) {
    return core::make_error(
        core::errc::invalid_argument,
        fmt::format("{} vectors of {} dimensions need {} values, got {}", ids.size(),
                    options_.dimensions, ids.size() * options_.dimensions, vectors.size()));
  }
  if (ids.empty()) return {};
  std::unique_lock lock(mu_);
  auto& ivf = ivf_of(*index_);
  try {
    std::vector<idx_t> replaced;
    for (int64_t id : ids) {
      if (contains(ivf, id)) replaced.push_back(id);
    }
    // A repeated id within `ids` keeps its last vector: drop earlier copies.
    std::vector<idx_t> add_ids;
    std::vector<float> add_vectors;
    std::unordered_map<int64_t, size_t> last;
    for (size_t i = 0; i < ids.size(); ++i) last[ids[i]] = i;
    add_ids.reserve(last.size());
    add_vectors.reserve(last.size() * options_.dimensions);
    for (size_t i = 0; i < ids.size(); ++i) {
      if (last[ids[i]] != i) continue;
      add_ids.push_back(ids[i]);
      const float* v = vectors.data() + i * options_.dimensions;
      add_vectors.insert(add_vectors.end(), v, v + options_.dimensions);
    }
    if (!replaced.empty()) {
      ivf.remove_ids(faiss::IDSelectorArray(replaced.size(), replaced.data()));
    }
    ivf.add_with_ids(static_cast<idx_t>(add_ids.size()), add_vectors.data(), add_ids.data());
    maybe_promote();
  } catch (const std::exception& e) {
    return faiss_error("add", e);
  }
  return {};
}

void VectorIndex::remove(int64_t id) {
  std::unique_lock lock(mu_);
  auto& ivf = ivf_of(*index_);
  if (!contains(ivf, id)) return;
  const idx_t one = id;
  ivf.remove_ids(faiss::IDSelectorArray(1, &one));
}

void VectorIndex::clear() {
  std::unique_lock lock(mu_);
  index_ = make_ivf(options_.dimensions, 1);
  ivf_ = false;
}

void VectorIndex::maybe_promote() {
  const size_t n = static_cast<size_t>(index_->ntotal);
  if (n < options_.ivf_min_vectors) return;
  auto& ivf = ivf_of(*index_);
  const size_t target = std::min(options_.nlist, std::max<size_t>(1, n / kMinPointsPerList));
  // Retrain only when the list count would at least double: each retrain
  // re-adds every vector, so doubling keeps the total work linear.
  if (target < 2 * ivf.nlist) return;
  std::vector<idx_t> ids;
  std::vector<float> vectors;
  ids.reserve(n);
  vectors.reserve(n * options_.dimensions);
  const size_t code_floats = ivf.code_size / sizeof(float);
  ENGRAM_ASSERT(code_floats == options_.dimensions);
  for (size_t list = 0; list < ivf.nlist; ++list) {
    const size_t len = ivf.invlists->list_size(list);
    if (len == 0) continue;
    faiss::InvertedLists::ScopedIds lids(ivf.invlists, list);
    faiss::InvertedLists::ScopedCodes codes(ivf.invlists, list);
    const auto* floats = reinterpret_cast<const float*>(codes.get());
    ids.insert(ids.end(), lids.get(), lids.get() + len);
    vectors.insert(vectors.end(), floats, floats + len * code_floats);
  }
  auto next = make_ivf(options_.dimensions, target);
  next->cp.seed = 1234;  // reproducible lists for a given content
  next->train(static_cast<idx_t>(ids.size()), vectors.data());
  next->add_with_ids(static_cast<idx_t>(ids.size()), vectors.data(), ids.data());
  index_ = std::move(next);
  ivf_ = true;
}

core::result<std::vector<VectorIndex::Hit>> VectorIndex::search(
    std::span<const float> query, size_t k, const std::function<bool(int64_t)>& keep) const {
  if (query.size() != options_.dimensions) {
    return core::make_error(core::errc::invalid_argument,
                            fmt::format("the query vector has {} dimensions; the index has {}",
                                        query.size(), options_.dimensions));
  }
  if (k == 0 || k > kMaxK) {
    return core::make_error(core::errc::invalid_argument,
                            fmt::format("k must be 1..{}, got {}", kMaxK, k));
  }
  std::vector<float> distances(k);
  std::vector<idx_t> labels(k, -1);
  {
    std::shared_lock lock(mu_);
    KeepSelector selector(keep);
    faiss::SearchParametersIVF params;
    params.nprobe = ivf_ ? options_.nprobe : 1;
    params.sel = keep ? &selector : nullptr;
    try {
      index_->search(1, query.data(), static_cast<idx_t>(k), distances.data(), labels.data(),
                     &params);
    } catch (const std::exception& e) {
      return faiss_error("search", e);
    }
  }
  std::vector<Hit> hits;
  for (size_t i = 0; i < k; ++i) {
    if (labels[i] < 0) break;  // fewer than k candidates
    hits.push_back(Hit{labels[i], distances[i]});
  }
  return hits;
}

void VectorIndex::serialize(std::string& out) const {
  std::shared_lock lock(mu_);
  StringWriter writer(out);
  faiss::write_index(index_.get(), &writer);
}

core::result<std::unique_ptr<VectorIndex>> VectorIndex::deserialize(std::string_view bytes,
                                                                    Options options) {
  std::unique_ptr<faiss::Index> index;
  try {
    ViewReader reader(bytes);
    index.reset(faiss::read_index(&reader));
  } catch (const std::exception& e) {
    return core::make_error(core::errc::corruption, fmt::format("not a FAISS index: {}", e.what()));
  }
  auto* ivf = dynamic_cast<faiss::IndexIVFFlat*>(index.get());
  if (ivf == nullptr || ivf->metric_type != faiss::METRIC_INNER_PRODUCT ||
      ivf->direct_map.type != faiss::DirectMap::Hashtable) {
    return core::make_error(core::errc::corruption,
                            "the snapshot does not hold an inner-product IVF-Flat index");
  }
  if (static_cast<size_t>(ivf->d) != options.dimensions) {
    return core::make_error(core::errc::corruption,
                            fmt::format("the snapshot's vectors have {} dimensions, not {}", ivf->d,
                                        options.dimensions));
  }
  auto out = std::make_unique<VectorIndex>(options);
  out->ivf_ = ivf->nlist > 1;
  out->index_ = std::move(index);
  return out;
}

}  // namespace engram::projections
