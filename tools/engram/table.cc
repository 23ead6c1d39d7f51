#include "tools/engram/table.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "core/assert.h"

namespace engram::cli {
namespace {

// Display width: UTF-8 continuation bytes take no column.
size_t columns(const std::string& s) {
  return static_cast<size_t>(std::count_if(
      s.begin(), s.end(), [](char c) { return (static_cast<uint8_t>(c) & 0xC0) != 0x80; }));
}

}  // namespace

std::string clip(std::string s, size_t width) {
  if (s.size() <= width) return s;
  s.resize(width - 1);
  // Do not leave half a UTF-8 sequence behind.
  while (!s.empty() && (static_cast<uint8_t>(s.back()) & 0xC0) == 0x80) s.pop_back();
  if (!s.empty() && static_cast<uint8_t>(s.back()) >= 0xC0) s.pop_back();
  return s + "~";
}

bool use_colour() {
  static const bool on = isatty(STDOUT_FILENO) == 1 && std::getenv("NO_COLOR") == nullptr;
  return on;
}

std::string good(const std::string& text) {
  return use_colour() ? "\033[32m" + text + "\033[0m" : text;
}

std::string bad(const std::string& text) {
  return use_colour() ? "\033[1;31m" + text + "\033[0m" : text;
}

Table::Table(std::vector<std::string> header) : header_(std::move(header)) {}

void Table::add(std::vector<std::string> row) {
  ENGRAM_ASSERT(row.size() == header_.size());
  for (auto& cell : row) cell = clip(std::move(cell), kMaxCellChars);
  rows_.push_back(std::move(row));
}

void Table::print() const {
  std::vector<size_t> width(header_.size());
  for (size_t c = 0; c < header_.size(); ++c) width[c] = columns(header_[c]);
  for (const auto& r : rows_) {
    for (size_t c = 0; c < r.size(); ++c) width[c] = std::max(width[c], columns(r[c]));
  }
  auto line = [&](const std::vector<std::string>& cells, bool header) {
    std::string out;
    for (size_t c = 0; c < cells.size(); ++c) {
      if (c > 0) out += "  ";
      out += cells[c];
      if (c + 1 < cells.size()) out.append(width[c] - columns(cells[c]), ' ');
    }
    if (header && use_colour()) out = "\033[1m" + out + "\033[0m";
    fmt::print("{}\n", out);
  };
  line(header_, true);
  for (const auto& r : rows_) line(r, false);
}

}  // namespace engram::cli
