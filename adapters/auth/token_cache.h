#pragma once

// A Verifier that remembers tokens it accepted, so a client sending the same
// bearer token on every request pays for one signature check (an Ed25519
// verify costs tens of microseconds) and one claims parse.
//
// Contract
// - verify() answers exactly as Verifier::verify would at `now_s`: a cached
//   token is still refused once it expires (same leeway); refusals are never
//   cached, so nothing a client sends can fill the cache but valid tokens.
// - At most max_entries tokens are remembered (least recently used dropped);
//   tokens longer than the verifier's max_token_bytes are never accepted.
// - Thread-safe.

#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "adapters/auth/jwt.h"

namespace engram::auth {

class CachingVerifier {
 public:
  CachingVerifier(Verifier verifier, size_t max_entries);

  core::result<Claims, AuthError> verify(std::string_view token, int64_t now_s);

  uint64_t hits() const;
  size_t size() const;

 private:
  struct Entry {
    Claims claims;
    std::list<std::string>::iterator lru;
  };
  Verifier verifier_;
  size_t max_entries_;
  mutable std::mutex mu_;
  std::list<std::string> lru_;  // most recent first
  std::unordered_map<std::string, Entry> entries_;
  uint64_t hits_ = 0;
};

}  // namespace engram::auth
