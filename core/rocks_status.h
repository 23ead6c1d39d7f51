#pragma once

// RocksDB statuses as core errors (internal to core/).

#include <fmt/format.h>
#include <rocksdb/status.h>

#include <string>
#include <string_view>

#include "core/result.h"

namespace engram::core {

inline Error from_status(const rocksdb::Status& s, std::string_view what) {
  const std::string text = s.ToString();
  errc code = errc::io_error;
  if (s.IsCorruption()) code = errc::corruption;
  if (s.IsIOError() && text.find("lock") != std::string::npos) code = errc::locked;
  return make_error(code, fmt::format("{}: {}", what, text));
}

}  // namespace engram::core
