#pragma once

// Internal to adapters/auth: the one way this module turns untrusted text
// into JSON.

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace engram::auth::detail {

// Parses `text` as one JSON object. Refuses (nullopt, with the reason in
// `why`) nesting deeper than `max_depth` before the parser recurses into it,
// and a name repeated within one object: a JSON parser keeps one of the two
// values, and which one differs between libraries, so a token or key file
// that repeats a name could mean one thing to its author and another here.
std::optional<nlohmann::json> parse_object(std::string_view text, int max_depth, std::string& why);

}  // namespace engram::auth::detail
