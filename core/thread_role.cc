#include "core/thread_role.h"

#include <fmt/format.h>

#include "core/assert.h"

namespace engram::core {
namespace {

thread_local ThreadRole current_role = ThreadRole::unassigned;

[[noreturn]] void violated(const char* what, const char* rule) {
  const std::string msg = fmt::format("thread contract: {} on a {} thread ({})", what,
                                      thread_role_name(current_role), rule);
  assert_fail("thread role", __FILE__, __LINE__, msg.c_str());
}

}  // namespace

std::string_view thread_role_name(ThreadRole role) noexcept {
  switch (role) {
    case ThreadRole::unassigned:
      return "unassigned";
    case ThreadRole::io:
      return "io";
    case ThreadRole::log_writer:
      return "log_writer";
    case ThreadRole::log_syncer:
      return "log_syncer";
    case ThreadRole::bus:
      return "bus";
    case ThreadRole::projection:
      return "projection";
    case ThreadRole::query:
      return "query";
    case ThreadRole::maintenance:
      return "maintenance";
  }
  return "?";
}

void set_thread_role(ThreadRole role) {
  ENGRAM_ASSERT_MSG(current_role == ThreadRole::unassigned || current_role == role,
                    "a thread's role is set once");
  current_role = role;
}

ThreadRole thread_role() noexcept {
  return current_role;
}

void expect_may_block(const char* what) {
  switch (current_role) {
    case ThreadRole::io:
      violated(what, "an I/O thread must not block");
    case ThreadRole::log_writer:
    case ThreadRole::log_syncer:
      violated(what, "log threads do only the log's own work");
    default:
      return;
  }
}

void expect_not_log_thread(const char* what) {
  if (current_role == ThreadRole::log_writer || current_role == ThreadRole::log_syncer) {
    violated(what, "log threads do only the log's own work");
  }
}

}  // namespace engram::core
