// The patterns read model: GET /v1/patterns/recommend, /v1/patterns/{id}
// and /v1/patterns/{id}/similar.

#include "adapters/http/queries.h"
#include "adapters/http/routes.h"
#include "projections/patterns.h"

namespace engram::http {
namespace {

using nlohmann::json;

void recommend(Services& s, const ExchangePtr& x) {
  auto q = parse_recommend(x->query());
  if (!q) return x->fail(q.error());
  s.queries.read_model(x, "patterns", [x, q = std::move(*q)](const projections::Worker& w) {
    auto items = projections::recommend_patterns(w.store(), q.domain, q.limit);
    if (!items) return x->problem(problem_from_query(items.error()));
    return json_response(200, json{{"items", *items}});
  });
}

void get(Services& s, const ExchangePtr& x) {
  s.queries.read_model(x, "patterns", [x](const projections::Worker& w) {
    auto item = projections::get_pattern(w.store(), x->param("id"));
    if (!item) return x->problem(problem_from_query(item.error()));
    return json_response(200, *item);
  });
}

void similar(Services& s, const ExchangePtr& x) {
  auto q = parse_similar(x->query());
  if (!q) return x->fail(q.error());
  s.queries.read_model(x, "patterns", [x, q = std::move(*q)](const projections::Worker& w) {
    const auto& p = dynamic_cast<const projections::PatternsProjection&>(w.projection());
    auto hits = projections::similar_patterns(p, w.store(), x->param("id"), q.limit, q.min_score);
    if (!hits) return x->problem(problem_from_query(hits.error()));
    return json_response(200, render_similar(*hits));
  });
}

}  // namespace

std::vector<Route> pattern_routes(Services& s) {
  return {
      {"GET", "/v1/patterns/recommend", kAnyToken, with_min_position(kRecommendParams),
       [&s](const ExchangePtr& x) { recommend(s, x); }},
      {"GET", "/v1/patterns/{id}", kAnyToken, {std::string(kMinPositionParam)},
       [&s](const ExchangePtr& x) { get(s, x); }},
      {"GET", "/v1/patterns/{id}/similar", kAnyToken, with_min_position(kSimilarParams),
       [&s](const ExchangePtr& x) { similar(s, x); }},
  };
}

}  // namespace engram::http
