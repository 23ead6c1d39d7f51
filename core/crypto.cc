#include "core/crypto.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
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

namespace {
// Keys are stored unencrypted: a passphrase prompt must never block a server.
int no_passphrase(char*, int, int, void*) {
  return 0;
}
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
}  // namespace

std::shared_ptr<evp_pkey_st> read_ed25519_pem(std::string_view pem, bool private_half,
                                              std::string& why) {
  ENGRAM_ASSERT(pem.size() <= INT32_MAX);
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  ENGRAM_ASSERT(bio != nullptr);
  EVP_PKEY* key = private_half ? PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr)
                               : PEM_read_bio_PUBKEY(bio.get(), nullptr, no_passphrase, nullptr);
  ERR_clear_error();
  if (key == nullptr) {
    why = private_half ? "not a PEM private key (unencrypted PKCS#8 expected)"
                       : "not a PEM public key (SubjectPublicKeyInfo expected)";
    return nullptr;
  }
  if (EVP_PKEY_get_id(key) != EVP_PKEY_ED25519) {
    EVP_PKEY_free(key);
    why = "not an Ed25519 key";
    return nullptr;
  }
  return std::shared_ptr<evp_pkey_st>(key, EVP_PKEY_free);
}

std::string write_pem(evp_pkey_st* key, bool private_half) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  ENGRAM_ASSERT(bio != nullptr);
  const int ok =
      private_half ? PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr)
                   : PEM_write_bio_PUBKEY(bio.get(), key);
  ENGRAM_ASSERT(ok == 1);
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  ENGRAM_ASSERT(len > 0);
  return std::string(data, static_cast<size_t>(len));
}

}  // namespace engram::core
