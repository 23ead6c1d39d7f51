#pragma once

// The read-model query routes' requests and answers: query strings and
// bodies checked and turned into projection queries, hits rendered as JSON.
// No I/O and no waiting here: the routes_*.cc files route, wait for
// min_position and answer. The route table refuses parameters a route does
// not list (and any given twice) before these run. Every refusal is a
// Problem (400 bad_query naming the parameter, 403 for another owner's
// memories); docs/http-api.md has the routes.

#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "adapters/http/problem.h"
#include "adapters/http/router.h"
#include "commands/bus.h"
#include "core/result.h"
#include "projections/knowledge.h"
#include "projections/memories.h"
#include "projections/patterns.h"

namespace engram::http {

// The parameter every query route takes besides its own: wait until the
// read model reflects this log position.
inline constexpr std::string_view kMinPositionParam = "min_position";

// `params` and min_position, for a route's declaration.
std::vector<std::string> with_min_position(std::span<const std::string_view> params);

// GET /v1/knowledge/search: q (required), mode, domain, tag, agent, limit.
inline constexpr std::string_view kKnowledgeSearchParams[] = {"q",   "mode",  "domain",
                                                             "tag", "agent", "limit"};
core::result<projections::KnowledgeQuery, Problem> parse_knowledge_search(const QueryParams& q);
nlohmann::json render_knowledge_hits(const std::vector<projections::KnowledgeHit>& hits);

// GET /v1/patterns/recommend: domain (required), limit.
inline constexpr std::string_view kRecommendParams[] = {"domain", "limit"};
struct RecommendQuery {
  std::string domain;
  size_t limit = 20;
};
core::result<RecommendQuery, Problem> parse_recommend(const QueryParams& q);

// GET /v1/patterns/{id}/similar: limit, min_score.
inline constexpr std::string_view kSimilarParams[] = {"limit", "min_score"};
struct SimilarQuery {
  size_t limit = 20;
  std::optional<double> min_score;
};
core::result<SimilarQuery, Problem> parse_similar(const QueryParams& q);
nlohmann::json render_similar(const std::vector<projections::SimilarPattern>& hits);

// POST /v1/memories/search, body: {"owner", "text" | "vector", "k",
// "tags", "min_importance"}. Only the owner's own agent or an admin may
// search an owner's memories (as on the write side). now_ms is the caller's
// clock, for recency.
core::result<projections::MemoryQuery, Problem> parse_memory_search(const nlohmann::json& body,
                                                                    const commands::Principal& who,
                                                                    size_t dimensions,
                                                                    int64_t now_ms);
nlohmann::json render_memory_hits(const std::vector<projections::MemoryHit>& hits);

}  // namespace engram::http
