// The knowledge read model: GET /v1/knowledge/search and
// /v1/knowledge/{id}.

#include <fmt/format.h>

#include "adapters/http/queries.h"
#include "adapters/http/routes.h"
#include "projections/knowledge.h"

namespace engram::http {
namespace {

void search(Services& s, const ExchangePtr& x) {
  auto q = parse_knowledge_search(x->query());
  if (!q) return x->fail(q.error());
  s.queries.read_model(x, "knowledge", [x, q = std::move(*q)](const projections::Worker& w) {
    const auto& k = dynamic_cast<const projections::KnowledgeProjection&>(w.projection());
    auto hits = projections::search_knowledge(k, w.store(), q);
    if (!hits) return x->problem(problem_from_query(hits.error()));
    return json_response(200, render_knowledge_hits(*hits));
  });
}

void get(Services& s, const ExchangePtr& x) {
  s.queries.read_model(x, "knowledge", [x](const projections::Worker& w) {
    const std::string& id = x->param("id");
    auto item = projections::get_knowledge(w.store(), id);
    if (!item) return x->problem(problem_from_query(item.error()));
    if (!item->has_value()) {
      return x->problem({404, "not_found", fmt::format("no knowledge item '{}'", id), {}, {}, {}});
    }
    return json_response(200, **item);
  });
}

}  // namespace

std::vector<Route> knowledge_routes(Services& s) {
  return {
      {"GET", "/v1/knowledge/search", kAnyToken, with_min_position(kKnowledgeSearchParams),
       [&s](const ExchangePtr& x) { search(s, x); }},
      {"GET", "/v1/knowledge/{id}", kAnyToken, {std::string(kMinPositionParam)},
       [&s](const ExchangePtr& x) { get(s, x); }},
  };
}

}  // namespace engram::http
