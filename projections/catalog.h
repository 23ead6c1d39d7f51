#pragma once

// The catalog read model: agents, projects and tasks with their current
// states and event counts, listable with filters and cursor pagination.
//
// Layout in the store (values are JSON objects; docs/read-models.md):
//   agent/<id>, project/<id>, task/<id>            the records
//   ix/<kind>/<field>/<value>/<id>                 "" (filter indexes)
// Index fields: agent status, domain; project phase, archived; task status,
// project, assignee, domain. Index values are escaped ('%' and '/' as %25,
// %2F) so any value keeps its own key range.

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/model_store.h"
#include "projections/projection.h"

namespace engram::projections {

struct CatalogOptions {
  // Decoded records kept between batches on the worker's thread (least
  // recently used evicted first), so a record that keeps changing is not
  // re-read and re-parsed every batch. A decoded record takes about 1-2 KiB,
  // so the default bounds the cache near 16-32 MiB. 0: no cache.
  size_t cache_max_records = 16'384;
};

// apply() decodes each record a batch touches once (from the cache, else
// from the store), applies all of the batch's events to it in memory, and
// writes each touched record and its net index changes once, at the end.
// The cache only ever holds what a commit made durable: records enter it in
// committed(), are taken out while a batch changes them, and the whole cache
// is dropped when apply() fails, when open() starts a new worker, or when a
// batch of another store arrives (replay verify builds two stores with one
// instance).
class CatalogProjection final : public Projection {
 public:
  explicit CatalogProjection(CatalogOptions options = {});
  ~CatalogProjection() override;
  CatalogProjection(const CatalogProjection&) = delete;
  CatalogProjection& operator=(const CatalogProjection&) = delete;

  std::string_view name() const override { return "catalog"; }
  uint32_t version() const override { return 1; }
  std::vector<std::string> event_types() const override;
  core::result<void> apply(std::span<const core::RecordedEvent> events,
                           core::ModelStore::Batch& batch) override;
  core::result<core::Position> open(const core::ModelStore& store,
                                    const std::filesystem::path& dir) override;
  core::result<void> committed(const core::ModelStore& store, core::Position position) override;

  struct CacheStats {
    uint64_t hits = 0;    // records a batch found decoded in the cache
    uint64_t misses = 0;  // records a batch read from the store (or found absent)
    size_t records = 0;   // now in the cache
  };
  CacheStats cache_stats() const;

  struct State;  // the cache and what the last apply() wrote; in catalog.cc

 private:
  std::unique_ptr<State> state_;
};

enum class CatalogKind { agent, project, task };

struct CatalogQuery {
  CatalogKind kind = CatalogKind::agent;
  // Field = value filters, all of which must hold; fields as in the layout
  // above. An unknown field is errc::invalid_argument.
  std::vector<std::pair<std::string, std::string>> filters;
  std::string cursor;  // from the previous page's next_cursor; empty: the start
  size_t limit = 100;
};

struct CatalogPage {
  std::vector<nlohmann::json> items;
  std::string next_cursor;  // empty: no more
};

// Pages through the catalog. At most min(limit, kMaxPage) items, and at most
// kMaxScanned index entries examined per call (a page may come back short
// with a cursor when filters reject many entries).
inline constexpr size_t kCatalogMaxPage = 1000;
inline constexpr size_t kCatalogMaxScanned = 10'000;
core::result<CatalogPage> list_catalog(const core::ModelStore& store, const CatalogQuery& query);
// One record, or nullopt.
core::result<std::optional<nlohmann::json>> get_catalog(const core::ModelStore& store,
                                                        CatalogKind kind, std::string_view id);
// The filter fields of a kind.
const std::vector<std::string>& catalog_fields(CatalogKind kind);

}  // namespace engram::projections
