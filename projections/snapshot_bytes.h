#pragma once

// Fields of the read models' snapshot files: put_* append a number in the
// machine's byte order (little-endian on every machine engram supports), a
// string as its u32 length and bytes, or (put_sized) a byte string as its
// u64 length and bytes; SnapshotReader reads them back and never past the
// end (ok turns false instead, and stays false).

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace engram::projections {

inline void put_u32(std::string& o, uint32_t v) {
  o.append(reinterpret_cast<const char*>(&v), sizeof v);
}
inline void put_u64(std::string& o, uint64_t v) {
  o.append(reinterpret_cast<const char*>(&v), sizeof v);
}
inline void put_f64(std::string& o, double v) {
  o.append(reinterpret_cast<const char*>(&v), sizeof v);
}
inline void put_str(std::string& o, std::string_view s) {
  put_u32(o, static_cast<uint32_t>(s.size()));
  o.append(s);
}

// A byte string that `write(o)` appends, after its u64 length (written in
// place afterwards: no copy of a large string).
template <typename F>
void put_sized(std::string& o, F&& write) {
  const size_t at = o.size();
  put_u64(o, 0);
  write(o);
  const uint64_t n = o.size() - at - sizeof(uint64_t);
  std::memcpy(o.data() + at, &n, sizeof n);
}

struct SnapshotReader {
  std::string_view in;
  size_t at = 0;
  bool ok = true;

  template <typename T>
  T num() {
    T v{};
    if (in.size() - at < sizeof(T)) {
      ok = false;
      return v;
    }
    std::memcpy(&v, in.data() + at, sizeof(T));
    at += sizeof(T);
    return v;
  }
  std::string_view bytes(uint64_t n) {
    if (in.size() - at < n) {
      ok = false;
      return {};
    }
    std::string_view s = in.substr(at, n);
    at += n;
    return s;
  }
  std::string_view str() { return bytes(num<uint32_t>()); }
};

}  // namespace engram::projections
