#pragma once

// Token buckets keyed by client (a token's subject, an IP address).
//
// Each key's bucket holds up to `burst` tokens and refills at `rate_per_s`;
// a request takes one. At most max_keys buckets are tracked: when full, the
// least recently used is dropped (it comes back full, which only errs toward
// admitting). rate_per_s == 0 turns the limiter off.

#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace engram::http {

class RateLimiter {
 public:
  RateLimiter(double rate_per_s, double burst, size_t max_keys);

  // nullopt: admitted. Otherwise the seconds until a token is available (for
  // Retry-After).
  std::optional<double> take(std::string_view key, int64_t now_ns);

  bool enabled() const { return rate_per_s_ > 0; }
  size_t tracked() const;

 private:
  struct Bucket {
    double tokens;
    int64_t updated_ns;
    std::list<std::string>::iterator lru;
  };
  double rate_per_s_;
  double burst_;
  size_t max_keys_;
  mutable std::mutex mu_;
  std::list<std::string> lru_;  // most recent first
  std::unordered_map<std::string, Bucket> buckets_;
};

}  // namespace engram::http
