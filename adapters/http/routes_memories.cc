// The memories read model: POST /v1/memories/search (kNN over one owner's
// memories).

#include "adapters/http/queries.h"
#include "adapters/http/routes.h"
#include "core/clock.h"
#include "projections/memories.h"

namespace engram::http {
namespace {

void search(Services& s, const ExchangePtr& x) {
  auto body = json_body(x, s.options);
  if (!body) return;
  auto serving = s.queries.serving(x, "memories");
  if (serving == nullptr) return;
  const size_t dims =
      dynamic_cast<const projections::MemoriesProjection&>(serving->projection()).dimensions();
  auto q = parse_memory_search(*body, x->principal(), dims, core::system_clock()->now_ns() / 1'000'000);
  if (!q) return x->fail(q.error());
  s.queries.read_model(x, "memories", [x, q = std::move(*q)](const projections::Worker& w) {
    const auto& m = dynamic_cast<const projections::MemoriesProjection&>(w.projection());
    auto hits = projections::search_memories(m, w.store(), q);
    if (!hits) return x->problem(problem_from_query(hits.error()));
    return json_response(200, render_memory_hits(*hits));
  });
}

}  // namespace

std::vector<Route> memory_routes(Services& s) {
  // Whose memories a principal may search is commands/visibility.h's to say.
  return {{"POST", "/v1/memories/search", kAnyToken, {std::string(kMinPositionParam)},
           [&s](const ExchangePtr& x) { search(s, x); }}};
}

}  // namespace engram::http
