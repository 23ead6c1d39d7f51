#pragma once

// An in-memory vector index for the read models (memories, knowledge,
// patterns): inner-product similarity over L2-normalised vectors (so the
// score is the cosine), keyed by 64-bit ids, on FAISS.
//
// Contract
// - Exact (one list, scanned whole) while it holds fewer than
//   Options::ivf_min_vectors; past that it trains an IVF-Flat index
//   (Options::nlist lists, nprobe probed per query) on what it holds and
//   moves to it. The choice and its measurements are in docs/read-models.md.
// - upsert() replaces the vector an id had; remove() of an unknown id does
//   nothing. Vectors must have dimensions() entries (errc::invalid_argument
//   otherwise, and nothing changes).
// - Each id may carry a payload: an immutable value the caller attaches
//   (the memories model's Meta), returned with its hits and given to
//   `keep`; the index never looks inside. set_payloads() replaces the
//   payloads of ids it holds without touching their vectors.
// - search() returns up to k hits, best first (ties by id), only of ids that
//   `keep` accepts (all when it is empty). k is at most kMaxK.
// - serialize() appends the whole index but its payloads to a string (a
//   small header, then FAISS's own format per segment); deserialize() takes
//   it back, with each live id's payload from the caller, and checks it
//   holds an index of the configured dimensions (errc::corruption
//   otherwise). Snapshot files, with their position, checksum and the
//   payloads, belong to the read model that owns them.
//
// Concurrency: searches never wait for a write
// - What searches read is an immutable version: the trained centroids and a
//   list of immutable segments (IVF-Flat indexes over those centroids), each
//   with its rows' payloads and the ids of its rows that are no longer live,
//   and the payloads set since (overrides). A search takes the current
//   version (a pointer copy under a mutex held for nothing else) and runs on
//   it without locks; the versions it holds stay alive until it ends.
// - A write builds the next version beside the current one and publishes it
//   with a pointer swap: an add puts the batch into a new segment (FAISS's
//   add, the coarse assignment, runs there), a removal or replacement adds
//   the id to its old segment's dead ids (a copy of that set, made once per
//   call), set_payloads() copies the overrides. So after a write returns,
//   every search that starts sees it; searches already running finish on
//   the version they took.
// - Afterwards, still on the writer's thread (the projection worker for the
//   read models), the writer keeps the segments few: a segment with more
//   than a quarter of its rows dead is rewritten without them; kMergeFanIn
//   segments of one size tier (floor(log4(live rows))) are merged into one,
//   unless they hold merge_max_vectors / kMergeFanIn rows or more; and when
//   the list count should at least double (live / 39 lists, up to nlist)
//   k-means is retrained on every live vector and all segments are rebuilt
//   over the new centroids; overrides past max(256, live / 32) are folded
//   into their segments' payloads. Each is published like a write.
// - Writes are serialised among themselves (one writer at a time).
// - Memory: besides the live version, at most one piece of work under way
//   (a batch's segment, one merge's or compaction's output of at most
//   merge_max_vectors rows, or a retrain's copy of every live vector plus
//   the rebuilt segments) and the versions searches held when they were
//   replaced: the writer frees those (never a search's thread) at its first
//   publish after the last such search ends.
//   Retraining happens only while the list count grows, up to nlist: with
//   adds in batches the last one is near 39 * nlist vectors, so a large
//   index is not copied whole again.

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/named_type.h"
#include "core/result.h"

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
  // Segments of one size tier merged at a time.
  static constexpr size_t kMergeFanIn = 4;

  struct Options {
    size_t dimensions = 384;
    // Flat (exact) below this many vectors; IVF-Flat at and above it.
    size_t ivf_min_vectors = 20'000;
    size_t nlist = 1024;
    size_t nprobe = 16;
    // No merge writes a segment of more rows than this (the most a merge
    // holds twice; 384 MiB at 384 dimensions).
    size_t merge_max_vectors = 262'144;
    // Fault point for tests: called on the writer's thread once a piece of
    // work ("add", "remove", "payload", "merge", "retrain", "clear") has
    // built the next version and before it is published; searches
    // meanwhile see the previous one.
    std::function<void(std::string_view work)> before_publish;
  };

  // Immutable once attached; null: none.
  using Payload = std::shared_ptr<const void>;
  // Called during a search with each candidate's id and payload; keeps the
  // candidates it returns true for. Must be cheap and must not call back
  // into the index.
  using Keep = std::function<bool(int64_t id, const Payload& payload)>;

  struct Hit {
    int64_t id = 0;
    float score = 0;  // inner product; the cosine for normalised vectors
    Payload payload;
  };

  explicit VectorIndex(Options options);
  ~VectorIndex();
  VectorIndex(const VectorIndex&) = delete;
  VectorIndex& operator=(const VectorIndex&) = delete;

  size_t dimensions() const { return options_.dimensions; }
  size_t size() const;  // live vectors
  bool is_ivf() const;
  size_t segments() const;  // of the current version

  core::result<void> upsert(int64_t id, std::span<const float> vector, Payload payload = {});
  // Many at once (faster: one FAISS add, one new version). ids.size() *
  // dimensions() == vectors.size(); payloads is empty (none) or has one per
  // id; a repeated id keeps its last vector and payload.
  core::result<void> upsert_many(std::span<const int64_t> ids, std::span<const float> vectors,
                                 std::span<const Payload> payloads = {});
  // New payloads for the ids the index holds (one per id; others are
  // ignored), vectors unchanged; one new version.
  void set_payloads(std::span<const int64_t> ids, std::span<const Payload> payloads);
  void remove(int64_t id);
  void remove_many(std::span<const int64_t> ids);  // one new version
  void clear();

  // For the writer's side: whether `id` is live, and its payload (null:
  // none). They take the write lock, so they wait for a write under way.
  bool contains(int64_t id) const;
  Payload payload(int64_t id) const;
  // Every live id of the current version with its payload.
  void for_each(const std::function<void(int64_t id, const Payload& payload)>& f) const;

  core::result<std::vector<Hit>> search(std::span<const float> query, size_t k,
                                        const Keep& keep = {}) const;

  void serialize(std::string& out) const;
  // `payload_of` gives each live id's payload; a null one is corruption
  // (without `payload_of`, ids have none).
  static core::result<std::unique_ptr<VectorIndex>> deserialize(
      std::string_view bytes, Options options,
      const std::function<Payload(int64_t id)>& payload_of = {});

 private:
  struct Segment;
  struct Part;
  struct Version;

  std::shared_ptr<const Version> current() const;
  // Calls the test hook, swaps `next` in, and frees the replaced versions
  // no search holds any more.
  void publish(std::shared_ptr<const Version> next, std::string_view work);
  // Adds `ids` (those live) to their segments' dead ids in `next` and drops
  // their overrides; returns how many.
  size_t mark_dead(Version& next, std::span<const int64_t> ids) const;
  // The index into version.parts of the part holding live `id`.
  size_t part_of(const Version& version, int64_t id) const;
  // After a write: retraining (when allowed), compactions and merges, each
  // published.
  core::result<void> maintain(bool may_retrain);
  // Rewrites `parts` (indexes into the current version's parts) into one
  // segment of their live rows, published in their place.
  void merge(const std::vector<size_t>& parts);
  core::result<void> retrain(size_t nlist);
  // Moves the overrides into copies of their parts' payloads.
  void fold_overrides();

  Options options_;
  mutable std::mutex current_mu_;  // guards current_: held for a pointer copy
  std::shared_ptr<const Version> current_;

  // The writer's side, never read by searches.
  mutable std::mutex write_mu_;  // one write at a time
  std::unordered_map<int64_t, uint64_t> where_;  // live id -> its segment's uid
  uint64_t next_uid_ = 1;
  // Replaced versions that searches still held at their replacement: this
  // writer frees them (at a later publish), so a search's thread never pays
  // for freeing segments.
  std::vector<std::shared_ptr<const Version>> retired_;
};

}  // namespace engram::projections
