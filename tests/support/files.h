#pragma once

// File helpers for tests that look at what is on disk.

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>

namespace engram::test {

// Whether any regular file under `dir` holds `needle` (crypto-shredding
// tests: a destroyed key's bytes must be gone from every file).
inline bool any_file_contains(const std::filesystem::path& dir, std::string_view needle) {
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (bytes.find(needle) != std::string::npos) return true;
  }
  return false;
}

}  // namespace engram::test
