#pragma once

// The read-model query routes' requests and answers: query strings and
// bodies checked and turned into projection queries, hits rendered as JSON.
// No I/O and no waiting here: api.cc routes, waits for min_position and
// answers. Every refusal is a Problem (400 bad_query naming the parameter,
// 403 for another owner's memories); docs/http-api.md has the routes.

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "adapters/http/problem.h"
#include "commands/bus.h"
#include "core/result.h"
#include "projections/knowledge.h"
#include "projections/memories.h"
#include "projections/patterns.h"

namespace engram::http {

using QueryParams = std::vector<std::pair<std::string, std::string>>;

// GET /v1/knowledge/search: q (required), mode, domain, tag, agent, limit.
core::result<projections::KnowledgeQuery, Problem> parse_knowledge_search(const QueryParams& q);
nlohmann::json render_knowledge_hits(const std::vector<projections::KnowledgeHit>& hits);

// GET /v1/patterns/recommend: domain (required), limit.
struct RecommendQuery {
  std::string domain;
  size_t limit = 20;
};
core::result<RecommendQuery, Problem> parse_recommend(const QueryParams& q);

// GET /v1/patterns/{id}/similar: limit, min_score.
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

// The route parameters besides the query's own (min_position, always
// allowed).
inline constexpr std::string_view kMinPositionParam = "min_position";

}  // namespace engram::http
