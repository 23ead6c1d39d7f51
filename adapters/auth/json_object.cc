#include "adapters/auth/json_object.h"

#include <algorithm>
#include <set>
#include <vector>

#include "core/flexjson.h"

namespace engram::auth::detail {

std::optional<nlohmann::json> parse_object(std::string_view text, int max_depth, std::string& why) {
  if (core::json_nesting_depth(text) > static_cast<size_t>(max_depth)) {
    why = "JSON nests deeper than " + std::to_string(max_depth) + " levels";
    return std::nullopt;
  }
  // One set of names per open object; arrays push nothing, so the callback's
  // object_start/object_end events keep the stack aligned.
  std::vector<std::set<std::string>> names;
  std::string repeated;
  auto callback = [&](int, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    switch (event) {
      case nlohmann::json::parse_event_t::object_start:
        names.emplace_back();
        break;
      case nlohmann::json::parse_event_t::object_end:
        if (!names.empty()) names.pop_back();
        break;
      case nlohmann::json::parse_event_t::key:
        if (!names.empty() && parsed.is_string() &&
            !names.back().insert(parsed.get_ref<const std::string&>()).second && repeated.empty()) {
          repeated = parsed.get_ref<const std::string&>();
        }
        break;
      default:
        break;
    }
    return true;
  };
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text.begin(), text.end(), callback, /*allow_exceptions=*/false);
  } catch (const std::exception& e) {
    // allow_exceptions=false covers syntax errors; this is for anything else
    // the library may throw, which must not cross the module's API.
    why = std::string("JSON parser failed: ") + e.what();
    return std::nullopt;
  }
  if (j.is_discarded()) {
    why = "not valid JSON";
    return std::nullopt;
  }
  if (!j.is_object()) {
    why = "not a JSON object";
    return std::nullopt;
  }
  if (!repeated.empty()) {
    why = "JSON repeats the name \"" + repeated.substr(0, 64) + "\"";
    return std::nullopt;
  }
  return j;
}

}  // namespace engram::auth::detail
