#pragma once

#include <compare>
#include <cstdint>
#include <functional>

namespace engram::core {

// A strong typedef: positions, versions and counts cannot be mixed up by
// accident, and conversions to the raw value are explicit.
template <typename T, typename Tag>
class named_type {
 public:
  using type = T;
  constexpr named_type() = default;
  constexpr explicit named_type(T v) : v_(v) {}
  constexpr T value() const { return v_; }
  constexpr auto operator<=>(const named_type&) const = default;
  constexpr named_type next() const { return named_type(v_ + 1); }

 private:
  T v_{};
};

// Global position in the log: gap-free, the first event is at 1, 0 means "none".
using Position = named_type<uint64_t, struct position_tag>;
// Version of a stream = the number of events in it: the first event has
// version 1, and version 0 means the stream does not exist.
using StreamVersion = named_type<uint64_t, struct stream_version_tag>;

}  // namespace engram::core

template <typename T, typename Tag>
struct std::hash<engram::core::named_type<T, Tag>> {
  size_t operator()(const engram::core::named_type<T, Tag>& v) const noexcept {
    return std::hash<T>{}(v.value());
  }
};
