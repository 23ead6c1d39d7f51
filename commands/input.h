#pragma once

// Reading a command's JSON body. Each getter checks the field's type and
// bounds and names it as a JSON pointer when it is wrong; the first problem
// is kept (later getters return defaults) and finish() reports it, or else
// the first field that no getter asked for.
//
// Optional fields treat JSON null like absence. Strings come in three kinds:
// ids (valid_id, max_id_bytes), labels (1..max_id_bytes, no control
// characters: tags, kinds, branch and embedder names) and texts
// (1..max_text_bytes of any UTF-8).

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "commands/errors.h"
#include "commands/limits.h"

namespace engram::commands {

class Input {
 public:
  // Both are read, not copied: they must outlive the Input.
  Input(const nlohmann::json& body, const Limits& limits);
  Input(nlohmann::json&& body, const Limits& limits) = delete;

  std::string id(std::string_view name);
  std::optional<std::string> optional_id(std::string_view name);
  std::string text(std::string_view name);
  std::optional<std::string> optional_text(std::string_view name);
  std::optional<std::string> optional_label(std::string_view name);

  // Arrays of distinct ids or labels, at most max_tags long.
  std::vector<std::string> id_list(std::string_view name);
  std::optional<std::vector<std::string>> optional_id_list(std::string_view name);
  std::optional<std::vector<std::string>> optional_label_list(std::string_view name);

  // A number in [0, 1].
  double fraction(std::string_view name);
  std::optional<double> optional_fraction(std::string_view name);
  // A finite number with |value| <= max_magnitude.
  double number(std::string_view name, double max_magnitude);
  bool boolean(std::string_view name);
  std::optional<uint64_t> optional_count(std::string_view name);
  // 1..max_embedding_dims finite numbers that fit a float.
  std::optional<std::vector<float>> optional_embedding(std::string_view name);
  // A JSON object, returned as a FlexBuffer of at most max_text_bytes.
  std::optional<std::string> optional_object(std::string_view name);
  // One of `choices`; returns its index.
  size_t choice(std::string_view name, std::span<const std::string_view> choices);

  bool has(std::string_view name) const;
  // Records a problem found across fields (the first one wins).
  void fail(CommandError e);
  std::optional<CommandError> finish();

 private:
  const nlohmann::json* take(std::string_view name, bool required);
  void bad(std::string_view pointer, std::string detail);
  std::optional<std::string> string_of(std::string_view pointer, const nlohmann::json& v,
                                       size_t max_bytes);
  std::optional<std::vector<std::string>> list(std::string_view name, bool required, bool ids);

  const nlohmann::json& body_;
  const Limits& limits_;
  std::set<std::string, std::less<>> taken_;
  std::optional<CommandError> error_;
};

// Writing a body back (an aggregate's to_json, the inverse of its parse):
// an optional member only when it is set.
template <typename T>
void put_optional(nlohmann::json& body, const char* name, const std::optional<T>& value) {
  if (value) body[name] = *value;
}
// A FlexBuffer that optional_object made, as the JSON object it was read
// from; bytes that are no FlexBuffer give a string, which optional_object
// refuses.
nlohmann::json object_json(std::string_view flex);

// A JSON pointer to a top-level member (RFC 6901 escaping).
std::string json_pointer(std::string_view name);

}  // namespace engram::commands
