#include "core/crypto.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <memory>

#include "core/assert.h"
#include "core/sha256.h"

namespace engram::core {
namespace {

struct CtxFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using Ctx = std::unique_ptr<EVP_CIPHER_CTX, CtxFree>;

const unsigned char* u8(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}
int len(std::string_view s) {
  ENGRAM_ASSERT(s.size() < (1u << 30));
  return static_cast<int>(s.size());
}

}  // namespace

void random_bytes(std::span<uint8_t> out) {
  ENGRAM_ASSERT(RAND_bytes(out.data(), static_cast<int>(out.size())) == 1);
}

std::string aead_seal(const AeadKey& key, std::string_view nonce_seed, std::string_view plaintext,
                      std::string_view aad) {
  Sha256 h;
  h.update("engram/aead-nonce/v1");
  h.update(nonce_seed);
  h.update(plaintext);
  const Hash256 digest = h.finish();

  std::string out(kAeadNonceBytes + plaintext.size() + kAeadTagBytes, '\0');
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  std::copy_n(digest.begin(), kAeadNonceBytes, o);

  Ctx ctx(EVP_CIPHER_CTX_new());
  ENGRAM_ASSERT(ctx != nullptr);
  int n = 0;
  ENGRAM_ASSERT(EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), o) == 1);
  if (!aad.empty())
    ENGRAM_ASSERT(EVP_EncryptUpdate(ctx.get(), nullptr, &n, u8(aad), len(aad)) == 1);
  ENGRAM_ASSERT(
      EVP_EncryptUpdate(ctx.get(), o + kAeadNonceBytes, &n, u8(plaintext), len(plaintext)) == 1);
  int tail = 0;
  ENGRAM_ASSERT(EVP_EncryptFinal_ex(ctx.get(), o + kAeadNonceBytes + n, &tail) == 1);
  ENGRAM_ASSERT(EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kAeadTagBytes,
                                    o + kAeadNonceBytes + plaintext.size()) == 1);
  return out;
}

result<std::string> aead_open(const AeadKey& key, std::string_view sealed, std::string_view aad) {
  if (sealed.size() < kAeadNonceBytes + kAeadTagBytes) {
    return make_error(errc::corruption, "sealed content is too short");
  }
  const size_t n_plain = sealed.size() - kAeadNonceBytes - kAeadTagBytes;
  std::string out(n_plain, '\0');
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  const unsigned char* in = u8(sealed);

  Ctx ctx(EVP_CIPHER_CTX_new());
  ENGRAM_ASSERT(ctx != nullptr);
  int n = 0;
  ENGRAM_ASSERT(EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), in) == 1);
  if (!aad.empty())
    ENGRAM_ASSERT(EVP_DecryptUpdate(ctx.get(), nullptr, &n, u8(aad), len(aad)) == 1);
  ENGRAM_ASSERT(
      EVP_DecryptUpdate(ctx.get(), o, &n, in + kAeadNonceBytes, static_cast<int>(n_plain)) == 1);
  std::string tag(sealed.substr(kAeadNonceBytes + n_plain));
  ENGRAM_ASSERT(EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kAeadTagBytes, tag.data()) ==
                1);
  int tail = 0;
  if (EVP_DecryptFinal_ex(ctx.get(), o + n, &tail) != 1) {
    return make_error(errc::corruption, "sealed content does not authenticate under this key");
  }
  return out;
}

}  // namespace engram::core
