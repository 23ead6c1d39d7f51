#include "adapters/http/rate_limit.h"

#include <doctest/doctest.h>

using engram::http::RateLimiter;

TEST_CASE("rate limiter: burst, refill, per-key buckets, bounded tracking") {
  RateLimiter r(10, 3, 2);
  const int64_t s = 1'000'000'000;
  CHECK(!r.take("a", 0));
  CHECK(!r.take("a", 0));
  CHECK(!r.take("a", 0));
  auto wait = r.take("a", 0);
  REQUIRE(wait);
  CHECK(*wait == doctest::Approx(0.1));
  CHECK(!r.take("a", s / 10));  // one token back after 100 ms
  CHECK(r.take("a", s / 10));
  CHECK(!r.take("b", 0));
  CHECK(!r.take("c", 0));  // evicts the least recently used ("a")
  CHECK(r.tracked() == 2);
  CHECK(!r.take("a", s / 10));  // back with a full bucket
  RateLimiter off(0, 0, 1);
  for (int i = 0; i < 100; ++i) CHECK(!off.take("x", 0));
}
