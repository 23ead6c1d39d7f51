#include "adapters/http/api.h"

#include <fmt/format.h>

#include "adapters/http/middleware.h"
#include "adapters/http/query_runner.h"
#include "adapters/http/routes.h"

namespace engram::http {
namespace {

// The method label of requests the server refused before parsing a method.
const std::string kNoMethod = "-";

std::vector<RouteKey> keys_of(const std::vector<Route>& routes) {
  std::vector<RouteKey> out;
  for (const auto& r : routes) out.push_back({r.method, r.path});
  return out;
}

// The metrics series the /metrics route shows besides the HTTP ones: the
// log's and the command bus's.
void register_engine_metrics(core::metrics::Registry& m, const core::Log& log,
                             const commands::CommandBus& bus) {
  const core::Log* l = &log;
  m.counter_fn("engram_log_append_requests_total", "Append requests the log accepted.",
               [l] { return static_cast<double>(l->stats().append_requests); });
  m.counter_fn("engram_log_events_appended_total", "Events written to the log.",
               [l] { return static_cast<double>(l->stats().events_appended); });
  m.counter_fn("engram_log_deduplicated_total", "Appends answered from the dedupe index.",
               [l] { return static_cast<double>(l->stats().deduplicated_requests); });
  m.counter_fn("engram_log_groups_committed_total", "Write groups committed.",
               [l] { return static_cast<double>(l->stats().groups_committed); });
  m.histogram_fn("engram_log_group_size", "Append requests per committed group.",
                 [l] { return l->stats().group_requests; });
  m.histogram_fn("engram_log_fsync_duration_seconds", "WAL sync latency.",
                 [l] { return l->stats().sync_seconds; });
  m.gauge_fn("engram_log_queue_depth", "Appends waiting for the writer.",
             [l] { return static_cast<double>(l->stats().queue_depth); });
  m.gauge_fn("engram_log_head_position", "Position of the last acknowledged event.",
             [l] { return static_cast<double>(l->head().position.value()); });
  m.gauge_fn("engram_log_writable", "1 when the log accepts writes, 0 when read-only.",
             [l] { return l->health().writable ? 1.0 : 0.0; });
  const commands::CommandBus* b = &bus;
  m.counter_fn("engram_commands_succeeded_total", "Commands that wrote (or replayed) events.",
               [b] { return static_cast<double>(b->stats().commands_ok); });
  m.counter_fn("engram_commands_failed_total", "Commands refused or failed.",
               [b] { return static_cast<double>(b->stats().commands_failed); });
  m.counter_fn("engram_commands_conflict_retries_total", "Commands re-decided after losing a race.",
               [b] { return static_cast<double>(b->stats().conflict_retries); });
}


}  // namespace

struct Api::Impl {
  core::Log& log;
  commands::CommandBus& bus;
  core::metrics::Registry& metrics;
  ApiOptions options;
  std::atomic<int64_t> connections{0};
  Middleware middleware;
  QueryRunner queries;
  // Destroyed (its thread joined) before what it renders with.
  Feed feed;
  Services services;
  std::vector<Route> routes;
  Router router;

  Impl(core::Log& l, commands::CommandBus& b, core::metrics::Registry& m, ApiOptions o)
      : log(l),
        bus(b),
        metrics(m),
        options(std::move(o)),
        middleware(m, options),
        queries(options.read_side, options.max_wait_ms, options.queries),
        feed(l, options.feed),
        services{log, bus, metrics, options, feed, queries},
        routes(all_routes(services)),
        router(keys_of(routes)) {}

  // Queued queries run before what they use goes.
  ~Impl() { queries.stop(); }

  // The method as a metric label: one the table routes, else "other".
  std::string method_label(std::string_view method) const {
    for (const auto& r : routes) {
      if (r.method == method) return r.method;
    }
    return "other";
  }

  // The route, or nullptr after answering 404, 405 or 400. The labels are
  // set before the per-IP limit, so its refusals count under the route.
  const Route* route(const ExchangePtr& x, const Router::Match& m) {
    switch (m.outcome) {
      case Router::Match::Outcome::found:
        x->set_params(m.params);
        return &routes[m.route];
      case Router::Match::Outcome::not_found:
        x->fail({404, "not_found", fmt::format("no route for {}", x->path()), {}, {}, {}});
        return nullptr;
      case Router::Match::Outcome::method_not_allowed: {
        Response r =
            x->problem({405, "method_not_allowed", fmt::format("use {}", m.allow), {}, {}, {}});
        r.headers.emplace_back("Allow", m.allow);
        x->answer(std::move(r));
        return nullptr;
      }
      case Router::Match::Outcome::bad_param:
        x->fail({400,
                 "invalid_field",
                 fmt::format("malformed {} in the path", m.bad_param),
                 m.bad_param,
                 {},
                 {}});
        return nullptr;
    }
    return nullptr;
  }

