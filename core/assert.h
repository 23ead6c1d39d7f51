#pragma once

// Invariant checks that stay on in release builds. A failed assertion is a
// programmer error: the process prints where and aborts, so that a corrupted
// in-memory state never reaches the disk. Expected failures (bad input, I/O
// errors, conflicts) are values (core/result.h), never assertions.

namespace engram::core {
[[noreturn]] void assert_fail(const char* expr, const char* file, int line, const char* msg);
}  // namespace engram::core

#define ENGRAM_ASSERT(cond) \
  ((cond) ? static_cast<void>(0) : ::engram::core::assert_fail(#cond, __FILE__, __LINE__, nullptr))
#define ENGRAM_ASSERT_MSG(cond, msg) \
  ((cond) ? static_cast<void>(0) : ::engram::core::assert_fail(#cond, __FILE__, __LINE__, (msg)))
