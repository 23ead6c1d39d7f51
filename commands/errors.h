#pragma once

// Making CommandErrors, and mapping the log's errors onto them.

#include <optional>
#include <string>

#include "commands/bus.h"
#include "core/result.h"

namespace engram::commands {

// A bad field; `field` is a JSON pointer ("/confidence"), empty for the body.
CommandError malformed(std::string field, std::string code, std::string detail);
CommandError unknown_command(std::string detail);
CommandError forbidden(std::string code, std::string detail);
CommandError not_found(std::string code, std::string detail);
CommandError rule(std::string code, std::string detail);
CommandError conflict(std::string code, std::string detail,
                      std::optional<uint64_t> actual_version = std::nullopt);
CommandError unavailable(std::string code, std::string detail);
CommandError internal(std::string code, std::string detail);

// A failure of the log (read or append) as seen by a command: overloaded,
// unavailable (read-only, closing) or internal (I/O, corruption).
CommandError from_log(const core::Error& e);

}  // namespace engram::commands
