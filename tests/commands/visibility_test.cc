// Who sees what of memory streams: the one policy the HTTP reads, the live
// feed and the audit answers share.

#include "commands/visibility.h"

#include <doctest/doctest.h>

using namespace engram::commands;
using nlohmann::json;

namespace {

Principal principal(std::vector<Role> roles, std::optional<std::string> agent = std::nullopt) {
  return Principal{std::string("someone"), std::move(roles), std::move(agent)};
}

json memory_event(const std::string& stream) {
  return {{"stream", stream}, {"data", {{"content", "secret"}, {"importance", 0.5}}}};
}

}  // namespace

TEST_CASE("visibility: memory streams, and who reads or searches them") {
  CHECK(is_memory_stream("memory-a7"));
  CHECK_FALSE(is_memory_stream("agent-a7"));
  CHECK_FALSE(is_memory_stream("memories"));

  const Principal admin = principal({Role::admin});
  const Principal scoped_admin = principal({Role::admin}, "a1");
  const Principal agent = principal({Role::writer}, "a7");
  const Principal reader = principal({Role::reader});

  // Only agent-scoped principals are kept from other memory streams.
  CHECK(may_read_stream(agent, "memory-a7"));
  CHECK_FALSE(may_read_stream(agent, "memory-a1"));
  CHECK_FALSE(may_read_stream(agent, "memory-a77"));
  CHECK(may_read_stream(agent, "agent-a1"));
  CHECK(may_read_stream(reader, "memory-a1"));
  CHECK(may_read_stream(admin, "memory-a1"));

  CHECK(may_search_memories(admin, "a1"));
  CHECK(may_search_memories(scoped_admin, "a7"));
  CHECK(may_search_memories(agent, "a7"));
  CHECK_FALSE(may_search_memories(agent, "a1"));
  CHECK_FALSE(may_search_memories(reader, "a1"));

  CHECK(sees_memory_content(admin, "memory-a1"));
  CHECK_FALSE(sees_memory_content(scoped_admin, "memory-a7"));
  CHECK(sees_memory_content(scoped_admin, "memory-a1"));
  CHECK(sees_memory_content(agent, "memory-a7"));
  CHECK_FALSE(sees_memory_content(agent, "memory-a1"));
  CHECK_FALSE(sees_memory_content(reader, "memory-a1"));
  CHECK(sees_memory_content(reader, "notes"));
}

TEST_CASE("visibility: redaction of one event and of events nested in an answer") {
  const Principal reader = principal({Role::reader});
  json e = memory_event("memory-a1");
  redact_event(e, reader);
  CHECK(e["data"]["content"].is_null());
  CHECK(e["data"]["content_redacted"] == true);
  CHECK(e["data"]["importance"] == 0.5);

  json own = memory_event("memory-a7");
  redact_event(own, principal({Role::writer}, "a7"));
  CHECK(own["data"]["content"] == "secret");

  json notes = {{"stream", "notes"}, {"data", {{"content", "public"}}}};
  redact_event(notes, reader);
  CHECK(notes["data"]["content"] == "public");

  // An audit answer: event rows in lists and trees.
  json answer = {{"events", {memory_event("memory-a1"), memory_event("memory-a7")}},
                 {"roots", {{{"events", {memory_event("memory-a1")}}}}}};
  redact_events_within(answer, principal({Role::admin}, "a7"));
  CHECK(answer["events"][0]["data"]["content"].is_null());
  CHECK(answer["events"][1]["data"]["content"] == "secret");
  CHECK(answer["roots"][0]["events"][0]["data"]["content_redacted"] == true);

  json untouched = {{"events", {memory_event("memory-a1")}}};
  redact_events_within(untouched, principal({Role::admin}));
  CHECK(untouched["events"][0]["data"]["content"] == "secret");
}
