#include "adapters/http/queries.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>

#include "commands/visibility.h"

namespace engram::http {
namespace {

using nlohmann::json;

Problem bad(std::string field, std::string detail) {
  return Problem{400, "bad_query", std::move(detail), std::move(field), {}, {}};
}

std::optional<std::string> param(const QueryParams& q, std::string_view name) {
  for (const auto& [k, v] : q) {
    if (k == name) return v;
  }
  return std::nullopt;
}

// An integer limit in [1, max]; `dflt` when absent.
core::result<size_t, Problem> limit_of(const QueryParams& q, size_t dflt, size_t max) {
  auto v = param(q, "limit");
  if (!v) return dflt;
  size_t n = 0;
  auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
  if (ec != std::errc() || end != v->data() + v->size() || n == 0 || n > max) {
    return bad("limit", fmt::format("'limit' must be an integer in 1..{}", max));
  }
  return n;
}

json item_or_null(const std::optional<size_t>& v) {
  return v ? json(*v) : json(nullptr);
}
json item_or_null(const std::optional<double>& v) {
  return v ? json(*v) : json(nullptr);
}

}  // namespace

std::vector<std::string> with_min_position(std::span<const std::string_view> params) {
  std::vector<std::string> out(params.begin(), params.end());
  out.emplace_back(kMinPositionParam);
  return out;
}

core::result<projections::KnowledgeQuery, Problem> parse_knowledge_search(const QueryParams& q) {
  projections::KnowledgeQuery out;
  auto text = param(q, "q");
  if (!text || text->empty()) return bad("q", "'q' (the search text) is required");
  if (text->size() > projections::kKnowledgeMaxTextBytes) {
    return bad("q", fmt::format("'q' is over {} bytes", projections::kKnowledgeMaxTextBytes));
  }
  out.text = std::move(*text);
  const std::string mode = param(q, "mode").value_or("hybrid");
  if (mode == "keyword") {
    out.mode = projections::KnowledgeQuery::Mode::keyword;
  } else if (mode == "semantic") {
    out.mode = projections::KnowledgeQuery::Mode::semantic;
  } else if (mode == "hybrid") {
    out.mode = projections::KnowledgeQuery::Mode::hybrid;
  } else {
    return bad("mode", "'mode' must be keyword, semantic or hybrid");
  }
  for (auto [name, field] : {std::pair{"domain", &out.domain}, std::pair{"tag", &out.tag},
                             std::pair{"agent", &out.agent}}) {
    auto v = param(q, name);
    if (!v) continue;
    if (v->empty() || v->size() > projections::kKnowledgeMaxFilterBytes) {
      return bad(name, fmt::format("'{}' must be 1..{} bytes", name,
                                   projections::kKnowledgeMaxFilterBytes));
    }
    *field = std::move(*v);
  }
  auto limit = limit_of(q, 20, projections::kKnowledgeMaxLimit);
  if (!limit) return limit.error();
  out.limit = *limit;
  return out;
}

json render_knowledge_hits(const std::vector<projections::KnowledgeHit>& hits) {
  json items = json::array();
  for (const auto& h : hits) {
    json item = h.item;
    item["score"] = h.score;
    item["keyword_rank"] = item_or_null(h.keyword_rank);
    item["semantic_rank"] = item_or_null(h.semantic_rank);
    item["keyword_score"] = item_or_null(h.keyword_score);
    item["semantic_score"] = item_or_null(h.semantic_score);
    items.push_back(std::move(item));
  }
  return json{{"items", std::move(items)}};
}

core::result<RecommendQuery, Problem> parse_recommend(const QueryParams& q) {
  RecommendQuery out;
  auto domain = param(q, "domain");
  if (!domain || domain->empty()) return bad("domain", "'domain' is required");
  out.domain = std::move(*domain);
  auto limit = limit_of(q, 20, projections::kPatternsMaxLimit);
  if (!limit) return limit.error();
  out.limit = *limit;
  return out;
}

core::result<SimilarQuery, Problem> parse_similar(const QueryParams& q) {
  SimilarQuery out;
  auto limit = limit_of(q, 20, projections::kPatternsMaxLimit);
  if (!limit) return limit.error();
  out.limit = *limit;
  if (auto v = param(q, "min_score")) {
    double d = 0;
    auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), d);
    if (ec != std::errc() || end != v->data() + v->size() || !std::isfinite(d) || d < -1 || d > 1) {
      return bad("min_score", "'min_score' must be a number in -1..1");
    }
    out.min_score = d;
  }
  return out;
}