  // The query string: decoded, each parameter one the route takes, none
  // twice; else 400 bad_query (answered; false).
  bool check_query(const ExchangePtr& x, const Route& r) {
    const std::string& target = x->request().target;
    const size_t q = target.find('?');
    auto params = parse_query(q == std::string::npos ? std::string_view()
                                                     : std::string_view(target).substr(q + 1));
    if (!params) {
      x->fail({400, "bad_query", "malformed query string", {}, {}, {}});
      return false;
    }
    for (size_t i = 0; i < params->size(); ++i) {
      const std::string& name = (*params)[i].first;
      if (std::find(r.query.begin(), r.query.end(), name) == r.query.end()) {
        x->fail({400, "bad_query", fmt::format("unknown query parameter '{}'", name), name, {}, {}});
        return false;
      }
      for (size_t j = 0; j < i; ++j) {
        if ((*params)[j].first == name) {
          x->fail({400, "bad_query", fmt::format("'{}' is given twice", name), name, {}, {}});
          return false;
        }
      }
    }
    x->set_query(std::move(*params));
    return true;
  }

  void dispatch(const ExchangePtr& x) {
    const Router::Match m = router.match(x->request().method, x->path());
    x->set_route_labels(m.path_template ? *m.path_template : "other",
                        method_label(x->request().method));
    if (!middleware.admit_ip(x)) return;
    const Route* r = route(x, m);
    if (r == nullptr) return;
    if (r->access.token) {
      if (!middleware.authenticate(x) || !middleware.admit_token(x) ||
          !middleware.authorize(x, r->access)) {
        return;
      }
    }
    if (!check_query(x, *r)) return;
    r->handler(x);
  }
};

Api::Api(core::Log& log, commands::CommandBus& bus, core::metrics::Registry& metrics,
         ApiOptions options)
    : impl_(std::make_unique<Impl>(log, bus, metrics, std::move(options))) {
  Impl* s = impl_.get();
  metrics.gauge_fn("engram_http_connections", "Open HTTP connections.",
                   [s] { return static_cast<double>(s->connections.load()); });
  metrics.gauge_fn("engram_subscribers", "Open live-feed (GET /v1/subscribe) subscriptions.",
                   [s] { return static_cast<double>(s->feed.subscribers()); });
  metrics.counter_fn(
      "engram_subscriber_cutoffs_total",
      "Live-feed subscribers cut off for falling more than max_lag_events behind.",
      [s] { return static_cast<double>(s->feed.cutoffs()); });
  register_engine_metrics(metrics, log, bus);
}

Api::~Api() = default;

std::vector<Api::RouteInfo> Api::routes() const {
  std::vector<RouteInfo> out;
  for (const auto& r : impl_->routes) out.push_back({r.method, r.path, r.query});
  return out;
}

void Api::connections_changed(int delta) {
  impl_->connections.fetch_add(delta);
}

void Api::stop() {
  impl_->feed.stop();
  impl_->queries.stop();
}

void Api::handle(Request request, Respond respond) {
  auto x = std::make_shared<Exchange>(std::move(request), std::move(respond), impl_->middleware);
  impl_->dispatch(x);
}

Response Api::protocol_error(int status, std::string_view detail, std::string_view remote_ip) {
  Request req;
  req.method = kNoMethod;
  req.remote_ip = std::string(remote_ip);
  Response out;
  auto x = std::make_shared<Exchange>(
      std::move(req), [&out](std::function<Response()> make) { out = make(); },
      impl_->middleware);
  x->set_route_labels("protocol", kNoMethod);
  const char* code = status == 413   ? "body_too_large"
                     : status == 431 ? "header_too_large"
                     : status == 503 ? "too_many_connections"
                     : status == 500 ? "internal"
                                     : "malformed_http";
  Problem p{status, code, std::string(detail), {}, {}, {}};
  if (status == 503) p.retry_after_s = 1;
  x->fail(p);
  return out;
}

}  // namespace engram::http
