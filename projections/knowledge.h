#pragma once

// The knowledge read model: the live (not retracted) knowledge items,
// searchable by keywords (Xapian, BM25), by meaning (embeddings in a
// VectorIndex) or both (reciprocal rank fusion), filtered by domain, tag and
// owning agent. docs/read-models.md has the layout and the ranking.
//
// Layout in the store (the source of truth; the indexes derive from it):
//   item/<id>       JSON: id, title, body, domain, tags, agent (null when
//                   none; source_agent, then each KnowledgeTransferred's
//                   to_agent), source_task (or null), confidence,
//                   created_position, updated_position, created_at_ns,
//                   updated_at_ns (the events' recorded times), revisions
//                   (KnowledgeRevised count), embedding ("event": the
//                   event's own vector; "embedder": made from the text)
//   vec/<id>        the item's vector: dimensions() float32, little-endian
//   meta/embedder   JSON: name, version, dimensions, id ("<name>/<version>")
// KnowledgeRetracted deletes item/<id> and vec/<id>: a retracted item is
// gone from the store and from both indexes.
//
// Embeddings
// - An event's embedding is used as is when its `embedder` equals
//   embedder_id() ("<name>/<version>", e.g. "engram-hash/1") and it has
//   dimensions() entries. Otherwise (no embedding, another embedder, another
//   size) the item is embedded from title + "\n" + body by the projection's
//   embedder. A revision that changes title or body without a usable
//   embedding is re-embedded from the new text; one that changes neither
//   keeps the vector.
// - open() compares meta/embedder with the embedder it was given and fails
//   (errc::invalid_argument) when they differ: stored vectors are not
//   comparable with the new embedder's, so the model must be rebuilt under
//   a new version().
//
// Indexes outside the store (projection.h)
// - Xapian, in <dir>/xapian: one document per item, unique term "Q<id>";
//   title (wdf 2, and once more with prefix "S" for `title:` queries) and
//   body with the English stemmer; boolean filter terms "XD<domain>",
//   "XT<tag>", "XA<agent>" (values lower-cased, cut to
//   kKnowledgeMaxFilterBytes). Its metadata "position" is the position it
//   reflects; open() returns it.
// - apply() only writes the store and stages the index changes in memory;
//   committed() applies them to Xapian and to the vectors. Xapian is
//   committed (fsynced) in every committed() that changed something, and
//   otherwise once the position has moved kKnowledgeCommitEvery positions
//   past the last Xapian commit, and at close(). So after a crash Xapian may
//   be older than the store; open() returns that older position and the
//   worker's refresh() re-reads from the store every item the events after
//   it touched. A Xapian database that is corrupt, of an unknown format, or
//   past the store's checkpoint is deleted and rebuilt the same way (from
//   position 0).
// - The vector index lives in memory only: open() rebuilds it from the
//   vec/ keys (and an id -> (domain, tags, agent) map from the item/ keys,
//   for cheap semantic filtering), so it always matches the store.
//
// Thread safety: one worker thread calls the Projection methods; queries
// (search_knowledge) run on any threads at the same time. Xapian objects
// are not thread-safe even for reads, so queries never touch the worker's
// WritableDatabase: each takes a read-only Xapian::Database from a small
// pool (opening one when the pool is empty) and reopen()s it to the last
// commit. The vectors and the filter map are guarded by a shared_mutex:
// queries hold it shared, committed() and open() exclusively.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/model_store.h"
#include "projections/embedder.h"
#include "projections/projection.h"

