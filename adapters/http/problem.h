#pragma once

// Failures as application/problem+json (RFC 9457). `type` is
// "/problems/<code>", stable per code; docs/http-api.md lists them.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "adapters/http/server.h"
#include "commands/bus.h"
#include "core/result.h"

namespace engram::http {

struct Problem {
  int status = 500;
  std::string code;
  std::string detail;
  std::string field;                       // a JSON pointer or a header/query name
  std::optional<uint64_t> actual_version;  // 409 version conflicts
  std::optional<uint64_t> retry_after_s;   // 429, 503
};

// The response for `p`, with `instance` (the request path) and the request id.
Response problem_response(const Problem& p, std::string_view instance, std::string_view request_id);

const char* status_title(int status);

// A command's failure: 400, 403, 404, 409, 422, 500, or 503 with
// Retry-After (1 s when the log's queue is full, 5 s when it is read-only
// or closing).
Problem problem_from_command(const commands::CommandError& e);

// A log operation's failure: 400 invalid_field, 409 (versions, duplicate
// ids), 404, 503 with Retry-After (queue full: 1 s; read-only or closing:
// 5 s), else 500.
Problem problem_from_log(const core::Error& e);

// A read model's answer to a bad query (400 bad_query) or an unknown
// record (404 not_found); otherwise as problem_from_log.
Problem problem_from_query(const core::Error& e);

}  // namespace engram::http
