#pragma once

// Aligned text tables for people: columns padded to their widest cell (each
// cell clipped to a bound), a bold header and coloured status words when
// stdout is a terminal and NO_COLOR is unset.

#include <string>
#include <vector>

namespace engram::cli {

inline constexpr size_t kMaxCellChars = 80;

// `s` cut to `width` bytes with a trailing "~", never inside a UTF-8 sequence.
std::string clip(std::string s, size_t width);

// Whether stdout gets ANSI colours.
bool use_colour();
// `text` in green (good) or red (bad) when colours are on.
std::string good(const std::string& text);
std::string bad(const std::string& text);

class Table {
 public:
  explicit Table(std::vector<std::string> header);
  void add(std::vector<std::string> row);
  void print() const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace engram::cli
