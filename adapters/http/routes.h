#pragma once

// The route table: one declaration per route (method, path template, who
// may call it, the query parameters it takes, its handler), gathered from
// one file per resource. api.cc matches requests against it (router.h) and
// runs the middleware (middleware.h) before a handler; docs/openapi.yaml
// documents exactly these routes (tests/adapters/http/openapi_test.cc).
//
// A handler runs on an I/O thread after authentication, the rate limits,
// the role check and the query-parameter check: it must not block (reads
// of the log are bounded pages; read-model and audit queries go through
// QueryRunner). It answers its Exchange exactly once, from any thread.

#include <functional>
#include <string>
#include <vector>

#include "adapters/http/api.h"
#include "adapters/http/exchange.h"
#include "adapters/http/feed.h"
#include "adapters/http/query_runner.h"
#include "commands/bus.h"
#include "core/log.h"
#include "core/metrics.h"

namespace engram::http {

// Who may call a route: anyone (no token), any valid token, or a token with
// one of `roles`.
struct Access {
  bool token = true;
  std::vector<commands::Role> roles;  // empty: any role
};
inline const Access kAnyone{false, {}};
inline const Access kAnyToken{true, {}};
inline Access roles(std::vector<commands::Role> r) {
  return Access{true, std::move(r)};
}

using RouteHandler = std::function<void(const ExchangePtr&)>;

struct Route {
  std::string method;  // "GET", "POST"
  std::string path;    // a template (router.h)
  Access access;
  // The query parameters the route takes; others are refused (400
  // bad_query naming the parameter), as is one given twice.
  std::vector<std::string> query;
  RouteHandler handler;
};

// What the handlers work with; outlives every request.
struct Services {
  core::Log& log;
  commands::CommandBus& bus;
  core::metrics::Registry& metrics;
  const ApiOptions& options;
  Feed& feed;
  QueryRunner& queries;
};

// One function per resource, each in its routes_<resource>.cc.
std::vector<Route> command_routes(Services& s);     // POST /v1/commands/{type}
std::vector<Route> stream_routes(Services& s);      // /v1/streams/{stream}, /v1/log
std::vector<Route> subscribe_routes(Services& s);   // /v1/subscribe
std::vector<Route> catalog_routes(Services& s);     // /v1/agents, /v1/projects, /v1/tasks
std::vector<Route> knowledge_routes(Services& s);   // /v1/knowledge/...
std::vector<Route> pattern_routes(Services& s);     // /v1/patterns/...
std::vector<Route> memory_routes(Services& s);      // /v1/memories/search
std::vector<Route> audit_routes(Services& s);       // /v1/audit/...
std::vector<Route> operation_routes(Services& s);   // /healthz, /readyz, /metrics, /v1/openapi.yaml

// Every route above, in one list.
std::vector<Route> all_routes(Services& s);

// --- shared by the route files ---

// A JSON response of `body`, compact, invalid UTF-8 replaced.
Response json_response(int status, const nlohmann::json& body);
std::string dump_json(const nlohmann::json& j);

// The body as a JSON object, read by the strict parser (core/json.h):
// content type application/json (else 415), valid JSON nesting at most
// max_json_depth (else 400 malformed_json), no name repeated within an
// object (else 400 duplicate_field naming it), an object (else 400
// invalid_field). nullopt after answering.
std::optional<nlohmann::json> json_body(const ExchangePtr& x, const ApiOptions& options);

// The headers of a request that writes (a command, a generic append):
// X-Correlation-Id and X-Causation-Id, UUIDs (nil when absent), and
// Idempotency-Key (commands/idempotency.h). nullopt after answering 400
// bad_header naming the header.
struct WriteHeaders {
  core::Uuid correlation_id;
  core::Uuid causation_id;
  std::optional<std::string> idempotency_key;
  std::string correlation_text;  // as sent, echoed in the answer
};
std::optional<WriteHeaders> write_headers(const ExchangePtr& x);

// Adds X-Correlation-Id to a write's answer when the request sent one.
void echo_correlation(Response& r, const WriteHeaders& h);

// An event as the reads render it (bus.render_event), memory content
// redacted for `who` (commands/visibility.h).
nlohmann::json render_event(const commands::CommandBus& bus, const core::RecordedEvent& e,
                            const commands::Principal& who);

}  // namespace engram::http
