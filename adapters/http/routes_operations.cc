// GET /healthz, /readyz, /metrics and /v1/openapi.yaml.

#include "adapters/http/routes.h"

namespace engram::http {
namespace {

using commands::Role;

void healthz(const ExchangePtr& x) {
  x->answer(json_response(200, {{"status", "ok"}}));
}

void readyz(Services& s, const ExchangePtr& x) {
  const core::Health h = s.log.health();
  if (!h.writable) {
    Response r = json_response(503, {{"status", "not_ready"}, {"reason", h.reason}});
    r.headers.emplace_back("Retry-After", "5");
    x->answer(std::move(r));
    return;
  }
  x->answer(json_response(200, {{"status", "ready"}, {"head", s.log.head().position.value()}}));
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
