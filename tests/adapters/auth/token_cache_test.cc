#include "adapters/auth/token_cache.h"

#include <doctest/doctest.h>

using namespace engram::auth;

namespace {

std::string sign(const KeyRing& ring, const std::string& sub, int64_t iat, int64_t ttl) {
  TokenRequest r;
  r.subject = sub;
  r.roles = {"reader"};
  r.issued_at_s = iat;
  r.ttl_s = ttl;
  auto t = sign_token(ring, r);
  REQUIRE(t);
  return *t;
}

}  // namespace

TEST_CASE("caching verifier: hits for accepted tokens, expiry still applies, refusals not kept") {
  KeyRing ring("engram", "engram");
  REQUIRE(ring.add_random_eddsa("ed"));
  CachingVerifier v(Verifier(ring), 2);
  const int64_t now = 1'800'000'000;
  const std::string a = sign(ring, "a", now, 100);

  auto first = v.verify(a, now);
  REQUIRE(first);
  CHECK(v.hits() == 0);
  auto again = v.verify(a, now + 10);
  REQUIRE(again);
  CHECK(again->subject == "a");
  CHECK(v.hits() == 1);

  // Past exp plus the leeway (30 s) the cached token is refused, like the verifier would.
  auto late = v.verify(a, now + 100 + 30);
  REQUIRE_FALSE(late);
  CHECK(late.error().code == AuthErrc::expired);
  CHECK(v.size() == 0);

  // Refusals are not cached.
  std::string forged = a;
  forged.back() = forged.back() == 'A' ? 'B' : 'A';
  CHECK_FALSE(v.verify(forged, now));
  CHECK(v.size() == 0);

  // Bounded: the least recently used token goes.
  REQUIRE(v.verify(sign(ring, "b", now, 100), now));
  REQUIRE(v.verify(sign(ring, "c", now, 100), now));
  REQUIRE(v.verify(sign(ring, "d", now, 100), now));
  CHECK(v.size() == 2);
}
