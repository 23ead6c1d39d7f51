#pragma once

// The memories read model: each owner's memories, searchable by meaning
// (kNN over a FAISS index per owner) and ranked by a blend of similarity,
// importance and recency. docs/read-models.md has the layout and formula.
//
// Layout in the store (every value about a memory stays sealed under its
// owner's key, so destroying the key (ForgetSubject) shreds the read model
// too, as it does the log):
//   mem/<owner>/<memory_id>   JSON: importance, tags, stored_at_ms, position,
//                             key_generation, reinforcements
//   txt/<owner>/<memory_id>   the sealed content, as in the event
//   vec/<owner>/<memory_id>   the sealed float32 vector (little-endian)
//   meta/embedder             "<name>/<version>/<dimensions>"
// A memory whose event carries an embedding of the index's dimensions keeps
// it; any other gets the text embedder's vector of its content.
//
// The vector index lives in memory, one per owner (VectorIndex: exact while
// small, IVF-Flat when large). It is saved to <model dir>/vectors.snapshot,
// tagged with the position it reflects, every snapshot_every_changes vector
// changes (at most once per snapshot_min_interval_ms), at close, and at the
// first commit after a SubjectForgotten (so a forgotten owner's vectors leave
// the disk). At open the snapshot loads and only the log's tail after its
// position is re-read; without a usable snapshot the index is rebuilt from
// the vec/ keys, never from the log.
//
// Memories sealed under a key generation that no longer exists (their owner
// was forgotten) are skipped: they can never be read again.
//
// Searches never wait for the index's writes. nearest() holds the owners'
// map lock only to copy the owner's index pointer, then searches that
// VectorIndex, where each memory's Meta is the payload of its vector: one
// immutable version of both, which the worker replaces with a pointer swap
// after building the next one (FAISS's adds, merges and retraining
// included; vector_index.h). The worker takes the map lock only to add,
// replace or drop an owner, and frees what it replaced itself once no
// search holds it. Everything committed() changes is published before it
// returns, so a search that starts once the worker's position covers a
// MemoryForgotten or SubjectForgotten never returns what it forgot. (A
// search already running may still find it in the version it took;
// search_memories() then drops it, as its content left the store at the
// commit, before committed().)

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/keystore.h"
#include "projections/embedder.h"
#include "projections/projection.h"
#include "projections/vector_index.h"

namespace engram::projections {

struct MemoriesOptions {
  // dimensions is taken from the embedder.
  VectorIndex::Options index;
  uint64_t snapshot_every_changes = 50'000;
  uint64_t snapshot_min_interval_ms = 60'000;
};

// What open() found, for logs, tests and metrics.
struct MemoriesIndexReport {
  bool snapshot_loaded = false;
  core::Position snapshot_position;
  uint64_t tail_events = 0;  // events re-read after the snapshot
  bool rebuilt_from_store = false;
  std::string snapshot_problem;  // why a snapshot was not used; empty: none
  uint64_t snapshots_written = 0;
  size_t owners = 0;
  size_t vectors = 0;
  size_t ivf_indexes = 0;  // owners whose index has moved to IVF
  size_t segments = 0;     // of the owners' indexes, summed (vector_index.h)
};

class MemoriesProjection final : public Projection {
 public:
  MemoriesProjection(std::shared_ptr<const TextEmbedder> embedder, const core::KeyStore& keys,
                     MemoriesOptions options = {});
  ~MemoriesProjection() override;

  std::string_view name() const override { return "memories"; }
  uint32_t version() const override { return 1; }
  std::vector<std::string> event_types() const override;
  core::result<void> apply(std::span<const core::RecordedEvent> events,
                           core::ModelStore::Batch& batch) override;
  core::result<core::Position> open(const core::ModelStore& store,
                                    const std::filesystem::path& dir) override;
  core::result<void> refresh(std::span<const core::RecordedEvent> events,
                             const core::ModelStore& store) override;
  core::result<void> committed(const core::ModelStore& store, core::Position position) override;
  void close(const core::ModelStore& store) override;

  size_t dimensions() const { return options_.index.dimensions; }
  const TextEmbedder& embedder() const { return *embedder_; }
  const core::KeyStore& keys() const { return keys_; }
  MemoriesIndexReport report() const;

