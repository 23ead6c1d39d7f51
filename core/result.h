#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>

#include "core/assert.h"
#include "core/errc.h"

namespace engram::core {

// An expected failure: a stable code plus a message for people. Conflicts
// carry the stream's actual version so a caller can retry without a read.
struct Error {
  errc code = errc::success;
  std::string message;
  std::optional<uint64_t> actual_version;

  std::string to_string() const { return std::string(errc_name(code)) + ": " + message; }
};

inline Error make_error(errc code, std::string message) {
  return Error{code, std::move(message), {}};
}

// Either a value or an Error. Accessing the wrong side is a programmer error
// and asserts.
template <typename T>
class [[nodiscard]] result {
 public:
  result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }

  T& value() & {
    ENGRAM_ASSERT(has_value());
    return std::get<0>(v_);
  }
  const T& value() const& {
    ENGRAM_ASSERT(has_value());
    return std::get<0>(v_);
  }
  T&& value() && {
    ENGRAM_ASSERT(has_value());
    return std::get<0>(std::move(v_));
  }
  const Error& error() const {
    ENGRAM_ASSERT(!has_value());
    return std::get<1>(v_);
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] result<void> {
 public:
  result() = default;
  result(Error error) : e_(std::move(error)) {}  // NOLINT: implicit by design

  bool has_value() const { return !e_.has_value(); }
  explicit operator bool() const { return has_value(); }
  const Error& error() const {
    ENGRAM_ASSERT(!has_value());
    return *e_;
  }

 private:
  std::optional<Error> e_;
};

}  // namespace engram::core
