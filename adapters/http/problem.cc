#include "adapters/http/problem.h"

#include <nlohmann/json.hpp>

namespace engram::http {

const char* status_title(int status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 409:
      return "Conflict";
    case 413:
      return "Content Too Large";
    case 415:
      return "Unsupported Media Type";
    case 422:
      return "Unprocessable Content";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Error";
  }
}

Response problem_response(const Problem& p, std::string_view instance,
                          std::string_view request_id) {
  nlohmann::ordered_json j;
  j["type"] = "/problems/" + p.code;
  j["title"] = status_title(p.status);
  j["status"] = p.status;
  j["detail"] = p.detail;
  j["code"] = p.code;
  if (!instance.empty()) j["instance"] = instance;
  if (!request_id.empty()) j["request_id"] = request_id;
  if (!p.field.empty()) j["field"] = p.field;
  if (p.actual_version) j["actual_version"] = *p.actual_version;
  Response r;
  r.status = p.status;
  r.content_type = "application/problem+json";
  r.body = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (p.retry_after_s) r.headers.emplace_back("Retry-After", std::to_string(*p.retry_after_s));
  if (p.status == 401) r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"engram\"");
  return r;
}

}  // namespace engram::http
