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

namespace {

int status_of(commands::Failure f) {
  using F = commands::Failure;
  switch (f) {
    case F::malformed:
      return 400;
    case F::unknown_command:
    case F::not_found:
      return 404;
    case F::forbidden:
      return 403;
    case F::conflict:
      return 409;
    case F::rule:
      return 422;
    case F::overloaded:
    case F::unavailable:
      return 503;
    case F::internal:
      return 500;
  }
  return 500;
}

}  // namespace

Problem problem_from_command(const commands::CommandError& e) {
  Problem p{status_of(e.kind), e.code, e.detail, e.field, e.actual_version, {}};
  if (e.kind == commands::Failure::overloaded) p.retry_after_s = 1;
  if (e.kind == commands::Failure::unavailable) p.retry_after_s = 5;
  return p;
}

Problem problem_from_log(const core::Error& e) {
  Problem p;
  p.detail = e.message;
  p.code = core::errc_name(e.code);
  switch (e.code) {
    case core::errc::invalid_argument:
      p.status = 400;
      p.code = "invalid_field";
      break;
    case core::errc::wrong_expected_version:
      p.status = 409;
      p.actual_version = e.actual_version;
      break;
    case core::errc::duplicate_id_conflict:
      p.status = 409;
      break;
    case core::errc::overloaded:
      p.status = 503;
      p.retry_after_s = 1;
      break;
    case core::errc::read_only:
    case core::errc::shutting_down:
      p.status = 503;
      p.retry_after_s = 5;
      break;
    case core::errc::not_found:
      p.status = 404;
      break;
    default:
      p.status = 500;
      break;
  }
  return p;
}

Problem problem_from_query(const core::Error& e) {
  if (e.code == core::errc::invalid_argument) return {400, "bad_query", e.message, {}, {}, {}};
  if (e.code == core::errc::not_found) return {404, "not_found", e.message, {}, {}, {}};
  return problem_from_log(e);
}

}  // namespace engram::http
