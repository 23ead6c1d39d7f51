#include "commands/generic_events.h"

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "commands/idempotency.h"
#include "core/flexjson.h"

namespace engram::test {
namespace {

using commands::GenericLimits;
using commands::parse_generic_append;
using commands::parse_generic_event;
using nlohmann::json;

struct Refusal {
  json input;
  std::string field;
  std::string code;
  std::string says;
};

void check_refusal(const commands::CommandError& e, const Refusal& r) {
  CHECK(e.kind == commands::Failure::malformed);
  CHECK(e.field == r.field);
  CHECK(e.code == r.code);
  CHECK_MESSAGE(e.detail.find(r.says) != std::string::npos, e.detail);
}

TEST_CASE("generic events: an event's members") {
  const GenericLimits limits;
  const json full = {{"type", "NoteTaken"},
                     {"id", "0190a6f0-0000-7000-8000-0000000000a1"},
                     {"data", {{"text", "hello"}, {"n", 1}}},
                     {"metadata", {{"source", "test"}}}};
  auto e = parse_generic_event(full, "", limits);
  REQUIRE(e.has_value());
  CHECK(e->type == "NoteTaken");
  CHECK(e->id.to_string() == "0190a6f0-0000-7000-8000-0000000000a1");
  CHECK(e->payload_format == core::PayloadFormat::flexbuffer);
  CHECK(*core::flex_to_json(std::span(reinterpret_cast<const uint8_t*>(e->payload.data()),
                                      e->payload.size())) == full["data"]);
  CHECK(*core::flex_to_json(std::span(reinterpret_cast<const uint8_t*>(e->metadata.data()),
                                      e->metadata.size())) == full["metadata"]);

  auto minimal = parse_generic_event({{"type", "T"}, {"data", json::object()}}, "", limits);
  REQUIRE(minimal.has_value());
  CHECK(minimal->id.is_nil());  // the log assigns one
  CHECK(minimal->metadata.empty());
}

TEST_CASE("generic events: refusals name the member as a JSON pointer") {
  const GenericLimits limits;
  const std::string deep = std::string(70, '[') + std::string(70, ']');
  const std::vector<Refusal> refusals = {
      {json::array({1}), "/events/3", "invalid_field", "must be a JSON object"},
      {{{"data", json::object()}}, "/events/3/type", "missing_field", "'type'"},
      {{{"type", 5}, {"data", json::object()}}, "/events/3/type", "invalid_field", "'type'"},
      {{{"type", ""}, {"data", json::object()}}, "/events/3/type", "invalid_field", "non-empty"},
      {{{"type", "A"}}, "/events/3/data", "missing_field", "'data'"},
      {{{"type", "A"}, {"data", nullptr}}, "/events/3/data", "invalid_field", "'data'"},
      {{{"type", "A"}, {"data", json::array({1})}}, "/events/3/data", "invalid_field", "'data'"},
      {{{"type", "A"}, {"data", "text"}}, "/events/3/data", "invalid_field", "'data'"},
      {{{"type", "A"}, {"data", {{"x", json::parse(deep)}}}},
       "/events/3/data",
       "invalid_field",
       "deeper"},
      {{{"type", "A"}, {"data", json::object()}, {"metadata", "x"}},
       "/events/3/metadata",
       "invalid_field",
       "'metadata'"},
      {{{"type", "A"}, {"data", json::object()}, {"id", "nope"}},
       "/events/3/id",
       "invalid_field",
       "'id'"},
      {{{"type", "A"}, {"data", json::object()}, {"id", "00000000-0000-0000-0000-000000000000"}},
       "/events/3/id",
       "invalid_field",
       "non-nil"},
      {{{"type", "A"}, {"data", json::object()}, {"id", 7}},
       "/events/3/id",
       "invalid_field",
       "'id'"},
      {{{"type", "A"}, {"data", json::object()}, {"ext/ra", 1}},
       "/events/3/ext~1ra",
       "unknown_field",
       "unknown field 'ext/ra'"},
  };
  for (const auto& r : refusals) {
    CAPTURE(r.input.dump());
    auto e = parse_generic_event(r.input, "/events/3", limits);
    REQUIRE_FALSE(e.has_value());
    check_refusal(e.error(), r);
  }
}

TEST_CASE("generic events: a request body") {
  GenericLimits limits;
  limits.max_events = 3;
  const json event = {{"type", "T"}, {"data", json::object()}};
  auto body =
      parse_generic_append({{"expected_version", "no_stream"}, {"events", {event, event}}}, limits);
  REQUIRE(body.has_value());
  CHECK(body->expected.kind() == core::ExpectedVersion::Kind::no_stream);
  CHECK(body->events.size() == 2);
  auto plain = parse_generic_append({{"events", {event}}}, limits);
  REQUIRE(plain.has_value());
  CHECK(plain->expected.kind() == core::ExpectedVersion::Kind::any);
  CHECK(parse_generic_append({{"expected_version", 4}, {"events", {event}}}, limits)
            ->expected.version() == core::StreamVersion(4));

  const std::vector<Refusal> refusals = {
      {json::array(), "", "invalid_field", "JSON object"},
      {json::object(), "/events", "missing_field", "'events'"},
      {{{"events", json::array()}}, "/events", "invalid_field", "1 to 3"},
      {{{"events", {event, event, event, event}}}, "/events", "invalid_field", "1 to 3"},
      {{{"events", event}}, "/events", "invalid_field", "array"},
      {{{"events", {event}}, {"expected_version", -1}},
       "/expected_version",
       "invalid_field",
       "no_stream"},
      {{{"events", {event}}, {"expected_version", "no-stream"}},
       "/expected_version",
       "invalid_field",
       "stream_exists"},
      {{{"events", {event}}, {"extra", 1}}, "/extra", "unknown_field", "'extra'"},
      {{{"events", {event, {{"type", "T"}}}}}, "/events/1/data", "missing_field", "'data'"},
  };
  for (const auto& r : refusals) {
    CAPTURE(r.input.dump());
    auto e = parse_generic_append(r.input, limits);
    REQUIRE_FALSE(e.has_value());
    check_refusal(e.error(), r);
  }
}

TEST_CASE("generic events: ids derived from an Idempotency-Key are stable") {
  const GenericLimits limits;
  auto body = parse_generic_append(
      {{"events",
        {{{"type", "T"}, {"data", json::object()}},
         {{"type", "T"}, {"data", json::object()}, {"id", "0190a6f0-0000-7000-8000-0000000000a1"}},
         {{"type", "T"}, {"data", json::object()}}}}},
      limits);
  REQUIRE(body.has_value());
  auto again = *body;
  commands::derive_generic_event_ids(body->events, "lead", "key-1");
  commands::derive_generic_event_ids(again.events, "lead", "key-1");
  // Pinned (checked with Python's hashlib: SHA-256 of the name, as a UUIDv8):
  // events already in logs were named by these; a change would make a retry
  // across an upgrade write twice.
  CHECK(body->events[0].id.to_string() == "b73d46e7-42f6-8ae8-9d42-8232a96d194f");
  CHECK(body->events[1].id.to_string() == "0190a6f0-0000-7000-8000-0000000000a1");  // kept
  CHECK(body->events[2].id.to_string() == "2ccf966b-7fc5-8794-b574-0c8eb1cc7845");
  CHECK(commands::generic_command_id("lead", "key-1").to_string() ==
        "3f913491-4bc1-825b-8dd5-5203c167fb3d");
  for (size_t i = 0; i < 3; ++i) CHECK(again.events[i].id == body->events[i].id);
  auto other = *body;
  for (auto& e : other.events) e.id = core::Uuid();
  commands::derive_generic_event_ids(other.events, "lead", "key-2");
  CHECK(other.events[0].id != body->events[0].id);
  CHECK(commands::generic_command_id("other", "key-1") !=
        commands::generic_command_id("lead", "key-1"));
}

TEST_CASE("idempotency key: 1 to 128 printable ASCII characters") {
  CHECK(commands::valid_idempotency_key("k"));
  CHECK(commands::valid_idempotency_key("order-42/retry:1!~"));
  CHECK(commands::valid_idempotency_key(std::string(commands::kMaxIdempotencyKeyBytes, 'k')));
  CHECK_FALSE(commands::valid_idempotency_key(""));
  CHECK_FALSE(
      commands::valid_idempotency_key(std::string(commands::kMaxIdempotencyKeyBytes + 1, 'k')));
  CHECK_FALSE(commands::valid_idempotency_key("a b"));
  CHECK_FALSE(commands::valid_idempotency_key("a\tb"));
  CHECK_FALSE(commands::valid_idempotency_key("a\x7f"));
  CHECK_FALSE(commands::valid_idempotency_key("caf\xc3\xa9"));
  CHECK(commands::kIdempotencyKeyRule.find("128") != std::string_view::npos);
}

}  // namespace
}  // namespace engram::test
