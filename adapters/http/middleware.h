#pragma once

// What every request passes through besides its handler: on the way in the
// per-IP and per-token rate limits, authentication and the route's role
// check; on the way out the request id header, the request metrics and the
// access log. Each check that refuses answers the exchange itself (429,
// 401, 403) and returns false.
//
// Metric labels are the exchange's route and method labels, which come
// from the route table (exchange.h), never from client text, so a client
// cannot add series.

#include "adapters/http/exchange.h"
#include "adapters/http/rate_limit.h"
#include "adapters/http/routes.h"
#include "core/metrics.h"

namespace engram::http {

class Middleware final : public Finisher {
 public:
  Middleware(core::metrics::Registry& metrics, const ApiOptions& options);

  bool admit_ip(const ExchangePtr& x);
  // The bearer token's principal (with authentication off, an admin named
  // "anonymous-admin"); 401 when missing or rejected.
  bool authenticate(const ExchangePtr& x);
  bool admit_token(const ExchangePtr& x);
  // 403 role_not_allowed unless the principal has one of the route's roles.
  bool authorize(const ExchangePtr& x, const Access& access);

  Response finish(const Exchange& x, Response response) const override;

 private:
  bool admit(const ExchangePtr& x, RateLimiter& limiter, std::string_view key,
             core::metrics::Counter& refused);

  core::metrics::Registry& metrics_;
  const ApiOptions& options_;
  RateLimiter per_token_;
  RateLimiter per_ip_;
  core::metrics::Counter& rate_limited_ip_;
  core::metrics::Counter& rate_limited_token_;
};

}  // namespace engram::http
