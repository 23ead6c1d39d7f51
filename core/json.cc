#include "core/json.h"

#include <fmt/format.h>

#include <set>
#include <vector>

namespace engram::core {
namespace {

using nlohmann::json;

// A name shown in a message: at most 64 bytes, cut at a UTF-8 boundary so
// the message stays valid UTF-8 (it may end up in a JSON answer).
std::string shown(std::string_view name) {
  constexpr size_t kMaxShownBytes = 64;
  if (name.size() <= kMaxShownBytes) return std::string(name);
  size_t n = kMaxShownBytes;
  while (n > 0 && (static_cast<unsigned char>(name[n]) & 0xC0) == 0x80) --n;
  return std::string(name.substr(0, n)) + "...";
}

// The parser's message quotes the input it stopped at, which may be any
// bytes: keep printable ASCII so the message is safe to put in JSON.
std::string printable(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c < 0x20 || c > 0x7E) c = '?';
  }
  return out;
}

// Where the parser is: one frame per open object or array.
struct Frame {
  bool array = false;
  size_t index = 0;        // array: the element being read
  std::string key;         // object: the member being read
  std::set<std::string> names;  // object: the names seen so far
};

std::string pointer_of(const std::vector<Frame>& frames) {
  std::string p;
  for (const auto& f : frames) {
    p += '/';
    p += f.array ? std::to_string(f.index) : json_pointer_token(f.key);
  }
  return p;
}

}  // namespace

std::string json_pointer_token(std::string_view name) {
  std::string out;
  out.reserve(name.size());
  for (char c : name) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

result<json, JsonError> parse_json(std::string_view text, size_t max_depth) {
  if (json_nesting_depth(text) > max_depth) {
    return JsonError{JsonErrc::too_deep, fmt::format("JSON nests deeper than {} levels", max_depth),
                     {}};
  }
  std::vector<Frame> frames;
  std::string repeated_at;  // the first repeated name and its pointer
  std::string repeated;
  auto element_done = [&] {
    if (!frames.empty() && frames.back().array) ++frames.back().index;
  };
  auto callback = [&](int, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        frames.push_back(Frame{event == json::parse_event_t::array_start, 0, {}, {}});
        break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        if (!frames.empty()) frames.pop_back();
        element_done();
        break;
      case json::parse_event_t::key:
        if (!frames.empty() && parsed.is_string()) {
          Frame& f = frames.back();
          f.key = parsed.get_ref<const std::string&>();
          if (!f.names.insert(f.key).second && repeated_at.empty()) {
            repeated = f.key;
            repeated_at = pointer_of(frames);
          }
        }
        break;
      case json::parse_event_t::value:
        element_done();
        break;
    }
    return true;
  };
  json j;
  try {
    j = json::parse(text.begin(), text.end(), callback);
  } catch (const json::exception& e) {
    return JsonError{JsonErrc::syntax, "not valid JSON: " + printable(e.what()), {}};
  }
  if (!repeated_at.empty()) {
    return JsonError{JsonErrc::duplicate_key,
                     fmt::format("JSON repeats the name \"{}\" (at {})",
                                 shown(repeated), shown(repeated_at)),
                     repeated_at};
  }
  return j;
}

result<json, JsonError> parse_json_object(std::string_view text, size_t max_depth) {
  auto j = parse_json(text, max_depth);
  if (j && !j->is_object()) {
    return JsonError{JsonErrc::not_object,
                     fmt::format("expected a JSON object, not {}", j->type_name()), {}};
  }
  return j;
}

}  // namespace engram::core