namespace engram::projections {

// Bounds of a query.
inline constexpr size_t kKnowledgeMaxTextBytes = 1024;
inline constexpr size_t kKnowledgeMaxLimit = 100;  // hits per query
// A filter value (domain, tag, agent) in bytes. Xapian terms hold at most
// 245 bytes; this leaves room for the two-byte prefix.
inline constexpr size_t kKnowledgeMaxFilterBytes = 240;
// Hybrid search fuses the best kKnowledgeHybridDepth hits of each side.
inline constexpr size_t kKnowledgeHybridDepth = 100;
// The k of reciprocal rank fusion: score = sum over sides of 1 / (k + rank).
inline constexpr double kKnowledgeRrfK = 60;
// Xapian is committed at least once per this many log positions, even when
// no knowledge changed (so a restart re-reads a bounded stretch of log).
inline constexpr uint64_t kKnowledgeCommitEvery = 10'000;

// "<name>/<version>": how events name the embedder that made their vectors.
std::string embedder_id(const TextEmbedder& embedder);

struct KnowledgeHit;
struct KnowledgeQuery;

class KnowledgeProjection final : public Projection {
 public:
  // `embedder` must not be null and must have 1..VectorIndex::kMaxDimensions
  // dimensions (asserted: deployment configuration).
  explicit KnowledgeProjection(std::shared_ptr<const TextEmbedder> embedder);
  ~KnowledgeProjection() override;
  KnowledgeProjection(const KnowledgeProjection&) = delete;
  KnowledgeProjection& operator=(const KnowledgeProjection&) = delete;

  std::string_view name() const override { return "knowledge"; }
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

  const TextEmbedder& embedder() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;

  friend core::result<std::vector<KnowledgeHit>> search_knowledge(const KnowledgeProjection&,
                                                                  const core::ModelStore&,
                                                                  const KnowledgeQuery&);
};

struct KnowledgeQuery {
  enum class Mode { keyword, semantic, hybrid };
  // 1..kKnowledgeMaxTextBytes bytes. Keyword syntax is Xapian's QueryParser
  // with FLAG_DEFAULT: words (stemmed, English, STEM_SOME: words starting
  // with a capital are matched exactly), "phrases", AND/OR/NOT, +must and
  // -mustnot, title:word. Words are OR-ed by default: BM25 ranks items
  // matching more and rarer words first. Semantic search embeds the text.
  std::string text;
  // Exact matches, case-insensitive (Unicode lower case); empty: any. At
  // most kKnowledgeMaxFilterBytes bytes each.
  std::string domain;
  std::string tag;
  std::string agent;
  Mode mode = Mode::hybrid;
  size_t limit = 20;  // 1..kKnowledgeMaxLimit
};

struct KnowledgeHit {
  nlohmann::json item;  // the item/<id> record
  // keyword: the BM25 weight; semantic: the cosine; hybrid: the RRF score.
  double score = 0;
  // 1-based ranks and scores on each side the item was found on (in the
  // side's best kKnowledgeHybridDepth for hybrid, the best `limit` else).
  std::optional<size_t> keyword_rank;
  std::optional<size_t> semantic_rank;
  std::optional<double> keyword_score;
  std::optional<double> semantic_score;
};

// The best hits, best first, at most query.limit.
// - keyword: BM25 (Xapian's BM25Weight defaults: k1 1, k2 0, k3 1, b 0.5,
//   min_normlen 0.5) over title and body; filters as Xapian boolean terms.
// - semantic: cosine between the embedded text and the items' vectors;
//   filters checked in the vector search itself; items with cosine <= 0
//   (nothing in common) are left out; an all-zero query vector (a text
//   without words) finds nothing.
// - hybrid: reciprocal rank fusion of both sides' best
//   kKnowledgeHybridDepth: score(d) = sum over the sides that found d of
//   1 / (kKnowledgeRrfK + rank_side(d)). Ties go to the better single rank,
//   then to the smaller id.
// Records are read from the store after the index lookups, and a hit whose
// record is gone or no longer passes the filters (the store runs ahead of
// the indexes between a commit and committed()) is dropped.
// Errors: invalid_argument for a bad text (empty, too long, bad keyword
// syntax), filter or limit; not_found before the projection is open;
// io_error/corruption when an index fails.
core::result<std::vector<KnowledgeHit>> search_knowledge(const KnowledgeProjection& projection,
                                                         const core::ModelStore& store,
                                                         const KnowledgeQuery& query);

// One live item's record, or nullopt (never recorded, or retracted).
core::result<std::optional<nlohmann::json>> get_knowledge(const core::ModelStore& store,
                                                          std::string_view id);

}  // namespace engram::projections
