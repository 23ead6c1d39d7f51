#pragma once

// Who may see what of the domain's streams: which streams hold memories,
// who may read or search an owner's memories, and how memory content is
// hidden from everyone else. One policy for every reader of events: the
// HTTP reads, the live feed, the audit answers (and later replication's
// consumers), so they cannot drift apart.
//
// Policy
// - A memory stream is `memory-<owner>` (ids.h, kMemoryStreamPrefix).
// - Memory content is for the owner's agent and for admins not scoped to
//   an agent; everyone else gets the event with its content redacted.
// - An agent-scoped principal reads only its own memory stream whole; it
//   sees other streams as anyone does.
// - Only an admin or the owner's agent may search an owner's memories (as
//   only the owner's agent or an unscoped principal may write them, see
//   memory.cc's authorize).

#include <nlohmann/json.hpp>
#include <string_view>

#include "commands/bus.h"

namespace engram::commands {

bool is_memory_stream(std::string_view stream);

// Whether `who` may read `stream` event by event (GET /v1/streams/...).
bool may_read_stream(const Principal& who, std::string_view stream);

// Whether `who` may search the memories of `owner`.
bool may_search_memories(const Principal& who, std::string_view owner);

// Whether `who` sees the memory content of the events of `stream` (true
// for every stream that holds no memories).
bool sees_memory_content(const Principal& who, std::string_view stream);

// An event as CommandBus::render_event makes it ({"stream", "data", ...}):
// unless `who` sees its content, data.content becomes null and
// data.content_redacted true. Other events are left alone.
void redact_event(nlohmann::json& event, const Principal& who);

// Every event object anywhere in `answer` (an object with a string
// "stream" and a "data": audit answers nest them in trees), redacted as
// redact_event does.
void redact_events_within(nlohmann::json& answer, const Principal& who);

}  // namespace engram::commands
