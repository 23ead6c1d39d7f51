#include "core/sha256.h"

#include <openssl/evp.h>

#include "core/assert.h"

namespace engram::core {
namespace {
const EVP_MD* sha256_md() {
  // Explicit fetch: OpenSSL 3's implicit fetch on every init is measurably slower.
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  ENGRAM_ASSERT_MSG(md != nullptr, "OpenSSL has no SHA256");
  return md;
}
}  // namespace

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  ENGRAM_ASSERT(ctx_ != nullptr);
  reset();
}

Sha256::~Sha256() {
  EVP_MD_CTX_free(ctx_);
}

void Sha256::reset() {
  ENGRAM_ASSERT(EVP_DigestInit_ex(ctx_, sha256_md(), nullptr) == 1);
}

void Sha256::update(const void* data, size_t len) {
  ENGRAM_ASSERT(EVP_DigestUpdate(ctx_, data, len) == 1);
}

Hash256 Sha256::finish() {
  Hash256 out{};
  unsigned int len = 0;
  ENGRAM_ASSERT(EVP_DigestFinal_ex(ctx_, out.data(), &len) == 1 && len == out.size());
  reset();
  return out;
}

std::string to_hex(std::span<const uint8_t> bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (uint8_t b : bytes) {
    out.push_back(digits[b >> 4]);
    out.push_back(digits[b & 0xF]);
  }
  return out;
}

bool from_hex(std::string_view hex, std::span<uint8_t> out) {
  if (hex.size() != out.size() * 2) return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < out.size(); ++i) {
    const int h = nibble(hex[2 * i]);
    const int l = nibble(hex[2 * i + 1]);
    if (h < 0 || l < 0) return false;
    out[i] = static_cast<uint8_t>(h << 4 | l);
  }
  return true;
}

}  // namespace engram::core
