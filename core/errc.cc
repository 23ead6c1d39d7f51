#include "core/errc.h"

namespace engram::core {
namespace {

class LogCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "engram.log"; }
  std::string message(int ev) const override { return errc_name(static_cast<errc>(ev)); }
};

}  // namespace

const char* errc_name(errc e) noexcept {
  switch (e) {
    case errc::success:
      return "success";
    case errc::invalid_argument:
      return "invalid_argument";
    case errc::wrong_expected_version:
      return "wrong_expected_version";
    case errc::duplicate_id_conflict:
      return "duplicate_id_conflict";
    case errc::overloaded:
      return "overloaded";
    case errc::read_only:
      return "read_only";
    case errc::io_error:
      return "io_error";
    case errc::corruption:
      return "corruption";
    case errc::timeout:
      return "timeout";
    case errc::not_found:
      return "not_found";
    case errc::locked:
      return "locked";
    case errc::shutting_down:
      return "shutting_down";
    case errc::internal:
      return "internal";
  }
  return "unknown";
}

const std::error_category& log_category() noexcept {
  static const LogCategory category;
  return category;
}

std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), log_category()};
}

}  // namespace engram::core
