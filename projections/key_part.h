#pragma once

// Free text inside a read model's keys ("ix/task/domain/<value>/<id>"):
// '%' and '/' become %25 and %2F, so a value never spans two key segments
// and each value keeps a key range of its own.

#include <string>
#include <string_view>

namespace engram::projections {

inline std::string escape_key_part(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '%') {
      out += "%25";
    } else if (c == '/') {
      out += "%2F";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace engram::projections
