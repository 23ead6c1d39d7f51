#include "adapters/http/middleware.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/logging.h"

namespace engram::http {

Middleware::Middleware(core::metrics::Registry& metrics, const ApiOptions& options)
    : metrics_(metrics),
      options_(options),
      per_token_(options.per_token_rps, options.per_token_burst, options.rate_limit_max_clients),
      per_ip_(options.per_ip_rps, options.per_ip_burst, options.rate_limit_max_clients),
      rate_limited_ip_(metrics.counter("engram_http_rate_limited_total",
                                       "Requests refused by a rate limit.", {{"scope", "ip"}})),
      rate_limited_token_(metrics.counter("engram_http_rate_limited_total",
                                          "Requests refused by a rate limit.",
                                          {{"scope", "token"}})) {}

bool Middleware::admit(const ExchangePtr& x, RateLimiter& limiter, std::string_view key,
                       core::metrics::Counter& refused) {
  auto wait_s = limiter.take(key, steady_now_ns());
  if (!wait_s) return true;
  refused.add();
  x->fail({429,
           "rate_limited",
           "too many requests; retry later",
           {},
           {},
           static_cast<uint64_t>(std::max(1.0, std::ceil(*wait_s)))});
  return false;
}

bool Middleware::admit_ip(const ExchangePtr& x) {
  return admit(x, per_ip_, x->request().remote_ip, rate_limited_ip_);
}

bool Middleware::admit_token(const ExchangePtr& x) {
  return admit(x, per_token_, x->principal().subject, rate_limited_token_);
}

bool Middleware::authenticate(const ExchangePtr& x) {
  if (!options_.authenticate) {
    commands::Principal p;
    p.subject = "anonymous-admin";
    p.roles = {commands::Role::admin};
    x->set_principal(std::move(p));
    return true;
  }
  const std::string_view h = x->request().header("authorization");
  constexpr std::string_view kBearer = "Bearer ";
  if (h.size() <= kBearer.size() || h.substr(0, kBearer.size()) != kBearer) {
    x->fail({401, "unauthorized", "a bearer token is required", {}, {}, {}});
    return false;
  }
  auto p = options_.authenticate(h.substr(kBearer.size()));
  if (!p) {
    x->fail({401,
             "unauthorized",
             fmt::format("token rejected ({}): {}", p.error().code, p.error().detail),
             {},
             {},
             {}});
    return false;
  }
  x->set_principal(std::move(*p));
  return true;
}

bool Middleware::authorize(const ExchangePtr& x, const Access& access) {
  if (access.roles.empty()) return true;
  for (commands::Role r : access.roles) {
    if (x->principal().has(r)) return true;
  }
  x->fail({403, "role_not_allowed", "the token's roles do not allow this", {}, {}, {}});
  return false;
}

Response Middleware::finish(const Exchange& x, Response r) const {
  r.headers.emplace_back("X-Request-Id", x.request_id());
  const double seconds = static_cast<double>(steady_now_ns() - x.started_ns()) / 1e9;
  const std::string status = std::to_string(r.status);
  metrics_
      .counter("engram_http_requests_total", "HTTP requests answered.",
               {{"route", x.route_label()}, {"method", x.method_label()}, {"status", status}})
      .add();
  metrics_
      .histogram("engram_http_request_duration_seconds", "HTTP request latency.",
                 {{"route", x.route_label()}, {"status", status}},
                 core::metrics::latency_buckets_seconds())
      .observe(seconds);
  if (options_.access_log && core::logging::enabled(core::logging::Level::info)) {
    core::logging::write(core::logging::Level::info, "request",
                         {{"request_id", x.request_id()},
                          {"method", x.request().method},
                          {"path", x.path()},
                          {"status", r.status},
                          {"duration_ms", seconds * 1e3},
                          {"remote", x.request().remote_ip},
                          {"subject", x.principal().subject}});
  }
  return r;
}

}  // namespace engram::http
