#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "core/crypto.h"
#include "core/log.h"
#include "tests/support/temp_dir.h"

using namespace engram::core;

namespace {

bool any_file_contains(const std::filesystem::path& dir, std::string_view needle) {
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (bytes.find(needle) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("aead: seal and open round-trip, wrong key, aad or bytes fail") {
  AeadKey k{};
  random_bytes(k);
  const std::string sealed = aead_seal(k, "event-1", "the secret", "owner-a");
  CHECK(sealed.size() == 12 + 10 + 16);
  CHECK(sealed.find("the secret") == std::string::npos);
  CHECK(aead_seal(k, "event-1", "the secret", "owner-a") == sealed);  // deterministic per seed
  CHECK(aead_seal(k, "event-2", "the secret", "owner-a") != sealed);
  auto opened = aead_open(k, sealed, "owner-a");
  REQUIRE(opened);
  CHECK(*opened == "the secret");
  CHECK(aead_open(k, sealed, "owner-b").error().code == errc::corruption);
  AeadKey other = k;
  other[0] ^= 1;
  CHECK(!aead_open(other, sealed, "owner-a"));
  std::string flipped = sealed;
  flipped[15] ^= 1;
  CHECK(!aead_open(k, flipped, "owner-a"));
  CHECK(!aead_open(k, "short", "owner-a"));
  CHECK(aead_open(k, aead_seal(k, "e", "", ""), "").value().empty());
}

TEST_CASE("keystore: create, get, destroy removes the key's bytes from disk") {
  engram::test::TempDir dir;
  std::string key_bytes;
  {
    auto log = Log::open(dir.path());
    REQUIRE(log);
    KeyStore& ks = (*log)->keys();
    CHECK(!ks.get("alice").value().has_value());
    auto a = ks.get_or_create("alice");
    REQUIRE(a);
    CHECK(a->generation == 1);
    auto again = ks.get_or_create("alice");
    CHECK(again->key == a->key);
    CHECK(ks.get("alice").value()->key == a->key);
    auto b = ks.get_or_create("bob");
    CHECK(b->key != a->key);
    key_bytes.assign(reinterpret_cast<const char*>(a->key.data()), a->key.size());
    CHECK(!ks.get_or_create("").has_value());
    CHECK(!ks.get_or_create(std::string(300, 'x')).has_value());

    CHECK(ks.destroy("alice").value() == 1);
    CHECK(!ks.get("alice").value().has_value());
    CHECK(ks.destroy("alice").value() == 0);
    CHECK(ks.get("bob").value().has_value());
    auto fresh = ks.get_or_create("alice");
    CHECK(fresh->generation == 2);
    CHECK(fresh->key != a->key);
  }
  CHECK_FALSE(any_file_contains(dir.path(), key_bytes));
  auto log = Log::open(dir.path());
  REQUIRE(log);
  CHECK((*log)->keys().get("alice").value()->generation == 2);
}

TEST_CASE("find_event returns acknowledged events by id and nothing for unknown ids") {
  engram::test::TempDir dir;
  auto log = Log::open(dir.path());
  REQUIRE(log);
  EventData e;
  e.id = Uuid::v7_now();
  e.type = "Noted";
  REQUIRE((*log)->append("s", ExpectedVersion::any(), std::span(&e, 1)));
  auto found = (*log)->find_event(e.id);
  REQUIRE(found);
  REQUIRE(found->has_value());
  CHECK((*found)->id() == e.id);
  CHECK((*found)->stream() == "s");
  CHECK(!(*log)->find_event(Uuid::v7_now()).value().has_value());
}
