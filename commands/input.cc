#include "commands/input.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cfloat>
#include <cmath>

#include "commands/errors.h"
#include "commands/ids.h"
#include "core/flexjson.h"
#include "core/json.h"

namespace engram::commands {

std::string json_pointer(std::string_view name) {
  return "/" + core::json_pointer_token(name);
}

Input::Input(const nlohmann::json& body, const Limits& limits) : body_(body), limits_(limits) {
  ENGRAM_ASSERT(body.is_object());
}

void Input::fail(CommandError e) {
  if (!error_) error_ = std::move(e);
}

void Input::bad(std::string_view pointer, std::string detail) {
  fail(malformed(std::string(pointer), "invalid_field",
                 fmt::format("{}: {}", pointer, std::move(detail))));
}

const nlohmann::json* Input::take(std::string_view name, bool required) {
  taken_.emplace(name);
  const auto it = body_.find(name);
  if (it == body_.end() || it->is_null()) {
    if (required) {
      const std::string pointer = json_pointer(name);
      fail(malformed(pointer, "missing_field", fmt::format("{} is required", pointer)));
    }
    return nullptr;
  }
  return &*it;
}

bool Input::has(std::string_view name) const {
  const auto it = body_.find(name);
  return it != body_.end() && !it->is_null();
}

std::optional<std::string> Input::string_of(std::string_view pointer, const nlohmann::json& v,
                                            size_t max_bytes) {
  if (!v.is_string()) {
    bad(pointer, "must be a string");
    return std::nullopt;
  }
  const auto& s = v.get_ref<const std::string&>();
  if (s.empty()) {
    bad(pointer, "must not be empty");
    return std::nullopt;
  }
  if (s.size() > max_bytes) {
    bad(pointer, fmt::format("is {} bytes, over the limit of {}", s.size(), max_bytes));
    return std::nullopt;
  }
  return s;
}

std::string Input::id(std::string_view name) {
  const auto* v = take(name, true);
  if (v == nullptr) return {};
  return optional_id(name).value_or(std::string());
}

std::optional<std::string> Input::optional_id(std::string_view name) {
  const auto* v = take(name, false);
  if (v == nullptr) return std::nullopt;
  const std::string pointer = json_pointer(name);
  auto s = string_of(pointer, *v, limits_.max_id_bytes);
  if (s && !valid_id(*s, limits_.max_id_bytes)) {
    bad(pointer, "must be letters, digits and _ . : - only, starting with a letter or digit");
    return std::nullopt;
  }
  return s;
}

std::string Input::text(std::string_view name) {
  if (take(name, true) == nullptr) return {};
  return optional_text(name).value_or(std::string());
}

std::optional<std::string> Input::optional_text(std::string_view name) {
  const auto* v = take(name, false);
  if (v == nullptr) return std::nullopt;
  return string_of(json_pointer(name), *v, limits_.max_text_bytes);
}

namespace {

bool has_control_character(std::string_view s) {
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7F) return true;
  }
  return false;
}

}  // namespace

std::optional<std::string> Input::optional_label(std::string_view name) {
  const auto* v = take(name, false);
  if (v == nullptr) return std::nullopt;
  const std::string pointer = json_pointer(name);
  auto s = string_of(pointer, *v, limits_.max_id_bytes);
  if (s && has_control_character(*s)) {
    bad(pointer, "must not contain control characters");
    return std::nullopt;
  }
  return s;
}

std::optional<std::vector<std::string>> Input::list(std::string_view name, bool required,
                                                    bool ids) {
  const auto* v = take(name, required);
  if (v == nullptr) return std::nullopt;
  const std::string pointer = json_pointer(name);
  if (!v->is_array()) {
    bad(pointer, "must be an array of strings");
    return std::nullopt;
  }
  if (v->size() > limits_.max_tags) {
    bad(pointer, fmt::format("has {} items, over the limit of {}", v->size(), limits_.max_tags));
    return std::nullopt;
  }
  std::vector<std::string> out;
  out.reserve(v->size());
  for (size_t i = 0; i < v->size(); ++i) {
    const std::string item_pointer = fmt::format("{}/{}", pointer, i);
    auto s = string_of(item_pointer, (*v)[i], limits_.max_id_bytes);
    if (!s) return std::nullopt;
    if (ids && !valid_id(*s, limits_.max_id_bytes)) {
      bad(item_pointer,
          "must be letters, digits and _ . : - only, starting with a letter or digit");
      return std::nullopt;
    }
    if (!ids && has_control_character(*s)) {
      bad(item_pointer, "must not contain control characters");
      return std::nullopt;
    }
    for (const auto& earlier : out) {
      if (earlier == *s) {
        bad(item_pointer, fmt::format("repeats \"{}\"", *s));
        return std::nullopt;
      }
    }
    out.push_back(std::move(*s));
  }
  return out;
}

std::vector<std::string> Input::id_list(std::string_view name) {
  return list(name, true, true).value_or(std::vector<std::string>());
}

