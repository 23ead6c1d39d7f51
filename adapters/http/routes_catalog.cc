// The catalog read model: GET /v1/agents, /v1/projects, /v1/tasks (pages
// with filters) and /v1/{kind}s/{id} (one record).

#include <fmt/format.h>

#include "adapters/http/routes.h"
#include "projections/catalog.h"

namespace engram::http {
namespace {

using nlohmann::json;

// A catalog cursor is a record id (ids are at most 128 bytes).
constexpr size_t kMaxCursorBytes = 256;
constexpr std::string_view kPageParams[] = {"cursor", "limit", "min_position"};

void list(Services& s, const ExchangePtr& x, projections::CatalogKind kind) {
  projections::CatalogQuery q;
  q.kind = kind;
  for (const auto& [k, v] : x->query()) {
    if (std::find(std::begin(kPageParams), std::end(kPageParams), k) == std::end(kPageParams)) {
      q.filters.emplace_back(k, v);
    }
  }
  auto limit = x->query_u64("limit", s.options.default_page_size, 1, s.options.max_page_size);
  if (!limit) return;
  q.limit = *limit;
  q.cursor = x->query("cursor").value_or("");
  if (q.cursor.size() > kMaxCursorBytes) {
    return x->fail({400,
                    "bad_query",
                    fmt::format("cursor is over {} bytes", kMaxCursorBytes),
                    "cursor",
                    {},
                    {}});
  }
  s.queries.read_model(x, "catalog", [x, q = std::move(q)](const projections::Worker& w) {
    auto page = projections::list_catalog(w.store(), q);
    if (!page) return x->problem(problem_from_log(page.error()));
    return json_response(
        200, {{"items", page->items},
              {"next_cursor", page->next_cursor.empty() ? json(nullptr) : json(page->next_cursor)}});
  });
}

void get(Services& s, const ExchangePtr& x, projections::CatalogKind kind) {
  s.queries.read_model(x, "catalog", [x, kind](const projections::Worker& w) {
    const std::string& id = x->param("id");
    auto r = projections::get_catalog(w.store(), kind, id);
    if (!r) return x->problem(problem_from_log(r.error()));
    if (!r->has_value()) {
      return x->problem({404, "not_found", fmt::format("no such record '{}'", id), {}, {}, {}});
    }
    return json_response(200, **r);
  });
}

}  // namespace

std::vector<Route> catalog_routes(Services& s) {
  std::vector<Route> out;
  for (const auto& [name, catalog] : {std::pair{"agents", projections::CatalogKind::agent},
                                      std::pair{"projects", projections::CatalogKind::project},
                                      std::pair{"tasks", projections::CatalogKind::task}}) {
    // A copy: clang before 16 cannot capture a structured binding (tests/fuzz builds with clang).
    const projections::CatalogKind kind = catalog;
    std::vector<std::string> params(std::begin(kPageParams), std::end(kPageParams));
    for (const auto& f : projections::catalog_fields(kind)) params.push_back(f);
    const std::string base = fmt::format("/v1/{}", name);
    out.push_back({"GET", base, kAnyToken, std::move(params),
                   [&s, kind](const ExchangePtr& x) { list(s, x, kind); }});
    out.push_back({"GET", base + "/{id}", kAnyToken, {"min_position"},
                   [&s, kind](const ExchangePtr& x) { get(s, x, kind); }});
  }
  return out;
}

}  // namespace engram::http
