// The audit queries of adapters/audit/audit.h over the server's own log,
// GET /v1/audit/..., admin only.

#include <fmt/format.h>

#include "adapters/audit/audit.h"
#include "adapters/http/routes.h"
#include "commands/visibility.h"
#include "core/time.h"

namespace engram::http {
namespace {

using commands::Role;
using nlohmann::json;
using AuditQuery = std::function<core::result<json>(const audit::Sources&)>;

// An audit query's failure. A proof route's errc::corruption means the log
// no longer matches a signed checkpoint (or the tree nodes a proof needs
// are gone): 409 log_tampered. Otherwise as a read model's: 400 bad_query,
// 404 not_found, 503 overloaded (the audit index trails the log too far;
// Retry-After), 500 for storage errors and corruption.
Problem problem_from_audit(const core::Error& e, bool proof) {
  if (proof && e.code == core::errc::corruption) {
    return {409, "log_tampered", e.message, {}, {}, {}};
  }
  return problem_from_query(e);
}

// Runs an audit query on the query pool and answers its JSON (200, event
// rows redacted for the principal) or its problem.
void answer(Services& s, const ExchangePtr& x, bool proof, AuditQuery run) {
  s.queries.run(x, [&s, x, proof, run = std::move(run)] {
    const audit::Sources sources{
        s.log, [&s](const core::RecordedEvent& e) { return s.bus.render_event(e); },
        s.options.audit_index ? s.options.audit_index() : nullptr, s.options.audit_checkpoints};
    auto answer = run(sources);
    if (!answer) return x->problem(problem_from_audit(answer.error(), proof));
    commands::redact_events_within(*answer, x->principal());
    return json_response(200, *answer);
  });
}

void bad_query(const ExchangePtr& x, std::string_view field, std::string detail) {
  x->fail({400, "bad_query", std::move(detail), std::string(field), {}, {}});
}

void verify(Services& s, const ExchangePtr& x) {
  auto from = x->query_u64("from", 1, 1, UINT64_MAX);
  if (!from) return;
  auto to = x->query_u64("to", UINT64_MAX, 1, UINT64_MAX);
  if (!to) return;
  if (*from > *to) {
    return bad_query(x, "from", fmt::format("'from' ({}) is after 'to' ({})", *from, *to));
  }
  const uint64_t head = s.log.head().position.value();
  if (*from > std::max<uint64_t>(head, 1)) {
    return bad_query(x, "from",
                     fmt::format("'from' ({}) is beyond the log's head ({})", *from, head));
  }
  const uint64_t last = std::min(*to, head);
  const uint64_t count = last >= *from ? last - *from + 1 : 0;
  const uint64_t bound = s.options.max_audit_verify_events;
  if (count > bound) {
    return bad_query(x, "to",
                     fmt::format("a verify checks at most {} events (max_audit_verify_events); "
                                 "{}..{} holds {}: pass 'to' <= {} and verify the rest in "
                                 "further requests",
                                 bound, *from, last, count, *from + bound - 1));
  }
  audit::VerifyOptions o;
  o.from = core::Position(*from);
  o.to = core::Position(*to);
  o.threads = 1;
  o.public_key_file = s.options.audit_public_key;
  answer(s, x, false, [o](const audit::Sources& src) { return audit::verify(src, o); });
}

void checkpoints(Services& s, const ExchangePtr& x) {
  answer(s, x, false, [](const audit::Sources& src) { return audit::checkpoints(src); });
}

void history(Services& s, const ExchangePtr& x) {
  auto from = x->query_u64("from_version", 1, 1, UINT64_MAX);
  if (!from) return;
  auto limit = x->query_u64("limit", 100, 1, audit::kMaxHistoryEvents);
  if (!limit) return;
  answer(s, x, false, [x, from = *from, limit = *limit](const audit::Sources& src) {
    return audit::history(src, x->param("stream"), from, limit);
  });
}

void trace(Services& s, const ExchangePtr& x) {
  auto correlation = core::Uuid::parse(x->param("correlation_id"));
  if (!correlation) {
    return x->fail(
        {400, "invalid_field", "the correlation id must be a UUID", "correlation_id", {}, {}});
  }
  answer(s, x, false,
         [corr = *correlation](const audit::Sources& src) { return audit::trace(src, corr); });
}

// A time bound of the actor route (core::parse_time_bound_ns, as
// `engram audit actor` takes it); `dflt` when absent, nullopt after
// answering 400.
std::optional<int64_t> query_time(const ExchangePtr& x, std::string_view name, int64_t dflt) {
  auto v = x->query(name);
  if (!v) return dflt;
  auto ns = core::parse_time_bound_ns(*v);
  if (!ns) {
    bad_query(x, name, fmt::format("'{}': {}", name, ns.error().message));
    return std::nullopt;
  }
  return *ns;
}

void actor(Services& s, const ExchangePtr& x) {
  auto since = query_time(x, "since", INT64_MIN);
  if (!since) return;
  auto until = query_time(x, "until", INT64_MAX);
  if (!until) return;
  if (*since > *until) return bad_query(x, "since", "'since' is after 'until'");
  auto limit = x->query_u64("limit", 100, 1, audit::kMaxActorEvents);
  if (!limit) return;
  auto cursor = x->query_u64("cursor", 0, 0, UINT64_MAX);
  if (!cursor) return;
  answer(s, x, false,
         [x, since = *since, until = *until, limit = *limit,
          cursor = *cursor](const audit::Sources& src) {
           return audit::actor(src, x->param("actor"), since, until, core::Position(cursor),
                               limit);
         });
}

void state(Services& s, const ExchangePtr& x) {
  const std::string& stream = x->param("stream");
  auto version = s.log.stream_version(stream);
  if (!version) return x->fail(problem_from_log(version.error()));
  if (version->value() == 0) {
    return x->fail({404, "not_found", fmt::format("no stream '{}'", stream), {}, {}, {}});
  }
  const uint64_t head = s.log.head().position.value();
  auto at = x->query_u64("at", head, 1, head);
  if (!at) return;
  answer(s, x, false, [x, at = *at](const audit::Sources& src) {
    return audit::state(src, x->param("stream"), core::Position(at));
  });
}

void proof(Services& s, const ExchangePtr& x) {
  auto position = parse_u64(x->param("position"));
  if (!position || *position == 0) {
    return x->fail(
        {400, "invalid_field", "the position must be an integer >= 1", "position", {}, {}});
  }
  std::optional<core::Position> tree_size;
  if (x->query("tree_size")) {
    auto t = x->query_u64("tree_size", 0, 1, UINT64_MAX);
    if (!t) return;
    tree_size = core::Position(*t);
  }
  answer(s, x, true, [position = *position, tree_size](const audit::Sources& src) {
    return audit::inclusion_proof(src, core::Position(position), tree_size);
  });
}

void consistency(Services& s, const ExchangePtr& x) {
  for (const char* name : {"old", "new"}) {
    if (!x->query(name)) return bad_query(x, name, fmt::format("'{}' is required", name));
  }
  auto old_size = x->query_u64("old", 0, 1, UINT64_MAX);
  if (!old_size) return;
  auto new_size = x->query_u64("new", 0, 1, UINT64_MAX);
  if (!new_size) return;
  if (*old_size > *new_size) {
    return bad_query(x, "old",
                     fmt::format("'old' ({}) is after 'new' ({})", *old_size, *new_size));
  }
  answer(s, x, true, [o = *old_size, n = *new_size](const audit::Sources& src) {
    return audit::consistency_proof(src, core::Position(o), core::Position(n));
  });
}

}  // namespace

std::vector<Route> audit_routes(Services& s) {
  using AuditHandler = void (*)(Services&, const ExchangePtr&);
  const auto route = [&s](std::string path, std::vector<std::string> query, AuditHandler h) {
    return Route{"GET", std::move(path), roles({Role::admin}), std::move(query),
                 [&s, h](const ExchangePtr& x) { h(s, x); }};
  };
  return {
      route("/v1/audit/verify", {"from", "to"}, verify),
      route("/v1/audit/checkpoints", {}, checkpoints),
      route("/v1/audit/consistency", {"old", "new"}, consistency),
      route("/v1/audit/history/{stream}", {"from_version", "limit"}, history),
      route("/v1/audit/trace/{correlation_id}", {}, trace),
      route("/v1/audit/actor/{actor}", {"since", "until", "limit", "cursor"}, actor),
      route("/v1/audit/state/{stream}", {"at"}, state),
      route("/v1/audit/proof/{position}", {"tree_size"}, proof),
  };
}

}  // namespace engram::http
