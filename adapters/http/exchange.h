#pragma once

// One request on its way through the middleware and a route's handler: the
// request, what routing found (template, path parameters, query), who sent
// it, and how to answer it.
//
// Contract
// - Answered exactly once, with answer(), answer_later() or fail(), from any
//   thread; a second answer is a programmer error (ENGRAM_ASSERT).
// - Every answer passes through the Finisher (middleware.h: request id,
//   metrics, access log) on the connection's I/O thread.
// - The query helpers answer 400 themselves and return nullopt: a handler
//   returns at once when they do.
// - The principal, route and parameters are set by the middleware before
//   the handler runs and not changed after, so handlers on other threads
//   may read them.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "adapters/http/problem.h"
#include "adapters/http/router.h"
#include "adapters/http/server.h"
#include "commands/bus.h"

namespace engram::http {

class Exchange;

// Adds what every answer carries (request id), counts it and logs it; runs
// on the connection's I/O thread. Outlives every exchange it finishes.
class Finisher {
 public:
  virtual ~Finisher() = default;
  virtual Response finish(const Exchange& exchange, Response response) const = 0;
};

class Exchange : public std::enable_shared_from_this<Exchange> {
 public:
  Exchange(Request request, Respond respond, const Finisher& finisher);

  const Request& request() const { return request_; }
  const std::string& path() const { return path_; }
  const std::string& request_id() const { return request_id_; }
  int64_t started_ns() const { return started_ns_; }

  // The route's template ("/v1/streams/{stream}"), "other" for a path no
  // route matches, "protocol" for requests the server refused; and the
  // method as the route table knows it ("other" for a method no route
  // takes). Metric labels: never client text.
  const std::string& route_label() const { return route_label_; }
  const std::string& method_label() const { return method_label_; }
  void set_route_labels(std::string route, std::string method);

  const commands::Principal& principal() const { return principal_; }
  void set_principal(commands::Principal p) { principal_ = std::move(p); }

  const QueryParams& query() const { return query_; }
  void set_query(QueryParams q) { query_ = std::move(q); }
  std::optional<std::string> query(std::string_view name) const;
  // Absent: `dflt`. Else an integer in [min, max], or a 400 bad_query
  // naming the parameter (and nullopt).
  std::optional<uint64_t> query_u64(std::string_view name, uint64_t dflt, uint64_t min,
                                    uint64_t max);

  void set_params(std::vector<std::pair<std::string, std::string>> params) {
    params_ = std::move(params);
  }
  // A path parameter of the route's template (decoded).
  const std::string& param(std::string_view name) const;

  void answer(Response response);
  // `make` builds the response on the I/O thread: for callers on threads
  // that must stay quick (the log's, a projection worker's).
  void answer_later(std::function<Response()> make);
  void fail(const Problem& p);
  // The problem document for this request (instance and request id), for
  // answers built elsewhere.
  Response problem(const Problem& p) const;
  bool answered() const { return answered_.load(); }

 private:
  void claim_answer();

  Request request_;
  Respond respond_;
  const Finisher& finisher_;
  std::string path_;
  std::string request_id_;
  int64_t started_ns_ = 0;
  std::string route_label_ = "other";
  std::string method_label_ = "other";
  commands::Principal principal_;
  QueryParams query_;
  std::vector<std::pair<std::string, std::string>> params_;
  std::atomic<bool> answered_{false};
};

using ExchangePtr = std::shared_ptr<Exchange>;

// Nanoseconds of the steady clock (durations, rate limits).
int64_t steady_now_ns();

// A decimal integer with no sign, spaces or excess digits; nullopt otherwise.
std::optional<uint64_t> parse_u64(std::string_view s);

}  // namespace engram::http
