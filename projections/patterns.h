#pragma once

// The patterns read model: per pattern (one domain + signature, the pattern
// aggregate of docs/commands.md) its observation counts, mean reward, success
// rate with a Wilson lower bound, and when it was last seen; a per-domain
// ranking for recommendations; and, through an in-memory vector index over
// the signatures' embeddings, related patterns in other domains (cross-domain
// transfer).
//
// Layout in the store (docs/read-models.md):
//   pattern/<pattern_id>                     the record (JSON, below)
//   vec/<pattern_id>                         the signature's embedding: dimensions
//                                            float32s, little-endian (4 bytes each)
//   rank/<domain>/<score key>/<pattern_id>   "" (the recommend index)
//   meta/embedder                            {"name", "version", "dimensions"}
// The domain in rank keys is escaped ('%' and '/' as %25, %2F). The score key
// is 32 lowercase hex digits: the bitwise complement of the Wilson lower
// bound's IEEE-754 bits (a double in [0, 1], whose bits order like the
// values), then the complement of the observation count, each 16 digits; so
// a forward prefix scan of rank/<domain>/ yields the ranking order: Wilson
// lower bound descending, then observations descending, then pattern id
// ascending. Retired patterns have no rank key.
//
// The record: pattern_id, domain, signature, observations, successes,
// failures, reward_sum, mean_reward (reward_sum / observations),
// success_rate (successes / observations), wilson_lower (below),
// first_seen_position, first_seen_at_ns, last_seen_position,
// last_seen_at_ns (the log position and recorded time of the first and last
// PatternObserved), last_agent (the agent_id of the latest observation that
// named one; absent while none did), retired, and when retired: retired_reason, retired_position,
// retired_at_ns.
//
// Wilson lower bound (95%, z = 1.96) of the success rate, with n
// observations and p = successes / n:
//   (p + z²/2n − z·sqrt(p(1−p)/n + z²/4n²)) / (1 + z²/n)
// 0 when there are no successes (exactly: the formula's terms cancel), and
// clamped to [0, 1] against rounding. It ranks a pattern seen 8 times of 10
// (0.4902) above one seen once of once (0.2065): few observations prove little.
//
// Embeddings: the embedder's vector of the signature alone, computed once at
// the first observation. The context is left out on purpose: it describes
// one observation, not the pattern, and would make the vector depend on
// which observation came first. The store records the embedder under
// meta/embedder; a different embedder (name, version or dimensions) cannot
// read these vectors, so open() refuses the store (errc::invalid_argument)
// and the projection needs a new version().
//
// Determinism: everything stored comes from the events (positions,
// recorded times, payloads) and the embedder, never from a clock, so a
// rebuild reproduces the store byte for byte whatever the batch sizes.

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/model_store.h"
#include "projections/embedder.h"
#include "projections/projection.h"
#include "projections/vector_index.h"

namespace engram::projections {

// The largest page recommend_patterns() and similar_patterns() return, in items.
inline constexpr size_t kPatternsMaxLimit = 100;
// The z-score of the Wilson bound (a two-sided 95% interval).
inline constexpr double kWilsonZ = 1.96;

// The Wilson lower bound above; `observations` must be >= `successes` and > 0.
double wilson_lower_bound(uint64_t successes, uint64_t observations);

// Contract (besides Projection's)
// - apply() reads each pattern it touches once per batch (through the
//   Batch, so it sees its own writes and the last commit), folds all of the
//   batch's events for it in memory, and writes the record and its rank key
//   once: a batch of many observations of one pattern costs one read and
//   a few writes, and counts every observation.
// - The vector index holds the live (not retired) patterns whose embedding is
//   not all zeros. open() rebuilds it from the store (vec/ in pages of
//   core::ModelStore::kMaxScanEntries) and returns store.checkpoint(): there
//   is no snapshot, so the worker has no events to refresh() with. refresh()
//   still works: it re-reads from the store the patterns its events name.
//   committed() takes in the patterns the last apply() created or retired.
// - nearest() and the queries below may run on any thread while the worker
//   applies; the index and the id map are each guarded (never both held
//   by the writer, so a query holding both cannot deadlock with it).
// - One store per instance: open() resets what an earlier worker left.
class PatternsProjection final : public Projection {
 public:
  // `embedder` must not be null and must have 1..VectorIndex::kMaxDimensions
  // dimensions (asserted: it is deployment configuration).
  explicit PatternsProjection(std::shared_ptr<const TextEmbedder> embedder);
  ~PatternsProjection() override;

