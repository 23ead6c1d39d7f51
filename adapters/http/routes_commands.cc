// POST /v1/commands/{type}: a domain command through the command bus.

#include "adapters/http/routes.h"
#include "commands/visibility.h"

namespace engram::http {
namespace {

using nlohmann::json;

// The bus's outcome as the 201 body: the events as written, memory content
// redacted for whoever may not see it.
Response created(commands::CommandOutcome outcome, const commands::Principal& who,
                 const WriteHeaders& headers) {
  const bool replayed = outcome.replayed;
  const bool redact = !commands::sees_memory_content(who, outcome.stream);
  json body = std::move(outcome).to_json();
  body.erase("replayed");
  if (redact) {
    for (auto& ev : body["events"]) {
      json full = {{"stream", body["stream"]}, {"data", std::move(ev["data"])}};
      commands::redact_event(full, who);
      ev["data"] = std::move(full["data"]);
    }
  }
  Response r = json_response(201, body);
  if (replayed) r.headers.emplace_back("Idempotent-Replayed", "true");
  echo_correlation(r, headers);
  return r;
}

void command(Services& s, const ExchangePtr& x) {
  // Refused here already when malformed, so a repeated name is a 400 naming
  // it; the bus takes the parsed body.
  auto body = json_body(x, s.options);
  if (!body) return;
  auto headers = write_headers(x);
  if (!headers) return;
  commands::CommandRequest req;
  req.type = x->param("type");
  req.parsed_body = std::move(*body);
  req.principal = x->principal();
  req.idempotency_key = headers->idempotency_key;
  req.correlation_id = headers->correlation_id;
  req.causation_id = headers->causation_id;
  // Answered on a bus thread: the response is built on the I/O thread.
  s.bus.execute(std::move(req), [x, h = std::move(*headers)](
                                    commands::result<commands::CommandOutcome> r) {
    if (!r) return x->fail(problem_from_command(r.error()));
    auto outcome = std::make_shared<commands::CommandOutcome>(std::move(r).value());
    x->answer_later(
        [x, outcome, h] { return created(std::move(*outcome), x->principal(), h); });
  });
}

}  // namespace

std::vector<Route> command_routes(Services& s) {
  // Which roles may send which command is the bus's to decide (commands.md).
  return {{"POST", "/v1/commands/{type}", kAnyToken, {},
           [&s](const ExchangePtr& x) { command(s, x); }}};
}

}  // namespace engram::http
