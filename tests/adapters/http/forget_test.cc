#include <doctest/doctest.h>

#include <chrono>
#include <thread>

#include "core/data_dir.h"
#include "core/keystore_rocks.h"
#include "tests/adapters/http/serve_fixture.h"
#include "tests/support/files.h"

using namespace engram::test;
using nlohmann::json;

TEST_CASE("ForgetSubject over HTTP: content unreadable afterwards, audit verify still passes") {
  ServeFixture f;
  HttpClient c(f.port());
  const std::string admin = f.token({"admin"}, "root");
  const std::string secret = "the owner's private note 7d1f";
  auto stored = c.request("POST", "/v1/commands/StoreMemory",
                          json{{"owner", "bob"}, {"content", secret}, {"importance", 0.8}}.dump(),
                          bearer(admin));
  REQUIRE_MESSAGE(stored.status == 201, stored.body);
  auto before = c.request("GET", "/v1/streams/memory-bob", "", bearer(admin));
  REQUIRE(before.status == 200);
  CHECK(body_json(before)["events"][0]["data"]["content"] == secret);

  auto forget =
      c.request("POST", "/v1/commands/ForgetSubject",
                json{{"owner", "bob"}, {"reason", "erasure request"}}.dump(), bearer(admin));
  REQUIRE_MESSAGE(forget.status == 201, forget.body);
  auto after = c.request("GET", "/v1/streams/memory-bob", "", bearer(admin));
  json first = body_json(after)["events"][0]["data"];
  CHECK(first["content"].is_null());
  CHECK(first["content_forgotten"] == true);
  CHECK(after.body.find(secret) == std::string::npos);
  CHECK(f.server->stop() == 0);

  RunResult verify = run({ENGRAM_BINARY, "audit", "verify", "--data", f.data.string()});
  INFO(verify.out << verify.err);
  CHECK(verify.exit_code == 0);
  RunResult dump = run({ENGRAM_BINARY, "replay", "dump", "--data", f.data.string()});
  CHECK(dump.exit_code == 0);
  CHECK(dump.out.find(secret) == std::string::npos);
}

namespace {

// A metric's value in a /metrics text, or -1 when absent.
double metric(const std::string& text, const std::string& name) {
  const size_t at = text.find("\n" + name + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + name.size() + 2));
}

}  // namespace

TEST_CASE("ForgetSubject: the key is gone at once, its bytes leave the disk in the background") {
  ServeFixture f;
  HttpClient c(f.port());
  const std::string admin = f.token({"admin"}, "root");
  auto stored = c.request("POST", "/v1/commands/StoreMemory",
                          json{{"owner", "carol"}, {"content", "c"}, {"importance", 0.5}}.dump(),
                          bearer(admin));
  REQUIRE_MESSAGE(stored.status == 201, stored.body);
  // The key's bytes, read as an attacker with the disk would (a read-only
  // open takes no lock from the running server).
  std::string key_bytes;
  {
    engram::core::KeyStoreOptions ro;
    ro.read_only = true;
    auto keys = engram::core::RocksKeyStore::open(engram::core::DataDir(f.data), ro);
    REQUIRE(keys);
    auto key = (*keys)->get("carol");
    REQUIRE(key);
    REQUIRE(key->has_value());
    key_bytes.assign(reinterpret_cast<const char*>((*key)->key.data()), (*key)->key.size());
  }
  REQUIRE(any_file_contains(f.data, key_bytes));

  auto forget = c.request("POST", "/v1/commands/ForgetSubject", json{{"owner", "carol"}}.dump(),
                          bearer(admin));
  REQUIRE_MESSAGE(forget.status == 201, forget.body);
  // The shred is background maintenance: wait for the metric, with the
  // server still running, then look at the disk.
  std::string text;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (;;) {
    auto m = c.request("GET", "/metrics", "", bearer(admin));
    REQUIRE(m.status == 200);
    text = m.body;
    if (metric(text, "engram_key_shreds_pending") == 0 &&
        metric(text, "engram_key_shred_last_finished_timestamp_seconds") > 0) {
      break;
    }
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CHECK(metric(text, "engram_key_shreds_failed_total") == 0);
  CHECK_FALSE(any_file_contains(f.data, key_bytes));
  CHECK(f.server->stop() == 0);
}
