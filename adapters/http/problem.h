#pragma once

// Failures as application/problem+json (RFC 9457). `type` is
// "/problems/<code>", stable per code; docs/http-api.md lists them.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "adapters/http/server.h"

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

}  // namespace engram::http