  std::string_view name() const override { return "patterns"; }
  uint32_t version() const override { return 1; }
  std::vector<std::string> event_types() const override;
  core::result<void> apply(std::span<const core::RecordedEvent> events,
                           core::ModelStore::Batch& batch) override;
  core::result<core::Position> open(const core::ModelStore& store,
                                    const std::filesystem::path& dir) override;
  core::result<void> refresh(std::span<const core::RecordedEvent> events,
                             const core::ModelStore& store) override;
  core::result<void> committed(const core::ModelStore& store, core::Position position) override;

  const TextEmbedder& embedder() const { return *embedder_; }

  struct Neighbour {
    std::string pattern_id;
    float score = 0;  // the cosine of the two embeddings, in [-1, 1]
  };
  // Up to k (<= VectorIndex::kMaxK) indexed patterns closest to `query`,
  // best first, leaving out `exclude_id` and every pattern of `exclude_domain`
  // (a keep-predicate in the search, so no over-fetch is needed).
  // `query` must have embedder().dimensions() entries.
  core::result<std::vector<Neighbour>> nearest(std::span<const float> query,
                                               std::string_view exclude_domain,
                                               std::string_view exclude_id, size_t k) const;
  // How many patterns the vector index holds.
  size_t indexed() const;

 private:
  struct Member {
    std::string pattern_id;
    std::string domain;
  };
  // A change apply() staged for committed(): index the vector, or drop the
  // pattern (retired).
  struct Staged {
    std::string pattern_id;
    std::string domain;
    std::vector<float> vector;  // empty: remove
  };

  // Puts the patterns' vectors in the index (members first, so every indexed
  // id has a member); fails on two pattern ids sharing an index id.
  core::result<void> add(std::vector<Staged> adds);
  void remove(const std::string& pattern_id);
  // Re-reads one pattern from the store and indexes it or drops it.
  core::result<void> sync(const core::ModelStore& store, const std::string& pattern_id);

  std::shared_ptr<const TextEmbedder> embedder_;
  std::string embedder_meta_;  // the meta/embedder value for this embedder
  VectorIndex index_;          // thread-safe itself

  mutable std::shared_mutex mu_;
  std::unordered_map<int64_t, Member> members_;  // by vector_id(pattern_id); guarded by mu_

  // Worker thread only (apply, committed, open, refresh).
  std::vector<Staged> staged_;
  bool meta_checked_ = false;
};

// The record of a pattern; errc::not_found when no pattern has that id.
core::result<nlohmann::json> get_pattern(const core::ModelStore& store, std::string_view id);

// The live patterns of `domain`, best first (Wilson lower bound, then
// observations, then pattern id), at most `limit` records. An unknown domain
// gives an empty list. errc::invalid_argument when limit is 0 or above
// kPatternsMaxLimit, or the domain is empty.
core::result<std::vector<nlohmann::json>> recommend_patterns(const core::ModelStore& store,
                                                             std::string_view domain, size_t limit);

struct SimilarPattern {
  nlohmann::json pattern;  // the record, as get_pattern()
  double score = 0;        // cosine similarity of the signatures' embeddings, [-1, 1]
};
// Live patterns of other domains whose signatures are closest to pattern
// `id`'s, best first, from `projection`'s index (the instance whose worker
// keeps `store`), at most `limit`, each with score >= min_score when
// given. Pattern `id` may itself be retired. A signature whose embedding is
// all zeros (no features) has no neighbours. The store and the index are
// read separately; a hit whose record has meanwhile been retired is
// dropped, so a page may come back short while a retirement is being
// committed. errc::not_found for an unknown id; errc::invalid_argument when
// limit is 0 or above kPatternsMaxLimit, or min_score is not finite.
core::result<std::vector<SimilarPattern>> similar_patterns(
    const PatternsProjection& projection, const core::ModelStore& store, std::string_view id,
    size_t limit, std::optional<double> min_score = std::nullopt);

}  // namespace engram::projections
