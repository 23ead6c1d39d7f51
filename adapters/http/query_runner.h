#pragma once

// Where read-model and audit queries run: never on an I/O thread.
//
// Contract
// - run(): `work` runs on the query pool (QueryPoolOptions: `threads`
//   threads with ThreadRole::query, at most `max_queued` waiting) and its
//   response answers the exchange. When the queue is full the exchange gets
//   503 overloaded with Retry-After: 1 at once: a burst of slow searches
//   fills the query pool, not the I/O threads, so health checks and
//   commands are answered meanwhile.
// - read_model(): waits, without holding a thread, until the projection
//   reached the request's min_position (at most max_wait_ms, then 504
//   position_not_reached), then run()s the query against the worker that
//   was serving when the request came (it stays readable while held, even
//   if a new version swaps in meanwhile). Every answer carries
//   X-Engram-Position. A failed worker answers 503 read_model_failed; no
//   serving worker 503 read_model_unavailable. The wait's callback runs on
//   the projection's worker thread and only hands the query on.
// - stop() (and the destructor) refuses new queries, runs those queued and
//   joins the pool's threads; queries refused after it answer 503.

#include <functional>
#include <memory>
#include <string_view>
#include <thread>

#include "adapters/http/exchange.h"
#include "core/executor.h"
#include "projections/runtime.h"

namespace engram::http {

// The nice value of the query threads (the I/O threads and the log's keep
// the process's): queries get the CPU the rest leaves.
inline constexpr int kQueryThreadNice = 10;

// The pool's default size: every core but one, at least one. Searches that
// fill the pool then leave a core to the command path (bench/results/http.md,
// 2 cores: with two query threads, command p99 beside 8 connections of
// memory searches was 2.5x of the commands alone; with one, 1.16x).
inline size_t default_query_threads() {
  const unsigned cores = std::thread::hardware_concurrency();
  return cores > 1 ? cores - 1 : 1;
}

struct QueryPoolOptions {
  size_t threads = default_query_threads();
  size_t max_queued = 256;
};

class QueryRunner {
 public:
  QueryRunner(projections::Runtime* read_side, uint64_t max_wait_ms, QueryPoolOptions pool);
  void stop();

  void run(const ExchangePtr& x, std::function<Response()> work);

  using ModelQuery = std::function<Response(const projections::Worker&)>;
  void read_model(const ExchangePtr& x, std::string_view projection, ModelQuery query);

  // The worker serving `projection`, or null after answering 503
  // read_model_unavailable (for routes that check a request against the
  // model before querying it).
  std::shared_ptr<projections::Worker> serving(const ExchangePtr& x, std::string_view projection);

 private:
  Response answer_reached(const Exchange& x, const projections::Worker& w, bool reached,
                          const ModelQuery& query) const;

  projections::Runtime* read_side_;
  uint64_t max_wait_ms_;
  core::ThreadPool pool_;
};

}  // namespace engram::http
