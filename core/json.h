#pragma once

// The one way engram reads JSON it did not write itself: request bodies,
// NDJSON input, config and key files, tokens, proof documents.
//
// nlohmann::json::parse alone is not enough for untrusted text:
// - A name repeated within one object keeps one of its values, and which one
//   differs between parsers, so a proxy that checks {"agent_id":"a6",
//   "agent_id":"a7"} and engram would act on different requests. Refused,
//   naming the name and where it is.
// - Deep nesting could exhaust a recursive consumer's (or a destructor's)
//   stack. Measured on the raw bytes before the parser starts, and refused.
// The text must be valid UTF-8 JSON with nothing after the value.

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/flexjson.h"
#include "core/result.h"

namespace engram::core {

enum class JsonErrc : uint8_t {
  syntax,         // not JSON (or invalid UTF-8, or trailing text)
  too_deep,       // nests deeper than the limit
  duplicate_key,  // an object repeats a name
  not_object,     // valid JSON, but an object was required
};

struct JsonError {
  JsonErrc code = JsonErrc::syntax;
  std::string message;  // for people; says where (a JSON pointer or the parser's byte offset)
  // duplicate_key: the JSON pointer of the repeated member ("/events/2/type");
  // otherwise empty (the whole text).
  std::string pointer;
};

// Parses one JSON value.
result<nlohmann::json, JsonError> parse_json(std::string_view text,
                                             size_t max_depth = kMaxJsonDepth);
// The same, requiring an object at the top.
result<nlohmann::json, JsonError> parse_json_object(std::string_view text,
                                                    size_t max_depth = kMaxJsonDepth);

// One reference token of a JSON pointer (RFC 6901): "~" as "~0", "/" as "~1".
std::string json_pointer_token(std::string_view name);

}  // namespace engram::core
