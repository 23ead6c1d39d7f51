#include "core/envelope.h"

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <random>

#include "core/flexjson.h"
#include "core/merkle.h"

using namespace engram::core;

namespace {

std::string sealed_envelope() {
  envelope::Content c;
  c.stream = "orders-1";
  c.type = "OrderPlaced";
  c.id = Uuid::v7_now();
  c.actor = "tester";
  static const std::string payload = "some payload bytes";
  c.payload = {reinterpret_cast<const uint8_t*>(payload.data()), payload.size()};
  std::string bytes = envelope::build(c);
  envelope::seal(bytes, Position(7), StreamVersion(3), 42, Hash256{}, envelope::content_digest(c));
  return bytes;
}

}  // namespace

TEST_CASE("a sealed envelope decodes and its hash recomputes") {
  auto ev = RecordedEvent::decode(sealed_envelope());
  REQUIRE(ev);
  CHECK(ev->position() == Position(7));
  CHECK(ev->version() == StreamVersion(3));
  CHECK(ev->stream() == "orders-1");
  CHECK(ev->recorded_at_ns() == 42);
  CHECK(ev->compute_hash() == ev->hash());
}

TEST_CASE("the decoder rejects empty, garbage and truncated buffers without crashing") {
  CHECK(RecordedEvent::decode("").error().code == errc::corruption);
  CHECK(RecordedEvent::decode("x").error().code == errc::corruption);
  CHECK(RecordedEvent::decode(std::string(64, '\0')).error().code == errc::corruption);

  // Cutting into referenced data must fail. The builder pads the end of the
  // buffer to alignment, and cutting only that padding leaves an intact event.
  const std::string good = sealed_envelope();
  const Hash256 good_hash = RecordedEvent::decode(good)->hash();
  size_t intact_cuts = 0;
  for (size_t len = 0; len < good.size(); ++len) {
    auto ev = RecordedEvent::decode(good.substr(0, len));
    if (!ev) continue;
    ++intact_cuts;
    CHECK(ev->hash() == good_hash);
    CHECK(ev->compute_hash() == good_hash);
  }
  CHECK(intact_cuts < 8);

  std::mt19937_64 rng(12345);
  for (int i = 0; i < 2000; ++i) {
    std::string junk(static_cast<size_t>(rng() % 512), '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    if (junk.size() >= 8) junk.replace(4, 4, "EGE1");  // get past the identifier check
    (void)RecordedEvent::decode(std::move(junk));
  }
  // Every single-byte corruption of a valid envelope either fails to decode
  // or decodes into something whose hash no longer matches, or is harmless
  // padding; none may crash or read out of bounds.
  for (size_t at = 0; at < good.size(); ++at) {
    std::string bent = good;
    bent[at] = static_cast<char>(bent[at] ^ 0x5A);
    auto ev = RecordedEvent::decode(std::move(bent));
    if (ev) (void)ev->compute_hash();
  }
}

TEST_CASE("JSON <-> FlexBuffers round trip and limits") {
  const auto j = nlohmann::json::parse(
      R"({"a":1,"b":[true,null,2.5,"x"],"c":{"d":-3,"e":18446744073709551615}})");
  auto flex = json_to_flex(j);
  REQUIRE(flex);
  auto back = flex_to_json({reinterpret_cast<const uint8_t*>(flex->data()), flex->size()});
  REQUIRE(back);
  CHECK(*back == j);

  nlohmann::json deep = 1;
  for (int i = 0; i < 100; ++i) deep = nlohmann::json::array({deep});
  CHECK(json_to_flex(deep).error().code == errc::invalid_argument);

  const std::string junk = "\x01\x02\x03\x04\x05";
  CHECK(flex_to_json({reinterpret_cast<const uint8_t*>(junk.data()), junk.size()}).error().code ==
        errc::corruption);
}

TEST_CASE("UUIDs parse, print and order by time") {
  const Uuid u = Uuid::v7(1'700'000'000'000);
  auto parsed = Uuid::parse(u.to_string());
  REQUIRE(parsed);
  CHECK(*parsed == u);
  CHECK(((u.hi >> 12) & 0xF) == 7);
  CHECK((u.lo >> 62) == 2);
  CHECK(Uuid::v7(1'700'000'000'001) > u);
  CHECK_FALSE(Uuid::parse("not-a-uuid"));
  CHECK_FALSE(Uuid::parse("0190f0d0-0000-7000-8000-00000000000g"));
  CHECK(Uuid::parse("0190F0D000007000800000000000000A"));
}

TEST_CASE("json_nesting_depth counts objects and arrays, not brackets inside strings") {
  CHECK(json_nesting_depth("") == 0);
  CHECK(json_nesting_depth("42") == 0);
  CHECK(json_nesting_depth(R"({"a": [1, {"b": []}]})") == 4);
  CHECK(json_nesting_depth(R"({"s": "[[[{{{\"]]]"})") == 1);
  CHECK(json_nesting_depth(std::string(100, '[') + std::string(100, ']')) == 100);
  CHECK(json_nesting_depth("]]]][") == 1);  // stray closers do not go below zero
}

// The canonical bytes are a format (docs/log-format.md): these values come
// from an independent implementation of that page (Python's hashlib), so a
// change to how the code feeds the hash cannot go unnoticed.
TEST_CASE("the content digest, chain hash and Merkle leaf match the documented format") {
  const std::string payload = "p";
  envelope::Content c;
  c.stream = "s";
  c.type = "T";
  c.schema_version = 1;
  c.id = Uuid{1, 2};
  c.command_id = Uuid{3, 4};
  c.causation_id = Uuid{5, 6};
  c.correlation_id = Uuid{7, 8};
  c.actor = "a";
  c.payload_format = PayloadFormat::flexbuffer;
  c.payload = {reinterpret_cast<const uint8_t*>(payload.data()), payload.size()};
  const Hash256 digest = envelope::content_digest(c);
  CHECK(to_hex(digest) == "bdc4fbc2cdfefb640c7fa5f3635ddf96458733be0d88dd02ecbfac7960c7ffec");
  const Hash256 hash = envelope::chain_hash(Hash256{}, Position(1), StreamVersion(1), 1000, digest);
  CHECK(to_hex(hash) == "1e57733834370a25d9b945285feea44dab16241607820a7b34cf78c5471aa9da");
  CHECK(to_hex(merkle::leaf_hash(hash)) ==
        "a3c45c95f87908f442112439492b948479670aea58f66c93e941b400eb6273e9");
}
