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
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/model_store.h"
#include "projections/projection.h"

namespace engram::projections {

class CatalogProjection final : public Projection {
 public:
  std::string_view name() const override { return "catalog"; }
  uint32_t version() const override { return 1; }
  std::vector<std::string> event_types() const override;
  core::result<void> apply(std::span<const core::RecordedEvent> events,
                           core::ModelStore::Batch& batch) override;
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
