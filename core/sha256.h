#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

struct evp_md_ctx_st;

namespace engram::core {

using Hash256 = std::array<uint8_t, 32>;

// Incremental SHA-256 over OpenSSL's EVP interface. The algorithm object is
// fetched once per process; a context is cheap to reuse via reset().
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void reset();
  void update(const void* data, size_t len);
  void update(std::string_view s) { update(s.data(), s.size()); }
  Hash256 finish();

 private:
  ::evp_md_ctx_st* ctx_;
};

std::string to_hex(std::span<const uint8_t> bytes);
// Returns false unless `hex` is exactly 2*out.size() hex digits.
bool from_hex(std::string_view hex, std::span<uint8_t> out);

}  // namespace engram::core
