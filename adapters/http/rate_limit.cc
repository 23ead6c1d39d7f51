#include "adapters/http/rate_limit.h"

#include <algorithm>

#include "core/assert.h"

namespace engram::http {

RateLimiter::RateLimiter(double rate_per_s, double burst, size_t max_keys)
    : rate_per_s_(rate_per_s), burst_(std::max(burst, 1.0)), max_keys_(max_keys) {
  ENGRAM_ASSERT(rate_per_s >= 0);
  ENGRAM_ASSERT(max_keys > 0);
}

std::optional<double> RateLimiter::take(std::string_view key, int64_t now_ns) {
  if (!enabled()) return std::nullopt;
  std::lock_guard lock(mu_);
  auto it = buckets_.find(std::string(key));
  if (it == buckets_.end()) {
    if (buckets_.size() >= max_keys_) {
      buckets_.erase(lru_.back());
      lru_.pop_back();
    }
    lru_.emplace_front(key);
    it = buckets_.emplace(std::string(key), Bucket{burst_, now_ns, lru_.begin()}).first;
  } else {
    lru_.splice(lru_.begin(), lru_, it->second.lru);
  }
  Bucket& b = it->second;
  const double elapsed_s = static_cast<double>(std::max<int64_t>(0, now_ns - b.updated_ns)) / 1e9;
  b.tokens = std::min(burst_, b.tokens + elapsed_s * rate_per_s_);
  b.updated_ns = now_ns;
  if (b.tokens >= 1.0) {
    b.tokens -= 1.0;
    return std::nullopt;
  }
  return (1.0 - b.tokens) / rate_per_s_;
}

size_t RateLimiter::tracked() const {
  std::lock_guard lock(mu_);
  return buckets_.size();
}

}  // namespace engram::http
