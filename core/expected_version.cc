#include "core/expected_version.h"

#include <charconv>
#include <nlohmann/json.hpp>

namespace engram::core {

std::optional<ExpectedVersion> ExpectedVersion::parse(std::string_view text) {
  if (text == "any") return any();
  if (text == "no_stream") return no_stream();
  if (text == "stream_exists") return stream_exists();
  if (text.empty() || text.find_first_not_of("0123456789") != std::string_view::npos) {
    return std::nullopt;
  }
  uint64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return exact(StreamVersion(v));
}

std::optional<ExpectedVersion> ExpectedVersion::from_json(const nlohmann::json& value) {
  // Parsed text holds every integer >= 0 as unsigned; a value built in code
  // may hold it as signed. Fractions and integers past uint64 are floats.
  if (value.is_number_unsigned()) return exact(StreamVersion(value.get<uint64_t>()));
  if (value.is_number_integer()) {
    const auto v = value.get<int64_t>();
    if (v < 0) return std::nullopt;
    return exact(StreamVersion(static_cast<uint64_t>(v)));
  }
  if (!value.is_string()) return std::nullopt;
  const auto& s = value.get_ref<const std::string&>();
  if (s.empty() || (s.front() >= '0' && s.front() <= '9')) return std::nullopt;
  return parse(s);
}

bool ExpectedVersion::admits(StreamVersion current) const {
  switch (kind_) {
    case Kind::any:
      return true;
    case Kind::no_stream:
      return current.value() == 0;
    case Kind::stream_exists:
      return current.value() > 0;
    case Kind::exact:
      return current.value() == version_;
  }
  return false;
}

std::string ExpectedVersion::to_string() const {
  switch (kind_) {
    case Kind::any:
      return "any";
    case Kind::no_stream:
      return "no_stream";
    case Kind::stream_exists:
      return "stream_exists";
    case Kind::exact:
      return std::to_string(version_);
  }
  return "?";
}

}  // namespace engram::core
