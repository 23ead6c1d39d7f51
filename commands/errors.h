#pragma once

// What a command's failure is (CommandError), making one, and mapping the
// log's errors onto them.

#include <cstdint>
#include <optional>
#include <string>

#include "core/result.h"

namespace engram::commands {

// What went wrong, for the adapter to map onto its protocol.
enum class Failure : uint8_t {
  malformed,        // bad JSON or field (HTTP 400)
  unknown_command,  // no such command type (404)
  forbidden,        // the principal may not do this (403)
  not_found,        // the aggregate the command targets does not exist (404)
  conflict,         // expected version mismatch, idempotency key reuse (409)
  rule,             // a domain rule forbids it (422)
  overloaded,       // the bus's or the log's queue is full (503, retry)
  unavailable,      // the log is read-only or closing, the bus is stopping (503)
  internal,         // storage failed (500)
};

struct CommandError {
  Failure kind = Failure::internal;
  std::string code;    // stable machine name: "agent_not_active", "invalid_field"
  std::string detail;  // for people
  std::string field;   // the offending field (JSON pointer, "/confidence"), when one is
  std::optional<uint64_t> actual_version;  // with conflicts
};

template <typename T>
using result = core::result<T, CommandError>;

// A bad field; `field` is a JSON pointer ("/confidence"), empty for the body.
CommandError malformed(std::string field, std::string code, std::string detail);
CommandError unknown_command(std::string detail);
CommandError forbidden(std::string code, std::string detail);
CommandError not_found(std::string code, std::string detail);
CommandError rule(std::string code, std::string detail);
CommandError conflict(std::string code, std::string detail,
                      std::optional<uint64_t> actual_version = std::nullopt);
CommandError overloaded(std::string detail);
CommandError unavailable(std::string code, std::string detail);
CommandError internal(std::string code, std::string detail);

// A failure of the log (read or append) as seen by a command: overloaded,
// unavailable (read-only, closing) or internal (I/O, corruption).
CommandError from_log(const core::Error& e);

}  // namespace engram::commands
