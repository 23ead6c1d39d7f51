#include <doctest/doctest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "core/crypto.h"
#include "core/data_dir.h"
#include "core/keystore_rocks.h"
#include "core/log.h"
#include "tests/support/files.h"
#include "tests/support/temp_dir.h"

using namespace engram::core;

using engram::test::any_file_contains;

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
  const DataDir data(dir.path());
  std::string key_bytes;
  {
    auto store = RocksKeyStore::open(data);
    REQUIRE(store);
    KeyStore& ks = **store;
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
  // Closing finishes the shred the destroy asked for.
  CHECK_FALSE(any_file_contains(dir.path(), key_bytes));
  auto store = RocksKeyStore::open(data);
  REQUIRE(store);
  CHECK((*store)->get("alice").value()->generation == 2);
}

TEST_CASE("keystore: the shred runs in the background and reports when it is done") {
  engram::test::TempDir dir;
  auto store = RocksKeyStore::open(DataDir(dir.path()));
  REQUIRE(store);
  RocksKeyStore& ks = **store;
  CHECK(ks.shred_stats().pending == 0);
  CHECK(ks.shred_stats().last_finished_unix_ms == 0);
  std::vector<std::string> secrets;
  for (const char* owner : {"alice", "bob", "carol"}) {
    auto k = ks.get_or_create(owner);
    REQUIRE(k);
    secrets.emplace_back(reinterpret_cast<const char*>(k->key.data()), k->key.size());
  }
  // Durable at once: no reader gets the key after destroy() returns.
  for (const char* owner : {"alice", "bob"}) REQUIRE(ks.destroy(owner).value() == 1);
  CHECK_FALSE(ks.get("alice").value().has_value());
  REQUIRE(ks.wait_for_shreds(std::chrono::seconds(30)));
  const ShredStats st = ks.shred_stats();
  CHECK(st.pending == 0);
  CHECK(st.completed >= 1);
  CHECK(st.failed == 0);
  CHECK(st.last_finished_unix_ms > 0);
  CHECK_FALSE(any_file_contains(dir.path(), secrets[0]));
  CHECK_FALSE(any_file_contains(dir.path(), secrets[1]));
  CHECK(ks.get("carol").value()->key ==
        *reinterpret_cast<const AeadKey*>(secrets[2].data()));
}

TEST_CASE("keystore: a read-only open of a data dir without keys finds none and writes nothing") {
  engram::test::TempDir dir;
  KeyStoreOptions ro;
  ro.read_only = true;
  auto store = RocksKeyStore::open(DataDir(dir.path()), ro);
  REQUIRE(store);
  CHECK_FALSE((*store)->get("alice").value().has_value());
  CHECK((*store)->get_or_create("alice").error().code == errc::read_only);
  CHECK((*store)->destroy("alice").error().code == errc::read_only);
  CHECK_FALSE(std::filesystem::exists(DataDir(dir.path()).keys_dir()));
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
