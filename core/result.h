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

// Either a value or an error (core::Error unless a module has its own).
// Accessing the wrong side is a programmer error and asserts.
template <typename T, typename E = Error>
class [[nodiscard]] result {
 public:
  result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  result(E error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

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
  const E& error() const {
    ENGRAM_ASSERT(!has_value());
    return std::get<1>(v_);
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, E> v_;
};

template <typename E>
class [[nodiscard]] result<void, E> {
 public:
  result() = default;
  result(E error) : e_(std::move(error)) {}  // NOLINT: implicit by design

  bool has_value() const { return !e_.has_value(); }
  explicit operator bool() const { return has_value(); }
  const E& error() const {
    ENGRAM_ASSERT(!has_value());
    return *e_;
  }

 private:
  std::optional<E> e_;
};

}  // namespace engram::core
