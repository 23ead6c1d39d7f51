// Fuzz target: bearer tokens (adapters/auth). The first byte picks the path:
//   'T' token     verify the rest as a token
//   'H' hdr\nclm  sign header and claims JSON with the ring's HS256 key, then
//                 verify: the fuzzer cannot forge a signature, and this lets it
//                 reach the header and claims checks behind the signature
//   'E' hdr\nclm  the same with the Ed25519 key
//   'K' file      parse the rest as a key file
// Anything else is verified whole as a token.

#include "adapters/auth/jwt.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/assert.h"
#include "core/base64.h"

namespace {

using namespace engram;

constexpr int64_t kNow_s = 1'700'000'000;

const auth::Verifier& verifier() {
  static const auth::Verifier v = [] {
    auth::KeyRing ring("engram", "engram");
    ENGRAM_ASSERT(ring.add_hs256("hs", std::string(32, 'k')).has_value());
    ENGRAM_ASSERT(ring.add_random_eddsa("ed").has_value());
    return auth::Verifier(std::move(ring));
  }();
  return v;
}

std::string hs256(std::string_view input) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  const std::string& secret = verifier().ring().find("hs")->secret();
  ENGRAM_ASSERT(HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
                     reinterpret_cast<const unsigned char*>(input.data()), input.size(), out,
                     &len) != nullptr);
  return std::string(reinterpret_cast<const char*>(out), len);
}

std::string ed25519(std::string_view input) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ENGRAM_ASSERT(ctx != nullptr);
  unsigned char sig[64];
  size_t len = sizeof sig;
  ENGRAM_ASSERT(EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr,
                                   verifier().ring().find("ed")->private_key()) == 1);
  ENGRAM_ASSERT(EVP_DigestSign(ctx, sig, &len, reinterpret_cast<const unsigned char*>(input.data()),
                               input.size()) == 1);
  EVP_MD_CTX_free(ctx);
  return std::string(reinterpret_cast<const char*>(sig), len);
}

std::string signed_token(std::string_view rest, bool ed) {
  const size_t nl = rest.find('\n');
  const std::string_view header = rest.substr(0, nl);
  const std::string_view claims = nl == std::string_view::npos ? "" : rest.substr(nl + 1);
  const std::string input = core::base64url_encode(header) + "." + core::base64url_encode(claims);
  return input + "." + core::base64url_encode(ed ? ed25519(input) : hs256(input));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const char mode = input.empty() ? 0 : input.front();
  const std::string_view rest = input.empty() ? input : input.substr(1);
  switch (mode) {
    case 'T':
      (void)verifier().verify(rest, kNow_s);
      break;
    case 'H':
    case 'E':
      (void)verifier().verify(signed_token(rest, mode == 'E'), kNow_s);
      break;
    case 'K':
      (void)auth::KeyRing::parse(rest);
      break;
    default:
      (void)verifier().verify(input, kNow_s);
      break;
  }
  return 0;
}
