// GET /healthz, /readyz, /metrics and /v1/openapi.yaml.

#include <fmt/format.h>

#include "adapters/http/routes.h"
#include "projections/runtime.h"

namespace engram::http {
namespace {

using commands::Role;

void healthz(const ExchangePtr& x) {
  x->answer(json_response(200, {{"status", "ok"}}));
}

// Ready means the node can take writes and answer every read model: the
// log is writable and no projection is unavailable (a failed serving
// worker stays failed until a restart). A failed rebuild beside a healthy
// serving version, or a rebuild under way, is shown but keeps the node
// ready: queries are answered by what served before.
void readyz(Services& s, const ExchangePtr& x) {
  const core::Health h = s.log.health();
  nlohmann::json projections = nlohmann::json::object();
  std::string unavailable;
  if (s.options.read_side != nullptr) {
    for (const auto& [name, st] : s.options.read_side->statuses()) {
      nlohmann::json p = {{"version", st.serving_version},
                          {"position", st.serving_position.value()}};
      if (st.building_version != 0) p["rebuilding_version"] = st.building_version;
      if (st.failed) p["failure"] = st.failure;
      projections[name] = std::move(p);
      if (st.unavailable && unavailable.empty()) {
        unavailable = fmt::format("projection {} failed: {}", name, st.failure);
      }
    }
  }
  const std::string reason = !h.writable ? h.reason : unavailable;
  if (!reason.empty()) {
    Response r = json_response(
        503, {{"status", "not_ready"}, {"reason", reason}, {"projections", projections}});
    r.headers.emplace_back("Retry-After", "5");
    x->answer(std::move(r));
    return;
  }
  x->answer(json_response(200, {{"status", "ready"},
                                {"head", s.log.head().position.value()},
                                {"projections", projections}}));
}

void metrics(Services& s, const ExchangePtr& x) {
  Response r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  r.body = s.metrics.render();
  x->answer(std::move(r));
}

void openapi(Services& s, const ExchangePtr& x) {
  Response r;
  r.content_type = "application/yaml";
  r.body = s.options.openapi_yaml;
  x->answer(std::move(r));
}

}  // namespace

std::vector<Route> operation_routes(Services& s) {
  return {
      {"GET", "/healthz", kAnyone, {}, healthz},
      {"GET", "/readyz", kAnyone, {}, [&s](const ExchangePtr& x) { readyz(s, x); }},
      {"GET", "/metrics", roles({Role::admin, Role::reader, Role::replicator}), {},
       [&s](const ExchangePtr& x) { metrics(s, x); }},
      {"GET", "/v1/openapi.yaml", kAnyone, {}, [&s](const ExchangePtr& x) { openapi(s, x); }},
  };
}

}  // namespace engram::http
