#pragma once

// An in-memory vector index for the read models (memories, knowledge,
// patterns): inner-product similarity over L2-normalised vectors (so the
// score is the cosine), keyed by 64-bit ids, on FAISS.
//
// Contract
// - Exact (a flat index) while it holds fewer than Options::ivf_min_vectors;
//   past that it trains an IVF-Flat index (Options::nlist lists, nprobe
//   probed per query) on what it holds and moves to it. The choice and its
//   measurements are in docs/read-models.md.
// - upsert() replaces the vector an id had; remove() of an unknown id does
//   nothing. Vectors must have dimensions() entries (errc::invalid_argument
//   otherwise, and nothing changes).
// - search() returns up to k hits, best first, only of ids that `keep`
//   accepts (all when it is empty). k is at most kMaxK.
// - serialize() appends the whole index (FAISS's own format) to a string;
//   deserialize() takes it back and checks it holds an index of the
//   configured dimensions (errc::corruption otherwise). Snapshot files, with
//   their position and checksum, belong to the read model that owns them.
// - Thread-safe: searches run in parallel with each other; writes take the
//   index exclusively.

#include <cstdint>
#include <functional>
#include <memory>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/named_type.h"
#include "core/result.h"

namespace faiss {
struct Index;
}

namespace engram::projections {

// The index id of a record key: the first 63 bits of its SHA-256, so ids are
// stable across rebuilds and machines. Callers keep the key beside the
// vector and check it on every hit (two keys sharing an id is a 2^-63
// event per pair, still detected, never silently merged).
int64_t vector_id(std::string_view key);

class VectorIndex {
 public:
  static constexpr size_t kMaxK = 1000;
  static constexpr size_t kMaxDimensions = 4096;

  struct Options {
    size_t dimensions = 384;
    // Flat (exact) below this many vectors; IVF-Flat at and above it.
    size_t ivf_min_vectors = 20'000;
    size_t nlist = 1024;
    size_t nprobe = 16;
  };

  struct Hit {
    int64_t id = 0;
    float score = 0;  // inner product; the cosine for normalised vectors
  };

  explicit VectorIndex(Options options);
  ~VectorIndex();
  VectorIndex(const VectorIndex&) = delete;
  VectorIndex& operator=(const VectorIndex&) = delete;

  size_t dimensions() const { return options_.dimensions; }
  size_t size() const;
  bool is_ivf() const;

  core::result<void> upsert(int64_t id, std::span<const float> vector);
  // Many at once (faster: one FAISS add). ids.size() * dimensions() ==
  // vectors.size().
  core::result<void> upsert_many(std::span<const int64_t> ids, std::span<const float> vectors);
  void remove(int64_t id);
  void clear();

  core::result<std::vector<Hit>> search(std::span<const float> query, size_t k,
                                        const std::function<bool(int64_t)>& keep = {}) const;

  void serialize(std::string& out) const;
  static core::result<std::unique_ptr<VectorIndex>> deserialize(std::string_view bytes,
                                                                Options options);

 private:
  void maybe_promote();  // flat -> IVF when big enough; under mu_ exclusively
  Options options_;
  mutable std::shared_mutex mu_;
  std::unique_ptr<faiss::Index> index_;
  bool ivf_ = false;
};

}  // namespace engram::projections
