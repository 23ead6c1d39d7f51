#pragma once

// Time travel for the domain aggregates: a stream's state as of a global log
// position, rebuilt with the same evolve() the command bus decides against,
// so an audit sees exactly what a command at that moment would have seen.
// For `engram audit state` and GET /v1/audit/state/{stream}.

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "commands/aggregates.h"
#include "core/log.h"
#include "core/result.h"

namespace engram::commands {

// The most items a collection that can grow without bound (a memory
// owner's memories) shows in state_at.
inline constexpr size_t kMaxStateListItems = 1000;

// The state as JSON: {"aggregate": "agent" | "project" | ..., then every
// field of the State struct}. Enums are their lower-case names, an agent's
// config its JSON ({} when none, null when it does not verify). A memory
// owner's state is {"aggregate": "memory", "forgotten_at"}: the bus keeps
// nothing per memory.
nlohmann::json state_to_json(const AnyState& s);

// state_at adds to a memory owner's state what the bus reads per memory
// through the log's entity index: "memories": {"count", "items":
// [{"memory_id", "importance", "forgotten"}] sorted by id, "truncated"},
// with at most kMaxStateListItems items.
struct StateAt {
  std::string stream;
  uint64_t version = 0;        // the stream's version at `at` (0: the stream did not exist yet)
  uint64_t position = 0;       // position of the last event folded in (0 when none)
  int64_t recorded_at_ns = 0;  // its recorded-at (0 when none)
  nlohmann::json state;        // state_to_json of the folded state
};

// The aggregate owning `stream` rebuilt from its events at positions <= at.
// Errors: errc::invalid_argument when `stream` is not a domain stream or
// at == 0; errc::corruption when a stored event does not evolve; the log's
// read errors as they come.
core::result<StateAt> state_at(const core::Log& log, std::string_view stream, core::Position at);

}  // namespace engram::commands
