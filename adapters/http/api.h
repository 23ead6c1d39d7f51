#pragma once

// engram's HTTP API (docs/http-api.md, docs/openapi.yaml): a Handler that
// matches each request against the route table (routes.h), runs the
// middleware (middleware.h: rate limits, authentication, roles, metrics,
// access log) and the route's handler, and turns every failure into
// application/problem+json (RFC 9457). No Beast here: the Server hands
// over parsed requests.

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "adapters/http/feed.h"
#include "adapters/http/query_runner.h"
#include "adapters/http/server.h"
#include "commands/bus.h"
#include "core/clock.h"
#include "core/flexjson.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/model_store.h"
#include "projections/runtime.h"

namespace engram::http {

struct AuthFailure {
  std::string code;  // "expired", "bad_signature"...
  std::string detail;
};
// Turns a bearer token into a principal (adapters/auth does the work; the
// caller wires it in).
using Authenticator =
    std::function<core::result<commands::Principal, AuthFailure>(std::string_view token)>;

struct ApiOptions {
  size_t max_events_per_request = 100;
  size_t max_page_size = 1000;
  size_t default_page_size = 100;
  size_t max_json_depth = core::kMaxJsonDepth;
  // Token buckets; a rate of 0 turns that limit off.
  double per_token_rps = 5000;
  double per_token_burst = 10000;
  double per_ip_rps = 20000;
  double per_ip_burst = 40000;
  size_t rate_limit_max_clients = 100'000;
  // Null: authentication is off and every request acts as an admin. Only the
  // serve command's loopback check may allow that.
  Authenticator authenticate;
  bool access_log = true;
  std::string openapi_yaml;  // served at /v1/openapi.yaml
  // The read models; null: the query routes answer 503.
  projections::Runtime* read_side = nullptr;
  // How long a query waits for min_position before answering 504.
  uint64_t max_wait_ms = 5000;
  // The query pool: read-model and audit queries run on `threads` threads,
  // never on the I/O threads; beyond `max_queued` waiting queries a query is
  // refused with 503 overloaded (Retry-After: 1).
  QueryPoolOptions queries;
  // The live feed (GET /v1/subscribe): heartbeats, slow-consumer cut-off,
  // piece bounds, max_subscribers (503 beyond).
  FeedOptions feed;
  // The audit routes (/v1/audit/..., admin only; adapters/audit/audit.h).
  // The serving audit projection's store, or null (none, or being rebuilt):
  // the queries then scan the log past what the index covers, within
  // projections::kMaxTailScanEvents. Unset: no index.
  std::function<const core::ModelStore*()> audit_index;
  // The data dir's signed checkpoints (core::DataDir::checkpoints_file()) and the
  // public key file that verify holds them to (<data>/audit/signing-key.pem.pub).
  std::filesystem::path audit_checkpoints;
  std::filesystem::path audit_public_key;
  // Events one GET /v1/audit/verify may check (400 beyond): a verify holds
  // one query thread, about 1 s per million events.
  uint64_t max_audit_verify_events = 1'000'000;
};

class Api final : public Handler {
 public:
  Api(core::Log& log, commands::CommandBus& bus, core::metrics::Registry& metrics,
      ApiOptions options);
  ~Api() override;

  void handle(Request request, Respond respond) override;
  Response protocol_error(int status, std::string_view detail, std::string_view remote_ip) override;

  // The route table: each route's method, path template and query
  // parameters (the OpenAPI document is checked against it).
  struct RouteInfo {
    std::string method;
    std::string path;
    std::vector<std::string> query;
  };
  std::vector<RouteInfo> routes() const;

  // For ServerObserver::connections.
  void connections_changed(int delta);

  // Ends the live feed's streams and joins its thread, which reads the log,
  // and runs the queries still queued, then joins the query pool's threads
  // (later queries answer 503): call after the Server stopped and before
  // the read models and the Log close (the destructor does it too, for an
  // Api that goes before them). Idempotent.
  void stop();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace engram::http