std::optional<std::vector<std::string>> Input::optional_id_list(std::string_view name) {
  return list(name, false, true);
}

std::optional<std::vector<std::string>> Input::optional_label_list(std::string_view name) {
  return list(name, false, false);
}

double Input::fraction(std::string_view name) {
  if (take(name, true) == nullptr) return 0;
  return optional_fraction(name).value_or(0);
}

std::optional<double> Input::optional_fraction(std::string_view name) {
  const auto* v = take(name, false);
  if (v == nullptr) return std::nullopt;
  const std::string pointer = json_pointer(name);
  if (!v->is_number()) {
    bad(pointer, "must be a number from 0 to 1");
    return std::nullopt;
  }
  const double d = v->get<double>();
  if (!(d >= 0.0 && d <= 1.0)) {
    bad(pointer, "must be a number from 0 to 1");
    return std::nullopt;
  }
  return d;
}

double Input::number(std::string_view name, double max_magnitude) {
  const auto* v = take(name, true);
  if (v == nullptr) return 0;
  const std::string pointer = json_pointer(name);
  if (!v->is_number()) {
    bad(pointer, "must be a number");
    return 0;
  }
  const double d = v->get<double>();
  if (!std::isfinite(d) || std::fabs(d) > max_magnitude) {
    bad(pointer, fmt::format("must be a finite number with magnitude at most {}", max_magnitude));
    return 0;
  }
  return d;
}

bool Input::boolean(std::string_view name) {
  const auto* v = take(name, true);
  if (v == nullptr) return false;
  if (!v->is_boolean()) {
    bad(json_pointer(name), "must be true or false");
    return false;
  }
  return v->get<bool>();
}

std::optional<uint64_t> Input::optional_count(std::string_view name) {
  const auto* v = take(name, false);
  if (v == nullptr) return std::nullopt;
  if (!v->is_number_integer() || (!v->is_number_unsigned() && v->get<int64_t>() < 0)) {
    bad(json_pointer(name), "must be an integer >= 0");
    return std::nullopt;
  }
  return v->get<uint64_t>();
}

std::optional<std::vector<float>> Input::optional_embedding(std::string_view name) {
  const auto* v = take(name, false);
  if (v == nullptr) return std::nullopt;
  const std::string pointer = json_pointer(name);
  if (!v->is_array() || v->empty()) {
    bad(pointer, "must be a non-empty array of numbers");
    return std::nullopt;
  }
  if (v->size() > limits_.max_embedding_dims) {
    bad(pointer, fmt::format("has {} dimensions, over the limit of {}", v->size(),
                             limits_.max_embedding_dims));
    return std::nullopt;
  }
  std::vector<float> out;
  out.reserve(v->size());
  for (size_t i = 0; i < v->size(); ++i) {
    const auto& x = (*v)[i];
    const double d = x.is_number() ? x.get<double>() : NAN;
    if (!std::isfinite(d) || std::fabs(d) > FLT_MAX) {
      bad(fmt::format("{}/{}", pointer, i), "must be a finite number in float range");
      return std::nullopt;
    }
    out.push_back(static_cast<float>(d));
  }
  return out;
}

std::optional<std::string> Input::optional_object(std::string_view name) {
  const auto* v = take(name, false);
  if (v == nullptr) return std::nullopt;
  const std::string pointer = json_pointer(name);
  if (!v->is_object()) {
    bad(pointer, "must be a JSON object");
    return std::nullopt;
  }
  auto flex = core::json_to_flex(*v);
  if (!flex) {
    bad(pointer, flex.error().message);
    return std::nullopt;
  }
  if (flex->size() > limits_.max_text_bytes) {
    bad(pointer, fmt::format("is {} bytes encoded, over the limit of {}", flex->size(),
                             limits_.max_text_bytes));
    return std::nullopt;
  }
  return std::move(*flex);
}

size_t Input::choice(std::string_view name, std::span<const std::string_view> choices) {
  const auto* v = take(name, true);
  if (v == nullptr) return 0;
  if (v->is_string()) {
    for (size_t i = 0; i < choices.size(); ++i) {
      if (v->get_ref<const std::string&>() == choices[i]) return i;
    }
  }
  bad(json_pointer(name), fmt::format("must be one of \"{}\"", fmt::join(choices, "\", \"")));
  return 0;
}

std::optional<CommandError> Input::finish() {
  if (error_) return error_;
  for (const auto& [key, value] : body_.items()) {
    if (!taken_.contains(key)) {
      const std::string pointer = json_pointer(key);
      return malformed(pointer, "unknown_field",
                       fmt::format("{} is not a field of this command", pointer));
    }
  }
  return std::nullopt;
}

nlohmann::json object_json(std::string_view flex) {
  auto j = core::flex_to_json(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(flex.data()), flex.size()));
  if (!j || !j->is_object()) return "not a FlexBuffer map";
  return std::move(*j);
}

}  // namespace engram::commands
