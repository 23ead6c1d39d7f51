// The route table as one list, and what the route files share.

#include "adapters/http/routes.h"

#include <fmt/format.h>

#include <algorithm>

#include "commands/idempotency.h"
#include "commands/visibility.h"
#include "core/json.h"

namespace engram::http {

using nlohmann::json;

std::vector<Route> all_routes(Services& s) {
  std::vector<Route> out;
  for (auto* part : {operation_routes, command_routes, stream_routes, subscribe_routes,
                     catalog_routes, knowledge_routes, pattern_routes, memory_routes,
                     audit_routes}) {
    auto routes = part(s);
    std::move(routes.begin(), routes.end(), std::back_inserter(out));
  }
  return out;
}

std::string dump_json(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

Response json_response(int status, const json& body) {
  Response r;
  r.status = status;
  r.body = dump_json(body);
  return r;
}

namespace {

bool is_json_content_type(std::string_view ct) {
  std::string base(ct.substr(0, ct.find(';')));
  base.erase(std::remove(base.begin(), base.end(), ' '), base.end());
  std::transform(base.begin(), base.end(), base.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return base == "application/json";
}

}  // namespace

std::optional<json> json_body(const ExchangePtr& x, const ApiOptions& options) {
  if (!is_json_content_type(x->request().header("content-type"))) {
    x->fail({415, "unsupported_media_type", "the body must be application/json", {}, {}, {}});
    return std::nullopt;
  }
  auto body = core::parse_json_object(x->request().body, options.max_json_depth);
  if (body) return std::move(*body);
  const core::JsonError& e = body.error();
  switch (e.code) {
    case core::JsonErrc::syntax:
    case core::JsonErrc::too_deep:
      x->fail({400, "malformed_json", e.message, {}, {}, {}});
      break;
    case core::JsonErrc::duplicate_key:
      x->fail({400, "duplicate_field", e.message, e.pointer, {}, {}});
      break;
    case core::JsonErrc::not_object:
      x->fail({400, "invalid_field", "the body must be a JSON object: " + e.message, "", {}, {}});
      break;
  }
  return std::nullopt;
}

namespace {

// A UUID header (nil when absent), or 400 bad_header (answered; nullopt).
std::optional<core::Uuid> uuid_header(const ExchangePtr& x, std::string_view lower_name,
                                      std::string_view name) {
  const std::string_view h = x->request().header(lower_name);
  if (h.empty()) return core::Uuid{};
  auto u = core::Uuid::parse(h);
  if (!u) {
    x->fail(
        {400, "bad_header", fmt::format("{} must be a UUID", name), std::string(name), {}, {}});
    return std::nullopt;
  }
  return u;
}

}  // namespace

std::optional<WriteHeaders> write_headers(const ExchangePtr& x) {
  auto correlation = uuid_header(x, "x-correlation-id", "X-Correlation-Id");
  if (!correlation) return std::nullopt;
  auto causation = uuid_header(x, "x-causation-id", "X-Causation-Id");
  if (!causation) return std::nullopt;
  WriteHeaders out{*correlation, *causation, {}, std::string(x->request().header("x-correlation-id"))};
  const std::string_view key = x->request().header("idempotency-key");
  if (key.empty()) return out;
  if (!commands::valid_idempotency_key(key)) {
    x->fail({400,
             "bad_header",
             std::string(commands::kIdempotencyKeyRule),
             "Idempotency-Key",
             {},
             {}});
    return std::nullopt;
  }
  out.idempotency_key = std::string(key);
  return out;
}

void echo_correlation(Response& r, const WriteHeaders& h) {
  if (!h.correlation_text.empty()) r.headers.emplace_back("X-Correlation-Id", h.correlation_text);
}

json render_event(const commands::CommandBus& bus, const core::RecordedEvent& e,
                  const commands::Principal& who) {
  json j = bus.render_event(e);
  commands::redact_event(j, who);
  return j;
}

}  // namespace engram::http
