#include "adapters/auth/token_cache.h"

#include "core/assert.h"

namespace engram::auth {

CachingVerifier::CachingVerifier(Verifier verifier, size_t max_entries)
    : verifier_(std::move(verifier)), max_entries_(max_entries) {
  ENGRAM_ASSERT(max_entries > 0);
}

core::result<Claims, AuthError> CachingVerifier::verify(std::string_view token, int64_t now_s) {
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(std::string(token));
    if (it != entries_.end()) {
      // The rule Verifier::verify applies to exp.
      if (now_s - verifier_.options().leeway_s >= it->second.claims.expires_at_s) {
        lru_.erase(it->second.lru);
        entries_.erase(it);
        return AuthError{AuthErrc::expired, "the token has expired"};
      }
      lru_.splice(lru_.begin(), lru_, it->second.lru);
      ++hits_;
      return it->second.claims;
    }
  }
  auto claims = verifier_.verify(token, now_s);
  if (!claims) return claims;
  std::lock_guard lock(mu_);
  if (entries_.count(std::string(token)) == 0) {
    if (entries_.size() >= max_entries_) {
      entries_.erase(lru_.back());
      lru_.pop_back();
    }
    lru_.emplace_front(token);
    entries_.emplace(std::string(token), Entry{*claims, lru_.begin()});
  }
  return claims;
}

uint64_t CachingVerifier::hits() const {
  std::lock_guard lock(mu_);
  return hits_;
}

size_t CachingVerifier::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

}  // namespace engram::auth
