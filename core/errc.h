#pragma once

#include <string>
#include <system_error>

namespace engram::core {

// Expected failures of the log. Each value is stable: adapters map them to
// protocol errors (HTTP status, CLI exit code) and clients may switch on them.
enum class errc : int {
  success = 0,
  invalid_argument = 1,        // bad input; nothing was written
  wrong_expected_version = 2,  // optimistic concurrency check failed
  duplicate_id_conflict = 3,   // an event id was reused for other content
  overloaded = 4,              // the append queue is full; retry later
  read_only = 5,               // an earlier write or fsync failed; writes are refused
  io_error = 6,                // the storage failed this operation
  corruption = 7,              // stored data failed verification
  timeout = 8,                 // a bounded wait ran out
  not_found = 9,               // no such log, stream or position
  locked = 10,                 // another process holds the data directory
  shutting_down = 11,          // the log is closing and accepts no new work
  internal = 12,               // a library failed in a way it should not
};

const std::error_category& log_category() noexcept;
std::error_code make_error_code(errc e) noexcept;
// The stable machine name of an error ("wrong_expected_version").
const char* errc_name(errc e) noexcept;

}  // namespace engram::core

template <>
struct std::is_error_code_enum<engram::core::errc> : true_type {};