json render_similar(const std::vector<projections::SimilarPattern>& hits) {
  json items = json::array();
  for (const auto& h : hits) {
    json item = h.pattern;
    item["score"] = h.score;
    items.push_back(std::move(item));
  }
  return json{{"items", std::move(items)}};
}

core::result<projections::MemoryQuery, Problem> parse_memory_search(const json& body,
                                                                    const commands::Principal& who,
                                                                    size_t dimensions,
                                                                    int64_t now_ms) {
  auto field = [](std::string name, std::string detail) {
    return Problem{400, "invalid_field", std::move(detail), "/" + name, {}, {}};
  };
  if (!body.is_object()) return field("", "the body must be a JSON object");
  for (const auto& [k, v] : body.items()) {
    if (k != "owner" && k != "text" && k != "vector" && k != "k" && k != "tags" &&
        k != "min_importance") {
      return field(k, fmt::format("unknown field '{}'", k));
    }
  }
  projections::MemoryQuery q;
  q.now_ms = now_ms;
  const auto owner = body.find("owner");
  if (owner == body.end() || !owner->is_string() || owner->get_ref<const std::string&>().empty() ||
      owner->get_ref<const std::string&>().size() > 128) {
    return field("owner", "'owner' must be a string of 1..128 bytes");
  }
  q.owner = owner->get<std::string>();
  if (!commands::may_search_memories(who, q.owner)) {
    return Problem{403, "not_own_memory", "an agent may search only its own memories", {}, {}, {}};
  }
  const bool has_text = body.contains("text");
  const bool has_vector = body.contains("vector");
  if (has_text == has_vector) return field("text", "give exactly one of 'text' and 'vector'");
  if (has_text) {
    const auto& t = body["text"];
    if (!t.is_string() || t.get_ref<const std::string&>().empty() ||
        t.get_ref<const std::string&>().size() > projections::kMemoryMaxTextBytes) {
      return field("text", fmt::format("'text' must be a string of 1..{} bytes",
                                       projections::kMemoryMaxTextBytes));
    }
    q.text = t.get<std::string>();
  } else {
    const auto& v = body["vector"];
    if (!v.is_array() || v.size() != dimensions) {
      return field("vector", fmt::format("'vector' must be an array of {} numbers", dimensions));
    }
    std::vector<float> values;
    values.reserve(dimensions);
    double norm = 0;
    for (const auto& x : v) {
      if (!x.is_number()) return field("vector", "'vector' must hold numbers only");
      const double d = x.get<double>();
      if (!std::isfinite(d) || std::fabs(d) > 1e6) {
        return field("vector", "'vector' values must be finite and at most 1e6 in size");
      }
      norm += d * d;
      values.push_back(static_cast<float>(d));
    }
    if (norm == 0) return field("vector", "'vector' must not be all zeros");
    q.vector = std::move(values);
  }
  if (body.contains("k")) {
    const auto& k = body["k"];
    if (!k.is_number_integer() || k.get<int64_t>() < 1 ||
        k.get<int64_t>() > static_cast<int64_t>(projections::kMemoryMaxK)) {
      return field("k", fmt::format("'k' must be an integer in 1..{}", projections::kMemoryMaxK));
    }
    q.k = k.get<size_t>();
  }
  if (body.contains("tags")) {
    const auto& tags = body["tags"];
    if (!tags.is_array() || tags.size() > projections::kMemoryMaxTags) {
      return field("tags", fmt::format("'tags' must be an array of at most {} strings",
                                       projections::kMemoryMaxTags));
    }
    for (const auto& t : tags) {
      if (!t.is_string() || t.get_ref<const std::string&>().empty() ||
          t.get_ref<const std::string&>().size() > 128) {
        return field("tags", "each tag must be a string of 1..128 bytes");
      }
      q.tags.push_back(t.get<std::string>());
    }
  }
  if (body.contains("min_importance")) {
    const auto& m = body["min_importance"];
    if (!m.is_number() || m.get<double>() < 0 || m.get<double>() > 1) {
      return field("min_importance", "'min_importance' must be a number in 0..1");
    }
    q.min_importance = m.get<double>();
  }
  return q;
}

json render_memory_hits(const std::vector<projections::MemoryHit>& hits) {
  json items = json::array();
  for (const auto& h : hits) {
    items.push_back({{"memory_id", h.memory_id},
                     {"content", h.content},
                     {"importance", h.importance},
                     {"tags", h.tags},
                     {"stored_at_ms", h.stored_at_ms},
                     {"similarity", h.similarity},
                     {"recency", h.recency},
                     {"score", h.score}});
  }
  return json{{"items", std::move(items)}};
}

}  // namespace engram::http
