// GET /v1/subscribe: the live feed (feed.h) as Server-Sent Events.

#include <fmt/format.h>

#include "adapters/http/routes.h"

namespace engram::http {
namespace {

using commands::Role;

// Where the feed starts: `from`, or Last-Event-ID, which wins, so an
// EventSource reconnecting with its original URL resumes where it stopped.
// The position and the name of what gave it; nullopt after answering 400.
std::optional<std::pair<uint64_t, std::string>> start_of(const ExchangePtr& x) {
  auto from = x->query_u64("from", 0, 0, UINT64_MAX);
  if (!from) return std::nullopt;
  std::string field = "from";
  if (const std::string_view last_id = x->request().header("last-event-id"); !last_id.empty()) {
    field = "Last-Event-ID";
    from = parse_u64(last_id);
    if (!from) {
      x->fail({400,
               "bad_header",
               "Last-Event-ID must be a log position (an integer >= 0)",
               field,
               {},
               {}});
      return std::nullopt;
    }
  }
  return std::make_pair(*from, std::move(field));
}

// The log's events after the start, rendered and redacted exactly like
// GET /v1/log's.
void subscribe(Services& s, const ExchangePtr& x) {
  auto start = start_of(x);
  if (!start) return;
  const auto& [from, field] = *start;
  std::vector<std::string> types;
  if (auto list = x->query("types")) {
    auto parsed = parse_feed_types(*list);
    if (!parsed) return x->fail({400, "bad_query", parsed.error().message, "types", {}, {}});
    types = std::move(*parsed);
  }
  // A position the log never reached: the client follows another log (or
  // one restored from an older backup); resuming would skip events.
  const uint64_t head = s.log.head().position.value();
  if (from > head) {
    return x->fail({400,
                    field == "from" ? "bad_query" : "bad_header",
                    fmt::format("{} ({}) is beyond the log's head ({})", field, from, head),
                    field,
                    {},
                    {}});
  }
  auto stream = s.feed.subscribe(core::Position(from), std::move(types),
                                 [&bus = s.bus, who = x->principal()](const core::RecordedEvent& e) {
                                   return dump_json(render_event(bus, e, who));
                                 });
  if (!stream) {
    const bool busy = stream.error().code == core::errc::overloaded;
    return x->fail({503,
                    busy ? "too_many_subscribers" : "shutting_down",
                    stream.error().message,
                    {},
                    {},
                    busy ? uint64_t{1} : uint64_t{5}});
  }
  Response r;
  r.content_type = "text/event-stream";
  r.headers.emplace_back("Cache-Control", "no-store");
  // Reverse proxies (nginx) must pass events on as they come.
  r.headers.emplace_back("X-Accel-Buffering", "no");
  r.stream = std::move(*stream);
  x->answer(std::move(r));
}

}  // namespace

std::vector<Route> subscribe_routes(Services& s) {
  return {{"GET", "/v1/subscribe", roles({Role::admin, Role::reader, Role::replicator}),
           {"from", "types"}, [&s](const ExchangePtr& x) { subscribe(s, x); }}};
}

}  // namespace engram::http
