#pragma once

// Optimistic concurrency: what a stream's version must be for an append to
// go ahead. One spelling everywhere, in and out: "any", "no_stream",
// "stream_exists" or an integer >= 0 (the exact version; 0 is the same as
// no_stream). The CLI's --expected, the HTTP API's "expected_version", the
// bus's commands and the log's conflict messages all use it.

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "core/named_type.h"

namespace engram::core {

// The valid spellings, for error messages and help texts.
inline constexpr std::string_view kExpectedVersionHelp =
    "any, no_stream, stream_exists or a version number (an integer >= 0)";

class ExpectedVersion {
 public:
  enum class Kind { any, no_stream, stream_exists, exact };
  static ExpectedVersion any() { return ExpectedVersion(Kind::any, 0); }
  static ExpectedVersion no_stream() { return ExpectedVersion(Kind::no_stream, 0); }
  static ExpectedVersion stream_exists() { return ExpectedVersion(Kind::stream_exists, 0); }
  // exact(0) is the same as no_stream().
  static ExpectedVersion exact(StreamVersion v) { return ExpectedVersion(Kind::exact, v.value()); }

  // Text, as a command-line flag takes it: one of the three words or decimal
  // digits that fit a uint64. nullopt otherwise (say kExpectedVersionHelp).
  static std::optional<ExpectedVersion> parse(std::string_view text);
  // JSON, as a request body carries it: one of the three words as a string,
  // or an integer >= 0 (not a string of digits, not a fraction).
  static std::optional<ExpectedVersion> from_json(const nlohmann::json& value);

  Kind kind() const { return kind_; }
  StreamVersion version() const { return StreamVersion(version_); }
  bool admits(StreamVersion current) const;
  // The spelling parse() reads: "any", "no_stream", "stream_exists" or "7".
  std::string to_string() const;

 private:
  ExpectedVersion(Kind k, uint64_t v) : kind_(k), version_(v) {}
  Kind kind_;
  uint64_t version_;
};

}  // namespace engram::core
