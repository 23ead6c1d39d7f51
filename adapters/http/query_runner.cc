#include "adapters/http/query_runner.h"

#include <fmt/format.h>

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>

#include "core/logging.h"

namespace engram::http {

namespace {

// The query threads yield the CPU to everything else the server does: on a
// machine with few cores, a burst of searches takes the CPU the I/O
// threads, the log and the projections leave, not theirs. Set by each query
// thread on its first query (raising one's own nice value needs no
// privilege); a failure only leaves the priority as it was.
void lower_priority_once() {
  thread_local bool lowered = false;
  if (lowered) return;
  lowered = true;
  ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), kQueryThreadNice);
}

}  // namespace

QueryRunner::QueryRunner(projections::Runtime* read_side, uint64_t max_wait_ms,
                         QueryPoolOptions pool)
    : read_side_(read_side),
      max_wait_ms_(max_wait_ms),
      pool_({"http-query", pool.threads, pool.max_queued, core::ThreadRole::query}) {}

void QueryRunner::stop() {
  pool_.stop();
}

void QueryRunner::run(const ExchangePtr& x, std::function<Response()> work) {
  // A query that throws is a bug: logged and answered 500, never let out
  // on the pool's thread.
  const bool queued = pool_.try_post([x, work = std::move(work)] {
    lower_priority_once();
    Response r;
    try {
      r = work();
    } catch (...) {
      core::logging::write(core::logging::Level::error, "a query threw",
                           {{"request_id", x->request_id()},
                            {"route", x->route_label()},
                            {"exception", describe_exception(std::current_exception())}});
      r = x->problem({500, "internal", "the query failed inside the server", {}, {}, {}});
    }
    x->answer(std::move(r));
  });
  if (!queued) {
    x->fail({503,
             "overloaded",
             fmt::format("the query pool is full ({} queries waiting, queries.max_queued) or "
                         "stopping; retry later",
                         pool_.options().max_queued_tasks),
             {},
             {},
             1});
  }
}

std::shared_ptr<projections::Worker> QueryRunner::serving(const ExchangePtr& x,
                                                          std::string_view projection) {
  auto w = read_side_ ? read_side_->serving(projection) : nullptr;
  if (w == nullptr) {
    x->fail({503,
             "read_model_unavailable",
             fmt::format("the {} read model is not running or is being rebuilt", projection),
             {},
             {},
             5});
  }
  return w;
}

Response QueryRunner::answer_reached(const Exchange& x, const projections::Worker& w, bool reached,
                                     const ModelQuery& query) const {
  const projections::WorkerStats st = w.stats();
  Response r;
  if (st.failed) {
    r = x.problem({503, "read_model_failed", st.failure, {}, {}, 5});
  } else if (!reached) {
    r = x.problem({504,
                   "position_not_reached",
                   fmt::format("the read model is at position {}; min_position not reached within "
                               "{} ms",
                               st.position.value(), max_wait_ms_),
                   "min_position",
                   {},
                   {}});
  } else {
    r = query(w);
  }
  r.headers.emplace_back("X-Engram-Position", std::to_string(st.position.value()));
  return r;
}

void QueryRunner::read_model(const ExchangePtr& x, std::string_view projection, ModelQuery query) {
  std::shared_ptr<projections::Worker> w = serving(x, projection);
  if (w == nullptr) return;
  auto min = x->query_u64("min_position", 0, 0, UINT64_MAX);
  if (!min) return;
  // Called on the worker's thread (or at once on this one): it only hands
  // the query on.
  auto reached = [this, x, w, query = std::move(query)](bool ok) {
    run(x, [this, x, w, query, ok] { return answer_reached(*x, *w, ok, query); });
  };
  w->when_reached(core::Position(*min), std::chrono::milliseconds(max_wait_ms_),
                  std::move(reached));
}

}  // namespace engram::http
