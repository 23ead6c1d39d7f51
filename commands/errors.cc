#include "commands/errors.h"

#include <utility>

namespace engram::commands {
namespace {

CommandError make(Failure kind, std::string code, std::string detail) {
  CommandError e;
  e.kind = kind;
  e.code = std::move(code);
  e.detail = std::move(detail);
  return e;
}

}  // namespace

CommandError malformed(std::string field, std::string code, std::string detail) {
  CommandError e = make(Failure::malformed, std::move(code), std::move(detail));
  e.field = std::move(field);
  return e;
}

CommandError unknown_command(std::string detail) {
  return make(Failure::unknown_command, "unknown_command", std::move(detail));
}

CommandError forbidden(std::string code, std::string detail) {
  return make(Failure::forbidden, std::move(code), std::move(detail));
}

CommandError not_found(std::string code, std::string detail) {
  return make(Failure::not_found, std::move(code), std::move(detail));
}

CommandError rule(std::string code, std::string detail) {
  return make(Failure::rule, std::move(code), std::move(detail));
}

CommandError conflict(std::string code, std::string detail,
                      std::optional<uint64_t> actual_version) {
  CommandError e = make(Failure::conflict, std::move(code), std::move(detail));
  e.actual_version = actual_version;
  return e;
}

CommandError overloaded(std::string detail) {
  return make(Failure::overloaded, "overloaded", std::move(detail));
}

CommandError unavailable(std::string code, std::string detail) {
  return make(Failure::unavailable, std::move(code), std::move(detail));
}

CommandError internal(std::string code, std::string detail) {
  return make(Failure::internal, std::move(code), std::move(detail));
}

CommandError from_log(const core::Error& e) {
  const std::string detail = e.to_string();
  switch (e.code) {
    case core::errc::overloaded:
      return overloaded(detail);
    case core::errc::read_only:
      return unavailable("read_only", detail);
    case core::errc::shutting_down:
      return unavailable("shutting_down", detail);
    case core::errc::invalid_argument:
      // The log's own bounds (event or append bytes) are tighter than the
      // command's fields summed up.
      return malformed("", "too_large", detail);
    case core::errc::wrong_expected_version:
      return conflict("wrong_expected_version", detail, e.actual_version);
    case core::errc::corruption:
      return internal("corruption", detail);
    default:
      return internal("storage_error", detail);
  }
}

}  // namespace engram::commands
