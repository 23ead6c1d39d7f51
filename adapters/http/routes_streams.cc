// The log through HTTP: POST /v1/streams/{stream} (generic appends),
// GET /v1/streams/{stream} (a stream by version), GET /v1/log (the whole
// log by position).

#include <fmt/format.h>

#include "adapters/http/routes.h"
#include "commands/generic_events.h"
#include "commands/visibility.h"

namespace engram::http {
namespace {

using commands::Role;
using nlohmann::json;

void append(Services& s, const ExchangePtr& x) {
  const std::string& stream = x->param("stream");
  if (auto ok = commands::check_generic_stream(stream); !ok) {
    return x->fail(problem_from_command(ok.error()));
  }
  auto body = json_body(x, s.options);
  if (!body) return;
  auto headers = write_headers(x);
  if (!headers) return;
  auto parsed = commands::parse_generic_append(
      *body, {s.options.max_events_per_request, s.options.max_json_depth});
  if (!parsed) return x->fail(problem_from_command(parsed.error()));
  core::AppendContext ctx;
  ctx.actor = x->principal().subject;
  if (const auto& key = headers->idempotency_key) {
    // A retry with the same key makes the same ids: the log's dedupe
    // answers it with the first result.
    commands::derive_generic_event_ids(parsed->events, ctx.actor, *key);
    ctx.command_id = commands::generic_command_id(ctx.actor, *key);
  } else {
    ctx.command_id = core::Uuid::v7_now();
  }
  ctx.correlation_id =
      headers->correlation_id.is_nil() ? ctx.command_id : headers->correlation_id;
  ctx.causation_id = headers->causation_id;
  auto done = [x, stream, h = std::move(*headers)](core::result<core::AppendResult> r) {
    if (!r) return x->fail(problem_from_log(r.error()));
    x->answer_later([stream, h, a = *r] {
      Response resp = json_response(201, {{"stream", stream},
                                          {"version", a.version.value()},
                                          {"first_position", a.first.value()},
                                          {"last_position", a.last.value()},
                                          {"deduplicated", a.deduplicated}});
      echo_correlation(resp, h);
      return resp;
    });
  };
  auto queued = s.log.append_async(stream, parsed->expected, parsed->events, ctx, std::move(done));
  if (!queued) x->fail(problem_from_log(queued.error()));
}

// The next page's first version, or null at the end.
json next_version(const std::vector<core::RecordedEvent>& events, bool forward, uint64_t limit,
                  uint64_t version) {
  if (events.empty()) return nullptr;
  const uint64_t last = events.back().version().value();
  if (forward && events.size() == limit && last < version) return last + 1;
  if (!forward && last > 1) return last - 1;
  return nullptr;
}

void read_stream(Services& s, const ExchangePtr& x) {
  const std::string& stream = x->param("stream");
  if (!commands::may_read_stream(x->principal(), stream)) {
    return x->fail({403, "not_own_memory", "an agent may read only its own memories", {}, {}, {}});
  }
  const std::string dir = x->query("direction").value_or("forward");
  if (dir != "forward" && dir != "backward") {
    return x->fail(
        {400, "bad_query", "'direction' must be forward or backward", "direction", {}, {}});
  }
  const bool forward = dir == "forward";
  auto from = x->query_u64("from", forward ? 1 : UINT64_MAX, 1, UINT64_MAX);
  if (!from) return;
  auto limit = x->query_u64("limit", s.options.default_page_size, 1, s.options.max_page_size);
  if (!limit) return;
  auto version = s.log.stream_version(stream);
  if (!version) return x->fail(problem_from_log(version.error()));
  if (version->value() == 0) {
    return x->fail({404, "stream_not_found", fmt::format("no stream '{}'", stream), {}, {}, {}});
  }
  auto events = s.log.read_stream(stream, core::StreamVersion(*from), *limit,
                                  forward ? core::Direction::forward : core::Direction::backward);
  if (!events) return x->fail(problem_from_log(events.error()));
  json list = json::array();
  for (const auto& e : *events) list.push_back(render_event(s.bus, e, x->principal()));
  x->answer(json_response(200, {{"stream", stream},
                                {"version", version->value()},
                                {"events", std::move(list)},
                                {"next", next_version(*events, forward, *limit, version->value())}}));
}

void read_log(Services& s, const ExchangePtr& x) {
  auto from = x->query_u64("from_position", 1, 1, UINT64_MAX);
  if (!from) return;
  auto limit = x->query_u64("limit", s.options.default_page_size, 1, s.options.max_page_size);
  if (!limit) return;
  const uint64_t head = s.log.head().position.value();
  auto events = s.log.read_all(core::Position(*from), *limit);
  if (!events) return x->fail(problem_from_log(events.error()));
  json list = json::array();
  for (const auto& e : *events) list.push_back(render_event(s.bus, e, x->principal()));
  json next = nullptr;
  if (!events->empty() && events->back().position().value() < head) {
    next = events->back().position().value() + 1;
  }
  x->answer(
      json_response(200, {{"head", head}, {"events", std::move(list)}, {"next_position", next}}));
}

}  // namespace

std::vector<Route> stream_routes(Services& s) {
  return {
      {"GET", "/v1/streams/{stream}", kAnyToken, {"from", "limit", "direction"},
       [&s](const ExchangePtr& x) { read_stream(s, x); }},
      {"POST", "/v1/streams/{stream}", roles({Role::admin, Role::writer}), {},
       [&s](const ExchangePtr& x) { append(s, x); }},
      {"GET", "/v1/log", roles({Role::admin, Role::reader, Role::replicator}),
       {"from_position", "limit"}, [&s](const ExchangePtr& x) { read_log(s, x); }},
  };
}

}  // namespace engram::http