  struct Meta {
    std::string memory_id;
    double importance = 0;
    int64_t stored_at_ms = 0;
    std::vector<std::string> tags;
  };
  struct Candidate {
    Meta meta;
    float similarity = 0;
  };
  // The owner's nearest memories to `vector` (normalised, dimensions()
  // long) that `keep` accepts, best first; at most k (<= VectorIndex::kMaxK).
  core::result<std::vector<Candidate>> nearest(const std::string& owner,
                                               std::span<const float> vector, size_t k,
                                               const std::function<bool(const Meta&)>& keep) const;

 private:
  struct Change;
  core::result<void> stage_stored(const core::RecordedEvent& e, core::ModelStore::Batch& batch);
  core::result<void> apply_changes(std::vector<Change>& changes);
  std::shared_ptr<VectorIndex> owner_index(std::string_view owner) const;
  // Adds, replaces or (null) drops the owner's index; the replaced one is
  // retired.
  void set_owner_index(const std::string& owner, std::shared_ptr<VectorIndex> index);
  // Keeps `old` until no search holds it, so that it is freed here, on the
  // worker's thread, never by a search's; frees those no search holds now.
  void retire(std::shared_ptr<VectorIndex> old);
  // Builds the owner's index from the store, then swaps it in (or drops the
  // owner when nothing of theirs is readable).
  core::result<void> load_owner_from_store(const core::ModelStore& store, const std::string& owner);
  core::result<void> rebuild_from_store(const core::ModelStore& store);
  core::result<void> write_snapshot(core::Position position);
  core::result<core::Position> read_snapshot();
  std::string embedder_tag() const;

  std::shared_ptr<const TextEmbedder> embedder_;
  const core::KeyStore& keys_;
  MemoriesOptions options_;
  std::filesystem::path dir_;

  std::vector<Change> staged_;  // worker thread only
  std::vector<std::shared_ptr<VectorIndex>> retired_;  // worker thread only
  uint64_t changes_since_snapshot_ = 0;
  bool forgotten_since_snapshot_ = false;
  bool index_broken_ = false;
  int64_t last_snapshot_ms_ = 0;

  // Guards owners_ (the map, not what its indexes hold: searches hold it
  // only to copy an owner's pointer) and report_.
  mutable std::shared_mutex mu_;
  std::map<std::string, std::shared_ptr<VectorIndex>, std::less<>> owners_;
  MemoriesIndexReport report_;
};

// The search the API serves (POST /v1/memories/search).
struct MemoryQuery {
  std::string owner;
  std::optional<std::string> text;           // embedded with the model's embedder
  std::optional<std::vector<float>> vector;  // or a vector of the index's dimensions
  size_t k = 10;
  std::vector<std::string> tags;  // every one must be on a hit
  double min_importance = 0;
  int64_t now_ms = 0;  // for recency
};

struct MemoryHit {
  std::string memory_id;
  std::string content;
  double importance = 0;
  std::vector<std::string> tags;
  int64_t stored_at_ms = 0;
  double similarity = 0;
  double recency = 0;
  double score = 0;
};

// Ranking: score = 0.70 * similarity + 0.20 * importance + 0.10 * recency,
// recency = 2^(-age / kMemoryRecencyHalfLifeMs). The kMemoryCandidates
// nearest (by similarity) are re-ranked, so a far but important memory does
// not outrank near ones wholesale.
inline constexpr double kMemoryWeightSimilarity = 0.70;
inline constexpr double kMemoryWeightImportance = 0.20;
inline constexpr double kMemoryWeightRecency = 0.10;
inline constexpr int64_t kMemoryRecencyHalfLifeMs = 30LL * 24 * 3600 * 1000;
inline constexpr size_t kMemoryMaxK = 100;
inline constexpr size_t kMemoryCandidates = 200;
inline constexpr size_t kMemoryMaxTextBytes = 64 * 1024;
inline constexpr size_t kMemoryMaxTags = 16;

// errc::invalid_argument for a bad query (no or both of text and vector, k
// out of 1..kMemoryMaxK, a vector of the wrong dimensions or zero norm).
core::result<std::vector<MemoryHit>> search_memories(const MemoriesProjection& projection,
                                                     const core::ModelStore& store,
                                                     const MemoryQuery& query);

}  // namespace engram::projections
